//! Init functions that take arguments (`--init-func 'name(ARGS)'`, WAVE) and
//! return a `result`.

use crate::support::*;
use wasmtime::component::Val;

const SETUP: &str = r#"(component
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (global $n (mut i32) (i32.const 0))
    (global $len (mut i32) (i32.const 0))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get 3)))
      (local.get $p))
    (func (export "init") (param $ptr i32) (param $len i32) (param $n i32) (param $scale i32)
          (param $flag i32) (result i32)
      (if (local.get $flag)
        (then
          ;; err(name)
          (i32.store (i32.const 16) (i32.const 1))
          (i32.store (i32.const 20) (local.get $ptr))
          (i32.store (i32.const 24) (local.get $len))
          (return (i32.const 16))))
      (memory.copy (i32.const 512) (local.get $ptr) (local.get $len))
      (global.set $len (local.get $len))
      (global.set $n (i32.mul (local.get $n) (local.get $scale)))
      (i32.store (i32.const 16) (i32.const 0))
      (i32.const 16))
    (func (export "n") (result i32) (global.get $n))
    (func (export "name") (result i32)
      (i32.store (i32.const 32) (i32.const 512))
      (i32.store (i32.const 36) (global.get $len))
      (i32.const 32)))
  (core instance $i (instantiate $m))
  (type $opts (record (field "scale" u32) (field "flag" bool)))
  (func $setup (param "name" string) (param "n" u32) (param "opts" $opts)
    (result (result (error string)))
    (canon lift (core func $i "init") (memory $i "memory") (realloc (func $i "realloc"))))
  (instance $api (export "opts" (type $opts)) (export "setup" (func $setup)))
  (export "my:app/init" (instance $api))
  (func (export "n") (result u32) (canon lift (core func $i "n")))
  (func (export "name") (result string) (canon lift (core func $i "name") (memory $i "memory"))))"#;

#[test]
fn string_integer_and_record_arguments() {
    let input = wat(SETUP);
    let output = pre_init_with(
        &input,
        Some(r#"my:app/init#setup("café", 21, {scale: 2, flag: false})"#),
        false,
    )
    .unwrap();
    validate(&output);
    assert_eq!(call1(&output, &["n"]).unwrap(), Val::U32(42));
    assert_eq!(
        call1(&output, &["name"]).unwrap(),
        Val::String("café".to_string())
    );
    // an interface keeps all of its functions
    assert!(export_names(&output).contains(&"my:app/init".to_string()));
}

#[test]
fn an_err_result_fails_and_shows_the_payload() {
    let err = pre_init_with(
        &wat(SETUP),
        Some(r#"my:app/init#setup("no config", 1, {scale: 1, flag: true})"#),
        false,
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("returned an error: \"no config\""), "{err}");
}

#[test]
fn arguments_must_fit_the_parameters() {
    let input = wat(SETUP);
    let err = format!(
        "{:#}",
        pre_init_with(&input, Some("my:app/init#setup"), false).unwrap_err()
    );
    assert!(err.contains("takes 3 parameters"), "{err}");
    assert!(
        err.contains("--init-func 'my:app/init#setup(ARG, ...)'"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        pre_init_with(&input, Some("my:app/init#setup(1, 2, 3)"), false).unwrap_err()
    );
    assert!(err.contains("do not fit its parameters"), "{err}");
    let err = format!(
        "{:#}",
        pre_init_with(
            &input,
            Some("my:app/init#setup(\"x\", 1, {scale: 1, flag: false}, 4)"),
            false
        )
        .unwrap_err()
    );
    assert!(err.contains("do not fit its parameters"), "{err}");
}
