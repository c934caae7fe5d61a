//! Real async guests (Rust, wit-bindgen 0.63 with its async ABI and the
//! `wasip3` crate, built for `wasm32-wasip2` from `tests/programs`), run
//! through the CLI as a user would: exports, async ones included, called
//! before (init at run time) and after (the pre-initialized output).

use std::path::Path;

use wasmtime::component::Val;

use crate::guests::{Grant, run_wasi, string, wasip2_guest};
use crate::support::*;

/// Runs the CLI on `guest` with `args` into a fresh directory; returns the
/// output component, or the error line (after checking the failure
/// contract: exit 1, one line, no output written).
fn cli(guest: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().unwrap();
    let (output, out_path) = cli_in(dir.path(), &wasip2_guest(guest), args);
    let stderr = String::from_utf8(output.stderr).unwrap();
    if output.status.success() {
        return Ok(std::fs::read(&out_path).unwrap());
    }
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // warnings about what init used may come first
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.contains(" WARN ")).collect();
    assert_eq!(errors.len(), 1, "one line: {stderr}");
    assert!(errors[0].starts_with("error: "), "{stderr}");
    assert!(!Path::new(&out_path).exists(), "no output may be written");
    Err(errors[0].to_string())
}

fn strings(results: &[Vec<Val>]) -> Vec<String> {
    results
        .iter()
        .map(|r| match &r[0] {
            Val::String(_) => string(&r[0]).to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn async_exports_with_a_sync_init() {
    let input = wasip2_guest("async-exports");
    let output = cli("async-exports", &["--wasi"]).unwrap();
    validate(&output);
    let before = run_wasi(
        &input,
        &Grant::default(),
        &[("component-init", &[]), ("get", &[]), ("get-async", &[])],
    )
    .unwrap();
    let after = run(
        &output,
        &[("get", &[]), ("get-async", &[]), ("init-calls", &[])],
    )
    .unwrap();
    let expected = "calls=1 sync=385 n=0 label=";
    assert_eq!(strings(&before[1..]), [expected, expected]);
    assert_eq!(strings(&after[..2]), [expected, expected]);
    assert_eq!(after[2], [Val::U32(1)], "init ran at build time only");
}

#[test]
fn an_async_init_with_wave_arguments() {
    let input = wasip2_guest("async-exports");
    let output = cli(
        "async-exports",
        &["--wasi", "--init-func", "init-async(5, \"x\")"],
    )
    .unwrap();
    validate(&output);
    let args = [Val::U32(5), Val::String("x".into())];
    let before = run_wasi(
        &input,
        &Grant::default(),
        &[("init-async", &args), ("get", &[]), ("get-async", &[])],
    )
    .unwrap();
    let after = run(
        &output,
        &[("get", &[]), ("get-async", &[]), ("init-calls", &[])],
    )
    .unwrap();
    let expected = "calls=1 sync=0 n=5 label=x";
    assert_eq!(strings(&before[1..]), [expected, expected]);
    assert_eq!(strings(&after[..2]), [expected, expected]);
    assert_eq!(after[2], [Val::U32(1)]);
    // an `err` result fails, showing the payload
    let err = cli(
        "async-exports",
        &["--wasi", "--init-func", "init-async(0, \"boom\")"],
    )
    .unwrap_err();
    assert!(err.contains("boom"), "{err}");
}

#[test]
fn an_async_init_using_wasi_0_3_clocks_and_environment() {
    let input = wasip2_guest("wasip3-init");
    let args = ["--wasi", "--init-func", "init", "--env", "GREETING=hello"];
    let output = cli("wasip3-init", &args).unwrap();
    validate(&output);
    let grant = Grant {
        env: vec![("GREETING".into(), "hello".into())],
        ..Grant::default()
    };
    let before = run_wasi(&input, &grant, &[("init", &[]), ("greeting", &[])]).unwrap();
    assert_eq!(strings(&before[1..]), ["hello"]);
    // The output needs no WASI: every import traps.
    let after = run(
        &output,
        &[("greeting", &[]), ("init-calls", &[]), ("clock", &[])],
    )
    .unwrap();
    assert_eq!(strings(&after[..1]), ["hello"]);
    assert_eq!(after[1], [Val::U32(1)]);
    assert_ne!(strings(&after[2..]), ["none"], "init read the system clock");
    // Not granted: init fails naming the variable.
    let err = cli("wasip3-init", &["--wasi", "--init-func", "init"]).unwrap_err();
    assert!(
        err.contains("environment variable GREETING is not set"),
        "{err}"
    );
}

#[test]
fn the_audit_reports_wasi_0_3_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--wasi",
        "--init-func",
        "init",
        "--env",
        "GREETING=hi",
        "-v",
    ];
    let (output, _) = cli_in(dir.path(), &wasip2_guest("wasip3-init"), &args);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("wasi:clocks/system-clock#now"), "{stderr}");
    assert!(
        stderr.contains("wasi:clocks/monotonic-clock#wait-for"),
        "{stderr}"
    );
    assert!(stderr.contains("wasi:cli/environment"), "{stderr}");
}

#[test]
fn a_task_spawned_by_init_runs_to_its_end_before_the_snapshot() {
    let input = wasip2_guest("spawn-task");
    let output = cli("spawn-task", &["--wasi", "--init-func", "init-completes"]).unwrap();
    validate(&output);
    assert_eq!(call1(&input, &["value"]).unwrap(), Val::U32(0));
    let before = run_wasi(&input, &Grant::default(), &[("init-completes", &[])]).unwrap();
    assert!(before[0].is_empty());
    let after = run(&output, &[("value", &[]), ("init-calls", &[])]).unwrap();
    assert_eq!(after, [[Val::U32(42)], [Val::U32(1)]]);
}

/// A task that can never finish is found as soon as nothing can run, not
/// at the timeout: with a timeout of two minutes, the error is the stuck
/// task's (were the check only the timeout, the error would say so).
#[test]
fn a_task_spawned_by_init_that_never_ends_is_refused_at_once() {
    let args = ["--wasi", "--init-func", "init-stuck", "--timeout", "2m"];
    let err = cli("spawn-task", &args).unwrap_err();
    assert!(
        err.contains(
            "it returned, but tasks it started can never finish: each is waiting for something \
             no task or host call will give"
        ),
        "{err}"
    );
    assert!(!err.contains("timeout"), "{err}");
}

/// A task waiting on the host (a 3-second sleep) is waited for: the loop
/// is not idle while a host future is pending.
#[test]
fn a_task_spawned_by_init_that_sleeps_in_the_host_is_waited_for() {
    let output = cli("spawn-task", &["--wasi", "--init-func", "init-sleeps"]).unwrap();
    validate(&output);
    let after = run(&output, &[("value", &[]), ("init-calls", &[])]).unwrap();
    assert_eq!(after, [[Val::U32(7)], [Val::U32(1)]]);
}
