//! Init reads every nondeterministic input WASI 0.2 offers and keeps them as
//! a text report, for tests of reproducible (deterministic) pre-init.
//!
//! `component-init` reads `wasi:clocks/wall-clock.now`,
//! `wasi:clocks/monotonic-clock.now`, 16 bytes of
//! `wasi:random/random.get-random-bytes`, 8 bytes of
//! `wasi:random/insecure.get-insecure-random-bytes`,
//! `wasi:random/insecure-seed.insecure-seed`, the entry names of the
//! preopened directory `/data` in the order `read_dir` returns them (not
//! sorted), and the mtime of `/data/a.txt` if it exists. It then closes the
//! preopened directories (`__wasilibc_reset_preopens`) so that it holds no
//! WASI resource when it returns.
//!
//! `report` returns `key=value` lines, in this order (bytes in hex):
//! `wall=S.NNNNNNNNN`, `monotonic=N`, `random=HEX32`, `insecure=HEX16`,
//! `seed=A,B`, `entries=NAME,NAME,...` (or `entries=<error ...>`),
//! `mtime=S.NNNNNNNNN` (or `mtime=none`), `calls=C`; before init it returns
//! `not initialized`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::UNIX_EPOCH;
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::random::{insecure, insecure_seed, random};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/reproducible",
});

static INIT_CALLS: AtomicU32 = AtomicU32::new(0);
static REPORT: Mutex<Option<String>> = Mutex::new(None);

unsafe extern "C" {
    /// wasi-libc: forget (and close) the preopened directories.
    fn __wasilibc_reset_preopens();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn entries() -> String {
    match std::fs::read_dir("/data") {
        Ok(dir) => dir
            .map(|entry| match entry {
                Ok(entry) => entry.file_name().to_string_lossy().into_owned(),
                Err(e) => format!("<error {e}>"),
            })
            .collect::<Vec<_>>()
            .join(","),
        Err(e) => format!("<error {e}>"),
    }
}

fn mtime() -> String {
    std::fs::metadata("/data/a.txt")
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
        .unwrap_or_else(|| "none".to_string())
}

struct Reproducible;

impl Guest for Reproducible {
    fn component_init() {
        let calls = INIT_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let wall = wall_clock::now();
        let monotonic = monotonic_clock::now();
        let random = random::get_random_bytes(16);
        let insecure = insecure::get_insecure_random_bytes(8);
        let (seed_a, seed_b) = insecure_seed::insecure_seed();
        let entries = entries();
        let mtime = mtime();
        unsafe { __wasilibc_reset_preopens() };
        *REPORT.lock().unwrap() = Some(format!(
            "wall={}.{:09}\nmonotonic={monotonic}\nrandom={}\ninsecure={}\n\
             seed={seed_a},{seed_b}\nentries={entries}\nmtime={mtime}\ncalls={calls}",
            wall.seconds,
            wall.nanoseconds,
            hex(&random),
            hex(&insecure),
        ));
    }

    fn report() -> String {
        REPORT
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "not initialized".to_string())
    }
}

export!(Reproducible);
