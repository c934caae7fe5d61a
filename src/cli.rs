//! The command line, shaped as a wasm-tools subcommand: [`Opts`] has `run`
//! and `general_opts`, which is all wasm-tools needs to mount it as
//! `wasm-tools component-init`.

use anyhow::{Context, Result, bail};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use crate::plan::{State, Value};
use crate::runtime::Runtime;

mod split;
use crate::{InitFunc, InstrumentOptions, WasmtimeRuntime, instrument, snapshot, wasmtime_runtime};

/// Pre-initialize a WebAssembly component.
///
/// Runs the component's init function once, then writes a new component
/// whose memories and mutable globals already hold the state init left
/// behind. Start functions of the component's modules and the init export
/// are removed: they already ran.
#[derive(clap::Parser)]
#[clap(after_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Opts {
    /// Run one phase of the pipeline by itself (for other runtimes).
    #[clap(subcommand)]
    command: Option<split::Command>,

    #[clap(flatten)]
    io: wasm_tools::InputOutput,

    /// Output the text format of WebAssembly instead of the binary format.
    #[clap(short = 't', long)]
    wat: bool,

    /// The exported function to run as init: `NAME`, `NAME()` or
    /// `INTERFACE#NAME` (for example `my:pkg/setup#init`).
    ///
    /// Defaults to `component-init`, or `wizer-initialize` when only that is
    /// exported. The function must take no parameters; its results are
    /// ignored.
    #[clap(long, value_name = "NAME")]
    init_func: Option<String>,

    /// Keep the init function's export in the output (by default a top-level
    /// init export is removed; one inside an exported interface always stays).
    #[clap(long)]
    keep_init_func: bool,
}

const AFTER_HELP: &str = "\
Examples:

    # Pre-initialize app.wasm, running its `component-init` export
    component-init app.wasm -o app.init.wasm

    # Run another export, from an exported interface, and keep it
    component-init app.wasm --init-func 'my:app/setup#init' --keep-init-func -o out.wasm

    # Print the result as WebAssembly text
    component-init app.wat -t

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
        let input = read_input(self.io.input_path())?;
        let options = InstrumentOptions {
            init_func: self.init_func.as_deref().map(InitFunc::parse).transpose()?,
            keep_init_func: self.keep_init_func,
        };
        let output = wasmtime_runtime::block_on(pre_initialize(&input, &options))??;
        write_output(self.io.output_path(), &output, self.wat)
    }
}

/// The pipeline, phase by phase, logging what each did (`-v`).
async fn pre_initialize(input: &[u8], options: &InstrumentOptions) -> Result<Vec<u8>> {
    let start = Instant::now();
    let instrumented = instrument(input, options)?;
    let plan = &instrumented.plan;
    log::info!(
        "instrumented in {:.1?}: {} accessors, init function `{}`",
        start.elapsed(),
        plan.accessors.len(),
        plan.init
    );

    let start = Instant::now();
    let mut runtime = WasmtimeRuntime::new()?;
    runtime
        .instantiate(&instrumented.component)
        .await
        .context("failed to instantiate the component")?;
    snapshot::check_instantiation(&mut runtime, plan).await?;
    log::info!("compiled and instantiated in {:.1?}", start.elapsed());

    let start = Instant::now();
    runtime
        .call_init(&plan.init)
        .await
        .with_context(|| format!("init function `{}` failed", plan.init))?;
    log::info!("ran `{}` in {:.1?}", plan.init, start.elapsed());

    let start = Instant::now();
    let snapshot = snapshot::read(&mut runtime, plan).await?;
    for (accessor, value) in plan.accessors.iter().zip(&snapshot.values) {
        let what = match (accessor.state, value) {
            (State::Memory { index, .. }, Value::Memory(bytes)) => {
                format!("memory {index}: {} bytes", bytes.len())
            }
            (State::Global { index, .. }, Value::Global(v)) => format!("global {index}: {v:?}"),
            (State::Probe { probe, .. }, Value::Global(v)) => format!("probe {probe:?}: {v:?}"),
            _ => continue,
        };
        log::debug!(
            "core instance {} (module {}) {what}",
            accessor.instance,
            accessor.module
        );
    }
    log::info!("read the snapshot in {:.1?}", start.elapsed());

    let start = Instant::now();
    let output = plan.apply(input, &snapshot)?;
    log::info!(
        "rewrote in {:.1?}: {} bytes in, {} bytes out",
        start.elapsed(),
        input.len(),
        output.len()
    );
    Ok(output)
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
    match path {
        Some(path) => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let mut file = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("failed to create a file in `{}`", dir.display()))?;
            file.write_all(bytes)
                .with_context(|| format!("failed to write `{}`", path.display()))?;
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
            stdout
                .write_all(bytes)
                .context("failed to write to stdout")?;
            stdout.flush().context("failed to write to stdout")?;
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
