//! The accessor interface as WIT, and the WIT of outputs.

use crate::support::*;
use component_init::{InstrumentOptions, instrument};
use wasmtime::component::Val;

const INPUT: &str = r#"(component
  (core module $m
    (memory (export "memory") 1)
    (global $a (mut i32) (i32.const 0))
    (global $b (mut f64) (f64.const 0))
    (func (export "init")))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "other") (canon lift (core func $i "init"))))"#;

fn world_text(component: &[u8]) -> String {
    let decoded = wit_component::decode(component).unwrap();
    let resolve = decoded.resolve();
    // Like `wasm-tools component wit`: the root package, then the others.
    let others: Vec<_> = resolve
        .packages
        .iter()
        .map(|(id, _)| id)
        .filter(|id| *id != decoded.package())
        .collect();
    let mut printer = wit_component::WitPrinter::default();
    printer.print(resolve, decoded.package(), &others).unwrap();
    printer.output.to_string()
}

#[test]
fn instrumented_component_exports_the_synthesized_interface() {
    let instrumented = instrument(&wat(INPUT), &InstrumentOptions::default()).unwrap();
    let wit = instrumented.plan.wit().unwrap();
    assert!(
        wit.contains("package component-init:snapshot@0.1.0;"),
        "{wit}"
    );
    assert!(wit.contains("interface accessors {"), "{wit}");
    assert!(
        wit.contains("get-memory-0: func(offset: u64, len: u32) -> list<u8>;"),
        "{wit}"
    );
    assert!(wit.contains("get-global-0: func() -> s32;"), "{wit}");
    assert!(wit.contains("get-global-1: func() -> f64;"), "{wit}");
    assert!(wit.contains("export component-init: func();"), "{wit}");

    // What wit-component sees in the instrumented component.
    let seen = world_text(&instrumented.component);
    assert!(
        seen.contains("export component-init:snapshot/accessors@0.1.0;"),
        "{seen}"
    );
    assert!(
        seen.contains("get-memory-0: func(offset: u64, len: u32) -> list<u8>;"),
        "{seen}"
    );
}

#[test]
fn output_world_is_the_input_world_minus_the_init_export() {
    let input = wat(INPUT);
    let output = pre_init(&input).unwrap();
    let expected = world_text(&input).replace("  export component-init: func();\n", "");
    assert_eq!(world_text(&output), expected);
}

#[test]
fn a_component_exporting_a_type_at_top_level() {
    // Not expressible as a WIT world of its own; the accessor check is
    // structural, so it does not need to be.
    let input = wat(r#"
    (component
      (type $t (record (field "a" u32)))
      (export $e "t" (type $t))
      (core module $m (global $g (mut i32) (i32.const 0))
        (func (export "init") (global.set $g (i32.const 1)))
        (func (export "get") (result i32) (global.get $g)))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "get") (result u32) (canon lift (core func $i "get"))))"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::U32(1));
    assert!(export_names(&output).contains(&"t".to_string()));
}
