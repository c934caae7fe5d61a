//! A componentize-py component whose world has an `async func` export
//! (the component-model async ABI), pre-initialized by the CLI as a user
//! would: its sync and async exports answer the same before (init called at
//! run time on the original) and after (the pre-initialized output).
//!
//! componentize-py 0.25.1 is installed with pip into a venv under
//! `target/tools` when it is missing (once per test run; the network is
//! needed the first time), and makes the component from
//! `tests/programs/py-async`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use wasmtime::component::Val;

use crate::guests::{Grant, run_wasi, string};
use crate::support::*;

/// The componentize-py the test uses, as `componentize-py --version` prints
/// it (the one `benches/pre_init/workloads.rs` uses).
const COMPONENTIZE_PY: &str = "componentize-py 0.25.1";

/// The `componentize-py` executable, installed into `target/tools/venv`
/// when it is missing or another version (once per test run).
fn componentize_py() -> &'static Path {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv");
            let exe = venv.join("bin/componentize-py");
            let installed = Command::new(&exe)
                .arg("--version")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == COMPONENTIZE_PY);
            if !installed {
                pip_install(&venv, &COMPONENTIZE_PY.replace(' ', "=="))?;
            }
            Ok(exe)
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Makes `tests/programs/<name>` (`app.py`, `world.wit`, world `app`) into
/// a component with componentize-py.
fn componentize(name: &str) -> Vec<u8> {
    let exe = componentize_py();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name);
    // A copy of the sources: Python writes __pycache__ beside them.
    let work = tempfile::tempdir().unwrap();
    for file in ["app.py", "world.wit"] {
        std::fs::copy(sources.join(file), work.path().join(file))
            .unwrap_or_else(|e| panic!("{}: {e}", sources.join(file).display()));
    }
    let out = work.path().join("app.wasm");
    let start = Instant::now();
    run_tool(
        Command::new(exe)
            .arg("-d")
            .arg(work.path().join("world.wit"))
            .args(["-w", "app", "componentize", "-p"])
            .arg(work.path())
            .arg("app")
            .arg("-o")
            .arg(&out),
        "componentize-py componentize",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&out).unwrap();
    eprintln!(
        "{COMPONENTIZE_PY}: tests/programs/{name} made into {} bytes in {:.1?}",
        bytes.len(),
        start.elapsed()
    );
    bytes
}

/// Whether `component` (or a component nested in it) has a `task.return`
/// canonical function: an export lifted with the async ABI.
fn has_task_return(component: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(component)
        .any(|payload| match payload.unwrap() {
            wasmparser::Payload::ComponentCanonicalSection(section) => section
                .into_iter()
                .any(|f| matches!(f.unwrap(), wasmparser::CanonicalFunction::TaskReturn { .. })),
            _ => false,
        })
}

fn strings(results: &[Vec<Val>]) -> Vec<&str> {
    results.iter().map(|r| string(&r[0])).collect()
}

#[test]
fn a_componentize_py_app_with_an_async_export() {
    let input = componentize("py-async");
    assert!(has_task_return(&input), "no async export in the input");

    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    // Python's runtime reads randomness and clocks: init needs WASI.
    let (process, out_path) = cli_in(dir.path(), &input, &["--wasi"]);
    let stderr = String::from_utf8_lossy(&process.stderr);
    assert!(process.status.success(), "{stderr}");
    let output = std::fs::read(&out_path).unwrap();
    eprintln!(
        "component-init --wasi: {} bytes in, {} bytes out, in {:.1?}",
        input.len(),
        output.len(),
        start.elapsed()
    );
    validate(&output);
    assert!(!export_names(&output).contains(&"component-init".to_string()));
    assert!(has_task_return(&output));

    let start = Instant::now();
    let before = run_wasi(
        &input,
        &Grant::default(),
        &[
            ("describe", &[]),
            ("component-init", &[]),
            ("describe", &[]),
            ("describe-async", &[]),
            ("init-calls", &[]),
        ],
    )
    .unwrap();
    eprintln!("before (WASI, init at run time): {:.1?}", start.elapsed());
    assert_eq!(strings(&before[..1]), ["calls=0"]);
    assert_eq!(before[4], [Val::U32(1)]);
    let expected = "calls=1 table=20000 total=1834634 longest=17647:278 t27=111";
    assert_eq!(strings(&before[2..4]), [expected, expected]);

    // The output runs with every import trapping: after init, Python's
    // runtime needs nothing from WASI to answer.
    let start = Instant::now();
    let after = run(
        &output,
        &[
            ("describe", &[]),
            ("describe-async", &[]),
            ("init-calls", &[]),
        ],
    )
    .unwrap();
    eprintln!(
        "after (every import trapping): {:.1?}: {:?}",
        start.elapsed(),
        strings(&after[..2])
    );
    assert_eq!(strings(&after[..2]), [expected, expected]);
    assert_eq!(after[2], [Val::U32(1)], "init ran at build time only");
}
