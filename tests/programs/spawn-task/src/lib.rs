//! Async init functions that leave work behind after they return, through
//! `wit_bindgen::spawn_local` (tasks spawned from an async export run inside
//! the same component-model task, after its `task.return`).
//!
//! * `init-completes` spawns a task that yields to the host 3 times and then
//!   sets `value` to 42, and returns (calls `task.return`) before that task
//!   runs; the component task exits once the spawned task is done.
//! * `init-stuck` makes a `stream<u8>`, keeps its writer in a static (never
//!   written to, never dropped) and spawns a task that reads from the reader:
//!   it returns, but its component task never exits.
//! * `init-sleeps` spawns a task that sleeps 3 seconds in the host (WASI
//!   0.3's `wait-for`) and then sets `value` to 7, and returns first.
//! * `value` returns what the `init-completes` task wrote (0 until then).
//! * `init-calls` counts runs of either init in this instance.
//! * `empty-stream` returns a stream whose writer is already dropped; it is
//!   only there so the world has a `stream<u8>` (and the bindings
//!   `wit_stream`).

extern crate wit_bindgen_async as wit_bindgen;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use wit_bindgen::{StreamReader, StreamWriter};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/spawn-task",
});

static INIT_CALLS: AtomicU32 = AtomicU32::new(0);
static VALUE: AtomicU32 = AtomicU32::new(0);

/// The writer `init-stuck` keeps, so its reader never sees the end.
struct Kept(#[allow(dead_code)] StreamWriter<u8>);
// Guests are single-threaded.
unsafe impl Send for Kept {}
static KEPT_WRITER: Mutex<Option<Kept>> = Mutex::new(None);

struct SpawnTask;

impl Guest for SpawnTask {
    async fn init_completes() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        // Dropping the handle detaches the task.
        drop(wit_bindgen::spawn_local(async {
            for _ in 0..3 {
                wit_bindgen::yield_async().await;
            }
            VALUE.store(42, Ordering::SeqCst);
        }));
    }

    async fn init_stuck() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        let (writer, mut reader) = wit_stream::new::<u8>();
        *KEPT_WRITER.lock().unwrap() = Some(Kept(writer));
        drop(wit_bindgen::spawn_local(async move {
            // Nothing is ever written and the writer is never dropped.
            let (_result, _bytes) = reader.read(Vec::with_capacity(1)).await;
            VALUE.store(u32::MAX, Ordering::SeqCst);
        }));
    }

    async fn init_sleeps() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        drop(wit_bindgen::spawn_local(async {
            wasip3::clocks::monotonic_clock::wait_for(3_000_000_000).await;
            VALUE.store(7, Ordering::SeqCst);
        }));
    }

    fn value() -> u32 {
        VALUE.load(Ordering::SeqCst)
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }

    fn empty_stream() -> StreamReader<u8> {
        let (writer, reader) = wit_stream::new::<u8>();
        drop(writer);
        reader
    }
}

export!(SpawnTask);
