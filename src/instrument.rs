//! Phase 2, instrument: make every piece of mutable state readable from
//! outside, through one exported instance of synthesized accessor functions.
//!
//! Every original section stays where it is (modules that own state gain core
//! exports for it); everything new is appended, so original indices never
//! move. New indices are the validator's final counts plus the position in
//! what is appended.

use anyhow::{Context, Result};
use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, Component, ComponentAliasSection,
    ComponentExportKind, ComponentExportSection, ComponentInstanceSection, ComponentTypeSection,
    ComponentValType, EntityType, ExportKind, Function, GlobalType, ImportSection, InstanceSection,
    Instruction, MemArg, MemoryType, ModuleArg, ModuleSection, PrimitiveValType, RawSection,
    TypeSection, ValType,
};

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::codegen;
use crate::init_func::{self, InitFunc};
use crate::module::{self, ModuleEdit};
use crate::names;
use crate::parse::{self, ComponentInfo, SectionKind};
use crate::plan::GlobalValue;
use crate::plan::{Accessor, InputId, PLAN_FORMAT, Plan, ScalarType, State};
use crate::probe::{self, Probed};
use crate::wit;

/// Options for [`instrument`].
#[derive(Clone, Debug, Default)]
pub struct InstrumentOptions {
    /// The init function; `None` picks `component-init`, or `wizer-initialize`
    /// when only that is exported.
    pub init_func: Option<InitFunc>,
    /// Keep the init function's export in the output.
    pub keep_init_func: bool,
}

/// An instrumented component and the plan for reading its state.
pub struct Instrumented {
    /// The instrumented component: the original plus the accessor instance.
    pub component: Vec<u8>,
    /// Which accessor reads what.
    pub plan: Plan,
}

/// Instruments `bytes`, a component, for pre-initialization.
pub fn instrument(bytes: &[u8], options: &InstrumentOptions) -> Result<Instrumented> {
    let parsed = parse::parse(bytes)?;
    let init = init_func::resolve(&parsed, options.init_func.as_ref())?;
    // An init function inside an exported interface stays: removing it
    // would break the interface the component claims to implement.
    let remove_init_export = !options.keep_init_func && init.export.is_some();
    instrument_parsed(&parsed, init.func, remove_init_export)
}

/// Instruments a parsed component; `init` is recorded in the plan.
fn instrument_parsed(
    parsed: &parse::Parsed<'_>,
    init: InitFunc,
    remove_init_export: bool,
) -> Result<Instrumented> {
    let bytes = parsed.bytes;
    let level = Level::build(bytes, &parsed.root)?;
    let plan = Plan {
        format: PLAN_FORMAT,
        input: InputId::of(bytes),
        remove_init_export,
        init,
        interface: names::ACCESSOR_INSTANCE_EXPORT.to_string(),
        accessors: level.accessors.iter().map(|a| a.accessor.clone()).collect(),
    };
    let component = encode(bytes, &parsed.root, &level, true)?;
    wit::check(&component, &plan).context("instrumentation produced an ill-typed component")?;
    Ok(Instrumented { component, plan })
}

/// The accessors of one component (the top level or a nested one): those of
/// its own core instances and those of the component instances in it.
struct Level {
    accessors: Vec<LevelAccessor>,
    /// Probes of this component's modules, by index into `modules`.
    probed: BTreeMap<usize, Probed>,
    /// Levels of the nested components that have state, by index into
    /// `components`.
    children: BTreeMap<usize, Level>,
}

struct LevelAccessor {
    /// With `path` relative to this level and `func` named at this level.
    accessor: Accessor,
    source: Source,
}

enum Source {
    /// Reads a core instance of this component.
    Local,
    /// Re-exports `func` of the accessor instance of component instance
    /// `instance`.
    Nested { instance: u32, func: String },
}

impl Level {
    fn build(bytes: &[u8], info: &ComponentInfo) -> Result<Level> {
        let mut probed = BTreeMap::new();
        for instance in &info.instances {
            if let Entry::Vacant(entry) = probed.entry(instance.module) {
                let module = &info.modules[instance.module];
                let found = probe::probe(
                    &bytes[module.range.clone()],
                    module.global_count,
                    module.imported_funcs,
                    &module.ref_globals,
                )
                .with_context(|| {
                    format!("failed to scan the code of core module {}", module.index)
                })?;
                if let Some(found) = found {
                    entry.insert(found);
                }
            }
        }
        let mut accessors: Vec<LevelAccessor> = local_accessors(info, &probed)
            .into_iter()
            .map(|accessor| LevelAccessor {
                accessor,
                source: Source::Local,
            })
            .collect();
        let mut children = BTreeMap::new();
        for instance in &info.component_instances {
            let child = match children.entry(instance.module) {
                Entry::Occupied(child) => child.into_mut(),
                Entry::Vacant(entry) => {
                    let child = Level::build(bytes, &info.components[instance.module])?;
                    if child.accessors.is_empty() {
                        continue;
                    }
                    entry.insert(child)
                }
            };
            for nested in &child.accessors {
                let mut accessor = nested.accessor.clone();
                accessor.path.insert(0, instance.index);
                accessors.push(LevelAccessor {
                    accessor,
                    source: Source::Nested {
                        instance: instance.index,
                        func: nested.accessor.func.clone(),
                    },
                });
            }
        }
        // Memories, then globals, then probes; named in that order.
        accessors.sort_by_key(|a| match a.accessor.state {
            State::Memory { .. } => 0,
            State::Global { .. } => 1,
            State::Probe { .. } => 2,
        });
        let mut counts = [0usize; 3];
        for a in &mut accessors {
            a.accessor.func = match a.accessor.state {
                State::Memory { .. } => names::memory_accessor(next(&mut counts[0])),
                State::Global { .. } => names::global_accessor(next(&mut counts[1])),
                State::Probe { .. } => names::probe_accessor(next(&mut counts[2])),
            };
        }
        children.retain(|_, child| !child.accessors.is_empty());
        Ok(Level {
            accessors,
            probed,
            children,
        })
    }

    fn local(&self) -> impl Iterator<Item = &Accessor> {
        self.accessors
            .iter()
            .filter(|a| matches!(a.source, Source::Local))
            .map(|a| &a.accessor)
    }
}

fn next(counter: &mut usize) -> usize {
    *counter += 1;
    *counter - 1
}

/// One accessor per memory, mutable global and probe of every module
/// instantiated in `info` itself, in core instance order (named later).
fn local_accessors(info: &ComponentInfo, probed: &BTreeMap<usize, Probed>) -> Vec<Accessor> {
    let mut out = Vec::new();
    for instance in &info.instances {
        let module = &info.modules[instance.module];
        let mut push = |state| {
            out.push(Accessor {
                func: String::new(),
                path: Vec::new(),
                instance: instance.index,
                module: module.index,
                state,
            })
        };
        for memory in &module.memories {
            push(State::Memory {
                index: memory.index,
                memory64: memory.ty.memory64,
                page_size_log2: memory.ty.page_size_log2.unwrap_or(16),
            });
        }
        for global in &module.globals {
            // parse rejects mutable globals of reference types
            let ty = ScalarType::of(global.ty).unwrap_or(ScalarType::V128);
            push(State::Global {
                index: global.index,
                ty,
            });
        }
        if let Some(found) = probed.get(&instance.module) {
            for (k, probe) in found.probes.iter().enumerate() {
                push(State::Probe {
                    index: found.first_global + k as u32,
                    probe: *probe,
                });
            }
        }
    }
    out
}

/// Core export names that expose `state` from its module.
fn core_export(state: &State) -> (String, ExportKind, u32) {
    match *state {
        State::Memory { index, .. } => {
            (names::core_memory_export(index), ExportKind::Memory, index)
        }
        State::Global { index, .. } | State::Probe { index, .. } => {
            (names::core_global_export(index), ExportKind::Global, index)
        }
    }
}

/// Encodes the instrumented version of the component `info`.
fn encode(bytes: &[u8], info: &ComponentInfo, level: &Level, root: bool) -> Result<Vec<u8>> {
    let mut component = Component::new();
    for section in &info.sections {
        let data = &bytes[section.range.clone()];
        match section.kind {
            SectionKind::Module(m) => {
                let module = &info.modules[m];
                let mut exports: Vec<_> = level
                    .local()
                    .filter(|a| a.module == module.index)
                    .map(|a| core_export(&a.state))
                    .collect();
                exports.sort_by_key(|(_, _, index)| *index);
                exports.dedup();
                if exports.is_empty() {
                    component.section(&RawSection {
                        id: section.id,
                        data,
                    });
                    continue;
                }
                let found = level.probed.get(&m);
                let edit = ModuleEdit {
                    exports,
                    new_globals: found
                        .map_or(Vec::new(), |f| vec![GlobalValue::I32(0); f.probes.len()]),
                    code: found.map(|f| f.code.clone()),
                    ..ModuleEdit::default()
                };
                let edited = module::edit(data, edit).with_context(|| {
                    format!("failed to instrument core module {}", module.index)
                })?;
                component.section(&RawSection {
                    id: section.id,
                    data: &edited,
                });
            }
            SectionKind::Component(c) if level.children.contains_key(&c) => {
                let child = &info.components[c];
                let edited = encode(bytes, child, &level.children[&c], false)?;
                component.section(&RawSection {
                    id: section.id,
                    data: &edited,
                });
            }
            _ => {
                component.section(&RawSection {
                    id: section.id,
                    data,
                });
            }
        }
    }
    if root || !level.accessors.is_empty() {
        append_accessors(&mut component, info, level)?;
    }
    Ok(component.finish())
}

/// Appends the accessor module, its instantiation, the lifted accessors and
/// the exported accessor instance.
fn append_accessors(component: &mut Component, info: &ComponentInfo, level: &Level) -> Result<()> {
    let local: Vec<&Accessor> = level.local().collect();
    let lifted = if local.is_empty() {
        Vec::new()
    } else {
        append_local_accessors(component, info, &local)?
    };
    let counts = &info.counts;

    // Alias the accessor instance of each nested component instance, then
    // the functions in it.
    let mut aliases = ComponentAliasSection::new();
    let mut nested_instances: Vec<u32> = Vec::new();
    for a in &level.accessors {
        if let Source::Nested { instance, .. } = a.source
            && !nested_instances.contains(&instance)
        {
            aliases.alias(Alias::InstanceExport {
                instance,
                kind: ComponentExportKind::Instance,
                name: names::ACCESSOR_INSTANCE_EXPORT,
            });
            nested_instances.push(instance);
        }
    }
    let mut next_func = counts.funcs + lifted.len() as u32;
    let mut funcs = Vec::with_capacity(level.accessors.len());
    let mut lifted = lifted.into_iter();
    for a in &level.accessors {
        match &a.source {
            Source::Local => funcs.push(lifted.next().context(
                "internal error: fewer accessor functions were lifted than there are local \
                 accessors",
            )?),
            Source::Nested { instance, func } => {
                let position = nested_instances
                    .iter()
                    .position(|i| i == instance)
                    .context("internal error: a nested accessor instance was not aliased")?;
                aliases.alias(Alias::InstanceExport {
                    instance: counts.instances + position as u32,
                    kind: ComponentExportKind::Func,
                    name: func,
                });
                funcs.push(next_func);
                next_func += 1;
            }
        }
    }
    if !nested_instances.is_empty() {
        component.section(&aliases);
    }

    // Export them all as one instance.
    let mut instance = ComponentInstanceSection::new();
    instance.export_items(
        level
            .accessors
            .iter()
            .zip(&funcs)
            .map(|(a, f)| (a.accessor.func.as_str(), ComponentExportKind::Func, *f)),
    );
    component.section(&instance);
    let mut exports = ComponentExportSection::new();
    exports.export(
        names::ACCESSOR_INSTANCE_EXPORT,
        ComponentExportKind::Instance,
        counts.instances + nested_instances.len() as u32,
        None,
    );
    component.section(&exports);
    Ok(())
}

/// Appends the accessor module for the state of this component's own core
/// instances, instantiates it and lifts its functions; returns the lifted
/// functions' indices, in the order of `local`.
fn append_local_accessors(
    component: &mut Component,
    info: &ComponentInfo,
    local: &[&Accessor],
) -> Result<Vec<u32>> {
    let counts = &info.counts;
    let module_index = counts.modules;
    let core_instance_base = counts.core_instances;
    let core_memory_base = counts.memories;
    let core_global_base = counts.globals;
    let core_func_base = counts.core_funcs;
    let type_base = counts.types;
    let func_base = counts.funcs;

    // 32-bit memories are read by a small module of their own that imports
    // only that memory and returns the bytes in place (see `direct_reader`):
    // no accessor module then needs more than one memory, which runtimes
    // without multi-memory (jco on Node 20) need. Everything else is read by
    // the accessor module.
    // A memory too small to ever hold the reader's 8-byte return area next
    // to a byte of data (at most 16 bytes, such as `(memory 0 0)`) is read by
    // the accessor module too.
    let direct = |a: &Accessor| match a.state {
        State::Memory {
            memory64: false,
            index,
            page_size_log2,
        } => info
            .modules
            .iter()
            .filter(|m| m.index == a.module)
            .flat_map(|m| &m.memories)
            .find(|m| m.index == index)
            .and_then(|m| m.ty.maximum)
            .is_none_or(|max| max << page_size_log2 >= 16),
        _ => false,
    };
    let rest: Vec<&Accessor> = local.iter().copied().filter(|a| !direct(a)).collect();
    let accessor_module = accessor_module(&rest);
    component.section(&ModuleSection(&accessor_module));
    let mut readers = Vec::new();
    for accessor in local.iter().filter(|a| direct(a)) {
        if let State::Memory { page_size_log2, .. } = accessor.state {
            component.section(&ModuleSection(&direct_reader(page_size_log2)));
            readers.push(module_index + 1 + readers.len() as u32);
        }
    }

    // Alias each piece of state out of the instance that owns it.
    let mut aliases = ComponentAliasSection::new();
    let mut memories = 0;
    let mut globals = 0;
    let mut state_items = Vec::new();
    for accessor in local {
        let (name, kind, _) = core_export(&accessor.state);
        aliases.alias(Alias::CoreInstanceExport {
            instance: accessor.instance,
            kind,
            name: &name,
        });
        let index = match kind {
            ExportKind::Memory => {
                memories += 1;
                core_memory_base + memories - 1
            }
            _ => {
                globals += 1;
                core_global_base + globals - 1
            }
        };
        state_items.push((names::accessor_import(state_items.len()), kind, index));
    }
    component.section(&aliases);

    // Bundle the state into one core instance and instantiate the accessor
    // module with it; instantiate each reader with its memory.
    let mut instances = InstanceSection::new();
    // named by position among the accessor module's accessors
    let bundled: Vec<(String, ExportKind, u32)> = state_items
        .iter()
        .zip(local)
        .filter(|(_, a)| !direct(a))
        .enumerate()
        .map(|(n, ((_, kind, index), _))| (names::accessor_import(n), *kind, *index))
        .collect();
    instances.export_items(bundled.iter().map(|(n, k, i)| (n.as_str(), *k, *i)));
    let bundle = core_instance_base;
    instances.instantiate(module_index, [("state", ModuleArg::Instance(bundle))]);
    let accessor_instance = core_instance_base + 1;
    // (reader instance, guest memory index) per direct accessor, in order
    let mut reader_instances = Vec::new();
    let direct_memories: Vec<u32> = state_items
        .iter()
        .zip(local)
        .filter(|(_, a)| direct(a))
        .map(|((_, _, index), _)| *index)
        .collect();
    for (memory, reader) in direct_memories.iter().zip(&readers) {
        let bundle = core_instance_base + 2 + 2 * reader_instances.len() as u32;
        instances.export_items([("memory", ExportKind::Memory, *memory)]);
        instances.instantiate(*reader, [("state", ModuleArg::Instance(bundle))]);
        reader_instances.push((bundle + 1, *memory));
    }
    component.section(&instances);

    // Alias the accessor functions (and, for direct readers, their
    // post-return functions) and the accessor module's memory.
    let mut aliases = ComponentAliasSection::new();
    let mut next_func = core_func_base;
    // (core function, post-return function, guest memory) per accessor
    let mut core_funcs = Vec::new();
    let mut readers = reader_instances.iter();
    for accessor in local {
        let instance = if direct(accessor) {
            readers.next().copied()
        } else {
            None
        };
        match instance {
            Some((instance, memory)) => {
                for name in ["read", "restore"] {
                    aliases.alias(Alias::CoreInstanceExport {
                        instance,
                        kind: ExportKind::Func,
                        name,
                    });
                }
                core_funcs.push((next_func, Some(next_func + 1), Some(memory)));
                next_func += 2;
            }
            None => {
                aliases.alias(Alias::CoreInstanceExport {
                    instance: accessor_instance,
                    kind: ExportKind::Func,
                    name: &accessor.func,
                });
                core_funcs.push((next_func, None, None));
                next_func += 1;
            }
        }
    }
    aliases.alias(Alias::CoreInstanceExport {
        instance: accessor_instance,
        kind: ExportKind::Memory,
        name: "memory",
    });
    let accessor_memory = core_memory_base + memories;
    component.section(&aliases);

    // Types: list<u8>, the memory accessor type, one type per global type.
    let mut type_section = ComponentTypeSection::new();
    type_section
        .defined_type()
        .list(ComponentValType::Primitive(PrimitiveValType::U8));
    let list_u8 = type_base;
    type_section
        .function()
        .params([
            ("offset", ComponentValType::Primitive(PrimitiveValType::U64)),
            ("len", ComponentValType::Primitive(PrimitiveValType::U32)),
        ])
        .result(Some(ComponentValType::Type(list_u8)));
    let memory_func_type = type_base + 1;
    // v128 is read as tuple<u64, u64>: (low 64 bits, high 64 bits)
    let u64_pair = ComponentValType::Primitive(PrimitiveValType::U64);
    type_section.defined_type().tuple([u64_pair, u64_pair]);
    let tuple_u64_u64 = type_base + 2;
    let scalars = [
        ScalarType::I32,
        ScalarType::I64,
        ScalarType::F32,
        ScalarType::F64,
        ScalarType::V128,
    ];
    for scalar in scalars {
        type_section
            .function()
            .params(std::iter::empty::<(&str, ComponentValType)>())
            .result(Some(match scalar {
                ScalarType::I32 => ComponentValType::Primitive(PrimitiveValType::S32),
                ScalarType::I64 => ComponentValType::Primitive(PrimitiveValType::S64),
                ScalarType::F32 => ComponentValType::Primitive(PrimitiveValType::F32),
                ScalarType::F64 => ComponentValType::Primitive(PrimitiveValType::F64),
                ScalarType::V128 => ComponentValType::Type(tuple_u64_u64),
            }));
    }
    let scalar_func_type = |ty: ScalarType| -> Result<u32> {
        let position = scalars
            .iter()
            .position(|s| *s == ty)
            .with_context(|| format!("internal error: no accessor type for {ty:?}"))?;
        Ok(type_base + 3 + position as u32)
    };
    component.section(&type_section);

    // Lift each accessor.
    let mut canon = CanonicalFunctionSection::new();
    for (accessor, &(core_func, post_return, memory)) in local.iter().zip(&core_funcs) {
        match accessor.state {
            State::Memory { .. } => match (post_return, memory) {
                (Some(post_return), Some(memory)) => canon.lift(
                    core_func,
                    memory_func_type,
                    [
                        CanonicalOption::Memory(memory),
                        CanonicalOption::PostReturn(post_return),
                    ],
                ),
                _ => canon.lift(
                    core_func,
                    memory_func_type,
                    [CanonicalOption::Memory(accessor_memory)],
                ),
            },
            State::Probe { .. } => canon.lift(core_func, scalar_func_type(ScalarType::I32)?, []),
            State::Global {
                ty: ScalarType::V128,
                ..
            } => canon.lift(
                core_func,
                scalar_func_type(ScalarType::V128)?,
                [CanonicalOption::Memory(accessor_memory)],
            ),
            State::Global { ty, .. } => canon.lift(core_func, scalar_func_type(ty)?, []),
        };
    }
    component.section(&canon);
    Ok((0..local.len() as u32).map(|i| func_base + i).collect())
}

/// A module that reads one 32-bit guest memory in place: it imports only
/// that memory (as `state.memory`) and exports
///
/// - `read(offset: i64, len: i32) -> retptr`: returns `(ptr, n)` pointing at
///   the guest's own bytes `[offset, offset + n)`, with `n <= len`, cut at
///   the memory's size when first read (0 at or past the end). The 8-byte
///   return area is written into the guest memory outside the returned
///   range (at 0 when `offset >= 8`; else at 8, and then `n <= 8 - offset`;
///   past the end, after growing the memory, when it is smaller than 16
///   bytes), after saving what was there;
/// - `restore(retptr)`: the post-return function, which puts the saved bytes
///   back once the caller has copied the list.
///
/// Readers stop at the first empty chunk.
fn direct_reader(page_size_log2: u32) -> wasm_encoder::Module {
    use Instruction as I;
    let mut types = TypeSection::new();
    types
        .ty()
        .function([ValType::I64, ValType::I32], [ValType::I32]);
    types.ty().function([ValType::I32], []);
    let mut imports = ImportSection::new();
    imports.import(
        "state",
        "memory",
        EntityType::Memory(MemoryType {
            minimum: 0,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: (page_size_log2 != 16).then_some(page_size_log2),
        }),
    );
    let mut globals = wasm_encoder::GlobalSection::new();
    let mutable = |val_type| GlobalType {
        val_type,
        mutable: true,
        shared: false,
    };
    // 0: the memory's size in bytes when first read (-1: not yet)
    globals.global(
        mutable(ValType::I64),
        &wasm_encoder::ConstExpr::i64_const(-1),
    );
    // 1, 2: the saved bytes of the return area
    globals.global(
        mutable(ValType::I32),
        &wasm_encoder::ConstExpr::i32_const(0),
    );
    globals.global(
        mutable(ValType::I32),
        &wasm_encoder::ConstExpr::i32_const(0),
    );
    let store = |offset| {
        I::I32Store(MemArg {
            offset,
            align: 2,
            memory_index: 0,
        })
    };
    let load = |offset| {
        I::I32Load(MemArg {
            offset,
            align: 2,
            memory_index: 0,
        })
    };
    let bytes_in_memory = codegen::memory_bytes(0, false, page_size_log2);
    // params: 0 offset i64, 1 len i32; locals: 2 size i64, 3 n i32, 4 r i32
    let mut read = Function::new([(1, ValType::I64), (2, ValType::I32)]);
    let mut code = vec![
        I::GlobalGet(0),
        I::I64Const(-1),
        I::I64Eq,
        I::If(wasm_encoder::BlockType::Empty),
    ];
    code.extend(bytes_in_memory.clone());
    code.extend([I::GlobalSet(0), I::End, I::GlobalGet(0), I::LocalSet(2)]);
    code.extend(codegen::bytes_left(
        &[I::LocalGet(0)],
        &[I::LocalGet(2)],
        &[I::LocalGet(1), I::I64ExtendI32U],
    ));
    code.extend([
        I::LocalSet(3),
        // choose the return area r
        I::LocalGet(2),
        I::I64Const(16),
        I::I64LtU,
        I::If(wasm_encoder::BlockType::Empty),
        // tiny memory: r = size rounded up to 8, grown into
        I::LocalGet(2),
        I::I64Const(7),
        I::I64Add,
        I::I64Const(-8),
        I::I64And,
        I::I32WrapI64,
        I::LocalSet(4),
        I::Block(wasm_encoder::BlockType::Empty),
        I::Loop(wasm_encoder::BlockType::Empty),
    ]);
    code.extend(bytes_in_memory);
    code.extend([
        I::LocalGet(4),
        I::I64ExtendI32U,
        I::I64Const(8),
        I::I64Add,
        I::I64GeU,
        I::BrIf(1),
        I::I32Const(1),
        I::MemoryGrow(0),
        I::I32Const(-1),
        I::I32Eq,
        I::If(wasm_encoder::BlockType::Empty),
        I::Unreachable,
        I::End,
        I::Br(0),
        I::End,
        I::End,
        I::Else,
        I::LocalGet(0),
        I::I64Const(8),
        I::I64GeU,
        I::If(wasm_encoder::BlockType::Empty),
        I::I32Const(0),
        I::LocalSet(4),
        I::Else,
        // r = 8, n = min(n, 8 - offset)
        I::I32Const(8),
        I::LocalSet(4),
        I::LocalGet(3),
        I::I32Const(8),
        I::LocalGet(0),
        I::I32WrapI64,
        I::I32Sub,
        I::LocalGet(3),
        I::I32Const(8),
        I::LocalGet(0),
        I::I32WrapI64,
        I::I32Sub,
        I::I32LtU,
        I::Select,
        I::LocalSet(3),
        I::End,
        I::End,
        // save r[0..8], then r[0..8] = (n == 0 ? 0 : offset, n)
        I::LocalGet(4),
        load(0),
        I::GlobalSet(1),
        I::LocalGet(4),
        load(4),
        I::GlobalSet(2),
        I::LocalGet(4),
        I::LocalGet(0),
        I::I32WrapI64,
        I::I32Const(0),
        I::LocalGet(3),
        I::Select,
        store(0),
        I::LocalGet(4),
        I::LocalGet(3),
        store(4),
        I::LocalGet(4),
        I::End,
    ]);
    for i in &code {
        read.instruction(i);
    }
    let mut restore = Function::new([]);
    for i in [
        I::LocalGet(0),
        I::GlobalGet(1),
        store(0),
        I::LocalGet(0),
        I::GlobalGet(2),
        store(4),
        I::End,
    ] {
        restore.instruction(&i);
    }
    let mut functions = wasm_encoder::FunctionSection::new();
    functions.function(0);
    functions.function(1);
    let mut exports = wasm_encoder::ExportSection::new();
    exports.export("read", ExportKind::Func, 0);
    exports.export("restore", ExportKind::Func, 1);
    let mut code_section = wasm_encoder::CodeSection::new();
    code_section.function(&read);
    code_section.function(&restore);
    let mut module = wasm_encoder::Module::new();
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    module.section(&globals);
    module.section(&exports);
    module.section(&code_section);
    module
}

/// The core module that reads state: it imports every piece of state from
/// the instance `state` and exports one function per accessor, plus its own
/// memory, which holds what memory accessors return.
fn accessor_module(local: &[&Accessor]) -> wasm_encoder::Module {
    let mut types = TypeSection::new();
    // 0: (offset: i64, len: i32) -> retptr
    types
        .ty()
        .function([ValType::I64, ValType::I32], [ValType::I32]);
    // 1..=4: () -> scalar; 5: () -> retptr (v128, stored in own memory)
    for ty in [ValType::I32, ValType::I64, ValType::F32, ValType::F64] {
        types.ty().function([], [ty]);
    }
    types.ty().function([], [ValType::I32]);

    let own_memory = local
        .iter()
        .filter(|a| matches!(a.state, State::Memory { .. }))
        .count() as u32;
    let mut imports = ImportSection::new();
    let mut imported_memories = 0u32;
    let mut imported_globals = 0u32;
    // (function type, body)
    let mut funcs = Vec::new();
    for (n, accessor) in local.iter().enumerate() {
        let import = names::accessor_import(n);
        match accessor.state {
            State::Memory {
                memory64,
                page_size_log2,
                ..
            } => {
                imports.import(
                    "state",
                    &import,
                    EntityType::Memory(MemoryType {
                        minimum: 0,
                        maximum: None,
                        memory64,
                        shared: false,
                        page_size_log2: (page_size_log2 != 16).then_some(page_size_log2),
                    }),
                );
                funcs.push((
                    0,
                    memory_reader(imported_memories, own_memory, memory64, page_size_log2),
                ));
                imported_memories += 1;
            }
            State::Global { .. } | State::Probe { .. } => {
                let ty = accessor
                    .state
                    .global()
                    .map_or(ScalarType::I32, |(_, ty)| ty);
                let (val_type, type_index) = match ty {
                    ScalarType::I32 => (ValType::I32, 1),
                    ScalarType::I64 => (ValType::I64, 2),
                    ScalarType::F32 => (ValType::F32, 3),
                    ScalarType::F64 => (ValType::F64, 4),
                    ScalarType::V128 => (ValType::V128, 5),
                };
                imports.import(
                    "state",
                    &import,
                    EntityType::Global(GlobalType {
                        val_type,
                        mutable: true,
                        shared: false,
                    }),
                );
                let mut f = Function::new([]);
                if ty == ScalarType::V128 {
                    // own memory starts empty (so that it does not count
                    // against `--max-memory` during init): grow it once
                    f.instruction(&Instruction::MemorySize(own_memory));
                    f.instruction(&Instruction::I32Eqz);
                    f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
                    f.instruction(&Instruction::I32Const(1));
                    f.instruction(&Instruction::MemoryGrow(own_memory));
                    f.instruction(&Instruction::Drop);
                    f.instruction(&Instruction::End);
                    // own[0..16] = value; return 0
                    f.instruction(&Instruction::I32Const(0));
                    f.instruction(&Instruction::GlobalGet(imported_globals));
                    f.instruction(&Instruction::V128Store(MemArg {
                        offset: 0,
                        align: 4,
                        memory_index: own_memory,
                    }));
                    f.instruction(&Instruction::I32Const(0));
                } else {
                    f.instruction(&Instruction::GlobalGet(imported_globals));
                }
                f.instruction(&Instruction::End);
                funcs.push((type_index, f));
                imported_globals += 1;
            }
        }
    }

    let mut functions = wasm_encoder::FunctionSection::new();
    let mut code = wasm_encoder::CodeSection::new();
    let mut exports = wasm_encoder::ExportSection::new();
    for (i, (ty, body)) in funcs.iter().enumerate() {
        functions.function(*ty);
        code.function(body);
        exports.export(&local[i].func, ExportKind::Func, i as u32);
    }
    let mut memory = wasm_encoder::MemorySection::new();
    memory.memory(MemoryType {
        minimum: 0,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    exports.export("memory", ExportKind::Memory, own_memory);

    let mut module = wasm_encoder::Module::new();
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    module.section(&memory);
    module.section(&exports);
    module.section(&code);
    module
}

/// `(offset: i64, len: i32) -> retptr`: copies up to `len` bytes of imported
/// memory `memory` from `offset` into the accessor's own memory `own`,
/// stopping at the end of the memory, and returns a pointer to `(ptr, len)`
/// as the canonical ABI wants for a `list<u8>` result.
fn memory_reader(memory: u32, own: u32, memory64: bool, page_size_log2: u32) -> Function {
    use Instruction as I;
    // params: 0 offset i64, 1 len i32; locals: 2 size i64, 3 n i32, 4 pages i32
    let mut f = Function::new([(1, ValType::I64), (2, ValType::I32)]);
    // size = memory.size(memory) << page_size_log2
    let mut code = codegen::memory_bytes(memory, memory64, page_size_log2);
    code.push(I::LocalSet(2));
    // n = offset >= size ? 0 : min(size - offset, len)
    code.extend(codegen::bytes_left(
        &[I::LocalGet(0)],
        &[I::LocalGet(2)],
        &[I::LocalGet(1), I::I64ExtendI32U],
    ));
    code.push(I::LocalSet(3));
    // grow the own memory to hold the return area and n bytes
    code.extend(codegen::grow_to_hold(own, 3, 4));
    // if n != 0: copy memory[offset..offset + n] to own[8..8 + n]
    code.extend(codegen::copy_to_own(
        memory,
        memory64,
        own,
        &[I::LocalGet(0)],
        3,
    ));
    // own[0..8] = (8, n); return 0
    code.extend(codegen::return_own_list(own, 3));
    code.push(I::End);
    for i in &code {
        f.instruction(i);
    }
    f
}

// ---------------------------------------------------------------------------
// Instrumenting for a caller that runs init itself (used by
// `component_init::transform`).

/// Instruments `bytes` like [`instrument`], for a caller that instantiates
/// the instrumented component and runs init itself, however it likes (an init
/// function that takes arguments, several calls, host state of its own).
///
/// No init function is looked up or type-checked: `init` is recorded in the
/// plan as given, for information only, and the plan keeps every export of
/// the component (`remove_init_export` is false).
pub fn instrument_with_external_init(bytes: &[u8], init: InitFunc) -> Result<Instrumented> {
    instrument_parsed(&parse::parse(bytes)?, init, false)
}
