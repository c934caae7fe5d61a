//! One pipeline run, in a child process of its own (so that its peak RSS is
//! its own): ours (component-init) or the peer's (wasmtime-wizer 48), timed
//! phase by phase.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use component_init::PreopenDir;
use component_init::Value;
use component_init::{Compiler, RuntimeBuilder};
use component_init::{InitFunc, InstrumentOptions, Runtime, WasiOptions, WasmtimeRuntime};
use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, Instance, Lift, Linker, ResourceTable, WasmList};
use wasmtime::{Cache, Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// The phases, in order, as reported.
pub const PHASES: [&str; 5] = [
    "parse+instrument",
    "compile+instantiate",
    "init",
    "snapshot",
    "rewrite",
];

/// What one run measured.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Measured {
    /// Seconds per phase, as [`PHASES`].
    pub phases: [f64; 5],
    /// Seconds from the start of parsing to the output in hand.
    pub total: f64,
    /// Bytes of the output component.
    pub output_size: usize,
    /// Bytes of guest linear memory read back (every defined memory).
    pub guest_memory: usize,
    /// Peak resident set of the process, bytes (VmHWM).
    pub peak_rss: u64,
    /// With a compilation cache: whether the instrumented component came
    /// from it (`None` without a cache).
    #[serde(default)]
    pub cache_hit: Option<bool>,
}

/// How a workload's init is called, the same for both tools (and for the
/// startup measurements): passed to the child as JSON.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Setup {
    /// The init function (an export without parameters).
    pub init: String,
    /// Whether init gets WASI p2; without it every import traps.
    pub wasi: bool,
    /// With WASI: environment variables init sees.
    pub env: Vec<(String, String)>,
    /// With WASI: host directories preopened for init, and the name the
    /// guest sees each under.
    pub dirs: Vec<(PathBuf, String)>,
}

impl Setup {
    /// `component-init`, with or without WASI (nothing of the host visible).
    pub fn new(wasi: bool) -> Setup {
        Setup {
            init: "component-init".into(),
            wasi,
            env: Vec::new(),
            dirs: Vec::new(),
        }
    }

    /// What our side grants init: the same environment and directories.
    /// Resources init leaves open (the WASI adapter's handles to the
    /// preopened directories) are accepted, as the peer does not check.
    fn wasi_options(&self) -> WasiOptions {
        WasiOptions {
            dirs: self
                .dirs
                .iter()
                .map(|(host, guest)| PreopenDir {
                    host: host.clone(),
                    guest: guest.clone(),
                })
                .collect(),
            env: self.env.clone(),
            allow_open_resources: !self.dirs.is_empty(),
            ..WasiOptions::default()
        }
    }
}

/// The environment variable through which the parent gives the `*-cached`
/// tools their cache configuration file (a Wasmtime `config.toml` whose
/// `[cache] directory` is a directory of the workload's own).
pub const CACHE_CONFIG_VAR: &str = "PRE_INIT_BENCH_CACHE_CONFIG";

/// Wasmtime's compilation cache from the configuration file the parent
/// wrote, as `-C cache-config=FILE` loads it (ours: src/cli.rs; the peer:
/// `wasmtime wizer`, through `wasmtime run`'s options).
fn cache() -> Result<Cache> {
    let file = std::env::var_os(CACHE_CONFIG_VAR)
        .with_context(|| format!("the cached tools need {CACHE_CONFIG_VAR}"))?;
    Cache::from_file(Some(std::path::Path::new(&file)))
        .map_err(anyhow::Error::from)
        .context("failed to set up the compilation cache")
}

/// Runs `tool` on the component at `input`, writes the output to `output`,
/// and prints one `RESULT {json}` line. The tools: `ours`, `peer` (no
/// compilation cache), `ours-cranelift` (what-if), and `ours-cached`,
/// `peer-cached`, `ours-cranelift-cached`: the same with Wasmtime's
/// compilation cache, configured by the file named in
/// [`CACHE_CONFIG_VAR`].
pub fn main(tool: &str, setup: &Setup, input: &str, output: &str) -> Result<()> {
    let read = || std::fs::read(input).with_context(|| format!("failed to read `{input}`"));
    let (bytes, mut measured) = match tool {
        "ours" => ours(&read()?, setup, WasmtimeRuntime::builder())?,
        // What-if: our pipeline with `--compiler cranelift` (the optimizing
        // compiler the peer uses) instead of the default, Winch.
        "ours-cranelift" => {
            let runtime = WasmtimeRuntime::builder().compiler(Compiler::Cranelift);
            ours(&read()?, setup, runtime)?
        }
        // As the CLI runs by default: Wasmtime's cache (src/cli/mod.rs,
        // `RuntimeBuilder::cache`).
        "ours-cached" => {
            let runtime = WasmtimeRuntime::builder().cache(Some(cache()?));
            ours(&read()?, setup, runtime)?
        }
        "ours-cranelift-cached" => {
            let runtime = WasmtimeRuntime::builder()
                .compiler(Compiler::Cranelift)
                .cache(Some(cache()?));
            ours(&read()?, setup, runtime)?
        }
        "peer" => peer(&read()?, setup, None)?,
        // As `wasmtime wizer` runs by default: its engine with Wasmtime's
        // cache (`-C cache=y`).
        "peer-cached" => peer(&read()?, setup, Some(cache()?))?,
        // The floor: this binary, started, doing nothing.
        "idle" => (Vec::new(), idle()),
        other => anyhow::bail!("unknown tool `{other}`"),
    };
    measured.peak_rss = peak_rss();
    std::fs::write(output, &bytes).with_context(|| format!("failed to write `{output}`"))?;
    println!("RESULT {}", serde_json::to_string(&measured)?);
    Ok(())
}

fn idle() -> Measured {
    Measured {
        phases: [0.0; 5],
        total: 0.0,
        output_size: 0,
        guest_memory: 0,
        peak_rss: 0,
        cache_hit: None,
    }
}

/// With `PRE_INIT_BENCH_KEEP_INSTRUMENTED=DIR`, writes the instrumented
/// component to `DIR/TOOL.instrumented.wasm`: for looking into a
/// workload, not for timing (the write counts in compile+instantiate).
fn keep_instrumented(tool: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("PRE_INIT_BENCH_KEEP_INSTRUMENTED") {
        let path = std::path::Path::new(&dir).join(format!("{tool}.instrumented.wasm"));
        let _ = std::fs::write(path, bytes);
    }
}

/// The peak resident set of this process so far, in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

struct Clock {
    last: Instant,
    start: Instant,
    phases: Vec<f64>,
}

impl Clock {
    fn new() -> Clock {
        let now = Instant::now();
        Clock {
            last: now,
            start: now,
            phases: Vec::new(),
        }
    }

    /// Ends a phase.
    fn lap(&mut self) {
        let now = Instant::now();
        self.phases.push((now - self.last).as_secs_f64());
        self.last = now;
    }

    fn done(self, output_size: usize, guest_memory: usize) -> Measured {
        let total = self.start.elapsed().as_secs_f64();
        Measured {
            phases: self.phases.try_into().expect("five phases"),
            total,
            output_size,
            guest_memory,
            peak_rss: 0,
            cache_hit: None,
        }
    }
}

/// Our pipeline, as `component-init` runs it (src/cli.rs): the library's
/// phases, with `WasmtimeRuntime::new()` and, when init needs it, WASI.
///
/// `runtime` (engine and store) is made before the clock starts, as the
/// peer's engine and store are.
fn ours(input: &[u8], setup: &Setup, builder: RuntimeBuilder) -> Result<(Vec<u8>, Measured)> {
    let options = InstrumentOptions {
        init_func: Some(InitFunc::parse(&setup.init)?),
        ..InstrumentOptions::default()
    };
    let builder = match setup.wasi {
        true => builder.wasi(setup.wasi_options()),
        false => builder,
    };
    let mut runtime = builder.build()?;
    block_on(async {
        let mut clock = Clock::new();
        let instrumented = component_init::instrument(input, &options)?;
        let plan = &instrumented.plan;
        clock.lap();
        keep_instrumented("ours", &instrumented.component);
        runtime.instantiate(&instrumented.component).await?;
        clock.lap();
        runtime.call_init(&plan.init).await?;
        clock.lap();
        let snapshot = component_init::__internal::read_snapshot(&mut runtime, plan).await?;
        let cache_hit = runtime.cache_hit();
        // as the CLI does: the guest's memory goes before the rewrite, and
        // the input's code, validated by `instrument`, is not validated again
        drop(runtime);
        clock.lap();
        let output = component_init::__internal::apply_to_validated(input, plan, &snapshot)?;
        clock.lap();
        let guest_memory = snapshot
            .values
            .iter()
            .map(|v| match v {
                Value::Memory(image) => image.len() as usize,
                _ => 0,
            })
            .sum();
        let mut measured = clock.done(output.len(), guest_memory);
        measured.cache_hit = cache_hit;
        Ok((output, measured))
    })?
}

/// The peer's engine configuration, and the startup measurement's:
/// Wasmtime's defaults (Cranelift, as `wasmtime wizer` compiles) with the
/// proposals our workloads use. Ours runs on `WasmtimeRuntime::new()`'s
/// engine (Winch, epoch interruption for the default timeout).
pub fn config() -> Config {
    let mut config = Config::new();
    config.wasm_backtrace_max_frames(None);
    config.wasm_multi_memory(true);
    config.wasm_memory64(true);
    config.wasm_custom_page_sizes(true);
    config
}

/// The store data of the peer's runs and of the startup measurements.
pub struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl Host {
    /// A default `WasiCtx` plus what `setup` grants: its environment and
    /// directories.
    pub fn new(setup: &Setup) -> Result<Host> {
        let mut wasi = WasiCtx::builder();
        for (name, value) in &setup.env {
            wasi.env(name, value);
        }
        for (host, guest) in &setup.dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadWrite)?;
        }
        Ok(Host {
            wasi: wasi.build(),
            table: ResourceTable::new(),
        })
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The peer's pipeline, as `Wizer::run_component` runs it (compile the
/// instrumented component, instantiate, call init, `snapshot_component`),
/// split into phases. Its snapshot reads memories through a zero-copy view
/// and finds the non-zero ranges while reading; `snapshot` is the time
/// spent in those reads, `rewrite` the rest of `snapshot_component`.
fn peer(input: &[u8], setup: &Setup, cache: Option<Cache>) -> Result<(Vec<u8>, Measured)> {
    // As on our side, the engine and store exist before the clock starts.
    let mut config = config();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    let mut store = Store::new(&engine, Host::new(setup)?);
    let init = setup.init.as_str();
    block_on(async {
        let mut clock = Clock::new();
        let mut wizer = Wizer::new();
        wizer.init_func(init);
        let (cx, instrumented) = wizer
            .instrument_component(input)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        clock.lap();
        keep_instrumented("peer", &instrumented);
        let component = Component::new(&engine, &instrumented)?;
        let mut linker = Linker::<Host>::new(&engine);
        if setup.wasi {
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        } else {
            linker.define_unknown_imports_as_traps(&component)?;
        }
        let (_, index) = component
            .get_export(None, init)
            .with_context(|| format!("no export `{init}`"))?;
        let instance = linker.instantiate_async(&mut store, &component).await?;
        clock.lap();
        let func = instance
            .get_func(&mut store, index)
            .context("init is not a function")?;
        func.call_async(&mut store, &[], &mut []).await?;
        clock.lap();
        let mut state = Timed {
            store: &mut store,
            instance,
            spent: Duration::ZERO,
            memories: HashMap::new(),
        };
        let output = wizer
            .snapshot_component(&cx, &mut state)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let (spent, guest_memory) = (state.spent, state.memories.values().sum());
        // Split the last lap: reads (snapshot), then the rest (rewrite).
        let now = Instant::now();
        let both = (now - clock.last).as_secs_f64();
        clock.phases.push(spent.as_secs_f64());
        clock.phases.push(both - spent.as_secs_f64());
        clock.last = now;
        let size = output.len();
        let mut measured = clock.done(size, guest_memory);
        measured.cache_hit = cache.map(|c| c.cache_hits() > 0);
        Ok((output, measured))
    })?
}

/// `wasmtime_wizer::WasmtimeWizerComponent` (behind the peer's `wasmtime`
/// feature, which would change the Wasmtime features of our side too),
/// reproduced call for call, timing the calls.
struct Timed<'a> {
    store: &'a mut Store<Host>,
    instance: Instance,
    spent: Duration,
    memories: HashMap<String, usize>,
}

impl Timed<'_> {
    async fn call_func<R, R2>(
        &mut self,
        instance: &str,
        func: &str,
        use_ret: impl FnOnce(&mut Store<Host>, R) -> R2,
    ) -> R2
    where
        R: Lift + 'static,
    {
        let start = Instant::now();
        let (_, instance_export) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .unwrap();
        let (_, func_export) = self
            .instance
            .get_export(&mut *self.store, Some(&instance_export), func)
            .unwrap();
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, func_export)
            .unwrap();
        let ret = func.call_async(&mut *self.store, ()).await.unwrap().0;
        let ret = use_ret(&mut *self.store, ret);
        self.spent += start.elapsed();
        ret
    }
}

impl ComponentInstanceState for Timed<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let key = format!("{instance}#{func}");
        let mut len = 0;
        self.call_func(instance, func, |store, list: WasmList<u8>| {
            let bytes = list.as_le_slice(&*store);
            len = bytes.len();
            contents(bytes);
        })
        .await;
        self.memories.insert(key, len);
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call_func(instance, func, |_, r| r).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call_func(instance, func, |_, r| r).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call_func(instance, func, |_, r: f32| r.to_bits())
            .await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call_func(instance, func, |_, r: f64| r.to_bits())
            .await
    }
}

/// Runs `future` on a single-threaded Tokio runtime (WASI's host functions
/// need one), as the library's blocking calls do.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    Ok(output)
}
