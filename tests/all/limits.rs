//! Limits on init: `--timeout` (epoch interruption), `--max-memory` (a store
//! limiter) and `--fuel`. An init that never returns or grows memory without
//! bound ends with a one-line error naming the limit, exit status 1 and no
//! output.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use component_init::Compiler;
use component_init::{InstrumentOptions, Limits, WasmtimeRuntime};
use wasmtime::component::Val;

use crate::support::*;

/// Runs the CLI on `input` (WAT) with `args` and `-o` into a fresh
/// directory, where an older output already exists; returns the process's
/// output and whether that file is intact.
fn run_cli(input: &str, args: &[&str]) -> (Output, bool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out.wasm"), b"previous output").unwrap();
    let (output, out_path) = cli_in(dir.path(), input.as_bytes(), args);
    let intact = std::fs::read(&out_path).unwrap() == b"previous output";
    (output, intact)
}

/// Asserts the failure contract and returns the error line.
fn fails(input: &str, args: &[&str]) -> String {
    let (output, intact) = run_cli(input, args);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(intact, "the existing output must be left untouched");
    stderr
}

fn succeeds(input: &str, args: &[&str]) {
    let (output, _) = run_cli(input, args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A component whose init runs `body` in a module with one memory (1 page)
/// and a mutable global `$n`; `n` returns it.
fn component(body: &str) -> String {
    component_with(body, "")
}

fn component_with(body: &str, start: &str) -> String {
    format!(
        r#"(component
          (core module $m
            (memory 1)
            (global $n (mut i32) (i32.const 0))
            (func $init (export "init") {body})
            {start}
            (func (export "n") (result i32) (global.get $n)))
          (core instance $i (instantiate $m))
          (func (export "component-init") (canon lift (core func $i "init")))
          (func (export "n") (result s32) (canon lift (core func $i "n"))))"#
    )
}

const FOREVER: &str = "(loop $l (global.set $n (i32.add (global.get $n) (i32.const 1))) (br $l))";

/// Grows the memory a page at a time, ignoring failures: without a limit it
/// never ends.
const GROW_FOREVER: &str = "(loop $l (drop (memory.grow (i32.const 1))) (br $l))";

/// Counts `$n` up to `count`.
fn count_to(count: u32) -> String {
    format!(
        "(loop $l (global.set $n (i32.add (global.get $n) (i32.const 1)))
           (br_if $l (i32.lt_u (global.get $n) (i32.const {count}))))"
    )
}

#[test]
fn an_init_that_never_returns_times_out() {
    let start = Instant::now();
    let err = fails(&component(FOREVER), &["--timeout", "300ms"]);
    assert!(
        err.contains("init function `component-init` failed: timed out: still running after 300ms"),
        "{err}"
    );
    // the timer ends it, not the default of minutes
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_start_function_that_never_returns_times_out() {
    let input = component_with("", &format!("(func $s {FOREVER}) (start $s)"));
    let err = fails(&input, &["--timeout", "200ms"]);
    assert!(
        err.contains("failed to instantiate the component: timed out"),
        "{err}"
    );
}

#[test]
fn unbounded_memory_growth_is_stopped_by_max_memory() {
    let err = fails(&component(GROW_FOREVER), &["--max-memory", "4MiB"]);
    assert!(
        err.contains("init function `component-init` failed: growing a memory from")
            && err.contains("over the limit of 4 MiB (`--max-memory`)"),
        "{err}"
    );
    // Without `--max-memory`, the memory grows to its 4 GiB maximum, then
    // every grow fails and the loop goes on: the timeout ends it.
    let err = fails(&component(GROW_FOREVER), &["--timeout", "2s"]);
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn max_memory_counts_init_not_the_reading_back() {
    // Init uses 3 of the 4 MiB allowed; reading state back through the
    // accessors (whose buffers would go over) does not count.
    let body = "(drop (memory.grow (i32.const 47)))
                (i32.store (i32.const 3000000) (i32.const 7))
                (global.set $n (i32.load (i32.const 3000000)))";
    succeeds(&component(body), &["--max-memory", "4MiB"]);
    // A memory64 memory is copied out by the accessor module in chunks.
    let input = r#"(component
      (core module $m
        (memory i64 1)
        (func (export "init")
          (drop (memory.grow (i64.const 47)))
          (i64.store (i64.const 3000000) (i64.const 7))))
      (core instance $i (instantiate $m))
      (func (export "component-init") (canon lift (core func $i "init"))))"#;
    succeeds(input, &["--max-memory", "3MiB"]);
    let err = fails(input, &["--max-memory", "2MiB"]);
    assert!(err.contains("over the limit of 2 MiB"), "{err}");
}

#[test]
fn fuel_is_a_deterministic_bound() {
    let input = component(&count_to(10_000));
    succeeds(&input, &["--fuel", "1000000"]);
    let err = fails(&input, &["--fuel", "10000"]);
    assert!(
        err.contains(
            "init function `component-init` failed: ran out of fuel: used all of its 10000 units"
        ),
        "{err}"
    );
    let err = fails(&component(FOREVER), &["--fuel", "50000", "--timeout", "0"]);
    assert!(err.contains("ran out of fuel"), "{err}");
}

#[test]
fn limits_on_the_split_snapshot_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let output = split_snapshot(
        dir.path(),
        component(FOREVER).as_bytes(),
        &["--timeout", "250ms"],
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("timed out: still running after 250ms"),
        "{stderr}"
    );
    assert!(!Path::new(&d("snap.bin")).exists());
}

#[test]
fn bad_limit_values_are_one_line_errors() {
    for (args, expected) in [
        (["--timeout", "3"], "has no unit"),
        (["--timeout", "3 days"], "unknown unit"),
        (["--max-memory", "lots"], "unknown unit"),
        (["--fuel", "lots"], "invalid value 'lots' for '--fuel <N>'"),
        (["--fuel", "-5"], "unexpected argument '-5'"),
    ] {
        let (output, intact) = run_cli(&component(""), &args);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(intact);
    }
}

/// The library: limits on `WasmtimeRuntime`, and the same init with and
/// without them.
#[test]
fn library_limits() {
    let input = wat(&component(&count_to(100_000)));
    let run = |limits: Limits| {
        let mut runtime = WasmtimeRuntime::builder().limits(limits).build()?;
        runtime.initialize(&input, &InstrumentOptions::default())
    };
    let output = run(Limits::none()).unwrap();
    assert_eq!(call1(&output, &["n"]).unwrap(), Val::S32(100_000));
    // Fuel is deterministic: the same bound fails the same way every time.
    let fuel = Limits {
        fuel: Some(100_000),
        ..Limits::none()
    };
    for _ in 0..2 {
        let err = run(fuel.clone()).unwrap_err();
        assert!(format!("{err:#}").contains("ran out of fuel"), "{err:#}");
    }
    let output = run(Limits {
        fuel: Some(10_000_000),
        ..Limits::default()
    })
    .unwrap();
    assert_eq!(call1(&output, &["n"]).unwrap(), Val::S32(100_000));

    // An engine of the caller's must be configured for the limits it gets.
    let engine = wasmtime::Engine::default();
    let err = WasmtimeRuntime::builder()
        .engine(engine)
        .limits(fuel.clone())
        .build()
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("Config::consume_fuel"),
        "{err:#}"
    );
    let engine =
        wasmtime::Engine::new(&WasmtimeRuntime::config(&fuel, Compiler::Cranelift)).unwrap();
    let mut runtime = WasmtimeRuntime::builder()
        .engine(engine)
        .limits(fuel)
        .build()
        .unwrap();
    let instrumented = component_init::instrument(&input, &InstrumentOptions::default()).unwrap();
    let err = runtime.take_snapshot(&instrumented).unwrap_err();
    assert!(format!("{err:#}").contains("ran out of fuel"), "{err:#}");
}

/// Runs the CLI on the guest `name` with `args`, from a directory that
/// holds an older output; asserts the timeout error, exit 1, the old
/// output untouched, and that it came well before the guest's own wait
/// (30 s, or forever) would have ended.
fn times_out_in_a_host_call(name: &str, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out.wasm"), b"previous output").unwrap();
    let start = Instant::now();
    let (output, out_path) = cli_in(dir.path(), &crate::guests::wasip2_guest(name), args);
    let took = start.elapsed();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("timed out: still running after 2s (`--timeout`)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), b"previous output");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn the_timeout_ends_a_wasi_sleep() {
    // `std::thread::sleep(30s)`: a WASI 0.2 poll on a monotonic-clock
    // pollable
    times_out_in_a_host_call("sleepy", &["--wasi", "--timeout", "2s"]);
}

#[test]
fn the_timeout_ends_a_blocking_read_of_a_named_pipe() {
    let pipe = tempfile::tempdir().unwrap();
    let status = Command::new("mkfifo")
        .arg(pipe.path().join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let dir = format!("{}::/pipe", pipe.path().display());
    let args = [
        "--wasi",
        "--dir",
        &dir,
        "--init-func",
        "init-read-fifo",
        "--timeout",
        "2s",
    ];
    times_out_in_a_host_call("sleepy", &args);
}

#[test]
fn the_timeout_ends_an_async_init_awaiting_a_wasi_0_3_sleep() {
    let args = ["--wasi", "--init-func", "sleep-long", "--timeout", "2s"];
    times_out_in_a_host_call("wasip3-init", &args);
}

#[test]
fn the_library_and_the_split_snapshot_command_end_host_waits_too() {
    let input = crate::guests::wasip2_guest("sleepy");
    let limits = Limits {
        timeout: Some(Duration::from_secs(2)),
        ..Limits::default()
    };
    let start = Instant::now();
    let mut runtime = WasmtimeRuntime::builder()
        .limits(limits)
        .wasi(Default::default())
        .build()
        .unwrap();
    let result = runtime.initialize(&input, &InstrumentOptions::default());
    let err = format!("{:#}", result.unwrap_err());
    assert!(err.contains("timed out: still running after 2s"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(15));

    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let output = split_snapshot(dir.path(), &input, &["--wasi", "--timeout", "2s"]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("timed out: still running after 2s"),
        "{stderr}"
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(!dir.path().join("snap.bin").exists());
}
