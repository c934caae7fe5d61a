//! Nested components that define and instantiate core modules, at any depth.

use crate::support::*;
use wasmtime::component::Val;

/// A component with a memory and a global; `get` shows both.
const COUNTER: &str = r#"
  (component $counter
    (core module $m
      (global $n (mut i32) (i32.const 0))
      (memory 1)
      (func (export "bump")
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (i32.store (i32.const 0) (global.get $n)))
      (func (export "get") (result i32)
        (i32.add (global.get $n) (i32.mul (i32.load (i32.const 0)) (i32.const 100)))))
    (core instance $i (instantiate $m))
    (func (export "bump") (canon lift (core func $i "bump")))
    (func (export "get") (result u32) (canon lift (core func $i "get"))))"#;

#[test]
fn a_nested_component_keeps_its_state() {
    let input = wat(&format!(
        r#"(component
          {COUNTER}
          (instance $c (instantiate $counter))
          (export "component-init" (func $c "bump"))
          (export "get" (func $c "get")))"#
    ));
    assert_eq!(call1(&input, &["get"]).unwrap(), Val::U32(0));
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::U32(101));
    assert_eq!(export_names(&output), ["get"]);
}

// Wasmtime traps with "cannot enter component instance" when a call crosses
// from one component instance into another inside the same top-level
// instance, so each init below does its work inside one component.

#[test]
fn state_two_components_deep_beside_state_at_the_top_level() {
    let input = wat(&format!(
        r#"(component
          (component $outer
            {COUNTER}
            (instance $c (instantiate $counter))
            (export "bump" (func $c "bump"))
            (export "get" (func $c "get")))
          (instance $o (instantiate $outer))
          (core module $top
            (global $g (mut i32) (i32.const 5))
            (func (export "g") (result i32) (global.get $g)))
          (core instance $t (instantiate $top))
          (export "component-init" (func $o "bump"))
          (func (export "g") (result s32) (canon lift (core func $t "g")))
          (export "get" (func $o "get")))"#
    ));
    assert_eq!(
        call1(&input, &["component-init", "get"]).unwrap(),
        Val::U32(101)
    );
    let output = pre_init_with(&input, None, true).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::U32(101));
    assert_eq!(call1(&output, &["g"]).unwrap(), Val::S32(5));
    // State was captured, not re-run: a second init continues from it.
    assert_eq!(
        call1(&output, &["component-init", "get"]).unwrap(),
        Val::U32(202)
    );

    // The accessor interface reaches through both levels.
    let instrumented =
        component_init::instrument(&input, &component_init::InstrumentOptions::default()).unwrap();
    let paths: Vec<_> = instrumented
        .plan
        .accessors
        .iter()
        .map(|a| (a.func.as_str(), a.path.clone()))
        .collect();
    assert_eq!(
        paths,
        [
            ("get-memory-0", vec![0, 0]),
            ("get-global-0", vec![]),
            ("get-global-1", vec![0, 0]),
        ]
    );
}

const TWO_COUNTERS: &str = r#"
  (instance $a (instantiate $counter))
  (instance $b (instantiate $counter))
  (export "a" (func $a "get"))
  (export "b" (func $b "get"))
  (export "bump-a" (func $a "bump"))"#;

#[test]
fn a_nested_component_instantiated_twice_with_equal_states() {
    let input = wat(&format!(
        r#"(component
          {COUNTER}
          {TWO_COUNTERS}
          (core module $top
            (global $g (mut i32) (i32.const 0))
            (func (export "init") (global.set $g (i32.const 1)))
            (func (export "g") (result i32) (global.get $g)))
          (core instance $t (instantiate $top))
          (func (export "component-init") (canon lift (core func $t "init")))
          (func (export "g") (result s32) (canon lift (core func $t "g"))))"#
    ));
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["g"]).unwrap(), Val::S32(1));
    assert_eq!(call1(&output, &["a"]).unwrap(), Val::U32(0));
    assert_eq!(call1(&output, &["bump-a", "a"]).unwrap(), Val::U32(101));
    assert_eq!(call1(&output, &["bump-a", "b"]).unwrap(), Val::U32(0));
}

#[test]
fn a_nested_component_instantiated_twice_with_diverging_states_gets_a_copy_per_state() {
    let input = wat(&format!(
        r#"(component
          {COUNTER}
          {TWO_COUNTERS}
          (instance $c (instantiate $counter))
          (export "c" (func $c "get")))"#
    ));
    let output = pre_init_with(&input, Some("bump-a"), true).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["a"]).unwrap(), Val::U32(101));
    assert_eq!(call1(&output, &["b"]).unwrap(), Val::U32(0));
    // instances after the copy still instantiate the right definition
    assert_eq!(call1(&output, &["c"]).unwrap(), Val::U32(0));
    assert_eq!(call1(&output, &["bump-a", "a"]).unwrap(), Val::U32(202));
    // two definitions of the counter now: one per state
    let nested = wasmparser::Parser::new(0)
        .parse_all(&output)
        .filter(|p| matches!(p, Ok(wasmparser::Payload::ComponentSection { .. })))
        .count();
    assert_eq!(nested, 2);
}
