//! Core modules, pre-initialized as Wizer does it: `_initialize` then the
//! init function (`wizer-initialize` by default), both removed unless kept;
//! every memory and mutable global carried; imports trap unless WASI
//! preview1 is granted. Each test runs the module before and after and
//! compares what its exports return.

use std::process::Command;

use component_init::{ModuleOptions, WasmtimeRuntime};
use wasmtime::{Config, Engine, Instance, Linker, Module, Store, Val};

use crate::support::wat;

/// Instantiates the core module `bytes` (every import traps) and calls each
/// export in order; returns the first result of each (or `None`).
fn call(bytes: &[u8], calls: &[&str]) -> anyhow::Result<Vec<Option<Val>>> {
    let mut config = Config::new();
    config.wasm_multi_memory(true);
    config.wasm_memory64(true);
    config.wasm_custom_page_sizes(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, bytes)?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.define_unknown_imports_as_traps(&module)?;
    let instance: Instance = linker.instantiate(&mut store, &module)?;
    let mut out = Vec::new();
    for name in calls {
        let func = instance
            .get_func(&mut store, name)
            .ok_or_else(|| anyhow::anyhow!("no export `{name}`"))?;
        let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
        func.call(&mut store, &[], &mut results)?;
        out.push(results.into_iter().next());
    }
    Ok(out)
}

fn i32s(values: Vec<Option<Val>>) -> Vec<i32> {
    values
        .into_iter()
        .map(|v| v.and_then(|v| v.i32()).expect("an i32 result"))
        .collect()
}

fn exports(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::ExportSection(reader) = payload.unwrap() {
            for export in reader {
                names.push(export.unwrap().name.to_string());
            }
        }
    }
    names
}

fn pre_init(module: &[u8], options: &ModuleOptions) -> anyhow::Result<Vec<u8>> {
    component_init::initialize_module_with_wasmtime(module, options)
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_component-init"))
}

/// Runs the CLI on `input` (written to a file) with `args`; returns the
/// process output and the output module, if written.
fn cli_on(input: &[u8], args: &[&str]) -> (std::process::Output, Option<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let (output, path) = crate::support::cli_in(dir.path(), input, args);
    let bytes = std::fs::read(&path).ok();
    (output, bytes)
}

/// Runs the CLI with `args`, feeding `stdin` to it.
fn cli_with_stdin(args: &[std::ffi::OsString], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cli()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every numeric and vector global type, two memories (one 64-bit, one
/// with 1-byte pages), a start function, `_initialize` before init.
const STATE: &str = r#"
(module
  (memory $a 1)
  (memory $b i64 1)
  (memory $c 2 (pagesize 1))
  (global $i (mut i32) (i32.const 0))
  (global $l (mut i64) (i64.const 0))
  (global $f (mut f32) (f32.const 0))
  (global $d (mut f64) (f64.const 0))
  (global $v (mut v128) (v128.const i64x2 0 0))
  (global $order (mut i32) (i32.const 0))
  (global $started (mut i32) (i32.const 0))
  (func $start (global.set $started (i32.add (global.get $started) (i32.const 1))))
  (start $start)
  (func (export "_initialize")
    (global.set $order (i32.const 1)))
  (func (export "wizer-initialize")
    ;; _initialize ran first
    (global.set $order (i32.add (i32.mul (global.get $order) (i32.const 10)) (i32.const 2)))
    (global.set $i (i32.const 7))
    (global.set $l (i64.const 0x1_0000_0001))
    (global.set $f (f32.const 1.5))
    (global.set $d (f64.const -2.25))
    (global.set $v (v128.const i32x4 1 2 3 4))
    (i32.store $a (i32.const 65532) (i32.const 0x01020304))
    (i64.store $b (i64.const 100) (i64.const 99))
    (drop (memory.grow $b (i64.const 2)))
    (i32.store8 $c (i32.const 1) (i32.const 5)))
  (func (export "order") (result i32) (global.get $order))
  (func (export "started") (result i32) (global.get $started))
  (func (export "i") (result i32) (global.get $i))
  (func (export "l") (result i32) (i32.wrap_i64 (i64.shr_u (global.get $l) (i64.const 32))))
  (func (export "f") (result i32) (i32.trunc_f32_s (f32.mul (global.get $f) (f32.const 2))))
  (func (export "d") (result i32) (i32.trunc_f64_s (f64.mul (global.get $d) (f64.const 4))))
  (func (export "v") (result i32) (i32x4.extract_lane 3 (global.get $v)))
  (func (export "a") (result i32) (i32.load $a (i32.const 65532)))
  (func (export "b") (result i32) (i32.wrap_i64 (i64.load $b (i64.const 100))))
  (func (export "b-pages") (result i32) (i32.wrap_i64 (memory.size $b)))
  (func (export "c") (result i32) (i32.load8_u $c (i32.const 1))))
"#;

const GETTERS: &[&str] = &[
    "order", "started", "i", "l", "f", "d", "v", "a", "b", "b-pages", "c",
];

#[test]
fn every_memory_and_global_is_carried_and_init_exports_go() {
    let input = wat(STATE);
    // uninitialized: only the start function ran
    assert_eq!(
        i32s(call(&input, GETTERS).unwrap()),
        [0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    );
    let output = pre_init(&input, &ModuleOptions::default()).unwrap();
    // `_initialize` ran before init (order 12); the start function ran once
    // and is gone (it would make `started` 2)
    assert_eq!(
        i32s(call(&output, GETTERS).unwrap()),
        [12, 1, 7, 1, 3, -9, 4, 0x01020304, 99, 3, 5]
    );
    let names = exports(&output);
    assert!(
        !names.contains(&"wizer-initialize".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"_initialize".to_string()), "{names:?}");
    // nothing of the instrumentation is left
    assert!(
        names.iter().all(|n| !n.starts_with("component-init")),
        "{names:?}"
    );
}

#[test]
fn the_cli_takes_a_module_in_text_and_the_output_matches_the_library() {
    let (output, bytes) = cli_on(STATE.as_bytes(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let library = pre_init(&wat(STATE), &ModuleOptions::default()).unwrap();
    assert!(bytes.unwrap() == library, "the CLI and the library differ");
}

#[test]
fn keep_init_func_keeps_init_but_not_initialize_and_init_runs_again() {
    let options = ModuleOptions {
        keep_init_func: true,
        ..ModuleOptions::default()
    };
    let output = pre_init(&wat(STATE), &options).unwrap();
    let names = exports(&output);
    assert!(names.contains(&"wizer-initialize".to_string()));
    // as with Wizer: the constructors must not run over the snapshot
    assert!(!names.contains(&"_initialize".to_string()));
    // calling init again on the output shows the state was captured, not
    // re-run at instantiation: order goes 12 -> 122
    let after = i32s(
        call(&output, &["wizer-initialize", "order"]).unwrap_or_else(|e| {
            panic!("{e:#}");
        })[1..]
            .to_vec(),
    );
    assert_eq!(after, [122]);
    // Wizer's `--keep-init-func=true` form
    let (output, bytes) = cli_on(STATE.as_bytes(), &["--keep-init-func=true"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(exports(&bytes.unwrap()).contains(&"wizer-initialize".to_string()));
}

const RENAME: &str = r#"
(module
  (global $g (mut i32) (i32.const 0))
  (func (export "init") (global.set $g (i32.const 5)))
  (func (export "_start") (result i32) (i32.const -1))
  (func (export "start_after_init") (result i32) (global.get $g)))
"#;

#[test]
fn rename_func_gives_start_a_post_init_entry_point() {
    let (output, bytes) = cli_on(
        RENAME.as_bytes(),
        &["--init-func", "init", "-r", "_start=start_after_init"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = bytes.unwrap();
    assert_eq!(exports(&bytes), ["_start"]);
    assert_eq!(i32s(call(&bytes, &["_start"]).unwrap()), [5]);
}

#[test]
fn wizer_dot_initialize_is_the_default_when_only_it_is_exported() {
    let input = wat(r#"(module
      (global $g (mut i32) (i32.const 0))
      (func (export "wizer.initialize") (global.set $g (i32.const 3)))
      (func (export "g") (result i32) (global.get $g)))"#);
    let output = pre_init(&input, &ModuleOptions::default()).unwrap();
    assert_eq!(i32s(call(&output, &["g"]).unwrap()), [3]);
    assert_eq!(exports(&output), ["g"]);
}

#[test]
fn passive_data_dropped_during_init_is_emptied_and_the_rest_stays() {
    let input = wat(r#"(module
      (memory 1)
      (data $p "hello")
      (data $q "world")
      (func (export "wizer-initialize")
        (memory.init $p (i32.const 0) (i32.const 0) (i32.const 5))
        (data.drop $p))
      (func (export "first") (result i32) (i32.load8_u (i32.const 0)))
      (func (export "init-p") (result i32)
        (memory.init $p (i32.const 100) (i32.const 0) (i32.const 0)) (i32.const 1))
      (func (export "init-q") (result i32)
        (memory.init $q (i32.const 200) (i32.const 0) (i32.const 5))
        (i32.load8_u (i32.const 200))))"#);
    let output = pre_init(&input, &ModuleOptions::default()).unwrap();
    assert_eq!(i32s(call(&output, &["first"]).unwrap()), [i32::from(b'h')]);
    // a zero-length init of a dropped segment succeeds; `q` is intact
    assert_eq!(
        i32s(call(&output, &["init-p", "init-q"]).unwrap()),
        [1, i32::from(b'w')]
    );
    // one byte more of the dropped segment traps, as in the initialized instance
    let probe = wat(r#"(module
      (memory 1)
      (data $p "hello")
      (func (export "wizer-initialize") (data.drop $p))
      (func (export "read") (result i32)
        (memory.init $p (i32.const 0) (i32.const 0) (i32.const 1)) (i32.const 1)))"#);
    let output = pre_init(&probe, &ModuleOptions::default()).unwrap();
    let err = call(&output, &["read"]).unwrap_err();
    assert!(format!("{err:?}").contains("out of bounds"), "{err:?}");
}

#[test]
fn a_data_segment_at_the_end_of_memory() {
    let input = wat(r#"(module
      (memory 1 1)
      (func (export "wizer-initialize") (i32.store8 (i32.const 65535) (i32.const 9)))
      (func (export "last") (result i32) (i32.load8_u (i32.const 65535))))"#);
    let output = pre_init(&input, &ModuleOptions::default()).unwrap();
    assert_eq!(i32s(call(&output, &["last"]).unwrap()), [9]);
}

#[test]
fn more_scattered_writes_than_engines_allow_segments_still_fit() {
    // 200,000 bytes 64 KiB... one non-zero byte every 256 bytes over 64 MiB:
    // 262,144 runs, more than the 100,000 segments engines accept
    let input = wat(r#"(module
      (memory 1024)
      (func (export "wizer-initialize") (local $at i32)
        (loop $l
          (i32.store8 (local.get $at) (i32.const 1))
          (local.set $at (i32.add (local.get $at) (i32.const 256)))
          (br_if $l (i32.lt_u (local.get $at) (i32.const 67108864)))))
      (func (export "sum") (result i32) (local $at i32) (local $s i32)
        (loop $l
          (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $at))))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $at) (i32.const 67108864))))
        (local.get $s)))"#);
    let output = pre_init(&input, &ModuleOptions::default()).unwrap();
    assert_eq!(i32s(call(&output, &["sum"]).unwrap()), [262_144]);
}

#[test]
fn imports_trap_unless_granted_naming_the_import() {
    let input = wat(r#"(module
      (import "env" "host_fn" (func $f))
      (func (export "wizer-initialize") (call $f)))"#);
    let err = format!(
        "{:#}",
        pre_init(&input, &ModuleOptions::default()).unwrap_err()
    );
    assert!(err.contains("env") && err.contains("host_fn"), "{err}");
    assert!(
        err.contains("init function `wizer-initialize` failed"),
        "{err}"
    );
    // an import that init never calls is fine, and stays in the output
    let input = wat(r#"(module
      (import "env" "later" (func $f (result i32)))
      (global $g (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $g (i32.const 4)))
      (func (export "g") (result i32) (global.get $g)))"#);
    let output = pre_init(&input, &ModuleOptions::default()).unwrap();
    assert_eq!(i32s(call(&output, &["g"]).unwrap()), [4]);
}

#[test]
fn refusals_are_one_line_and_write_nothing() {
    for (module, expected) in [
        (
            r#"(module (import "env" "memory" (memory 1)) (func (export "wizer-initialize")))"#,
            "the module imports a memory (`env` `memory`)",
        ),
        (
            r#"(module (import "env" "g" (global (mut i32))) (func (export "wizer-initialize")))"#,
            "the module imports a global (`env` `g`)",
        ),
        (
            r#"(module (import "env" "t" (table 1 funcref)) (func (export "wizer-initialize")))"#,
            "the module imports a table (`env` `t`)",
        ),
        (
            r#"(module (func (export "other")))"#,
            "the module does not export the init function `wizer-initialize`",
        ),
        (
            r#"(module (type $s (struct (field (mut i32))))
                 (global $g (mut (ref null $s)) (ref.null $s))
                 (func (export "make") (global.set $g (struct.new $s (i32.const 0))))
                 (func (export "wizer-initialize")
                   (struct.set $s 0 (struct.new $s (i32.const 0)) (i32.const 1))))"#,
            "`struct.set` ran during init",
        ),
        (
            r#"(module (func (export "wizer-initialize") unreachable))"#,
            "init function `wizer-initialize` failed",
        ),
        (
            r#"(module (global (mut i32) (i32.const 0)) (func (export "wizer-initialize"))
                 (export "component-init:global-0" (global 0)))"#,
            "already exports `component-init:global-0`",
        ),
    ] {
        let (output, bytes) = cli_on(module.as_bytes(), &[]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{module}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{module}: {err}");
        assert!(err.contains(expected), "{module}: {err}");
        assert!(bytes.is_none(), "{module}: an output was written");
    }
}

#[test]
fn wasi_preview1_env_dir_and_stdin() {
    // reads env var `NAME` into memory at 0, the file `/d/f.txt` at 100, and
    // stdin at 200
    let input = wat(r#"(module
      (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 4000) "f.txt")
      (func $read (param $fd i32) (param $to i32)
        ;; iovec at 5000: (to, 64)
        (i32.store (i32.const 5000) (local.get $to))
        (i32.store (i32.const 5004) (i32.const 64))
        (drop (call $fd_read (local.get $fd) (i32.const 5000) (i32.const 1) (i32.const 5008))))
      (func (export "wizer-initialize")
        ;; environ: pointers at 6000, strings at 6100
        (drop (call $environ_sizes_get (i32.const 5100) (i32.const 5104)))
        (drop (call $environ_get (i32.const 6000) (i32.const 6100)))
        ;; preopen fd 3 is the first --dir
        (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 4000) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 5200)))
        (call $read (i32.load (i32.const 5200)) (i32.const 100))
        (drop (call $fd_close (i32.load (i32.const 5200))))
        (call $read (i32.const 0) (i32.const 200)))
      (func (export "env0") (result i32) (i32.load8_u (i32.const 6100)))
      (func (export "file0") (result i32) (i32.load8_u (i32.const 100)))
      (func (export "stdin0") (result i32) (i32.load8_u (i32.const 200))))"#);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.wasm"), &input).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f.txt"), "F").unwrap();
    let out = dir.path().join("out.wasm");
    let mut args: Vec<std::ffi::OsString> = vec![dir.path().join("in.wasm").into(), "-o".into()];
    args.push(out.clone().into());
    for arg in ["--wasi", "--env", "NAME=E", "--inherit-stdin", "--dir"] {
        args.push(arg.into());
    }
    args.push(format!("{}::/d", data.display()).into());
    let output = cli_with_stdin(&args, b"S");
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&out).unwrap();
    // the output still imports WASI (the imports stay), but its getters
    // need none of it
    assert_eq!(
        i32s(call(&bytes, &["env0", "file0", "stdin0"]).unwrap()),
        [i32::from(b'N'), i32::from(b'F'), i32::from(b'S')]
    );
    // without `--wasi`, the first WASI call traps, naming itself
    let (output, _) = cli_on(&input, &[]);
    let err = stderr(&output);
    assert!(
        err.contains("wasi_snapshot_preview1") && err.contains("environ_sizes_get"),
        "{err}"
    );
}

#[test]
fn a_file_left_open_is_refused() {
    let input = wat(r#"(module
      (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 4000) "f.txt")
      (func (export "wizer-initialize")
        (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 4000) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 5200)))))"#);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "F").unwrap();
    let spec = format!("{}::/d", dir.path().display());
    let (output, bytes) = cli_on(&input, &["--wasi", "--dir", &spec]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("1 × open file"), "{err}");
    assert!(bytes.is_none());
}

#[test]
fn reproducible_random_and_clock_on_a_module() {
    let input = wat(r#"(module
      (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "wizer-initialize")
        (drop (call $random_get (i32.const 0) (i32.const 32)))
        (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64))))
      (func (export "r") (result i32) (i32.load (i32.const 0))))"#);
    let run = |args: &[&str]| {
        let (output, bytes) = cli_on(&input, args);
        assert!(output.status.success(), "{}", stderr(&output));
        bytes.unwrap()
    };
    let one = run(&["--wasi", "--reproducible"]);
    let two = run(&["--wasi", "--reproducible"]);
    assert!(one == two, "reproducible outputs differ");
    let seeded = run(&["--wasi", "--reproducible", "--random-seed", "7"]);
    assert!(one != seeded, "the seed changes nothing");
    // without `--reproducible` the random bytes differ between runs
    assert!(run(&["--wasi"]) != run(&["--wasi"]));
}

#[test]
fn wizers_command_line_as_componentize_js_passes_it() {
    // `--allow-wasi` passes stdin to init (Wizer's default), `--mapdir`
    // maps GUEST::HOST, features and `--inherit-env=true` are accepted
    let input = wat(r#"(module
      (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "componentize.wizer")
        (i32.store (i32.const 5000) (i32.const 100))
        (i32.store (i32.const 5004) (i32.const 16))
        (drop (call $fd_read (i32.const 0) (i32.const 5000) (i32.const 1) (i32.const 5008))))
      (func (export "stdin0") (result i32) (i32.load8_u (i32.const 100))))"#);
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("in.wasm");
    std::fs::write(&input_path, &input).unwrap();
    let out = dir.path().join("out.wasm");
    let args: Vec<std::ffi::OsString> = vec![
        "--allow-wasi".into(),
        "--init-func".into(),
        "componentize.wizer".into(),
        format!("--dir={}", dir.path().display()).into(),
        format!("--mapdir=/::{}", dir.path().display()).into(),
        "--wasm-bulk-memory=true".into(),
        "--inherit-env=true".into(),
        format!("-o={}", out.display()).into(),
        input_path.clone().into(),
    ];
    let output = cli_with_stdin(&args, b"Z");
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(i32s(call(&bytes, &["stdin0"]).unwrap()), [i32::from(b'Z')]);
    // `wasmtime wizer`'s spelling: `-S cli`
    let (output, _) = cli_on(
        &wat(RENAME),
        &["-S", "cli", "-W", "bulk-memory=y", "-f", "init"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn version() {
    let output = cli().arg("--version").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("component-init "), "{text}");
    let output = cli().arg("-V").output().unwrap();
    assert!(output.status.success());
}

#[test]
fn the_runtime_builder_gives_a_module_wasi_and_limits() {
    let input = wat(r#"(module
      (func (export "wizer-initialize") (loop $l (br $l))))"#);
    let mut runtime = WasmtimeRuntime::builder()
        .limits(component_init::Limits {
            timeout: Some(std::time::Duration::from_millis(300)),
            ..component_init::Limits::default()
        })
        .build()
        .unwrap();
    let err = format!(
        "{:#}",
        runtime
            .initialize_module(&input, &ModuleOptions::default())
            .unwrap_err()
    );
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn the_audit_lists_preview1_calls() {
    let input = wat(r#"(module
      (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "wizer-initialize")
        (drop (call $random_get (i32.const 0) (i32.const 32)))
        (drop (call $random_get (i32.const 0) (i32.const 32)))
        (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64)))))"#);
    let (output, bytes) = cli_on(&input, &["--wasi", "-v"]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(bytes.is_some());
    assert!(
        err.contains("init used randomness: wasi_snapshot_preview1#random_get (2 calls)"),
        "{err}"
    );
    assert!(
        err.contains("init used clocks: wasi_snapshot_preview1#clock_time_get (1 call)"),
        "{err}"
    );
}
