//! A synchronous `component-init` next to an async init function with
//! arguments, both lifted with the component-model async ABI where WIT says
//! `async`.
//!
//! * `component-init` (sync) builds a small table and sets `sync` to its
//!   checksum (385, the sum of the squares 1..=10).
//! * `init-async(n, label)` (async) yields to the host once, then stores `n`
//!   and `label`; it returns `err(label)` when `n` is 0 (after storing).
//! * `get` (sync) and `get-async` (async) both return
//!   `calls=C sync=S n=N label=L`, for example `calls=0 sync=0 n=0 label=`
//!   before any init and `calls=2 sync=385 n=5 label=x` after both inits.
//! * `init-calls` counts runs of either init in this instance.

extern crate wit_bindgen_async as wit_bindgen;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/async-exports",
});

static INIT_CALLS: AtomicU32 = AtomicU32::new(0);
static SYNC: AtomicU32 = AtomicU32::new(0);
static STATE: Mutex<(u32, String)> = Mutex::new((0, String::new()));

fn describe() -> String {
    let state = STATE.lock().unwrap();
    format!(
        "calls={} sync={} n={} label={}",
        INIT_CALLS.load(Ordering::SeqCst),
        SYNC.load(Ordering::SeqCst),
        state.0,
        state.1
    )
}

struct AsyncExports;

impl Guest for AsyncExports {
    fn component_init() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        let table: Vec<u32> = (1..=10).map(|i| i * i).collect();
        SYNC.store(table.iter().sum(), Ordering::SeqCst);
    }

    async fn init_async(n: u32, label: String) -> Result<(), String> {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        // Back to the host once (the callback returns YIELD), so the init
        // really suspends.
        wit_bindgen::yield_async().await;
        *STATE.lock().unwrap() = (n, label.clone());
        if n == 0 { Err(label) } else { Ok(()) }
    }

    fn get() -> String {
        describe()
    }

    async fn get_async() -> String {
        describe()
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }
}

export!(AsyncExports);
