//! Pre-initialization, measured side by side: component-init's pipeline
//! against wasmtime-wizer 48 (`wasmtime wizer`) on the same inputs and init
//! function. See BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench pre_init                      # every workload
//! cargo bench --bench pre_init -- dense-96mib large-code
//! PRE_INIT_BENCH_RUNS=3 cargo bench --bench pre_init
//! PRE_INIT_BENCH_CACHE=0 cargo bench --bench pre_init   # without the cache tables
//! PRE_INIT_BENCH_WASMTIME=PATH cargo bench --bench pre_init  # `wasmtime` 48 for the CLI table
//! cargo bench --bench pre_init -- core-js core-regex   # core modules (pre_init/modules.rs)
//! target/release/deps/pre_init-HASH __startup WORKLOAD A.wasm B.wasm  # startup, in turns
//! target/release/deps/pre_init-HASH __phases IN PLAN SNAPSHOT [N]  # instrument, rewrite alone
//! target/release/deps/pre_init-HASH __module_startup PROBE A.wasm B.wasm  # core modules' startup
//! ```
//!
//! Every pipeline run is a child process of its own (this binary, re-run as
//! `pre_init __child TOOL SETUP INPUT OUTPUT`, SETUP being the init
//! function and WASI grants as JSON), so that its peak RSS (VmHWM)
//! is its own and a panic of either tool is a note, not the end of the
//! suite. Times are medians over the runs; the report (Markdown) goes to
//! stdout and to `target/release/pre-init-bench/results.md`.

#[path = "pre_init/child.rs"]
mod child;
#[path = "pre_init/modules.rs"]
mod modules;
#[path = "pre_init/startup.rs"]
mod startup;
#[path = "pre_init/workloads.rs"]
mod workloads;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::Component;

use child::{Measured, PHASES, Setup};
use workloads::Workload;

/// Pipeline runs per workload and tool, unless `PRE_INIT_BENCH_RUNS` says.
const RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__child") {
        let [_, tool, setup, input, output] = &args[..] else {
            eprintln!("usage: pre_init __child TOOL SETUP INPUT OUTPUT");
            std::process::exit(2);
        };
        let result = serde_json::from_str(setup)
            .map_err(anyhow::Error::from)
            .and_then(|setup| child::main(tool, &setup, input, output));
        if let Err(e) = result {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("__startup") {
        if let Err(e) = compare_startup(&args[1..]) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("__module_startup") {
        if let Err(e) = modules::compare_startup(&args[1..]) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("__phases") {
        if let Err(e) = phases(&args[1..]) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo bench` passes `--bench`; other arguments select workloads.
    let selected: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Err(e) = run(&selected) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The median of `values` (sorted in place); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The outcome of one tool on one workload.
#[derive(Default)]
struct ToolResult {
    runs: Vec<Measured>,
    /// Why the tool failed, if it did (then `runs` is empty).
    failure: Option<String>,
    /// Where its output component is.
    output: Option<PathBuf>,
}

impl ToolResult {
    fn ok(&self) -> bool {
        !self.runs.is_empty()
    }

    fn phase(&self, i: usize) -> f64 {
        median(&mut self.runs.iter().map(|m| m.phases[i]).collect::<Vec<_>>())
    }

    fn total(&self) -> f64 {
        median(&mut self.runs.iter().map(|m| m.total).collect::<Vec<_>>())
    }

    fn rss(&self) -> f64 {
        median(
            &mut self
                .runs
                .iter()
                .map(|m| m.peak_rss as f64)
                .collect::<Vec<_>>(),
        )
    }

    fn size(&self) -> usize {
        self.runs.first().map_or(0, |m| m.output_size)
    }

    fn guest_memory(&self) -> usize {
        self.runs.first().map_or(0, |m| m.guest_memory)
    }
}

struct Row {
    workload: Workload,
    load: f64,
    ours: ToolResult,
    peer: ToolResult,
    /// Ours with `--compiler cranelift` (workloads where compilation
    /// dominates only).
    ours_cranelift: Option<ToolResult>,
    startup: Option<Startup>,
    /// With Wasmtime's compilation cache ([`CACHED`] workloads only).
    cache: Option<CacheRow>,
}

/// The workloads of the cache table: those where compiling is most of the
/// time (the others compile in milliseconds).
const CACHED: &[&str] = &[
    "regex-tables",
    "large-code",
    "many-globals",
    "componentize-py",
    "componentize-js",
];

/// The runs in the order of each repetition of the cache table, all with
/// the same cache directory (emptied before the first): the input, the
/// input again, and the changed app (where the workload has one).
const CACHE_RUNS: [&str; 3] = ["first", "again", "changed"];

/// One tool's runs with a compilation cache, per [`CACHE_RUNS`].
#[derive(Default)]
struct CacheRuns {
    runs: [Vec<Measured>; 3],
    failure: Option<String>,
}

impl CacheRuns {
    fn total(&self, i: usize) -> f64 {
        median(&mut self.runs[i].iter().map(|m| m.total).collect::<Vec<_>>())
    }

    fn phase(&self, i: usize, phase: usize) -> f64 {
        median(
            &mut self.runs[i]
                .iter()
                .map(|m| m.phases[phase])
                .collect::<Vec<_>>(),
        )
    }

    /// "hits/runs" of run `i`.
    fn hits(&self, i: usize) -> String {
        let runs = &self.runs[i];
        let hits = runs.iter().filter(|m| m.cache_hit == Some(true)).count();
        format!("{hits}/{}", runs.len())
    }
}

#[derive(Default)]
struct CacheRow {
    load: f64,
    ours: CacheRuns,
    peer: CacheRuns,
    /// What-if: ours with `--compiler cranelift` and the cache.
    ours_cranelift: CacheRuns,
    /// The command lines, as their users run them: `component-init` and
    /// `wasmtime wizer`, wall-clock time of the process.
    cli_ours: CacheRuns,
    cli_peer: CacheRuns,
}

/// The command lines of the CLI rows: ours (this package's binary, built
/// with the bench) and `wasmtime` 48 (`PRE_INIT_BENCH_WASMTIME`, or
/// `wasmtime` on the `PATH`), when it is there.
struct Clis {
    ours: PathBuf,
    /// The `wasmtime` executable and what its `--version` says.
    wasmtime: Option<(PathBuf, String)>,
}

impl Clis {
    fn find() -> Clis {
        let wasmtime = std::env::var_os("PRE_INIT_BENCH_WASMTIME")
            .map_or_else(|| PathBuf::from("wasmtime"), PathBuf::from);
        let version = Command::new(&wasmtime)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| v.starts_with("wasmtime 48."));
        Clis {
            ours: PathBuf::from(env!("CARGO_BIN_EXE_component-init")),
            wasmtime: version.map(|v| (wasmtime, v)),
        }
    }
}

/// Files in the cache directory that are compiled code (not the cache
/// worker's `.stats` and lock files): a run that adds none was served
/// from the cache.
fn cache_entries(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none() {
                n += 1;
            }
        }
    }
    n
}

/// Runs a command line (`cli-ours`: `component-init`, `cli-peer`:
/// `wasmtime wizer`) as its users would, with the cache configuration
/// `config` (`-C cache-config=FILE`, both take it), timing the process
/// from start to exit.
fn run_cli(
    clis: &Clis,
    tool: &str,
    setup: &Setup,
    input: &Path,
    output: &Path,
    config: &Path,
    cache_dir: &Path,
) -> Result<Measured, String> {
    let mut command = match tool {
        "cli-ours" => {
            let mut c = Command::new(&clis.ours);
            if setup.wasi {
                c.arg("--wasi");
            }
            if !setup.dirs.is_empty() {
                // as the bench's own runs do: the WASI adapter keeps its
                // handle to the preopened directory
                c.arg("--allow-open-resources");
            }
            c
        }
        "cli-peer" => {
            let (wasmtime, _) = clis.wasmtime.as_ref().ok_or("no wasmtime 48")?;
            let mut c = Command::new(wasmtime);
            c.arg("wizer");
            if setup.wasi {
                // `wasmtime wizer` links no WASI unless asked
                c.args(["-S", "cli=y"]);
            }
            c
        }
        other => return Err(format!("unknown command line `{other}`")),
    };
    command.arg("--init-func").arg(&setup.init);
    for (name, value) in &setup.env {
        command.arg("--env").arg(format!("{name}={value}"));
    }
    for (host, guest) in &setup.dirs {
        command
            .arg("--dir")
            .arg(format!("{}::{guest}", host.display()));
    }
    command
        .arg("-C")
        .arg(format!("cache-config={}", config.display()))
        .arg("-o")
        .arg(output)
        .arg(input);
    let before = cache_entries(cache_dir);
    let start = std::time::Instant::now();
    let out = command
        .output()
        .map_err(|e| format!("failed to start {tool}: {e}"))?;
    let total = start.elapsed().as_secs_f64();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} [{}]",
            stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default(),
            out.status
        ));
    }
    Ok(Measured {
        phases: [f64::NAN; 5],
        total,
        output_size: std::fs::metadata(output).map_or(0, |m| m.len() as usize),
        guest_memory: 0,
        peak_rss: 0,
        cache_hit: Some(before > 0 && cache_entries(cache_dir) == before),
    })
}

/// The workloads on which the what-if `ours-cranelift` also runs.
const WHAT_IF: &[&str] = &[
    "regex-tables",
    "large-code",
    "componentize-py",
    "componentize-js",
];

/// Median seconds of instantiate + first call, per variant.
struct Startup {
    ours: Option<f64>,
    peer: Option<f64>,
    /// Ours on an engine that maps sparse memory images too.
    dense_image_engine: Option<f64>,
    original_with_init: f64,
    /// `None` where `probe` fails without init (componentize-js: the JS
    /// engine does not exist before init).
    original_no_init: Option<f64>,
    agree: String,
}

fn run(selected: &[&str]) -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("no target directory")?
        .join("pre-init-bench");
    std::fs::create_dir_all(&dir)?;
    let runs = std::env::var("PRE_INIT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS)
        .max(1);
    let names: Vec<&str> = workloads::NAMES
        .iter()
        .copied()
        .filter(|n| selected.is_empty() || selected.contains(n))
        .collect();
    let module_names: Vec<&str> = modules::NAMES
        .iter()
        .copied()
        .filter(|n| selected.is_empty() || selected.contains(n))
        .collect();
    if names.is_empty() && module_names.is_empty() {
        anyhow::bail!(
            "no workload named {selected:?}; the workloads are {:?} and {:?}",
            workloads::NAMES,
            modules::NAMES
        );
    }
    // Toolchains the workloads of other languages install (a Python venv,
    // an npm prefix), kept across runs, beside the profile directories.
    let tools = dir
        .parent()
        .and_then(Path::parent)
        .context("no target directory")?
        .join("pre-init-bench");
    if !names.is_empty() {
        run_components(&names, &root, &exe, &dir, &tools, runs)?;
    }
    if !module_names.is_empty() {
        let clis = Clis::find();
        modules::run(
            &module_names,
            &root,
            &tools,
            &dir,
            runs,
            clis.ours,
            clis.wasmtime.map(|(path, _)| path),
        )?;
    }
    Ok(())
}

/// The component workloads `names`: the tables of the report in
/// `dir/results.md`.
fn run_components(
    names: &[&str],
    root: &Path,
    exe: &Path,
    dir: &Path,
    tools: &Path,
    runs: usize,
) -> Result<()> {
    let load_start = load();
    let with_cache = std::env::var("PRE_INIT_BENCH_CACHE").map_or(true, |v| v != "0");
    let clis = Clis::find();
    if with_cache && clis.wasmtime.is_none() {
        eprintln!(
            "no wasmtime 48 (PRE_INIT_BENCH_WASMTIME or on the PATH): the cache table has no \
             `wasmtime wizer` column"
        );
    }
    let idle = run_child(
        exe,
        "idle",
        &Setup::new(false),
        &dir.join("idle.wasm"),
        &dir.join("idle.out"),
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = Engine::new(&child::config())?;
    let empty = Component::new(&engine, workloads::empty())?;
    let (empty_startup, _) = startup::measure(&engine, &empty, &Setup::new(false), &["probe"])?;

    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &name in names {
        eprintln!("== {name}: building the input");
        let workload = match workloads::build(name, root, tools) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("   skipped: {e}");
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let input = dir.join(format!("{name}.wasm"));
        std::fs::write(&input, &workload.bytes)?;
        let load = load();
        let mut ours = ToolResult::default();
        let mut peer = ToolResult::default();
        let mut ours_cranelift = ToolResult::default();
        let what_if = WHAT_IF.contains(&name);
        for i in 0..runs {
            let mut tools = vec![("ours", &mut ours), ("peer", &mut peer)];
            if what_if {
                tools.push(("ours-cranelift", &mut ours_cranelift));
            }
            for (tool, result) in tools {
                if result.failure.is_some() {
                    continue;
                }
                let output = dir.join(format!("{name}.{tool}.wasm"));
                match run_child(exe, tool, &workload.setup, &input, &output, None) {
                    Ok(m) => {
                        eprintln!(
                            "   {tool} run {}/{runs}: {:.1} ms, {} bytes, peak RSS {:.0} MiB",
                            i + 1,
                            m.total * 1e3,
                            m.output_size,
                            m.peak_rss as f64 / (1 << 20) as f64
                        );
                        result.runs.push(m);
                        result.output = Some(output);
                    }
                    Err(e) => {
                        eprintln!("   {tool} failed: {e}");
                        result.failure = Some(e);
                        result.runs.clear();
                        result.output = None;
                    }
                }
            }
        }
        eprintln!("   startup");
        let startup = measure_startup(&engine, &workload, &ours, &peer)
            .map_err(|e| eprintln!("   startup failed: {e:#}"))
            .ok();
        let cache = if with_cache && CACHED.contains(&name) {
            Some(cache_runs(exe, &clis, dir, &workload, &input, runs)?)
        } else {
            None
        };
        rows.push(Row {
            workload,
            load,
            ours,
            peer,
            ours_cranelift: what_if.then_some(ours_cranelift),
            startup,
            cache,
        });
    }

    let report = report(
        &rows,
        &skipped,
        runs,
        idle.peak_rss,
        empty_startup,
        load_start,
        &clis,
    );
    print!("{report}");
    let path = dir.join("results.md");
    std::fs::write(&path, &report)?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

/// The cache table's runs of `workload`: per repetition and tool (ours,
/// the peer, ours with Cranelift; each with its own cache directory,
/// emptied first), the input, the input again, then the changed app if
/// the workload has one. Each run is a child process, as elsewhere.
fn cache_runs(
    exe: &Path,
    clis: &Clis,
    dir: &Path,
    workload: &Workload,
    input: &Path,
    runs: usize,
) -> Result<CacheRow> {
    let name = workload.name;
    let changed = match &workload.changed {
        Some(changed) => {
            let path = dir.join(format!("{name}.changed.wasm"));
            std::fs::write(&path, &changed.bytes)?;
            Some(path)
        }
        None => None,
    };
    let mut row = CacheRow {
        load: load(),
        ..CacheRow::default()
    };
    for i in 0..runs {
        let mut tools = vec![
            ("ours-cached", &mut row.ours),
            ("peer-cached", &mut row.peer),
            ("ours-cranelift-cached", &mut row.ours_cranelift),
            ("cli-ours", &mut row.cli_ours),
        ];
        if clis.wasmtime.is_some() {
            tools.push(("cli-peer", &mut row.cli_peer));
        }
        for (tool, result) in tools {
            if result.failure.is_some() {
                continue;
            }
            // A cache of its own, as the CLIs read it from
            // `-C cache-config=FILE`: emptied before each repetition.
            let cache_dir = dir.join("cache").join(name).join(tool);
            let _ = std::fs::remove_dir_all(&cache_dir);
            std::fs::create_dir_all(&cache_dir)?;
            let config = dir.join("cache").join(name).join(format!("{tool}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[cache]\ndirectory = {}\n",
                    serde_json::to_string(&cache_dir.to_string_lossy())?
                ),
            )?;
            for (k, kind) in CACHE_RUNS.iter().enumerate() {
                let input = match *kind {
                    "changed" => match &changed {
                        Some(path) => path.as_path(),
                        None => continue,
                    },
                    _ => input,
                };
                let output = dir.join(format!("{name}.{tool}.{kind}.wasm"));
                let measured = if tool.starts_with("cli-") {
                    run_cli(
                        clis,
                        tool,
                        &workload.setup,
                        input,
                        &output,
                        &config,
                        &cache_dir,
                    )
                } else {
                    run_child(exe, tool, &workload.setup, input, &output, Some(&config))
                };
                match measured {
                    Ok(m) => {
                        eprintln!(
                            "   {tool} {kind} {}/{runs}: {:.1} ms, {} bytes, {}",
                            i + 1,
                            m.total * 1e3,
                            m.output_size,
                            match m.cache_hit {
                                Some(true) => "from the cache",
                                Some(false) => "compiled",
                                None => "no cache",
                            }
                        );
                        result.runs[k].push(m);
                    }
                    Err(e) => {
                        eprintln!("   {tool} {kind} failed: {e}");
                        result.failure = Some(e);
                        break;
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("cache").join(name));
    Ok(row)
}

/// Runs one pipeline in a child process (with `cache`, the `*-cached`
/// tools' cache configuration file); `Err` is the child's error or panic
/// message.
fn run_child(
    exe: &Path,
    tool: &str,
    setup: &Setup,
    input: &Path,
    output: &Path,
    cache: Option<&Path>,
) -> Result<Measured, String> {
    let setup = serde_json::to_string(setup).map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    if let Some(config) = cache {
        command.env(child::CACHE_CONFIG_VAR, config);
    }
    let out = command
        .arg("__child")
        .arg(tool)
        .arg(setup)
        .arg(input)
        .arg(output)
        .output()
        .map_err(|e| format!("failed to start the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success()
        && let Some(json) = stdout.lines().find_map(|l| l.strip_prefix("RESULT "))
    {
        return serde_json::from_str(json).map_err(|e| format!("bad child output: {e}"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines = stderr.lines();
    let message = match lines.clone().position(|l| l.contains("panicked at")) {
        // "thread 'main' panicked at FILE:LINE:COL:" then the message
        Some(i) => {
            let at = lines.nth(i).unwrap_or_default();
            let location = at
                .split("panicked at ")
                .nth(1)
                .unwrap_or_default()
                .trim_end_matches(':');
            let what = lines.next().unwrap_or_default();
            format!("panicked: {what} (at {location})")
        }
        None => stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or(stderr.trim())
            .to_string(),
    };
    Err(format!("{message} [{}]", out.status))
}

fn measure_startup(
    engine: &Engine,
    workload: &Workload,
    ours: &ToolResult,
    peer: &ToolResult,
) -> Result<Startup> {
    let probe = workload.probe;
    let setup = &workload.setup;
    let original = Component::new(engine, &workload.bytes)?;
    let (original_with_init, expected) =
        startup::measure(engine, &original, setup, &[&setup.init, probe])?;
    let mut agree = Vec::new();
    let original_no_init = match startup::measure(engine, &original, setup, &[probe]) {
        Ok((time, _)) => Some(time),
        Err(e) => {
            agree.push(format!(
                "the original without init: `{probe}` fails ({})",
                format!("{e:#}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .replace('|', "\\|")
            ));
            None
        }
    };
    drop(original);
    let mut output = |result: &ToolResult, tool: &str, engine: &Engine| -> Result<Option<f64>> {
        let Some(path) = &result.output else {
            return Ok(None);
        };
        let component = match Component::new(engine, std::fs::read(path)?) {
            Ok(component) => component,
            Err(e) => {
                agree.push(format!(
                    "{tool}'s output does not compile: {}",
                    e.to_string().replace('|', "\\|")
                ));
                return Ok(None);
            }
        };
        let (time, got) = startup::measure(engine, &component, setup, &[probe])?;
        if got != expected {
            agree.push(format!("{tool}: `{probe}` = {got}, expected {expected}"));
        }
        Ok(Some(time))
    };
    let ours_time = output(ours, "ours", engine)?;
    let peer = output(peer, "peer", engine)?;
    // Wasmtime maps a memory image copy-on-write only when the image is
    // dense or small (`Config::memory_guaranteed_dense_image_size`); a
    // sparse 1 GiB image is applied segment by segment at every
    // instantiation. What an embedder that allows it gets:
    let dense_image_engine = if workload.name.starts_with("sparse") {
        let mut config = child::config();
        config.memory_guaranteed_dense_image_size(4 << 30);
        output(ours, "ours (dense image engine)", &Engine::new(&config)?)?
    } else {
        None
    };
    Ok(Startup {
        ours: ours_time,
        peer,
        dense_image_engine,
        original_with_init,
        original_no_init,
        agree: if agree.is_empty() {
            format!("`{probe}` = {expected} everywhere")
        } else {
            agree.join("; ")
        },
    })
}

/// `pre_init __phases IN PLAN SNAPSHOT [N]`: parse+instrument and rewrite
/// (`rewrite::apply_to_validated`) of IN, N times each (default 20), with
/// the plan and snapshot files of `component-init instrument` and
/// `component-init snapshot`; prints the median and the fastest of each.
/// The two phases alone, in one process, for profilers (`perf record`).
fn phases(args: &[String]) -> Result<()> {
    let [input, plan, snapshot, rest @ ..] = args else {
        anyhow::bail!("usage: pre_init __phases IN PLAN SNAPSHOT [N]");
    };
    let n: usize = rest.first().map_or(Ok(20), |n| n.parse())?;
    let input = std::fs::read(input).with_context(|| input.clone())?;
    let plan = component_init::Plan::from_json(&std::fs::read_to_string(plan)?)?;
    let snapshot = component_init::Snapshot::from_bytes(&std::fs::read(snapshot)?)?;
    let options = component_init::InstrumentOptions {
        init_func: Some(plan.init.clone()),
        ..Default::default()
    };
    let report = |what: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let start = std::time::Instant::now();
            f()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let fastest = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{what}: median {:.2} ms, fastest {fastest:.2} ms ({n} runs)",
            median(&mut times)
        );
        Ok(())
    };
    report("parse+instrument", &mut || {
        component_init::instrument(&input, &options).map(drop)
    })?;
    report("rewrite", &mut || {
        component_init::__internal::apply_to_validated(&input, &plan, &snapshot).map(drop)
    })?;
    let output = component_init::__internal::apply_to_validated(&input, &plan, &snapshot)?;
    report("of which: parsing the input", &mut || {
        component_init::__internal::parse_validated_code(&input).map(drop)
    })?;
    report("of which: validating the output", &mut || {
        component_init::__internal::parse_validated_code(&output).map(drop)
    })?;
    Ok(())
}

/// `pre_init __startup WORKLOAD FILE...`: the startup (as the startup
/// table measures it) of outputs of `WORKLOAD` made by different builds,
/// e.g. before and after a change to the rewrite, measured in turns, one
/// file after the other, for `PRE_INIT_BENCH_STARTUP_ROUNDS` rounds
/// (default 5): the median of the rounds' medians, beside the original
/// without init, so that the load of the machine weighs on all alike.
fn compare_startup(args: &[String]) -> Result<()> {
    let [name, files @ ..] = args else {
        anyhow::bail!("usage: pre_init __startup WORKLOAD FILE...");
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe()?;
    // target/release/deps/pre_init-HASH -> target/pre-init-bench
    let tools = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .context("no target directory")?
        .join("pre-init-bench");
    let workload = workloads::build(name, &root, &tools).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rounds = std::env::var("PRE_INIT_BENCH_STARTUP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize);
    let engine = Engine::new(&child::config())?;
    let mut variants = vec![(
        "original, no init".to_string(),
        Component::new(&engine, &workload.bytes)?,
    )];
    for file in files {
        variants.push((file.clone(), Component::new(&engine, std::fs::read(file)?)?));
    }
    let mut times = vec![Vec::new(); variants.len()];
    let mut results = vec![String::new(); variants.len()];
    for _ in 0..rounds {
        for (i, (_, component)) in variants.iter().enumerate() {
            match startup::measure(&engine, component, &workload.setup, &[workload.probe]) {
                Ok((time, got)) => {
                    times[i].push(time);
                    results[i] = got;
                }
                Err(e) => results[i] = format!("fails: {e:#}"),
            }
        }
    }
    println!(
        "{name}: median of {rounds} rounds of startup (new store, instantiate, first call of \
         `{}`), load {:.2}",
        workload.probe,
        load()
    );
    for (i, (label, _)) in variants.iter().enumerate() {
        println!(
            "  {} µs  {label}  (`{}` = {})",
            us(median(&mut times[i])),
            workload.probe,
            results[i]
        );
    }
    Ok(())
}

/// The 1-minute load average.
fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn ms(seconds: f64) -> String {
    if seconds.is_nan() {
        "–".into()
    } else if seconds < 0.01 {
        format!("{:.2}", seconds * 1e3)
    } else {
        format!("{:.1}", seconds * 1e3)
    }
}

fn us(seconds: f64) -> String {
    format!("{:.0}", seconds * 1e6)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1 << 20) as f64)
}

fn size(bytes: usize) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        mib(bytes as f64)
    }
}

fn ratio(ours: f64, peer: f64) -> String {
    if ours.is_nan() || peer.is_nan() || peer == 0.0 {
        "–".into()
    } else {
        format!("{:.2}x", ours / peer)
    }
}

fn report(
    rows: &[Row],
    skipped: &[String],
    runs: usize,
    idle_rss: u64,
    empty_startup: f64,
    load_start: f64,
    clis: &Clis,
) -> String {
    let mut r = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    writeln!(
        r,
        "Machine: {cpus} CPUs, {cpu}; load average (1 min) {load_start:.2} at the start, \
         {:.2} at the end. Median of {runs} runs per tool and workload, each run a child \
         process. Peak RSS of an idle child: {}.\n",
        load(),
        mib(idle_rss as f64)
    )
    .unwrap();

    r.push_str("### Pre-initialization, total\n\n");
    r.push_str(
        "| workload | load | ours ms | peer ms | ours/peer | ours output | peer output | ours/peer \
         | ours peak RSS | peer peak RSS | ours/peer |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let (o, p) = (&row.ours, &row.peer);
        let peer_cell = |s: String| if p.ok() { s } else { "fails¹".into() };
        writeln!(
            r,
            "| {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.workload.name,
            row.load,
            if o.ok() {
                ms(o.total())
            } else {
                "fails".into()
            },
            peer_cell(ms(p.total())),
            ratio(o.total(), p.total()),
            size(o.size()),
            peer_cell(size(p.size())),
            ratio(o.size() as f64, p.size() as f64),
            mib(o.rss()),
            peer_cell(mib(p.rss())),
            ratio(o.rss(), p.rss()),
        )
        .unwrap();
    }

    r.push_str("\n### Per phase (median ms; ours/peer)\n\n");
    r.push_str("| workload |");
    for phase in PHASES {
        write!(r, " {phase} |").unwrap();
    }
    r.push_str("\n|---|---|---|---|---|---|\n");
    for row in rows {
        write!(r, "| {} |", row.workload.name).unwrap();
        for i in 0..PHASES.len() {
            let (o, p) = (row.ours.phase(i), row.peer.phase(i));
            if row.peer.ok() {
                write!(r, " {} / {} ({}) |", ms(o), ms(p), ratio(o, p)).unwrap();
            } else {
                write!(r, " {} / – |", ms(o)).unwrap();
            }
        }
        r.push('\n');
    }

    r.push_str(
        "\n### Startup (median µs: new store, instantiate, first call of `probe`; compiled \
         beforehand)\n\n",
    );
    r.push_str(
        "| workload | ours output | peer output | original, init at runtime | original, no init \
         | empty component | ours / (original, no init) | check |\n|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let Some(s) = &row.startup else {
            writeln!(r, "| {} | failed | | | | | | |", row.workload.name).unwrap();
            continue;
        };
        let opt = |t: Option<f64>| t.map_or("–".into(), us);
        writeln!(
            r,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.workload.name,
            opt(s.ours),
            opt(s.peer),
            us(s.original_with_init),
            opt(s.original_no_init),
            us(empty_startup),
            ratio(
                s.ours.unwrap_or(f64::NAN),
                s.original_no_init.unwrap_or(f64::NAN)
            ),
            s.agree,
        )
        .unwrap();
    }
    for row in rows {
        if let Some(t) = row.startup.as_ref().and_then(|s| s.dense_image_engine) {
            writeln!(
                r,
                "\n{}: ours output on an engine with \
                 `memory_guaranteed_dense_image_size(4 GiB)` (copy-on-write image even when \
                 sparse): {} µs.",
                row.workload.name,
                us(t)
            )
            .unwrap();
        }
    }

    r.push_str(
        "\n### Targets\n\n| target | workload | measured (ours) | met | the peer's own figure \
         |\n|---|---|---|---|---|\n",
    );
    let mut target =
        |what: &str, workload: &str, measured: String, met: Option<bool>, peer: String| {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            };
            writeln!(r, "| {what} | {workload} | {measured} | {met} | {peer} |").unwrap();
        };
    for row in rows {
        let (o, p) = (&row.ours, &row.peer);
        let name = row.workload.name;
        let limit = if name == "large-code" { 0.5 } else { 1.0 };
        let comparable = o.ok() && p.ok();
        let peer_fails = || "fails".to_string();
        target(
            &format!("total time ≤ {limit}x peer"),
            name,
            if comparable {
                ratio(o.total(), p.total())
            } else {
                "peer fails".into()
            },
            comparable.then(|| o.total() / p.total() <= limit),
            String::new(),
        );
        target(
            "output size ≤ 1.0x peer",
            name,
            if comparable {
                format!(
                    "{:.4}x ({} vs {} bytes)",
                    o.size() as f64 / p.size() as f64,
                    o.size(),
                    p.size()
                )
            } else {
                "peer fails".into()
            },
            comparable.then(|| o.size() <= p.size()),
            String::new(),
        );
        if name.starts_with("dense") && o.ok() {
            let gbps = |t: &ToolResult| t.guest_memory() as f64 / (t.phase(3) + t.phase(4)) / 1e9;
            target(
                "snapshot + rewrite ≥ 2 GB/s of guest memory",
                name,
                format!("{:.2} GB/s", gbps(o)),
                Some(gbps(o) >= 2.0),
                if p.ok() {
                    format!("{:.2} GB/s", gbps(p))
                } else {
                    peer_fails()
                },
            );
        }
        if let Some(s) = &row.startup
            && let Some(t) = s.ours
            && let Some(original_no_init) = s.original_no_init
        {
            let x = t / original_no_init;
            target(
                "startup ≤ 1.2x the original without init",
                name,
                format!("{x:.2}x"),
                Some(x <= 1.2),
                s.peer
                    .map_or_else(peer_fails, |t| format!("{:.2}x", t / original_no_init)),
            );
        }
        if name == "sparse-1gib" && o.ok() {
            target(
                "output ≤ 1 MiB (64 KiB of data)",
                name,
                format!("{} bytes", o.size()),
                Some(o.size() <= 1 << 20),
                if p.ok() {
                    format!("{} bytes", p.size())
                } else {
                    peer_fails()
                },
            );
        }
        if let Some(c) = &row.cache {
            let (ours, peer) = (c.ours.total(1), c.peer.total(1));
            target(
                "same input again (cache warm) ≤ 1.0x the peer's",
                name,
                format!(
                    "{} ({} ms vs {} ms; from the cache: ours {}, peer {})",
                    ratio(ours, peer),
                    ms(ours),
                    ms(peer),
                    c.ours.hits(1),
                    c.peer.hits(1)
                ),
                (!ours.is_nan() && !peer.is_nan()).then_some(ours <= peer),
                String::new(),
            );
        }
        let rss_limit = |t: &ToolResult| t.guest_memory() as f64 + 1.5 * t.size() as f64;
        if o.ok() {
            target(
                "peak RSS ≤ guest memory + 1.5x output",
                name,
                format!("{} vs {}", mib(o.rss()), mib(rss_limit(o))),
                Some(o.rss() <= rss_limit(o)),
                if p.ok() {
                    format!("{} vs {}", mib(p.rss()), mib(rss_limit(p)))
                } else {
                    peer_fails()
                },
            );
        }
    }

    if rows.iter().any(|row| row.ours_cranelift.is_some()) {
        r.push_str(
            "\n### What-if: our pipeline with `--compiler cranelift` (the default is Winch)\n\n\
             | workload | ours (Winch) ms | ours, Cranelift ms | peer ms | Cranelift/peer | \
             compile+instantiate, Cranelift ms | init, Cranelift ms | same output size |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
    }
    for row in rows {
        let Some(cl) = &row.ours_cranelift else {
            continue;
        };
        writeln!(
            r,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.workload.name,
            ms(row.ours.total()),
            ms(cl.total()),
            ms(row.peer.total()),
            ratio(cl.total(), row.peer.total()),
            ms(cl.phase(1)),
            ms(cl.phase(2)),
            // (not the same bytes where init reads `wasi:random`)
            cl.size() == row.ours.size()
        )
        .unwrap();
    }

    if rows.iter().any(|row| row.cache.is_some()) {
        r.push_str(
            "\n### Compilation cache (median ms of total time; Wasmtime's cache in a \
             directory of each tool's own, emptied before each repetition)\n\n\
             | workload | load | run | ours ms | peer ms | ours/peer | ours from the cache | \
             peer from the cache | ours, Cranelift ms | Cranelift/peer |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        for row in rows {
            let Some(c) = &row.cache else {
                continue;
            };
            for (k, run) in [
                "first run (empty cache)",
                "same input again",
                "app changed by one line (after the two above)",
            ]
            .iter()
            .enumerate()
            {
                if c.ours.runs[k].is_empty() && c.peer.runs[k].is_empty() {
                    continue;
                }
                writeln!(
                    r,
                    "| {} | {:.2} | {run} | {} | {} | {} | {} | {} | {} | {} |",
                    row.workload.name,
                    c.load,
                    ms(c.ours.total(k)),
                    ms(c.peer.total(k)),
                    ratio(c.ours.total(k), c.peer.total(k)),
                    c.ours.hits(k),
                    c.peer.hits(k),
                    ms(c.ours_cranelift.total(k)),
                    ratio(c.ours_cranelift.total(k), c.peer.total(k)),
                )
                .unwrap();
            }
        }
        r.push_str(
            "\n#### Per phase with the cache (median ms; ours / peer / ours with Cranelift)\n\n\
             | workload | run | parse+instrument | compile+instantiate | init | snapshot | rewrite |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for row in rows {
            let Some(c) = &row.cache else {
                continue;
            };
            for (k, run) in ["first", "again", "app changed"].iter().enumerate() {
                if c.ours.runs[k].is_empty() {
                    continue;
                }
                write!(r, "| {} | {run} |", row.workload.name).unwrap();
                for phase in 0..PHASES.len() {
                    write!(
                        r,
                        " {} / {} / {} |",
                        ms(c.ours.phase(k, phase)),
                        ms(c.peer.phase(k, phase)),
                        ms(c.ours_cranelift.phase(k, phase))
                    )
                    .unwrap();
                }
                r.push('\n');
            }
        }
        let (version, cli_peer) = match &clis.wasmtime {
            Some((path, version)) => (version.as_str(), path.display().to_string()),
            None => ("not found", String::new()),
        };
        writeln!(
            r,
            "\n#### The command lines, as their users run them (median ms, wall clock of the \
             process; `component-init` vs `{cli_peer} wizer`, {version}; each with \
             `-C cache-config=FILE`)\n\n\
             | workload | run | `component-init` ms | `wasmtime wizer` ms | ours/peer | ours \
             from the cache | peer from the cache |\n|---|---|---|---|---|---|---|",
        )
        .unwrap();
        for row in rows {
            let Some(c) = &row.cache else {
                continue;
            };
            for (k, run) in ["first", "again", "app changed"].iter().enumerate() {
                if c.cli_ours.runs[k].is_empty() && c.cli_peer.runs[k].is_empty() {
                    continue;
                }
                writeln!(
                    r,
                    "| {} | {run} | {} | {} | {} | {} | {} |",
                    row.workload.name,
                    ms(c.cli_ours.total(k)),
                    ms(c.cli_peer.total(k)),
                    ratio(c.cli_ours.total(k), c.cli_peer.total(k)),
                    c.cli_ours.hits(k),
                    c.cli_peer.hits(k),
                )
                .unwrap();
            }
        }
        for row in rows {
            let Some(c) = &row.cache else {
                continue;
            };
            if let Some(changed) = &row.workload.changed {
                writeln!(
                    r,
                    "\n{}, app changed: {} ({}).",
                    row.workload.name,
                    changed.description,
                    size(changed.bytes.len())
                )
                .unwrap();
            }
            for (tool, runs) in [
                ("ours", &c.ours),
                ("peer", &c.peer),
                ("ours, Cranelift", &c.ours_cranelift),
                ("`component-init`", &c.cli_ours),
                ("`wasmtime wizer`", &c.cli_peer),
            ] {
                if let Some(failure) = &runs.failure {
                    writeln!(
                        r,
                        "\n{tool} with the cache on `{}`: {failure}",
                        row.workload.name
                    )
                    .unwrap();
                }
            }
        }
    }

    r.push_str("\n### Workloads and failures\n\n");
    for row in rows {
        writeln!(
            r,
            "- `{}`: {}; {} input, {} of guest memory after init.",
            row.workload.name,
            row.workload.description,
            size(row.workload.bytes.len()),
            size(row.ours.guest_memory())
        )
        .unwrap();
    }
    for row in rows {
        for (tool, result) in [("ours", &row.ours), ("peer", &row.peer)] {
            if let Some(failure) = &result.failure {
                writeln!(r, "- ¹ {tool} on `{}`: {failure}", row.workload.name).unwrap();
            }
        }
    }
    for s in skipped {
        writeln!(r, "- skipped {s}").unwrap();
    }
    r
}
