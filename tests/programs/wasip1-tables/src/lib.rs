//! A wasip1 module (made into a component with the preview1 adapter by the
//! test): init builds a table of Collatz chain lengths and reads the
//! `TABLE_LABEL` environment variable through the adapter.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/wasip1-tables",
});

const LIMIT: u32 = 200_000;

struct Tables {
    label: String,
    lengths: Vec<u16>,
    longest: BTreeMap<u16, u32>,
}

static TABLES: OnceLock<Tables> = OnceLock::new();
static INIT_CALLS: AtomicU32 = AtomicU32::new(0);

fn build() -> Tables {
    INIT_CALLS.fetch_add(1, Ordering::SeqCst);
    let label = std::env::var("TABLE_LABEL").unwrap_or_else(|_| "<unset>".to_string());
    let mut lengths = vec![0u16; LIMIT as usize];
    let mut longest = BTreeMap::new();
    for start in 1..LIMIT {
        let (mut n, mut steps) = (u64::from(start), 0u16);
        while n != 1 {
            if n < u64::from(start) {
                steps += lengths[n as usize];
                break;
            }
            n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
            steps += 1;
        }
        lengths[start as usize] = steps;
        longest.entry(steps).or_insert(start);
    }
    Tables {
        label,
        lengths,
        longest,
    }
}

fn tables() -> &'static Tables {
    TABLES.get_or_init(build)
}

struct Wasip1Tables;

impl Guest for Wasip1Tables {
    fn component_init() {
        tables();
    }

    fn lookup(n: u32) -> String {
        let tables = tables();
        let steps = tables.lengths.get(n as usize).copied();
        let first = steps.and_then(|s| tables.longest.get(&s).copied());
        format!(
            "{}: n={n} steps={steps:?} first-with-as-many={first:?} distinct={}",
            tables.label,
            tables.longest.len()
        )
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }
}

export!(Wasip1Tables);
