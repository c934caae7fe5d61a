//! Differential testing: for a fixed range of seeds, generate a component
//! around a wasm-smith module, run it as is and pre-initialized, and compare
//! every call's result (traps included) and the final memories and globals.
//! The oracle lives in `fuzz/src/oracle.rs`, shared with the `differential`
//! fuzz target.
//!
//! `hostile_inputs` feeds arbitrary bytes, mutated components, arbitrary
//! snapshots and tampered plans to parse, instrument and `Plan::apply`
//! (`fuzz/src/hostile.rs`, shared with the `no_panic` fuzz target).
//!
//! `COMPONENT_INIT_DIFF_SEEDS=START..END` (and
//! `COMPONENT_INIT_HOSTILE_SEEDS`) run other ranges of seeds; run with
//! `--nocapture` to see the tallies.

#[path = "../../fuzz/src/hostile.rs"]
mod hostile;
#[path = "../../fuzz/src/oracle.rs"]
mod oracle;

use arbitrary::Unstructured;
use oracle::{Failure, Stats};
use std::ops::Range;

/// Seeds run by default: enough cases for a broad sweep, few enough for a
/// debug `cargo test` on two cores (about 40 ms of CPU per case).
const DEFAULT_SEEDS: Range<u64> = 0..600;

/// Hostile cases are cheap (no Wasm runs).
const DEFAULT_HOSTILE_SEEDS: Range<u64> = 0..2000;

/// The seeds `var` names (`START..END`), or `default`.
fn seeds(var: &str, default: Range<u64>) -> Range<u64> {
    match std::env::var(var) {
        Ok(s) => {
            let (a, b) = s.split_once("..").expect("seeds are given as START..END");
            a.parse().expect("START is a number")..b.parse().expect("END is a number")
        }
        Err(_) => default,
    }
}

fn run(seeds: impl Iterator<Item = u64>) -> (Stats, Vec<(u64, Failure)>) {
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for seed in seeds {
        let bytes = oracle::seed_bytes(seed);
        match oracle::check(&mut Unstructured::new(&bytes)) {
            Ok((verdict, steps)) => stats.record(&verdict, steps),
            Err(failure) => {
                stats.cases += 1;
                failures.push((seed, failure));
            }
        }
    }
    (stats, failures)
}

#[test]
fn differential() {
    let seeds = seeds("COMPONENT_INIT_DIFF_SEEDS", DEFAULT_SEEDS);
    let start = std::time::Instant::now();
    // Two workers, one per core; the seeds alternate between them.
    let (mut stats, mut failures) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                let seeds = seeds.clone();
                s.spawn(move || run(seeds.filter(move |seed| seed % 2 == w)))
            })
            .collect();
        let mut stats = Stats::default();
        let mut failures = Vec::new();
        for worker in workers {
            let (s, f) = worker.join().expect("a worker panicked");
            stats.merge(s);
            failures.extend(f);
        }
        (stats, failures)
    });
    failures.sort_by_key(|(seed, _)| *seed);
    stats.cases = stats.cases.max(failures.len());
    println!(
        "differential, seeds {seeds:?}, {:.1?}:\n{stats}",
        start.elapsed()
    );
    if let Some((seed, first)) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|(s, _)| *s).collect();
        panic!(
            "{} of {} cases failed (seeds {seeds:?}); seed {seed}:\n{first}",
            failures.len(),
            stats.cases
        );
    }
    // The check must keep comparing: a generator or harness change that
    // makes most cases skip would make this test vacuous.
    assert!(
        stats.compared * 2 >= stats.cases,
        "only {} of {} cases were compared:\n{stats}",
        stats.compared,
        stats.cases
    );
}

#[test]
fn hostile_inputs() {
    let mut exercised = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for seed in seeds("COMPONENT_INIT_HOSTILE_SEEDS", DEFAULT_HOSTILE_SEEDS) {
        let bytes = oracle::seed_bytes(seed);
        match hostile::check(&mut Unstructured::new(&bytes)) {
            Ok(what) => *exercised.entry(what).or_insert(0) += 1,
            Err(bug) => failures.push(format!("seed {seed}: {bug}")),
        }
    }
    println!("hostile inputs: {exercised:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // every kind of input must have been exercised
    for kind in [
        "arbitrary bytes",
        "valid component",
        "mutated component",
        "tampered plan",
    ] {
        assert!(
            exercised.get(kind).copied().unwrap_or(0) > 10,
            "{kind}: {exercised:?}"
        );
    }
}
