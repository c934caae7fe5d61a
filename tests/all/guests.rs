//! Real guest programs: Rust crates in `tests/programs`, built from source
//! once per test run, pre-initialized, and compared before (init called at
//! run time on the original) and after (the pre-initialized output).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Result;
use component_init::{InstrumentOptions, WasiOptions, WasmtimeRuntime};
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable, Val};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::support::*;

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// Builds the guests for `target` (once per test run), returning where the
/// `.wasm` files are.
fn build(target: &'static str, packages: &[&str]) -> Result<PathBuf, String> {
    let dir = programs_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let start = Instant::now();
    // So that `cargo test` alone works on a fresh machine: add the target
    // when rustup manages the toolchain (a no-op when it is installed).
    if let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        && !String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|t| t.trim() == target)
    {
        let added = Command::new("rustup")
            .args(["target", "add", target])
            .status()
            .map_err(|e| format!("failed to run rustup: {e}"))?;
        if !added.success() {
            return Err(format!("`rustup target add {target}` failed"));
        }
    }
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--target")
        .arg(target)
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(dir.join("target"));
    for package in packages {
        command.arg("-p").arg(package);
    }
    // Flags meant for the host build must not reach the guests'.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| format!("failed to run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the guests for {target} failed (is the target installed? `rustup target \
             add {target}`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    eprintln!(
        "built guests {packages:?} for {target} in {:.1?}",
        start.elapsed()
    );
    Ok(dir.join("target").join(target).join("release"))
}

/// A wasip2 guest component (`name` as in `tests/programs/<name>`).
pub fn wasip2_guest(name: &str) -> Vec<u8> {
    let path = wasip2_guest_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where the wasip2 guest component `name` is, once built.
pub fn wasip2_guest_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| {
            build(
                "wasm32-wasip2",
                &[
                    "regex-tables",
                    "big-heap",
                    "wasi-config",
                    "async-exports",
                    "wasip3-init",
                    "spawn-task",
                    "sleepy",
                    "resource-keeper",
                    "reproducible",
                ],
            )
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// A wasip1 guest core module.
pub fn wasip1_guest(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| build("wasm32-wasip1", &["wasip1-tables", "wizer-init"]))
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a test grants the guest when it runs an original component with
/// WASI (the "before" runs).
#[derive(Default)]
pub struct Grant {
    pub env: Vec<(String, String)>,
    pub dir: Option<(PathBuf, String)>,
}

struct WasiHost {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for WasiHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// Like `support::run`, with WASI 0.2 and 0.3 providing what `grant` says;
/// exports lifted `async` are called to their `task.return`.
pub fn run_wasi(
    component: &[u8],
    grant: &Grant,
    calls: &[(&str, &[Val])],
) -> Result<Vec<Vec<Val>>> {
    crate::support::block_on(run_wasi_async(component, grant, calls))
}

async fn run_wasi_async(
    component: &[u8],
    grant: &Grant,
    calls: &[(&str, &[Val])],
) -> Result<Vec<Vec<Val>>> {
    let (engine, component) = compile(component)?;
    let mut linker = Linker::<WasiHost>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    let mut builder = WasiCtxBuilder::new();
    builder.envs(&grant.env);
    if let Some((host, guest)) = &grant.dir {
        builder.preopened_dir(host, guest, FsPerms::ReadWrite)?;
    }
    let mut store = Store::new(
        &engine,
        WasiHost {
            ctx: builder.build(),
            table: ResourceTable::new(),
        },
    );
    let instance = linker.instantiate_async(&mut store, &component).await?;
    let mut out = Vec::new();
    for (name, args) in calls {
        let func = instance
            .get_func(&mut store, name)
            .ok_or_else(|| anyhow::anyhow!("no export {name}"))?;
        let mut results = vec![Val::Bool(false); func.ty(&store).results().len()];
        func.call_async(&mut store, args, &mut results).await?;
        out.push(results);
    }
    Ok(out)
}

/// Pre-initializes with the library's Wasmtime runner and WASI, returning
/// the output and the audit.
pub fn pre_init_wasi(
    component: &[u8],
    init_func: Option<&str>,
    wasi: WasiOptions,
) -> Result<(Vec<u8>, component_init::Audit)> {
    let options = InstrumentOptions {
        init_func: init_func.map(|f| component_init::InitFunc::parse(f).unwrap()),
        keep_init_func: false,
    };
    let mut runtime = WasmtimeRuntime::builder().wasi(wasi).build()?;
    let output = runtime.initialize(component, &options)?;
    Ok((output, runtime.audit().clone()))
}

pub fn string(v: &Val) -> &str {
    match v {
        Val::String(s) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

const WORDS: &str = "Apple 2024-02-29 23:59:07 #C0FFEE -12.5e3 ada@example.org 192.168.0.1 \
                     über naïve rust 999.1.1.1 zucchini ¿qué?";

#[test]
fn regex_tables_answer_the_same_before_and_after() {
    let input = wasip2_guest("regex-tables");
    // std's `HashMap` seeds itself from `wasi:random`, so init needs WASI.
    let (output, audit) = pre_init_wasi(&input, None, WasiOptions::default()).unwrap();
    validate(&output);
    assert!(!export_names(&output).contains(&"component-init".to_string()));
    assert!(audit.used(component_init::Category::Random), "{audit:?}");
    let words = Val::String(WORDS.into());
    let before = run_wasi(
        &input,
        &Grant::default(),
        &[
            ("component-init", &[]),
            ("run", std::slice::from_ref(&words)),
            ("init-calls", &[]),
        ],
    )
    .unwrap();
    // The output runs with every import trapping: it needs nothing from WASI.
    let after = run(
        &output,
        &[
            ("init-calls", &[]),
            ("run", std::slice::from_ref(&words)),
            ("init-calls", &[]),
        ],
    )
    .unwrap();
    assert_eq!(before[2], [Val::U32(1)]);
    // The init work is in the snapshot: `run` does not redo it.
    assert_eq!(after[0], [Val::U32(1)]);
    assert_eq!(after[2], [Val::U32(1)]);
    let (before, after) = (string(&before[1][0]), string(&after[1][0]));
    assert_eq!(before, after);
    assert_eq!(before.lines().count(), WORDS.split_whitespace().count());
    for expected in [
        "2024-02-29: date(year=2024,month=02,day=29) -",
        "23:59:07: time(hour=23,minute=59,second=07) -",
        "Apple: word fruit",
        "über: word word-with-umlaut",
        "192.168.0.1: ipv4 -",
        "999.1.1.1: other -",
    ] {
        assert!(
            before.lines().any(|l| l == expected),
            "{expected}: {before}"
        );
    }
}

#[test]
fn big_heap_checksum_survives_the_snapshot() {
    let input = wasip2_guest("big-heap");
    let start = Instant::now();
    let output = pre_init(&input).unwrap();
    let took = start.elapsed();
    validate(&output);
    let before = run(
        &input,
        &[("component-init", &[]), ("checksum", &[]), ("sizes", &[])],
    )
    .unwrap();
    let after = run(
        &output,
        &[
            ("init-calls", &[]),
            ("checksum", &[]),
            ("sizes", &[]),
            ("init-calls", &[]),
        ],
    )
    .unwrap();
    let Val::Tuple(sizes) = &before[2][0] else {
        panic!("{before:?}")
    };
    let [Val::U64(dense), Val::U64(sparse)] = sizes[..] else {
        panic!("{sizes:?}")
    };
    assert!(dense >= 64 << 20 && sparse > 0, "{sizes:?}");
    assert_eq!(before[1], after[1], "checksum");
    assert_eq!(before[2], after[2], "sizes");
    assert_eq!(after[0], [Val::U32(1)]);
    assert_eq!(after[3], [Val::U32(1)]);
    // The dense bytes are all in the output; the sparse region is not
    // stored densely.
    let dense = dense as usize;
    assert!(output.len() > dense, "{} bytes", output.len());
    assert!(
        output.len() < dense + (2 << 20),
        "{} bytes for {dense} dense bytes",
        output.len()
    );
    eprintln!(
        "big heap: {} bytes in, {} bytes out, pre-initialized in {took:.1?}",
        input.len(),
        output.len()
    );
}

/// The usual shape of a real component: a wasip1 core module, made into a
/// component with wit-component and the preview1 adapter.
#[test]
fn wasip1_module_with_the_preview1_adapter() {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    let module = wasip1_guest("wasip1-tables");
    let input = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let label = ("TABLE_LABEL".to_string(), "collatz".to_string());
    let (output, audit) = pre_init_wasi(
        &input,
        None,
        WasiOptions {
            env: vec![label.clone()],
            ..WasiOptions::default()
        },
    )
    .unwrap();
    validate(&output);
    assert!(
        audit.count("wasi:cli/environment#get-environment") >= 1,
        "{audit:?}"
    );
    let lookups: Vec<Vec<Val>> = [1u32, 27, 97, 871, 77_031, 199_999, 200_000]
        .iter()
        .map(|n| vec![Val::U32(*n)])
        .collect();
    let mut calls: Vec<(&str, &[Val])> = vec![("component-init", &[])];
    calls.extend(lookups.iter().map(|a| ("lookup", &a[..])));
    calls.push(("init-calls", &[]));
    let before = run_wasi(
        &input,
        &Grant {
            env: vec![label],
            dir: None,
        },
        &calls,
    )
    .unwrap();
    calls[0] = ("init-calls", &[]);
    let after = run(&output, &calls).unwrap();
    assert_eq!(after[0], [Val::U32(1)]);
    assert_eq!(before[1..], after[1..]);
    let first = string(&after[2][0]);
    assert!(
        first.starts_with("collatz: n=27 steps=Some(111)"),
        "{first}"
    );
}
