//! `--reproducible`: the same input and flags give the same bytes, run
//! after run, in separate processes, whatever the compiler; without it, a
//! guest that reads randomness or clocks gives different bytes each run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use component_init::{InstrumentOptions, Reproducible, WasiOptions, WasmtimeRuntime};

use crate::guests::{string, wasip2_guest_path};
use crate::support::*;

/// Runs the CLI on `guest` with `args` and `env`, writing `out`; returns
/// the output's bytes (panicking, with stderr, on failure).
fn run_cli(guest: &str, args: &[&str], env: &[(&str, &str)], out: &Path) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_component-init"))
        .arg(wasip2_guest_path(guest))
        .arg("-o")
        .arg(out)
        .args(args)
        .envs(env.iter().copied())
        .env_remove(if env.iter().any(|(k, _)| *k == "SOURCE_DATE_EPOCH") {
            "UNUSED"
        } else {
            "SOURCE_DATE_EPOCH"
        })
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(out).unwrap()
}

/// The `reproducible` guest's report, as `key -> value`.
fn report(component: &[u8]) -> BTreeMap<String, String> {
    let value = call1(component, &["report"]).unwrap();
    string(&value)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A directory whose entries were created out of name order.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["zz.txt", "m.txt", "a.txt", "b.txt"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    dir
}

#[test]
fn a_hash_map_guest_gives_the_same_bytes_every_run_only_under_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        |args: &[&str], name: &str| run_cli("regex-tables", args, &[], &dir.path().join(name));
    let on = ["--wasi", "--reproducible"];
    assert!(
        run(&on, "a.wasm") == run(&on, "b.wasm"),
        "same bytes under the mode"
    );
    // std's `HashMap` seeds itself from `wasi:random/insecure-seed`: without
    // the mode every run differs (so the check above can fail)
    assert!(run(&["--wasi"], "c.wasm") != run(&["--wasi"], "d.wasm"));
}

#[test]
fn every_source_init_reads_is_fixed() {
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let grant = format!("{}::/data", data.path().display());
    let args = ["--wasi", "--reproducible", "--dir", &grant];
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let first = run_cli("reproducible", &args, &epoch, &dir.path().join("1.wasm"));
    // another directory with the same files, created in another order, and
    // later: other inodes, other times
    let other = tempfile::tempdir().unwrap();
    for name in ["b.txt", "a.txt", "zz.txt", "m.txt"] {
        std::fs::write(other.path().join(name), name).unwrap();
    }
    let grant2 = format!("{}::/data", other.path().display());
    let args2 = ["--wasi", "--reproducible", "--dir", &grant2];
    let second = run_cli("reproducible", &args2, &epoch, &dir.path().join("2.wasm"));
    assert!(first == second, "same bytes");

    let fixed = report(&first);
    assert_eq!(fixed["wall"], "1700000000.000000000");
    assert_eq!(fixed["monotonic"], "0");
    assert_eq!(fixed["entries"], "a.txt,b.txt,m.txt,zz.txt");
    assert_eq!(fixed["mtime"], "1700000000.000000000");
    assert_eq!(fixed["calls"], "1");

    // Without SOURCE_DATE_EPOCH: the documented default. Another seed:
    // other random values, the clocks unchanged.
    let seeded = [
        "--wasi",
        "--reproducible",
        "--dir",
        &grant,
        "--random-seed",
        "7",
    ];
    let default = report(&run_cli(
        "reproducible",
        &args,
        &[],
        &dir.path().join("3.wasm"),
    ));
    let reseeded = report(&run_cli(
        "reproducible",
        &seeded,
        &[],
        &dir.path().join("4.wasm"),
    ));
    assert_eq!(default["wall"], "315532800.000000000");
    for key in ["random", "insecure", "seed"] {
        assert_ne!(default[key], reseeded[key], "{key}");
        assert_eq!(
            default[key],
            report(&second)[key],
            "{key} depends on the seed only"
        );
    }
    assert_eq!(default["entries"], reseeded["entries"]);
}

#[test]
fn winch_and_cranelift_give_the_same_bytes_under_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name);
    let winch = run_cli(
        "regex-tables",
        &["--wasi", "--reproducible", "--compiler", "winch"],
        &[],
        &out("w.wasm"),
    );
    let cranelift = run_cli(
        "regex-tables",
        &["--wasi", "--reproducible", "--compiler", "cranelift"],
        &[],
        &out("c.wasm"),
    );
    assert!(winch == cranelift);
}

#[test]
fn wasi_0_3_clocks_and_sleeps_are_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--wasi",
        "--reproducible",
        "--init-func",
        "init",
        "--env",
        "GREETING=hi",
    ];
    let epoch = [("SOURCE_DATE_EPOCH", "1234567890")];
    let first = run_cli("wasip3-init", &args, &epoch, &dir.path().join("1.wasm"));
    let second = run_cli("wasip3-init", &args, &epoch, &dir.path().join("2.wasm"));
    assert!(first == second);
    assert_eq!(
        string(&call1(&first, &["clock"]).unwrap()),
        "1234567890.000000000"
    );
    // a 30 s WASI 0.3 sleep returns at once
    let start = std::time::Instant::now();
    run_cli(
        "wasip3-init",
        &["--wasi", "--reproducible", "--init-func", "sleep-long"],
        &[],
        &dir.path().join("3.wasm"),
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn what_cannot_be_fixed_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (output, out_path) = cli_in(
        dir.path(),
        &std::fs::read(wasip2_guest_path("regex-tables")).unwrap(),
        &["--wasi", "--reproducible", "--inherit-env"],
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("`--inherit-env` cannot be made reproducible"),
        "{stderr}"
    );
    assert!(!out_path.exists());
    // a WASI 0.3 filesystem with a preopened directory
    let data = data_dir();
    let grant = format!("{}::/data", data.path().display());
    let (output, _) = cli_in(
        dir.path(),
        &std::fs::read(wasip2_guest_path("wasip3-init")).unwrap(),
        &[
            "--wasi",
            "--reproducible",
            "--init-func",
            "init",
            "--dir",
            &grant,
        ],
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    if stderr.contains("WASI 0.3's filesystem") {
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("`--dir` cannot be made reproducible"),
            "{stderr}"
        );
    } else {
        // the guest does not import WASI 0.3's filesystem: nothing to refuse
        assert!(
            output.status.success() || stderr.contains("GREETING"),
            "{stderr}"
        );
    }
    // `--random-seed` needs the mode; a bad seed is a usage error
    for (args, expected) in [
        (&["--random-seed", "1"][..], "--reproducible"),
        (
            &["--reproducible", "--random-seed", "0xzz"][..],
            "is not a seed",
        ),
    ] {
        let (output, _) = cli_in(dir.path(), b"(component)", args);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn the_library_and_the_split_snapshot_command_take_the_mode() {
    let input = std::fs::read(wasip2_guest_path("regex-tables")).unwrap();
    let once = || {
        let wasi = WasiOptions {
            reproducible: Some(Reproducible::default()),
            ..WasiOptions::default()
        };
        let mut runtime = WasmtimeRuntime::builder().wasi(wasi).build().unwrap();
        runtime
            .initialize(&input, &InstrumentOptions::default())
            .unwrap()
    };
    assert!(once() == once());

    let snapshot = || {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--wasi", "--reproducible", "--random-seed", "42"];
        let output = split_snapshot(dir.path(), &input, &args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(dir.path().join("snap.bin")).unwrap()
    };
    assert!(snapshot() == snapshot());
}
