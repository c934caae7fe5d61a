//! The pipeline's phases run apart, as another runtime would run them:
//! `instrument`, then `snapshot` (here: Wasmtime), then `apply`.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use wasmtime::component::Val;

fn cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_component-init"));
    for arg in args {
        command.arg(arg);
    }
    command.output().unwrap()
}

fn ok(output: std::process::Output) -> std::process::Output {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

const INPUT: &str = r#"(component
  (core module $m
    (memory (export "memory") 1)
    (global $g (mut i64) (i64.const 0))
    (global $v (mut v128) (v128.const i64x2 0 0))
    (func (export "init")
      (global.set $g (i64.const -5))
      (global.set $v (v128.const i64x2 1 2))
      (i32.store (i32.const 40) (i32.const 9)))
    (func (export "get") (result i64)
      (i64.add (global.get $g) (i64.extend_i32_u (i32.load (i32.const 40))))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "get") (result s64) (canon lift (core func $i "get"))))"#;

/// Runs `instrument`, `snapshot` and `apply` on `input` (WAT) in `dir`,
/// and the one-step command; returns both outputs.
fn split_and_direct(dir: &Path, input: &str) -> (Vec<u8>, Vec<u8>) {
    let d = |name: &str| dir.join(name);
    std::fs::write(d("app.wat"), input).unwrap();
    ok(cli(&[
        &"instrument",
        &d("app.wat"),
        &"-o",
        &d("inst.wasm"),
        &"--plan",
        &d("plan.json"),
    ]));
    ok(cli(&[
        &"snapshot",
        &d("inst.wasm"),
        &"--plan",
        &d("plan.json"),
        &"-o",
        &d("snap.bin"),
    ]));
    ok(cli(&[
        &"apply",
        &d("app.wat"),
        &"--plan",
        &d("plan.json"),
        &"--snapshot",
        &d("snap.bin"),
        &"-o",
        &d("split.wasm"),
    ]));
    ok(cli(&[&d("app.wat"), &"-o", &d("direct.wasm")]));
    (
        std::fs::read(d("split.wasm")).unwrap(),
        std::fs::read(d("direct.wasm")).unwrap(),
    )
}

#[test]
fn instrument_snapshot_apply_equals_the_one_step_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let (split, direct) = split_and_direct(dir.path(), INPUT);
    assert_eq!(split, direct);
    assert_eq!(call1(&split, &["get"]).unwrap(), Val::S64(4));

    // The plan is JSON that names every accessor.
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("plan.json")).unwrap()).unwrap();
    let funcs: Vec<_> = plan["accessors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["func"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(funcs, ["get-memory-0", "get-global-0", "get-global-1"]);
}

/// A table shared by two instances, grown by init: the split pipeline
/// carries it as the one-step command does, and `wit` describes the table
/// accessors.
#[test]
fn the_split_pipeline_carries_tables() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let input = crate::component_tables::SHARED;
    let (split, direct) = split_and_direct(dir.path(), input);
    assert_eq!(split, direct);
    let slot = |s: u32| ("call", vec![Val::U32(s), Val::S32(3)]);
    let calls: Vec<(&str, Vec<Val>)> = (0..4).map(slot).collect();
    let calls: Vec<(&str, &[Val])> = calls.iter().map(|(n, a)| (*n, &a[..])).collect();
    let mut with_init = vec![("component-init", &[][..])];
    with_init.extend_from_slice(&calls);
    let mut before = run(&wat(input), &with_init).unwrap();
    before.remove(0);
    assert_eq!(before, run(&split, &calls).unwrap());
    let wit = ok(cli(&[&"wit", &d("app.wat")])).stdout;
    let wit = String::from_utf8(wit).unwrap();
    assert!(
        wit.contains("get-table-0: func(offset: u64, len: u32) -> list<u8>;"),
        "{wit}"
    );
}

/// An init lifted `async` (callback form) that yields once, next to a sync
/// export: the split pipeline runs it to its `task.return` as the one-step
/// command does.
#[test]
fn the_split_pipeline_takes_async_components() {
    let input = r#"(component
      (core module $m
        (import "" "task.return" (func $ret))
        (global $n (mut i32) (i32.const 0))
        (func (export "init") (result i32)
          (global.set $n (i32.const 7))
          (i32.const 1))
        (func (export "cb") (param i32 i32 i32) (result i32)
          (global.set $n (i32.add (global.get $n) (i32.const 35)))
          (call $ret)
          (i32.const 0))
        (func (export "get") (result i32) (global.get $n)))
      (core func $ret (canon task.return))
      (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $ret))))))
      (func (export "component-init") async
        (canon lift (core func $i "init") async (callback (func $i "cb"))))
      (func (export "get") (result u32) (canon lift (core func $i "get"))))"#;
    let dir = tempfile::tempdir().unwrap();
    let (split, direct) = split_and_direct(dir.path(), input);
    assert_eq!(split, direct);
    assert_eq!(call1(&split, &["get"]).unwrap(), Val::U32(42));
}

#[test]
fn apply_rejects_a_snapshot_or_plan_that_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    std::fs::write(d("app.wat"), INPUT).unwrap();
    ok(cli(&[
        &"instrument",
        &d("app.wat"),
        &"-o",
        &d("inst.wasm"),
        &"--plan",
        &d("plan.json"),
    ]));
    std::fs::write(d("bad.bin"), b"CISNAP\0\x01\x01\0\0\0\x07").unwrap();
    let output = cli(&[
        &"apply",
        &d("app.wat"),
        &"--plan",
        &d("plan.json"),
        &"--snapshot",
        &d("bad.bin"),
        &"-o",
        &d("out.wasm"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("unknown tag 7"), "{stderr}");
    assert!(!Path::new(&d("out.wasm")).exists());

    // A plan made for another component.
    std::fs::write(d("other.wat"), INPUT.replace("-5", "-6")).unwrap();
    ok(cli(&[
        &"snapshot",
        &d("inst.wasm"),
        &"--plan",
        &d("plan.json"),
        &"-o",
        &d("snap.bin"),
    ]));
    let output = cli(&[
        &"apply",
        &d("other.wat"),
        &"--plan",
        &d("plan.json"),
        &"--snapshot",
        &d("snap.bin"),
        &"-o",
        &d("out.wasm"),
    ]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("the plan was made for a different component"),
        "{stderr}"
    );
}

#[test]
fn wit_prints_the_accessor_interface() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.wat");
    std::fs::write(&path, INPUT).unwrap();
    let output = ok(cli(&[&"wit", &path]));
    let wit = String::from_utf8(output.stdout).unwrap();
    assert!(wit.contains("interface accessors {"), "{wit}");
    assert!(
        wit.contains("get-memory-0: func(offset: u64, len: u32) -> list<u8>;"),
        "{wit}"
    );
    assert!(wit.contains("get-global-0: func() -> s64;"), "{wit}");
    assert!(
        wit.contains("get-global-1: func() -> tuple<u64, u64>;"),
        "{wit}"
    );

    // `wasm-tools component wit` on the instrumented component shows it too.
    let instrumented =
        component_init::instrument(&wat(INPUT), &component_init::InstrumentOptions::default())
            .unwrap();
    let decoded = wit_component::decode(&instrumented.component).unwrap();
    let resolve = decoded.resolve();
    let others: Vec<_> = resolve
        .packages
        .iter()
        .map(|(id, _)| id)
        .filter(|id| *id != decoded.package())
        .collect();
    let mut printer = wit_component::WitPrinter::default();
    printer.print(resolve, decoded.package(), &others).unwrap();
    let seen = printer.output.to_string();
    assert!(
        seen.contains("get-global-1: func() -> tuple<u64, u64>;"),
        "{seen}"
    );
}

/// 1 GiB of memory holding 16 words: the snapshot file holds the words, not
/// the gigabyte.
#[test]
fn the_snapshot_file_is_sparse() {
    let input = r#"(component
      (core module $m
        (memory 1)
        (func (export "init") (local $at i32)
          (drop (memory.grow (i32.const 16383)))
          (loop $l
            (i32.store (local.get $at) (i32.const 7))
            (local.set $at (i32.add (local.get $at) (i32.const 0x4000000)))
            (br_if $l (i32.lt_u (local.get $at) (i32.const 0x40000000)))))
        (func (export "get") (param i32) (result i32) (i32.load (local.get 0))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init")))
      (func (export "get") (param "at" u32) (result u32) (canon lift (core func $i "get"))))"#;
    let dir = tempfile::tempdir().unwrap();
    let (split, direct) = split_and_direct(dir.path(), input);
    assert_eq!(split, direct);
    let snapshot = std::fs::metadata(dir.path().join("snap.bin"))
        .unwrap()
        .len();
    assert!(snapshot < 4096, "{snapshot} bytes");
    let got = run(&split, &[("get", &[Val::U32(0x3c00_0000)])]).unwrap();
    assert_eq!(got, [[Val::U32(7)]]);
}
