//! Tables and reference-typed globals that init changes, in core modules:
//! the output starts with every table's size and slots, and every funcref
//! global, exactly as init left them. Each test observes every slot through
//! `call_indirect` (and `ref.is_null`) in the initialized instance and in
//! the output, and compares.

use component_init::ModuleOptions;
use wasmtime::{Config, Engine, Instance, Linker, Module, Store};

use crate::support::wat;

/// What an instance shows of table 0 after `calls` (run first): its size,
/// then for each slot the result of calling it (`i32`), `-1` for null, or
/// `-2` for a trap (an import that traps).
fn observe(bytes: &[u8], calls: &[&str]) -> Vec<i32> {
    let mut config = Config::new();
    config.wasm_function_references(true);
    config.wasm_gc(true);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, bytes).unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.define_unknown_imports_as_traps(&module).unwrap();
    let instance: Instance = linker.instantiate(&mut store, &module).unwrap();
    for name in calls {
        let f = instance.get_typed_func::<(), ()>(&mut store, name).unwrap();
        f.call(&mut store, ()).unwrap();
    }
    let size = instance
        .get_typed_func::<(), i32>(&mut store, "size")
        .unwrap()
        .call(&mut store, ())
        .unwrap();
    let slot = instance
        .get_typed_func::<i32, i32>(&mut store, "slot")
        .unwrap();
    let mut seen = vec![size];
    for i in 0..size {
        seen.push(slot.call(&mut store, i).unwrap_or(-2));
    }
    if let Ok(global) = instance.get_typed_func::<(), i32>(&mut store, "global") {
        seen.push(global.call(&mut store, ()).unwrap_or(-2));
    }
    seen
}

/// Calls the export `name` (`[] -> [i32]`) of a fresh instance of `bytes`.
fn call_i32(bytes: &[u8], name: &str) -> wasmtime::Result<i32> {
    let engine = Engine::default();
    let module = Module::new(&engine, bytes)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let f = instance.get_typed_func::<(), i32>(&mut store, name)?;
    f.call(&mut store, ())
}

fn pre_init(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    component_init::initialize_module_with_wasmtime(bytes, &ModuleOptions::default())
}

/// The observers every test module has: `size`, and `slot(i)`, which calls
/// slot `i` (`-1` when null).
const OBSERVERS: &str = r#"
  (type $r (func (result i32)))
  (func (export "size") (result i32) (table.size $t))
  (func (export "slot") (param i32) (result i32)
    (if (result i32) (ref.is_null (table.get $t (local.get 0)))
      (then (i32.const -1))
      (else (call_indirect $t (type $r) (local.get 0)))))
"#;

fn module(body: &str) -> Vec<u8> {
    wat(&format!("(module {body} {OBSERVERS})"))
}

/// Pre-initializes `input` and checks that the output shows what the
/// initialized instance shows, and that init really changed the table.
fn same_as_initialized(input: &[u8]) -> Vec<i32> {
    let initialized = observe(input, &["wizer-initialize"]);
    let uninitialized = observe(input, &[]);
    assert_ne!(initialized, uninitialized, "init changes nothing");
    let output = pre_init(input).unwrap_or_else(|e| panic!("{e:#}"));
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&output)
        .unwrap();
    assert_eq!(observe(&output, &[]), initialized);
    initialized
}

#[test]
fn set_grow_fill_copy_init_and_elem_drop() {
    let input = module(
        r#"
      (table $t 2 funcref)
      (func $a (result i32) (i32.const 10))
      (func $b (result i32) (i32.const 20))
      (func $c (result i32) (i32.const 30))
      (elem $seg func $c $a)
      (elem (table $t) (i32.const 0) func $a)
      (elem declare func $b)
      (func (export "wizer-initialize")
        (table.set $t (i32.const 1) (ref.func $b))
        (drop (table.grow $t (ref.func $c) (i32.const 4)))
        (table.fill $t (i32.const 3) (ref.func $a) (i32.const 2))
        (table.copy $t $t (i32.const 5) (i32.const 0) (i32.const 1))
        (table.init $t $seg (i32.const 2) (i32.const 0) (i32.const 1))
        (elem.drop $seg)
        (table.set $t (i32.const 0) (ref.null func)))
      (func (export "init-again") (result i32)
        (table.init $t $seg (i32.const 0) (i32.const 0) (i32.const 1)) (i32.const 1))"#,
    );
    // size 6: null, b, c (from the dropped segment), a, a, a (copied from
    // slot 0 before it was nulled)
    assert_eq!(same_as_initialized(&input), [6, -1, 20, 30, 10, 10, 10]);
    // the segment init dropped is dropped in the output too
    let output = pre_init(&input).unwrap();
    let err = call_i32(&output, "init-again").unwrap_err();
    assert!(format!("{err:?}").contains("out of bounds"), "{err:?}");
}

#[test]
fn a_funcref_global() {
    let input = module(
        r#"
      (table $t 1 funcref)
      (global $g (mut funcref) (ref.null func))
      (func $a (result i32) (i32.const 7))
      (elem declare func $a)
      (func (export "wizer-initialize") (global.set $g (ref.func $a)))
      (func (export "global") (result i32)
        (call_indirect $t (type $r) (i32.const 0)))
      (func (export "from-global") (result i32)
        (table.set $t (i32.const 0) (global.get $g))
        (call_indirect $t (type $r) (i32.const 0)))"#,
    );
    let output = pre_init(&input).unwrap();
    assert_eq!(call_i32(&output, "from-global").unwrap(), 7);
    // uninitialized, the global is null
    assert!(call_i32(&input, "from-global").is_err());
}

#[test]
fn a_slot_holding_an_imported_function() {
    let input = module(
        r#"
      (import "env" "host" (func $host (result i32)))
      (table $t 1 funcref)
      (elem declare func $host)
      (func (export "wizer-initialize")
        (drop (table.grow $t (ref.func $host) (i32.const 1))))"#,
    );
    // slot 1 holds the import, which traps here (the import stays)
    assert_eq!(same_as_initialized(&input), [2, -1, -2]);
}

#[test]
fn a_typed_function_reference_table_and_a_table_with_an_initializer() {
    let input = module(
        r#"
      (table $t 3 (ref null $r))
      (table $u 2 funcref (ref.func $a))
      (func $a (result i32) (i32.const 1))
      (func $b (result i32) (i32.const 2))
      (elem declare func $b)
      (func (export "wizer-initialize")
        (table.set $t (i32.const 2) (ref.func $b))
        (table.set $u (i32.const 1) (ref.null func)))
      (func (export "u1-null") (result i32) (ref.is_null (table.get $u (i32.const 1))))"#,
    );
    assert_eq!(same_as_initialized(&input), [3, -1, -1, 2]);
    let output = pre_init(&input).unwrap();
    // slot 1 of $u starts non-null; init nulled it, and so does the output
    assert_eq!(call_i32(&output, "u1-null").unwrap(), 1);
}

#[test]
fn an_init_that_changes_no_table_leaves_them_as_they_were() {
    let input = module(
        r#"
      (table $t 2 funcref)
      (func $a (result i32) (i32.const 1))
      (elem (table $t) (i32.const 0) func $a)
      (global $n (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $n (i32.const 5)))
      (func (export "never") (table.set $t (i32.const 1) (ref.func $a)))"#,
    );
    let output = pre_init(&input).unwrap();
    // the element and table sections are the input's, byte for byte
    let sections = |bytes: &[u8]| -> Vec<Vec<u8>> {
        wasmparser::Parser::new(0)
            .parse_all(bytes)
            .filter_map(|p| match p.unwrap() {
                wasmparser::Payload::ElementSection(r) => Some(bytes[r.range()].to_vec()),
                wasmparser::Payload::TableSection(r) => Some(bytes[r.range()].to_vec()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(sections(&output), sections(&input));
    assert_eq!(observe(&output, &[]), [2, 1, -1]);
}

#[test]
fn references_no_segment_can_express_are_refused() {
    for (body, expected) in [
        (
            r#"(import "env" "make" (func $make (result externref)))
               (table $t 1 funcref)
               (table $x 1 externref)
               (func (export "wizer-initialize") (table.set $x (i32.const 0) (call $make)))"#,
            // the import traps first: an externref needs the host
            "env",
        ),
        (
            r#"(table $t 1 funcref)
               (type $s (struct (field i32)))
               (table $x 1 anyref)
               (func (export "wizer-initialize")
                 (table.set $x (i32.const 0) (struct.new $s (i32.const 1))))"#,
            "slot 0 of table 1 holds a non-null reference that is not a function",
        ),
        (
            r#"(table $t 1 funcref)
               (type $s (struct (field i32)))
               (global $g (mut anyref) (ref.null any))
               (func (export "wizer-initialize") (global.set $g (struct.new $s (i32.const 1))))"#,
            "global 0 holds a non-null reference that is not a function",
        ),
    ] {
        let err = format!("{:#}", pre_init(&module(body)).unwrap_err());
        assert!(err.contains(expected), "{body}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
