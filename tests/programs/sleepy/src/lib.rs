//! Init functions that do not finish in time, for timeout tests.
//!
//! * `component-init` sleeps 30 s (`std::thread::sleep`, a WASI 0.2
//!   `monotonic-clock` poll).
//! * `init-read-fifo` reads `/pipe/fifo` (a preopened directory `/pipe`) to
//!   its end: it blocks while that is a FIFO without a writer. If it ever
//!   returns it has closed the file and the preopens, so nothing is held.
//! * `init-calls` counts inits that started in this instance (a counter
//!   increased before the blocking call).

use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/sleepy",
});

static INIT_CALLS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" {
    /// wasi-libc: forget (and close) the preopened directories.
    fn __wasilibc_reset_preopens();
}

struct Sleepy;

impl Guest for Sleepy {
    fn component_init() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(30));
    }

    fn init_read_fifo() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        let mut bytes = Vec::new();
        std::fs::File::open("/pipe/fifo")
            .expect("open /pipe/fifo")
            .read_to_end(&mut bytes)
            .expect("read /pipe/fifo");
        unsafe { __wasilibc_reset_preopens() };
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }
}

export!(Sleepy);
