//! Core modules, pre-initialized as Wizer's users run it: our command line
//! (`component-init`, which takes Wizer's command line as it is) against
//! `wasmtime wizer` 48 and the Wizer 10 binary that ComponentizeJS 0.23.0
//! ships (npm `@bytecodealliance/wizer@10.0.0`). Every run is a process of
//! its own, timed from start to exit; the tools take turns. See
//! BENCHMARKS.md, "Core modules".
//!
//! - *cold*: no compilation cache. Ours and `wasmtime wizer` with
//!   `-C cache=n`; Wizer 10 cannot turn its cache off (it loads Wasmtime's
//!   default cache configuration, and its configuration file has no
//!   `enabled` key), so its cold run is its first run with an empty cache.
//! - *first*: each tool's default cache on, empty.
//! - *warm*: the same input again, right after *first*.
//!
//! The three tools find their default cache through `XDG_CACHE_HOME`, which
//! the bench points at a directory of its own (emptied at the start of each
//! round); every run of every tool gets the same value, so that init, which
//! may read the environment, sees the same one everywhere. Their entries do
//! not collide (different Wasmtime versions, compilers and settings).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::{Engine, Linker, Module, Store, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::workloads::{self, COMPONENTIZE_JS};
use crate::{cache_entries, load, median, ms};

/// The core-module workloads, in report order.
pub const NAMES: &[&str] = &[
    "core-js",
    "core-regex",
    "core-dense-64mib",
    "core-sparse-1gib",
];

/// The Wizer binary of the third column, as npm names it.
const WIZER10: &str = "@bytecodealliance/wizer@10.0.0";

/// One core module and the command line its users give Wizer.
struct Workload {
    name: &'static str,
    description: String,
    /// The input core module (binary: Wizer 10 takes no text).
    input: PathBuf,
    /// Wizer's command line, as the Wizer 10 binary takes it, with `{out}`
    /// and `{in}` for the output and input paths. Ours runs it as it is;
    /// `wasmtime wizer` gets it translated ([`wasmtime_args`]).
    wizer_args: Vec<String>,
    /// `Some`: the whole environment of every run (ComponentizeJS spawns
    /// Wizer with its own variables only); `None`: the bench's.
    env: Option<Vec<(String, String)>>,
    /// What every run reads on stdin (`None`: nothing).
    stdin: Option<PathBuf>,
    /// The original's init at run time, in order: the startup reference.
    init_calls: Vec<String>,
    /// An export without parameters that reads the state init leaves.
    probe: &'static str,
    /// What init at run time is given (the original's startup).
    grants: Grants,
}

/// WASI preview1 grants for running a module in the startup measurement.
#[derive(Default, Clone)]
struct Grants {
    env: Vec<(String, String)>,
    /// (host directory, guest name)
    dirs: Vec<(PathBuf, String)>,
    stdin: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Ours,
    Wasmtime,
    Wizer10,
}

const TOOLS: [Tool; 3] = [Tool::Ours, Tool::Wasmtime, Tool::Wizer10];

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Ours => "`component-init`",
            Tool::Wasmtime => "`wasmtime wizer` 48",
            Tool::Wizer10 => "Wizer 10",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Tool::Ours => "ours",
            Tool::Wasmtime => "wasmtime-wizer",
            Tool::Wizer10 => "wizer10",
        }
    }
}

/// The executables.
pub struct Bins {
    pub ours: PathBuf,
    pub wasmtime: Option<PathBuf>,
    wizer10: Result<PathBuf, String>,
}

impl Bins {
    fn get(&self, tool: Tool) -> Result<&Path, String> {
        match tool {
            Tool::Ours => Ok(&self.ours),
            Tool::Wasmtime => self
                .wasmtime
                .as_deref()
                .ok_or_else(|| "no wasmtime 48 (PRE_INIT_BENCH_WASMTIME or on the PATH)".into()),
            Tool::Wizer10 => self.wizer10.as_deref().map_err(Clone::clone),
        }
    }
}

/// The Wizer 10 binary: `PRE_INIT_BENCH_WIZER10`, or the one npm installs
/// with `@bytecodealliance/wizer@10.0.0` under `tools/wizer10`, found as
/// ComponentizeJS finds it (the package's default export is its path).
fn wizer10(tools: &Path) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PRE_INIT_BENCH_WIZER10") {
        return Ok(path.into());
    }
    let prefix = tools.join("wizer10");
    let locate = || {
        Command::new("node")
            .args([
                "--input-type=module",
                "-e",
                "import w from '@bytecodealliance/wizer'; console.log(w)",
            ])
            .current_dir(&prefix)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    let version = |bin: &Path| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "wizer 10.0.0")
    };
    if let Some(bin) = locate().filter(|b| version(b)) {
        return Ok(bin);
    }
    eprintln!("   installing {WIZER10} into {}", prefix.display());
    std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
    workloads::run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(WIZER10),
        &format!("npm install {WIZER10}"),
    )?;
    locate()
        .filter(|b| version(b))
        .ok_or_else(|| format!("no `wizer 10.0.0` binary in {}", prefix.display()))
}

/// `bin` as a path: a bare name looked up on the `PATH`.
fn on_path(bin: &Path) -> PathBuf {
    if bin.components().count() > 1 {
        return bin.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(bin))
        .find(|path| path.is_file())
        .unwrap_or_else(|| bin.to_path_buf())
}

/// `wasmtime wizer`'s arguments for Wizer's command line `wizer`: `-S cli`
/// for `--allow-wasi`, `-S inherit-env` for `--inherit-env=true`, `--dir
/// HOST::GUEST` for `--mapdir=GUEST::HOST`; bulk memory is on by default.
/// Wizer 10 makes every import it does not provide trap when called (a
/// spliced StarlingMonkey imports `wasi:io/poll@0.2.10` and more beside
/// preview1, and never calls them in init); `wasmtime wizer` refuses to
/// instantiate such a module unless `-W unknown-imports-trap=y`.
fn wasmtime_args(wizer: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = vec!["wizer".into(), "-W".into(), "unknown-imports-trap=y".into()];
    let mut args = wizer.iter();
    while let Some(arg) = args.next() {
        let mut push = |a: &[&str]| out.extend(a.iter().map(|s| s.to_string()));
        match arg.as_str() {
            "--allow-wasi" => push(&["-S", "cli"]),
            "--inherit-env=true" => push(&["-S", "inherit-env"]),
            "--wasm-bulk-memory=true" => {}
            "--init-func" | "-f" | "-o" => {
                let value = args.next().ok_or(format!("`{arg}` without a value"))?;
                push(&[arg, value]);
            }
            "{in}" => push(&[arg]),
            a => {
                if let Some(dir) = a.strip_prefix("--dir=") {
                    push(&["--dir", dir]);
                } else if let Some(map) = a.strip_prefix("--mapdir=") {
                    let (guest, host) = map.split_once("::").ok_or(format!("`{a}`"))?;
                    push(&["--dir", &format!("{host}::{guest}")]);
                } else if let Some(out) = a.strip_prefix("-o=") {
                    push(&["-o", out]);
                } else {
                    return Err(format!("no `wasmtime wizer` equivalent for `{a}`"));
                }
            }
        }
    }
    Ok(out)
}

/// The command line of `tool` on `w`, writing `out`; `cold`: with the
/// compilation cache off where the tool can turn it off.
fn command(
    bins: &Bins,
    tool: Tool,
    w: &Workload,
    out: &Path,
    cold: bool,
    cache_home: &Path,
) -> Result<Command, String> {
    let fill = |args: Vec<String>| -> Vec<String> {
        args.into_iter()
            .map(|a| {
                a.replace("{out}", &out.to_string_lossy())
                    .replace("{in}", &w.input.to_string_lossy())
            })
            .collect()
    };
    let mut c = Command::new(bins.get(tool)?);
    match tool {
        Tool::Ours | Tool::Wizer10 => {
            if cold && tool == Tool::Ours {
                c.args(["-C", "cache=n"]);
            }
            c.args(fill(w.wizer_args.clone()));
        }
        Tool::Wasmtime => {
            let mut args = wasmtime_args(&w.wizer_args)?;
            if cold {
                args.splice(1..1, ["-C".to_string(), "cache=n".to_string()]);
            }
            c.args(fill(args));
        }
    }
    if let Some(env) = &w.env {
        c.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
    c.env("XDG_CACHE_HOME", cache_home);
    match &w.stdin {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            c.stdin(file);
        }
        None => {
            c.stdin(Stdio::null());
        }
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    Ok(c)
}

/// One run: wall-clock seconds, CPU seconds (user + system), output
/// bytes, whether a new cache entry appeared (`None` where the run had no
/// cache).
struct RunResult {
    seconds: f64,
    cpu: f64,
    size: u64,
    compiled: Option<bool>,
}

/// User + system seconds of this process's reaped children so far
/// (`cutime` + `cstime` of /proc/self/stat, in clock ticks of 10 ms).
fn children_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // fields after the command name, which ends with the last ')'
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
            Some((ticks(13)? + ticks(14)?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn run_once(
    mut command: Command,
    out: &Path,
    cache_home: Option<&Path>,
) -> Result<RunResult, String> {
    let _ = std::fs::remove_file(out);
    let before = cache_home.map(cache_entries);
    let cpu = children_cpu();
    let start = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("failed to start {:?}: {e}", command.get_program()))?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = children_cpu() - cpu;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Caused by"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(format!("{line} [{}]", output.status));
    }
    let size = std::fs::metadata(out)
        .map_err(|e| format!("no output: {e}"))?
        .len();
    Ok(RunResult {
        seconds,
        cpu,
        size,
        compiled: cache_home
            .zip(before)
            .map(|(dir, before)| cache_entries(dir) > before),
    })
}

/// What one tool did on one workload.
#[derive(Default)]
struct ToolRuns {
    cold: Vec<f64>,
    first: Vec<f64>,
    warm: Vec<f64>,
    /// CPU seconds of the same runs.
    cold_cpu: Vec<f64>,
    first_cpu: Vec<f64>,
    warm_cpu: Vec<f64>,
    /// Warm runs served from the cache (no new entry).
    warm_hits: usize,
    sizes: Vec<u64>,
    failure: Option<String>,
    /// The output of the last warm run (for the startup measurement).
    output: Option<PathBuf>,
    startup: Option<f64>,
    probe: Option<String>,
}

impl ToolRuns {
    fn med(v: &[f64]) -> f64 {
        median(&mut v.to_vec())
    }

    fn size(&self) -> f64 {
        median(&mut self.sizes.iter().map(|&s| s as f64).collect::<Vec<_>>())
    }

    /// The cold time: with the cache off, or for Wizer 10 (which cannot
    /// turn it off) the first run with an empty cache.
    fn cold(&self, tool: Tool) -> f64 {
        if tool == Tool::Wizer10 {
            Self::med(&self.first)
        } else {
            Self::med(&self.cold)
        }
    }

    fn cold_cpu(&self, tool: Tool) -> f64 {
        if tool == Tool::Wizer10 {
            Self::med(&self.first_cpu)
        } else {
            Self::med(&self.cold_cpu)
        }
    }
}

struct Row {
    workload: Workload,
    load: f64,
    tools: [ToolRuns; 3],
    original: Option<(f64, String)>,
    startup_note: Vec<String>,
}

/// Runs the core-module workloads `names` and writes their report to
/// `dir/modules.md` (and stdout).
pub fn run(
    names: &[&str],
    root: &Path,
    tools: &Path,
    dir: &Path,
    runs: usize,
    ours: PathBuf,
    wasmtime: Option<PathBuf>,
) -> Result<()> {
    let load_start = load();
    let bins = Bins {
        ours,
        // (by its path: the JS workload's runs have ComponentizeJS's
        // environment, without PATH)
        wasmtime: wasmtime.map(|bin| on_path(&bin)),
        wizer10: wizer10(tools),
    };
    if let Err(e) = &bins.wizer10 {
        eprintln!("no Wizer 10: {e}");
    }
    let work = dir.join("modules");
    std::fs::create_dir_all(&work)?;
    let cache_home = work.join("xdg-cache");
    let engine = Engine::new(&crate::child::config())?;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &name in names {
        eprintln!("== {name}: building the input");
        let workload = match build(name, root, tools, &work, &bins) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("   skipped: {e}");
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut row = Row {
            workload,
            load: load(),
            tools: Default::default(),
            original: None,
            startup_note: Vec::new(),
        };
        let w = &row.workload;
        for i in 0..runs {
            let _ = std::fs::remove_dir_all(&cache_home);
            std::fs::create_dir_all(&cache_home)?;
            // first (empty cache), then again (warm), then cold (cache off)
            for (kind, tools) in [
                ("first", &TOOLS[..]),
                ("warm", &TOOLS[..]),
                ("cold", &TOOLS[..2]),
            ] {
                for &tool in tools {
                    let k = TOOLS.iter().position(|&t| t == tool).expect("a tool");
                    let runs_of = &mut row.tools[k];
                    if runs_of.failure.is_some() {
                        continue;
                    }
                    let out = work.join(format!("{name}.{}.{kind}.wasm", tool.file()));
                    let cold = kind == "cold";
                    let result = command(&bins, tool, w, &out, cold, &cache_home)
                        .and_then(|c| run_once(c, &out, (!cold).then_some(cache_home.as_path())));
                    match result {
                        Ok(r) => {
                            eprintln!(
                                "   {} {kind} {}/{runs}: {:.1} ms (CPU {:.0} ms), {} bytes{}",
                                tool.file(),
                                i + 1,
                                r.seconds * 1e3,
                                r.cpu * 1e3,
                                r.size,
                                match r.compiled {
                                    Some(true) => ", compiled",
                                    Some(false) => ", from the cache",
                                    None => "",
                                }
                            );
                            runs_of.sizes.push(r.size);
                            match kind {
                                "first" => {
                                    runs_of.first.push(r.seconds);
                                    runs_of.first_cpu.push(r.cpu);
                                }
                                "warm" => {
                                    runs_of.warm.push(r.seconds);
                                    runs_of.warm_cpu.push(r.cpu);
                                    runs_of.warm_hits += usize::from(r.compiled == Some(false));
                                    runs_of.output = Some(out);
                                }
                                _ => {
                                    runs_of.cold.push(r.seconds);
                                    runs_of.cold_cpu.push(r.cpu);
                                }
                            }
                        }
                        Err(e) => {
                            eprintln!("   {} failed: {e}", tool.file());
                            runs_of.failure = Some(e);
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&cache_home);
        eprintln!("   startup");
        if let Err(e) = measure_startup(&engine, &mut row) {
            eprintln!("   startup failed: {e:#}");
            row.startup_note.push(format!("startup failed: {e:#}"));
        }
        rows.push(row);
    }
    let report = report(&rows, &skipped, runs, load_start, &bins);
    print!("{report}");
    let path = dir.join("modules.md");
    std::fs::write(&path, &report)?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

fn build(
    name: &str,
    root: &Path,
    tools: &Path,
    work: &Path,
    bins: &Bins,
) -> Result<Workload, String> {
    let write = |bytes: &[u8]| {
        let path = work.join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok::<_, String>(path)
    };
    let wat = |text: &str| wat::parse_str(text).map_err(|e| format!("{name}: {e}"));
    let plain = |init: &str| {
        ["--init-func", init, "-o", "{out}", "{in}"]
            .map(String::from)
            .to_vec()
    };
    Ok(match name {
        "core-js" => js_core(root, tools, bins)?,
        "core-regex" => {
            let bytes = workloads::rust_guest(root, "wizer-init", "wasm32-wasip1")?;
            let mut wizer_args = vec!["--allow-wasi".to_string()];
            wizer_args.extend(plain("wizer-initialize"));
            Workload {
                name: "core-regex",
                description: format!(
                    "tests/programs/wizer-init, a Rust wasm32-wasip1 reactor written for Wizer \
                     ({:.1} KiB): `_initialize`, then init compiles 8 Unicode regexes, sieves \
                     the primes below 1,000,000 into a `Vec`, counts their gaps in a `HashMap` \
                     (seeded by `random_get`) and reads `GREETING`",
                    bytes.len() as f64 / 1024.0
                ),
                input: write(&bytes)?,
                wizer_args,
                env: None,
                stdin: None,
                init_calls: vec!["_initialize".into(), "wizer-initialize".into()],
                probe: "prime_count",
                grants: Grants::default(),
            }
        }
        "core-dense-64mib" => Workload {
            name: "core-dense-64mib",
            description: "WAT: init grows memory to 64 MiB and fills all of it with non-zero \
                          pseudo-random bytes"
                .into(),
            input: write(&wat(&dense(1024))?)?,
            wizer_args: plain("wizer-initialize"),
            env: None,
            stdin: None,
            init_calls: vec!["wizer-initialize".into()],
            probe: "probe",
            grants: Grants::default(),
        },
        "core-sparse-1gib" => Workload {
            name: "core-sparse-1gib",
            description: format!(
                "WAT: init grows memory to 1 GiB and writes {SPARSE_WORDS} 4-byte words, one \
                 every 1 MiB ({} KiB of data)",
                SPARSE_WORDS * 4 / 1024
            ),
            input: write(&wat(&sparse(16384, SPARSE_WORDS))?)?,
            wizer_args: plain("wizer-initialize"),
            env: None,
            stdin: None,
            init_calls: vec!["wizer-initialize".into()],
            probe: "probe",
            grants: Grants::default(),
        },
        other => return Err(format!("unknown workload `{other}`")),
    })
}

/// Words the sparse workload writes, one every 1 MiB.
const SPARSE_WORDS: u32 = 1024;

/// Init grows memory to `pages` and fills it with non-zero xorshift bytes;
/// `probe` reads the first, a middle and the last word (0 before init).
fn dense(pages: u32) -> String {
    format!(
        "(module {})",
        workloads::dense_fields(pages, "wizer-initialize")
    )
}

/// Init grows memory to `pages` and writes `words` non-zero 4-byte words
/// evenly spread from 0; `probe` reads the first, a middle and the last.
fn sparse(pages: u32, words: u32) -> String {
    let stride = (u64::from(pages) << 16) / u64::from(words);
    let last = stride * u64::from(words - 1);
    let mid = stride * u64::from(words / 2);
    let fields = workloads::strided_fields(pages, stride, mid, last, "wizer-initialize");
    format!("(module {fields})")
}

/// The `core-js` workload: StarlingMonkey with the bindings of
/// benches/programs/js-app spliced in, exactly as ComponentizeJS 0.23.0
/// hands it to Wizer. `capture.mjs` runs ComponentizeJS on the app with a
/// wrapper as `wizerBin` (written here) that keeps aside the input module,
/// the command line, stdin, the environment and the preopened sources
/// directory (a temporary one ComponentizeJS removes), then runs the real
/// Wizer 10 so that the build completes. The bench replays that command
/// line with the temporary directory's path replaced by its copy's.
fn js_core(root: &Path, tools: &Path, bins: &Bins) -> Result<Workload, String> {
    let wizer = bins.wizer10.clone()?;
    let package = workloads::componentize_js(tools)?;
    let sources = root.join("benches/programs/js-app");
    let files = [
        sources.join("app.js"),
        sources.join("world.wit"),
        sources.join("capture.mjs"),
    ];
    let work = tools.join("js-core");
    let app = work.join("app");
    let captured = work.join("captured");
    let marker = captured.join("in.wasm");
    let stamp = workloads::stamp(&files, &format!("{COMPONENTIZE_JS} {WIZER10}"))?;
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    if !workloads::fresh(&marker, &stamp) {
        eprintln!(
            "   {COMPONENTIZE_JS}: capturing its Wizer input into {}",
            captured.display()
        );
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&app).map_err(|e| io(&app, e))?;
        for file in &files[..2] {
            let to = app.join(file.file_name().expect("a file name"));
            std::fs::copy(file, &to).map_err(|e| io(&to, e))?;
        }
        let wrapper = work.join("wizer-capture.sh");
        let quote = |p: &Path| {
            let s = p.to_string_lossy();
            if s.contains('\'') {
                Err(format!("a path with a quote: {s}"))
            } else {
                Ok(format!("'{s}'"))
            }
        };
        // ComponentizeJS spawns it with its own variables only (no PATH).
        let script = format!(
            r#"#!/bin/sh
# ComponentizeJS's `wizerBin` for benches/pre_init/modules.rs: keeps Wizer's
# input aside, then runs Wizer 10.
out={out}
/bin/rm -rf "$out" && /bin/mkdir -p "$out" || exit 1
/usr/bin/env -0 > "$out/env" || exit 1
for a in "$@"; do printf '%s\n' "$a"; done > "$out/args"
/bin/cat > "$out/stdin" || exit 1
for a in "$@"; do
  case "$a" in --dir=*) /bin/cp -R "${{a#--dir=}}" "$out/sources" || exit 1;; esac
  last="$a"
done
/bin/cp "$last" "$out/in.wasm" || exit 1
exec {wizer} "$@" < "$out/stdin"
"#,
            out = quote(&captured)?,
            wizer = quote(&wizer)?,
        );
        std::fs::write(&wrapper, script).map_err(|e| io(&wrapper, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io(&wrapper, e))?;
        }
        workloads::run(
            Command::new("node")
                .arg(sources.join("capture.mjs"))
                .arg(&package)
                .arg(&wrapper)
                .arg(work.join("component.wasm"))
                .current_dir(&app),
            "node benches/programs/js-app/capture.mjs",
        )?;
        std::fs::write(marker.with_extension("stamp"), &stamp).map_err(|e| io(&marker, e))?;
    }
    let read = |name: &str| {
        let path = captured.join(name);
        std::fs::read(&path).map_err(|e| io(&path, e))
    };
    let args = String::from_utf8(read("args")?).map_err(|e| e.to_string())?;
    let mut args: Vec<String> = args.lines().map(String::from).collect();
    let temp = args
        .iter()
        .find_map(|a| a.strip_prefix("--dir="))
        .ok_or("ComponentizeJS passed no --dir")?
        .to_string();
    let copy = captured.join("sources").to_string_lossy().into_owned();
    let input = args.pop().ok_or("no arguments captured")?;
    let out = args
        .iter()
        .position(|a| a.starts_with("-o="))
        .ok_or("ComponentizeJS passed no -o=")?;
    args[out] = "-o={out}".into();
    for a in &mut args {
        *a = a.replace(&temp, &copy);
    }
    args.push("{in}".into());
    if input.is_empty() {
        return Err("no input captured".into());
    }
    let stdin = String::from_utf8(read("stdin")?)
        .map_err(|e| e.to_string())?
        .replace(&temp, &copy);
    let stdin_path = work.join("stdin");
    std::fs::write(&stdin_path, &stdin).map_err(|e| io(&stdin_path, e))?;
    // (the wrapper's shell sets PWD; ComponentizeJS does not)
    let env: Vec<(String, String)> = read("env")?
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            (k != "PWD").then(|| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut dirs = vec![(PathBuf::from(&copy), copy.clone())];
    for a in &args {
        if let Some((guest, host)) = a.strip_prefix("--mapdir=").and_then(|m| m.split_once("::")) {
            dirs.push((PathBuf::from(host), guest.to_string()));
        }
    }
    let bytes = read("in.wasm")?;
    Ok(Workload {
        name: "core-js",
        description: format!(
            "{COMPONENTIZE_JS}'s Wizer input for benches/programs/js-app (`--disable http \
             fetch-event`): StarlingMonkey with the app's bindings spliced in ({:.1} MiB), \
             init `componentize.wizer` starts the JS engine and evaluates app.js (a sieve, \
             20,000 words in a Map, regexes, JSON), with ComponentizeJS's command line, stdin \
             and environment",
            bytes.len() as f64 / (1 << 20) as f64
        ),
        input: marker,
        wizer_args: args,
        env: Some(env.clone()),
        stdin: Some(stdin_path),
        init_calls: vec!["_initialize".into(), "componentize.wizer".into()],
        probe: "probe",
        grants: Grants {
            env,
            dirs,
            stdin: stdin.into_bytes(),
        },
    })
}

/// Rounds of the startup measurement, the outputs in turns, unless
/// `PRE_INIT_BENCH_STARTUP_ROUNDS` says.
const STARTUP_ROUNDS: usize = 10;

/// Median seconds of: a new store (WASI preview1 with `grants`), instantiate
/// `module`, call each of `calls` in order (exports without parameters;
/// every import WASI does not provide traps). Returns what the last call
/// returned too.
fn startup(
    engine: &Engine,
    module: &Module,
    grants: &Grants,
    calls: &[&str],
    iters: (usize, usize),
    budget: Duration,
) -> Result<(f64, String)> {
    let mut linker = Linker::<WasiP1Ctx>::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |cx| cx)?;
    linker.define_unknown_imports_as_traps(module)?;
    let pre = linker.instantiate_pre(module)?;
    let mut times = Vec::new();
    let mut last = String::new();
    let clock = Instant::now();
    while times.len() < iters.1 && (times.len() < iters.0 || clock.elapsed() < budget) {
        let start = Instant::now();
        let mut wasi = WasiCtxBuilder::new();
        for (k, v) in &grants.env {
            wasi.env(k, v);
        }
        for (host, guest) in &grants.dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadWrite)?;
        }
        wasi.stdin(MemoryInputPipe::new(grants.stdin.clone()));
        let mut store = Store::new(engine, wasi.build_p1());
        let instance = pre.instantiate(&mut store)?;
        let mut results = Vec::new();
        for name in calls {
            let func = instance
                .get_func(&mut store, name)
                .with_context(|| format!("no export `{name}`"))?;
            results = vec![Val::I32(0); func.ty(&store).results().len()];
            func.call(&mut store, &[], &mut results)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("calling `{name}`"))?;
        }
        times.push(start.elapsed().as_secs_f64());
        last = format!("{results:?}");
        drop(store);
    }
    Ok((median(&mut times), last))
}

/// `pre_init __module_startup PROBE FILE...`: the startup of core modules
/// (pre-initialized outputs: no WASI grants) as the core-module table
/// measures it, the files in turns for `PRE_INIT_BENCH_STARTUP_ROUNDS`
/// rounds (default 10); the median of the rounds' medians of each.
pub fn compare_startup(args: &[String]) -> Result<()> {
    let [probe, files @ ..] = args else {
        anyhow::bail!("usage: pre_init __module_startup PROBE FILE...");
    };
    let rounds = std::env::var("PRE_INIT_BENCH_STARTUP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(STARTUP_ROUNDS);
    let engine = Engine::new(&crate::child::config())?;
    let modules = files
        .iter()
        .map(|f| {
            Ok(Module::new(
                &engine,
                std::fs::read(f).with_context(|| f.clone())?,
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut times = vec![Vec::new(); files.len()];
    let mut got = vec![String::new(); files.len()];
    for _ in 0..rounds {
        for (i, module) in modules.iter().enumerate() {
            let (t, v) = startup(
                &engine,
                module,
                &Grants::default(),
                &[probe],
                (5, 50),
                Duration::from_millis(400),
            )?;
            times[i].push(t);
            got[i] = v;
        }
    }
    println!(
        "median of {rounds} rounds (new store, instantiate, `{probe}`), load {:.2}",
        load()
    );
    for (i, file) in files.iter().enumerate() {
        println!(
            "  {:.1} µs  {file}  ({})",
            median(&mut times[i]) * 1e6,
            got[i]
        );
    }
    Ok(())
}

/// Startup of each tool's output (no WASI grants: the state is built) and
/// of the original with init at run time (the grants of the workload).
fn measure_startup(engine: &Engine, row: &mut Row) -> Result<()> {
    let w = &row.workload;
    let original = Module::new(engine, std::fs::read(&w.input)?)?;
    let calls: Vec<&str> = w
        .init_calls
        .iter()
        .map(String::as_str)
        .chain([w.probe])
        .collect();
    let (time, expected) = startup(
        engine,
        &original,
        &w.grants,
        &calls,
        (3, 20),
        Duration::from_secs(2),
    )?;
    drop(original);
    row.original = Some((time, expected.clone()));
    let mut modules = Vec::new();
    for (k, tool) in TOOLS.iter().enumerate() {
        let Some(path) = &row.tools[k].output else {
            continue;
        };
        match Module::new(engine, std::fs::read(path)?) {
            Ok(m) => modules.push((k, m)),
            Err(e) => row
                .startup_note
                .push(format!("{}'s output does not compile: {e}", tool.label())),
        }
    }
    let rounds = std::env::var("PRE_INIT_BENCH_STARTUP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(STARTUP_ROUNDS);
    let mut times = vec![Vec::new(); TOOLS.len()];
    for _ in 0..rounds {
        for (k, module) in &modules {
            if row.tools[*k]
                .probe
                .as_deref()
                .is_some_and(|p| p.starts_with("fails"))
            {
                continue;
            }
            match startup(
                engine,
                module,
                &Grants::default(),
                &[w.probe],
                (5, 50),
                Duration::from_millis(400),
            ) {
                Ok((t, got)) => {
                    times[*k].push(t);
                    row.tools[*k].probe = Some(got);
                }
                Err(e) => row.tools[*k].probe = Some(format!("fails: {e:#}")),
            }
        }
    }
    for (k, tool) in TOOLS.iter().enumerate() {
        let runs = &mut row.tools[k];
        if let Some(got) = &runs.probe
            && *got != expected
        {
            row.startup_note.push(format!(
                "{}: `{}` = {got}, at run time {expected}",
                tool.label(),
                w.probe
            ));
        }
        if !times[k].is_empty() {
            runs.startup = Some(median(&mut times[k]));
        }
    }
    Ok(())
}

fn bytes(n: f64) -> String {
    if n.is_nan() {
        "–".into()
    } else {
        format!("{:.0}", n)
    }
}

fn report(rows: &[Row], skipped: &[String], runs: usize, load_start: f64, bins: &Bins) -> String {
    use std::fmt::Write as _;
    let mut r = String::new();
    let version = |bin: Result<&Path, String>| {
        bin.ok()
            .and_then(|b| Command::new(b).arg("--version").output().ok())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "not found".into())
    };
    writeln!(
        r,
        "## Core modules\n\n`component-init` ({}) vs `wasmtime wizer` ({}) vs Wizer 10 ({}). \
         Median of {runs} runs per tool, each a process: wall clock, and CPU (user + system, \
         10 ms ticks); load average (1 min) {load_start:.2} at the start, {:.2} at the end.\n",
        bins.ours.display(),
        version(bins.get(Tool::Wasmtime)),
        version(bins.get(Tool::Wizer10)),
        load()
    )
    .unwrap();
    r.push_str(
        "### Time, output size, startup\n\n\
         | workload | tool | cold ms (CPU) | first run, empty cache ms | warm ms (CPU; from the \
         cache) | output bytes, median (min–max) | startup µs |\n|---|---|---|---|---|---|---|\n",
    );
    let cpu = |v: f64| format!("{:.0}", v * 1e3);
    for row in rows {
        for (k, tool) in TOOLS.iter().enumerate() {
            let t = &row.tools[k];
            if t.failure.is_some() && t.first.is_empty() {
                writeln!(
                    r,
                    "| {} | {} | fails | | | | |",
                    row.workload.name,
                    tool.label(),
                )
                .unwrap();
                continue;
            }
            let (min, max) = (
                t.sizes.iter().min().copied().unwrap_or(0),
                t.sizes.iter().max().copied().unwrap_or(0),
            );
            writeln!(
                r,
                "| {} | {} | {} ({}){} | {} | {} ({}; {}/{}) | {} ({min}–{max}) | {} |",
                row.workload.name,
                tool.label(),
                ms(t.cold(*tool)),
                cpu(t.cold_cpu(*tool)),
                if *tool == Tool::Wizer10 {
                    ", = first"
                } else {
                    ""
                },
                ms(ToolRuns::med(&t.first)),
                ms(ToolRuns::med(&t.warm)),
                cpu(ToolRuns::med(&t.warm_cpu)),
                t.warm_hits,
                t.warm.len(),
                bytes(t.size()),
                t.startup.map_or("–".into(), |s| format!("{:.0}", s * 1e6)),
            )
            .unwrap();
        }
        if let Some((t, _)) = row.original {
            writeln!(
                r,
                "| {} | the input, init at run time | | | | | {:.0} |",
                row.workload.name,
                t * 1e6
            )
            .unwrap();
        }
    }
    r.push_str(
        "\n### Ours against each peer (targets: cold ≤ 0.5x, warm ≤ 1.0x, output ≤ 1.0x, \
         startup ≤ 1.0x)\n\n\
         | workload | peer | cold ours/peer (CPU) | warm ours/peer (CPU) | output ours/peer | \
         startup ours/peer |\n|---|---|---|---|---|---|\n",
    );
    // (judged on the ratio as shown, two decimals)
    let mark = |x: f64, limit: f64| {
        if x.is_nan() {
            "–".to_string()
        } else if (x * 100.0).round() <= limit * 100.0 {
            format!("{x:.2}x")
        } else {
            format!("**{x:.2}x**")
        }
    };
    for row in rows {
        let ours = &row.tools[0];
        for (k, tool) in TOOLS.iter().enumerate().skip(1) {
            let p = &row.tools[k];
            let size = if ours.sizes.is_empty() || p.sizes.is_empty() {
                "–".to_string()
            } else {
                format!("{:.4}x", ours.size() / p.size())
            };
            writeln!(
                r,
                "| {} | {} | {} ({:.2}x) | {} ({:.2}x) | {}{} | {} |",
                row.workload.name,
                tool.label(),
                mark(ours.cold(Tool::Ours) / p.cold(*tool), 0.5),
                ours.cold_cpu(Tool::Ours) / p.cold_cpu(*tool),
                mark(ToolRuns::med(&ours.warm) / ToolRuns::med(&p.warm), 1.0),
                ToolRuns::med(&ours.warm_cpu) / ToolRuns::med(&p.warm_cpu),
                size,
                if ours.size() > p.size() {
                    " **larger**"
                } else {
                    ""
                },
                mark(
                    ours.startup.unwrap_or(f64::NAN) / p.startup.unwrap_or(f64::NAN),
                    1.0
                ),
            )
            .unwrap();
        }
    }
    r.push_str("\n(**bold**: the target is not met.)\n\n### Command lines\n\n");
    for row in rows {
        let w = &row.workload;
        writeln!(
            r,
            "- `{}` (load {:.2} at its start): {}.",
            w.name, row.load, w.description
        )
        .unwrap();
        let show = |args: Vec<String>| args.join(" ");
        writeln!(
            r,
            "  - Wizer 10 and ours: `{}`{}",
            show(w.wizer_args.clone()),
            if w.stdin.is_some() {
                " with ComponentizeJS's stdin and environment"
            } else {
                ""
            }
        )
        .unwrap();
        if let Ok(args) = wasmtime_args(&w.wizer_args) {
            writeln!(r, "  - `wasmtime {}`", show(args)).unwrap();
        }
        for note in &row.startup_note {
            writeln!(r, "  - {note}").unwrap();
        }
        for (k, tool) in TOOLS.iter().enumerate() {
            if let Some(failure) = &row.tools[k].failure {
                writeln!(r, "  - {} fails: {failure}", tool.label()).unwrap();
            }
        }
    }
    for s in skipped {
        writeln!(r, "- skipped {s}").unwrap();
    }
    r
}
