//! The engine: which compiler compiles the instrumented component, the
//! engine configuration, and compiling (Cranelift takes over where Winch
//! cannot).

use anyhow::Result;
use std::cell::RefCell;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, Strategy};

use super::WasmtimeRuntime;
use crate::run::limits::Limits;

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
    pub(super) fn resolve(self, limits: &Limits) -> Compiler {
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
    /// The engine configuration [`RuntimeBuilder::build`](super::RuntimeBuilder::build)
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

    /// Compiles `component` (or loads it from the compilation cache) now,
    /// for [`Runtime::instantiate`](crate::Runtime::instantiate) of the same
    /// bytes, which then takes it instead of compiling: the caller can do
    /// other work meanwhile on other threads. The bytes must not change in
    /// between.
    pub(crate) fn precompile(&mut self, component: &[u8]) -> Result<()> {
        let compiled = self.compile_now(component)?;
        PRECOMPILED.set(Some(Precompiled {
            at: component.as_ptr() as usize,
            len: component.len(),
            compiled,
        }));
        Ok(())
    }

    /// The compiler this runtime compiles with (`None` on an engine of the
    /// caller's): once compiled, the one that compiled the component.
    pub(crate) fn compiler(&self) -> Option<Compiler> {
        self.compiler
    }

    /// Compiles `component`, or takes it as [`precompile`](Self::precompile)
    /// compiled it.
    pub(super) fn compile(&mut self, component: &[u8]) -> Result<Component> {
        if let Some(precompiled) = PRECOMPILED.take()
            && precompiled.at == component.as_ptr() as usize
            && precompiled.len == component.len()
            && Engine::same(precompiled.compiled.engine(), &self.engine)
        {
            return Ok(precompiled.compiled);
        }
        self.compile_now(component)
    }

    /// Compiles `component`; when Winch cannot, starts over on a Cranelift
    /// engine (and a new store, before anything ran in the old one).
    fn compile_now(&mut self, component: &[u8]) -> Result<Component> {
        let winch_error = match Component::new(&self.engine, component) {
            Ok(compiled) => return Ok(compiled),
            Err(e) if self.compiler == Some(Compiler::Winch) => e,
            Err(e) => return Err(e.into()),
        };
        self.switch_to_cranelift()?;
        self.winch_fallback = Some(format!("{:#}", anyhow::Error::from(winch_error)));
        Ok(Component::new(&self.engine, component)?)
    }

    /// Readies the runtime for the instrumented component of `plan`: one
    /// that reads tables does it with GC instructions (`ref.test`,
    /// `call_ref`), which Winch does not compile, so it goes to Cranelift
    /// at once rather than after Winch fails on it.
    pub(crate) fn prepare_for(&mut self, plan: &crate::plan::Plan) -> Result<()> {
        if self.compiler == Some(Compiler::Winch) && plan.reads_tables() {
            self.switch_to_cranelift()?;
            self.winch_fallback = Some(
                "its table reader uses GC instructions (`ref.test`, `call_ref`), which Winch \
                 does not compile"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Replaces the engine with a Cranelift one of the same settings, and
    /// the store with one on it. Nothing may have run in the old store: its
    /// host data (WASI context, limiter) moves over as it is.
    pub(super) fn switch_to_cranelift(&mut self) -> Result<()> {
        let mut config = WasmtimeRuntime::config(&self.limits, Compiler::Cranelift);
        config.cache(self.cache.clone());
        let engine = Engine::new(&config)?;
        let fresh = WasmtimeRuntime::on_engine(engine, self.limits.clone())?;
        let old = std::mem::replace(&mut self.store, fresh.store);
        *self.store.data_mut() = old.into_data();
        self.engine = fresh.engine;
        self.compiler = Some(Compiler::Cranelift);
        Ok(())
    }
}

/// A component [`WasmtimeRuntime::precompile`] compiled, and where the bytes
/// it was compiled from are.
struct Precompiled {
    at: usize,
    len: usize,
    compiled: Component,
}

thread_local! {
    /// What [`WasmtimeRuntime::precompile`] compiled on this thread, until
    /// the next compile takes it (or drops it, for other bytes).
    static PRECOMPILED: RefCell<Option<Precompiled>> = const { RefCell::new(None) };
}
