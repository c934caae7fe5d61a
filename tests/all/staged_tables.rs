//! Staged pre-initialization ([`Plan::retarget_from`]) carrying the tables
//! and funcref globals that init changed in stage 1 over to a stage 2 that
//! differs from it: other module and instance order, an extra module, a
//! host import that stage 1 stubs. The stage 2 output, without init, answers
//! as stage 1 does after init, every slot called through `call_indirect`;
//! and each way the stages can fail to correspond is refused by name.

use crate::support::*;
use anyhow::Result;
use component_init::{InstrumentOptions, Plan, Snapshot, WasmtimeRuntime};
use wasmtime::component::Val;

/// The application module: a table (exported) and a funcref global that
/// init changes, with an imported function among the slots.
const APP: &str = r#"
  (core module $app
    (type $ii (func (param i32) (result i32)))
    (import "host" "triple" (func $triple (type $ii)))
    (table $t (export "table") 1 funcref)
    (global $g (mut funcref) (ref.null func))
    (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
    SQUARE
    (elem (i32.const 0) func $double)
    (elem declare func $square $triple)
    (func (export "init")
      ;; [double, square, triple]
      (drop (table.grow (ref.func $square) (i32.const 2)))
      (table.set (i32.const 2) (ref.func $triple))
      (global.set $g (ref.func $square)))
    (func (export "call") (param i32 i32) (result i32)
      (if (ref.is_null (table.get (local.get 0)))
        (then (return (i32.const -999))))
      (call_indirect (type $ii) (local.get 1) (local.get 0)))
    (func (export "size") (result i32) (table.size))
    (func (export "via-global") (param i32) (result i32)
      (if (ref.is_null (global.get $g))
        (then (return (i32.const -999))))
      (call_ref $ii (local.get 0) (ref.cast (ref $ii) (global.get $g)))))"#;

/// `$square` as the application defines it.
const SQUARE: &str = "(func $square (type $ii) (i32.mul (local.get 0) (local.get 0)))";

/// A library that shares the application's table: its init runs the
/// application's, then grows the table with a function of its own.
const LIB: &str = r#"
  (core module $lib
    (type $ii (func (param i32) (result i32)))
    (import "app" "init" (func $app-init))
    (import "app" "table" (table $t 1 funcref))
    (func $neg (type $ii) (i32.sub (i32.const 0) (local.get 0)))
    (elem declare func $neg)
    (func (export "init")
      (call $app-init)
      ;; [double, square, triple, neg]
      (drop (table.grow (ref.func $neg) (i32.const 1)))))"#;

/// The exports both stages have; init is `$init`'s.
const EXPORTS: &str = r#"
  (func (export "component-init") (canon lift (core func $init "init")))
  (func (export "call") (param "slot" u32) (param "x" s32) (result s32)
    (canon lift (core func $a "call")))
  (func (export "size") (result u32) (canon lift (core func $a "size")))
  (func (export "via-global") (param "x" s32) (result s32)
    (canon lift (core func $a "via-global")))"#;

/// Stage 1: the host's `triple` is a stub module (module 0, instance 0);
/// the application is module 1 (instance 1), the library module 2
/// (instance 2).
fn stage1() -> Vec<u8> {
    wat(&format!(
        r#"
(component
  (core module $stub
    (func (export "triple") (param i32) (result i32)
      (i32.mul (local.get 0) (i32.const 3))))
  {app}
  {LIB}
  (core instance $s (instantiate $stub))
  (core instance $a (instantiate $app (with "host" (instance $s))))
  (core instance $init (instantiate $lib (with "app" (instance $a))))
  {EXPORTS})"#,
        app = APP.replace("SQUARE", SQUARE)
    ))
}

/// Stage 2: `triple` is a component import; the application is module 0,
/// an extra module without state module 1, the library module 2
/// (`lib`, when given); the core instances are the extra module's (0),
/// the host's bundle (1), the application's (2), the library's (3).
fn stage2(square: &str, lib: Option<&str>) -> Vec<u8> {
    let (lib_instance, init) = match lib {
        Some(_) => (
            r#"(core instance $init (instantiate $lib (with "app" (instance $a))))"#,
            "$init",
        ),
        None => ("", "$a"),
    };
    wat(&format!(
        r#"
(component
  (import "triple" (func $triple (param "x" s32) (result s32)))
  (core func $triple-core (canon lower (func $triple)))
  {app}
  (core module $extra (func (export "noop")))
  {lib}
  (core instance $e (instantiate $extra))
  (core instance $host (export "triple" (func $triple-core)))
  (core instance $a (instantiate $app (with "host" (instance $host))))
  {lib_instance}
  {exports})"#,
        app = APP.replace("SQUARE", square),
        lib = lib.unwrap_or(""),
        exports = EXPORTS.replace("$init", init),
    ))
}

/// Stage 2 module `m` takes the state of stage 1 module `MAP[m]`: the
/// application, the stub (neither has state), the library.
const MAP: [u32; 3] = [1, 0, 2];

fn map(m: u32) -> u32 {
    MAP.get(m as usize).copied().unwrap_or(u32::MAX)
}

/// Instruments `stage1`, runs init in Wasmtime and reads the snapshot.
fn snapshot_of(stage1: &[u8]) -> (Plan, Snapshot) {
    let instrumented = component_init::instrument(stage1, &InstrumentOptions::default()).unwrap();
    let snapshot = WasmtimeRuntime::new()
        .unwrap()
        .take_snapshot(&instrumented)
        .unwrap();
    (instrumented.plan, snapshot)
}

/// Runs init in `stage1` and bakes the snapshot into `stage2`.
fn staged(stage1: &[u8], stage2: &[u8], map: &dyn Fn(u32) -> u32) -> Result<Vec<u8>> {
    let (plan, snapshot) = snapshot_of(stage1);
    let retargeted = plan.retarget_from(stage1, &snapshot, stage2, map)?;
    retargeted.plan.apply(stage2, &retargeted.snapshot)
}

/// Every slot below `slots` called with 5, the table's size, and the
/// global's function called with 4.
fn probe_calls(slots: u32) -> Vec<(&'static str, Vec<Val>)> {
    let mut calls: Vec<(&str, Vec<Val>)> = (0..slots)
        .map(|s| ("call", vec![Val::U32(s), Val::S32(5)]))
        .collect();
    calls.push(("size", vec![]));
    calls.push(("via-global", vec![Val::S32(4)]));
    calls
}

fn borrowed<'a>(calls: &'a [(&'a str, Vec<Val>)]) -> Vec<(&'a str, &'a [Val])> {
    calls.iter().map(|(n, a)| (*n, &a[..])).collect()
}

#[test]
fn stage_2_starts_with_the_tables_and_funcref_global_init_left_in_stage_1() {
    let stage1 = stage1();
    let stage2 = stage2(SQUARE, Some(LIB));
    let calls = probe_calls(4);
    let calls = borrowed(&calls);

    let mut with_init = vec![("component-init", &[][..])];
    with_init.extend_from_slice(&calls);
    let mut stage1_after_init = run(&stage1, &with_init).unwrap();
    stage1_after_init.remove(0);
    let answers = [
        Val::S32(10),
        Val::S32(25),
        Val::S32(15),
        Val::S32(-5),
        Val::U32(4),
        Val::S32(16),
    ];
    let flat = |results: &[Vec<Val>]| results.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    assert_eq!(flat(&stage1_after_init), answers);

    // Stage 2 as it is: one slot, no global.
    let stage2_as_is = crate::component_tables::run_with_triple(&stage2, &calls[4..]).unwrap();
    assert_eq!(stage2_as_is, [[Val::U32(1)], [Val::S32(-999)]]);

    let output = staged(&stage1, &stage2, &map).unwrap();
    validate(&output);
    // The output is stage 2 (it imports `triple`; slot 2 holds that import,
    // where stage 1 held its stub), initialized as stage 1 was.
    let after = crate::component_tables::run_with_triple(&output, &calls).unwrap();
    assert_eq!(after, stage1_after_init);
    assert!(!export_names(&output).contains(&"component-init".to_string()));
}

/// A nested component whose module is instantiated twice, each instance's
/// table given another function by init; stage 1 has a stub module at the
/// top level that stage 2 does not.
const INNER: &str = r#"
  (component $inner
    (core module $m
      (type $ii (func (param i32) (result i32)))
      (table $t 1 funcref)
      (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
      (func $square (type $ii) (i32.mul (local.get 0) (local.get 0)))
      (elem declare func $double $square)
      (func (export "setup") (param i32)
        (if (local.get 0)
          (then (table.set (i32.const 0) (ref.func $square)))
          (else (drop (table.grow (ref.func $double) (i32.const 1))))))
      (func (export "call") (param i32 i32) (result i32)
        (if (ref.is_null (table.get (local.get 0)))
          (then (return (i32.const -999))))
        (call_indirect (type $ii) (local.get 1) (local.get 0))))
    (core module $driver
      (import "a" "setup" (func $a (param i32)))
      (import "b" "setup" (func $b (param i32)))
      (func (export "init") (call $a (i32.const 0)) (call $b (i32.const 1))))
    (core instance $a (instantiate $m))
    (core instance $b (instantiate $m))
    (core instance $d (instantiate $driver (with "a" (instance $a)) (with "b" (instance $b))))
    (func (export "init") (canon lift (core func $d "init")))
    (func (export "call-a") (param "slot" u32) (param "x" s32) (result s32)
      (canon lift (core func $a "call")))
    (func (export "call-b") (param "slot" u32) (param "x" s32) (result s32)
      (canon lift (core func $b "call"))))
  (instance $x (instantiate $inner))
  (export "component-init" (func $x "init"))
  (export "call-a" (func $x "call-a"))
  (export "call-b" (func $x "call-b"))"#;

#[test]
fn tables_of_a_nested_component_go_to_the_same_instances_in_stage_2() {
    let stage1 = wat(&format!(
        r#"(component
  (core module $stub (func (export "noop")))
  (core instance (instantiate $stub))
  {INNER})"#
    ));
    let stage2 = wat(&format!("(component {INNER})"));
    let calls: Vec<(&str, Vec<Val>)> = vec![
        ("call-a", vec![Val::U32(0), Val::S32(7)]),
        ("call-a", vec![Val::U32(1), Val::S32(7)]),
        ("call-b", vec![Val::U32(0), Val::S32(7)]),
    ];
    let calls = borrowed(&calls);
    let mut with_init = vec![("component-init", &[][..])];
    with_init.extend_from_slice(&calls);
    let mut before = run(&stage1, &with_init).unwrap();
    before.remove(0);
    assert_eq!(
        before,
        [vec![Val::S32(-999)], vec![Val::S32(14)], vec![Val::S32(49)]]
    );
    // Stage 2 has no top-level module: the map is never asked.
    let output = staged(&stage1, &stage2, &|_| u32::MAX).unwrap();
    validate(&output);
    assert_eq!(run(&output, &calls).unwrap(), before);
}

#[test]
fn a_slot_naming_an_instance_no_stage_2_instance_takes_is_refused() {
    // Stage 2 has no library: nothing can hold its `$neg`.
    let err = staged(&stage1(), &stage2(SQUARE, None), &map).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains(
            "slot 3 of table 0 of core instance 1 (core module 1) of stage 1 holds function 1 \
             of core instance 2 (core module 2), which no stage 2 instance takes"
        ),
        "{err}"
    );
}

#[test]
fn a_slot_whose_function_has_another_type_in_stage_2_is_refused() {
    let square64 = "(func $square (param i64) (result i64) (i64.mul (local.get 0) (local.get 0)))";
    let err = staged(&stage1(), &stage2(square64, Some(LIB)), &map).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains(
            "slot 1 of table 0 of core instance 1 (core module 1) of stage 1 holds function 2 \
             of core instance 1 (core module 1), of type `(func (param i32) (result i32))`, \
             but function 2 of core module 0 of stage 2 (core instance 2, which takes its \
             place) has type `(func (param i64) (result i64))`"
        ),
        "{err}"
    );
}

#[test]
fn a_slot_whose_function_stage_2_lacks_is_refused() {
    // The library of stage 2 has one function; stage 1's `$neg` is its
    // function 1.
    let lib = r#"
  (core module $lib
    (import "app" "table" (table $t 1 funcref))
    (func (export "init")))"#;
    let err = staged(&stage1(), &stage2(SQUARE, Some(lib)), &map).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains(
            "slot 3 of table 0 of core instance 1 (core module 1) of stage 1 holds function 1 \
             of core instance 2 (core module 2), of type `(func (param i32) (result i32))`, \
             but core module 2 of stage 2 (core instance 3, which takes its place) has no \
             function 1"
        ),
        "{err}"
    );
}

#[test]
fn a_table_holding_functions_in_an_instance_stage_2_drops_is_refused() {
    // Stage 1 has a plugin registry with a table of its own; stage 2 does
    // not (module 0 of stage 2 is the application, stage 1's module 0).
    let app = r#"
  (core module $app
    (table $t 1 funcref)
    (func $f (result i32) (i32.const 1))
    (elem declare func $f)
    (func (export "init") (table.set (i32.const 0) (ref.func $f))))
  (core instance $a (instantiate $app))"#;
    let stage1 = wat(&format!(
        r#"(component
  {app}
  (core module $plugins
    (table $p 2 funcref)
    (func $g (result i32) (i32.const 2))
    (elem (i32.const 1) func $g))
  (core instance $p (instantiate $plugins))
  (func (export "component-init") (canon lift (core func $a "init"))))"#
    ));
    let stage2 = wat(&format!(
        r#"(component
  {app}
  (func (export "component-init") (canon lift (core func $a "init"))))"#
    ));
    let err = format!("{:#}", staged(&stage1, &stage2, &|m| m).unwrap_err());
    assert!(
        err.contains(
            "table 0 of core instance 1 (core module 1) of stage 1 holds 1 non-null slot after \
             an init that changed tables, but no stage 2 instance takes that instance's state: \
             stage 2 would lose it (map a stage 2 module to stage 1 module 1)"
        ),
        "{err}"
    );
}

#[test]
fn a_table_change_only_an_instance_stage_2_drops_made_is_refused() {
    // Stage 1's registrar grows the application's table; stage 2 has no
    // registrar, so nothing would tell its rewrite that the table changed.
    let app = r#"
  (core module $app
    (table $t (export "table") 1 funcref)
    (func (export "noop")))
  (core instance $a (instantiate $app))"#;
    let stage1 = wat(&format!(
        r#"(component
  {app}
  (core module $registrar
    (import "app" "table" (table $t 1 funcref))
    (func (export "init") (drop (table.grow (ref.null func) (i32.const 3)))))
  (core instance $r (instantiate $registrar (with "app" (instance $a))))
  (func (export "component-init") (canon lift (core func $r "init"))))"#
    ));
    let stage2 = wat(&format!(
        r#"(component
  {app}
  (func (export "component-init") (canon lift (core func $a "noop"))))"#
    ));
    let err = format!("{:#}", staged(&stage1, &stage2, &|m| m).unwrap_err());
    assert!(
        err.contains(
            "`table.grow` ran during init, in function 0 of core module 1 (core instance 1) of \
             stage 1, which no stage 2 instance takes: stage 2 would start with the tables of \
             that level as declared, not as init left them"
        ),
        "{err}"
    );
}

#[test]
fn retarget_without_stage_1_refuses_changed_tables_and_a_wrong_stage_1_is_refused() {
    let stage1 = stage1();
    let stage2 = stage2(SQUARE, Some(LIB));
    let (plan, snapshot) = snapshot_of(&stage1);
    let err = format!("{:#}", plan.retarget(&snapshot, &stage2, &map).unwrap_err());
    assert!(
        err.contains("of stage 1, so the tables of its level go to stage 2")
            && err.contains("use `Plan::retarget_from`"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        plan.retarget_from(&stage2, &snapshot, &stage2, &map)
            .unwrap_err()
    );
    assert!(
        err.contains("the plan was made for a different component than the stage 1 given"),
        "{err}"
    );
}

/// A level with a table of typed function references is not read: staged
/// as unstaged, its table code is accepted while it does not run during
/// init, and refused naming the instruction when it does.
#[test]
fn typed_function_reference_tables_are_refused_only_when_init_changes_them() {
    let component = crate::component_tables::typed_table;
    let (quiet, loud) = (component("quiet"), component("loud"));
    let output = staged(&quiet, &quiet, &|m| m).unwrap();
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::S32(-1));
    let err = format!("{:#}", staged(&loud, &loud, &|m| m).unwrap_err());
    assert!(
        err.contains(
            "`table.set` ran during init, in function 2 of core module 0 (core instance 0) of \
             stage 1, in a component level with a table or global of typed references"
        ),
        "{err}"
    );
}
