//! Handles left in a component instance's handle table after init (guest
//! resources made with `resource.new`, `own` handles received from another
//! component) are refused: a snapshot cannot carry a handle table, and the
//! output would trap on first use. Init that drops its handles succeeds.

use wasmtime::component::Val;

use crate::guests::wasip2_guest;
use crate::support::*;

/// The issue's component: init makes a handle with `resource.new` and
/// keeps it in a global (`keep`), or drops it with `resource.drop` and
/// keeps the rep it had (`!keep`); `get` answers 42 either way.
fn one_resource(keep: bool) -> String {
    let init = if keep {
        "(global.set $h (call $new (i32.const 42)))"
    } else {
        "(local $h i32)
         (local.set $h (call $new (i32.const 42)))
         (global.set $h (call $rep (local.get $h)))
         (call $drop (local.get $h))"
    };
    let get = if keep {
        "(call $rep (global.get $h))"
    } else {
        "(global.get $h)"
    };
    format!(
        r#"(component
  (type $r (resource (rep i32)))
  (core func $new (canon resource.new $r))
  (core func $rep (canon resource.rep $r))
  (core func $drop (canon resource.drop $r))
  (core module $m
    (import "" "new" (func $new (param i32) (result i32)))
    (import "" "rep" (func $rep (param i32) (result i32)))
    (import "" "drop" (func $drop (param i32)))
    (global $h (mut i32) (i32.const 0))
    (func (export "init") {init})
    (func (export "get") (result i32) {get}))
  (core instance $i (instantiate $m (with "" (instance
    (export "new" (func $new)) (export "rep" (func $rep)) (export "drop" (func $drop))))))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "get") (result u32) (canon lift (core func $i "get"))))"#
    )
}

/// Asserts the CLI refuses `input`: exit 1, one line naming the handle
/// table, no output; returns the line.
fn refused(input: &[u8], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (output, out_path) = cli_in(dir.path(), input, args);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.contains(" WARN ")).collect();
    assert_eq!(errors.len(), 1, "one line: {stderr}");
    assert!(
        errors[0].starts_with("error: ")
            && errors[0].contains("init left handles in a component instance's handle table")
            && errors[0].contains("drop every handle before init returns"),
        "{stderr}"
    );
    assert!(!out_path.exists(), "no output may be written");
    errors[0].to_string()
}

#[test]
fn a_handle_kept_by_init_is_refused_and_a_dropped_one_is_fine() {
    let kept = wat(&one_resource(true));
    // initialized at run time, the instance answers 42
    assert_eq!(
        run(&kept, &[("component-init", &[]), ("get", &[])]).unwrap()[1],
        [Val::U32(42)]
    );
    refused(&kept, &[]);
    let err = format!("{:#}", pre_init(&kept).unwrap_err());
    assert!(
        err.contains("handle table"),
        "the library refuses it: {err}"
    );

    let dropped = pre_init(&wat(&one_resource(false))).unwrap();
    validate(&dropped);
    assert_eq!(call1(&dropped, &["get"]).unwrap(), Val::U32(42));
}

/// Two components composed as wit-component composes them (siblings,
/// linked by their parent): `$lib` defines the resource and hands out `own`
/// handles; `$app`'s init asks for one and keeps it (`keep`), or reads it
/// and hands it back to be dropped.
fn composed(keep: bool) -> String {
    let init = if keep {
        "(global.set $h (call $make (i32.const 5)))"
    } else {
        "(local $h i32)
         (local.set $h (call $make (i32.const 5)))
         (global.set $v (call $value (local.get $h)))
         (call $drop (local.get $h))"
    };
    format!(
        r#"(component
  (component $lib
    (type $r (resource (rep i32)))
    (core func $new (canon resource.new $r))
    (core func $rep (canon resource.rep $r))
    (core module $m
      (import "" "new" (func $new (param i32) (result i32)))
      (import "" "rep" (func $rep (param i32) (result i32)))
      (func (export "make") (param i32) (result i32) (call $new (local.get 0)))
      ;; a `borrow` of its own resource reaches the defining component as
      ;; the rep itself
      (func (export "value") (param i32) (result i32) (local.get 0)))
    (core instance $i (instantiate $m (with "" (instance
      (export "new" (func $new)) (export "rep" (func $rep))))))
    (export $re "r" (type $r))
    (func (export "make") (param "v" u32) (result (own $re)) (canon lift (core func $i "make")))
    (func (export "value") (param "h" (borrow $re)) (result u32)
      (canon lift (core func $i "value"))))
  (component $app
    (import "lib" (instance $lib
      (export "r" (type $r (sub resource)))
      (export "make" (func (param "v" u32) (result (own $r))))
      (export "value" (func (param "h" (borrow $r)) (result u32)))))
    (alias export $lib "r" (type $r))
    (core func $make (canon lower (func $lib "make")))
    (core func $value (canon lower (func $lib "value")))
    (core func $drop (canon resource.drop $r))
    (core module $app
      (import "" "make" (func $make (param i32) (result i32)))
      (import "" "value" (func $value (param i32) (result i32)))
      (import "" "drop" (func $drop (param i32)))
      (global $h (mut i32) (i32.const 0))
      (global $v (mut i32) (i32.const 0))
      (func (export "init") {init})
      (func (export "get") (result i32) (global.get $v)))
    (core instance $a (instantiate $app (with "" (instance
      (export "make" (func $make)) (export "value" (func $value)) (export "drop" (func $drop))))))
    (func (export "component-init") (canon lift (core func $a "init")))
    (func (export "get") (result u32) (canon lift (core func $a "get"))))
  (instance $l (instantiate $lib))
  (instance $a (instantiate $app (with "lib" (instance $l))))
  (export "component-init" (func $a "component-init"))
  (export "get" (func $a "get")))"#
    )
}

#[test]
fn an_own_handle_received_from_another_component_and_kept_is_refused() {
    refused(&wat(&composed(true)), &[]);
    let output = pre_init(&wat(&composed(false))).unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::U32(5));
}

/// A nested component instantiated twice, its instances driven by a
/// sibling; only the instance whose init runs with a nonzero argument keeps
/// its handle.
#[test]
fn one_of_two_instances_of_a_nested_component_keeping_a_handle_is_refused() {
    let input = |second_keeps: u32| {
        wat(&format!(
            r#"(component
  (component $c
    (type $r (resource (rep i32)))
    (core func $new (canon resource.new $r))
    (core func $drop (canon resource.drop $r))
    (core module $m
      (import "" "new" (func $new (param i32) (result i32)))
      (import "" "drop" (func $drop (param i32)))
      (global $h (mut i32) (i32.const 0))
      (func (export "init") (param i32)
        (global.set $h (call $new (i32.const 1)))
        (if (i32.eqz (local.get 0)) (then (call $drop (global.get $h))))))
    (core instance $i (instantiate $m (with "" (instance
      (export "new" (func $new)) (export "drop" (func $drop))))))
    (func (export "init") (param "keep" u32) (canon lift (core func $i "init"))))
  (component $driver
    (import "one" (func $one (param "keep" u32)))
    (import "two" (func $two (param "keep" u32)))
    (core func $init1 (canon lower (func $one)))
    (core func $init2 (canon lower (func $two)))
    (core module $top
      (import "" "init1" (func $init1 (param i32)))
      (import "" "init2" (func $init2 (param i32)))
      (func (export "init")
        (call $init1 (i32.const 0))
        (call $init2 (i32.const {second_keeps}))))
    (core instance $t (instantiate $top (with "" (instance
      (export "init1" (func $init1)) (export "init2" (func $init2))))))
    (func (export "component-init") (canon lift (core func $t "init"))))
  (instance $one (instantiate $c))
  (instance $two (instantiate $c))
  (instance $d (instantiate $driver
    (with "one" (func $one "init")) (with "two" (func $two "init"))))
  (export "component-init" (func $d "component-init")))"#
        ))
    };
    refused(&input(1), &[]);
    let output = pre_init(&input(0)).unwrap();
    validate(&output);
}

#[test]
fn a_rust_guest_keeping_a_resource_in_a_static_is_refused() {
    let input = wasip2_guest("resource-keeper");
    let err = refused(&input, &["--wasi", "--init-func", "init-keep"]);
    assert!(
        err.contains("test-guests:resources/counters#counter"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (output, out_path) = cli_in(dir.path(), &input, &["--wasi", "--init-func", "init-drop"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = std::fs::read(out_path).unwrap();
    assert_eq!(
        run(&output, &[("value", &[]), ("init-calls", &[])]).unwrap(),
        [[Val::U32(9)], [Val::U32(1)]]
    );
}

#[test]
fn the_split_snapshot_command_refuses_it_too() {
    let dir = tempfile::tempdir().unwrap();
    let output = split_snapshot(dir.path(), one_resource(true).as_bytes(), &[]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("handle table"), "{stderr}");
    assert!(!dir.path().join("snap.bin").exists());
}
