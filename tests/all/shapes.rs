//! Several modules and instances sharing state, in the shapes wit-component
//! emits, and nested components.

use crate::support::*;
use wasmtime::component::Val;

/// The shape wit-component gives a wasip1 module with its adapter: a shim
/// module with a table of trampolines, the main module (memory, start
/// function calling `_initialize`), an adapter that imports the main memory
/// and has globals of its own, and a fixups module that fills the shim's
/// table with the adapter's functions.
const ADAPTER_SHAPE: &str = r#"
(component
  (core module $shim
    (type $t (func (param i32)))
    (table (export "$imports") 1 1 funcref)
    (func (export "log") (param i32) (call_indirect (type $t) (local.get 0) (i32.const 0))))
  (core module $main
    (import "adapter" "log" (func $log (param i32)))
    (memory (export "memory") 1)
    (global $sp (mut i32) (i32.const 1024))
    (global $inited (mut i32) (i32.const 0))
    (func $_initialize (global.set $inited (i32.add (global.get $inited) (i32.const 1))))
    (start $_initialize)
    (func (export "init")
      (call $log (i32.const 5))
      (global.set $sp (i32.const 2048))
      (i32.store (i32.const 0) (i32.const 77)))
    (func (export "get") (result i32)
      (i32.add (i32.add (i32.load (i32.const 0)) (global.get $sp)) (global.get $inited))))
  (core module $adapter
    (import "env" "memory" (memory 0))
    (global $total (mut i64) (i64.const 0))
    (func (export "log") (param i32)
      (global.set $total (i64.add (global.get $total) (i64.extend_i32_u (local.get 0))))
      ;; the adapter writes into the main module's memory
      (i32.store (i32.const 4) (i32.add (i32.load (i32.const 4)) (local.get 0))))
    (func (export "total") (result i64) (global.get $total))
    (func (export "in-main-memory") (result i32) (i32.load (i32.const 4))))
  (core module $fixups
    (import "" "$imports" (table 1 1 funcref))
    (import "" "log" (func $log (param i32)))
    (elem (i32.const 0) func $log))
  (core instance $shim (instantiate $shim))
  (core instance $main (instantiate $main (with "adapter" (instance $shim))))
  (core instance $env (export "memory" (memory $main "memory")))
  (core instance $adapter (instantiate $adapter (with "env" (instance $env))))
  (core instance $fixup-args
    (export "$imports" (table $shim "$imports"))
    (export "log" (func $adapter "log")))
  (core instance $fixups (instantiate $fixups (with "" (instance $fixup-args))))
  (func (export "component-init") (canon lift (core func $main "init")))
  (func (export "get") (result s32) (canon lift (core func $main "get")))
  (func (export "total") (result s64) (canon lift (core func $adapter "total")))
  (func (export "in-main") (result s32) (canon lift (core func $adapter "in-main-memory")))
)"#;

#[test]
fn adapter_shaped_component_keeps_state_of_every_instance() {
    let input = wat(ADAPTER_SHAPE);
    assert_eq!(call1(&input, &["get"]).unwrap(), Val::S32(1024 + 1));
    assert_eq!(call1(&input, &["total"]).unwrap(), Val::S64(0));

    let output = pre_init(&input).unwrap();
    validate(&output);
    // main's memory and globals; `_initialize` ran once, at build time
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::S32(77 + 2048 + 1));
    // the adapter's own global
    assert_eq!(call1(&output, &["total"]).unwrap(), Val::S64(5));
    // what the adapter wrote into main's memory
    assert_eq!(call1(&output, &["in-main"]).unwrap(), Val::S32(5));
    // the shim's table is still filled by the fixups module at instantiation
    assert_eq!(
        call1(&output, &["component-init", "total"])
            .err()
            .map(|e| e.to_string()),
        Some("no export component-init".to_string())
    );
}

#[test]
fn table_filled_by_fixups_still_dispatches_after_pre_init() {
    let input = wat(ADAPTER_SHAPE);
    let output = pre_init_with(&input, None, true).unwrap();
    // Calling init again goes main -> shim table -> adapter.
    assert_eq!(
        call1(&output, &["component-init", "total"]).unwrap(),
        Val::S64(10)
    );
    assert_eq!(
        call1(&output, &["component-init", "in-main"]).unwrap(),
        Val::S32(10)
    );
}

#[test]
fn a_module_instantiated_twice_with_equal_states_is_emitted_once() {
    let input = wat(r#"
    (component
      (core module $counter
        (global $n (mut i32) (i32.const 0))
        (func (export "bump") (global.set $n (i32.add (global.get $n) (i32.const 1))))
        (func (export "get") (result i32) (global.get $n)))
      (core instance $a (instantiate $counter))
      (core instance $b (instantiate $counter))
      (core module $init
        (import "a" "bump" (func $a))
        (import "b" "bump" (func $b))
        (func (export "init") (call $a) (call $b)))
      (core instance $i (instantiate $init (with "a" (instance $a)) (with "b" (instance $b))))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "a") (result s32) (canon lift (core func $a "get")))
      (func (export "b") (result s32) (canon lift (core func $b "get"))))"#);
    let output = pre_init(&input).unwrap();
    assert_eq!(call1(&output, &["a"]).unwrap(), Val::S32(1));
    assert_eq!(call1(&output, &["b"]).unwrap(), Val::S32(1));
}

#[test]
fn nested_components_without_core_modules_pass_through_unchanged() {
    let inner = r#"(component $inner
        (import "f" (func $f (result s32)))
        (export "g" (func $f)))"#;
    let input = wat(&format!(
        r#"(component
      {inner}
      (core module $m
        (global $g (mut i32) (i32.const 0))
        (func (export "init") (global.set $g (i32.const 8)))
        (func (export "get") (result i32) (global.get $g)))
      (core instance $i (instantiate $m))
      (func $get (result s32) (canon lift (core func $i "get")))
      (instance $c (instantiate $inner (with "f" (func $get))))
      (func (export "component-init") (canon lift (core func $i "init")))
      (export "nested-get" (func $c "g")))"#
    ));
    assert_eq!(call1(&input, &["nested-get"]).unwrap(), Val::S32(0));
    let output = pre_init(&input).unwrap();
    assert_eq!(call1(&output, &["nested-get"]).unwrap(), Val::S32(8));
    // The nested component's bytes are copied as they were.
    let inner_bytes = nested_component_bytes(&input);
    assert_eq!(nested_component_bytes(&output), inner_bytes);
}

fn nested_component_bytes(component: &[u8]) -> Vec<u8> {
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        if let wasmparser::Payload::ComponentSection {
            unchecked_range, ..
        } = payload.unwrap()
        {
            return component[unchecked_range].to_vec();
        }
    }
    panic!("no nested component");
}

#[test]
fn a_module_instantiated_three_times_gets_a_copy_per_distinct_state() {
    let input = wat(r#"
    (component
      (core module $counter
        (memory (export "memory") 1)
        (global $n (mut i32) (i32.const 0))
        (func (export "bump")
          (global.set $n (i32.add (global.get $n) (i32.const 1)))
          (i32.store (i32.const 64) (global.get $n)))
        (func (export "get") (result i32)
          (i32.add (global.get $n) (i32.load (i32.const 64)))))
      (core instance $a (instantiate $counter))
      (core instance $b (instantiate $counter))
      (core instance $c (instantiate $counter))
      (core instance $d (instantiate $counter))
      (core module $init
        (import "a" "bump" (func $a))
        (import "c" "bump" (func $c))
        (func (export "init") (call $a) (call $c) (call $c)))
      (core instance $i (instantiate $init (with "a" (instance $a)) (with "c" (instance $c))))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "a") (result s32) (canon lift (core func $a "get")))
      (func (export "b") (result s32) (canon lift (core func $b "get")))
      (func (export "c") (result s32) (canon lift (core func $c "get")))
      (func (export "d") (result s32) (canon lift (core func $d "get"))))"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["a"]).unwrap(), Val::S32(2));
    assert_eq!(call1(&output, &["b"]).unwrap(), Val::S32(0));
    assert_eq!(call1(&output, &["c"]).unwrap(), Val::S32(4));
    // $b and $d ended alike: they share a copy
    assert_eq!(call1(&output, &["d"]).unwrap(), Val::S32(0));
    // three states, three copies of the module (plus the init module)
    let modules = wasmparser::Parser::new(0)
        .parse_all(&output)
        .filter(|p| matches!(p, Ok(wasmparser::Payload::ModuleSection { .. })))
        .count();
    assert_eq!(modules, 4);
}
