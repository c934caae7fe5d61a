//! Instructions a snapshot of memories and globals does not carry by
//! itself: table mutation and writes of reference-typed globals (carried,
//! see `component_tables`), GC object mutation (refused when it runs
//! during init), and bulk-memory drops (carried into the output as empty
//! segments).

use crate::support::*;
use wasmtime::component::Val;

const TABLES: &str = r#"
(component
  (core module $m
    (table $t 1 funcref)
    (global $g (mut i32) (i32.const 0))
    (func $seven (result i32) (i32.const 7))
    (elem declare func $seven)
    (func $grow (export "grow") (result i32)
      (table.grow $t (ref.func $seven) (i32.const 1)))
    (func $init (param i32)
      (global.set $g (i32.const 1))
      (if (local.get 0) (then (drop (call $grow)))))
    (func (export "size") (result i32) (table.size $t))
    (func (export "g") (result i32) (global.get $g))
    (func (export "init-quiet") (call $init (i32.const 0)))
    (func (export "init-loud") (call $init (i32.const 1))))
  (core instance $i (instantiate $m))
  (func (export "quiet") (canon lift (core func $i "init-quiet")))
  (func (export "loud") (canon lift (core func $i "init-loud")))
  (func (export "grow") (result s32) (canon lift (core func $i "grow")))
  (func (export "size") (result s32) (canon lift (core func $i "size")))
  (func (export "g") (result s32) (canon lift (core func $i "g"))))"#;

#[test]
fn table_instructions_that_do_not_run_during_init_are_accepted() {
    let input = wat(TABLES);
    let output = pre_init_with(&input, Some("quiet"), false).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["g"]).unwrap(), Val::S32(1));
    // The code still works after pre-initialization.
    assert_eq!(call1(&output, &["grow", "size"]).unwrap(), Val::S32(2));
}

#[test]
fn table_instructions_that_run_during_init_are_carried() {
    let input = wat(TABLES);
    let output = pre_init_with(&input, Some("loud"), false).unwrap();
    validate(&output);
    assert_eq!(
        call1(&input, &["loud", "size"]).unwrap(),
        call1(&output, &["size"]).unwrap()
    );
    assert_eq!(call1(&output, &["size"]).unwrap(), Val::S32(2));
    assert_eq!(call1(&output, &["grow", "size"]).unwrap(), Val::S32(3));
}

const BULK: &str = r#"
(component
  (core module $m
    (memory 1)
    (table $t 2 funcref)
    (data $d "abcd")
    (data $kept "wxyz")
    (func $f (result i32) (i32.const 5))
    (elem $e func $f)
    (func (export "init")
      (memory.init $d (i32.const 100) (i32.const 0) (i32.const 4))
      (data.drop $d)
      (elem.drop $e))
    (func (export "load") (result i32) (i32.load (i32.const 100)))
    (func (export "copy-d") (memory.init $d (i32.const 200) (i32.const 0) (i32.const 4)))
    (func (export "copy-kept") (memory.init $kept (i32.const 200) (i32.const 0) (i32.const 4)))
    (func (export "load-200") (result i32) (i32.load (i32.const 200)))
    (func (export "init-table") (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "load") (result u32) (canon lift (core func $i "load")))
  (func (export "copy-d") (canon lift (core func $i "copy-d")))
  (func (export "copy-kept") (canon lift (core func $i "copy-kept")))
  (func (export "load-200") (result u32) (canon lift (core func $i "load-200")))
  (func (export "init-table") (canon lift (core func $i "init-table"))))"#;

#[test]
fn segments_dropped_during_init_stay_dropped() {
    let input = wat(BULK);
    // Before init the segments are there.
    assert!(run(&input, &[("copy-d", &[]), ("init-table", &[])]).is_ok());

    let output = pre_init(&input).unwrap();
    validate(&output);
    // What memory.init copied during init is in the snapshot.
    assert_eq!(
        call1(&output, &["load"]).unwrap(),
        Val::U32(u32::from_le_bytes(*b"abcd"))
    );
    // The dropped segments behave as dropped: copying from them traps.
    let err = run(&output, &[("copy-d", &[])]).unwrap_err();
    assert!(format!("{err:?}").contains("out of bounds"), "{err:?}");
    let err = run(&output, &[("init-table", &[])]).unwrap_err();
    assert!(format!("{err:?}").contains("out of bounds"), "{err:?}");
    // The segment that was not dropped still works.
    assert_eq!(
        call1(&output, &["copy-kept", "load-200"]).unwrap(),
        Val::U32(u32::from_le_bytes(*b"wxyz"))
    );
}

/// `elem.drop` of an active segment changes nothing (an active segment is
/// dropped once it has filled its table): the output's table is filled as
/// the original's is. (Emptying the segment, as a dropped passive one is,
/// once left the table empty.)
#[test]
fn an_active_segment_dropped_during_init_still_fills_its_table() {
    let input = wat(r#"
(component
  (core module $m
    (type $r (func (result i32)))
    (table $t 1 funcref)
    (func $f (result i32) (i32.const 42))
    (elem $e (table $t) (i32.const 0) func $f)
    (func (export "init") (elem.drop $e))
    (func (export "call") (result i32) (call_indirect $t (type $r) (i32.const 0))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "call") (result s32) (canon lift (core func $i "call"))))"#);
    assert_eq!(
        call1(&input, &["component-init", "call"]).unwrap(),
        Val::S32(42)
    );
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["call"]).unwrap(), Val::S32(42));
}

const REF_GLOBAL: &str = r#"
(component
  (core module $m
    (global $r (mut externref) (ref.null extern))
    (global $n (mut i32) (i32.const 0))
    (func (export "quiet") (global.set $n (i32.const 1)))
    (func (export "loud") (global.set $r (ref.null extern)))
    (func (export "is-null") (result i32) (ref.is_null (global.get $r)))
    (func (export "n") (result i32) (global.get $n)))
  (core instance $i (instantiate $m))
  (func (export "quiet") (canon lift (core func $i "quiet")))
  (func (export "loud") (canon lift (core func $i "loud")))
  (func (export "is-null") (result bool) (canon lift (core func $i "is-null")))
  (func (export "n") (result s32) (canon lift (core func $i "n"))))"#;

#[test]
fn reference_typed_globals_that_init_does_not_write_are_accepted() {
    let output = pre_init_with(&wat(REF_GLOBAL), Some("quiet"), false).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["n"]).unwrap(), Val::S32(1));
    assert_eq!(
        call1(&output, &["loud", "is-null"]).unwrap(),
        Val::Bool(true)
    );
}

#[test]
fn reference_typed_globals_written_during_init_are_carried() {
    let output = pre_init_with(&wat(REF_GLOBAL), Some("loud"), false).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["is-null"]).unwrap(), Val::Bool(true));
    assert_eq!(call1(&output, &["n"]).unwrap(), Val::S32(0));
}

#[test]
fn gc_object_mutation_during_init_is_named_in_the_error() {
    let input = wat(r#"
    (component
      (core module $m
        (type $s (struct (field (mut i32))))
        (global $g (ref $s) (struct.new $s (i32.const 0)))
        (func (export "init") (struct.set $s 0 (global.get $g) (i32.const 5))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init"))))"#);
    let err = format!("{:#}", pre_init(&input).unwrap_err());
    assert!(err.contains("`struct.set` ran during init"), "{err}");
    assert!(err.contains("GC objects cannot be snapshotted"), "{err}");
}
