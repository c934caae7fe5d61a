//! Drop-in for the `component-init-transform` crate (0.3): the same public
//! names and signatures ([`Invoker`], [`initialize`], [`initialize_staged`],
//! [`Stage2Map`]), on top of this crate's pipeline. Switching means changing
//! one dependency line and one `use`:
//!
//! ```text
//! use component_init_transform::{Invoker, initialize_staged};   // before
//! use component_init::transform::{Invoker, initialize_staged};  // after
//! ```
//!
//! # How the caller and this module share the work
//!
//! 1. This module instruments the component (stage 1) and hands the
//!    instrumented bytes to the caller's `initialize` closure.
//! 2. The closure instantiates them in its own runtime, with its own host
//!    functions, calls the init function itself, with whatever arguments it
//!    takes (this module never calls init and never looks for an init
//!    export), and returns an [`Invoker`] over the running instance.
//! 3. This module asks the invoker to call functions that the instrumentation
//!    exported at the top level of the component, by name, each taking no
//!    arguments and returning `s32`, `s64`, `f32`, `f64` or `list<u8>`; an
//!    invoker calls the named export and returns its result. The names are
//!    the [accessors](crate::Accessor) of the plan with a
//!    `component-init-` prefix:
//!    - `component-init-get-memory-N: func() -> list<u8>` returns the next
//!      chunk of memory `N` (at most [`CHUNK`] bytes) and moves on, so one
//!      call never copies more than that: the memory is read front to back
//!      by calling again until a chunk comes back empty. Memories of any
//!      size, 64-bit ones included, are read this way.
//!    - `component-init-get-global-N: func() -> s32|s64|f32|f64`, and for a
//!      `v128` global the pair `component-init-get-global-N-low` and
//!      `component-init-get-global-N-high: func() -> s64` (the low and high
//!      64 bits).
//!    - `component-init-get-probe-N: func() -> s32` (see [`crate::Probe`]).
//!    - `component-init-get-table-N: func() -> list<u8>` and
//!      `component-init-get-ref-global-N: func() -> list<u8>`, for a
//!      component whose code can change tables: like a memory, the next
//!      chunk of the table's slots (8 bytes each, see
//!      [`RefId`](crate::RefId)), read front to back until a chunk comes
//!      back empty; a reference-typed global reads as a table of one slot.
//!      The instrumented component then reads slots with `ref.test` and
//!      `call_ref`: the caller's runtime must support function references
//!      and GC (Wasmtime does; Node 20 does not).
//! 4. The values read become a [`Snapshot`](crate::Snapshot), which is baked
//!    into the original component ([`Plan::apply`](crate::Plan::apply)), or,
//!    staged, into stage 2 ([`Plan::retarget_from`](crate::Plan::retarget_from)
//!    first, which carries tables too).
//!    The output keeps every export of the input, the init export included.
//!
//! An invoker that calls the export it is given by name (as
//! `wasmtime::component::Instance::get_typed_func` does) works unchanged. The
//! names differ from `component-init-transform`'s (`component-init-get-memory`,
//! `component-init-get-module{M}-global{G}`), so an invoker that expects
//! those particular names needs to drop that expectation.
//!
//! Internally the invoker is wrapped as this crate's [`Runtime`]: the
//! closure runs as [`Runtime::instantiate`], and the snapshot phase reads the
//! state.
//!
//! # What differs from `component-init-transform`
//!
//! Everything this crate supports works here too: several memories, modules
//! instantiated more than once, `v128` globals, passive data segments, table
//! code that does not run during init, state in nested components. One
//! limit comes from the invoker's shape (functions without arguments):
//! accessors are added at the top level, and Wasmtime refuses calls from one
//! component instance into another inside the same top-level instance, so a
//! memory or `v128` global defined inside a nested component cannot be read
//! through an invoker; instrumenting such a component fails with an error
//! that says so (use [`crate::initialize`] with a [`Runtime`] for those).
//! Other globals of nested components are read as usual.
//!
//! # Staged
//!
//! [`initialize_staged`] runs init in stage 1 and bakes the snapshot into
//! stage 2, whose top-level core module `i` takes the state of stage 1 module
//! `map(i)` (indices count the core modules of the top level; see
//! [`Plan::retarget`](crate::Plan::retarget) for the rules and the errors when the stages do not
//! correspond). Without stage 2, the snapshot goes into stage 1.

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use wasm_encoder::{
    CanonicalOption, ComponentExportKind, ComponentValType, ExportKind, PrimitiveValType,
};

use crate::component::append::{Appender, CoreItem};
use crate::component::instrument::{self, Cursors, Instrumented};
use crate::component::names;
pub use crate::component::names::{invoker_export, invoker_v128_exports};
use crate::component::parse;
use crate::component::readers::{self, ChunkNames};
use crate::component::snapshot;
pub use crate::component::snapshot::CHUNK;
use crate::edit::CoreExport;
use crate::plan::init_func::InitFunc;
use crate::plan::{Accessor, GlobalValue, Plan, ScalarType, State};
use crate::run::Runtime;

/// Calls the exports of an instantiated, initialized component by name.
/// Each function takes no arguments and returns one value of the type the
/// method is named after; an error (a trap, a missing export) is returned,
/// not panicked on.
#[async_trait]
pub trait Invoker {
    /// Calls `function`, a `func() -> s32`.
    async fn call_s32(&mut self, function: &str) -> Result<i32>;
    /// Calls `function`, a `func() -> s64`.
    async fn call_s64(&mut self, function: &str) -> Result<i64>;
    /// Calls `function`, a `func() -> f32`.
    async fn call_f32(&mut self, function: &str) -> Result<f32>;
    /// Calls `function`, a `func() -> f64`.
    async fn call_f64(&mut self, function: &str) -> Result<f64>;
    /// Calls `function`, a `func() -> list<u8>`.
    async fn call_list_u8(&mut self, function: &str) -> Result<Vec<u8>>;
}

/// A boxed future that can be sent between threads, as
/// `futures::future::BoxFuture` (the same type).
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Pre-initializes `component`: instruments it, passes the instrumented
/// bytes to `initialize`, which instantiates them, runs init and returns an
/// [`Invoker`], reads the state through the invoker and returns `component`
/// with that state baked in. See the [module documentation](self).
pub async fn initialize(
    component: &[u8],
    initialize: impl FnOnce(Vec<u8>) -> BoxFuture<'static, Result<Box<dyn Invoker>>>,
) -> Result<Vec<u8>> {
    initialize_staged(component, None, initialize).await
}

/// Stage 2 of [`initialize_staged`]: the component that gets the snapshot,
/// and a function from each of its top-level core module indices to the
/// stage 1 module index whose state that module takes.
pub type Stage2Map<'a> = Option<(&'a [u8], &'a dyn Fn(u32) -> u32)>;

/// Like [`initialize`], but the snapshot taken in `component_stage1` is
/// baked into the stage 2 component of `component_stage2_and_map_module_index`
/// (when given), module by module through its map; see
/// [`Plan::retarget_from`](crate::Plan::retarget_from).
pub async fn initialize_staged(
    component_stage1: &[u8],
    component_stage2_and_map_module_index: Stage2Map<'_>,
    initialize: impl FnOnce(Vec<u8>) -> BoxFuture<'static, Result<Box<dyn Invoker>>>,
) -> Result<Vec<u8>> {
    let (instrumented, plan) = instrument_for_invoker(component_stage1)?;
    let mut runtime = InvokerRuntime {
        initialize: Some(initialize),
        invoker: None,
        read: HashMap::new(),
        limits: memory_limits(&plan),
    };
    let reads_tables = plan
        .accessors
        .iter()
        .any(|a| matches!(a.state, State::Table { .. } | State::RefGlobal { .. }));
    runtime
        .instantiate(&instrumented)
        .await
        .context(if reads_tables {
            "the `initialize` closure failed (the component's code can change tables, so the \
             instrumented component reads them with `ref.test` and `call_ref`: the runtime \
             must support function references and GC)"
        } else {
            "the `initialize` closure failed"
        })?;
    let snapshot = snapshot::read(&mut runtime, &plan).await?;
    match component_stage2_and_map_module_index {
        None => plan.apply(component_stage1, &snapshot),
        Some((stage2, map)) => {
            let retargeted = plan
                .retarget_from(component_stage1, &snapshot, stage2, map)
                .context("failed to carry the snapshot over to stage 2")?;
            retargeted.plan.apply(stage2, &retargeted.snapshot)
        }
    }
}

/// What the plan records as the init function: the caller's closure runs
/// init, so there is no export to name.
fn closure_init() -> InitFunc {
    InitFunc {
        interface: None,
        name: "<the initialize closure>".to_string(),
        args: None,
    }
}

/// Instruments `component` for reading its state through an [`Invoker`]:
/// the usual instrumentation, plus the top-level exports described in the
/// [module documentation](self). Returns the instrumented component and
/// the plan.
pub fn instrument_for_invoker(component: &[u8]) -> Result<(Vec<u8>, Plan)> {
    let parsed = parse::parse(component)?;
    let taken: Vec<&str> = parsed
        .root
        .exports
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let Instrumented { component, plan } = instrument::instrument_parsed(
        &parsed,
        closure_init(),
        false,
        |app, plan, accessors, cursors| {
            add_invoker_exports(app, plan, accessors, cursors, &taken)
                .context("failed to add the exports that the invoker calls")
        },
    )?;
    Ok((component, plan))
}

/// How the invoker reads one accessor.
enum Reader<'a> {
    /// Re-export the lifted accessor (a scalar global or a probe).
    Alias(&'a Accessor),
    /// A chunked reader of a top-level memory.
    Memory(&'a Accessor),
    /// Low and high halves of a top-level `v128` global.
    V128(&'a Accessor),
    /// The table reader's cursor over a top-level table or
    /// reference-typed global.
    Table(&'a Accessor),
}

impl<'a> Reader<'a> {
    /// How the invoker reads `accessor`; an error for the state an invoker
    /// cannot read.
    fn of(accessor: &'a Accessor) -> Result<Reader<'a>> {
        let nested = !accessor.path.is_empty();
        Ok(match accessor.state {
            State::Memory { index, .. } if nested => bail!(
                "memory {index} of core module {} is defined inside nested component instance \
                 {}: an invoker cannot read it (calls between component instances inside one \
                 top-level instance trap in Wasmtime, and invoker functions take no \
                 arguments); pre-initialize such components with `component_init::initialize`",
                accessor.module,
                path_string(&accessor.path)
            ),
            State::Global {
                index,
                ty: ScalarType::V128,
            } if nested => bail!(
                "v128 global {index} of core module {} is defined inside nested component \
                 instance {}: an invoker cannot read it (invoker functions return no tuples); \
                 pre-initialize such components with `component_init::initialize`",
                accessor.module,
                path_string(&accessor.path)
            ),
            State::Memory { .. } => Reader::Memory(accessor),
            State::Global {
                ty: ScalarType::V128,
                ..
            } => Reader::V128(accessor),
            State::Global { .. } | State::Probe { .. } => Reader::Alias(accessor),
            State::Table { index } | State::RefGlobal { index } if nested => bail!(
                "{} {index} of core module {} is defined inside nested component instance \
                 {}, whose code can change tables during init: an invoker cannot read it \
                 (calls between component instances inside one top-level instance trap in \
                 Wasmtime, and invoker functions take no arguments); pre-initialize such \
                 components with `component_init::initialize`",
                if matches!(accessor.state, State::Table { .. }) {
                    "table"
                } else {
                    "reference-typed global"
                },
                accessor.module,
                path_string(&accessor.path)
            ),
            State::Table { .. } | State::RefGlobal { .. } => Reader::Table(accessor),
        })
    }

    /// The top-level exports the invoker calls.
    fn export_names(&self) -> Vec<String> {
        match self {
            Reader::Alias(a) | Reader::Memory(a) | Reader::Table(a) => {
                vec![invoker_export(&a.func)]
            }
            Reader::V128(a) => invoker_v128_exports(&a.func).to_vec(),
        }
    }
}

/// Appends the top-level exports that an invoker calls, after the accessor
/// instance `accessor_instance`; `taken` are the component's own export
/// names.
fn add_invoker_exports(
    app: &mut Appender,
    plan: &Plan,
    accessor_instance: u32,
    cursors: &Cursors,
    taken: &[&str],
) -> Result<()> {
    let readers = plan
        .accessors
        .iter()
        .map(Reader::of)
        .collect::<Result<Vec<_>>>()?;
    let export_names: Vec<Vec<String>> = readers.iter().map(Reader::export_names).collect();
    if let Some(taken) = export_names
        .iter()
        .flatten()
        .find(|n| taken.contains(&n.as_str()) || *n == names::ACCESSOR_INSTANCE_EXPORT)
    {
        bail!(
            "the component already exports `{taken}`, a name that the instrumentation for \
             invokers needs"
        );
    }
    let memories: Vec<&Accessor> = readers
        .iter()
        .filter_map(|r| match r {
            Reader::Memory(a) => Some(*a),
            _ => None,
        })
        .collect();
    let v128s: Vec<&Accessor> = readers
        .iter()
        .filter_map(|r| match r {
            Reader::V128(a) => Some(*a),
            _ => None,
        })
        .collect();
    let mut chunked = append_chunk_reader(app, &memories, &v128s)?.into_iter();

    // Component functions of each reader, in reader order.
    let mut reader_funcs = Vec::with_capacity(readers.len());
    for reader in &readers {
        reader_funcs.push(match reader {
            // Scalar globals and probes: the accessor instance's functions
            // as they are.
            Reader::Alias(a) => {
                vec![app.alias_export(accessor_instance, ComponentExportKind::Func, &a.func)?]
            }
            Reader::Memory(_) | Reader::V128(_) => chunked
                .next()
                .context("internal error: a chunk reader function was not lifted")?,
            Reader::Table(a) => {
                let &(_, cursor, memory) = cursors
                    .0
                    .iter()
                    .find(|(name, _, _)| *name == a.func)
                    .with_context(|| format!("internal error: no cursor for `{}`", a.func))?;
                let list_u8 = app.list_u8_type();
                let list_func = app.func_type(&[], Some(ComponentValType::Type(list_u8)));
                vec![app.lift(cursor, list_func, &[CanonicalOption::Memory(memory)])]
            }
        });
    }
    for (funcs, names) in reader_funcs.iter().zip(&export_names) {
        if funcs.len() != names.len() {
            bail!("internal error: reader functions and export names differ in number");
        }
        for (func, name) in funcs.iter().zip(names) {
            app.export(name, ComponentExportKind::Func, *func)?;
        }
    }
    Ok(())
}

/// Appends the chunk reader module for `memories` and `v128s`, instantiated
/// with the state it reads, and lifts its functions; returns the lifted
/// functions of each memory (one) and then each `v128` global (two), in the
/// order of the readers.
fn append_chunk_reader(
    app: &mut Appender,
    memories: &[&Accessor],
    v128s: &[&Accessor],
) -> Result<Vec<Vec<u32>>> {
    if memories.is_empty() && v128s.is_empty() {
        return Ok(Vec::new());
    }
    let module = app.core_module(&readers::chunk_reader_module(memories, v128s.len())?);
    let mut state_names = Vec::new();
    let mut state = Vec::new();
    for (k, a) in memories.iter().enumerate() {
        let export = CoreExport::of(&a.state);
        state.push(app.alias_core_export(a.instance, export.kind, &export.name)?);
        state_names.push((ChunkNames::memory(k), export.kind));
    }
    for (k, a) in v128s.iter().enumerate() {
        let export = CoreExport::of(&a.state);
        state.push(app.alias_core_export(a.instance, export.kind, &export.name)?);
        state_names.push((ChunkNames::v128(k), export.kind));
    }
    let items: Vec<CoreItem<'_>> = state_names
        .iter()
        .zip(&state)
        .map(|((name, kind), index)| CoreItem {
            name,
            kind: *kind,
            index: *index,
        })
        .collect();
    let bundle = app.core_instance_of(&items);
    let instance = app.core_instantiate(module, &[("state", bundle)]);

    // Its functions and memory.
    let mut chunk_funcs = Vec::with_capacity(memories.len());
    for k in 0..memories.len() {
        chunk_funcs.push(app.alias_core_export(
            instance,
            ExportKind::Func,
            &ChunkNames::chunks(k),
        )?);
    }
    let mut halves = Vec::with_capacity(v128s.len());
    for k in 0..v128s.len() {
        let [low, high] = ChunkNames::halves(k);
        halves.push([
            app.alias_core_export(instance, ExportKind::Func, &low)?,
            app.alias_core_export(instance, ExportKind::Func, &high)?,
        ]);
    }
    let own_memory = app.alias_core_export(instance, ExportKind::Memory, "memory")?;

    let list_u8 = app.list_u8_type();
    let list_func = app.func_type(&[], Some(ComponentValType::Type(list_u8)));
    let s64_func = app.func_type(
        &[],
        Some(ComponentValType::Primitive(PrimitiveValType::S64)),
    );
    let mut lifted = Vec::with_capacity(memories.len() + v128s.len());
    for func in chunk_funcs {
        lifted.push(vec![app.lift(
            func,
            list_func,
            &[CanonicalOption::Memory(own_memory)],
        )]);
    }
    for [low, high] in halves {
        lifted.push(vec![
            app.lift(low, s64_func, &[]),
            app.lift(high, s64_func, &[]),
        ]);
    }
    Ok(lifted)
}

fn path_string(path: &[u32]) -> String {
    path.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The caller's closure and the invoker it returns, as a [`Runtime`].
struct InvokerRuntime<F> {
    initialize: Option<F>,
    invoker: Option<Box<dyn Invoker>>,
    /// Bytes read so far from each memory accessor.
    read: HashMap<String, u64>,
    /// The most bytes each memory accessor can return in all (4 GiB for a
    /// 32-bit memory), so that a misbehaving invoker cannot make the read
    /// go on forever.
    limits: HashMap<String, u64>,
}

fn memory_limits(plan: &Plan) -> HashMap<String, u64> {
    plan.accessors
        .iter()
        .filter_map(|a| match a.state {
            State::Memory { memory64, .. } => {
                Some((a.func.clone(), if memory64 { u64::MAX } else { 1 << 32 }))
            }
            _ => None,
        })
        .collect()
}

impl<F> InvokerRuntime<F> {
    fn invoker(invoker: &mut Option<Box<dyn Invoker>>) -> Result<&mut Box<dyn Invoker>> {
        invoker
            .as_mut()
            .context("the component has not been instantiated")
    }
}

impl<F> Runtime for InvokerRuntime<F>
where
    F: FnOnce(Vec<u8>) -> BoxFuture<'static, Result<Box<dyn Invoker>>>,
{
    /// Runs the caller's closure, which instantiates `component` and runs
    /// init; it runs once.
    async fn instantiate(&mut self, component: &[u8]) -> Result<()> {
        let Some(initialize) = self.initialize.take() else {
            bail!("the `initialize` closure already ran; it runs once");
        };
        self.invoker = Some(initialize(component.to_vec()).await?);
        Ok(())
    }

    /// Init ran inside the closure, as part of instantiation: there is
    /// nothing left to call, only a check that it happened.
    async fn call_init(&mut self, _init: &InitFunc) -> Result<()> {
        Self::invoker(&mut self.invoker)?;
        Ok(())
    }

    async fn read_memory(
        &mut self,
        _interface: &str,
        func: &str,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>> {
        let export = invoker_export(func);
        if len != CHUNK {
            bail!("`{export}` returns chunks of {CHUNK} bytes, not {len}");
        }
        let read_so_far = self.read.entry(func.to_string()).or_default();
        if offset != *read_so_far {
            bail!(
                "`{export}` reads its memory front to back: the next chunk starts at {read_so_far}, \
                 not {offset}"
            );
        }
        let bytes = Self::invoker(&mut self.invoker)?
            .call_list_u8(&export)
            .await
            .with_context(|| format!("the invoker failed to call `{export}`"))?;
        if bytes.len() > len as usize {
            bail!(
                "`{export}` returned {} bytes, more than the {len} of a chunk",
                bytes.len()
            );
        }
        let limit = self.limits.get(func).copied().unwrap_or(u64::MAX);
        if read_so_far.saturating_add(bytes.len() as u64) > limit {
            bail!("`{export}` returned more than its memory can hold ({limit} bytes)");
        }
        *read_so_far += bytes.len() as u64;
        Ok(bytes)
    }

    async fn read_global(
        &mut self,
        _interface: &str,
        func: &str,
        ty: ScalarType,
    ) -> Result<GlobalValue> {
        let invoker = Self::invoker(&mut self.invoker)?;
        let export = invoker_export(func);
        let failed = |name: &str| format!("the invoker failed to call `{name}`");
        Ok(match ty {
            ScalarType::I32 => GlobalValue::I32(
                invoker
                    .call_s32(&export)
                    .await
                    .with_context(|| failed(&export))?,
            ),
            ScalarType::I64 => GlobalValue::I64(
                invoker
                    .call_s64(&export)
                    .await
                    .with_context(|| failed(&export))?,
            ),
            ScalarType::F32 => GlobalValue::F32(
                invoker
                    .call_f32(&export)
                    .await
                    .with_context(|| failed(&export))?
                    .to_bits(),
            ),
            ScalarType::F64 => GlobalValue::F64(
                invoker
                    .call_f64(&export)
                    .await
                    .with_context(|| failed(&export))?
                    .to_bits(),
            ),
            ScalarType::V128 => {
                let [low, high] = invoker_v128_exports(func);
                let low_bits = invoker.call_s64(&low).await.with_context(|| failed(&low))?;
                let high_bits = invoker
                    .call_s64(&high)
                    .await
                    .with_context(|| failed(&high))?;
                GlobalValue::V128(
                    u128::from(low_bits as u64) | (u128::from(high_bits as u64) << 64),
                )
            }
        })
    }
}
