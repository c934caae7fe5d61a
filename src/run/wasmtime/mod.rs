//! The default [`Runtime`]: Wasmtime, with every import trapping unless
//! WASI is enabled ([`RuntimeBuilder::wasi`]).
//!
//! The runtime is made by [`RuntimeBuilder`]; the files beside this one
//! hold the engine and compiler ([`engine`]), the timeout and other limits
//! while init runs (`deadline`), calling init and the checks after it
//! (`init`), and the traps that stand in for imports (`stubs`).

mod builder;
mod deadline;
mod engine;
mod idle;
mod init;
mod module;
mod stubs;

pub use builder::RuntimeBuilder;
pub use engine::Compiler;
use stubs::define_missing_imports_as_traps;

use anyhow::{Context, Result, bail};
use std::sync::mpsc;
use tokio::sync::watch;
use tracing::instrument::WithSubscriber;
use wasmtime::component::{Component, Func, Instance, Linker, Val};
use wasmtime::{Cache, Engine, Store};

use crate::plan::init_func::InitFunc;
use crate::plan::{GlobalValue, ScalarType};
use crate::run::Runtime;
use crate::run::limits::Limits;
use crate::run::wasi::{Audit, Host, Recorder, WasiOptions, open_resources_error};
use crate::run::wave;

/// An epoch deadline that is never reached (the epoch only advances when a
/// timeout expires).
const NO_DEADLINE: u64 = 1 << 62;

/// Runs the instrumented component in Wasmtime. Every import of the
/// component traps when called, with an error naming the import; with
/// [`RuntimeBuilder::wasi`], WASI 0.2 and 0.3 imports are provided
/// (and audited) and only the others trap.
pub struct WasmtimeRuntime {
    engine: Engine,
    store: Store<Host>,
    instance: Option<Instance>,
    wasi: Option<WasiOptions>,
    audit: Audit,
    init_results: Vec<String>,
    limits: Limits,
    /// Ends the timeout's timer thread when dropped.
    timer: Option<mpsc::Sender<()>>,
    /// Turns `true` when the timeout expires: ends a wait in a host call,
    /// which epoch interruption (wasm code only) cannot reach.
    expired: Option<watch::Receiver<bool>>,
    /// The compiler the engine uses, when this crate made the engine.
    compiler: Option<Compiler>,
    winch_fallback: Option<String>,
    /// The instrumented component, once compiled.
    component: Option<Component>,
    /// Wasmtime's compilation cache, when this crate made the engine with
    /// one.
    cache: Option<Cache>,
}

impl WasmtimeRuntime {
    /// A runtime with the defaults: Wasmtime's default configuration (wasm
    /// backtraces off, so that errors stay on one line), the default
    /// [`Compiler`] and [`Limits`] (init times out after
    /// 5 minutes, `DEFAULT_TIMEOUT`), no WASI.
    pub fn new() -> Result<WasmtimeRuntime> {
        WasmtimeRuntime::builder().build()
    }

    /// Configures a runtime: limits, compiler, cache or engine, WASI.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// How the compilation cache served this run: `Some(true)` when the
    /// instrumented component came from it, `Some(false)` when it was
    /// compiled (and stored), `None` without a cache.
    pub fn cache_hit(&self) -> Option<bool> {
        self.cache.as_ref().map(|cache| cache.cache_hits() > 0)
    }

    /// The compiler that compiled the instrumented component: the one asked
    /// for, or Cranelift when Winch could not compile it. `None` before
    /// instantiation and on an engine of the caller's.
    pub fn compiled_with(&self) -> Option<Compiler> {
        self.instance.and(self.compiler)
    }

    /// Why Winch could not compile the component, when Cranelift took over.
    pub fn winch_fallback(&self) -> Option<&str> {
        self.winch_fallback.as_deref()
    }

    /// What the init function returned, in WAVE, once it ran.
    pub fn init_results(&self) -> &[String] {
        &self.init_results
    }

    /// What the init function took from the host through WASI: every WASI
    /// function it called, what it wrote to stdout and stderr. Empty until
    /// init ran, and without WASI.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    fn func(&mut self, interface: Option<&str>, name: &str) -> Result<Func> {
        let Some(instance) = self.instance else {
            bail!("the component has not been instantiated");
        };
        let parent = match interface {
            Some(interface) => Some(
                instance
                    .get_export_index(&mut self.store, None, interface)
                    .with_context(|| format!("the component does not export `{interface}`"))?,
            ),
            None => None,
        };
        let index = instance
            .get_export_index(&mut self.store, parent.as_ref(), name)
            .with_context(|| match interface {
                Some(interface) => format!("`{interface}` has no export `{name}`"),
                None => format!("the component does not export `{name}`"),
            })?;
        instance
            .get_func(&mut self.store, index)
            .with_context(|| format!("export `{name}` is not a function"))
    }
}

impl Runtime for WasmtimeRuntime {
    async fn instantiate(&mut self, component: &[u8]) -> Result<()> {
        let component = self.compile(component)?;
        self.component = Some(component.clone());
        let mut linker = Linker::<Host>::new(&self.engine);
        if self.wasi.is_some() {
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            wasmtime_wasi::p3::add_to_linker(&mut linker)?;
            if let Some(options) = &self.wasi
                && let Some(fixed) = &options.reproducible
            {
                let ty = component.component_type();
                fixed.check(
                    options.inherit_env,
                    !options.dirs.is_empty(),
                    ty.imports(&self.engine).map(|(name, _)| name),
                )?;
                crate::run::reproducible::shadow_wasi(&mut linker)?;
            }
            define_missing_imports_as_traps(&mut linker, &component)?;
        } else {
            linker.define_unknown_imports_as_traps(&component)?;
        }
        // Start functions count against the limits: they are init work.
        self.start_timer();
        let instance = WasmtimeRuntime::bounded(
            self.expired.clone(),
            linker.instantiate_async(&mut self.store, &component),
        )
        .await;
        self.instance = Some(instance.map_err(|e| self.explain(e))?);
        Ok(())
    }

    async fn call_init(&mut self, init: &InitFunc) -> Result<()> {
        let func = self.func(init.interface.as_deref(), &init.name)?;
        let (args, results) = wave::args(&self.store, &func, init)?;
        let mut results = vec![Val::Bool(false); results];
        // Every WASI host function reports its calls through `tracing`.
        let recorder = Recorder::default();
        let outcome = self
            .run_init(func, &args, &mut results)
            .with_subscriber(recorder.clone())
            .await;
        self.end_limits();
        if let Some(options) = &self.wasi {
            self.audit = recorder.audit(options, self.store.data());
        }
        outcome?;
        self.check_async_state(func).await?;
        if let Some(options) = &self.wasi {
            let open = self.store.data_mut().open_resources();
            if !open.is_empty() && !options.allow_open_resources {
                return Err(open_resources_error(&open));
            }
            self.audit.set_open_resources(open);
        }
        // WASI resources the guest was allowed to keep have handles in its
        // tables too: only a guest that holds none can be checked.
        if self.audit.open_resources().is_empty() {
            self.check_handle_tables()?;
        }
        self.init_results = wave::results(init, &results)?;
        Ok(())
    }

    async fn read_memory(
        &mut self,
        interface: &str,
        func: &str,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>> {
        let func = self
            .func(Some(interface), func)?
            .typed::<(u64, u32), (Vec<u8>,)>(&self.store)?;
        let (bytes,) = func.call_async(&mut self.store, (offset, len)).await?;
        Ok(bytes)
    }

    /// Lifts the chunk as a view of the guest's memory (no copy), and
    /// appends from it: only its non-zero runs are copied out.
    async fn read_memory_into(
        &mut self,
        interface: &str,
        func: &str,
        offset: u64,
        len: u32,
        memory: &mut crate::plan::image::MemoryImage,
    ) -> Result<usize> {
        use wasmtime::component::WasmList;
        let typed = self
            .func(Some(interface), func)?
            .typed::<(u64, u32), (WasmList<u8>,)>(&self.store)?;
        let (list,) = typed.call_async(&mut self.store, (offset, len)).await?;
        crate::run::check_chunk(func, list.len(), len)?;
        memory.push(list.as_le_slice(&self.store));
        Ok(list.len())
    }

    async fn read_global(
        &mut self,
        interface: &str,
        func: &str,
        ty: ScalarType,
    ) -> Result<GlobalValue> {
        let func = self.func(Some(interface), func)?;
        Ok(match ty {
            ScalarType::I32 => {
                let f = func.typed::<(), (i32,)>(&self.store)?;
                GlobalValue::I32(f.call_async(&mut self.store, ()).await?.0)
            }
            ScalarType::I64 => {
                let f = func.typed::<(), (i64,)>(&self.store)?;
                GlobalValue::I64(f.call_async(&mut self.store, ()).await?.0)
            }
            ScalarType::F32 => {
                let f = func.typed::<(), (f32,)>(&self.store)?;
                GlobalValue::F32(f.call_async(&mut self.store, ()).await?.0.to_bits())
            }
            ScalarType::V128 => {
                let f = func.typed::<(), ((u64, u64),)>(&self.store)?;
                let ((low, high),) = f.call_async(&mut self.store, ()).await?;
                GlobalValue::V128(u128::from(low) | (u128::from(high) << 64))
            }
            ScalarType::F64 => {
                let f = func.typed::<(), (f64,)>(&self.store)?;
                GlobalValue::F64(f.call_async(&mut self.store, ()).await?.0.to_bits())
            }
        })
    }
}

/// Runs `future` to completion on a single-threaded Tokio runtime.
///
/// A WASI host call abandoned at the timeout may leave a thread blocked in
/// the host (a read from a pipe nobody writes): the runtime is shut down
/// without waiting for it, so the timeout error returns at once.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    Ok(output)
}
