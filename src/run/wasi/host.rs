//! The store data of the Wasmtime runner ([`Host`]), and the WASI context
//! built from [`WasiOptions`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::WasiOptions;
use super::resources::{self, resource_kind};
use super::stdio::{CountingOutput, Sink};
use crate::run::limits::MemoryLimiter;
use crate::run::reproducible::Fixed;

impl WasiOptions {
    fn build(
        &self,
        stdout: &Arc<AtomicU64>,
        stderr: &Arc<AtomicU64>,
        stderr_tail: &Arc<Mutex<Vec<u8>>>,
        fixed: &mut Fixed,
    ) -> Result<WasiCtxBuilder> {
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
        if self.inherit_stdin {
            builder.inherit_stdin();
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
        Ok(builder)
    }
}

/// The store data of the Wasmtime runner: the WASI context (empty and
/// unused unless WASI is enabled) and the table of host resources.
pub(crate) struct Host {
    ctx: WasiCtx,
    /// WASI preview1's context, for a core module (empty and unused
    /// otherwise).
    p1: WasiP1Ctx,
    table: ResourceTable,
    stdout: Arc<AtomicU64>,
    stderr: Arc<AtomicU64>,
    /// The last bytes written to stderr, when it is discarded.
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    /// Counts linear memory against `--max-memory`.
    pub(crate) limiter: MemoryLimiter,
    /// Entries to and exits from wasm and host code, counted by a call hook
    /// while the tasks init left run (see `run::wasmtime::idle`).
    pub(crate) progress: u64,
    /// The fixed clocks and filesystem views of a reproducible run.
    pub(crate) fixed: Fixed,
}

impl Host {
    pub(crate) fn new() -> Host {
        Host {
            ctx: WasiCtx::default(),
            p1: WasiCtxBuilder::new().build_p1(),
            table: ResourceTable::new(),
            stdout: Arc::default(),
            stderr: Arc::default(),
            stderr_tail: Arc::default(),
            limiter: MemoryLimiter::default(),
            progress: 0,
            fixed: Fixed::default(),
        }
    }

    /// A host providing WASI 0.2 and 0.3 to a component, with what
    /// `options` grants.
    pub(crate) fn with_wasi(options: &WasiOptions) -> Result<Host> {
        Host::granting(options, |host, builder| host.ctx = builder.build())
    }

    /// A host providing WASI preview1 (`wasi_snapshot_preview1`) to a core
    /// module, with what `options` grants.
    pub(crate) fn with_wasi_p1(options: &WasiOptions) -> Result<Host> {
        Host::granting(options, |host, builder| host.p1 = builder.build_p1())
    }

    /// A host whose WASI context `set` builds from what `options` grants.
    fn granting(
        options: &WasiOptions,
        set: impl FnOnce(&mut Host, &mut WasiCtxBuilder),
    ) -> Result<Host> {
        let mut host = Host::new();
        let mut builder = options.build(
            &host.stdout,
            &host.stderr,
            &host.stderr_tail,
            &mut host.fixed,
        )?;
        set(&mut host, &mut builder);
        Ok(host)
    }

    /// WASI preview1's context (for `wasmtime_wasi::p1::add_to_linker_async`).
    pub(crate) fn p1(&mut self) -> &mut WasiP1Ctx {
        &mut self.p1
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

    /// The host resources a core module holds through WASI preview1, counted
    /// by kind, without the descriptors preview1 makes for itself at its
    /// first call (stdin, stdout, stderr and one per preopened directory,
    /// `preopens` of them): those are the host's, and every instance
    /// started from the snapshot makes them anew.
    pub(crate) fn open_resources_p1(&mut self, preopens: usize) -> BTreeMap<String, usize> {
        let mut open = self.open_resources();
        if open.is_empty() {
            // preview1 was never called
            return open;
        }
        let made_by_preview1 = [
            (resources::INPUT_STREAM, 1),
            (resources::OUTPUT_STREAM, 2),
            (resources::DIRECTORY, preopens),
        ];
        for (kind, count) in made_by_preview1 {
            if let Some(n) = open.get_mut(kind) {
                *n = n.saturating_sub(count);
            }
        }
        open.retain(|_, n| *n > 0);
        open
    }

    /// The host resources the guest holds, counted by kind.
    pub(crate) fn open_resources(&mut self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for entry in self.table.iter_mut() {
            *kinds.entry(resource_kind(entry).to_string()).or_default() += 1;
        }
        for entry in self.p1.ctx().table.iter_mut() {
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
