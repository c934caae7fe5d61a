//! The default [`Runtime`]: Wasmtime, with every import trapping.

use anyhow::{Context, Result, bail};
use wasmtime::component::{Component, Func, Instance, Linker, Val};
use wasmtime::{Config, Engine, Store};

use crate::init_func::InitFunc;
use crate::plan::{GlobalValue, ScalarType};
use crate::runtime::Runtime;

/// Runs the instrumented component in Wasmtime. Every import of the
/// component traps when called, with an error naming the import.
pub struct WasmtimeRuntime {
    engine: Engine,
    store: Store<()>,
    instance: Option<Instance>,
}

impl WasmtimeRuntime {
    /// A runtime with Wasmtime's default configuration (wasm backtraces off,
    /// so that errors stay on one line).
    pub fn new() -> Result<WasmtimeRuntime> {
        let mut config = Config::new();
        config.wasm_backtrace_max_frames(None);
        config.wasm_multi_memory(true);
        config.wasm_memory64(true);
        config.wasm_custom_page_sizes(true);
        Ok(WasmtimeRuntime::with_engine(Engine::new(&config)?))
    }

    /// A runtime on an engine of the caller's.
    pub fn with_engine(engine: Engine) -> WasmtimeRuntime {
        let store = Store::new(&engine, ());
        WasmtimeRuntime {
            engine,
            store,
            instance: None,
        }
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
        let component = Component::new(&self.engine, component)?;
        let mut linker = Linker::<()>::new(&self.engine);
        linker.define_unknown_imports_as_traps(&component)?;
        self.instance = Some(
            linker
                .instantiate_async(&mut self.store, &component)
                .await?,
        );
        Ok(())
    }

    async fn call_init(&mut self, init: &InitFunc) -> Result<()> {
        let func = self.func(init.interface.as_deref(), &init.name)?;
        let ty = func.ty(&self.store);
        if ty.params().len() != 0 {
            bail!("init function `{init}` takes parameters");
        }
        let mut results = vec![Val::Bool(false); ty.results().len()];
        func.call_async(&mut self.store, &[], &mut results).await?;
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
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("failed to start the async runtime")?;
    Ok(runtime.block_on(future))
}
