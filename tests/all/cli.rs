//! The command line as a user drives it.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;
use wasmtime::component::Val;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_component-init"))
}

const INPUT: &str = r#"(component
  (core module $m
    (global $g (mut i32) (i32.const 0))
    (func (export "init") (global.set $g (i32.const 42)))
    (func (export "get") (result i32) (global.get $g)))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "get") (result s32) (canon lift (core func $i "get"))))"#;

#[test]
fn verify_cli() {
    use clap::CommandFactory;
    component_init::cli::Opts::command().debug_assert();
}

#[test]
fn reads_stdin_and_writes_stdout() {
    let mut child = cli()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&wat(INPUT)).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(call1(&output.stdout, &["get"]).unwrap(), Val::S32(42));
}

#[test]
fn accepts_text_input_and_prints_text_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.wat");
    std::fs::write(&path, INPUT).unwrap();
    let output = cli().arg(&path).arg("-t").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("(component"), "{text}");
    assert!(text.contains("(mut i32) i32.const 42"), "{text}");
    assert_eq!(call1(&wat(&text), &["get"]).unwrap(), Val::S32(42));
}

#[test]
fn output_may_name_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.wasm");
    std::fs::write(&path, wat(INPUT)).unwrap();
    let status = cli().arg(&path).arg("-o").arg(&path).status().unwrap();
    assert!(status.success());
    let output = std::fs::read(&path).unwrap();
    assert_eq!(call1(&output, &["get"]).unwrap(), Val::S32(42));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn verbose_output_reports_each_phase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.wat");
    std::fs::write(&path, INPUT).unwrap();
    let output = cli()
        .arg(&path)
        .arg("-o")
        .arg(dir.path().join("out.wasm"))
        .arg("-v")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    for phase in [
        "instrumented",
        "instantiated",
        "ran `component-init`",
        "snapshot",
        "rewrote",
    ] {
        assert!(stderr.contains(phase), "{phase}: {stderr}");
    }
}
