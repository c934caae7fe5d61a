//! Differential testing: for a fixed range of seeds, generate a component
//! around a wasm-smith module, run it as is and pre-initialized, and compare
//! every call's result (traps included), the memories and globals, and the
//! tables and funcref globals (sizes, each slot null or of which function
//! type, and a call of every function in them) after init and at the end.
//! Init changes tables through the module's code and the glue's writes.
//! Init and some exports are lifted with the async ABI (callback, callback
//! yielding, stackful). The oracle lives in `fuzz/src/oracle.rs`, shared
//! with the `differential` fuzz target. Two tests check the check: a
//! pre-initializer that runs init twice must fail it
//! (`a_wrong_snapshot_fails_the_check`), and so must one whose snapshot
//! loses what init did to tables (`a_snapshot_losing_table_changes_fails_the_check`).
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

use crate::seeds::{Tally, common, seeds};
use arbitrary::Unstructured;
use component_init::{GlobalValue, InstrumentOptions, Probe, State, Value, WasmtimeRuntime};
use oracle::{Lift, Stats, Verdict};
use std::ops::Range;

/// Seeds run by default: enough cases for a broad sweep, few enough for a
/// debug `cargo test` on two cores (about 50 ms of CPU per case).
const DEFAULT_SEEDS: Range<u64> = 0..600;

/// Hostile cases are cheap (no Wasm runs).
const DEFAULT_HOSTILE_SEEDS: Range<u64> = 0..2000;

const TALLY: Tally<Stats> = Tally {
    merge: Stats::merge,
    cases: |s| &mut s.cases,
};

#[test]
fn differential() {
    let seeds = seeds("COMPONENT_INIT_DIFF_SEEDS", DEFAULT_SEEDS);
    let stats = crate::seeds::run(
        "differential",
        seeds.clone(),
        TALLY,
        |stats: &mut Stats, seed| {
            let bytes = oracle::seed_bytes(seed);
            let (verdict, steps) = oracle::check(&mut Unstructured::new(&bytes))?;
            stats.record(&verdict, steps);
            Ok::<_, oracle::Failure>(())
        },
    );
    // The check must keep comparing: a generator or harness change that
    // makes most cases skip would make this test vacuous.
    assert!(
        stats.compared * 2 >= stats.cases,
        "only {} of {} cases were compared:\n{stats}",
        stats.compared,
        stats.cases
    );
    // Over the default range, and any as long: most compared cases snapshot
    // state of the wasm-smith instances, init changes tables or funcref
    // globals in some, the functions in them are called, and every shape
    // of async lift is compared (600 seeds: 479 compared, 459 of them with
    // such state, 54 with tables changed, 354 calls of what the tables
    // hold, each async shape of init about 90 times, 279 async calls).
    if seeds.end - seeds.start >= DEFAULT_SEEDS.end - DEFAULT_SEEDS.start {
        assert!(
            stats.tables_changed >= 20,
            "init changed tables or funcref globals in only {} compared cases:\n{stats}",
            stats.tables_changed
        );
        assert!(
            stats.ref_calls >= 100,
            "only {} calls of the functions in tables compared:\n{stats}",
            stats.ref_calls
        );
        assert!(
            stats.changed_module * 4 >= stats.compared * 3,
            "init changed the instances' state in only {} of {} compared cases:\n{stats}",
            stats.changed_module,
            stats.compared
        );
        for lift in [Lift::Sync].into_iter().chain(Lift::ASYNC) {
            let n = stats.init_lifts.get(lift.name()).copied().unwrap_or(0);
            assert!(
                n >= 20,
                "init lifted {} compared {n} times:\n{stats}",
                lift.name()
            );
        }
        assert!(
            stats.async_calls >= 100,
            "only {} calls of async-lifted exports compared:\n{stats}",
            stats.async_calls
        );
    }
}

/// A pre-initializer that runs init twice (once keeping the init export,
/// then again on that output): its snapshots hold the wrong state, and the
/// check must fail every case it would otherwise compare (but those where
/// the second init fails in a documented way, or overflows the stack).
#[test]
fn a_wrong_snapshot_fails_the_check() {
    let twice = |component: &[u8]| {
        let keep = InstrumentOptions {
            keep_init_func: true,
            ..InstrumentOptions::default()
        };
        let once = component_init::initialize_with_wasmtime(component, &keep)?;
        component_init::initialize_with_wasmtime(&once, &InstrumentOptions::default())
    };
    let mut caught = 0;
    let mut missed = Vec::new();
    for seed in 0..40 {
        let bytes = oracle::seed_bytes(seed);
        let right = oracle::check(&mut Unstructured::new(&bytes));
        if !matches!(right, Ok((Verdict::Compared { .. }, _))) {
            continue;
        }
        match oracle::check_with(&mut Unstructured::new(&bytes), &twice) {
            Err(_) => caught += 1,
            Ok((Verdict::Skipped(why), _))
                if why.contains("(documented)") || why.contains("stack") => {}
            Ok(verdict) => missed.push((seed, verdict)),
        }
    }
    println!("a wrong snapshot: {caught} cases caught");
    assert!(missed.is_empty(), "not caught: {missed:?}");
    assert!(caught >= 20, "only {caught} cases caught");
}

/// A pre-initializer whose snapshot loses what init did to tables and
/// funcref globals: component-init's, with the probe that records a table
/// change cleared, so that the output starts with the tables as
/// instantiation leaves them (as if init had not changed them).
fn losing_table_changes(component: &[u8]) -> anyhow::Result<Vec<u8>> {
    let instrumented = component_init::instrument(component, &InstrumentOptions::default())?;
    let mut snapshot = WasmtimeRuntime::new()?.take_snapshot(&instrumented)?;
    let plan = &instrumented.plan;
    for (accessor, value) in plan.accessors.iter().zip(&mut snapshot.values) {
        if let State::Probe {
            probe: Probe::TablesChanged,
            ..
        } = accessor.state
        {
            *value = Value::Global(GlobalValue::I32(0));
        }
    }
    plan.apply(component, &snapshot)
}

/// Every case of the first seeds in which init changes what the observers
/// see of tables and funcref globals fails the check with a snapshot that
/// loses those changes, at an observation of the tables.
#[test]
fn a_snapshot_losing_table_changes_fails_the_check() {
    let mut caught = Vec::new();
    let mut missed = Vec::new();
    for seed in DEFAULT_SEEDS {
        let bytes = oracle::seed_bytes(seed);
        let right = oracle::check(&mut Unstructured::new(&bytes));
        if !matches!(
            right,
            Ok((
                Verdict::Compared {
                    tables_changed: true,
                    ..
                },
                _
            ))
        ) {
            continue;
        }
        match oracle::check_with(&mut Unstructured::new(&bytes), &losing_table_changes) {
            Err(failure) if failure.what.contains("-refs`) differs") => caught.push(seed),
            other => missed.push((seed, other.map_err(|f| f.what))),
        }
        if caught.len() == 6 {
            break;
        }
    }
    println!("a snapshot losing table changes: caught in seeds {caught:?}");
    assert!(missed.is_empty(), "not caught at a table: {missed:?}");
    assert!(caught.len() == 6, "only {} cases caught", caught.len());
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
