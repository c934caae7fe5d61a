//! The command line, shaped as a wasm-tools subcommand: [`Opts`] has `run`
//! and `general_opts`, which is all wasm-tools needs to mount it as
//! `wasm-tools component-init`.

use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use crate::component::snapshot::Step;
use crate::plan::{RefId, State, Value};
use crate::run::wasi::{self, PreopenDir, WasiOptions};
use crate::run::wasmtime::Compiler;

mod split;
mod wizer;

use crate::component::{instrument, snapshot};
use crate::module::ModuleOptions;
use crate::run::wasmtime as wasmtime_runtime;
use crate::{InitFunc, InstrumentOptions, Instrumented, WasmtimeRuntime};

/// Pre-initialize a WebAssembly component or core module.
///
/// Runs the init function once, then writes a new component (or module)
/// whose memories and mutable globals already hold the state init left
/// behind. Start functions and the init export are removed: they already
/// ran. Core modules are pre-initialized as Wizer does it, and Wizer's
/// command line is accepted too (see docs/cli.md).
#[derive(clap::Parser)]
#[clap(after_help = AFTER_HELP, args_conflicts_with_subcommands = true, version)]
pub struct Opts {
    /// Run one phase of the pipeline by itself (for other runtimes).
    #[clap(subcommand)]
    command: Option<split::Command>,

    #[clap(flatten)]
    io: wasm_tools::InputOutput,

    /// Output the text format of WebAssembly instead of the binary format.
    #[clap(short = 't', long)]
    wat: bool,

    /// The exported function to run as init, and its arguments: `NAME`,
    /// `NAME(ARGS)`, `INTERFACE#NAME` or `INTERFACE#NAME(ARGS)` (for example
    /// `'my:pkg/setup#init("config.json", 3)'`), the arguments in WAVE as
    /// `wasmtime run --invoke` takes them.
    ///
    /// Defaults to `component-init`, or `wizer-initialize` when only that is
    /// exported. Results are shown with `-v`; an `err` result fails. For a
    /// core module: the export's name, `wizer-initialize` by default (after
    /// `_initialize`, which runs first when exported).
    #[clap(short = 'f', long, value_name = "NAME[(ARGS)]")]
    init_func: Option<String>,

    /// Keep the init function's export in the output (by default a top-level
    /// init export is removed; one inside an exported interface always
    /// stays; a core module's `_initialize` goes either way).
    #[clap(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    keep_init_func: Option<bool>,

    /// Core modules: export SRC's function as DST in the output (an export
    /// already named DST goes), as Wizer's `-r` does: `-r _start=main_after_init`.
    #[clap(short = 'r', long, value_name = "DST=SRC", value_parser = parse_rename)]
    rename_func: Vec<(String, String)>,

    #[clap(flatten)]
    run: RunArgs,
}

/// How init runs: compiler, limits and WASI (the main command and
/// `snapshot`).
#[derive(clap::Args)]
pub struct RunArgs {
    /// The compiler for the instrumented component: `winch` (baseline:
    /// compiles several times faster, runs init slower; Cranelift takes
    /// over where Winch cannot compile), `cranelift` (optimizing: for inits
    /// that run long), or `auto`: Winch on x86-64 unless `--fuel` is given
    /// (fuel needs Cranelift), else Cranelift. The output is the same.
    #[clap(long, value_name = "COMPILER", default_value = "auto")]
    compiler: CompilerArg,

    /// Wasmtime's compilation cache, as `wasmtime run -C` sets it: on by
    /// default (the same cache as `wasmtime run`'s, `~/.cache/wasmtime`,
    /// with Wasmtime's size limits); `-C cache=n` turns it off,
    /// `-C cache-config=FILE` reads its settings (directory, size limits)
    /// from FILE instead of `~/.config/wasmtime/config.toml`.
    #[clap(
        short = 'C',
        value_name = "KEY[=VAL]",
        help_heading = "Compilation cache"
    )]
    codegen: Vec<String>,

    /// Stop init after this long, with an error (`500ms`, `3s`, `2m`, `1h`;
    /// `0`: no limit). Instantiation, start functions included, counts.
    #[clap(
        long,
        value_name = "DURATION",
        default_value = "5m",
        value_parser = crate::run::limits::parse_duration,
        help_heading = "Limits during init"
    )]
    // (a full path: clap must not make an `Option` field optional)
    timeout: std::option::Option<std::time::Duration>,

    /// Stop init with an error when the component's linear memories would
    /// hold more than SIZE bytes in all (`65536`, `64MiB`, `2GiB`). By
    /// default only the memories' own maxima apply.
    #[clap(
        long,
        value_name = "SIZE",
        value_parser = crate::run::limits::parse_size,
        help_heading = "Limits during init"
    )]
    max_memory: Option<u64>,

    /// Stop init with an error once it has used N units of fuel (about one
    /// per instruction): a bound that is the same on every machine. Metering
    /// fuel slows init down.
    #[clap(long, value_name = "N", help_heading = "Limits during init")]
    fuel: Option<u64>,

    /// Provide WASI 0.2 and 0.3 to the init function (by default every import traps
    /// when init calls it). Nothing of the host is visible unless granted
    /// with the options below; randomness and clocks are the host's.
    #[clap(long, help_heading = "WASI during init")]
    wasi: bool,

    /// Preopen the host directory HOST_DIR for init, as GUEST_DIR (by
    /// default under the name HOST_DIR). Needs `--wasi`.
    #[clap(
        long = "dir",
        value_name = "HOST_DIR[::GUEST_DIR]",
        help_heading = "WASI during init"
    )]
    dirs: Vec<String>,

    /// Set an environment variable for init; `NAME` alone passes the host's
    /// value. Needs `--wasi`.
    #[clap(
        long = "env",
        value_name = "NAME[=VAL]",
        help_heading = "WASI during init"
    )]
    env: Vec<String>,

    /// Pass the host's whole environment to init. Needs `--wasi`.
    #[clap(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = "WASI during init")]
    inherit_env: Option<bool>,

    /// Show init's stdout and stderr (on stderr when the output goes to
    /// stdout). By default they are discarded (with Wizer's `--allow-wasi`:
    /// shown, and stdin passed too). Needs `--wasi`.
    #[clap(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = "WASI during init")]
    inherit_stdio: Option<bool>,

    /// Give init the host's stdin (by default it reads as empty). The input
    /// must then come from a file. Needs `--wasi`.
    #[clap(long, help_heading = "WASI during init")]
    inherit_stdin: bool,

    /// Snapshot even if init leaves WASI resources open (files, streams,
    /// directory handles); the guest's handles to them dangle in instances
    /// started from the output. Needs `--wasi`.
    #[clap(long, help_heading = "WASI during init")]
    allow_open_resources: bool,

    /// Make the output the same on every run and machine: init's randomness
    /// comes from a generator seeded with `--random-seed`, its wall clock
    /// reads `SOURCE_DATE_EPOCH` (or 1980-01-01), its monotonic clock starts
    /// at 0 and its sleeps return at once; directory listings are sorted and
    /// file times fixed. `--inherit-env` is refused.
    #[clap(long, help_heading = "Reproducible builds")]
    reproducible: bool,

    /// The seed of init's random values under `--reproducible`: a number, or
    /// `0x` and up to 64 hex digits; pass a secret one when they must also
    /// be unpredictable [default: 0].
    #[clap(
        long,
        value_name = "SEED",
        requires = "reproducible",
        value_parser = crate::run::reproducible::parse_seed,
        help_heading = "Reproducible builds"
    )]
    random_seed: Option<[u8; 32]>,

    #[clap(flatten)]
    wizer: wizer::WizerArgs,
}

const AFTER_HELP: &str = "\
Examples:

    # Pre-initialize app.wasm, running its `component-init` export
    component-init app.wasm -o app.init.wasm

    # Run another export, from an exported interface, and keep it
    component-init app.wasm --init-func 'my:app/setup#init' --keep-init-func -o out.wasm

    # Print the result as WebAssembly text
    component-init app.wat -t

    # Let init read ./config (as /config) and $HOME, and show what it prints
    component-init app.wasm --wasi --dir ./config::/config --env HOME --inherit-stdio -o out.wasm

    # Give init at most 30 seconds and 1 GiB of linear memory
    component-init app.wasm --timeout 30s --max-memory 1GiB -o app.init.wasm

    # The same in three steps, running init in another runtime (see README)
    component-init instrument app.wasm -o instrumented.wasm --plan plan.json
    component-init snapshot instrumented.wasm --plan plan.json -o snapshot.bin
    component-init apply app.wasm --plan plan.json --snapshot snapshot.bin -o app.init.wasm

    # Print the accessor interface instrumentation adds, as WIT
    component-init wit app.wasm

Exit status: 0 on success; 1 on any error, in which case nothing is written.";

impl Opts {
    /// Options shared by every wasm-tools subcommand (`-v`, `--color`).
    pub fn general_opts(&self) -> &wasm_tools::GeneralOpts {
        match &self.command {
            Some(command) => command.general_opts(),
            None => self.io.general_opts(),
        }
    }

    /// Runs the command.
    pub fn run(self) -> Result<()> {
        if let Some(command) = self.command {
            return command.run();
        }
        let from_stdin = self.io.input_path().is_none_or(|p| p == Path::new("-"));
        if from_stdin && self.run.passes_stdin() {
            bail!(
                "init is given the host's stdin (`--inherit-stdin`, or Wizer's stdio), so the \
                 input must come from a file, not stdin"
            );
        }
        let input = read_input(self.io.input_path())?;
        if crate::module::is_core_module(&input) {
            return self.run_module(&input);
        }
        if !self.rename_func.is_empty() {
            bail!("`--rename-func` renames a core module's exports; the input is a component");
        }
        let options = InstrumentOptions {
            init_func: self.init_func.as_deref().map(InitFunc::parse).transpose()?,
            keep_init_func: self.keep_init_func.unwrap_or(false),
        };
        let runtime = self.run.runtime(self.io.output_path().is_none())?;
        let output = wasmtime_runtime::block_on(pre_initialize(&input, &options, runtime))??;
        write_output(self.io.output_path(), &output, self.wat)
    }
}

impl Opts {
    /// Pre-initializes the core module `input`, logging each phase (`-v`).
    fn run_module(self, input: &[u8]) -> Result<()> {
        let options = ModuleOptions {
            init_func: self.init_func.clone(),
            keep_init_func: self.keep_init_func.unwrap_or(false),
            renames: self.rename_func.clone(),
        };
        let mut runtime = self.run.runtime(self.io.output_path().is_none())?;
        let start = Instant::now();
        let parsed = crate::module::parse::parse(input)?;
        let instrumented = crate::module::instrument::instrument(input, &parsed, &options)?;
        log::info!(
            "instrumented the core module in {:.1?}: {} pieces of state, calls {}",
            start.elapsed(),
            instrumented.plan.states.len(),
            instrumented
                .plan
                .calls
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", then ")
        );
        let start = Instant::now();
        let snapshot = wasmtime_runtime::block_on(
            runtime.snapshot_module(&instrumented.module, &instrumented.plan),
        )??;
        log::info!("ran init and read the state in {:.1?}", start.elapsed());
        log_audit(runtime.audit());
        // The guest's memory goes before the rewrite.
        drop(runtime);
        let start = Instant::now();
        let output =
            crate::module::rewrite::apply(input, &parsed, &instrumented.plan, &snapshot, &options)?;
        log::info!(
            "rewrote in {:.1?}: {} bytes in, {} bytes out",
            start.elapsed(),
            input.len(),
            output.len()
        );
        write_output(self.io.output_path(), &output, self.wat)
    }
}

/// Parses `DST=SRC` of `--rename-func`.
fn parse_rename(spec: &str) -> Result<(String, String)> {
    match spec.split_once('=') {
        Some((dst, src)) if !dst.is_empty() && !src.is_empty() => {
            Ok((dst.to_string(), src.to_string()))
        }
        _ => bail!("`{spec}` is not of the form `DST=SRC`"),
    }
}

/// `--compiler`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CompilerArg {
    Auto,
    Cranelift,
    Winch,
}

impl RunArgs {
    /// The limits the flags give.
    fn limits(&self) -> crate::Limits {
        crate::Limits {
            timeout: self.timeout,
            max_memory: self.max_memory,
            fuel: self.fuel,
        }
    }

    /// Whether init is given the host's stdin.
    fn passes_stdin(&self) -> bool {
        self.wasi_options(false)
            .ok()
            .flatten()
            .is_some_and(|w| w.inherit_stdin)
    }

    /// A Wasmtime runtime with these limits and WASI options, logged (`-v`).
    /// `output_to_stdout`: the output goes to stdout, so init's stdout must
    /// not.
    pub(crate) fn runtime(&self, output_to_stdout: bool) -> Result<WasmtimeRuntime> {
        let wasi = self.wasi_options(output_to_stdout)?;
        let compiler = match self.compiler {
            CompilerArg::Auto => Compiler::Auto,
            CompilerArg::Cranelift => Compiler::Cranelift,
            CompilerArg::Winch => Compiler::Winch,
        };
        let mut builder = WasmtimeRuntime::builder()
            .limits(self.limits())
            .compiler(compiler)
            .cache(self.cache()?);
        if let Some(wasi) = wasi {
            log::info!(
                "WASI enabled for init: {} preopened director{}, {} environment variable{}, stdio {}",
                wasi.dirs.len(),
                if wasi.dirs.len() == 1 { "y" } else { "ies" },
                wasi.environment().len(),
                if wasi.environment().len() == 1 {
                    ""
                } else {
                    "s"
                },
                if wasi.inherit_stdio {
                    "shown"
                } else {
                    "discarded"
                }
            );
            builder = builder.wasi(wasi);
        }
        builder.build()
    }

    /// Wasmtime's compilation cache as `-C` sets it: on unless
    /// `-C cache=n`.
    fn cache(&self) -> Result<Option<wasmtime::Cache>> {
        let mut enabled = true;
        let mut config_file = None;
        for option in &self.codegen {
            let (key, value) = option.split_once('=').unwrap_or((option, "y"));
            match (key, value) {
                ("cache", "y" | "yes" | "true") => enabled = true,
                ("cache", "n" | "no" | "false") => enabled = false,
                ("cache-config", file) => config_file = Some(std::path::PathBuf::from(file)),
                ("cache", other) => bail!("`-C cache={other}`: write `-C cache=y` or `-C cache=n`"),
                _ => bail!(
                    "unknown option `-C {option}`: the options are `cache=y|n` and \
                     `cache-config=FILE`"
                ),
            }
        }
        if !enabled {
            return Ok(None);
        }
        let cache = wasmtime::Cache::from_file(config_file.as_deref())
            .map_err(anyhow::Error::from)
            .context("failed to set up the compilation cache (`-C cache=n` turns it off)")?;
        log::debug!("compilation cache in `{}`", cache.directory().display());
        Ok(Some(cache))
    }

    /// The fixed sources of `--reproducible`, logged (`-v`).
    fn reproducible(&self) -> Result<Option<crate::Reproducible>> {
        if !self.reproducible {
            return Ok(None);
        }
        let mut fixed = crate::Reproducible::from_env()?;
        if let Some(seed) = self.random_seed {
            fixed.seed = seed;
        }
        log::info!(
            "reproducible: random values from seed 0x{}{}, wall clock at {} s since 1970 ({}), \
             monotonic clock from 0, sleeps at once",
            fixed
                .seed
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            if self.random_seed.is_none() {
                " (the default)"
            } else {
                ""
            },
            fixed.wall_clock.as_secs(),
            fixed.wall_clock_source
        );
        Ok(Some(fixed))
    }

    /// The WASI options, if `--wasi` is given; the other WASI flags need it.
    fn wasi_options(&self, output_to_stdout: bool) -> Result<Option<WasiOptions>> {
        let wizer = self.wizer.settings()?;
        if !self.wasi && !wizer.wasi {
            let given = [
                (!self.dirs.is_empty(), "--dir"),
                (!self.env.is_empty(), "--env"),
                (self.inherit_env == Some(true), "--inherit-env"),
                (self.inherit_stdio == Some(true), "--inherit-stdio"),
                (self.inherit_stdin, "--inherit-stdin"),
                (self.allow_open_resources, "--allow-open-resources"),
                (!self.wizer.mapdir.is_empty(), "--mapdir"),
            ];
            if let Some((_, flag)) = given.iter().find(|(given, _)| *given) {
                bail!("`{flag}` needs `--wasi` (WASI is off during init unless `--wasi` is given)");
            }
            return Ok(None);
        }
        let mut env = Vec::new();
        for spec in &self.env {
            env.extend(wasi::parse_env(spec)?);
        }
        let mut dirs = self
            .dirs
            .iter()
            .map(|d| PreopenDir::parse(d))
            .collect::<Result<Vec<_>>>()?;
        dirs.extend(self.wizer.mapdirs()?);
        let inherit_stdio = self.inherit_stdio.unwrap_or(wizer.inherit_stdio);
        Ok(Some(WasiOptions {
            dirs,
            env,
            inherit_env: self.inherit_env.unwrap_or(false) || wizer.inherit_env,
            inherit_stdio,
            inherit_stdin: self.inherit_stdin || (inherit_stdio && wizer.stdin_with_stdio),
            // The output component may go to stdout: keep it clean.
            stdout_to_stderr: output_to_stdout,
            allow_open_resources: self.allow_open_resources,
            reproducible: self.reproducible()?,
        }))
    }
}

/// The pipeline, phase by phase, logging what each did (`-v`).
async fn pre_initialize(
    input: &[u8],
    options: &InstrumentOptions,
    mut runtime: WasmtimeRuntime,
) -> Result<Vec<u8>> {
    let start = Instant::now();
    // The parse is kept for the rewrite, which then neither parses nor
    // hashes the input again. The input's function bodies are only read
    // here (for the probes); they are validated below.
    let (parsed, bodies, instrumented) = instrument::instrument_unchecked(input, options)?;
    let plan = &instrumented.plan;
    log::info!(
        "instrumented in {:.1?}: {} accessors, init function `{}`",
        start.elapsed(),
        plan.accessors.len(),
        plan.init
    );

    // Compiling the instrumented component (or loading it from the cache)
    // takes one thread: the input's function bodies are validated, and the
    // instrumented component checked against the plan's interface, on
    // others meanwhile. Nothing runs before all three are done.
    runtime.prepare_for(&instrumented.plan)?;
    let start = Instant::now();
    let (valid, checked, compiled) = std::thread::scope(|scope| {
        let valid = scope.spawn(|| bodies.validate());
        let checked = scope.spawn(|| instrument::check(&instrumented));
        let compiled = runtime.precompile(&instrumented.component);
        let join = |result: std::thread::Result<Result<()>>| {
            result.unwrap_or_else(|_| Err(anyhow::anyhow!("a check of the input panicked")))
        };
        (join(valid.join()), join(checked.join()), compiled)
    });
    valid?;
    checked?;
    compiled.context("failed to instantiate the component")?;
    log_compiled(&runtime, start.elapsed());

    let snapshot = snapshot::take(
        &mut runtime,
        &instrumented.component,
        plan,
        |step, runtime| log_step(plan, step, runtime),
    )
    .await?;
    // The guest's memory goes before the rewrite, which needs room for the
    // output: the two are not held at once.
    drop(runtime);

    let start = Instant::now();
    // The output goes into the instrumented component's buffer, about its
    // size and already in memory.
    let Instrumented { component, plan } = instrumented;
    let output = crate::component::rewrite::apply_parsed(&parsed, &plan, &snapshot, component)?;
    log::info!(
        "rewrote in {:.1?}: {} bytes in, {} bytes out",
        start.elapsed(),
        input.len(),
        output.len()
    );
    Ok(output)
}

/// Logs how the instrumented component was compiled (`-v`).
fn log_compiled(runtime: &WasmtimeRuntime, took: std::time::Duration) {
    if let Some(reason) = runtime.winch_fallback() {
        log::info!("Winch cannot compile the component ({reason}); compiled it with Cranelift");
    }
    log::info!(
        "compiled ({:?}{}) in {took:.1?}, validating the input's code meanwhile",
        runtime.compiler().unwrap_or_default(),
        match runtime.cache_hit() {
            Some(true) => ", from the compilation cache",
            Some(false) => ", stored in the compilation cache",
            None => "",
        },
    );
}

/// Logs what a step of [`snapshot::take`] did (`-v`, `-vv`).
fn log_step(plan: &crate::Plan, step: Step<'_>, runtime: &WasmtimeRuntime) {
    match step {
        Step::Instantiated(took) => log::info!("instantiated in {took:.1?}"),
        Step::InitReturned { took, ok } => {
            log_audit(runtime.audit());
            if !ok {
                return;
            }
            log::info!("ran `{}` in {took:.1?}", plan.init);
            if !runtime.init_results().is_empty() {
                log::info!(
                    "`{}` returned {}",
                    plan.init,
                    runtime.init_results().join(", ")
                );
            }
        }
        Step::Read(took, snapshot) => {
            for (accessor, value) in plan.accessors.iter().zip(&snapshot.values) {
                let what = match (accessor.state, value) {
                    (State::Memory { index, .. }, Value::Memory(image)) => format!(
                        "memory {index}: {} bytes, {} in {} non-zero runs",
                        image.len(),
                        image.stored_len(),
                        image.runs().len()
                    ),
                    (State::Global { index, .. }, Value::Global(v)) => {
                        format!("global {index}: {v:?}")
                    }
                    (State::Probe { probe, .. }, Value::Global(v)) => {
                        format!("probe {probe:?}: {v:?}")
                    }
                    (State::Table { index }, Value::Memory(image)) => {
                        let slots = RefId::slots(image);
                        let null = slots.iter().filter(|s| **s == RefId::Null).count();
                        format!("table {index}: {} slots, {null} null", slots.len())
                    }
                    (State::RefGlobal { index }, Value::Memory(image)) => {
                        format!("reference-typed global {index}: {:?}", RefId::slots(image))
                    }
                    _ => continue,
                };
                log::debug!(
                    "core instance {} (module {}) {what}",
                    accessor.instance,
                    accessor.module
                );
            }
            log::info!("read the snapshot in {took:.1?}");
        }
    }
}

/// Reports what init took from the host through WASI: a warning for
/// randomness and clocks (their values are frozen into the output), the rest
/// with `-v`.
fn log_audit(audit: &wasi::Audit) {
    for entry in audit.summary() {
        if entry.category.is_frozen() && !audit.reproducible() {
            log::warn!("{}", entry.message);
        } else {
            log::info!("{}", entry.message);
        }
    }
    if !audit.open_resources().is_empty() {
        log::warn!(
            "init left WASI resources open (allowed by `--allow-open-resources`): {}; the \
             guest's handles to them dangle in instances started from the output",
            wasi::describe_resources(audit.open_resources())
        );
    }
}

/// Reads a binary or text component from `path` (`-` or absent: stdin).
pub(crate) fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    let (bytes, name) = match path {
        Some(path) if path != Path::new("-") => (
            std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))?,
            path.display().to_string(),
        ),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("failed to read <stdin>")?;
            (bytes, "<stdin>".to_string())
        }
    };
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes);
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        bail!("`{name}` is neither a WebAssembly binary (no `\\0asm` header) nor WebAssembly text");
    };
    wat::parse_str(text).map_err(|mut e| {
        e.set_path(Path::new(&name));
        anyhow::anyhow!(
            "`{name}` is neither a WebAssembly binary nor valid WebAssembly text: {}",
            one_line(&e.to_string())
        )
    })
}

/// Folds a multi-line diagnostic (as `wat` prints them) into one line.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim);
    let first = lines.next().unwrap_or_default().to_string();
    match lines.find_map(|l| l.strip_prefix("--> ")) {
        Some(location) => format!("{first} (at {location})"),
        None => first,
    }
}

/// Writes the output atomically (a temporary file renamed into place), so
/// `-o` may name the input and a failure leaves any existing file intact.
pub(crate) fn write_output(path: Option<&Path>, wasm: &[u8], wat: bool) -> Result<()> {
    if wat {
        let text = wasmprinter::print_bytes(wasm).context("failed to print the output as text")?;
        write_bytes(path, text.as_bytes(), true)
    } else {
        write_bytes(path, wasm, false)
    }
}

/// Writes `bytes` to `path` atomically, or to stdout (refusing binary
/// output to a terminal).
pub(crate) fn write_bytes(path: Option<&Path>, bytes: &[u8], text: bool) -> Result<()> {
    write_with(path, text, |out| out.write_all(bytes))
}

/// Like [`write_bytes`], with what `write` writes, as it writes it (buffered).
pub(crate) fn write_with(
    path: Option<&Path>,
    text: bool,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    match path {
        Some(path) => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let mut file = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("failed to create a file in `{}`", dir.display()))?;
            let mut buffered = std::io::BufWriter::new(file.as_file_mut());
            write(&mut buffered)
                .and_then(|()| buffered.flush())
                .with_context(|| format!("failed to write `{}`", path.display()))?;
            drop(buffered);
            if let Some(permissions) = output_permissions(path) {
                file.as_file()
                    .set_permissions(permissions)
                    .with_context(|| format!("failed to write `{}`", path.display()))?;
            }
            file.persist(path)
                .with_context(|| format!("failed to write `{}`", path.display()))?;
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            if !text && stdout.is_terminal() {
                bail!(
                    "cannot print binary output to a terminal; pass `-o FILE` (or `-t` to print \
                     WebAssembly as text)"
                );
            }
            let mut buffered = std::io::BufWriter::new(&mut stdout);
            write(&mut buffered)
                .and_then(|()| buffered.flush())
                .context("failed to write to stdout")?;
        }
    }
    Ok(())
}

/// The permissions the output gets: those of the file it replaces, else
/// rw-r--r-- on Unix (a temporary file starts out private).
fn output_permissions(path: &Path) -> Option<std::fs::Permissions> {
    if let Ok(existing) = std::fs::metadata(path) {
        return Some(existing.permissions());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::Permissions::from_mode(0o644))
    }
    #[cfg(not(unix))]
    None
}
