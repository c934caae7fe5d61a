//! `--compiler`: Winch (the default on x86-64) and Cranelift compile the
//! instrumented component; the output does not depend on which.

use std::process::Command;

use component_init::{Compiler, InstrumentOptions, Limits, WasmtimeRuntime};
use wasmtime::component::Val;

use crate::support::*;

/// Pre-initializes `input` with `compiler`; returns the output and the
/// compiler that compiled it.
fn with(input: &[u8], compiler: Compiler, limits: Limits) -> (Vec<u8>, Option<Compiler>) {
    let mut runtime = WasmtimeRuntime::builder()
        .limits(limits)
        .compiler(compiler)
        .build()
        .unwrap();
    let output = runtime
        .initialize(input, &InstrumentOptions::default())
        .unwrap();
    (output, runtime.compiled_with())
}

/// Every kind of state, start functions, a nested component instantiated
/// twice.
const STATE: &str = r#"
(component
  (core module $m
    (memory $a 1)
    (memory $b i64 1)
    (memory $c 2 (pagesize 1))
    (global $i (mut i32) (i32.const 0))
    (global $l (mut i64) (i64.const 0))
    (global $f (mut f32) (f32.const 0))
    (global $d (mut f64) (f64.const 0))
    (global $v (mut v128) (v128.const i64x2 0 0))
    (func $start (global.set $i (i32.const 5)))
    (start $start)
    (func (export "init")
      (i32.store $a (i32.const 100) (i32.const 0x01020304))
      (i64.store $b (i64.const 60000) (i64.const -1))
      (i32.store8 $c (i32.const 1) (i32.const 9))
      (global.set $i (i32.mul (global.get $i) (i32.const 3)))
      (global.set $l (i64.const 0x123456789))
      (global.set $f (f32.const 1.5))
      (global.set $d (f64.const -2.25))
      (global.set $v (v128.const i32x4 1 2 3 4)))
    (func (export "sum") (result i32)
      (i32.add (i32.load $a (i32.const 100))
        (i32.add (global.get $i) (i32.load8_u $c (i32.const 1))))))
  (core instance $x (instantiate $m))
  (component $inner
    (core module $n (global $g (mut i32) (i32.const 1))
      (func $s (global.set $g (i32.add (global.get $g) (i32.const 6))))
      (start $s)
      (func (export "g") (result i32) (global.get $g)))
    (core instance $y (instantiate $n))
    (func (export "g") (result s32) (canon lift (core func $y "g"))))
  (instance $p (instantiate $inner))
  (instance $q (instantiate $inner))
  (func (export "component-init") (canon lift (core func $x "init")))
  (func (export "sum") (result s32) (canon lift (core func $x "sum")))
  (alias export $p "g" (func $pg))
  (alias export $q "g" (func $qg))
  (export "p" (func $pg))
  (export "q" (func $qg)))"#;

#[test]
fn winch_and_cranelift_give_the_same_output() {
    for input in [
        wat(STATE),
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/primes.wat"))
            .map(|text| wat(std::str::from_utf8(&text).unwrap()))
            .unwrap(),
    ] {
        let (winch, by) = with(&input, Compiler::Winch, Limits::default());
        assert_eq!(by, Some(Compiler::Winch));
        let (cranelift, by) = with(&input, Compiler::Cranelift, Limits::default());
        assert_eq!(by, Some(Compiler::Cranelift));
        assert!(winch == cranelift, "outputs differ");
        if cfg!(target_arch = "x86_64") {
            let (auto, by) = with(&input, Compiler::Auto, Limits::default());
            assert_eq!(by, Some(Compiler::Winch));
            assert!(auto == winch);
        }
    }
    let (output, _) = with(&wat(STATE), Compiler::Winch, Limits::default());
    validate(&output);
    assert_eq!(
        call1(&output, &["sum"]).unwrap(),
        Val::S32(0x01020304 + 15 + 9)
    );
    assert_eq!(call1(&output, &["p"]).unwrap(), Val::S32(7));
    assert_eq!(call1(&output, &["q"]).unwrap(), Val::S32(7));
}

#[test]
fn cranelift_takes_over_what_winch_cannot_compile() {
    // Winch has no tail calls.
    let input = wat(r#"
    (component
      (core module $m
        (global $g (mut i32) (i32.const 0))
        (func $set (param i32) (global.set $g (local.get 0)))
        (func (export "init") (return_call $set (i32.const 42)))
        (func (export "g") (result i32) (global.get $g)))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "g") (result s32) (canon lift (core func $i "g"))))"#);
    let mut runtime = winch_runtime();
    let output = runtime
        .initialize(&input, &InstrumentOptions::default())
        .unwrap();
    assert_eq!(runtime.compiled_with(), Some(Compiler::Cranelift));
    assert!(runtime.winch_fallback().is_some());
    assert_eq!(call1(&output, &["g"]).unwrap(), Val::S32(42));
}

#[test]
fn fuel_needs_cranelift() {
    let fuel = Limits {
        fuel: Some(1_000_000),
        ..Limits::default()
    };
    let err = WasmtimeRuntime::builder()
        .limits(fuel.clone())
        .compiler(Compiler::Winch)
        .build()
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("fuel needs the Cranelift compiler"),
        "{err}"
    );
    // `auto` picks Cranelift when there is fuel to meter
    let (_, by) = with(&wat(STATE), Compiler::Auto, fuel);
    assert_eq!(by, Some(Compiler::Cranelift));
}

#[test]
fn cli_compiler_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wat");
    std::fs::write(&input, STATE).unwrap();
    let mut outputs = Vec::new();
    for compiler in ["winch", "cranelift"] {
        let out = dir.path().join(format!("{compiler}.wasm"));
        let output = Command::new(env!("CARGO_BIN_EXE_component-init"))
            .arg(&input)
            .args(["--compiler", compiler, "-v", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(output.status.success(), "{stderr}");
        let name = if compiler == "winch" {
            "Winch"
        } else {
            "Cranelift"
        };
        // `compiled (Winch)`, or `compiled (Winch, from the compilation
        // cache)` when an earlier run compiled the same component
        assert!(
            stderr.contains(&format!("compiled ({name})"))
                || stderr.contains(&format!("compiled ({name}, ")),
            "{compiler}: {stderr}"
        );
        outputs.push(std::fs::read(out).unwrap());
    }
    assert!(outputs[0] == outputs[1]);
    let output = Command::new(env!("CARGO_BIN_EXE_component-init"))
        .arg(&input)
        .args(["--compiler", "winch", "--fuel", "100", "-t"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr.trim_end(),
        "error: fuel needs the Cranelift compiler; Winch cannot meter fuel"
    );
}

/// A component whose code can change tables is read with GC instructions,
/// which Winch does not compile: it goes to Cranelift at once, and the
/// fallback says why.
#[test]
fn a_component_whose_tables_are_read_compiles_with_cranelift_at_once() {
    let input = wat(include_str!("../../examples/callbacks.wat"));
    let mut runtime = winch_runtime();
    let output = runtime
        .initialize(&input, &InstrumentOptions::default())
        .unwrap();
    assert_eq!(runtime.compiled_with(), Some(Compiler::Cranelift));
    let reason = runtime.winch_fallback().unwrap();
    assert!(
        reason.contains("its table reader uses GC instructions"),
        "{reason}"
    );
    assert_eq!(call1(&output, &["registered"]).unwrap(), Val::U32(3));
}

/// A runtime that starts with Winch.
fn winch_runtime() -> WasmtimeRuntime {
    WasmtimeRuntime::builder()
        .limits(Limits::default())
        .compiler(Compiler::Winch)
        .build()
        .unwrap()
}
