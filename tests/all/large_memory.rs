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

/// 1 GiB, of which init writes 4,000 scattered words and the last byte.
const SPARSE_1GIB: &str = r#"
(component
  (core module $m
    (memory 1)
    (func $at (param $i i32) (result i32)
      (i32.and (i32.mul (local.get $i) (i32.const 268437)) (i32.const 0x3ffffff8)))
    (func (export "init") (local $i i32)
      (drop (memory.grow (i32.const 16383)))
      (loop $l
        (i64.store (call $at (local.get $i))
          (i64.or (i64.extend_i32_u (i32.add (local.get $i) (i32.const 1)))
                  (i64.const 0x0100000000000000)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 4000))))
      (i32.store8 (i32.const 0x3fffffff) (i32.const 0x5a)))
    (func (export "sum") (result i64) (local $i i32) (local $sum i64)
      (loop $l
        (local.set $sum (i64.add (local.get $sum) (i64.load (call $at (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 4000))))
      (local.get $sum))
    (func (export "byte") (param i32) (result i32) (i32.load8_u (local.get 0)))
    (func (export "pages") (result i32) (memory.size)))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "sum") (result u64) (canon lift (core func $i "sum")))
  (func (export "byte") (param "at" u32) (result u32) (canon lift (core func $i "byte")))
  (func (export "pages") (result u32) (canon lift (core func $i "pages"))))"#;

#[test]
fn a_sparse_1_gib_memory_costs_the_host_what_init_wrote() {
    use component_init::{InstrumentOptions, MemoryImage, Value, WasmtimeRuntime};

    let input = wat(SPARSE_1GIB);
    let instrumented = component_init::instrument(&input, &InstrumentOptions::default()).unwrap();
    let plan = &instrumented.plan;
    let mut runtime = WasmtimeRuntime::new().unwrap();
    let snapshot = runtime.take_snapshot(&instrumented).unwrap();
    drop(runtime);
    let images: Vec<&MemoryImage> = snapshot
        .values
        .iter()
        .filter_map(|v| match v {
            Value::Memory(image) => Some(image),
            Value::Global(_) => None,
        })
        .collect();
    let [image] = images.as_slice() else {
        panic!("one memory expected: {images:?}");
    };
    assert_eq!(image.len(), 1 << 30);
    // The words init wrote (and nothing else) are all the host keeps.
    assert!(image.stored_len() <= 4000 * 8 + 1, "{image:?}");
    assert!(image.runs().len() <= 4001, "{image:?}");
    assert_eq!(image.runs().last().unwrap(), ((1 << 30) - 1, &[0x5a][..]));

    // The output, from this snapshot or from the one-call helper, behaves as
    // the original does after init.
    let output = plan.apply(&input, &snapshot).unwrap();
    assert_eq!(output, pre_init(&input).unwrap());
    assert!(output.len() < 256 << 10, "{} bytes", output.len());
    let probes: Vec<(&str, Vec<Val>)> = [
        ("sum", vec![]),
        ("pages", vec![]),
        ("byte", vec![Val::U32(0x3fffffff)]),
        ("byte", vec![Val::U32(0x3ffffffe)]),
        ("byte", vec![Val::U32(268437 * 7 + 7)]),
        ("byte", vec![Val::U32(268437 * 7)]),
        ("byte", vec![Val::U32(0x2000_0000)]),
    ]
    .into_iter()
    .collect();
    let probes: Vec<(&str, &[Val])> = probes.iter().map(|(n, a)| (*n, &a[..])).collect();
    let mut with_init = vec![("component-init", &[][..])];
    with_init.extend(probes.iter().cloned());
    let mut expected = run(&input, &with_init).unwrap();
    expected.remove(0);
    let observed = run(&output, &probes).unwrap();
    assert_eq!(observed, expected);
    assert_eq!(observed[1], vec![Val::U32(16384)]);
    assert_eq!(observed[2], vec![Val::U32(0x5a)]);
}

/// 16,384 scattered 4-byte writes over 1 GiB (64 KiB of data): each gets a
/// segment of its own (the engines' limit is 100,000 segments a module),
/// so the output is about the size of its data, not of the gaps between.
#[test]
fn a_sparse_gibibyte_gives_an_output_the_size_of_its_data() {
    let input = wat(r#"
    (component
      (core module $m
        (memory 1)
        (func (export "init") (local $at i32)
          (drop (memory.grow (i32.const 16383)))
          (loop $l
            (i32.store (local.get $at) (i32.or (local.get $at) (i32.const 0x0101)))
            (local.set $at (i32.add (local.get $at) (i32.const 0x10000)))
            (br_if $l (i32.lt_u (local.get $at) (i32.const 0x40000000)))))
        (func (export "word") (param i32) (result i32) (i32.load (local.get 0))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "word") (param "at" u32) (result u32) (canon lift (core func $i "word"))))"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert!(output.len() <= 1 << 20, "{} bytes", output.len());
    let results = run(
        &output,
        &[
            ("word", &[Val::U32(0)]),
            ("word", &[Val::U32(0x3fff_0000)]),
            ("word", &[Val::U32(0x1234_0004)]),
        ],
    )
    .unwrap();
    assert_eq!(
        results,
        [[Val::U32(0x0101)], [Val::U32(0x3fff_0101)], [Val::U32(0)]]
    );
}
