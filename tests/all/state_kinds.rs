//! Every kind of state a module can define: several memories, 64-bit
//! memories, custom page sizes, `v128` globals.

use crate::support::*;
use wasmtime::component::Val;

#[test]
fn several_memories_in_one_module() {
    let input = wat(r#"
    (component
      (core module $m
        (memory $a 1)
        (memory $b 2)
        (memory $c 0)
        (func (export "init")
          (i32.store $a (i32.const 0) (i32.const 11))
          (i32.store $b (i32.const 70000) (i32.const 22))
          (drop (memory.grow $c (i32.const 1)))
          (i32.store $c (i32.const 8) (i32.const 33)))
        (func (export "sum") (result i32)
          (i32.add (i32.add (i32.load $a (i32.const 0)) (i32.load $b (i32.const 70000)))
            (i32.mul (i32.load $c (i32.const 8)) (memory.size $c)))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "sum") (result s32) (canon lift (core func $i "sum"))))"#);
    // Before init memory $c has no page: reading it traps.
    assert!(call1(&input, &["sum"]).is_err());
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["sum"]).unwrap(), Val::S32(11 + 22 + 33));
}

#[test]
fn memory64_and_custom_page_sizes() {
    let input = wat(r#"
    (component
      (core module $m
        (memory $big i64 1)
        (memory $tiny 3 (pagesize 1))
        (func (export "init")
          (drop (memory.grow $big (i64.const 1)))
          (i64.store $big (i64.const 70000) (i64.const 0x1122334455667788))
          (drop (memory.grow $tiny (i32.const 5)))
          (i32.store8 $tiny (i32.const 7) (i32.const 0x99)))
        (func (export "big") (result i64) (i64.load $big (i64.const 70000)))
        (func (export "big-pages") (result i64) (memory.size $big))
        (func (export "tiny") (result i32) (i32.load8_u $tiny (i32.const 7)))
        (func (export "tiny-size") (result i32) (memory.size $tiny)))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "big") (result s64) (canon lift (core func $i "big")))
      (func (export "big-pages") (result s64) (canon lift (core func $i "big-pages")))
      (func (export "tiny") (result s32) (canon lift (core func $i "tiny")))
      (func (export "tiny-size") (result s32) (canon lift (core func $i "tiny-size"))))"#);
    assert_eq!(call1(&input, &["tiny-size"]).unwrap(), Val::S32(3));
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(
        call1(&output, &["big"]).unwrap(),
        Val::S64(0x1122_3344_5566_7788)
    );
    assert_eq!(call1(&output, &["big-pages"]).unwrap(), Val::S64(2));
    assert_eq!(call1(&output, &["tiny"]).unwrap(), Val::S32(0x99));
    // 3 one-byte pages + 5 grown
    assert_eq!(call1(&output, &["tiny-size"]).unwrap(), Val::S32(8));
}

#[test]
fn v128_globals() {
    let input = wat(r#"
    (component
      (core module $m
        (global $v (mut v128) (v128.const i64x2 0 0))
        (func (export "init")
          (global.set $v (v128.const i64x2 0x0102030405060708 0x1112131415161718)))
        (func (export "low") (result i64) (i64x2.extract_lane 0 (global.get $v)))
        (func (export "high") (result i64) (i64x2.extract_lane 1 (global.get $v))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "low") (result s64) (canon lift (core func $i "low")))
      (func (export "high") (result s64) (canon lift (core func $i "high"))))"#);
    assert_eq!(call1(&input, &["high"]).unwrap(), Val::S64(0));
    let instrumented =
        component_init::instrument(&input, &component_init::InstrumentOptions::default()).unwrap();
    let wit = instrumented.plan.wit().unwrap();
    assert!(
        wit.contains("get-global-0: func() -> tuple<u64, u64>;"),
        "{wit}"
    );
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(
        call1(&output, &["low"]).unwrap(),
        Val::S64(0x0102_0304_0506_0708)
    );
    assert_eq!(
        call1(&output, &["high"]).unwrap(),
        Val::S64(0x1112_1314_1516_1718)
    );
}

#[test]
fn memories_too_small_for_a_return_area() {
    // `(memory 0 0)` can never hold a byte; a 5-byte memory of 1-byte pages
    // cannot hold the 8-byte return area of an in-place reader either.
    let input = wat(r#"
    (component
      (core module $m
        (memory $none 0 0)
        (memory $five 2 5 (pagesize 1))
        (func (export "init")
          (drop (memory.grow $five (i32.const 3)))
          (i32.store8 $five (i32.const 4) (i32.const 0x5a)))
        (func (export "five") (result i32)
          (i32.add (i32.load8_u $five (i32.const 4))
            (i32.add (memory.size $five) (memory.size $none)))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "five") (result s32) (canon lift (core func $i "five"))))"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["five"]).unwrap(), Val::S32(0x5a + 5));
}

#[test]
fn a_memory_snapshot_over_the_declared_maximum_is_refused() {
    use component_init::{Snapshot, Value};
    let input = wat(r#"
    (component
      (core module $m (memory 1 1) (func (export "init")))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init"))))"#);
    let instrumented =
        component_init::instrument(&input, &component_init::InstrumentOptions::default()).unwrap();
    let snapshot = Snapshot {
        values: vec![Value::Memory(vec![1; 2 << 16].into())],
    };
    let err = instrumented.plan.apply(&input, &snapshot).unwrap_err();
    assert!(
        format!("{err:#}").contains("is 2 pages, more than its declared maximum of 1"),
        "{err:#}"
    );
}
