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
//!    the [accessors](crate::plan::Accessor) of the plan with a
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
//!    - `component-init-get-probe-N: func() -> s32` (see [`crate::probe`]).
//! 4. The values read become a [`Snapshot`](crate::Snapshot), which is baked
//!    into the original component ([`Plan::apply`](crate::Plan::apply)), or,
//!    staged, into stage 2 ([`Plan::retarget`](crate::Plan::retarget) first).
//!    The output keeps every export of the input, the init export included.
//!
//! An invoker that calls the export it is given by name (as
//! `wasmtime::component::Instance::get_typed_func` does) works unchanged. The
//! names differ from `component-init-transform`'s (`component-init-get-memory`,
//! `component-init-get-module{M}-global{G}`), so an invoker that expects
//! those particular names needs to drop that expectation.
//!
//! Internally the invoker is wrapped as this crate's [`Runtime`]: the
//! closure runs as [`Runtime::instantiate`], and [`snapshot::read`] reads the
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
//! [`crate::retarget`] for the rules and the errors when the stages do not
//! correspond). Without stage 2, the snapshot goes into stage 1.

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, ComponentAliasSection, ComponentExportKind,
    ComponentExportSection, ComponentTypeSection, ComponentValType, ConstExpr, EntityType,
    ExportKind, Function, GlobalType, ImportSection, InstanceSection, Instruction, MemoryType,
    ModuleArg, ModuleSection, PrimitiveValType, TypeSection, ValType,
};
use wasmparser::{ComponentExternalKind, Parser, Payload, Validator};

use crate::codegen;
use crate::init_func::InitFunc;
use crate::instrument::{self, Instrumented};
use crate::names;
use crate::parse::Counts;
use crate::plan::{Accessor, GlobalValue, Plan, ScalarType, State};
use crate::runtime::Runtime;
use crate::snapshot::{self, CHUNK};

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
/// (when given), module by module through its map; see [`crate::retarget`].
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
    runtime
        .instantiate(&instrumented)
        .await
        .context("the `initialize` closure failed")?;
    let snapshot = snapshot::read(&mut runtime, &plan).await?;
    match component_stage2_and_map_module_index {
        None => plan.apply(component_stage1, &snapshot),
        Some((stage2, map)) => {
            let retargeted = plan
                .retarget(&snapshot, stage2, map)
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

/// The top-level export through which an invoker reads `func`, an accessor
/// of the plan (a scalar one, or a memory).
pub fn invoker_export(func: &str) -> String {
    format!("component-init-{func}")
}

/// The two exports, low and high 64 bits, through which an invoker reads
/// `func`, a `v128` accessor.
pub fn invoker_v128_exports(func: &str) -> [String; 2] {
    [
        format!("component-init-{func}-low"),
        format!("component-init-{func}-high"),
    ]
}

/// Instruments `component` for reading its state through an [`Invoker`]:
/// the usual instrumentation, plus the top-level exports described in the
/// [module documentation](self). Returns the instrumented component and
/// the plan.
pub fn instrument_for_invoker(component: &[u8]) -> Result<(Vec<u8>, Plan)> {
    let Instrumented {
        component: instrumented,
        plan,
    } = instrument::instrument_with_external_init(component, closure_init())?;
    let bytes = add_invoker_exports(&instrumented, &plan)
        .context("failed to add the exports that the invoker calls")?;
    Ok((bytes, plan))
}

/// Index-space sizes of the instrumented component's top level, and what
/// this module needs from its exports.
struct Top {
    /// Sizes of the index spaces.
    counts: Counts,
    /// The component instance exported as the accessor instance.
    accessors: Option<u32>,
    /// Every top-level export name.
    exports: Vec<String>,
}

impl Top {
    fn read(bytes: &[u8]) -> Result<Top> {
        let types = Validator::new_with_features(crate::parse::features())
            .validate_all(bytes)
            .context("internal error: the instrumented component does not validate")?;
        let types = types.as_ref();
        let mut top = Top {
            counts: Counts::of(&types),
            accessors: None,
            exports: Vec::new(),
        };
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentExportSection(section) if depth == 0 => {
                    for export in section {
                        let export = export?;
                        if export.name.name == names::ACCESSOR_INSTANCE_EXPORT
                            && export.kind == ComponentExternalKind::Instance
                        {
                            top.accessors = Some(export.index);
                        }
                        top.exports.push(export.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(top)
    }
}

/// How the invoker reads one accessor.
enum Reader<'a> {
    /// Re-export the lifted accessor (a scalar global or a probe).
    Alias(&'a Accessor),
    /// A chunked reader of a top-level memory.
    Memory(&'a Accessor),
    /// Low and high halves of a top-level `v128` global.
    V128(&'a Accessor),
}

/// Appends, to the instrumented component, the top-level exports that an
/// invoker calls.
fn add_invoker_exports(instrumented: &[u8], plan: &Plan) -> Result<Vec<u8>> {
    let mut readers = Vec::new();
    for accessor in &plan.accessors {
        let nested = !accessor.path.is_empty();
        let reader = match accessor.state {
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
        };
        readers.push(reader);
    }
    if readers.is_empty() {
        return Ok(instrumented.to_vec());
    }

    let top = Top::read(instrumented)?;
    let Some(accessor_instance) = top.accessors else {
        bail!(
            "internal error: the instrumented component does not export `{}`",
            names::ACCESSOR_INSTANCE_EXPORT
        );
    };
    let mut export_names = Vec::new();
    for reader in &readers {
        match reader {
            Reader::Alias(a) | Reader::Memory(a) => export_names.push(invoker_export(&a.func)),
            Reader::V128(a) => export_names.extend(invoker_v128_exports(&a.func)),
        }
    }
    if let Some(taken) = export_names.iter().find(|n| top.exports.contains(n)) {
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

    // New sections, appended after the instrumented component's last one.
    let mut appended = Vec::new();
    let mut funcs = top.counts.funcs;
    // Component function index of each reader's lifted (or aliased) function,
    // in reader order; v128 readers have two.
    let mut reader_funcs: Vec<Vec<u32>> = vec![Vec::new(); readers.len()];

    if !memories.is_empty() || !v128s.is_empty() {
        // The reader module, instantiated with the state it reads.
        let module = reader_module(&memories, v128s.len() as u32);
        push_section(&mut appended, &ModuleSection(&module));
        let mut aliases = ComponentAliasSection::new();
        let mut state = Vec::new();
        for (k, a) in memories.iter().enumerate() {
            let State::Memory { index, .. } = a.state else {
                continue;
            };
            aliases.alias(Alias::CoreInstanceExport {
                instance: a.instance,
                kind: ExportKind::Memory,
                name: &names::core_memory_export(index),
            });
            state.push((
                format!("m{k}"),
                ExportKind::Memory,
                top.counts.memories + k as u32,
            ));
        }
        for (k, a) in v128s.iter().enumerate() {
            let State::Global { index, .. } = a.state else {
                continue;
            };
            aliases.alias(Alias::CoreInstanceExport {
                instance: a.instance,
                kind: ExportKind::Global,
                name: &names::core_global_export(index),
            });
            state.push((
                format!("g{k}"),
                ExportKind::Global,
                top.counts.globals + k as u32,
            ));
        }
        push_section(&mut appended, &aliases);

        let mut instances = InstanceSection::new();
        instances.export_items(state.iter().map(|(n, kind, i)| (n.as_str(), *kind, *i)));
        instances.instantiate(
            top.counts.modules,
            [("state", ModuleArg::Instance(top.counts.core_instances))],
        );
        push_section(&mut appended, &instances);
        let reader_instance = top.counts.core_instances + 1;

        // Its functions and memory.
        let mut aliases = ComponentAliasSection::new();
        let mut core_names = Vec::new();
        for k in 0..memories.len() {
            core_names.push(format!("next-{k}"));
        }
        for k in 0..v128s.len() {
            core_names.push(format!("low-{k}"));
            core_names.push(format!("high-{k}"));
        }
        for name in &core_names {
            aliases.alias(Alias::CoreInstanceExport {
                instance: reader_instance,
                kind: ExportKind::Func,
                name,
            });
        }
        aliases.alias(Alias::CoreInstanceExport {
            instance: reader_instance,
            kind: ExportKind::Memory,
            name: "memory",
        });
        let own_memory = top.counts.memories + memories.len() as u32;
        push_section(&mut appended, &aliases);

        let mut types = ComponentTypeSection::new();
        types
            .defined_type()
            .list(ComponentValType::Primitive(PrimitiveValType::U8));
        types
            .function()
            .params(std::iter::empty::<(&str, ComponentValType)>())
            .result(Some(ComponentValType::Type(top.counts.types)));
        types
            .function()
            .params(std::iter::empty::<(&str, ComponentValType)>())
            .result(Some(ComponentValType::Primitive(PrimitiveValType::S64)));
        push_section(&mut appended, &types);
        let list_func = top.counts.types + 1;
        let s64_func = top.counts.types + 2;

        let mut canon = CanonicalFunctionSection::new();
        let mut core_func = top.counts.core_funcs;
        let mut lifted = Vec::new();
        for _ in &memories {
            canon.lift(core_func, list_func, [CanonicalOption::Memory(own_memory)]);
            core_func += 1;
            lifted.push(vec![funcs]);
            funcs += 1;
        }
        for _ in &v128s {
            canon.lift(core_func, s64_func, []);
            canon.lift(core_func + 1, s64_func, []);
            core_func += 2;
            lifted.push(vec![funcs, funcs + 1]);
            funcs += 2;
        }
        push_section(&mut appended, &canon);
        let mut lifted = lifted.into_iter();
        for (i, reader) in readers.iter().enumerate() {
            if let Reader::Memory(_) = reader {
                reader_funcs[i] = lifted
                    .next()
                    .context("internal error: a memory reader was not lifted")?;
            }
        }
        for (i, reader) in readers.iter().enumerate() {
            if let Reader::V128(_) = reader {
                reader_funcs[i] = lifted
                    .next()
                    .context("internal error: a v128 reader was not lifted")?;
            }
        }
    }

    // Scalar globals and probes: the accessor instance's functions as they are.
    let mut aliases = ComponentAliasSection::new();
    for (i, reader) in readers.iter().enumerate() {
        if let Reader::Alias(a) = reader {
            aliases.alias(Alias::InstanceExport {
                instance: accessor_instance,
                kind: ComponentExportKind::Func,
                name: &a.func,
            });
            reader_funcs[i] = vec![funcs];
            funcs += 1;
        }
    }
    if !aliases.is_empty() {
        push_section(&mut appended, &aliases);
    }

    let mut exports = ComponentExportSection::new();
    let mut names = export_names.iter();
    for funcs in &reader_funcs {
        for func in funcs {
            let Some(name) = names.next() else {
                bail!("internal error: more reader functions than export names");
            };
            exports.export(name, ComponentExportKind::Func, *func, None);
        }
    }
    push_section(&mut appended, &exports);

    let mut out = instrumented.to_vec();
    out.extend_from_slice(&appended);
    Validator::new_with_features(crate::parse::features())
        .validate_all(&out)
        .context("internal error: the exports added for the invoker do not validate")?;
    Ok(out)
}

fn path_string(path: &[u32]) -> String {
    path.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Appends `section`, with its id and size, to `out`.
fn push_section(out: &mut Vec<u8>, section: &impl wasm_encoder::ComponentSection) {
    out.push(section.id());
    section.encode(out);
}

/// The core module that reads top-level memories in chunks and `v128`
/// globals in halves. It imports `state` `m{k}` (the memories) and `g{k}`
/// (the globals) and exports `next-{k}`, `low-{k}`, `high-{k}` and its own
/// `memory`, which holds what `next-{k}` returns.
fn reader_module(memories: &[&Accessor], v128s: u32) -> wasm_encoder::Module {
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]); // 0: next
    types.ty().function([], [ValType::I64]); // 1: low, high

    let mut imports = ImportSection::new();
    for (k, a) in memories.iter().enumerate() {
        let (memory64, page_size_log2) = match a.state {
            State::Memory {
                memory64,
                page_size_log2,
                ..
            } => (memory64, page_size_log2),
            _ => (false, 16),
        };
        imports.import(
            "state",
            &format!("m{k}"),
            EntityType::Memory(MemoryType {
                minimum: 0,
                maximum: None,
                memory64,
                shared: false,
                page_size_log2: (page_size_log2 != 16).then_some(page_size_log2),
            }),
        );
    }
    for k in 0..v128s {
        imports.import(
            "state",
            &format!("g{k}"),
            EntityType::Global(GlobalType {
                val_type: ValType::V128,
                mutable: true,
                shared: false,
            }),
        );
    }
    let own = memories.len() as u32;
    let mut memory = wasm_encoder::MemorySection::new();
    memory.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    // One cursor per memory: where its next chunk starts.
    let mut globals = wasm_encoder::GlobalSection::new();
    for _ in memories {
        globals.global(
            GlobalType {
                val_type: ValType::I64,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i64_const(0),
        );
    }

    let mut functions = wasm_encoder::FunctionSection::new();
    let mut code = wasm_encoder::CodeSection::new();
    let mut exports = wasm_encoder::ExportSection::new();
    let mut func = 0;
    for (k, a) in memories.iter().enumerate() {
        let (memory64, page_size_log2) = match a.state {
            State::Memory {
                memory64,
                page_size_log2,
                ..
            } => (memory64, page_size_log2),
            _ => (false, 16),
        };
        functions.function(0);
        code.function(&chunk_reader(
            k as u32,
            own,
            v128s + k as u32,
            memory64,
            page_size_log2,
        ));
        exports.export(&format!("next-{k}"), ExportKind::Func, func);
        func += 1;
    }
    for k in 0..v128s {
        for (half, lane) in [("low", 0), ("high", 1)] {
            let mut f = Function::new([]);
            f.instruction(&Instruction::GlobalGet(k));
            f.instruction(&Instruction::I64x2ExtractLane(lane));
            f.instruction(&Instruction::End);
            functions.function(1);
            code.function(&f);
            exports.export(&format!("{half}-{k}"), ExportKind::Func, func);
            func += 1;
        }
    }
    exports.export("memory", ExportKind::Memory, own);

    let mut module = wasm_encoder::Module::new();
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    module.section(&memory);
    if !memories.is_empty() {
        module.section(&globals);
    }
    module.section(&exports);
    module.section(&code);
    module
}

/// `() -> retptr`: copies the next `CHUNK` bytes (fewer at the end) of
/// imported memory `memory`, from the position in global `cursor`, into
/// the own memory `own` at 8, advances the cursor past them and returns a
/// pointer to `(8, n)`, as the canonical ABI wants for a `list<u8>` result.
fn chunk_reader(
    memory: u32,
    own: u32,
    cursor: u32,
    memory64: bool,
    page_size_log2: u32,
) -> Function {
    use Instruction as I;
    // locals: 0 size i64, 1 n i32, 2 pages i32
    let mut f = Function::new([(1, ValType::I64), (2, ValType::I32)]);
    // size = memory.size(memory) << page_size_log2
    let mut code = codegen::memory_bytes(memory, memory64, page_size_log2);
    code.push(I::LocalSet(0));
    // n = cursor >= size ? 0 : min(size - cursor, CHUNK)
    code.extend(codegen::bytes_left(
        &[I::GlobalGet(cursor)],
        &[I::LocalGet(0)],
        &[I::I64Const(i64::from(CHUNK))],
    ));
    code.push(I::LocalSet(1));
    // grow the own memory to hold the return area and n bytes
    code.extend(codegen::grow_to_hold(own, 1, 2));
    // if n != 0: copy memory[cursor..cursor + n] to own[8..8 + n]
    code.extend(codegen::copy_to_own(
        memory,
        memory64,
        own,
        &[I::GlobalGet(cursor)],
        1,
    ));
    code.extend([
        // cursor += n
        I::GlobalGet(cursor),
        I::LocalGet(1),
        I::I64ExtendI32U,
        I::I64Add,
        I::GlobalSet(cursor),
    ]);
    // own[0..8] = (8, n); return 0
    code.extend(codegen::return_own_list(own, 1));
    code.push(I::End);
    for i in &code {
        f.instruction(i);
    }
    f
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
        let next = self.read.entry(func.to_string()).or_default();
        if offset != *next {
            bail!(
                "`{export}` reads its memory front to back: the next chunk starts at {next}, \
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
        if next.saturating_add(bytes.len() as u64) > limit {
            bail!("`{export}` returned more than its memory can hold ({limit} bytes)");
        }
        *next += bytes.len() as u64;
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
