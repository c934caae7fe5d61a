//! Phase 3 for a core module in Wasmtime: compile it (Cranelift where Winch
//! cannot), link WASI preview1 when it is granted (every other import
//! traps, naming itself), instantiate, run `_initialize` and the init
//! function under the limits, and read the state back from the exports.

use anyhow::{Context, Result, bail};
use tracing::instrument::WithSubscriber;
use wasmtime::{Instance, Linker, Module, Val};

use super::WasmtimeRuntime;
use crate::edit::probe::{Fired, Probe};
use crate::module::ModulePlan;
use crate::plan::image::MemoryImage;
use crate::plan::{GlobalValue, Snapshot, State, Value};
use crate::run::wasi::{Host, Recorder, open_resources_error};

impl WasmtimeRuntime {
    /// Instantiates the instrumented `module`, runs the calls of `plan` and
    /// reads back the state it lists.
    pub(crate) async fn snapshot_module(
        &mut self,
        module: &[u8],
        plan: &ModulePlan,
    ) -> Result<Snapshot> {
        let compiled = self.compile_module(module)?;
        let mut linker = Linker::<Host>::new(&self.engine);
        if let Some(options) = &self.wasi {
            if let Some(fixed) = &options.reproducible {
                fixed.check(options.inherit_env, false, std::iter::empty())?;
                if !options.dirs.is_empty() {
                    bail!(
                        "`--dir` cannot be made reproducible for a core module: WASI \
                         preview1 gives no way to fix the order of directory listings or file \
                         times; leave out `--dir` or `--reproducible`"
                    );
                }
            }
            let limiter = std::mem::take(&mut self.store.data_mut().limiter);
            *self.store.data_mut() = Host::with_wasi_p1(options)?;
            self.store.data_mut().limiter = limiter;
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, Host::p1)?;
        }
        linker.define_unknown_imports_as_traps(&compiled)?;
        // Start functions count against the limits: they are init work.
        self.start_timer();
        let instance = WasmtimeRuntime::bounded(
            self.expired.clone(),
            linker.instantiate_async(&mut self.store, &compiled),
        )
        .await
        .map_err(|e| self.explain(e))?;
        self.check_module_probes(&instance, plan)?;
        let recorder = Recorder::default();
        let mut outcome = Ok(());
        for name in &plan.calls {
            outcome = self
                .call_module_export(&instance, name)
                .with_subscriber(recorder.clone())
                .await;
            if outcome.is_err() {
                break;
            }
        }
        self.end_limits();
        if let Some(options) = &self.wasi {
            self.audit = recorder.audit(options, self.store.data());
        }
        outcome?;
        if let Some(options) = &self.wasi {
            let open = self.store.data_mut().open_resources_p1(options.dirs.len());
            if !open.is_empty() && !options.allow_open_resources {
                return Err(open_resources_error(&open));
            }
            self.audit.set_open_resources(open);
        }
        self.read_module_state(&instance, plan)
    }

    /// Compiles `module`; when Winch cannot, compiles it with Cranelift on
    /// a new engine (nothing ran in the store yet).
    fn compile_module(&mut self, module: &[u8]) -> Result<Module> {
        match Module::new(&self.engine, module) {
            Ok(compiled) => Ok(compiled),
            Err(e) if self.compiler == Some(super::Compiler::Winch) => {
                let winch_error = format!("{:#}", anyhow::Error::from(e));
                self.switch_to_cranelift()?;
                self.winch_fallback = Some(winch_error);
                Ok(Module::new(&self.engine, module)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Calls the module's export `name`, a function without parameters or
    /// results, within the limits.
    async fn call_module_export(&mut self, instance: &Instance, name: &str) -> Result<()> {
        let func = instance
            .get_typed_func::<(), ()>(&mut self.store, name)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "the module's export `{name}` is not a function without parameters or results"
                )
            })?;
        let called =
            WasmtimeRuntime::bounded(self.expired.clone(), func.call_async(&mut self.store, ()))
                .await;
        called.map_err(|e| {
            let e = match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => anyhow::anyhow!(
                    "it called `proc_exit` with status {}; init must return instead",
                    exit.0
                ),
                None => self.init_error(e),
            };
            e.context(format!("init function `{name}` failed"))
        })
    }

    /// Fails if instantiation (the start function) ran an instruction a
    /// snapshot cannot carry.
    fn check_module_probes(&mut self, instance: &Instance, plan: &ModulePlan) -> Result<()> {
        for (name, state) in &plan.states {
            if let State::Probe {
                probe: Probe::Unsnapshottable,
                ..
            } = state
            {
                let global = instance
                    .get_global(&mut self.store, name)
                    .with_context(|| format!("internal error: no probe export `{name}`"))?;
                if let Val::I32(v) = global.get(&mut self.store)
                    && let Some(fired) = Fired::decode(v)
                {
                    return Err(fired.during_module_instantiation());
                }
            }
        }
        Ok(())
    }

    /// Reads every piece of state `plan` lists from the module's exports.
    fn read_module_state(&mut self, instance: &Instance, plan: &ModulePlan) -> Result<Snapshot> {
        let mut values = Vec::with_capacity(plan.states.len());
        for (name, state) in &plan.states {
            let value = match state {
                State::Memory { .. } => {
                    let memory = instance
                        .get_memory(&mut self.store, name)
                        .with_context(|| format!("internal error: no memory export `{name}`"))?;
                    let mut image = MemoryImage::new();
                    image.push(memory.data(&self.store));
                    Value::Memory(image)
                }
                State::Global { .. } | State::Probe { .. } => {
                    let global = instance
                        .get_global(&mut self.store, name)
                        .with_context(|| format!("internal error: no global export `{name}`"))?;
                    Value::Global(match global.get(&mut self.store) {
                        Val::I32(v) => GlobalValue::I32(v),
                        Val::I64(v) => GlobalValue::I64(v),
                        Val::F32(bits) => GlobalValue::F32(bits),
                        Val::F64(bits) => GlobalValue::F64(bits),
                        Val::V128(v) => GlobalValue::V128(v.as_u128()),
                        other => bail!(
                            "internal error: global export `{name}` holds {:?}, not a number",
                            other.ty(&self.store)
                        ),
                    })
                }
            };
            values.push(value);
        }
        Ok(Snapshot { values })
    }
}
