//! The store data of the Wasmtime runner ([`Host`]), and the WASI context
//! built from [`WasiOptions`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::WasiOptions;
use super::resources::resource_kind;
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
