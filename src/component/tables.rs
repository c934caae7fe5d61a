//! The rewrite's side of tables: turning the tables and reference-typed
//! globals read after init ([`RefId`]s, by the instance that defines them)
//! into what each core instance of the output writes at instantiation.
//!
//! A slot holding function `f` of core instance `I` is written by an
//! active element segment of `I` (which names `f` by its own index), on
//! `I`'s index of that table: `I` defines the table or imports it, so it is
//! instantiated after the table's owner. If `I` has no access to the table,
//! no instance of the output can put `f` there, and that is an error naming
//! the table, the slot and the function. Every active segment of the level
//! is emptied (the slots they wrote are written again, as init left them),
//! and each table's minimum is raised to its final size.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use wasmparser::{ComponentAlias, ExternalKind, Instance, InstantiationArgKind, Parser, Payload};

use crate::component::parse::{ComponentInfo, SectionKind};
use crate::edit::bake::InstanceState;
use crate::edit::tables::{TableEdit, TableImage};
use crate::plan::{RefId, State};

/// A table, by the core instance that defines it and its index there.
type TableRef = (u32, u32);

/// The most slots a table snapshot may have (a snapshot file claiming more
/// is refused before anything is allocated for it).
const MAX_SLOTS: u64 = 1 << 26;

/// Sets `tables` of each instance's state from what the level's tables and
/// reference-typed globals held after init (`table_reads`), when any
/// instance changed one; clears what was read either way.
pub(crate) fn carry(
    bytes: &[u8],
    info: &ComponentInfo,
    states: &mut BTreeMap<u32, InstanceState<'_>>,
) -> Result<()> {
    let changed = states
        .iter()
        .find_map(|(&instance, s)| s.tables_changed.map(|fired| (instance, fired)));
    let read = states.values().any(|s| !s.table_reads.is_empty());
    if let (Some((instance, fired)), false) = (changed, read) {
        let module = info
            .instances
            .iter()
            .find(|i| i.index == instance)
            .map(|i| &info.modules[i.definition])
            .context("internal error: a probe of no core instance")?;
        let name = crate::edit::probe::function_name(&bytes[module.range.clone()], fired.func);
        return Err(fired.during_init(
            module.index,
            instance,
            name.as_deref(),
            "",
            ", in a component level with a table or global of typed references, whose tables \
             component-init does not read",
        ));
    }
    let changed = changed.is_some();
    let mut tables: BTreeMap<TableRef, Vec<RefId>> = BTreeMap::new();
    let mut globals: Vec<(u32, u32, RefId)> = Vec::new();
    for (&instance, state) in states.iter_mut() {
        for (what, image) in std::mem::take(&mut state.table_reads) {
            if !changed {
                continue;
            }
            match what {
                State::Table { index } => {
                    let slots = image.len() / 8;
                    if slots > MAX_SLOTS {
                        bail!(
                            "the snapshot of table {index} of core instance {instance} has \
                             {slots} slots, more than the {MAX_SLOTS} this tool carries"
                        );
                    }
                    tables.insert((instance, index), RefId::slots(image));
                }
                State::RefGlobal { index } => {
                    if image.len() != 8 {
                        bail!(
                            "the snapshot of global {index} of core instance {instance} is {} \
                             bytes, not one 8-byte slot",
                            image.len()
                        );
                    }
                    let id = RefId::slots(image).first().copied().with_context(|| {
                        format!(
                            "the snapshot of global {index} of core instance {instance} is empty"
                        )
                    })?;
                    globals.push((instance, index, id));
                }
                _ => bail!("internal error: {what:?} read as a table"),
            }
        }
        state.tables_changed = None;
    }
    if !changed {
        return Ok(());
    }
    let links = TableLinks::of(bytes, info)?;
    let module_of = |instance: u32| {
        info.instances
            .iter()
            .find(|i| i.index == instance)
            .map_or_else(
                || "?".to_string(),
                |i| info.modules[i.definition].index.to_string(),
            )
    };
    // who writes each function slot: the instance the reader saw answer,
    // when it has the table; else any instance that has the table and
    // names the same function (an import resolves to what it imports)
    let mut writers: BTreeMap<TableRef, Vec<Option<(u32, u32)>>> = BTreeMap::new();
    for (&(owner, table), slots) in &tables {
        let mut column = Vec::with_capacity(slots.len());
        for (slot, id) in slots.iter().enumerate() {
            let place = || {
                format!(
                    "slot {slot} of table {table} of core instance {owner} (core module {})",
                    module_of(owner)
                )
            };
            column.push(match *id {
                RefId::Null => None,
                RefId::Func { instance, func } => {
                    if func >= links.funcs(instance) {
                        bail!(
                            "{} holds function {func} of core instance {instance}, which has \
                             no such function",
                            place()
                        );
                    }
                    let writer = match links.has(instance, (owner, table)) {
                        true => Some((instance, func)),
                        false => links.name_with(instance, func, |i| links.has(i, (owner, table))),
                    };
                    let Some(writer) = writer else {
                        bail!(
                            "{} holds function {func} of core instance {instance} (core module \
                             {}), and no instance that defines or imports that table can name \
                             it: no instance of the output can put the function there",
                            place(),
                            module_of(instance)
                        );
                    };
                    Some(writer)
                }
                RefId::Unknown => bail!(
                    "{} holds a function the table reader could not identify (a function \
                     whose parameters or results refer to its module's own types, or have no \
                     default value, cannot answer a probe); pre-initialization cannot carry it",
                    place()
                ),
                RefId::NotAFunction => bail!(
                    "{} holds a non-null reference that is not a function (an externref or a \
                     GC object); no element segment can express it, so init must leave it null",
                    place()
                ),
            });
        }
        writers.insert((owner, table), column);
    }
    for (&instance, state) in states.iter_mut() {
        let mut edit = TableEdit::default();
        for (index, origin) in links.space(instance).iter().enumerate() {
            let slots = writers.get(origin).with_context(|| {
                format!(
                    "internal error: table {} of core instance {} was not read",
                    origin.1, origin.0
                )
            })?;
            let own: Vec<Option<u32>> = slots
                .iter()
                .map(|w| match *w {
                    Some((writer, func)) if writer == instance => Some(func),
                    _ => None,
                })
                .collect();
            edit.tables.push(TableImage {
                index: index as u32,
                slots: own,
            });
        }
        for &(_, index, id) in globals.iter().filter(|(i, _, _)| *i == instance) {
            let value = match id {
                RefId::Null => None,
                RefId::Func { instance: i, func } if func < links.funcs(i) => {
                    let named = match i == instance {
                        true => Some(func),
                        false => links.name_with(i, func, |j| j == instance).map(|(_, f)| f),
                    };
                    match named {
                        Some(func) => Some(func),
                        None => bail!(
                            "global {index} of core instance {instance} (core module {}) holds \
                             function {func} of core instance {i}, which that instance cannot \
                             name (it neither defines nor imports it), so no initializer can \
                             express it",
                            module_of(instance)
                        ),
                    }
                }
                RefId::Func { instance: i, func } => bail!(
                    "global {index} of core instance {instance} (core module {}) holds function \
                     {func} of core instance {i}, which has no such function",
                    module_of(instance)
                ),
                RefId::Unknown | RefId::NotAFunction => bail!(
                    "global {index} of core instance {instance} (core module {}) holds a \
                     reference no initializer can express (a function no module of the \
                     component has, an externref or a GC object)",
                    module_of(instance)
                ),
            };
            edit.globals.push((index, value));
        }
        if !edit.tables.is_empty() || !edit.globals.is_empty() {
            state.tables = Some(edit);
        }
    }
    Ok(())
}

/// The table index space of every core instance of a level that
/// instantiates a module: each index resolved to the table it names.
struct TableLinks {
    spaces: BTreeMap<u32, Vec<TableRef>>,
    /// The number of functions of each instance's module.
    funcs: BTreeMap<u32, u32>,
    /// Each instance's imported functions, resolved to what they import.
    imports: BTreeMap<u32, Vec<Option<FuncOrigin>>>,
}

/// Where a core function comes from: a module instance's own function, or
/// a core function of the component (a lowered function or a builtin, by
/// its index in the level's core function index space).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FuncOrigin {
    Defined(u32, u32),
    Canonical(u32),
}

/// A core function of the level's index space.
enum CoreFunc {
    /// An export of a core instance.
    Alias(u32, String),
    /// Made by a `canon` definition.
    Canonical,
}

/// A core instance of a level, as its section says.
enum CoreInstance {
    /// Module `module` (an index into `info.modules`) with its arguments.
    Module {
        definition: usize,
        args: Vec<(String, u32)>,
    },
    /// A bundle of items: name, kind, index in the level's index space.
    Bundle(Vec<(String, ExternalKind, u32)>),
}

/// The table imports (module, name) and exports (name, kind, index) of a
/// module.
#[derive(Default)]
struct ModuleLinks {
    table_imports: Vec<(String, String)>,
    func_imports: Vec<(String, String)>,
    exports: Vec<(String, ExternalKind, u32)>,
    defined_tables: u32,
    /// Functions, imported and defined.
    funcs: u32,
}

impl ModuleLinks {
    fn of(bytes: &[u8]) -> Result<ModuleLinks> {
        let mut links = ModuleLinks::default();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import?;
                        match import.ty {
                            wasmparser::TypeRef::Table(_) => links
                                .table_imports
                                .push((import.module.to_string(), import.name.to_string())),
                            wasmparser::TypeRef::Func(_) => {
                                links.funcs += 1;
                                links
                                    .func_imports
                                    .push((import.module.to_string(), import.name.to_string()));
                            }
                            _ => {}
                        }
                    }
                }
                Payload::TableSection(reader) => links.defined_tables = reader.count(),
                Payload::FunctionSection(reader) => links.funcs += reader.count(),
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        links
                            .exports
                            .push((export.name.to_string(), export.kind, export.index));
                    }
                }
                Payload::CodeSectionStart { .. } => break,
                _ => {}
            }
        }
        Ok(links)
    }
}

impl TableLinks {
    fn of(bytes: &[u8], info: &ComponentInfo) -> Result<TableLinks> {
        let mut instances: Vec<CoreInstance> = Vec::new();
        let mut tables: Vec<(u32, String)> = Vec::new();
        let mut funcs: Vec<CoreFunc> = Vec::new();
        let mut modules = BTreeMap::new();
        for instance in &info.instances {
            if let std::collections::btree_map::Entry::Vacant(e) =
                modules.entry(instance.definition)
            {
                let range = info.modules[instance.definition].range.clone();
                e.insert(ModuleLinks::of(&bytes[range])?);
            }
        }
        for section in &info.sections {
            if !matches!(section.kind, SectionKind::Other) {
                continue;
            }
            let reader = wasmparser::BinaryReader::new(&bytes[section.range.clone()], 0);
            match section.id {
                2 => {
                    for instance in wasmparser::InstanceSectionReader::new(reader)? {
                        instances.push(match instance? {
                            Instance::Instantiate { args, .. } => {
                                let index = instances.len() as u32;
                                let definition = info
                                    .instances
                                    .iter()
                                    .find(|i| i.index == index)
                                    .with_context(|| {
                                        format!(
                                            "internal error: core instance {index} was not parsed"
                                        )
                                    })?
                                    .definition;
                                let args = args
                                    .iter()
                                    .filter(|a| a.kind == InstantiationArgKind::Instance)
                                    .map(|a| (a.name.to_string(), a.index))
                                    .collect();
                                CoreInstance::Module { definition, args }
                            }
                            Instance::FromExports(exports) => CoreInstance::Bundle(
                                exports
                                    .iter()
                                    .map(|e| (e.name.to_string(), e.kind, e.index))
                                    .collect(),
                            ),
                        });
                    }
                }
                6 => {
                    for alias in wasmparser::ComponentAliasSectionReader::new(reader)? {
                        if let ComponentAlias::CoreInstanceExport {
                            kind,
                            instance_index,
                            name,
                        } = alias?
                        {
                            match kind {
                                ExternalKind::Table => {
                                    tables.push((instance_index, name.to_string()))
                                }
                                ExternalKind::Func => {
                                    funcs.push(CoreFunc::Alias(instance_index, name.to_string()))
                                }
                                _ => {}
                            }
                        }
                    }
                }
                8 => {
                    for canonical in wasmparser::ComponentCanonicalSectionReader::new(reader)? {
                        if !matches!(canonical?, wasmparser::CanonicalFunction::Lift { .. }) {
                            funcs.push(CoreFunc::Canonical);
                        }
                    }
                }
                _ => {}
            }
        }
        let resolver = Resolver {
            instances: &instances,
            tables: &tables,
            funcs: &funcs,
            modules: &modules,
        };
        let mut spaces = BTreeMap::new();
        let mut imports = BTreeMap::new();
        let mut funcs = BTreeMap::new();
        for (index, instance) in instances.iter().enumerate() {
            let CoreInstance::Module { definition, .. } = instance else {
                continue;
            };
            let links = &modules[definition];
            funcs.insert(index as u32, links.funcs);
            imports.insert(
                index as u32,
                links
                    .func_imports
                    .iter()
                    .map(|(module, name)| resolver.func_import(index as u32, module, name, 0))
                    .collect(),
            );
            let mut space = Vec::new();
            for (module, name) in &links.table_imports {
                space.push(
                    resolver
                        .import(index as u32, module, name, 0)
                        .with_context(|| {
                            format!(
                                "cannot tell which table core instance {index} imports as \
                                 `{module}` `{name}`"
                            )
                        })?,
                );
            }
            let imported = links.table_imports.len() as u32;
            for t in 0..links.defined_tables {
                space.push((index as u32, imported + t));
            }
            spaces.insert(index as u32, space);
        }
        Ok(TableLinks {
            spaces,
            funcs,
            imports,
        })
    }

    /// Where function `func` of instance `instance` comes from.
    fn origin(&self, instance: u32, func: u32) -> Option<FuncOrigin> {
        match self.imports.get(&instance)?.get(func as usize) {
            Some(import) => *import,
            None => Some(FuncOrigin::Defined(instance, func)),
        }
    }

    /// An instance that `accept`s and names the function `func` of
    /// `instance` names (defines it, or imports it), with its index there.
    fn name_with(
        &self,
        instance: u32,
        func: u32,
        accept: impl Fn(u32) -> bool,
    ) -> Option<(u32, u32)> {
        let origin = self.origin(instance, func)?;
        for (&other, imports) in &self.imports {
            if !accept(other) {
                continue;
            }
            if let FuncOrigin::Defined(i, f) = origin
                && i == other
                && f >= imports.len() as u32
            {
                return Some((other, f));
            }
            if let Some(k) = imports.iter().position(|o| *o == Some(origin)) {
                return Some((other, k as u32));
            }
        }
        None
    }

    /// The number of functions of core instance `instance`'s module (0 for
    /// an instance that is not a module's).
    fn funcs(&self, instance: u32) -> u32 {
        self.funcs.get(&instance).copied().unwrap_or(0)
    }

    fn space(&self, instance: u32) -> &[TableRef] {
        self.spaces.get(&instance).map_or(&[], |s| s.as_slice())
    }

    /// Whether core instance `instance` has table `table` in its index space.
    fn has(&self, instance: u32, table: TableRef) -> bool {
        self.space(instance).contains(&table)
    }
}

struct Resolver<'a> {
    instances: &'a [CoreInstance],
    tables: &'a [(u32, String)],
    funcs: &'a [CoreFunc],
    modules: &'a BTreeMap<usize, ModuleLinks>,
}

impl Resolver<'_> {
    /// The function that instance `instance` imports as `module` `name`.
    fn func_import(
        &self,
        instance: u32,
        module: &str,
        name: &str,
        depth: usize,
    ) -> Option<FuncOrigin> {
        let CoreInstance::Module { args, .. } = self.instances.get(instance as usize)? else {
            return None;
        };
        let (_, arg) = args.iter().find(|(n, _)| n == module)?;
        self.func_export(*arg, name, depth + 1)
    }

    /// The function that instance `instance` exports as `name`.
    fn func_export(&self, instance: u32, name: &str, depth: usize) -> Option<FuncOrigin> {
        if depth > self.instances.len() + self.funcs.len() {
            return None;
        }
        match self.instances.get(instance as usize)? {
            CoreInstance::Module { definition, .. } => {
                let links = self.modules.get(definition)?;
                let &(_, _, index) = links
                    .exports
                    .iter()
                    .find(|(n, k, _)| n == name && *k == ExternalKind::Func)?;
                match links.func_imports.get(index as usize) {
                    Some((module, field)) => self.func_import(instance, module, field, depth + 1),
                    None => Some(FuncOrigin::Defined(instance, index)),
                }
            }
            CoreInstance::Bundle(items) => {
                let &(_, _, index) = items
                    .iter()
                    .find(|(n, k, _)| n == name && *k == ExternalKind::Func)?;
                match self.funcs.get(index as usize)? {
                    CoreFunc::Alias(from, export) => self.func_export(*from, export, depth + 1),
                    CoreFunc::Canonical => Some(FuncOrigin::Canonical(index)),
                }
            }
        }
    }

    /// The table that instance `instance` imports as `module` `name`.
    fn import(&self, instance: u32, module: &str, name: &str, depth: usize) -> Option<TableRef> {
        let CoreInstance::Module { args, .. } = self.instances.get(instance as usize)? else {
            return None;
        };
        let (_, arg) = args.iter().find(|(n, _)| n == module)?;
        self.export(*arg, name, depth + 1)
    }

    /// The table that instance `instance` exports as `name`.
    fn export(&self, instance: u32, name: &str, depth: usize) -> Option<TableRef> {
        if depth > self.instances.len() + self.tables.len() {
            return None;
        }
        match self.instances.get(instance as usize)? {
            CoreInstance::Module { definition, .. } => {
                let links = self.modules.get(definition)?;
                let &(_, _, index) = links
                    .exports
                    .iter()
                    .find(|(n, k, _)| n == name && *k == ExternalKind::Table)?;
                match links.table_imports.get(index as usize) {
                    Some((module, field)) => self.import(instance, module, field, depth + 1),
                    None => Some((instance, index)),
                }
            }
            CoreInstance::Bundle(items) => {
                let &(_, _, index) = items
                    .iter()
                    .find(|(n, k, _)| n == name && *k == ExternalKind::Table)?;
                let (from, export) = self.tables.get(index as usize)?;
                self.export(*from, export, depth + 1)
            }
        }
    }
}
