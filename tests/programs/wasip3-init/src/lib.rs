//! An async init function that calls WASI 0.3 (through the `wasip3` crate).
//!
//! * `init` waits 10 ms on the WASI 0.3 monotonic clock (`wait-for`, an
//!   async import), reads the system (wall) clock, then looks `GREETING` up in
//!   `wasi:cli/environment@0.3` `get-environment`. It returns
//!   `err("environment variable GREETING is not set")` when it is missing
//!   (the clock is stored and the call counted anyway), else stores it.
//! * `greeting` returns the stored `GREETING`, or `not initialized`.
//! * `clock` returns the system clock init read, as `SECONDS.NANOSECONDS`
//!   (nanoseconds zero-padded to 9 digits), or `none`.
//! * `init-calls` counts runs of `init` in this instance.
//! * `sleep-long` waits 30 s on the monotonic clock, for timeout tests.

extern crate wit_bindgen_async as wit_bindgen;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use wasip3::clocks::{monotonic_clock, system_clock};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/wasip3-init",
});

static INIT_CALLS: AtomicU32 = AtomicU32::new(0);
static GREETING: Mutex<Option<String>> = Mutex::new(None);
static CLOCK: Mutex<Option<(i64, u32)>> = Mutex::new(None);

const MILLISECOND: u64 = 1_000_000;

struct Wasip3Init;

impl Guest for Wasip3Init {
    async fn init() -> Result<(), String> {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        monotonic_clock::wait_for(10 * MILLISECOND).await;
        let now = system_clock::now();
        *CLOCK.lock().unwrap() = Some((now.seconds, now.nanoseconds));
        let greeting = wasip3::cli::environment::get_environment()
            .into_iter()
            .find_map(|(key, value)| (key == "GREETING").then_some(value))
            .ok_or_else(|| "environment variable GREETING is not set".to_string())?;
        *GREETING.lock().unwrap() = Some(greeting);
        Ok(())
    }

    fn greeting() -> String {
        GREETING
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "not initialized".to_string())
    }

    fn clock() -> String {
        match *CLOCK.lock().unwrap() {
            Some((seconds, nanoseconds)) => format!("{seconds}.{nanoseconds:09}"),
            None => "none".to_string(),
        }
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }

    async fn sleep_long() {
        monotonic_clock::wait_for(30_000 * MILLISECOND).await;
    }
}

export!(Wasip3Init);
