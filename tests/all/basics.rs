//! One module: memories, globals of every numeric type, start functions,
//! data segments, the init export and re-initialization.

use crate::support::*;
use wasmtime::component::Val;

const NUMERIC: &str = r#"
(component
  (core module $m
    (memory (export "memory") 1)
    (global $a (mut i32) (i32.const 1))
    (global $b (mut i64) (i64.const 2))
    (global $c (mut f32) (f32.const 3))
    (global $d (mut f64) (f64.const 4))
    (global $nan (mut f32) (f32.const 0))
    (global $k i32 (i32.const 5))
    (data (i32.const 16) "abc")
    (func (export "init")
      (global.set $a (i32.add (global.get $a) (i32.const 10)))
      (global.set $b (i64.const -9000000000))
      (global.set $c (f32.const -2.5))
      (global.set $d (f64.const 6.25))
      ;; a NaN with a payload: the bits must survive the snapshot
      (global.set $nan (f32.reinterpret_i32 (i32.const 0x7fa00001)))
      ;; count init calls
      (i32.store (i32.const 32) (i32.add (i32.load (i32.const 32)) (i32.const 1)))
      ;; grow to 3 pages and touch the last byte of each
      (drop (memory.grow (i32.const 2)))
      (i32.store8 (i32.const 65535) (i32.const 0xee))
      (i32.store8 (i32.const 196607) (i32.const 0xff)))
    (func (export "a") (result i32) (global.get $a))
    (func (export "b") (result i64) (global.get $b))
    (func (export "c") (result f32) (global.get $c))
    (func (export "d") (result f64) (global.get $d))
    (func (export "k") (result i32) (global.get $k))
    (func (export "nan-bits") (result i32) (i32.reinterpret_f32 (global.get $nan)))
    (func (export "counter") (result i32) (i32.load (i32.const 32)))
    (func (export "pages") (result i32) (memory.size))
    (func (export "byte") (param i32) (result i32) (i32.load8_u (local.get 0))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "a") (result s32) (canon lift (core func $i "a")))
  (func (export "b") (result s64) (canon lift (core func $i "b")))
  (func (export "c") (result f32) (canon lift (core func $i "c")))
  (func (export "d") (result f64) (canon lift (core func $i "d")))
  (func (export "k") (result s32) (canon lift (core func $i "k")))
  (func (export "nan-bits") (result s32) (canon lift (core func $i "nan-bits")))
  (func (export "counter") (result s32) (canon lift (core func $i "counter")))
  (func (export "pages") (result s32) (canon lift (core func $i "pages")))
  (func (export "byte") (param "at" s32) (result s32) (canon lift (core func $i "byte")))
)"#;

fn byte(component: &[u8], at: i32) -> Val {
    run(component, &[("byte", &[Val::S32(at)])]).unwrap()[0][0].clone()
}

#[test]
fn globals_of_every_numeric_type_and_memory_are_captured() {
    let input = wat(NUMERIC);
    // Before: nothing initialized.
    assert_eq!(call1(&input, &["a"]).unwrap(), Val::S32(1));
    assert_eq!(call1(&input, &["counter"]).unwrap(), Val::S32(0));
    assert_eq!(call1(&input, &["pages"]).unwrap(), Val::S32(1));

    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["a"]).unwrap(), Val::S32(11));
    assert_eq!(call1(&output, &["b"]).unwrap(), Val::S64(-9_000_000_000));
    assert_eq!(call1(&output, &["c"]).unwrap(), Val::Float32(-2.5));
    assert_eq!(call1(&output, &["d"]).unwrap(), Val::Float64(6.25));
    assert_eq!(call1(&output, &["k"]).unwrap(), Val::S32(5));
    assert_eq!(
        call1(&output, &["nan-bits"]).unwrap(),
        Val::S32(0x7fa0_0001)
    );
    assert_eq!(call1(&output, &["counter"]).unwrap(), Val::S32(1));
    assert_eq!(call1(&output, &["pages"]).unwrap(), Val::S32(3));
    assert_eq!(byte(&output, 16), Val::S32(i32::from(b'a')));
    assert_eq!(byte(&output, 65535), Val::S32(0xee));
    assert_eq!(byte(&output, 196607), Val::S32(0xff));

    // The init export is gone; everything else stays.
    let names = export_names(&output);
    assert!(!names.iter().any(|n| n == "component-init"), "{names:?}");
    assert_eq!(names.len(), export_names(&input).len() - 1);
}

#[test]
fn keeping_the_init_export_lets_state_accumulate() {
    let input = wat(NUMERIC);
    let once = pre_init_with(&input, None, true).unwrap();
    assert!(export_names(&once).iter().any(|n| n == "component-init"));
    // Calling init on the output runs on top of the snapshot.
    assert_eq!(
        call1(&once, &["component-init", "counter"]).unwrap(),
        Val::S32(2)
    );
    let twice = pre_init_with(&once, None, true).unwrap();
    assert_eq!(call1(&twice, &["counter"]).unwrap(), Val::S32(2));
    assert_eq!(call1(&twice, &["a"]).unwrap(), Val::S32(21));
    // Memory grew again during the second init.
    assert_eq!(call1(&twice, &["pages"]).unwrap(), Val::S32(5));
}

#[test]
fn same_input_gives_the_same_bytes() {
    let input = wat(NUMERIC);
    assert_eq!(pre_init(&input).unwrap(), pre_init(&input).unwrap());
}

#[test]
fn producers_sections_are_copied_and_none_is_added() {
    // No producers section in, none out: the output carries nothing the
    // input did not (and is no larger for it).
    let input = wat(NUMERIC);
    assert!(producers_sections(&input).is_empty());
    let output = pre_init(&input).unwrap();
    assert!(producers_sections(&output).is_empty());

    // One in: the same bytes out.
    let mut producers = wasm_metadata::Producers::empty();
    producers.add("processed-by", "some-tool", "1.2.3");
    producers.add("language", "wat", "");
    let input = producers.add_to_wasm(&input).unwrap();
    let sections = producers_sections(&input);
    assert_eq!(sections.len(), 1);
    let output = pre_init(&input).unwrap();
    assert_eq!(producers_sections(&output), sections);
}

/// The contents of every `producers` custom section in `wasm`.
fn producers_sections(wasm: &[u8]) -> Vec<Vec<u8>> {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter_map(|payload| match payload.unwrap() {
            wasmparser::Payload::CustomSection(c) if c.name() == "producers" => {
                Some(c.data().to_vec())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn start_functions_ran_once_and_are_removed() {
    let input = wat(r#"
    (component
      (core module $m
        (memory 1)
        (global $starts (mut i32) (i32.const 0))
        (func $start (global.set $starts (i32.add (global.get $starts) (i32.const 1))))
        (start $start)
        (func (export "init") (i32.store (i32.const 0) (global.get $starts)))
        (func (export "starts") (result i32) (global.get $starts))
        (func (export "seen") (result i32) (i32.load (i32.const 0))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "starts") (result s32) (canon lift (core func $i "starts")))
      (func (export "seen") (result s32) (canon lift (core func $i "seen"))))"#);
    assert_eq!(call1(&input, &["seen"]).unwrap(), Val::S32(0));
    let output = pre_init(&input).unwrap();
    // Had the start function stayed, it would run again: 2.
    assert_eq!(call1(&output, &["starts"]).unwrap(), Val::S32(1));
    assert_eq!(call1(&output, &["seen"]).unwrap(), Val::S32(1));
    assert!(
        !wasmprinter::print_bytes(&output)
            .unwrap()
            .contains("(start")
    );
}

#[test]
fn passive_segments_survive_and_active_ones_do_not_rerun() {
    let input = wat(r#"
    (component
      (core module $m
        (memory 1)
        (data $passive "xyz")
        (data (i32.const 0) "\01")
        (func (export "init") (i32.store8 (i32.const 0) (i32.const 9)))
        (func (export "copy") (memory.init $passive (i32.const 100) (i32.const 0) (i32.const 3)))
        (func (export "byte") (param i32) (result i32) (i32.load8_u (local.get 0))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "copy") (canon lift (core func $i "copy")))
      (func (export "byte") (param "at" s32) (result s32) (canon lift (core func $i "byte"))))"#);
    let output = pre_init(&input).unwrap();
    // The active segment's `\01` must not overwrite init's 9.
    assert_eq!(
        run(&output, &[("byte", &[Val::S32(0)])]).unwrap()[0][0],
        Val::S32(9)
    );
    let results = run(&output, &[("copy", &[]), ("byte", &[Val::S32(102)])]).unwrap();
    assert_eq!(results[1][0], Val::S32(i32::from(b'z')));
}

#[test]
fn wizer_initialize_is_the_fallback_init_function() {
    let input = wat(r#"
    (component
      (core module $m
        (global $g (mut i32) (i32.const 0))
        (func (export "init") (global.set $g (i32.const 7)))
        (func (export "get") (result i32) (global.get $g)))
      (core instance $i (instantiate $m))
      (func (export "wizer-initialize") (canon lift (core func $i "init")))
      (func (export "get") (result s32) (canon lift (core func $i "get"))))"#);
    let output = pre_init(&input).unwrap();
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::S32(7));
    assert_eq!(export_names(&output), ["get"]);
}

#[test]
fn init_func_names_an_interface_function_and_results_are_ignored() {
    let input = wat(r#"
    (component
      (core module $m
        (global $g (mut i32) (i32.const 0))
        (func (export "setup") (result i32) (global.set $g (i32.const 3)) (i32.const 99))
        (func (export "get") (result i32) (global.get $g)))
      (core instance $i (instantiate $m))
      (func $setup (result u32) (canon lift (core func $i "setup")))
      (instance $iface (export "setup" (func $setup)))
      (export "my:app/init" (instance $iface))
      (func (export "get") (result s32) (canon lift (core func $i "get"))))"#);
    for spec in ["my:app/init#setup", "my:app/init#setup()"] {
        let output = pre_init_with(&input, Some(spec), false).unwrap();
        assert_eq!(call1(&output, &["get"]).unwrap(), Val::S32(3));
        // An interface keeps all of its functions.
        assert_eq!(
            call1(&output, &["my:app/init#setup", "get"]).unwrap(),
            Val::S32(3)
        );
    }
}

#[test]
fn removing_the_init_export_keeps_later_references_valid() {
    // `alias` is a second export of the init function and `get` is exported
    // after it: both refer to component function indices past the removed one.
    let input = wat(r#"
    (component
      (core module $m
        (global $g (mut i32) (i32.const 0))
        (func (export "init") (global.set $g (i32.add (global.get $g) (i32.const 1))))
        (func (export "get") (result i32) (global.get $g)))
      (core instance $i (instantiate $m))
      (func $init (canon lift (core func $i "init")))
      (export $exported "component-init" (func $init))
      (export "again" (func $exported))
      (func $get (result s32) (canon lift (core func $i "get")))
      (export $get2 "get" (func $get))
      (instance $api (export "get" (func $get2)) (export "again" (func $exported)))
      (export "my:app/api" (instance $api)))"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(export_names(&output), ["again", "get", "my:app/api"]);
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::S32(1));
    assert_eq!(call1(&output, &["my:app/api#get"]).unwrap(), Val::S32(1));
    assert_eq!(call1(&output, &["again", "get"]).unwrap(), Val::S32(2));
    assert_eq!(
        call1(&output, &["my:app/api#again", "my:app/api#get"]).unwrap(),
        Val::S32(2)
    );
}
