//! The default [`Runtime`]: Wasmtime, with every import trapping unless
//! WASI is enabled ([`WasmtimeRuntime::with_wasi`]).

use anyhow::{Context, Result, bail};
use std::pin::pin;
use std::sync::mpsc;
use std::task::Poll;
use tokio::sync::watch;
use tracing::instrument::WithSubscriber;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Func, Instance, Linker, LinkerInstance, ResourceType, Val};
use wasmtime::{Cache, Config, Engine, Store, Strategy, Trap};

use crate::plan::init_func::InitFunc;
use crate::plan::{GlobalValue, ScalarType};
use crate::run::Runtime;
use crate::run::limits::{Limits, ShowDuration};
use crate::run::wasi::{Audit, Host, Recorder, WasiOptions, open_resources_error};
use crate::run::wave;

/// An epoch deadline that is never reached (the epoch only advances when a
/// timeout expires).
const NO_DEADLINE: u64 = 1 << 62;

/// Runs the instrumented component in Wasmtime. Every import of the
/// component traps when called, with an error naming the import; with
/// [`with_wasi`](WasmtimeRuntime::with_wasi), WASI 0.2 and 0.3 imports are provided
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

/// Which of Wasmtime's compilers compiles the instrumented component. The
/// output does not depend on it: only how long compiling and running init
/// take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compiler {
    /// Winch where it can (x86-64, no fuel), else Cranelift. The default:
    /// for pre-initialization, compiling is most of the work (init runs
    /// once), and Winch compiles several times faster than Cranelift.
    #[default]
    Auto,
    /// Cranelift, the optimizing compiler: the fastest init, the slowest
    /// compilation. Best when init runs long enough to repay compilation.
    Cranelift,
    /// Winch, the baseline compiler: compiles several times faster, runs
    /// init slower. Cranelift takes over for components Winch cannot
    /// compile (GC, exceptions, tail calls, some SIMD).
    Winch,
}

impl Compiler {
    /// The compiler to start with: `Auto` resolved.
    fn resolve(self, limits: &Limits) -> Compiler {
        match self {
            Compiler::Auto if cfg!(target_arch = "x86_64") && limits.fuel.is_none() => {
                Compiler::Winch
            }
            Compiler::Auto => Compiler::Cranelift,
            other => other,
        }
    }
}

impl WasmtimeRuntime {
    /// A runtime with Wasmtime's default configuration (wasm backtraces off,
    /// so that errors stay on one line) and the default [`Limits`]: init
    /// times out after [`DEFAULT_TIMEOUT`](crate::run::limits::DEFAULT_TIMEOUT).
    pub fn new() -> Result<WasmtimeRuntime> {
        WasmtimeRuntime::with_limits(Limits::default())
    }

    /// A runtime with Wasmtime's default configuration, the default
    /// [`Compiler`] and `limits` on init.
    pub fn with_limits(limits: Limits) -> Result<WasmtimeRuntime> {
        WasmtimeRuntime::with_compiler(limits, Compiler::default())
    }

    /// A runtime that compiles the instrumented component with `compiler`,
    /// with `limits` on init.
    pub fn with_compiler(limits: Limits, compiler: Compiler) -> Result<WasmtimeRuntime> {
        WasmtimeRuntime::with_cache(limits, compiler, None)
    }

    /// Like [`with_compiler`](WasmtimeRuntime::with_compiler), with
    /// Wasmtime's compilation cache: a component compiled before, with the
    /// same engine settings, compiler and Wasmtime version, is loaded from
    /// the cache instead (`Cache::from_file(None)` is the cache `wasmtime
    /// run` uses; the CLI turns it on by default).
    pub fn with_cache(
        limits: Limits,
        compiler: Compiler,
        cache: Option<Cache>,
    ) -> Result<WasmtimeRuntime> {
        if compiler == Compiler::Winch && limits.fuel.is_some() {
            bail!("fuel needs the Cranelift compiler; Winch cannot meter fuel");
        }
        let compiler = compiler.resolve(&limits);
        let mut config = WasmtimeRuntime::config(&limits, compiler);
        config.cache(cache.clone());
        let engine = Engine::new(&config)?;
        let mut runtime = WasmtimeRuntime::with_engine_and_limits(engine, limits)?;
        runtime.compiler = Some(compiler);
        runtime.cache = cache;
        Ok(runtime)
    }

    /// How the compilation cache served this run: `Some(true)` when the
    /// instrumented component came from it, `Some(false)` when it was
    /// compiled (and stored), `None` without a cache.
    pub fn cache_hit(&self) -> Option<bool> {
        self.cache.as_ref().map(|cache| cache.cache_hits() > 0)
    }

    /// The engine configuration [`with_compiler`](WasmtimeRuntime::with_compiler)
    /// uses: Wasmtime's defaults with `compiler`, the proposals this crate
    /// snapshots (multi-memory, memory64, custom page sizes), epoch
    /// interruption when `limits` has a timeout and fuel when it has fuel.
    pub fn config(limits: &Limits, compiler: Compiler) -> Config {
        let mut config = Config::new();
        config.strategy(match compiler.resolve(limits) {
            Compiler::Winch => Strategy::Winch,
            _ => Strategy::Cranelift,
        });
        config.wasm_backtrace_max_frames(None);
        config.wasm_multi_memory(true);
        config.wasm_memory64(true);
        config.wasm_custom_page_sizes(true);
        // The async component model, as WASI 0.3 and the toolchains that
        // emit it use: every builtin Wasmtime 48 implements, for Winch and
        // Cranelift alike (Winch hands the builtins' trampolines to
        // Cranelift).
        config.wasm_component_model_async(true);
        config.wasm_component_model_more_async_builtins(true);
        config.wasm_component_model_async_stackful(true);
        config.wasm_component_model_error_context(true);
        config.epoch_interruption(limits.timeout.is_some());
        config.consume_fuel(limits.fuel.is_some());
        config
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

    /// Compiles `component`; when Winch cannot, starts over on a Cranelift
    /// engine (and a new store, before anything ran in the old one).
    fn compile(&mut self, component: &[u8]) -> Result<Component> {
        let winch_error = match Component::new(&self.engine, component) {
            Ok(compiled) => return Ok(compiled),
            Err(e) if self.compiler == Some(Compiler::Winch) => e,
            Err(e) => return Err(e.into()),
        };
        let mut config = WasmtimeRuntime::config(&self.limits, Compiler::Cranelift);
        config.cache(self.cache.clone());
        let engine = Engine::new(&config)?;
        let compiled = Component::new(&engine, component)?;
        let fresh = WasmtimeRuntime::with_engine_and_limits(engine, self.limits.clone())?;
        // nothing ran in the old store: its host data (WASI context, limiter)
        // is as new
        let old = std::mem::replace(&mut self.store, fresh.store);
        *self.store.data_mut() = old.into_data();
        self.engine = fresh.engine;
        self.compiler = Some(Compiler::Cranelift);
        self.winch_fallback = Some(format!("{:#}", anyhow::Error::from(winch_error)));
        Ok(compiled)
    }

    /// A runtime on an engine of the caller's, without limits (an engine
    /// made from [`config`](WasmtimeRuntime::config) can enforce them:
    /// see [`with_engine_and_limits`](WasmtimeRuntime::with_engine_and_limits)).
    pub fn with_engine(engine: Engine) -> WasmtimeRuntime {
        let mut store = Store::new(&engine, Host::new());
        store.limiter(|host| &mut host.limiter);
        // Stores start at deadline 0: on an engine with epoch interruption,
        // wasm would trap at once.
        store.set_epoch_deadline(NO_DEADLINE);
        WasmtimeRuntime {
            engine,
            store,
            instance: None,
            wasi: None,
            audit: Audit::default(),
            init_results: Vec::new(),
            limits: Limits::none(),
            timer: None,
            expired: None,
            compiler: None,
            winch_fallback: None,
            component: None,
            cache: None,
        }
    }

    /// A runtime on an engine of the caller's, with `limits`: the engine
    /// must have epoch interruption enabled for a timeout, and fuel for
    /// fuel (as [`config`](WasmtimeRuntime::config) does).
    pub fn with_engine_and_limits(engine: Engine, limits: Limits) -> Result<WasmtimeRuntime> {
        let mut runtime = WasmtimeRuntime::with_engine(engine);
        if let Some(fuel) = limits.fuel {
            runtime.store.set_fuel(fuel).map_err(|e| {
                anyhow::Error::from(e).context("fuel needs an engine with `Config::consume_fuel`")
            })?;
        }
        runtime.store.data_mut().limiter.max = limits.max_memory;
        runtime.limits = limits;
        Ok(runtime)
    }

    /// Starts the timeout's clock: from now on, wasm code running past the
    /// timeout traps (epoch interruption), and a wait in a host call past it
    /// is abandoned (see [`bounded`](WasmtimeRuntime::bounded)).
    fn start_timer(&mut self) {
        let Some(timeout) = self.limits.timeout else {
            return;
        };
        self.store.set_epoch_deadline(1);
        self.store.epoch_deadline_trap();
        let (stop, stopped) = mpsc::channel::<()>();
        let (expire, expired) = watch::channel(false);
        let engine = self.engine.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(timeout) {
                engine.increment_epoch();
                expire.send_replace(true);
            }
        });
        self.timer = Some(stop);
        self.expired = Some(expired);
    }

    /// Runs `work` (instantiation or the init call) until it ends or the
    /// timeout expires, whichever comes first. Epoch interruption stops wasm
    /// code but not a host call that waits (a WASI sleep, a blocking read, a
    /// poll): when the timeout expires during one, `work` is dropped
    /// unfinished, which abandons the wait, and the result is the timeout
    /// error. The store must not run anything afterwards.
    async fn bounded<T>(
        expired: Option<watch::Receiver<bool>>,
        work: impl Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        let Some(mut expired) = expired else {
            return work.await;
        };
        let mut work = pin!(work);
        let mut timeout = pin!(async move {
            // an error here means the timer ended without expiring
            if expired.wait_for(|expired| *expired).await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        std::future::poll_fn(|cx| {
            // the work first: wasm interrupted by the epoch reports as such
            if let Poll::Ready(result) = work.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            match timeout.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(wasmtime::Error::from(Trap::Interrupt))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Lifts the limits once init is done: reading the state back is this
    /// crate's code, and its memory does not count.
    fn end_limits(&mut self) {
        self.timer = None;
        self.expired = None;
        self.store.set_epoch_deadline(NO_DEADLINE);
        if self.limits.fuel.is_some() {
            self.store.set_fuel(u64::MAX).ok();
        }
        self.store.data_mut().limiter.max = None;
    }

    /// Says which limit ended `e`, if one did.
    fn explain(&self, e: wasmtime::Error) -> anyhow::Error {
        let e = anyhow::Error::from(e);
        let limit = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => self.limits.timeout.map(|t| {
                format!(
                    "timed out: still running after {} (`--timeout`)",
                    ShowDuration(t)
                )
            }),
            Some(Trap::OutOfFuel) => self
                .limits
                .fuel
                .map(|fuel| format!("ran out of fuel: used all of its {fuel} units (`--fuel`)")),
            _ => None,
        };
        match limit {
            Some(limit) => anyhow::anyhow!(limit),
            None => e,
        }
    }

    /// What the init function returned, in WAVE, once it ran.
    pub fn init_results(&self) -> &[String] {
        &self.init_results
    }

    /// Provides WASI 0.2 and 0.3 to the init function, with what `options` grants of
    /// the host (nothing else is visible), and audits its use: see
    /// [`audit`](WasmtimeRuntime::audit). Fails if a directory to preopen
    /// cannot be opened, or if the component was already instantiated.
    ///
    /// WASI's host functions run on Tokio: drive this runtime inside a Tokio
    /// runtime (as [`block_on`] does).
    pub fn with_wasi(mut self, options: WasiOptions) -> Result<WasmtimeRuntime> {
        if self.instance.is_some() {
            bail!("WASI must be enabled before the component is instantiated");
        }
        let limiter = std::mem::take(&mut self.store.data_mut().limiter);
        *self.store.data_mut() = Host::with_wasi(&options)?;
        self.store.data_mut().limiter = limiter;
        self.wasi = Some(options);
        Ok(self)
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

    /// Calls init (sync or async-lifted) to its return, then runs the
    /// work it started and did not wait for (tasks it spawned) to the end:
    /// all of it bounded by the limits.
    async fn run_init(&mut self, func: Func, args: &[Val], results: &mut [Val]) -> Result<()> {
        // `call_async` drives the component model's event loop until init
        // returns (`task.return`), and fails if init can never return
        // (every task blocked, nothing pending in the host).
        let called = WasmtimeRuntime::bounded(
            self.expired.clone(),
            func.call_async(&mut self.store, args, results),
        )
        .await;
        called.map_err(|e| self.init_error(e))?;
        // Tasks that init spawned, or that returned before finishing their
        // work, run on until none is left.
        let finished = WasmtimeRuntime::bounded(
            self.expired.clone(),
            self.store.run_concurrent(async |accessor| {
                std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await
            }),
        )
        .await;
        match finished {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) => {
                let limit = self.limits.timeout.map(ShowDuration);
                bail!(
                    "it returned, but tasks it started were still pending when the timeout \
                     expired{} (`--timeout`): a task waiting for something that never \
                     arrives (a stream or future nobody writes, a subtask that never \
                     returns) cannot be snapshotted; end or await every task before \
                     init returns",
                    limit.map(|t| format!(" after {t}")).unwrap_or_default()
                )
            }
            Err(e) => Err(self
                .init_error(e)
                .context("it returned, but a task it started (or a subtask it left) failed")),
        }
    }

    /// The error for init failing with `e`: which limit ended it, an exit
    /// call, the end of its discarded stderr.
    fn init_error(&self, e: wasmtime::Error) -> anyhow::Error {
        if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return anyhow::anyhow!(
                "it called `wasi:cli/exit#exit` with status {}; init must return instead",
                exit.0
            );
        }
        let e = self.explain(e);
        match self.store.data().last_stderr_lines() {
            Some(lines) if self.wasi.is_some() => anyhow::anyhow!(
                "{e:#} (the end of its stderr, which is discarded without \
                 `--inherit-stdio`: {lines})"
            ),
            _ => e,
        }
    }

    /// Fails if init left state of the async component model that a
    /// snapshot cannot carry: streams, futures, waitable sets, error
    /// contexts or tasks still alive (Wasmtime keeps them all in the
    /// store's concurrent table, which must be empty once every task has
    /// ended), or backpressure left on in the instance of `init`.
    async fn check_async_state(&mut self, init: Func) -> Result<()> {
        let backpressure = self
            .store
            .run_concurrent(async |accessor| {
                std::future::poll_fn(|cx| {
                    Poll::Ready(
                        accessor
                            .poll_ready_for_concurrent_call(init, cx)
                            .is_pending(),
                    )
                })
                .await
            })
            .await?;
        if backpressure {
            bail!(
                "init left backpressure on (`backpressure.inc` without a matching \
                 `backpressure.dec`); instances started from a snapshot would start with \
                 it off: turn it off before init returns"
            );
        }
        let alive = self
            .store
            .concurrent_resource_table()
            .map_or(0, |table| table.iter_mut().count());
        if alive > 0 {
            bail!(
                "init left {alive} object(s) of the async component model alive (streams or \
                 futures with an open end, waitable sets, error contexts or subtasks not \
                 dropped); a snapshot cannot carry them: drop them before init returns"
            );
        }
        Ok(())
    }
}

impl WasmtimeRuntime {
    /// Fails if any component instance of the store (top level or nested,
    /// every instance of a component instantiated more than once) still
    /// holds a handle in its handle table after init: an `own` or `borrow`
    /// of a guest-defined resource (made with `resource.new`, or received
    /// from another instance), or anything the async checks above missed.
    /// A snapshot cannot carry a handle table: every instance started from
    /// it would start with an empty one, and trap on the first use
    /// (`unknown handle index`).
    ///
    /// Wasmtime 48 has no public view of a component instance's handle
    /// table; the one exact check it offers is the doc-hidden
    /// `Store::assert_concurrent_state_empty`, which panics when any table
    /// or queue of the store's component-model state is not empty. It is
    /// called with the panic caught (and its message kept off stderr).
    fn check_handle_tables(&mut self) -> Result<()> {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let store = &mut self.store;
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.assert_concurrent_state_empty();
        }));
        std::panic::set_hook(quiet);
        let Err(panic) = checked else {
            return Ok(());
        };
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("handle_table") {
            bail!(
                "init left handles in a component instance's handle table (resources made \
                 with `resource.new`, or `own` handles received from another component); a \
                 snapshot cannot carry them, and instances started from it would trap on \
                 their first use (`unknown handle index`){}: drop every handle before init \
                 returns",
                self.resource_types_hint()
            );
        }
        bail!(
            "init left state of the component model that a snapshot cannot carry (pending \
             work in Wasmtime's event loop: {}): end every task and drop every handle before \
             init returns",
            message.lines().next().unwrap_or("a queue is not empty")
        )
    }

    /// `; resource types it exports: A, B` for the instantiated component,
    /// when it exports any: where such handles usually come from.
    fn resource_types_hint(&mut self) -> String {
        let mut names = Vec::new();
        if let Some(component) = &self.component {
            let ty = component.component_type();
            let mut exports = ty.exports(&self.engine).map(|(name, item)| (name, item.ty));
            collect_resources(&self.engine, None, &mut exports, &mut names);
        }
        if names.is_empty() {
            return String::new();
        }
        format!("; resource types it exports: {}", names.join(", "))
    }
}

/// The resources among `exports` (recursively, in exported instances), as
/// `INSTANCE#NAME` or `NAME`.
fn collect_resources(
    engine: &Engine,
    parent: Option<&str>,
    exports: &mut dyn Iterator<Item = (&str, ComponentItem)>,
    names: &mut Vec<String>,
) {
    for (name, item) in exports {
        match item {
            ComponentItem::Resource(_) => names.push(match parent {
                Some(parent) => format!("`{parent}#{name}`"),
                None => format!("`{name}`"),
            }),
            ComponentItem::ComponentInstance(instance) => {
                let mut exports = instance.exports(engine).map(|(name, item)| (name, item.ty));
                collect_resources(engine, Some(name), &mut exports, names);
            }
            _ => {}
        }
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

/// A WASI release that `wasmtime-wasi` provides: the version its linker
/// defines, and the interfaces it defines at that version.
struct WasiRelease {
    /// The version the host defines (`0.2.12`).
    version: &'static str,
    /// The prefix of the versions it matches by semver (`0.2.`).
    matches: &'static str,
    /// The interfaces, in groups (some groups are in both releases).
    interfaces: &'static [&'static [&'static str]],
}

/// `wasi:cli`, as 0.2 and 0.3 both define it.
const WASI_CLI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// `wasi:filesystem` and `wasi:random`, as 0.2 and 0.3 both define them.
const WASI_FILESYSTEM_RANDOM: &[&str] = &[
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// WASI 0.2 (`wasmtime_wasi::p2`) and WASI 0.3 (`wasmtime_wasi::p3`), as
/// Wasmtime 48 defines them: to check on Wasmtime upgrades.
const WASI_RELEASES: &[WasiRelease] = &[
    WasiRelease {
        version: "0.2.12",
        matches: "0.2.",
        interfaces: &[
            WASI_CLI,
            WASI_FILESYSTEM_RANDOM,
            &[
                "wasi:clocks/monotonic-clock",
                "wasi:clocks/wall-clock",
                "wasi:io/error",
                "wasi:io/poll",
                "wasi:io/streams",
                "wasi:sockets/network",
                "wasi:sockets/instance-network",
                "wasi:sockets/tcp",
                "wasi:sockets/tcp-create-socket",
                "wasi:sockets/udp",
                "wasi:sockets/udp-create-socket",
                "wasi:sockets/ip-name-lookup",
            ],
        ],
    },
    WasiRelease {
        version: "0.3.0",
        matches: "0.3.",
        interfaces: &[
            WASI_CLI,
            WASI_FILESYSTEM_RANDOM,
            &[
                "wasi:clocks/types",
                "wasi:clocks/monotonic-clock",
                "wasi:clocks/system-clock",
                "wasi:sockets/types",
                "wasi:sockets/ip-name-lookup",
            ],
        ],
    },
];

/// The name under which the linker holds the WASI interface that `import`
/// (e.g. `wasi:cli/environment@0.2.6` or `@0.3.2`) resolves to, if any.
fn wasi_host_name(import: &str) -> Option<String> {
    let (interface, version) = import.split_once('@')?;
    WASI_RELEASES.iter().find_map(|release| {
        let patch = version.strip_prefix(release.matches)?;
        (release
            .interfaces
            .iter()
            .any(|group| group.contains(&interface))
            && !patch.is_empty()
            && patch.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{interface}@{}", release.version))
    })
}

/// Like [`Linker::define_unknown_imports_as_traps`], for a linker holding
/// WASI: an import of a WASI interface at another 0.2 or 0.3 version resolves to
/// the host's instance (a semver-compatible match), so its missing functions
/// are added to that instance, rather than to a new instance under the
/// import's exact name, which would shadow the host's with traps.
fn define_missing_imports_as_traps(linker: &mut Linker<Host>, component: &Component) -> Result<()> {
    let engine = linker.engine().clone();
    let ty = component.component_type();
    for (name, import) in ty.imports(&engine) {
        match &import.ty {
            ComponentItem::ComponentInstance(_) => {
                let host_name = wasi_host_name(name);
                let mut instance = linker.instance(host_name.as_deref().unwrap_or(name))?;
                stub(
                    &mut instance,
                    &engine,
                    None,
                    name,
                    &import.ty,
                    true,
                    host_name.is_some(),
                )?;
            }
            item => stub(&mut linker.root(), &engine, None, name, item, false, false)?,
        }
    }
    Ok(())
}

/// Defines `name` in `linker` as a trap (functions) or an empty host type
/// (resources), unless it is already defined; `inside` says that `linker` is
/// already the instance `name` names, and `host` that it is one of WASI's,
/// whose resource types (its own and those it uses from other interfaces)
/// are the host's.
fn stub(
    linker: &mut LinkerInstance<'_, Host>,
    engine: &Engine,
    parent: Option<&str>,
    name: &str,
    item: &ComponentItem,
    inside: bool,
    host: bool,
) -> Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let full = match parent {
                Some(parent) => format!("{parent}#{name}"),
                None => name.to_string(),
            };
            // Without shadowing, defining a name again fails: whatever the
            // host defined stays.
            let _ = linker.func_new(name, move |_, _, _, _| {
                wasmtime::bail!("unknown import: `{full}` has not been defined")
            });
        }
        ComponentItem::Resource(_) if host => {}
        ComponentItem::Resource(_) => {
            let _ = linker.resource(name, ResourceType::host::<()>(), |_, _| Ok(()));
        }
        ComponentItem::ComponentInstance(instance) => {
            if inside {
                stub_exports(linker, engine, name, instance, host)?;
            } else {
                stub_exports(&mut linker.instance(name)?, engine, name, instance, host)?;
            }
        }
        ComponentItem::Component(_) | ComponentItem::Module(_) => {
            bail!("cannot define the import `{name}` (a component or module) as a trap")
        }
        ComponentItem::CoreFunc(_) | ComponentItem::Type(_) => {}
    }
    Ok(())
}

fn stub_exports(
    linker: &mut LinkerInstance<'_, Host>,
    engine: &Engine,
    name: &str,
    instance: &wasmtime::component::types::ComponentInstance,
    host: bool,
) -> Result<()> {
    for (export, item) in instance.exports(engine) {
        stub(linker, engine, Some(name), export, &item.ty, false, host)?;
    }
    Ok(())
}

/// Runs `future` to completion on a single-threaded Tokio runtime.
///
/// A WASI host call abandoned at the timeout may leave a thread blocked in
/// the host (a read from a pipe nobody writes): the runtime is shut down
/// without waiting for it, so the timeout error returns at once.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    Ok(output)
}
