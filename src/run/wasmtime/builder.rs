//! One way to configure a [`WasmtimeRuntime`]: [`RuntimeBuilder`], from
//! [`WasmtimeRuntime::builder`].

use anyhow::{Result, bail};
use wasmtime::{Cache, Engine, Store};

use super::{Compiler, NO_DEADLINE, WasmtimeRuntime};
use crate::run::limits::Limits;
use crate::run::wasi::{Audit, Host, WasiOptions};

/// Configures a [`WasmtimeRuntime`]: the limits on init, the compiler, the
/// compilation cache (or an engine of the caller's instead of the last two),
/// and WASI. Every setting has a default; `build` makes the runtime.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// use component_init::{Compiler, Limits, WasmtimeRuntime};
/// let mut runtime = WasmtimeRuntime::builder()
///     .compiler(Compiler::Cranelift)
///     .limits(Limits::none())
///     .build()?;
/// let output = runtime.initialize(&std::fs::read("app.wasm")?, &Default::default())?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct RuntimeBuilder {
    limits: Option<Limits>,
    compiler: Option<Compiler>,
    cache: Option<Cache>,
    engine: Option<Engine>,
    wasi: Option<WasiOptions>,
}

impl RuntimeBuilder {
    /// Limits on init: by default [`Limits::default`] (init times out after
    /// 5 minutes, `DEFAULT_TIMEOUT`), or none on an
    /// [`engine`](RuntimeBuilder::engine) of the caller's.
    pub fn limits(mut self, limits: Limits) -> RuntimeBuilder {
        self.limits = Some(limits);
        self
    }

    /// The compiler for the instrumented component (default
    /// [`Compiler::Auto`]).
    pub fn compiler(mut self, compiler: Compiler) -> RuntimeBuilder {
        self.compiler = Some(compiler);
        self
    }

    /// Wasmtime's compilation cache (default: none): a component compiled
    /// before, with the same engine settings, compiler and Wasmtime version,
    /// is loaded from the cache instead (`Cache::from_file(None)` is the
    /// cache `wasmtime run` uses; the CLI turns it on by default).
    pub fn cache(mut self, cache: Option<Cache>) -> RuntimeBuilder {
        self.cache = cache;
        self
    }

    /// Runs on an engine of the caller's, which brings its own compiler and
    /// cache. To enforce [`limits`](RuntimeBuilder::limits), it needs epoch
    /// interruption for a timeout and fuel for fuel, as
    /// [`WasmtimeRuntime::config`] sets them.
    pub fn engine(mut self, engine: Engine) -> RuntimeBuilder {
        self.engine = Some(engine);
        self
    }

    /// Provides WASI 0.2 and 0.3 to the init function, with what `options`
    /// grants of the host (nothing else is visible), and audits its use: see
    /// [`WasmtimeRuntime::audit`]. Without it, every import traps.
    ///
    /// WASI's host functions run on Tokio: drive the runtime inside a Tokio
    /// runtime, or through [`WasmtimeRuntime::initialize`], which makes one.
    pub fn wasi(mut self, options: WasiOptions) -> RuntimeBuilder {
        self.wasi = Some(options);
        self
    }

    /// Makes the runtime. Fails if fuel is asked of Winch, if an engine of
    /// the caller's comes with a compiler or cache too, if that engine cannot
    /// enforce the limits, or if a directory to preopen cannot be opened.
    pub fn build(self) -> Result<WasmtimeRuntime> {
        let mut runtime = match self.engine {
            Some(engine) => {
                if self.compiler.is_some() || self.cache.is_some() {
                    bail!(
                        "an engine of the caller's has its own compiler and cache: set them \
                         in its `Config` (see `WasmtimeRuntime::config`)"
                    );
                }
                WasmtimeRuntime::on_engine(engine, self.limits.unwrap_or_else(Limits::none))?
            }
            None => {
                let limits = self.limits.unwrap_or_default();
                let compiler = self.compiler.unwrap_or_default();
                if compiler == Compiler::Winch && limits.fuel.is_some() {
                    bail!("fuel needs the Cranelift compiler; Winch cannot meter fuel");
                }
                let compiler = compiler.resolve(&limits);
                let mut config = WasmtimeRuntime::config(&limits, compiler);
                config.cache(self.cache.clone());
                let engine = Engine::new(&config)?;
                let mut runtime = WasmtimeRuntime::on_engine(engine, limits)?;
                runtime.compiler = Some(compiler);
                runtime.cache = self.cache;
                runtime
            }
        };
        if let Some(options) = self.wasi {
            let limiter = std::mem::take(&mut runtime.store.data_mut().limiter);
            *runtime.store.data_mut() = Host::with_wasi(&options)?;
            runtime.store.data_mut().limiter = limiter;
            runtime.wasi = Some(options);
        }
        Ok(runtime)
    }
}

impl WasmtimeRuntime {
    /// A runtime on `engine` with `limits`: the engine must have epoch
    /// interruption enabled for a timeout, and fuel for fuel.
    pub(super) fn on_engine(engine: Engine, limits: Limits) -> Result<WasmtimeRuntime> {
        let mut store = Store::new(&engine, Host::new());
        store.limiter(|host| &mut host.limiter);
        // Stores start at deadline 0: on an engine with epoch interruption,
        // wasm would trap at once.
        store.set_epoch_deadline(NO_DEADLINE);
        if let Some(fuel) = limits.fuel {
            store.set_fuel(fuel).map_err(|e| {
                anyhow::Error::from(e).context("fuel needs an engine with `Config::consume_fuel`")
            })?;
        }
        store.data_mut().limiter.max = limits.max_memory;
        Ok(WasmtimeRuntime {
            engine,
            store,
            instance: None,
            wasi: None,
            audit: Audit::default(),
            init_results: Vec::new(),
            limits,
            timer: None,
            expired: None,
            compiler: None,
            winch_fallback: None,
            component: None,
            cache: None,
        })
    }
}
