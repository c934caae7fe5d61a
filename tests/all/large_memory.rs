//! Memories far larger than what one host call may copy.

use crate::support::*;
use wasmtime::component::Val;

#[test]
fn a_256_mib_memory_round_trips() {
    let input = wat(r#"
    (component
      (core module $m
        (memory 1)
        (func (export "init") (local $at i32)
          ;; grow to 256 MiB
          (drop (memory.grow (i32.const 4095)))
          ;; one word at every MiB, carrying its index
          (loop $l
            (i32.store (local.get $at) (i32.add (i32.shr_u (local.get $at) (i32.const 20)) (i32.const 1)))
            (local.set $at (i32.add (local.get $at) (i32.const 0x100000)))
            (br_if $l (i32.lt_u (local.get $at) (i32.const 0x10000000))))
          ;; 3 MiB of 0xab across the 16 MiB read boundary and the 128 MiB mark
          (memory.fill (i32.const 0x00f00004) (i32.const 0xab) (i32.const 0x300000))
          (memory.fill (i32.const 0x07f00004) (i32.const 0xab) (i32.const 0x300000))
          ;; the last byte
          (i32.store8 (i32.const 0x0fffffff) (i32.const 0x5a)))
        (func (export "byte") (param i32) (result i32) (i32.load8_u (local.get 0)))
        (func (export "word") (param i32) (result i32) (i32.load (local.get 0)))
        (func (export "pages") (result i32) (memory.size)))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "byte") (param "at" u32) (result u32) (canon lift (core func $i "byte")))
      (func (export "word") (param "at" u32) (result u32) (canon lift (core func $i "word")))
      (func (export "pages") (result u32) (canon lift (core func $i "pages"))))"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    // Sparse: the output stays small.
    assert!(output.len() < 8 << 20, "{} bytes", output.len());
    let calls: Vec<(&str, Vec<Val>)> = (0..256u32)
        .map(|mib| ("word", vec![Val::U32(mib << 20)]))
        .chain([
            ("byte", vec![Val::U32(0x00f00004)]),
            ("byte", vec![Val::U32(0x01200003)]),
            ("byte", vec![Val::U32(0x01200004)]),
            ("byte", vec![Val::U32(0x08200003)]),
            ("byte", vec![Val::U32(0x0fffffff)]),
            ("pages", vec![]),
        ])
        .collect();
    let calls: Vec<(&str, &[Val])> = calls.iter().map(|(n, a)| (*n, &a[..])).collect();
    let results = run(&output, &calls).unwrap();
    for (mib, result) in results.iter().take(256).enumerate() {
        let expected = if (0x00f00004..0x01200004).contains(&(mib << 20))
            || (0x07f00004..0x08200004).contains(&(mib << 20))
        {
            0xabababab
        } else {
            mib as u32 + 1
        };
        assert_eq!(result[0], Val::U32(expected), "MiB {mib}");
    }
    let tail: Vec<Val> = results[256..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        tail,
        [
            Val::U32(0xab),
            Val::U32(0xab),
            Val::U32(0),
            Val::U32(0xab),
            Val::U32(0x5a),
            Val::U32(4096)
        ]
    );
}
