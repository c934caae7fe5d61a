//! Bad input: each case gives a one-line `error: ...` naming the cause,
//! exit status 1, no panic, and no output file written or damaged.

use std::path::Path;
use std::process::Command;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_component-init"))
}

/// Runs the CLI on `input` with `-o` pointing into a fresh directory and
/// returns stderr, asserting the failure contract.
fn fails(input: &[u8], args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (output, out_path) = crate::support::cli_in(dir.path(), input, args);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!out_path.exists(), "no output file may be written");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    stderr
}

fn component(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(component {body})")).unwrap()
}

const GOOD: &str = r#"
  (core module $m
    (global $g (mut i32) (i32.const 0))
    (func (export "init") (global.set $g (i32.const 1))))
  (core instance $i (instantiate $m))
  (func (export "component-init") (canon lift (core func $i "init")))"#;

#[test]
fn not_wasm() {
    let err = fails(b"\xff\xfe\x00garbage", &[]);
    assert!(err.contains("neither a WebAssembly binary"), "{err}");
    let err = fails(b"this is not wat", &[]);
    assert!(err.contains("nor valid WebAssembly text"), "{err}");
}

#[test]
fn truncated() {
    let bytes = component(GOOD);
    for cut in [9, bytes.len() / 2, bytes.len() - 1] {
        let err = fails(&bytes[..cut], &[]);
        assert!(
            err.contains("unexpected end") || err.contains("truncated"),
            "{cut}: {err}"
        );
    }
}

#[test]
fn core_module() {
    // the command line takes a core module the way Wizer does: one without
    // the init function fails, naming it
    let err = fails(&wat::parse_str("(module)").unwrap(), &[]);
    assert!(
        err.contains("the module does not export the init function `wizer-initialize`"),
        "{err}"
    );
    // the component entry points point to the module's
    let err = component_init::instrument(
        &wat::parse_str("(module)").unwrap(),
        &component_init::InstrumentOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("is a core WebAssembly module, not a component: pre-initialize it with `initialize_module_with_wasmtime`"),
        "{err}"
    );
}

#[test]
fn invalid_component() {
    // lifts a core function with a type that does not match
    let bytes = component(
        r#"(core module $m (func (export "init")))
           (core instance $i (instantiate $m))
           (func (export "component-init") (param "x" s32) (canon lift (core func $i "init")))"#,
    );
    let err = fails(&bytes, &[]);
    assert!(err.contains("not a valid component"), "{err}");
}

#[test]
fn missing_init_export() {
    let err = fails(&component(r#"(core module $m)"#), &[]);
    assert!(err.contains("no export named `component-init`"), "{err}");
    let err = fails(&component(GOOD), &["--init-func", "nope"]);
    assert!(err.contains("no export named `nope`"), "{err}");
    assert!(err.contains("exported functions: component-init"), "{err}");
}

#[test]
fn init_export_of_the_wrong_type() {
    let err = fails(
        &component(
            r#"(core module $m (func (export "init") (param i32)))
               (core instance $i (instantiate $m))
               (func (export "component-init") (param "x" s32) (canon lift (core func $i "init")))"#,
        ),
        &[],
    );
    assert!(err.contains("takes 1 parameter"), "{err}");
    let err = fails(
        &component(
            r#"(type $t (component))
               (export "component-init" (type $t))"#,
        ),
        &[],
    );
    assert!(err.contains("`component-init` is not a function"), "{err}");
    let err = fails(&component(GOOD), &["--init-func", "component-init(1, 2)"]);
    assert!(err.contains("do not fit its parameters"), "{err}");
}

#[test]
fn init_traps() {
    let err = fails(
        &component(
            r#"(core module $m (func (export "init") unreachable))
               (core instance $i (instantiate $m))
               (func (export "component-init") (canon lift (core func $i "init")))"#,
        ),
        &[],
    );
    assert!(
        err.contains("init function `component-init` failed"),
        "{err}"
    );
    assert!(err.contains("unreachable"), "{err}");
}

#[test]
fn init_calls_an_import() {
    let err = fails(
        &component(
            r#"(import "host:env/log" (instance $host (export "log" (func (param "n" u32)))))
               (core func $log (canon lower (func $host "log")))
               (core module $m
                 (import "host" "log" (func $log (param i32)))
                 (func (export "init") (call $log (i32.const 1))))
               (core instance $i (instantiate $m
                 (with "host" (instance (export "log" (func $log))))))
               (func (export "component-init") (canon lift (core func $i "init")))"#,
        ),
        &[],
    );
    assert!(err.contains("`host:env/log#log`"), "{err}");
}

#[test]
fn imported_component_instantiated_inside() {
    let err = fails(
        &component(
            r#"(import "c" (component $c))
               (instance (instantiate $c))
               (core module $n (func (export "init")))
               (core instance $i (instantiate $n))
               (func (export "component-init") (canon lift (core func $i "init")))"#,
        ),
        &[],
    );
    assert!(
        err.contains("component instance 0 instantiates component 0"),
        "{err}"
    );
    assert!(err.contains("imports or aliases"), "{err}");
}

#[test]
fn imported_module_instantiated_inside() {
    let err = fails(
        &component(
            r#"(import "m" (core module $m))
               (core instance (instantiate $m))"#,
        ),
        &[],
    );
    assert!(
        err.contains("core instance 0 instantiates core module 0"),
        "{err}"
    );
    assert!(err.contains("imports or aliases"), "{err}");
}

#[test]
fn an_existing_output_file_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let in_path = dir.path().join("in.wasm");
    std::fs::write(&in_path, b"not wasm").unwrap();
    let out_path = dir.path().join("out.wasm");
    std::fs::write(&out_path, b"precious").unwrap();
    let output = cli()
        .arg(&in_path)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read(&out_path).unwrap(), b"precious");
    assert!(Path::new(&out_path).exists());
}

#[test]
fn huge_declared_sizes() {
    // A section that claims 4 GiB of a 20-byte file.
    let mut bytes = component("").to_vec();
    bytes.extend([1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
    let err = fails(&bytes, &[]);
    assert!(
        err.contains("unexpected end") || err.contains("too large"),
        "{err}"
    );

    // A vector that claims 4 billion entries.
    let mut bytes = component("").to_vec();
    bytes.extend([7, 6, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    let err = fails(&bytes, &[]);
    assert!(err.contains("count exceeds limit"), "{err}");

    // A memory of 2^48 64-KiB pages: valid, but no host has it.
    let memory = |decl: &str| {
        component(&format!(
            r#"(core module $m (memory {decl}) (func (export "init")))
               (core instance $i (instantiate $m))
               (func (export "component-init") (canon lift (core func $i "init")))"#
        ))
    };
    let err = fails(&memory("i64 281474976710656"), &[]);
    assert!(err.contains("failed to instantiate the component"), "{err}");
    assert!(err.contains("memory"), "{err}");

    // 4 GiB of memory declared up front, over `--max-memory`.
    let err = fails(&memory("65536"), &["--max-memory", "1GiB"]);
    assert!(
        err.contains("failed to instantiate the component")
            && err.contains("over the limit of 1 GiB"),
        "{err}"
    );
}
