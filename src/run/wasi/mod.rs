//! WASI during init, opt-in: what the init function may see of the host
//! ([`WasiOptions`]), what it used ([`Audit`]), and the check that it left
//! nothing open that a snapshot cannot carry.
//!
//! Without WASI every import traps when called. With it, init gets WASI 0.2 and 0.3
//! from `wasmtime-wasi`, with nothing of the host visible unless granted: no
//! environment variables, no directories, an empty stdin, and stdout and
//! stderr discarded (counted). Randomness and clocks are the host's; the
//! [`Audit`] says when init read them, since whatever it got is frozen into
//! every instance started from the snapshot.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWrite;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use wasmtime::component::ResourceTable;

use crate::run::limits::MemoryLimiter;
use crate::run::reproducible::{Fixed, Reproducible};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What the init function may use of the host through WASI 0.2 and 0.3. Nothing of
/// the host is visible unless granted here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasiOptions {
    /// Host directories preopened for the guest (read-write).
    pub dirs: Vec<PreopenDir>,
    /// Environment variables, after the inherited ones (a name given here
    /// replaces an inherited variable of the same name).
    pub env: Vec<(String, String)>,
    /// Pass the host's whole environment (variables whose name or value is
    /// not UTF-8 are skipped).
    pub inherit_env: bool,
    /// Show init's stdout and stderr on the host's (stdin stays empty). By
    /// default they are discarded, and only counted.
    pub inherit_stdio: bool,
    /// With `inherit_stdio`, show init's stdout on the host's stderr (for
    /// when the host's stdout carries the output component).
    pub stdout_to_stderr: bool,
    /// Accept WASI resources that init leaves open (files, streams,
    /// directory handles): the snapshot is taken anyway, and the guest's
    /// handles to them dangle in instances started from it. By default such
    /// resources are an error.
    pub allow_open_resources: bool,
    /// Fix everything init can observe that would vary between runs or
    /// machines (randomness, clocks, sleeps, directory order and file
    /// times), so that the output is the same every run: see
    /// [`Reproducible`]. `None`: the host's randomness and clocks.
    pub reproducible: Option<Reproducible>,
}

/// A host directory made visible to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreopenDir {
    /// The directory on the host.
    pub host: PathBuf,
    /// The name the guest sees it under.
    pub guest: String,
}

impl PreopenDir {
    /// Parses `HOST[::GUEST]`, as `wasmtime run --dir` does: without
    /// `::GUEST` the guest sees the directory under the name `HOST`.
    pub fn parse(spec: &str) -> Result<PreopenDir> {
        let (host, guest) = match spec.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (spec, spec),
        };
        if host.is_empty() || guest.is_empty() {
            bail!("directory `{spec}` is not of the form `HOST_DIR[::GUEST_DIR]`");
        }
        Ok(PreopenDir {
            host: PathBuf::from(host),
            guest: guest.to_string(),
        })
    }
}

#[cfg(feature = "cli")]
/// Parses `NAME=VALUE`, or `NAME` to pass the host's value of `NAME` (none
/// when the host has no such variable, as `wasmtime run --env` does).
pub fn parse_env(spec: &str) -> Result<Option<(String, String)>> {
    let (name, value) = match spec.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (spec, None),
    };
    if name.is_empty() {
        bail!("environment variable `{spec}` is not of the form `NAME[=VALUE]`");
    }
    let value = match value {
        Some(value) => value,
        None => match std::env::var(name) {
            Ok(value) => value,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some((name.to_string(), value)))
}

impl WasiOptions {
    /// The environment the guest sees.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        if self.inherit_env {
            env.extend(
                std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            );
        }
        for (name, value) in &self.env {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.clone()));
        }
        env
    }

    fn build(
        &self,
        stdout: &Arc<AtomicU64>,
        stderr: &Arc<AtomicU64>,
        stderr_tail: &Arc<Mutex<Vec<u8>>>,
        fixed: &mut Fixed,
    ) -> Result<WasiCtx> {
        let mut builder = WasiCtxBuilder::new();
        if let Some(reproducible) = &self.reproducible {
            fixed.monotonic = reproducible.configure(&mut builder);
            fixed.wall_clock = reproducible.wall_clock;
        }
        builder.envs(&self.environment());
        for dir in &self.dirs {
            if !dir.host.is_dir() {
                bail!(
                    "cannot preopen `{}`: not a directory on the host",
                    dir.host.display()
                );
            }
            builder
                .preopened_dir(&dir.host, &dir.guest, FsPerms::ReadWrite)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot preopen `{}`", dir.host.display()))?;
        }
        let (out, err) = match (self.inherit_stdio, self.stdout_to_stderr) {
            (false, _) => (Sink::Discard, Sink::Discard),
            (true, false) => (Sink::Stdout, Sink::Stderr),
            (true, true) => (Sink::Stderr, Sink::Stderr),
        };
        builder.stdout(CountingOutput {
            sink: out,
            bytes: stdout.clone(),
            tail: None,
        });
        builder.stderr(CountingOutput {
            sink: err,
            bytes: stderr.clone(),
            tail: (!self.inherit_stdio).then(|| stderr_tail.clone()),
        });
        Ok(builder.build())
    }
}

/// The store data of the Wasmtime runner: the WASI context (empty and
/// unused unless WASI is enabled) and the table of host resources.
pub(crate) struct Host {
    ctx: WasiCtx,
    table: ResourceTable,
    stdout: Arc<AtomicU64>,
    stderr: Arc<AtomicU64>,
    /// The last bytes written to stderr, when it is discarded.
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    /// Counts linear memory against `--max-memory`.
    pub(crate) limiter: MemoryLimiter,
    /// The fixed clocks and filesystem views of a reproducible run.
    pub(crate) fixed: Fixed,
}

/// How much of a discarded stderr is kept, to explain a failing init.
const STDERR_TAIL: usize = 4096;

impl Host {
    pub(crate) fn new() -> Host {
        Host {
            ctx: WasiCtx::default(),
            table: ResourceTable::new(),
            stdout: Arc::default(),
            stderr: Arc::default(),
            stderr_tail: Arc::default(),
            limiter: MemoryLimiter::default(),
            fixed: Fixed::default(),
        }
    }

    pub(crate) fn with_wasi(options: &WasiOptions) -> Result<Host> {
        let (stdout, stderr, stderr_tail) = (Arc::default(), Arc::default(), Arc::default());
        let mut fixed = Fixed::default();
        Ok(Host {
            ctx: options.build(&stdout, &stderr, &stderr_tail, &mut fixed)?,
            table: ResourceTable::new(),
            stdout,
            stderr,
            stderr_tail,
            limiter: MemoryLimiter::default(),
            fixed,
        })
    }

    /// The last lines the guest wrote to a discarded stderr (two, so that a
    /// Rust panic shows both where and what; Rust's note on backtraces
    /// skipped), joined into one.
    pub(crate) fn last_stderr_lines(&self) -> Option<String> {
        let tail = self.stderr_tail.lock().ok()?;
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        let last = lines[lines.len().saturating_sub(2)..].join(" ");
        (!last.is_empty()).then(|| last.chars().take(400).collect())
    }

    /// Bytes the guest wrote to stdout and stderr so far.
    pub(crate) fn output_bytes(&self) -> (u64, u64) {
        (
            self.stdout.load(Ordering::SeqCst),
            self.stderr.load(Ordering::SeqCst),
        )
    }

    /// The host resources the guest holds, counted by kind.
    pub(crate) fn open_resources(&mut self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for entry in self.table.iter_mut() {
            *kinds.entry(resource_kind(entry).to_string()).or_default() += 1;
        }
        kinds
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn resource_kind(entry: &mut (dyn Any + Send)) -> &'static str {
    use wasmtime_wasi::filesystem::Descriptor;
    use wasmtime_wasi::p2;
    let entry: &(dyn Any + Send) = entry;
    if let Some(descriptor) = entry.downcast_ref::<Descriptor>() {
        return match descriptor {
            Descriptor::File(_) => "open file",
            Descriptor::Dir(_) => "directory handle (a preopen, or an opened directory)",
        };
    }
    if entry.is::<p2::DynInputStream>() {
        "input stream (stdin, or a file read through a stream)"
    } else if entry.is::<p2::DynOutputStream>() {
        "output stream (stdout, stderr, or a file written through a stream)"
    } else if entry.is::<p2::DynPollable>() {
        "pollable"
    } else if entry.is::<p2::ReaddirIterator>() {
        "directory-entry stream"
    } else if entry.is::<p2::IoError>() {
        "wasi:io error"
    } else if entry.is::<p2::TcpSocket>()
        || entry.is::<p2::UdpSocket>()
        || entry.is::<p2::Network>()
    {
        "socket or network handle"
    } else {
        "other host resource"
    }
}

/// The error for resources left open after init.
pub(crate) fn open_resources_error(open: &BTreeMap<String, usize>) -> anyhow::Error {
    anyhow::anyhow!(
        "init left WASI resources open, which a snapshot cannot carry (the guest's handles to \
         them would dangle in every instance started from it): {}; release them before init \
         returns (drop open files, streams and directory handles; with wasi-libc or Rust std, \
         call `__wasilibc_reset_preopens()` to close the preopened directories it caches), or \
         pass `--allow-open-resources` (`WasiOptions::allow_open_resources`) to snapshot anyway",
        describe_resources(open)
    )
}

/// `2 open files, 1 pollable`.
pub fn describe_resources(open: &BTreeMap<String, usize>) -> String {
    open.iter()
        .map(|(kind, n)| format!("{n} × {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the init function took from the host through WASI: every WASI host
/// function it called (with the paths it named), the bytes it wrote to
/// stdout and stderr, and what was granted to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    calls: BTreeMap<String, Call>,
    stdout_bytes: u64,
    stderr_bytes: u64,
    environment: Vec<String>,
    preopens: Vec<String>,
    stdio_shown: bool,
    open_resources: BTreeMap<String, usize>,
    /// Under `--reproducible`: how far init advanced the monotonic clock
    /// (ns), by reading it and sleeping.
    fixed_monotonic: Option<u64>,
}

/// The calls of one WASI host function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// How many times init called it.
    pub count: u64,
    /// The paths it was given (filesystem functions; at most
    /// [`Call::MAX_PATHS`] distinct ones), as Rust debug strings.
    pub paths: BTreeSet<String>,
}

impl Call {
    /// How many distinct paths a [`Call`] keeps.
    pub const MAX_PATHS: usize = 32;
}

/// A kind of WASI use, as the audit summary groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// `wasi:random`.
    Random,
    /// `wasi:clocks`.
    Clocks,
    /// `wasi:cli/environment` (variables, arguments, working directory).
    Environment,
    /// `wasi:filesystem`.
    Filesystem,
    /// `wasi:cli` stdin, stdout, stderr and terminals.
    Stdio,
    /// `wasi:io` streams and polls.
    Io,
    /// `wasi:cli/exit`.
    Exit,
    /// `wasi:sockets`.
    Sockets,
    /// Anything else.
    Other,
}

impl Category {
    /// Whether the values init got are now the same in every instance
    /// started from the snapshot, where a fresh instance would have got new
    /// ones: randomness and clocks.
    pub fn is_frozen(self) -> bool {
        matches!(self, Category::Random | Category::Clocks)
    }

    /// The category of a function named `wasi:PKG/IFACE#FUNC`.
    pub fn of(func: &str) -> Category {
        let interface = func.split('#').next().unwrap_or_default();
        match interface {
            "wasi:cli/environment" => Category::Environment,
            "wasi:cli/exit" => Category::Exit,
            _ if interface.starts_with("wasi:random/") => Category::Random,
            _ if interface.starts_with("wasi:clocks/") => Category::Clocks,
            _ if interface.starts_with("wasi:filesystem/") => Category::Filesystem,
            _ if interface.starts_with("wasi:cli/") => Category::Stdio,
            _ if interface.starts_with("wasi:io/") => Category::Io,
            _ if interface.starts_with("wasi:sockets/") => Category::Sockets,
            _ => Category::Other,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Category::Random => "randomness",
            Category::Clocks => "clocks",
            Category::Environment => "the environment",
            Category::Filesystem => "the filesystem",
            Category::Stdio => "stdio",
            Category::Io => "wasi:io streams and polls",
            Category::Exit => "exit",
            Category::Sockets => "sockets",
            Category::Other => "other WASI functions",
        })
    }
}

/// One line of an audit summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// What kind of use it reports.
    pub category: Category,
    /// The report.
    pub message: String,
}

impl Audit {
    /// Every WASI host function init called, as `wasi:PKG/IFACE#FUNC`
    /// (resource methods as `wasi:PKG/IFACE#[method]RESOURCE.FUNC`).
    pub fn calls(&self) -> impl Iterator<Item = (&str, &Call)> {
        self.calls.iter().map(|(name, call)| (name.as_str(), call))
    }

    /// How many times init called `func` (named as in [`Audit::calls`]).
    pub fn count(&self, func: &str) -> u64 {
        self.calls.get(func).map_or(0, |c| c.count)
    }

    /// Whether init called any WASI function of `category`.
    pub fn used(&self, category: Category) -> bool {
        self.calls.keys().any(|f| Category::of(f) == category)
    }

    /// Whether init called no WASI function at all.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Bytes init wrote to its stdout.
    pub fn stdout_bytes(&self) -> u64 {
        self.stdout_bytes
    }

    /// Bytes init wrote to its stderr.
    pub fn stderr_bytes(&self) -> u64 {
        self.stderr_bytes
    }

    /// Host resources init left open, by kind (only when they were allowed;
    /// otherwise init failed).
    pub fn open_resources(&self) -> &BTreeMap<String, usize> {
        &self.open_resources
    }

    pub(crate) fn set_open_resources(&mut self, open: BTreeMap<String, usize>) {
        self.open_resources = open;
    }

    /// Whether init ran under `--reproducible` ([`WasiOptions::reproducible`]).
    pub fn reproducible(&self) -> bool {
        self.fixed_monotonic.is_some()
    }

    /// A summary, one entry per category of use; randomness and clocks come
    /// first (see [`Category::is_frozen`]).
    pub fn summary(&self) -> Vec<AuditEntry> {
        let mut by_category: BTreeMap<Category, Vec<(&str, &Call)>> = BTreeMap::new();
        for (name, call) in &self.calls {
            by_category
                .entry(Category::of(name))
                .or_default()
                .push((name, call));
        }
        let mut entries = Vec::new();
        for (category, calls) in by_category {
            let mut message = format!("init used {category}: {}", list_calls(&calls));
            match category {
                Category::Random if self.fixed_monotonic.is_some() => message.push_str(
                    "; from the seeded generator of `--reproducible`: the same values every run, \
                     frozen into every instance started from the snapshot",
                ),
                Category::Clocks if self.fixed_monotonic.is_some() => {
                    let _ = write!(
                        message,
                        "; fixed by `--reproducible`: the wall clock read the fixed time, the \
                         monotonic clock went from 0 to {} ns",
                        self.fixed_monotonic.unwrap_or_default()
                    );
                }
                Category::Random => message.push_str(
                    "; the random values it got are now frozen into every instance started from \
                     the snapshot (hash-map seeds, ids, keys), and differ from run to run: \
                     re-seed after startup where that matters, and pass `--reproducible` for \
                     the same output every run",
                ),
                Category::Clocks => message.push_str(
                    "; the times it saw are now frozen into every instance started from the \
                     snapshot, and differ from run to run: read the clock again after startup \
                     where that matters, and pass `--reproducible` for the same output every run",
                ),
                Category::Environment => {
                    if self.environment.is_empty() {
                        message.push_str("; no variables were granted");
                    } else {
                        let _ = write!(message, "; granted: {}", self.environment.join(", "));
                    }
                }
                Category::Filesystem => {
                    if self.preopens.is_empty() {
                        message.push_str("; no directories were granted");
                    } else {
                        let _ = write!(message, "; preopened: {}", self.preopens.join(", "));
                    }
                }
                Category::Stdio => {
                    let _ = write!(
                        message,
                        "; wrote {} bytes to stdout and {} to stderr ({})",
                        self.stdout_bytes,
                        self.stderr_bytes,
                        if self.stdio_shown {
                            "shown"
                        } else {
                            "discarded"
                        }
                    );
                }
                _ => {}
            }
            entries.push(AuditEntry { category, message });
        }
        entries
    }
}

fn list_calls(calls: &[(&str, &Call)]) -> String {
    calls
        .iter()
        .map(|(name, call)| {
            let mut s = format!(
                "{name} ({} call{}",
                call.count,
                if call.count == 1 { "" } else { "s" }
            );
            if !call.paths.is_empty() {
                let paths: Vec<&str> = call.paths.iter().map(String::as_str).collect();
                let _ = write!(s, ": {}", paths.join(", "));
            }
            s.push(')');
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records the WASI host calls of one init run. Every WASI 0.2 and 0.3 host function
/// of `wasmtime-wasi` opens a `tracing` span named `wit-bindgen import`
/// (fields `module` and `function`) and emits a `call` event with its
/// arguments inside it; this subscriber counts the spans and keeps the
/// `path` arguments.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<RecorderState>>);

#[derive(Default)]
struct RecorderState {
    next_id: u64,
    /// Open spans: the function each is for, and how many handles it has.
    spans: HashMap<u64, (String, usize)>,
    /// Entered spans, innermost last.
    stack: Vec<u64>,
    calls: BTreeMap<String, Call>,
}

const SPAN_NAME: &str = "wit-bindgen import";

impl Recorder {
    /// The audit of what was recorded, with what the host granted and the
    /// guest wrote.
    pub(crate) fn audit(&self, options: &WasiOptions, host: &Host) -> Audit {
        let calls = self.0.lock().map(|s| s.calls.clone()).unwrap_or_default();
        let (stdout_bytes, stderr_bytes) = host.output_bytes();
        Audit {
            calls,
            stdout_bytes,
            stderr_bytes,
            environment: options.environment().into_iter().map(|(k, _)| k).collect(),
            preopens: options
                .dirs
                .iter()
                .map(|d| format!("{} (host `{}`)", d.guest, d.host.display()))
                .collect(),
            stdio_shown: options.inherit_stdio,
            open_resources: BTreeMap::new(),
            fixed_monotonic: options
                .reproducible
                .as_ref()
                .map(|_| host.fixed.monotonic.elapsed()),
        }
    }
}

/// `wasmtime-wasi` names the interface only (`environment`); the package
/// follows from it.
fn qualify(interface: &str) -> String {
    let package = match interface {
        "environment" | "exit" | "run" | "stdin" | "stdout" | "stderr" | "terminal-input"
        | "terminal-output" | "terminal-stdin" | "terminal-stdout" | "terminal-stderr" => "cli",
        "wall-clock" | "monotonic-clock" | "system-clock" | "timezone" => "clocks",
        "random" | "insecure" | "insecure-seed" => "random",
        "types" | "preopens" => "filesystem",
        "streams" | "poll" | "error" => "io",
        "network" | "instance-network" | "tcp" | "udp" | "tcp-create-socket"
        | "udp-create-socket" | "ip-name-lookup" => "sockets",
        _ => return interface.to_string(),
    };
    format!("wasi:{package}/{interface}")
}

#[derive(Default)]
struct SpanFields {
    module: Option<String>,
    function: Option<String>,
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "module" => self.module = Some(value.to_string()),
            "function" => self.function = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, format!("{value:?}").trim_matches('"'));
    }
}

struct PathFields<'a>(&'a mut BTreeSet<String>);

impl Visit for PathFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "path" | "old_path" | "new_path")
            && self.0.len() < Call::MAX_PATHS
        {
            self.0.insert(format!("{value:?}"));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if metadata.is_span() {
            metadata.name() == SPAN_NAME
        } else {
            metadata.target().starts_with("wasmtime_wasi")
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = SpanFields::default();
        span.record(&mut fields);
        let name = format!(
            "{}#{}",
            qualify(fields.module.as_deref().unwrap_or("<unknown>")),
            fields.function.as_deref().unwrap_or("<unknown>")
        );
        let Ok(mut state) = self.0.lock() else {
            return Id::from_u64(u64::MAX);
        };
        state.calls.entry(name.clone()).or_default().count += 1;
        state.next_id += 1;
        let id = state.next_id;
        state.spans.insert(id, (name, 1));
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        let state = &mut *state;
        let Some(name) = state
            .stack
            .last()
            .and_then(|id| state.spans.get(id))
            .map(|(name, _)| name)
        else {
            return;
        };
        if let Some(call) = state.calls.get_mut(name) {
            event.record(&mut PathFields(&mut call.paths));
        }
    }

    fn enter(&self, span: &Id) {
        if let Ok(mut state) = self.0.lock() {
            state.stack.push(span.into_u64());
        }
    }

    fn exit(&self, span: &Id) {
        if let Ok(mut state) = self.0.lock()
            && let Some(at) = state.stack.iter().rposition(|id| *id == span.into_u64())
        {
            state.stack.remove(at);
        }
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Ok(mut state) = self.0.lock()
            && let Some((_, refs)) = state.spans.get_mut(&span.into_u64())
        {
            *refs += 1;
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let Ok(mut state) = self.0.lock() else {
            return false;
        };
        let id = span.into_u64();
        let Some((_, refs)) = state.spans.get_mut(&id) else {
            return false;
        };
        *refs -= 1;
        if *refs == 0 {
            state.spans.remove(&id);
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Copy)]
enum Sink {
    Discard,
    Stdout,
    Stderr,
}

/// The guest's stdout or stderr: counted, then discarded (keeping the last
/// bytes in `tail`, if any) or shown.
struct CountingOutput {
    sink: Sink,
    bytes: Arc<AtomicU64>,
    tail: Option<Arc<Mutex<Vec<u8>>>>,
}

impl IsTerminal for CountingOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CountingOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        let inner: Pin<Box<dyn AsyncWrite + Send + Sync>> = match self.sink {
            Sink::Discard => Box::pin(tokio::io::sink()),
            Sink::Stdout => Box::pin(tokio::io::stdout()),
            Sink::Stderr => Box::pin(tokio::io::stderr()),
        };
        Box::new(CountingWriter {
            inner,
            bytes: self.bytes.clone(),
            tail: self.tail.clone(),
        })
    }
}

struct CountingWriter {
    inner: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    bytes: Arc<AtomicU64>,
    tail: Option<Arc<Mutex<Vec<u8>>>>,
}

impl AsyncWrite for CountingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = self.inner.as_mut().poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.bytes.fetch_add(*n as u64, Ordering::SeqCst);
            if let Some(Ok(mut tail)) = self.tail.as_ref().map(|t| t.lock()) {
                tail.extend_from_slice(&buf[..*n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL);
                tail.drain(..excess);
            }
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dirs() {
        assert_eq!(
            PreopenDir::parse("a/b::/data").unwrap(),
            PreopenDir {
                host: "a/b".into(),
                guest: "/data".into()
            }
        );
        assert_eq!(PreopenDir::parse("here").unwrap().guest, "here");
        assert!(PreopenDir::parse("::/x").is_err());
        assert!(PreopenDir::parse("x::").is_err());
    }

    #[test]
    #[cfg(feature = "cli")]
    fn parses_env() {
        assert_eq!(
            parse_env("A=b=c").unwrap(),
            Some(("A".to_string(), "b=c".to_string()))
        );
        assert_eq!(
            parse_env("A=").unwrap(),
            Some(("A".to_string(), String::new()))
        );
        assert!(parse_env("=x").is_err());
        assert_eq!(
            parse_env("COMPONENT_INIT_SURELY_UNSET_VARIABLE").unwrap(),
            None
        );
    }

    #[test]
    fn explicit_env_replaces_inherited() {
        let options = WasiOptions {
            env: vec![("X".into(), "1".into()), ("X".into(), "2".into())],
            ..WasiOptions::default()
        };
        assert_eq!(options.environment(), [("X".to_string(), "2".to_string())]);
    }

    #[test]
    fn categories() {
        assert_eq!(
            Category::of("wasi:random/insecure-seed#insecure-seed"),
            Category::Random
        );
        assert_eq!(
            Category::of("wasi:cli/environment#get-environment"),
            Category::Environment
        );
        assert_eq!(Category::of("wasi:cli/stdout#get-stdout"), Category::Stdio);
        assert_eq!(qualify("types"), "wasi:filesystem/types");
        assert_eq!(qualify("custom"), "custom");
    }
}
