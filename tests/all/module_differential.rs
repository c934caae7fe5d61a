//! Differential testing of core modules: for a fixed range of seeds,
//! generate a wasm-smith core module with an init function, run it as is
//! (instantiate, init) and pre-initialized by `initialize_module`, and
//! compare every export's results (traps included) and every exported
//! memory, global and table. The oracle lives in
//! `fuzz/src/module_oracle.rs`, shared with the `module_differential` fuzz
//! target; the counterpart of `differential.rs` for components.
//! `a_wrong_snapshot_fails_the_module_check` checks the check.
//!
//! The hostile-input tests feed single bit flips of a valid module (through
//! `initialize_module_with_wasmtime`), arbitrary bytes after a core
//! module's header, and mutated generated modules to the core-module
//! pipeline: never a panic, and every output validates.
//!
//! `COMPONENT_INIT_MODULE_DIFF_SEEDS=START..END` (and
//! `COMPONENT_INIT_MODULE_HOSTILE_SEEDS`) run other ranges of seeds; run
//! with `--nocapture` to see the tallies.

#[path = "../../fuzz/src/module_oracle.rs"]
mod module_oracle;

use crate::seeds::{Tally, common, seeds};
use arbitrary::Unstructured;
use component_init::ModuleOptions;
use module_oracle::{InitKind, Stats, Verdict};
use std::ops::Range;

/// Seeds run by default: a broad sweep in about 10 s of a debug `cargo
/// test` on two cores (about 8 ms of CPU per case).
const DEFAULT_SEEDS: Range<u64> = 0..1200;

/// Hostile cases run by default.
const DEFAULT_HOSTILE_SEEDS: Range<u64> = 0..1000;

const TALLY: Tally<Stats> = Tally {
    merge: Stats::merge,
    cases: |s| &mut s.cases,
};

#[test]
fn module_differential() {
    let seeds = seeds("COMPONENT_INIT_MODULE_DIFF_SEEDS", DEFAULT_SEEDS);
    let name = "module differential";
    let stats = crate::seeds::run(name, seeds.clone(), TALLY, |stats: &mut Stats, seed| {
        let bytes = module_oracle::seed_bytes(seed);
        let (verdict, steps) = module_oracle::check(&mut Unstructured::new(&bytes))?;
        stats.record(&verdict, steps);
        Ok::<_, module_oracle::Failure>(())
    });
    // The check must keep comparing: a generator or harness change that
    // makes most cases skip would make this test vacuous.
    // (Seeds 0..1200: 885 of 1200 compared; 1200..6000: 3475 of 4800.)
    assert!(
        stats.compared * 5 >= stats.cases * 3,
        "only {} of {} cases were compared:\n{stats}",
        stats.compared,
        stats.cases
    );
    // Over the default range, and any as long: init changes the module's
    // own state in most compared cases (799 of 885 over 0..1200), and every
    // kind of init, kept init exports and renames are compared.
    if seeds.end - seeds.start >= DEFAULT_SEEDS.end - DEFAULT_SEEDS.start {
        assert!(
            stats.changed_module * 5 >= stats.compared * 4,
            "init changed the module's state in only {} of {} compared cases:\n{stats}",
            stats.changed_module,
            stats.compared
        );
        for init in [
            InitKind::Appended,
            InitKind::OldName,
            InitKind::WithInitialize,
            InitKind::Exported,
        ] {
            let n = stats.inits.get(init.name()).copied().unwrap_or(0);
            assert!(n >= 10, "init {} compared {n} times:\n{stats}", init.name());
        }
        assert!(
            stats.kept >= 30,
            "init kept in {} cases:\n{stats}",
            stats.kept
        );
        assert!(
            stats.renamed >= 30,
            "an export renamed in {} cases:\n{stats}",
            stats.renamed
        );
        assert!(
            !stats.refused.is_empty() && !stats.error_checked.is_empty(),
            "no case refused or error-checked:\n{stats}"
        );
    }
}

/// A pre-initializer that runs init twice (once keeping the init export,
/// then again on that output): every compared case whose init is appended
/// (it folds into `harness-acc`, so running it twice always shows) must
/// fail the check.
#[test]
fn a_wrong_snapshot_fails_the_module_check() {
    let twice = |module: &[u8], options: &ModuleOptions| {
        let keep = ModuleOptions {
            keep_init_func: true,
            ..options.clone()
        };
        let once = module_oracle::default_pre_init(module, &keep)?;
        // The output of the first run exports init under its own name (or a
        // rename's): name it.
        let init = match &options.init_func {
            Some(name) => name.clone(),
            None if once_exports(&once, "wizer-initialize") => "wizer-initialize".into(),
            None => "wizer.initialize".into(),
        };
        let again = ModuleOptions {
            init_func: Some(init),
            renames: Vec::new(),
            ..options.clone()
        };
        module_oracle::default_pre_init(&once, &again)
    };
    let mut caught = 0;
    let mut missed = Vec::new();
    for seed in 0..40 {
        let bytes = module_oracle::seed_bytes(seed);
        let right = module_oracle::check(&mut Unstructured::new(&bytes));
        let Ok((Verdict::Compared { init, .. }, _)) = right else {
            continue;
        };
        match module_oracle::check_with(&mut Unstructured::new(&bytes), &twice) {
            Err(_) => caught += 1,
            Ok(_) if init == InitKind::Exported => {}
            Ok((Verdict::Skipped(why), _)) if why.contains("stack") => {}
            Ok(verdict) => missed.push((seed, verdict)),
        }
    }
    println!("a wrong module snapshot: {caught} cases caught");
    assert!(missed.is_empty(), "not caught: {missed:?}");
    assert!(caught >= 20, "only {caught} cases caught");
}

fn once_exports(module: &[u8], name: &str) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(module)
        .any(|p| match p {
            Ok(wasmparser::Payload::ExportSection(reader)) => {
                reader.into_iter().any(|e| e.is_ok_and(|e| e.name == name))
            }
            _ => false,
        })
}

/// Every flip of bits 0, 3 and 7 of every byte of a valid module with a
/// `wizer-initialize` export, through `initialize_module_with_wasmtime`
/// (Wizer's defaults): a result or an error, never a panic; every output
/// validates. (The module has no loops or branches, so no flip makes init
/// run long.)
#[test]
fn every_single_bit_flip_of_a_module_is_handled_without_panicking() {
    let input = wat::parse_str(module_oracle::HOSTILE_SEED).unwrap();
    let pre_init =
        |m: &[u8], o: &ModuleOptions| component_init::initialize_module_with_wasmtime(m, o);
    let options = ModuleOptions::default();
    let (mut ok, mut rejected) = (0, 0);
    assert_eq!(
        module_oracle::check_hostile_output(&input, &options, &pre_init),
        Ok(true),
        "the unflipped module pre-initializes"
    );
    for at in 0..input.len() {
        for bit in [0, 3, 7] {
            let mut damaged = input.clone();
            damaged[at] ^= 1 << bit;
            match module_oracle::check_hostile_output(&damaged, &options, &pre_init) {
                Ok(true) => ok += 1,
                Ok(false) => rejected += 1,
                Err(bug) => panic!("flip of bit {bit} at byte {at}: {bug}"),
            }
        }
    }
    println!("single bit flips of a module: {ok} pre-initialized, {rejected} rejected");
    // Both outcomes occur: flips in the header are rejected, flips in the
    // data segments' bytes are not.
    assert!(rejected > 0, "no flip was rejected");
    assert!(ok > 0, "every flip was rejected");
}

/// Arbitrary bytes after a core module's header, generated modules with
/// init, mutated or not, and mutations of a hand-written one, through the
/// core-module pipeline (with fuel: a mutation may loop); and arbitrary
/// bytes after the header through `initialize_module_with_wasmtime`.
#[test]
fn hostile_modules() {
    let mut exercised = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for seed in seeds("COMPONENT_INIT_MODULE_HOSTILE_SEEDS", DEFAULT_HOSTILE_SEEDS) {
        let bytes = module_oracle::seed_bytes(seed);
        let mut u = Unstructured::new(&bytes);
        match module_oracle::check_hostile(&mut u, &module_oracle::default_pre_init) {
            Ok((what, accepted)) => *exercised.entry((what, accepted)).or_insert(0) += 1,
            Err(bug) => failures.push(format!("seed {seed}: {bug}")),
        }
        // Wizer's defaults, arbitrary bytes after the header.
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend_from_slice(&bytes[..bytes.len().min(64 + seed as usize % 512)]);
        let plain =
            |m: &[u8], o: &ModuleOptions| component_init::initialize_module_with_wasmtime(m, o);
        match module_oracle::check_hostile_output(&module, &ModuleOptions::default(), &plain) {
            Ok(accepted) => {
                *exercised
                    .entry(("arbitrary bytes, default runtime", accepted))
                    .or_insert(0) += 1
            }
            Err(bug) => failures.push(format!("seed {seed}, arbitrary bytes: {bug}")),
        }
    }
    println!("hostile modules (kind, accepted): {exercised:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let count = |what: &str, accepted: bool| exercised.get(&(what, accepted)).copied().unwrap_or(0);
    for what in [
        "arbitrary bytes",
        "mutated seed module",
        "generated module",
        "mutated generated module",
    ] {
        let n = count(what, true) + count(what, false);
        assert!(n > 20, "{what}: {n} cases: {exercised:?}");
    }
    // Valid modules are accepted, most mutations are not, and some are.
    assert!(count("generated module", true) > 20, "{exercised:?}");
    assert!(
        count("mutated generated module", false) > 20,
        "{exercised:?}"
    );
    assert!(
        count("mutated seed module", true) + count("mutated generated module", true) > 0,
        "no mutation was accepted: {exercised:?}"
    );
}

/// Found by this oracle (fixed in `ca5accc`): an active element segment
/// is dropped at instantiation anyway, so `elem.drop` of it during init
/// changes nothing; the output's segment was made an empty passive one, and
/// its table stayed null.
#[test]
fn elem_drop_of_an_active_segment_during_init_keeps_the_table() {
    let module = wat::parse_str(
        r#"(module
  (table (export "t") 1 funcref)
  (func $f)
  (elem (table 0) (i32.const 0) func $f)
  (func (export "wizer-initialize") (elem.drop 0))
  (func (export "is-null") (result i32) (ref.is_null (table.get (i32.const 0)))))"#,
    )
    .unwrap();
    let output =
        component_init::initialize_module_with_wasmtime(&module, &ModuleOptions::default())
            .unwrap();
    let engine = wasmtime::Engine::default();
    let mut store = wasmtime::Store::new(&engine, ());
    let output = wasmtime::Module::new(&engine, &output).unwrap();
    let instance = wasmtime::Instance::new(&mut store, &output, &[]).unwrap();
    let is_null = instance
        .get_typed_func::<(), i32>(&mut store, "is-null")
        .unwrap();
    // The original, initialized at run time, answers 0.
    assert_eq!(is_null.call(&mut store, ()).unwrap(), 0);
}

/// Found by this oracle (fixed in `ca5accc`): `elem.drop` of a declarative
/// segment during init emptied it, and the output's `ref.func` no longer
/// validated.
#[test]
fn elem_drop_of_a_declarative_segment_during_init_keeps_ref_func_valid() {
    assert_pre_initializes(
        r#"(module
  (func $f)
  (elem declare func $f)
  (func (export "wizer-initialize") (elem.drop 0))
  (func (export "g") (result funcref) (ref.func $f)))"#,
    );
}

/// `initialize_module_with_wasmtime` (Wizer's defaults) accepts `wat`.
fn assert_pre_initializes(wat: &str) {
    let module = wat::parse_str(wat).unwrap();
    let result =
        component_init::initialize_module_with_wasmtime(&module, &ModuleOptions::default());
    assert!(result.is_ok(), "{:#}", result.unwrap_err());
}

/// Found by the oracle: no element section, init writes a funcref global
/// (or a table), and a data section. The output gets an element section
/// before the data section, whose place among the sections must follow (it
/// was taken before, and the data were written over the code section).
#[test]
fn init_writing_a_funcref_global_of_a_module_with_data_and_no_elements() {
    for module in [
        r#"(module
  (global $g (mut funcref) (ref.func $f))
  (func $f)
  (func (export "wizer-initialize") (global.set $g (ref.func $f)))
  (data "x"))"#,
        r#"(module
  (table 1 funcref)
  (global funcref (ref.func $f))
  (func $f)
  (func (export "wizer-initialize") (table.set (i32.const 0) (ref.func $f)))
  (data "x"))"#,
    ] {
        assert_pre_initializes(module);
    }
}

/// Found by the oracle: `elem.drop` of a passive segment during init
/// empties it in the output, but it was what declared `$f` for `ref.func`;
/// a declarative segment keeps `$f` declared.
#[test]
fn elem_drop_of_a_passive_segment_during_init_keeps_ref_func_valid() {
    for module in [
        r#"(module
  (func $f)
  (elem $e func $f)
  (func (export "wizer-initialize") (elem.drop $e))
  (func (export "g") (result funcref) (ref.func $f)))"#,
        r#"(module
  (func $f)
  (elem $e funcref (ref.func $f))
  (func (export "wizer-initialize") (elem.drop $e))
  (func (export "g") (result funcref) (ref.func $f)))"#,
    ] {
        assert_pre_initializes(module);
    }
}
