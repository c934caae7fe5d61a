//! WASI during init: off by default, granted piece by piece, audited, and
//! refused while init leaves host resources open.

use std::path::Path;
use std::process::{Command, Output};

use component_init::{Category, PreopenDir};
use component_init::{WasiOptions, WasmtimeRuntime};
use wasmtime::component::Val;

use crate::guests::{
    Grant, pre_init_wasi, run_wasi, wasip2_guest, wasip2_guest_path as wasip2_path,
};
use crate::support::*;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_component-init"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A directory holding `settings.txt`, as the wasi-config guest reads it.
fn config_dir(settings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("settings.txt"), settings).unwrap();
    dir
}

fn grant_config(dir: &Path, greeting: &str) -> WasiOptions {
    WasiOptions {
        dirs: vec![PreopenDir {
            host: dir.to_path_buf(),
            guest: "/config".into(),
        }],
        env: vec![("GREETING".into(), greeting.into())],
        ..WasiOptions::default()
    }
}

fn config_of(component: &[u8]) -> String {
    match call1(component, &["config"]).unwrap() {
        Val::String(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn init_reads_a_file_the_environment_and_prints() {
    let input = wasip2_guest("wasi-config");
    let settings = "mode=fast\nlimit=7\n";
    let dir = config_dir(settings);
    let (output, audit) = pre_init_wasi(&input, None, grant_config(dir.path(), "bonjour")).unwrap();
    validate(&output);
    let expected = format!("settings={}\ngreeting=bonjour", settings.trim_end());
    // The output carries what init read, and runs with every import
    // trapping: it reads nothing again.
    assert_eq!(config_of(&output), expected);
    // Init at run time on the original reads the same.
    let before = run_wasi(
        &input,
        &Grant {
            env: vec![("GREETING".into(), "bonjour".into())],
            dir: Some((dir.path().to_path_buf(), "/config".into())),
        },
        &[("component-init", &[]), ("config", &[])],
    )
    .unwrap();
    assert_eq!(before[1], [Val::String(expected)]);

    // The audit saw it all.
    assert_eq!(audit.count("wasi:cli/environment#get-environment"), 1);
    let (_, open_at) = audit
        .calls()
        .find(|(name, _)| *name == "wasi:filesystem/types#[method]descriptor.open-at")
        .expect("open-at was recorded");
    assert!(
        open_at.paths.contains("\"settings.txt\""),
        "{:?}",
        open_at.paths
    );
    assert_eq!(audit.count("wasi:cli/stdout#get-stdout"), 1);
    let printed = format!(
        "wasi-config: read {} bytes of settings; GREETING=bonjour\n",
        settings.len()
    );
    assert_eq!(audit.stdout_bytes(), printed.len() as u64);
    assert!(audit.open_resources().is_empty());
    assert!(!audit.used(Category::Random) && !audit.used(Category::Clocks));
    let summary: Vec<String> = audit.summary().into_iter().map(|e| e.message).collect();
    assert!(
        summary
            .iter()
            .any(|m| m.contains("the environment") && m.contains("granted: GREETING")),
        "{summary:?}"
    );
    assert!(
        summary
            .iter()
            .any(|m| m.contains("the filesystem") && m.contains("/config")),
        "{summary:?}"
    );
}

#[test]
fn without_wasi_a_wasi_import_fails_naming_it() {
    let error = pre_init(&wasip2_guest("wasi-config")).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("unknown import: `wasi:"), "{message}");
    assert!(message.contains("has not been defined"), "{message}");
    // A real program: std's `HashMap` seeds itself from `wasi:random`.
    let message = format!("{:#}", pre_init(&wasip2_guest("regex-tables")).unwrap_err());
    assert!(
        message.contains("`wasi:random/insecure-seed@0.2.6#insecure-seed`"),
        "{message}"
    );
}

#[test]
fn nothing_of_the_host_is_visible_unless_granted() {
    let dir = config_dir("x=1");
    // No directory: init fails, and the error shows the end of its stderr.
    let output = cli()
        .arg(wasip2_path("wasi-config"))
        .args(["--wasi", "-o"])
        .arg(dir.path().join("out.wasm"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: init function `component-init` failed"),
        "{err}"
    );
    assert!(err.contains("open /config/settings.txt"), "{err}");
    assert!(!dir.path().join("out.wasm").exists());

    // A directory but no environment: the host's GREETING stays unseen.
    let out = dir.path().join("out.wasm");
    let output = cli()
        .arg(wasip2_path("wasi-config"))
        .args(["--wasi", "--dir"])
        .arg(format!("{}::/config", dir.path().display()))
        .arg("-o")
        .arg(&out)
        .env("GREETING", "from-the-host")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        config_of(&std::fs::read(&out).unwrap()),
        "settings=x=1\ngreeting=<unset>"
    );
}

#[test]
fn cli_env_flags() {
    let dir = config_dir("k=v");
    let out = dir.path().join("out.wasm");
    let mount = format!("{}::/config", dir.path().display());
    // `--env NAME` passes the host's value.
    let output = cli()
        .arg(wasip2_path("wasi-config"))
        .args(["--wasi", "--dir", &mount, "--env", "GREETING", "-o"])
        .arg(&out)
        .env("GREETING", "hola")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        config_of(&std::fs::read(&out).unwrap()),
        "settings=k=v\ngreeting=hola"
    );
    // `--inherit-env` passes everything; `--env NAME=VAL` wins over it.
    for (args, expected) in [
        (vec!["--inherit-env"], "hej"),
        (vec!["--inherit-env", "--env", "GREETING=ciao"], "ciao"),
    ] {
        let output = cli()
            .arg(wasip2_path("wasi-config"))
            .args(["--wasi", "--dir", &mount])
            .args(&args)
            .arg("-o")
            .arg(&out)
            .env("GREETING", "hej")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(
            config_of(&std::fs::read(&out).unwrap()),
            format!("settings=k=v\ngreeting={expected}"),
            "{args:?}"
        );
    }
}

#[test]
fn cli_inherit_stdio_and_audit_log() {
    let dir = config_dir("a=b");
    let mount = format!("{}::/config", dir.path().display());
    let line = "wasi-config: read 3 bytes of settings; GREETING=hi";
    // To a file: init's stdout is ours.
    let output = cli()
        .arg(wasip2_path("wasi-config"))
        .args([
            "--wasi",
            "--dir",
            &mount,
            "--env",
            "GREETING=hi",
            "--inherit-stdio",
            "-v",
            "-o",
        ])
        .arg(dir.path().join("out.wasm"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end(), line);
    let err = stderr(&output);
    for expected in [
        "WASI enabled for init: 1 preopened directory, 1 environment variable, stdio shown",
        "init used the environment: wasi:cli/environment#get-environment (1 call); granted: GREETING",
        "wasi:filesystem/types#[method]descriptor.open-at (1 call: \"settings.txt\")",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let written = format!(
        "init used stdio: wasi:cli/stdout#get-stdout (1 call); wrote {} bytes to stdout and 0 to \
         stderr (shown)",
        line.len() + 1
    );
    assert!(err.contains(&written), "{written}: {err}");
    // To stdout: init's stdout goes to stderr, the output stays clean.
    let output = cli()
        .arg(wasip2_path("wasi-config"))
        .args([
            "--wasi",
            "--dir",
            &mount,
            "--env",
            "GREETING=hi",
            "--inherit-stdio",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains(line), "{}", stderr(&output));
    assert_eq!(config_of(&output.stdout), "settings=a=b\ngreeting=hi");
    // Without `--inherit-stdio` or `-v`: nothing printed at all.
    let output = cli()
        .arg(wasip2_path("wasi-config"))
        .args(["--wasi", "--dir", &mount, "-o"])
        .arg(dir.path().join("out2.wasm"))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "{output:?}"
    );
}

#[test]
fn open_resources_are_refused_unless_allowed() {
    let input = wasip2_guest("wasi-config");
    let dir = config_dir("s=1");
    let error = pre_init_wasi(
        &input,
        Some("init-keep-open"),
        grant_config(dir.path(), "hi"),
    )
    .unwrap_err();
    let message = format!("{error:#}");
    for expected in [
        "init function `init-keep-open` failed",
        "init left WASI resources open",
        "1 × open file",
        "× directory handle",
        "× output stream",
        "__wasilibc_reset_preopens",
        "--allow-open-resources",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert!(!message.contains('\n'), "{message}");

    let (output, audit) = pre_init_wasi(
        &input,
        Some("init-keep-open"),
        WasiOptions {
            allow_open_resources: true,
            ..grant_config(dir.path(), "hi")
        },
    )
    .unwrap();
    assert_eq!(audit.open_resources().get("open file"), Some(&1));
    assert_eq!(config_of(&output), "settings=s=1\ngreeting=hi");

    // The CLI says the same, and warns when allowed.
    let mount = format!("{}::/config", dir.path().display());
    let out = dir.path().join("out.wasm");
    let refused = cli()
        .arg(wasip2_path("wasi-config"))
        .args([
            "--init-func",
            "init-keep-open",
            "--wasi",
            "--dir",
            &mount,
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--allow-open-resources"),
        "{}",
        stderr(&refused)
    );
    assert!(!out.exists());
    let allowed = cli()
        .arg(wasip2_path("wasi-config"))
        .args([
            "--init-func",
            "init-keep-open",
            "--wasi",
            "--dir",
            &mount,
            "--allow-open-resources",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert!(
        stderr(&allowed)
            .contains("init left WASI resources open (allowed by `--allow-open-resources`)"),
        "{}",
        stderr(&allowed)
    );
}

/// Imports WASI's monotonic clock (plus a function WASI lacks) and a
/// non-WASI interface.
const CLOCK: &str = r#"(component
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (export "now" (func (result u64)))
    (export "not-in-wasi" (func))))
  (import "my:host/api" (instance $api (export "fetch" (func (result u32)))))
  (import "wasi:cli/exit@0.2.0" (instance $exit
    (export "exit" (func (param "status" (result))))))
  (core func $now (canon lower (func $clock "now")))
  (core func $missing (canon lower (func $clock "not-in-wasi")))
  (core func $fetch (canon lower (func $api "fetch")))
  (core func $exit (canon lower (func $exit "exit")))
  (core module $m
    (import "host" "now" (func $now (result i64)))
    (import "host" "missing" (func $missing))
    (import "host" "fetch" (func $fetch (result i32)))
    (import "host" "exit" (func $exit (param i32)))
    (global $t (mut i64) (i64.const 0))
    (func (export "init") (global.set $t (call $now)))
    (func (export "init-missing") (call $missing))
    (func (export "init-fetch") (drop (call $fetch)))
    (func (export "init-exit") (call $exit (i32.const 1)))
    (func (export "get") (result i64) (global.get $t)))
  (core instance $i (instantiate $m (with "host" (instance
    (export "now" (func $now))
    (export "missing" (func $missing))
    (export "fetch" (func $fetch))
    (export "exit" (func $exit))))))
  (func (export "component-init") (canon lift (core func $i "init")))
  (func (export "init-missing") (canon lift (core func $i "init-missing")))
  (func (export "init-fetch") (canon lift (core func $i "init-fetch")))
  (func (export "init-exit") (canon lift (core func $i "init-exit")))
  (func (export "get") (result u64) (canon lift (core func $i "get"))))"#;

#[test]
fn clocks_are_audited_and_warned_about() {
    let input = wat(CLOCK);
    let (output, audit) = pre_init_wasi(&input, None, WasiOptions::default()).unwrap();
    assert_eq!(audit.count("wasi:clocks/monotonic-clock#now"), 1);
    let entries = audit.summary();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].category.is_frozen());
    assert!(entries[0].message.contains("frozen"), "{entries:?}");
    // The time init saw is baked in.
    let Val::U64(t) = call1(&output, &["get"]).unwrap() else {
        panic!()
    };
    assert!(t > 0);

    // The CLI warns by default (no `-v`).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clock.wat");
    std::fs::write(&path, CLOCK).unwrap();
    let output = cli()
        .arg(&path)
        .args(["--wasi", "-o"])
        .arg(dir.path().join("out.wasm"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("WARN")
            && err.contains("init used clocks: wasi:clocks/monotonic-clock#now (1 call)"),
        "{err}"
    );
}

#[test]
fn imports_that_wasi_does_not_provide_still_trap_with_their_name() {
    let input = wat(CLOCK);
    for (init, name) in [
        (
            "init-missing",
            "`wasi:clocks/monotonic-clock@0.2.0#not-in-wasi`",
        ),
        ("init-fetch", "`my:host/api#fetch`"),
    ] {
        let message = format!(
            "{:#}",
            pre_init_wasi(&input, Some(init), WasiOptions::default()).unwrap_err()
        );
        assert!(
            message.contains(&format!("unknown import: {name} has not been defined")),
            "{message}"
        );
    }
    // And without WASI, WASI's own functions trap too.
    let message = format!("{:#}", pre_init(&input).unwrap_err());
    assert!(
        message.contains("`wasi:clocks/monotonic-clock@0.2.0#now` has not been defined"),
        "{message}"
    );
}

#[test]
fn exit_during_init_is_an_error() {
    let message = format!(
        "{:#}",
        pre_init_wasi(&wat(CLOCK), Some("init-exit"), WasiOptions::default()).unwrap_err()
    );
    assert!(
        message.contains("called `wasi:cli/exit#exit` with status 1; init must return instead"),
        "{message}"
    );
}

#[test]
fn wasi_flags_need_wasi_and_bad_ones_are_one_line_errors() {
    let input = wasip2_path("wasi-config");
    for (args, expected) in [
        (
            vec!["--dir", "."],
            "error: `--dir` needs `--wasi` (WASI is off during init unless `--wasi` is given)",
        ),
        (vec!["--env", "A=1"], "error: `--env` needs `--wasi`"),
        (
            vec!["--inherit-stdio"],
            "error: `--inherit-stdio` needs `--wasi`",
        ),
        (
            vec!["--wasi", "--dir", "/surely/not/a/directory::/x"],
            "error: cannot preopen `/surely/not/a/directory`: not a directory on the host",
        ),
        (
            vec!["--wasi", "--dir", "::/x"],
            "error: directory `::/x` is not of the form `HOST_DIR[::GUEST_DIR]`",
        ),
        (
            vec!["--wasi", "--env", "=1"],
            "error: environment variable `=1` is not of the form `NAME[=VALUE]`",
        ),
    ] {
        let output = cli().arg(&input).args(&args).arg("-t").output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(expected), "{args:?}: {err}");
    }
}

#[test]
fn an_engine_of_the_callers_brings_its_own_compiler() {
    let error = WasmtimeRuntime::builder()
        .engine(wasmtime::Engine::default())
        .compiler(component_init::Compiler::Cranelift)
        .wasi(WasiOptions::default())
        .build()
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("an engine of the caller's has its own compiler and cache"),
        "{error}"
    );
}

#[test]
fn the_split_snapshot_command_takes_the_wasi_flags() {
    let dir = config_dir("split=yes");
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str| work.path().join(name);
    let mount = format!("{}::/config", dir.path().display());
    let guest = wasip2_path("wasi-config");
    let run = |args: &[&std::ffi::OsStr]| {
        let output = cli().args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    };
    run(&[
        "instrument".as_ref(),
        guest.as_ref(),
        "-o".as_ref(),
        w("inst.wasm").as_ref(),
        "--plan".as_ref(),
        w("plan.json").as_ref(),
    ]);
    // Without `--wasi` init's WASI imports trap, naming one.
    let output = cli()
        .arg("snapshot")
        .arg(w("inst.wasm"))
        .arg("--plan")
        .arg(w("plan.json"))
        .arg("-o")
        .arg(w("snap.bin"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("wasi:"), "{}", stderr(&output));
    run(&[
        "snapshot".as_ref(),
        w("inst.wasm").as_ref(),
        "--plan".as_ref(),
        w("plan.json").as_ref(),
        "-o".as_ref(),
        w("snap.bin").as_ref(),
        "--wasi".as_ref(),
        "--dir".as_ref(),
        mount.as_ref(),
        "--env".as_ref(),
        "GREETING=split".as_ref(),
    ]);
    run(&[
        "apply".as_ref(),
        guest.as_ref(),
        "--plan".as_ref(),
        w("plan.json").as_ref(),
        "--snapshot".as_ref(),
        w("snap.bin").as_ref(),
        "-o".as_ref(),
        w("out.wasm").as_ref(),
    ]);
    assert_eq!(
        config_of(&std::fs::read(w("out.wasm")).unwrap()),
        "settings=split=yes\ngreeting=split"
    );
}
