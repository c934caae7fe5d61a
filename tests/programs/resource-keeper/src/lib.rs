//! Init functions that make own handles of a resource the guest exports
//! itself (`counter` of `test-guests:resources/counters`), through
//! `Counter::new`, i.e. the canonical `resource.new`, so the instance's handle
//! table holds an entry.
//!
//! * `init-keep` makes `counter(7)` and keeps the own handle in a static:
//!   after it the handle table is not empty.
//! * `init-drop` makes `counter(9)`, reads it, stores 9 as a plain number and
//!   drops the handle (`resource.drop`, which runs the destructor).
//! * `value` returns the kept counter's value when there is one, else the
//!   number `init-drop` stored, else 0.
//! * `init-calls` counts runs of either init in this instance.
//! * `counter` itself: the constructor stores `start`, `get` returns it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/resource-keeper",
});

use exports::test_guests::resources::counters::{Counter, Guest as CountersGuest, GuestCounter};

static INIT_CALLS: AtomicU32 = AtomicU32::new(0);
static DROPPED_VALUE: AtomicU32 = AtomicU32::new(0);
static KEPT: Mutex<Option<Counter>> = Mutex::new(None);

/// The representation behind a `counter` handle.
struct MyCounter {
    start: u32,
}

impl GuestCounter for MyCounter {
    fn new(start: u32) -> MyCounter {
        MyCounter { start }
    }

    fn get(&self) -> u32 {
        self.start
    }
}

struct ResourceKeeper;

impl CountersGuest for ResourceKeeper {
    type Counter = MyCounter;
}

impl Guest for ResourceKeeper {
    fn init_keep() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        *KEPT.lock().unwrap() = Some(Counter::new(MyCounter { start: 7 }));
    }

    fn init_drop() {
        INIT_CALLS.fetch_add(1, Ordering::SeqCst);
        let counter = Counter::new(MyCounter { start: 9 });
        DROPPED_VALUE.store(counter.get::<MyCounter>().get(), Ordering::SeqCst);
        drop(counter);
    }

    fn value() -> u32 {
        match &*KEPT.lock().unwrap() {
            Some(counter) => counter.get::<MyCounter>().get(),
            None => DROPPED_VALUE.load(Ordering::SeqCst),
        }
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }
}

export!(ResourceKeeper);
