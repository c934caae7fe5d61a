//! Phase 3 for a core module in Wasmtime: compile it (Cranelift where Winch
//! cannot), link WASI preview1 when it is granted (every other import
//! traps, naming itself), instantiate, run `_initialize` and the init
//! function under the limits, and read the state back from the exports.

use anyhow::{Context, Result, bail};
use tracing::instrument::WithSubscriber;
use wasmtime::{Instance, Linker, Module, Val};

use super::WasmtimeRuntime;
use crate::edit::probe::{Fired, Probe};
use crate::edit::tables::{TableEdit, TableImage};
use crate::module::instrument::TablePlan;
use crate::module::{ModulePlan, ModuleSnapshot};
use crate::plan::image::MemoryImage;
use crate::plan::{GlobalValue, Snapshot, State, Value};
use crate::run::wasi::{Host, Recorder, open_resources_error};
use std::collections::HashMap;
use wasmtime::Ref;

impl WasmtimeRuntime {
    /// Instantiates the instrumented `module`, runs the calls of `plan` and
    /// reads back the state it lists, and its tables and reference-typed
    /// globals when init changed any.
    pub(crate) async fn snapshot_module(
        &mut self,
        module: &[u8],
        plan: &ModulePlan,
    ) -> Result<ModuleSnapshot> {
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
        let tables = match &plan.tables {
            Some(tables) => self.read_module_tables(&instance, tables)?,
            None => None,
        };
        Ok(ModuleSnapshot {
            state: self.read_module_state(&instance, plan)?,
            tables,
        })
    }

    /// Reads the tables and reference-typed globals `plan` lists, if a
    /// table mutation or a write of such a global ran (else they are as the
    /// module declares them, and the output keeps them so).
    fn read_module_tables(
        &mut self,
        instance: &Instance,
        plan: &TablePlan,
    ) -> Result<Option<TableEdit>> {
        let changed = instance
            .get_global(&mut self.store, &plan.changed)
            .with_context(|| format!("internal error: no probe export `{}`", plan.changed))?;
        if changed.get(&mut self.store).i32() == Some(0) {
            return Ok(None);
        }
        // A function's reference is the same pointer wherever it is taken
        // (an export, `ref.func`, a table slot) in one instance.
        let mut funcs = HashMap::new();
        for (name, index) in &plan.funcs {
            let func = instance
                .get_func(&mut self.store, name)
                .with_context(|| format!("internal error: no function export `{name}`"))?;
            funcs.insert(func.to_raw(&mut self.store) as usize, *index);
        }
        let mut edit = TableEdit::default();
        for (index, name) in &plan.tables {
            let table = instance
                .get_table(&mut self.store, name)
                .with_context(|| format!("internal error: no table export `{name}`"))?;
            let size = table.size(&self.store);
            let mut slots = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            for slot in 0..size {
                let value = table.get(&mut self.store, slot);
                let place = || format!("slot {slot} of table {index}");
                slots.push(self.function_of(value, &funcs, place)?);
            }
            edit.tables.push(TableImage {
                index: *index,
                slots,
            });
        }
        for (index, name) in &plan.other_tables {
            let table = instance
                .get_table(&mut self.store, name)
                .with_context(|| format!("internal error: no table export `{name}`"))?;
            for slot in 0..table.size(&self.store) {
                if let Some(value) = table.get(&mut self.store, slot)
                    && !value.is_null()
                {
                    bail!(
                        "slot {slot} of table {index} holds a non-null reference that is not a \
                         function (an externref or a GC object); no element segment can \
                         express it, so init must leave such tables null"
                    );
                }
            }
        }
        for (index, name) in &plan.globals {
            let global = instance
                .get_global(&mut self.store, name)
                .with_context(|| format!("internal error: no global export `{name}`"))?;
            let value = global.get(&mut self.store).ref_();
            let place = || format!("global {index}");
            edit.globals
                .push((*index, self.function_of(value, &funcs, place)?));
        }
        Ok(Some(edit))
    }

    /// The function index `value` (a reference read from `place`) names,
    /// `None` for null; an error for what no segment can express.
    fn function_of(
        &mut self,
        value: Option<Ref>,
        funcs: &HashMap<usize, u32>,
        place: impl Fn() -> String,
    ) -> Result<Option<u32>> {
        match value {
            None => Ok(None),
            Some(value) if value.is_null() => Ok(None),
            Some(Ref::Func(Some(func))) => {
                let raw = func.to_raw(&mut self.store) as usize;
                match funcs.get(&raw) {
                    Some(&index) => Ok(Some(index)),
                    None => bail!(
                        "{} holds a function the module cannot name (one made by the host); \
                         no element segment can express it",
                        place()
                    ),
                }
            }
            Some(_) => bail!(
                "{} holds a non-null reference that is not a function (an externref or a GC \
                 object); no element segment can express it, so init must leave it null",
                place()
            ),
        }
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
                State::Table { .. } | State::RefGlobal { .. } => {
                    bail!("internal error: a core module's plan reads `{name}` through an accessor")
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
