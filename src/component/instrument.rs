//! Phase 2, instrument: make every piece of mutable state readable from
//! outside, through one exported instance of synthesized accessor functions.
//!
//! Every original section stays where it is (modules that own state gain core
//! exports for it); everything new is appended, so original indices never
//! move. New items get their indices from an [`Appender`] seeded with the
//! validator's final counts; the reader modules come from
//! [`crate::component::readers`].

use anyhow::{Context, Result, bail};
use wasm_encoder::{
    CanonicalOption, Component, ComponentExportKind, ComponentValType, ExportKind,
    PrimitiveValType, RawSection,
};

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::component::append::{Appender, CoreItem};
use crate::component::init_func;
use crate::component::names;
use crate::component::parse::{self, ComponentInfo, Counts, SectionKind};
use crate::component::readers;
use crate::component::table_mode::LevelTables;
use crate::component::table_reader;
use crate::component::wit;
use crate::edit::identify;
use crate::edit::probe::{self, Probe, Probed};
use crate::edit::{self, CoreExport, ModuleEdit};
use crate::plan::GlobalValue;
use crate::plan::init_func::InitFunc;
use crate::plan::{Accessor, InputId, PLAN_FORMAT, Plan, ScalarType, State};

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
    instrument_keeping_parse(bytes, options).map(|(_, instrumented)| instrumented)
}

/// [`instrument`], also returning the validated parse of `bytes`, which
/// the rewrite can take instead of parsing `bytes` again
/// ([`crate::component::rewrite::apply_parsed`]).
pub(crate) fn instrument_keeping_parse<'a>(
    bytes: &'a [u8],
    options: &InstrumentOptions,
) -> Result<(parse::Parsed<'a>, Instrumented)> {
    let (parsed, input) = parse_and_hash(bytes, parse::parse)?;
    let instrumented = instrument_as(&parsed, input, options)?;
    check(&instrumented)?;
    Ok((parsed, instrumented))
}

/// [`instrument_keeping_parse`] with two checks left to the caller, which
/// must make both ([`parse::Bodies::validate`] and [`check`]) before anything
/// runs the instrumented component: that the input's function bodies are
/// valid (they are only read here, for what the probes need), and that the
/// instrumented component has the accessor interface the plan says. For a
/// pipeline that makes them while it compiles the instrumented component.
pub(crate) fn instrument_unchecked<'a>(
    bytes: &'a [u8],
    options: &InstrumentOptions,
) -> Result<(parse::Parsed<'a>, parse::Bodies<'a>, Instrumented)> {
    let ((parsed, bodies), input) = parse_and_hash(bytes, parse::parse_deferring_bodies)?;
    let instrumented = instrument_as(&parsed, input, options)?;
    Ok((parsed, bodies, instrumented))
}

/// Parses `bytes` with `parse` while another thread takes the input's id
/// (a hash of every byte, one at a time).
fn parse_and_hash<'a, T: Send>(
    bytes: &'a [u8],
    parse: impl FnOnce(&'a [u8]) -> Result<T>,
) -> Result<(T, InputId)> {
    let (parsed, input) = std::thread::scope(|scope| {
        let input = scope.spawn(|| InputId::of(bytes));
        let parsed = parse(bytes);
        (parsed, input.join())
    });
    let input = input.map_err(|_| anyhow::anyhow!("hashing the input panicked"))?;
    Ok((parsed?, input))
}

/// Instruments `parsed` with `options`, unchecked (see [`check`]).
fn instrument_as(
    parsed: &parse::Parsed<'_>,
    input: InputId,
    options: &InstrumentOptions,
) -> Result<Instrumented> {
    let init = init_func::resolve(parsed, options.init_func.as_ref())?;
    // An init function inside an exported interface stays: removing it
    // would break the interface the component claims to implement.
    let remove_init_export = !options.keep_init_func && init.export.is_some();
    instrument_parsed_unchecked(
        parsed,
        input,
        init.func,
        remove_init_export,
        |_, _, _, _| Ok(()),
    )
}

/// Checks that `instrumented` has the accessor interface its plan says
/// (against the WIT the plan gives).
pub(crate) fn check(instrumented: &Instrumented) -> Result<()> {
    wit::check(&instrumented.component, &instrumented.plan)
        .context("instrumentation produced an ill-typed component")
}

/// Instruments a parsed component; `init` is recorded in the plan. `more`
/// may append items of its own at the top level, after the accessor
/// instance (given its index), with the same appender.
pub(crate) fn instrument_parsed(
    parsed: &parse::Parsed<'_>,
    init: InitFunc,
    remove_init_export: bool,
    more: impl FnOnce(&mut Appender, &Plan, u32, &Cursors) -> Result<()>,
) -> Result<Instrumented> {
    let input = InputId::of(parsed.bytes);
    let instrumented = instrument_parsed_unchecked(parsed, input, init, remove_init_export, more)?;
    check(&instrumented)?;
    Ok(instrumented)
}

/// [`instrument_parsed`], with the input's id given, unchecked (see
/// [`check`]).
fn instrument_parsed_unchecked(
    parsed: &parse::Parsed<'_>,
    input: InputId,
    init: InitFunc,
    remove_init_export: bool,
    more: impl FnOnce(&mut Appender, &Plan, u32, &Cursors) -> Result<()>,
) -> Result<Instrumented> {
    let bytes = parsed.bytes;
    let tree = AccessorTree::build(parsed, &parsed.root)?;
    let plan = Plan {
        format: PLAN_FORMAT,
        input,
        remove_init_export,
        init,
        interface: names::ACCESSOR_INSTANCE_EXPORT.to_string(),
        accessors: tree.accessors.iter().map(|a| a.accessor.clone()).collect(),
    };
    let mut component = encode_sections(bytes, &parsed.root, &tree)?;
    let (mut app, accessor_instance, cursors) =
        append_accessors(parsed.root.counts, &parsed.root, &tree)?;
    more(&mut app, &plan, accessor_instance, &cursors)?;
    component.extend(app.finish());
    Ok(Instrumented { component, plan })
}

/// The table reader's cursor functions of the top level, for invokers
/// (whose functions take no arguments): for each table accessor, by its
/// name, a core function `() -> retptr` that returns the next chunk of the
/// table's slots, and the core memory the list is in.
#[derive(Default)]
pub(crate) struct Cursors(pub Vec<(String, u32, u32)>);

/// The accessors of one component (the top level or a nested one): those of
/// its own core instances and those of the component instances in it.
struct AccessorTree {
    accessors: Vec<SourcedAccessor>,
    /// Probes of this component's modules, by index into `modules`.
    probed: BTreeMap<usize, Probed>,
    /// The level's table mode, when its code can change tables.
    tables: Option<LevelTables>,
    /// Accessor trees of the nested components that have state, by index into
    /// `components`.
    children: BTreeMap<usize, AccessorTree>,
}

struct SourcedAccessor {
    /// With `path` relative to this component and `func` named in it.
    accessor: Accessor,
    source: AccessorSource,
}

enum AccessorSource {
    /// Reads a core instance of this component.
    Local,
    /// Re-exports `func` of the accessor instance of component instance
    /// `instance`.
    Nested { instance: u32, func: String },
}

impl AccessorTree {
    fn build(parsed: &parse::Parsed<'_>, info: &ComponentInfo) -> Result<AccessorTree> {
        let bytes = parsed.bytes;
        let mut probed = BTreeMap::new();
        for instance in &info.instances {
            if let Entry::Vacant(entry) = probed.entry(instance.definition) {
                let module = &info.modules[instance.definition];
                // Validation saw every instruction: a module without one
                // that probes instrument needs no scan of its own.
                if !parsed.may_need_probes(module) {
                    continue;
                }
                let found = probe::probe_carrying_tables(
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
        let tables = LevelTables::of(bytes, info, &probed)?;
        let mut accessors: Vec<SourcedAccessor> = local_accessors(info, &probed, tables.as_ref())?
            .into_iter()
            .map(|accessor| SourcedAccessor {
                accessor,
                source: AccessorSource::Local,
            })
            .collect();
        let mut children = BTreeMap::new();
        for instance in &info.component_instances {
            let child = match children.entry(instance.definition) {
                Entry::Occupied(child) => child.into_mut(),
                Entry::Vacant(entry) => {
                    let child = AccessorTree::build(parsed, &info.components[instance.definition])?;
                    if child.accessors.is_empty() {
                        continue;
                    }
                    entry.insert(child)
                }
            };
            for nested in &child.accessors {
                let mut accessor = nested.accessor.clone();
                accessor.path.insert(0, instance.index);
                accessors.push(SourcedAccessor {
                    accessor,
                    source: AccessorSource::Nested {
                        instance: instance.index,
                        func: nested.accessor.func.clone(),
                    },
                });
            }
        }
        // Memories, then globals, then probes, then tables and
        // reference-typed globals; named in that order.
        let kind = |state: &State| match state {
            State::Memory { .. } => 0,
            State::Global { .. } => 1,
            State::Probe { .. } => 2,
            State::Table { .. } => 3,
            State::RefGlobal { .. } => 4,
        };
        accessors.sort_by_key(|a| kind(&a.accessor.state));
        let mut counts = [0usize; 5];
        for a in &mut accessors {
            let n = post_increment(&mut counts[kind(&a.accessor.state)]);
            a.accessor.func = match a.accessor.state {
                State::Memory { .. } => names::memory_accessor(n),
                State::Global { .. } => names::global_accessor(n),
                State::Probe { .. } => names::probe_accessor(n),
                State::Table { .. } => names::table_accessor(n),
                State::RefGlobal { .. } => names::ref_global_accessor(n),
            };
        }
        children.retain(|_, child| !child.accessors.is_empty());
        Ok(AccessorTree {
            accessors,
            probed,
            tables,
            children,
        })
    }

    fn local(&self) -> impl Iterator<Item = &Accessor> {
        self.accessors
            .iter()
            .filter(|a| matches!(a.source, AccessorSource::Local))
            .map(|a| &a.accessor)
    }
}

/// Returns `*counter` and moves it on by one.
fn post_increment(counter: &mut usize) -> usize {
    *counter += 1;
    *counter - 1
}

/// One accessor per memory, mutable global and probe of every module
/// instantiated in `info` itself, in core instance order (named later).
fn local_accessors(
    info: &ComponentInfo,
    probed: &BTreeMap<usize, Probed>,
    tables: Option<&LevelTables>,
) -> Result<Vec<Accessor>> {
    let mut out = Vec::new();
    for instance in &info.instances {
        let module = &info.modules[instance.definition];
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
            let ty = ScalarType::of(global.ty).with_context(|| {
                format!(
                    "internal error: mutable global {} of core module {} has type {}, which \
                     parse keeps apart from the state it snapshots",
                    global.index, module.index, global.ty
                )
            })?;
            push(State::Global {
                index: global.index,
                ty,
            });
        }
        if let Some(found) = probed.get(&instance.definition) {
            for (k, probe) in found.probes.iter().enumerate() {
                push(State::Probe {
                    index: found.first_global + k as u32,
                    probe: *probe,
                });
            }
            if let Some(index) = found.tables_changed {
                push(State::Probe {
                    index,
                    probe: Probe::TablesChanged,
                });
            }
        }
        for state in tables.map_or(Vec::new(), |t| t.states(instance.definition)) {
            push(state);
        }
    }
    Ok(out)
}

/// Encodes the sections of the component `info`, with every module that
/// owns state exporting it and every nested component that has state
/// instrumented; the accessors are appended after them.
fn encode_sections(bytes: &[u8], info: &ComponentInfo, tree: &AccessorTree) -> Result<Vec<u8>> {
    let mut component = Component::new();
    for section in &info.sections {
        let data = &bytes[section.range.clone()];
        match section.kind {
            SectionKind::Module(m) => {
                let module = &info.modules[m];
                let mut exports: Vec<_> = tree
                    .local()
                    .filter(|a| a.module == module.index)
                    .map(|a| CoreExport::of(&a.state))
                    .collect();
                exports.sort_by_key(|e| e.index);
                exports.dedup();
                let prologued = tree.tables.as_ref().is_some_and(|t| t.prologued(m));
                if exports.is_empty() && !prologued {
                    component.section(&RawSection {
                        id: section.id,
                        data,
                    });
                    continue;
                }
                let found = tree.probed.get(&m);
                let mut new_globals =
                    found.map_or(Vec::new(), |f| vec![GlobalValue::I32(0); f.global_count()]);
                // the prologues' `probing` and `found`, after the probes
                let probing = module.global_count + new_globals.len() as u32;
                if prologued {
                    new_globals.extend([GlobalValue::I32(0), GlobalValue::I32(0)]);
                    for (name, index) in [
                        (edit::CORE_PROBING_EXPORT, probing),
                        (edit::CORE_FOUND_EXPORT, probing + 1),
                    ] {
                        exports.push(CoreExport {
                            name: name.to_string(),
                            kind: ExportKind::Global,
                            index,
                        });
                    }
                }
                let edit = ModuleEdit {
                    exports,
                    new_globals,
                    code: found.map(|f| f.code.clone()),
                    ..ModuleEdit::default()
                };
                let mut edited = edit::edit(data, edit).with_context(|| {
                    format!("failed to instrument core module {}", module.index)
                })?;
                if prologued {
                    edited = identify::add_prologues(&edited, probing, probing + 1).with_context(
                        || format!("failed to instrument core module {}", module.index),
                    )?;
                }
                component.section(&RawSection {
                    id: section.id,
                    data: &edited,
                });
            }
            SectionKind::Component(c) if tree.children.contains_key(&c) => {
                let child = &info.components[c];
                let child_tree = &tree.children[&c];
                let mut edited = encode_sections(bytes, child, child_tree)?;
                edited.extend(
                    append_accessors(child.counts, child, child_tree)?
                        .0
                        .finish(),
                );
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
    Ok(component.finish())
}

/// Appends, to a component whose index spaces hold `counts` items, the
/// accessor module, its instantiation, the lifted accessors and the
/// exported accessor instance; returns the appender, for more, the
/// accessor instance's index and the table reader's cursors.
fn append_accessors(
    counts: Counts,
    info: &ComponentInfo,
    tree: &AccessorTree,
) -> Result<(Appender, u32, Cursors)> {
    let mut app = Appender::new(counts);
    let local: Vec<&Accessor> = tree.local().collect();
    let (lifted, cursors) = if local.is_empty() {
        (Vec::new(), Cursors::default())
    } else {
        append_local_accessors(&mut app, info, tree.tables.as_ref(), &local)?
    };
    let mut lifted = lifted.into_iter();

    // The accessor instance of each nested component instance, aliased once.
    let mut nested_instances: Vec<(u32, u32)> = Vec::new();
    for a in &tree.accessors {
        if let AccessorSource::Nested { instance, .. } = a.source
            && !nested_instances.iter().any(|(i, _)| *i == instance)
        {
            let aliased = app.alias_export(
                instance,
                ComponentExportKind::Instance,
                names::ACCESSOR_INSTANCE_EXPORT,
            )?;
            nested_instances.push((instance, aliased));
        }
    }
    let mut funcs = Vec::with_capacity(tree.accessors.len());
    for a in &tree.accessors {
        let func = match &a.source {
            AccessorSource::Local => lifted.next().context(
                "internal error: fewer accessor functions were lifted than there are local \
                 accessors",
            )?,
            AccessorSource::Nested { instance, func } => {
                let (_, aliased) = nested_instances
                    .iter()
                    .find(|(i, _)| i == instance)
                    .context("internal error: a nested accessor instance was not aliased")?;
                app.alias_export(*aliased, ComponentExportKind::Func, func)?
            }
        };
        funcs.push((a.accessor.func.as_str(), func));
    }

    // Export them all as one instance.
    let instance = app.instance_of_funcs(&funcs);
    app.export(
        names::ACCESSOR_INSTANCE_EXPORT,
        ComponentExportKind::Instance,
        instance,
    )?;
    Ok((app, instance, cursors))
}

/// Whether `accessor` reads a 32-bit memory in place, with a reader module
/// of its own that imports only that memory (see
/// [`readers::in_place_reader`]): then no accessor module needs more than
/// one memory, which runtimes without multi-memory (jco on Node 20) need.
/// A memory too small to ever hold the reader's 8-byte return area next to
/// a byte of data (at most 16 bytes, such as `(memory 0 0)`) is read by the
/// accessor module, as are 64-bit memories, globals and probes.
fn reads_in_place(info: &ComponentInfo, accessor: &Accessor) -> bool {
    match accessor.state {
        State::Memory {
            memory64: false,
            index,
            page_size_log2,
        } => info
            .module(accessor.module)
            .into_iter()
            .flat_map(|m| &m.memories)
            .find(|m| m.index == index)
            .and_then(|m| m.ty.maximum)
            .is_none_or(|max| max << page_size_log2 >= 16),
        _ => false,
    }
}

/// The core function that reads one accessor's state, and how it is lifted.
enum CoreReader {
    /// A function of the accessor module, which returns lists in the
    /// accessor module's memory.
    Copying(u32),
    /// A function of the table reader, which returns lists in the table
    /// reader's memory.
    Table { read: u32, cursor: u32, memory: u32 },
    /// An in-place reader's `read`, which returns the guest memory's own
    /// bytes, and its post-return function.
    InPlace {
        read: u32,
        restore: u32,
        guest_memory: u32,
    },
}

/// Appends the accessor module for the state of this component's own core
/// instances (and an in-place reader per 32-bit memory), instantiates them
/// and lifts their functions; returns the lifted functions' indices, in the
/// order of `local`.
fn append_local_accessors(
    app: &mut Appender,
    info: &ComponentInfo,
    tables: Option<&LevelTables>,
    local: &[&Accessor],
) -> Result<(Vec<u32>, Cursors)> {
    let readers = append_core_readers(app, info, tables, local)?;
    let cursors = local
        .iter()
        .zip(&readers.funcs)
        .filter_map(|(a, r)| match *r {
            CoreReader::Table { cursor, memory, .. } => Some((a.func.clone(), cursor, memory)),
            _ => None,
        })
        .collect();
    Ok((lift_accessors(app, local, &readers)?, Cursors(cursors)))
}

/// The core functions that read this component's local state: one per
/// accessor, and the accessor module's memory, where the copying ones
/// return their lists.
struct CoreReaders {
    funcs: Vec<CoreReader>,
    accessor_memory: u32,
}

/// Appends and instantiates the reader modules of `local` and aliases their
/// functions.
fn append_core_readers(
    app: &mut Appender,
    info: &ComponentInfo,
    tables: Option<&LevelTables>,
    local: &[&Accessor],
) -> Result<CoreReaders> {
    let in_place: Vec<bool> = local.iter().map(|a| reads_in_place(info, a)).collect();
    let by_table_reader: Vec<bool> = local.iter().map(|a| reads_a_table(a)).collect();
    // neither in place nor by the table reader
    let copying: Vec<bool> = in_place
        .iter()
        .zip(&by_table_reader)
        .map(|(a, b)| !a && !b)
        .collect();
    let copied: Vec<&Accessor> = local
        .iter()
        .zip(&copying)
        .filter(|(_, copying)| **copying)
        .map(|(a, _)| *a)
        .collect();
    let accessor_module = app.core_module(&readers::accessor_module(&copied)?);
    let mut reader_modules = Vec::new();
    for (accessor, _) in local.iter().zip(&in_place).filter(|(_, i)| **i) {
        let State::Memory { page_size_log2, .. } = accessor.state else {
            bail!("internal error: an in-place reader for state other than a memory");
        };
        reader_modules.push(app.core_module(&readers::in_place_reader(page_size_log2)?));
    }

    // Alias each piece of state out of the instance that owns it.
    let mut state = Vec::with_capacity(local.len());
    for accessor in local {
        let export = CoreExport::of(&accessor.state);
        state.push(app.alias_core_export(accessor.instance, export.kind, &export.name)?);
    }

    // Bundle the copied state into one core instance and instantiate the
    // accessor module with it; instantiate each in-place reader with its
    // memory. Imports are named by position among the accessor module's
    // accessors.
    let import_names: Vec<String> = (0..copied.len()).map(names::accessor_import).collect();
    let bundled: Vec<CoreItem<'_>> = local
        .iter()
        .zip(&state)
        .zip(&copying)
        .filter(|(_, copying)| **copying)
        .zip(&import_names)
        .map(|(((a, index), _), name)| CoreItem {
            name,
            kind: CoreExport::of(&a.state).kind,
            index: *index,
        })
        .collect();
    let bundle = app.core_instance_of(&bundled);
    let accessor_instance = app.core_instantiate(accessor_module, &[("state", bundle)]);
    let mut reader_instances = Vec::new();
    let guest_memories = state.iter().zip(&in_place).filter(|(_, i)| **i);
    for ((&memory, _), &module) in guest_memories.zip(&reader_modules) {
        let bundle = app.core_instance_of(&[CoreItem {
            name: "memory",
            kind: ExportKind::Memory,
            index: memory,
        }]);
        let instance = app.core_instantiate(module, &[("state", bundle)]);
        reader_instances.push((instance, memory));
    }

    let table_reads: Vec<(&Accessor, u32)> = local
        .iter()
        .zip(&state)
        .zip(&by_table_reader)
        .filter(|(_, by)| **by)
        .map(|((a, index), _)| (*a, *index))
        .collect();
    let mut table_funcs = match table_reads.is_empty() {
        true => Vec::new(),
        false => append_table_reader(
            app,
            info,
            tables.context("internal error: a table accessor outside table mode")?,
            &table_reads,
        )?,
    }
    .into_iter();

    // Alias the reading functions and the accessor module's memory.
    let mut reader_instances = reader_instances.into_iter();
    let mut core_readers = Vec::with_capacity(local.len());
    for ((accessor, in_place), by_table_reader) in local.iter().zip(&in_place).zip(&by_table_reader)
    {
        core_readers.push(if *by_table_reader {
            table_funcs
                .next()
                .context("internal error: a table read was not aliased")?
        } else if *in_place {
            let (instance, guest_memory) = reader_instances
                .next()
                .context("internal error: an in-place reader was not instantiated")?;
            CoreReader::InPlace {
                read: app.alias_core_export(instance, ExportKind::Func, "read")?,
                restore: app.alias_core_export(instance, ExportKind::Func, "restore")?,
                guest_memory,
            }
        } else {
            CoreReader::Copying(app.alias_core_export(
                accessor_instance,
                ExportKind::Func,
                &accessor.func,
            )?)
        });
    }
    let accessor_memory = app.alias_core_export(accessor_instance, ExportKind::Memory, "memory")?;
    Ok(CoreReaders {
        funcs: core_readers,
        accessor_memory,
    })
}

/// Whether the table reader reads `accessor`.
fn reads_a_table(accessor: &Accessor) -> bool {
    matches!(
        accessor.state,
        State::Table { .. } | State::RefGlobal { .. }
    )
}

/// Appends and instantiates the table reader of a level in table mode, for
/// `reads` (each accessor with its state's index in the component's core
/// index space); returns its functions, in the order of `reads`.
fn append_table_reader(
    app: &mut Appender,
    info: &ComponentInfo,
    tables: &LevelTables,
    reads: &[(&Accessor, u32)],
) -> Result<Vec<CoreReader>> {
    let mut kinds = Vec::with_capacity(reads.len());
    for (accessor, _) in reads {
        let definition = info
            .instances
            .iter()
            .find(|i| i.index == accessor.instance)
            .context("internal error: an accessor of no core instance")?
            .definition;
        kinds.push(tables.read(definition, accessor.state)?);
    }
    let module = app.core_module(&table_reader::table_reader(
        &tables.probed,
        &kinds,
        &tables.types,
    )?);
    let mut names = Vec::new();
    let mut items = Vec::new();
    for (k, &instance) in tables.probed.iter().enumerate() {
        for (name, export) in [
            (table_reader::probing_import(k), edit::CORE_PROBING_EXPORT),
            (table_reader::found_import(k), edit::CORE_FOUND_EXPORT),
        ] {
            let index = app.alias_core_export(instance, ExportKind::Global, export)?;
            names.push(name);
            items.push((ExportKind::Global, index));
        }
    }
    for (n, (accessor, index)) in reads.iter().enumerate() {
        names.push(table_reader::read_import(n));
        items.push((CoreExport::of(&accessor.state).kind, *index));
    }
    let bundled: Vec<CoreItem<'_>> = names
        .iter()
        .zip(&items)
        .map(|(name, &(kind, index))| CoreItem { name, kind, index })
        .collect();
    let bundle = app.core_instance_of(&bundled);
    let instance = app.core_instantiate(module, &[("state", bundle)]);
    let memory = app.alias_core_export(instance, ExportKind::Memory, "memory")?;
    let mut funcs = Vec::with_capacity(reads.len());
    for n in 0..reads.len() {
        let read =
            app.alias_core_export(instance, ExportKind::Func, &table_reader::read_export(n))?;
        let cursor =
            app.alias_core_export(instance, ExportKind::Func, &table_reader::cursor_export(n))?;
        funcs.push(CoreReader::Table {
            read,
            cursor,
            memory,
        });
    }
    Ok(funcs)
}

/// Lifts the reading function of each of `local`; returns the component
/// functions, in the order of `local`.
fn lift_accessors(
    app: &mut Appender,
    local: &[&Accessor],
    readers: &CoreReaders,
) -> Result<Vec<u32>> {
    let accessor_memory = readers.accessor_memory;
    let types = AccessorTypes::append(app);
    let mut lifted = Vec::with_capacity(local.len());
    for (accessor, reader) in local.iter().zip(&readers.funcs) {
        lifted.push(match (accessor.state, reader) {
            (
                State::Memory { .. },
                &CoreReader::InPlace {
                    read,
                    restore,
                    guest_memory,
                },
            ) => app.lift(
                read,
                types.memory,
                &[
                    CanonicalOption::Memory(guest_memory),
                    CanonicalOption::PostReturn(restore),
                ],
            ),
            (
                State::Table { .. } | State::RefGlobal { .. },
                &CoreReader::Table { read, memory, .. },
            ) => app.lift(read, types.memory, &[CanonicalOption::Memory(memory)]),
            (_, CoreReader::Table { .. }) => {
                bail!("internal error: the table reader for state other than a table")
            }
            (State::Table { .. } | State::RefGlobal { .. }, CoreReader::Copying(_)) => {
                bail!("internal error: a copying reader for a table")
            }
            (_, CoreReader::InPlace { .. }) => {
                bail!("internal error: an in-place reader for state other than a memory")
            }
            (State::Memory { .. }, &CoreReader::Copying(func)) => app.lift(
                func,
                types.memory,
                &[CanonicalOption::Memory(accessor_memory)],
            ),
            (State::Probe { .. }, &CoreReader::Copying(func)) => {
                app.lift(func, types.scalar(ScalarType::I32), &[])
            }
            (
                State::Global {
                    ty: ScalarType::V128,
                    ..
                },
                &CoreReader::Copying(func),
            ) => app.lift(
                func,
                types.scalar(ScalarType::V128),
                &[CanonicalOption::Memory(accessor_memory)],
            ),
            (State::Global { ty, .. }, &CoreReader::Copying(func)) => {
                app.lift(func, types.scalar(ty), &[])
            }
        });
    }
    Ok(lifted)
}

/// The component function types of the accessors.
struct AccessorTypes {
    /// `func(offset: u64, len: u32) -> list<u8>`
    memory: u32,
    /// `func() -> s32|s64|f32|f64|tuple<u64, u64>`, by [`ScalarType`].
    i32: u32,
    i64: u32,
    f32: u32,
    f64: u32,
    v128: u32,
}

impl AccessorTypes {
    fn append(app: &mut Appender) -> AccessorTypes {
        let list_u8 = app.list_u8_type();
        let u64 = ComponentValType::Primitive(PrimitiveValType::U64);
        let memory = app.func_type(
            &[
                ("offset", u64),
                ("len", ComponentValType::Primitive(PrimitiveValType::U32)),
            ],
            Some(ComponentValType::Type(list_u8)),
        );
        // v128 is read as tuple<u64, u64>: (low 64 bits, high 64 bits)
        let u64_pair = app.tuple_type(&[u64, u64]);
        let mut returning = |ty| app.func_type(&[], Some(ty));
        let primitive = ComponentValType::Primitive;
        AccessorTypes {
            memory,
            i32: returning(primitive(PrimitiveValType::S32)),
            i64: returning(primitive(PrimitiveValType::S64)),
            f32: returning(primitive(PrimitiveValType::F32)),
            f64: returning(primitive(PrimitiveValType::F64)),
            v128: returning(ComponentValType::Type(u64_pair)),
        }
    }

    fn scalar(&self, ty: ScalarType) -> u32 {
        match ty {
            ScalarType::I32 => self.i32,
            ScalarType::I64 => self.i64,
            ScalarType::F32 => self.f32,
            ScalarType::F64 => self.f64,
            ScalarType::V128 => self.v128,
        }
    }
}
