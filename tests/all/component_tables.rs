//! Tables and reference-typed globals that init changes, carried in
//! components: each shape runs init in the input, reads every slot through
//! `call_indirect`, and checks that the output, without init, answers the
//! same.

use crate::support::*;
use anyhow::Result;
use wasmtime::Store;
use wasmtime::component::{Linker, Val};

/// Calls `call(slot, x)` for every slot below `slots` (after `before`, the
/// calls that run first: init for the input, nothing for the output).
fn slots(component: &[u8], before: &[&str], slots: u32, x: i32) -> Vec<Vec<Val>> {
    let args: Vec<[Val; 2]> = (0..slots).map(|s| [Val::U32(s), Val::S32(x)]).collect();
    let mut calls: Vec<(&str, &[Val])> = before.iter().map(|c| (*c, &[][..])).collect();
    calls.extend(args.iter().map(|a| ("call", &a[..])));
    calls.push(("size", &[]));
    let mut results = run(component, &calls).unwrap();
    results.drain(..before.len());
    results
}

/// Every instruction that changes a table, and `elem.drop`, during init; a
/// funcref global written by init.
const ONE_INSTANCE: &str = r#"
(component
  (core module $m
    (type $ii (func (param i32) (result i32)))
    (table $t 2 funcref)
    (global $g (mut funcref) (ref.null func))
    (func $double (type $ii) (i32.mul (local.get 0) (i32.const 2)))
    (func $square (type $ii) (i32.mul (local.get 0) (local.get 0)))
    (func $neg (type $ii) (i32.sub (i32.const 0) (local.get 0)))
    (func $inc (type $ii) (i32.add (local.get 0) (i32.const 1)))
    (elem (i32.const 0) func $double)
    (elem $p func $square $neg)
    (elem declare func $inc)
    (func (export "init")
      ;; [double, null, square x 4]
      (drop (table.grow (ref.func $square) (i32.const 4)))
      ;; [double, inc, square x 4]
      (table.set (i32.const 1) (ref.func $inc))
      ;; [double, inc, square, neg, neg, square]... from $p: (square, neg)
      (table.init $p (i32.const 3) (i32.const 0) (i32.const 2))
      (elem.drop $p)
      ;; slot 5 null, slot 2 <- slot 1
      (table.fill (i32.const 5) (ref.null func) (i32.const 1))
      (table.copy (i32.const 2) (i32.const 1) (i32.const 1))
      (global.set $g (ref.func $neg)))
    (func (export "call") (param i32 i32) (result i32)
      (if (ref.is_null (table.get (local.get 0)))
        (then (return (i32.const -999))))
      (call_indirect (type $ii) (local.get 1) (local.get 0)))
    (func (export "size") (result i32) (table.size))
    (func (export "via-global") (param i32) (result i32)
      (call_ref $ii (local.get 0) (ref.cast (ref $ii) (global.get $g))))
    (func (export "init-again") (result i32)
      ;; $p was dropped: a non-empty table.init traps, an empty one does not
      (table.init $p (i32.const 0) (i32.const 0) (i32.const 0))
      (i32.const 1)))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "call") (param "slot" u32) (param "x" s32) (result s32)
    (canon lift (core func $i "call")))
  (func (export "size") (result u32) (canon lift (core func $i "size")))
  (func (export "via-global") (param "x" s32) (result s32)
    (canon lift (core func $i "via-global")))
  (func (export "init-again") (result s32) (canon lift (core func $i "init-again"))))"#;

#[test]
fn every_table_instruction_and_a_funcref_global_are_carried() {
    let input = wat(ONE_INSTANCE);
    let output = pre_init(&input).unwrap();
    validate(&output);
    let before = slots(&input, &["component-init"], 6, 5);
    let after = slots(&output, &[], 6, 5);
    assert_eq!(before, after);
    let answers: Vec<Val> = after.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        answers,
        [10, 6, 6, 25, -5, -999]
            .map(Val::S32)
            .into_iter()
            .chain([Val::U32(6)])
            .collect::<Vec<_>>()
    );
    let global = run(&output, &[("via-global", &[Val::S32(4)])]).unwrap();
    assert_eq!(global, [[Val::S32(-4)]]);
    assert_eq!(call1(&output, &["init-again"]).unwrap(), Val::S32(1));
}

/// A table defined by one core instance and imported by another, which
/// grows it with its own functions and with a function it imports from
/// the first; the first instance calls through it.
pub(crate) const SHARED: &str = r#"
(component
  (core module $owner
    (type $ii (func (param i32) (result i32)))
    (table $t (export "table") 1 funcref)
    (func $double (export "double") (type $ii) (i32.mul (local.get 0) (i32.const 2)))
    (elem (i32.const 0) func $double)
    (func (export "call") (param i32 i32) (result i32)
      (if (ref.is_null (table.get (local.get 0)))
        (then (return (i32.const -999))))
      (call_indirect (type $ii) (local.get 1) (local.get 0)))
    (func (export "size") (result i32) (table.size))
    (func (export "noop")))
  (core module $library
    (type $ii (func (param i32) (result i32)))
    (import "owner" "table" (table $t 1 funcref))
    (import "owner" "double" (func $double (type $ii)))
    (func $square (type $ii) (i32.mul (local.get 0) (local.get 0)))
    (func $neg (type $ii) (i32.sub (i32.const 0) (local.get 0)))
    (elem declare func $square $neg $double)
    (func (export "init")
      (local $base i32)
      (local.set $base (table.grow (ref.func $square) (i32.const 3)))
      (table.set (i32.add (local.get $base) (i32.const 1)) (ref.func $neg))
      (table.set (i32.add (local.get $base) (i32.const 2)) (ref.func $double))
      ;; the owner's own slot, overwritten with the library's function
      (table.set (i32.const 0) (ref.func $neg))))
  (core instance $o (instantiate $owner))
  (core instance $l (instantiate $library (with "owner" (instance $o))))
  (func (export "component-init") (canon lift (core func $l "init")))
  (func (export "call") (param "slot" u32) (param "x" s32) (result s32)
    (canon lift (core func $o "call")))
  (func (export "size") (result u32) (canon lift (core func $o "size"))))"#;

#[test]
fn a_table_shared_by_two_instances_is_carried_from_the_instance_that_names_each_slot() {
    let input = wat(SHARED);
    let output = pre_init(&input).unwrap();
    validate(&output);
    let before = slots(&input, &["component-init"], 4, 3);
    let after = slots(&output, &[], 4, 3);
    assert_eq!(before, after);
    let answers: Vec<Val> = after.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        answers,
        [
            Val::S32(-3),
            Val::S32(9),
            Val::S32(-3),
            Val::S32(6),
            Val::U32(4)
        ]
    );
}

/// As [`SHARED`], but the library's slot comes from a third instance that
/// does not have the table: nothing in the output can put it there.
#[test]
fn a_slot_no_instance_of_the_output_can_name_is_refused() {
    let input = wat(r#"
(component
  (core module $owner
    (table $t (export "table") 1 funcref)
    (func (export "size") (result i32) (table.size)))
  (core module $other
    (table $u (export "other") 1 funcref)
    (func $seven (result i32) (i32.const 7))
    (elem (i32.const 0) func $seven))
  (core module $copier
    (import "owner" "table" (table $t 1 funcref))
    (import "other" "other" (table $u 1 funcref))
    (func (export "init") (table.copy $t $u (i32.const 0) (i32.const 0) (i32.const 1))))
  (core instance $o (instantiate $owner))
  (core instance $x (instantiate $other))
  (core instance $c (instantiate $copier (with "owner" (instance $o)) (with "other" (instance $x))))
  (func (export "component-init") (canon lift (core func $c "init"))))"#);
    let err = format!("{:#}", pre_init(&input).unwrap_err());
    assert!(
        err.contains(
            "slot 0 of table 0 of core instance 0 (core module 0) holds function 0 of core \
             instance 1 (core module 1), and no instance that defines or imports that table \
             can name it"
        ),
        "{err}"
    );
}

/// A component import, lowered into a module, put in its table by init.
const LOWERED: &str = r#"
(component
  (import "triple" (func $triple (param "x" s32) (result s32)))
  (core func $triple-core (canon lower (func $triple)))
  (core module $m
    (type $ii (func (param i32) (result i32)))
    (import "host" "triple" (func $triple (type $ii)))
    (table $t 1 funcref)
    (elem declare func $triple)
    (func (export "init") (drop (table.grow (ref.func $triple) (i32.const 2))))
    (func (export "call") (param i32 i32) (result i32)
      (if (ref.is_null (table.get (local.get 0)))
        (then (return (i32.const -999))))
      (call_indirect (type $ii) (local.get 1) (local.get 0)))
    (func (export "size") (result i32) (table.size)))
  (core instance $host (export "triple" (func $triple-core)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "call") (param "slot" u32) (param "x" s32) (result s32)
    (canon lift (core func $i "call")))
  (func (export "size") (result u32) (canon lift (core func $i "size"))))"#;

/// Runs `calls` on `component` with the component import `triple`
/// defined (tripling).
pub(crate) fn run_with_triple(component: &[u8], calls: &[(&str, &[Val])]) -> Result<Vec<Vec<Val>>> {
    let (engine, component) = compile(component)?;
    let mut linker = Linker::<()>::new(&engine);
    linker
        .root()
        .func_wrap("triple", |_, (x,): (i32,)| Ok((x * 3,)))?;
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &component)?;
    let mut out = Vec::new();
    for (name, args) in calls {
        let func = instance
            .get_func(&mut store, *name)
            .ok_or_else(|| anyhow::anyhow!("no export {name}"))?;
        let mut results = vec![Val::Bool(false); func.ty(&store).results().len()];
        func.call(&mut store, args, &mut results)?;
        out.push(results);
    }
    Ok(out)
}

#[test]
fn a_slot_holding_a_lowered_import_is_carried_by_the_import() {
    let input = wat(LOWERED);
    let output = pre_init(&input).unwrap();
    validate(&output);
    let calls: &[(&str, &[Val])] = &[
        ("call", &[Val::U32(0), Val::S32(5)]),
        ("call", &[Val::U32(1), Val::S32(5)]),
        ("call", &[Val::U32(2), Val::S32(5)]),
        ("size", &[]),
    ];
    let mut with_init = vec![("component-init", &[][..])];
    with_init.extend_from_slice(calls);
    let mut before = run_with_triple(&input, &with_init).unwrap();
    before.remove(0);
    let after = run_with_triple(&output, calls).unwrap();
    assert_eq!(before, after);
    assert_eq!(
        after,
        [
            vec![Val::S32(-999)],
            vec![Val::S32(15)],
            vec![Val::S32(15)],
            vec![Val::U32(3)]
        ]
    );
}

/// A nested component whose module is instantiated twice; init (through a
/// third module) gives each instance's table a different function.
const NESTED_TWICE: &str = r#"
(component
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
        (call_indirect (type $ii) (local.get 1) (local.get 0)))
      (func (export "size") (result i32) (table.size)))
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
      (canon lift (core func $b "call")))
    (func (export "size-a") (result u32) (canon lift (core func $a "size")))
    (func (export "size-b") (result u32) (canon lift (core func $b "size"))))
  (instance $x (instantiate $inner))
  (export "component-init" (func $x "init"))
  (export "call-a" (func $x "call-a"))
  (export "call-b" (func $x "call-b"))
  (export "size-a" (func $x "size-a"))
  (export "size-b" (func $x "size-b")))"#;

#[test]
fn a_module_instantiated_twice_in_a_nested_component_keeps_each_instance_table() {
    let input = wat(NESTED_TWICE);
    let output = pre_init(&input).unwrap();
    validate(&output);
    let calls: Vec<(&str, Vec<Val>)> = vec![
        ("call-a", vec![Val::U32(0), Val::S32(7)]),
        ("call-a", vec![Val::U32(1), Val::S32(7)]),
        ("call-b", vec![Val::U32(0), Val::S32(7)]),
        ("size-a", vec![]),
        ("size-b", vec![]),
    ];
    let calls: Vec<(&str, &[Val])> = calls.iter().map(|(n, a)| (*n, &a[..])).collect();
    let mut with_init = vec![("component-init", &[][..])];
    with_init.extend_from_slice(&calls);
    let mut before = run(&input, &with_init).unwrap();
    before.remove(0);
    let after = run(&output, &calls).unwrap();
    assert_eq!(before, after);
    assert_eq!(
        after,
        [
            vec![Val::S32(-999)],
            vec![Val::S32(14)],
            vec![Val::S32(49)],
            vec![Val::U32(2)],
            vec![Val::U32(1)]
        ]
    );
}

#[test]
fn a_gc_object_kept_in_a_table_is_refused() {
    let input = wat(r#"
(component
  (core module $m
    (type $s (struct (field i32)))
    (table $t 1 anyref)
    (func (export "init") (table.set (i32.const 0) (struct.new $s (i32.const 1)))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init"))))"#);
    let err = format!("{:#}", pre_init(&input).unwrap_err());
    assert!(
        err.contains(
            "slot 0 of table 0 of core instance 0 (core module 0) holds a non-null reference \
             that is not a function"
        ),
        "{err}"
    );
}

#[test]
fn a_non_null_externref_kept_in_a_global_is_refused() {
    let input = wat(r#"
(component
  (core module $m
    (global $g (mut externref) (ref.null extern))
    (func (export "init") (global.set $g (extern.convert_any (ref.i31 (i32.const 1))))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init"))))"#);
    let err = format!("{:#}", pre_init(&input).unwrap_err());
    assert!(
        err.contains("global 0 of core instance 0 (core module 0) holds a reference no initializer can express"),
        "{err}"
    );
}

/// The table and element sections of the modules of `component` (of the
/// top level).
fn tables_of(component: &[u8]) -> Vec<Vec<u8>> {
    let mut sections = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. } => depth += 1,
            wasmparser::Payload::End(_) if depth > 0 => depth -= 1,
            wasmparser::Payload::TableSection(r) if depth == 1 => {
                sections.push(component[r.range()].to_vec())
            }
            wasmparser::Payload::ElementSection(r) if depth == 1 => {
                sections.push(component[r.range()].to_vec())
            }
            _ => {}
        }
    }
    sections
}

#[test]
fn an_init_that_changes_no_table_leaves_tables_and_segments_as_they_are() {
    let input = wat(SHARED).to_vec();
    // init only reads the table
    let quiet = wat(&SHARED.replace(
        r#"(func (export "component-init") (canon lift (core func $l "init")))"#,
        r#"(func (export "component-init") (canon lift (core func $o "noop")))"#,
    ));
    assert_ne!(input, quiet);
    let output = pre_init(&quiet).unwrap();
    assert_eq!(tables_of(&output), tables_of(&quiet));
    // the owner's table and element sections, the library's element section
    assert_eq!(tables_of(&output).len(), 3);
    assert_eq!(
        slots(&output, &[], 1, 3),
        slots(&quiet, &["component-init"], 1, 3)
    );
}

/// Snapshots that do not fit the component (a function index past the
/// instance's functions, a global image of another size, a table of more
/// slots than the tool carries) are refused with an error, not a panic or
/// an invalid output.
#[test]
fn tampered_table_snapshots_are_refused() {
    use component_init::{InstrumentOptions, MemoryImage, State, Value, WasmtimeRuntime};
    let input = wat(ONE_INSTANCE);
    let instrumented = component_init::instrument(&input, &InstrumentOptions::default()).unwrap();
    let snapshot = WasmtimeRuntime::new()
        .unwrap()
        .take_snapshot(&instrumented)
        .unwrap();
    let plan = &instrumented.plan;
    let position =
        |want: fn(&State) -> bool| plan.accessors.iter().position(|a| want(&a.state)).unwrap();
    let table = position(|s| matches!(s, State::Table { .. }));
    let global = position(|s| matches!(s, State::RefGlobal { .. }));
    assert!(plan.apply(&input, &snapshot).is_ok());
    let tampered = |at: usize, image: MemoryImage| {
        let mut snapshot = snapshot.clone();
        snapshot.values[at] = Value::Memory(image);
        format!("{:#}", plan.apply(&input, &snapshot).unwrap_err())
    };
    // slot 0: function 99 of core instance 0
    let mut image = MemoryImage::new();
    image.push(&((1u64 << 32) | 99).to_le_bytes());
    let err = tampered(table, image);
    assert!(
        err.contains("holds function 99 of core instance 0, which has no such function"),
        "{err}"
    );
    let mut image = MemoryImage::new();
    image.push(&[0; 16]);
    let err = tampered(global, image);
    assert!(err.contains("is 16 bytes, not one 8-byte slot"), "{err}");
    let mut image = MemoryImage::new();
    image.push_zeros(8 << 27);
    let err = tampered(table, image);
    assert!(
        err.contains("more than the 67108864 this tool carries"),
        "{err}"
    );
}

/// A function whose parameter is a reference to its module's own struct
/// type cannot answer the table reader's probe (the reader does not have
/// the type): a slot holding it is refused, naming the slot.
#[test]
fn a_slot_the_reader_cannot_identify_is_refused() {
    let input = wat(r#"
(component
  (core module $m
    (type $s (struct (field i32)))
    (type $f (func (param (ref null $s)) (result i32)))
    (table $t 1 funcref)
    (func $get (type $f) (struct.get $s 0 (local.get 0)))
    (elem declare func $get)
    (func (export "init") (table.set (i32.const 0) (ref.func $get))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init"))))"#);
    let err = format!("{:#}", pre_init(&input).unwrap_err());
    assert!(
        err.contains(
            "slot 0 of table 0 of core instance 0 (core module 0) holds a function the table \
             reader could not identify"
        ),
        "{err}"
    );
}

/// A component with a table of typed function references, whose init is
/// its export `init`: `quiet` (changes nothing) or `loud` (sets a slot);
/// `get` calls slot 0, or answers -1 when it is null.
pub(crate) fn typed_table(init: &str) -> Vec<u8> {
    wat(&format!(
        r#"
(component
  (core module $m
(type $f (func (result i32)))
(table $t 1 (ref null $f))
(func $seven (type $f) (i32.const 7))
(elem declare func $seven)
(func (export "quiet"))
(func (export "loud") (table.set $t (i32.const 0) (ref.func $seven)))
(func (export "get") (result i32)
  (if (ref.is_null (table.get $t (i32.const 0))) (then (return (i32.const -1))))
  (call_ref $f (table.get $t (i32.const 0)))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "{init}")))
  (func (export "get") (result s32) (canon lift (core func $i "get"))))"#
    ))
}

/// A level with a table of typed function references is not read (the
/// reader would need the module's types): its table code is accepted as
/// long as it does not run during init, and refused naming the instruction
/// when it does.
#[test]
fn typed_function_reference_tables_are_refused_only_when_init_changes_them() {
    let component = typed_table;
    let output = pre_init(&component("quiet")).unwrap();
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::S32(-1));
    let err = format!("{:#}", pre_init(&component("loud")).unwrap_err());
    assert!(
        err.contains(
            "`table.set` ran during init, in function 2 of core module 0 (core instance 0), in \
             a component level with a table or global of typed references"
        ),
        "{err}"
    );
}

/// The reader sees an imported function answer as the importer's (its
/// wrapper): a slot or global is still carried when the instance that
/// writes it names the same function another way (it defines it, or
/// imports it too). Here a glue instance stores the owner's own function,
/// which it imports, into the owner's funcref global and (through a table
/// of its own, which a third instance copies from) into the owner's table.
#[test]
fn a_function_imported_by_the_instance_that_stored_it_is_named_by_its_owner() {
    let input = wat(r#"
(component
  (core module $owner
    (type $ii (func (param i32) (result i32)))
    (table $t (export "t") 1 funcref)
    (global $g (export "g") (mut funcref) (ref.null func))
    (func $double (export "double") (type $ii) (i32.mul (local.get 0) (i32.const 2)))
    (func (export "via-table") (param i32) (result i32)
      (call_indirect (type $ii) (local.get 0) (i32.const 0)))
    (func (export "via-global") (param i32) (result i32)
      (call_ref $ii (local.get 0) (ref.cast (ref $ii) (global.get $g)))))
  (core module $glue
    (type $ii (func (param i32) (result i32)))
    (import "owner" "double" (func $double (type $ii)))
    (import "owner" "g" (global $g (mut funcref)))
    (table $mine (export "mine") 1 funcref)
    (elem declare func $double)
    (func (export "init")
      (global.set $g (ref.func $double))
      (table.set $mine (i32.const 0) (ref.func $double))))
  (core module $copier
    (import "owner" "t" (table $t 1 funcref))
    (import "glue" "mine" (table $mine 1 funcref))
    (import "glue" "init" (func $glue-init))
    (func (export "init")
      (call $glue-init)
      (table.copy $t $mine (i32.const 0) (i32.const 0) (i32.const 1))))
  (core instance $o (instantiate $owner))
  (core instance $g (instantiate $glue (with "owner" (instance $o))))
  (core instance $c (instantiate $copier (with "owner" (instance $o)) (with "glue" (instance $g))))
  (func (export "component-init") (canon lift (core func $c "init")))
  (func (export "via-table") (param "x" s32) (result s32) (canon lift (core func $o "via-table")))
  (func (export "via-global") (param "x" s32) (result s32) (canon lift (core func $o "via-global"))))"#);
    let output = pre_init(&input).unwrap();
    validate(&output);
    let calls: &[(&str, &[Val])] = &[
        ("via-table", &[Val::S32(21)]),
        ("via-global", &[Val::S32(5)]),
    ];
    let mut with_init = vec![("component-init", &[][..])];
    with_init.extend_from_slice(calls);
    let mut before = run(&input, &with_init).unwrap();
    before.remove(0);
    let after = run(&output, calls).unwrap();
    assert_eq!(before, after);
    assert_eq!(after, [[Val::S32(42)], [Val::S32(10)]]);
}

/// `examples/callbacks.wat`, the example the docs give: the CLI's output,
/// without init, calls the handlers init registered.
#[test]
fn the_callbacks_example_runs_as_its_comment_says() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/callbacks.wat");
    let output = dir.path().join("callbacks.init.wasm");
    run_command(
        std::process::Command::new(env!("CARGO_BIN_EXE_component-init"))
            .arg(example)
            .arg("-o")
            .arg(&output),
    );
    let output = std::fs::read(&output).unwrap();
    let calls: Vec<Vec<Val>> = (0..5).map(|s| vec![Val::U32(s), Val::S32(7)]).collect();
    let calls: Vec<(&str, &[Val])> = calls.iter().map(|a| ("call", &a[..])).collect();
    let results = run(&output, &calls).unwrap();
    let answers: Vec<Val> = results.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(answers, [7, 14, -7, 49, -1].map(Val::S32));
    assert_eq!(call1(&output, &["registered"]).unwrap(), Val::U32(3));
}
