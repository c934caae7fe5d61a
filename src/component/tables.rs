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
        return Err(unread_level(bytes, info, instance, fired));
    }
    let reads = Reads::take(states, changed.is_some())?;
    if changed.is_none() {
        return Ok(());
    }
    let links = TableLinks::of(bytes, info)?;
    let names = Names {
        info,
        links: &links,
    };
    let mut writers = BTreeMap::new();
    for (&(owner, table), slots) in &reads.tables {
        writers.insert((owner, table), names.writers(owner, table, slots)?);
    }
    for (&instance, state) in states.iter_mut() {
        let mut edit = TableEdit::default();
        for (index, origin) in links.space(instance).iter().enumerate() {
            let slots: &Vec<Option<(u32, u32)>> = writers.get(origin).with_context(|| {
                format!(
                    "internal error: table {} of core instance {} was not read",
                    origin.1, origin.0
                )
            })?;
            edit.tables.push(TableImage {
                index: index as u32,
                slots: slots
                    .iter()
                    .map(|w| w.filter(|(writer, _)| *writer == instance).map(|(_, f)| f))
                    .collect(),
            });
        }
        for &(_, index, id) in reads.globals.iter().filter(|(i, _, _)| *i == instance) {
            edit.globals
                .push((index, names.global(instance, index, id)?));
        }
        if !edit.tables.is_empty() || !edit.globals.is_empty() {
            state.tables = Some(edit);
        }
    }
    Ok(())
}

/// The error for a table change, `fired` in `instance`, at a level whose
/// tables are not read (it has a table or global of typed references).
fn unread_level(
    bytes: &[u8],
    info: &ComponentInfo,
    instance: u32,
    fired: crate::edit::probe::Fired,
) -> anyhow::Error {
    let Some(module) = info
        .instances
        .iter()
        .find(|i| i.index == instance)
        .map(|i| &info.modules[i.definition])
    else {
        return anyhow::anyhow!("internal error: a probe of no core instance");
    };
    let name = crate::edit::probe::function_name(&bytes[module.range.clone()], fired.func);
    fired.during_init(
        module.index,
        instance,
        name.as_deref(),
        "",
        ", in a component level with a table or global of typed references, whose tables \
         component-init does not read",
    )
}

/// What the level's table accessors read.
struct Reads {
    /// Each table's slots.
    tables: BTreeMap<TableRef, Vec<RefId>>,
    /// (instance, global index, what it holds)
    globals: Vec<(u32, u32, RefId)>,
}

impl Reads {
    /// Takes the reads out of `states` (and their probes), decoding them
    /// when `keep`.
    fn take(states: &mut BTreeMap<u32, InstanceState<'_>>, keep: bool) -> Result<Reads> {
        let mut reads = Reads {
            tables: BTreeMap::new(),
            globals: Vec::new(),
        };
        for (&instance, state) in states.iter_mut() {
            state.tables_changed = None;
            for (what, image) in std::mem::take(&mut state.table_reads) {
                if !keep {
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
                        reads.tables.insert((instance, index), RefId::slots(image));
                    }
                    State::RefGlobal { index } => {
                        if image.len() != 8 {
                            bail!(
                                "the snapshot of global {index} of core instance {instance} is \
                                 {} bytes, not one 8-byte slot",
                                image.len()
                            );
                        }
                        let id = RefId::slots(image).first().copied().with_context(|| {
                            format!(
                                "the snapshot of global {index} of core instance {instance} is \
                                 empty"
                            )
                        })?;
                        reads.globals.push((instance, index, id));
                    }
                    _ => bail!("internal error: {what:?} read as a table"),
                }
            }
        }
        Ok(reads)
    }
}

/// Which instance of the output names which function.
struct Names<'a> {
    info: &'a ComponentInfo,
    links: &'a TableLinks,
}

impl Names<'_> {
    /// The core module of `instance`, for messages.
    fn module_of(&self, instance: u32) -> String {
        self.info
            .instances
            .iter()
            .find(|i| i.index == instance)
            .map_or_else(
                || "?".to_string(),
                |i| self.info.modules[i.definition].index.to_string(),
            )
    }

    /// Who writes each function slot of table `table` of `owner`: the
    /// instance the reader saw answer, when it has the table; else any
    /// instance that has the table and names the same function (an import
    /// resolves to what it imports).
    fn writers(&self, owner: u32, table: u32, slots: &[RefId]) -> Result<Vec<Option<(u32, u32)>>> {
        let links = self.links;
        let mut column = Vec::with_capacity(slots.len());
        for (slot, id) in slots.iter().enumerate() {
            let place = || {
                format!(
                    "slot {slot} of table {table} of core instance {owner} (core module {})",
                    self.module_of(owner)
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
                            self.module_of(instance)
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
        Ok(column)
    }

    /// The function global `index` of `instance` starts with, as `instance`
    /// names it, for `id` read from it.
    fn global(&self, instance: u32, index: u32, id: RefId) -> Result<Option<u32>> {
        let links = self.links;
        Ok(match id {
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
                         function {func} of core instance {i}, which that instance cannot name \
                         (it neither defines nor imports it), so no initializer can express it",
                        self.module_of(instance)
                    ),
                }
            }
            RefId::Func { instance: i, func } => bail!(
                "global {index} of core instance {instance} (core module {}) holds function \
                 {func} of core instance {i}, which has no such function",
                self.module_of(instance)
            ),
            RefId::Unknown | RefId::NotAFunction => bail!(
                "global {index} of core instance {instance} (core module {}) holds a reference \
                 no initializer can express (a function no module of the component has, an \
                 externref or a GC object)",
                self.module_of(instance)
            ),
        })
    }
}

/// The table index space of every core instance of a level that
/// instantiates a module: each index resolved to the table it names.
struct TableLinks {
    spaces: BTreeMap<u32, Vec<TableRef>>,
    /// The number of functions of each instance's module.
    funcs: BTreeMap<u32, u32>,
    /// Each instance's imported functions, resolved to what they import.
    imports: BTreeMap<u32, Vec<Option<Origin>>>,
}

/// Where a core table or function comes from: a module instance's own
/// (instance, index), or a core function of the component (a lowered
/// function or a builtin, by its index in the level's core function index
/// space).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Defined(u32, u32),
    Canonical(u32),
}

/// An item of the level's core table or function index space.
enum Aliased {
    /// An export of a core instance.
    Export(u32, String),
    /// Made by a `canon` definition (functions only).
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
        let resolver = Resolver::read(bytes, info)?;
        let modules = &resolver.modules;
        let instances = &resolver.instances;
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
                    .map(|(module, name)| {
                        resolver.import(index as u32, module, name, ExternalKind::Func, 0)
                    })
                    .collect(),
            );
            let mut space = Vec::new();
            for (module, name) in &links.table_imports {
                let table =
                    match resolver.import(index as u32, module, name, ExternalKind::Table, 0) {
                        Some(Origin::Defined(instance, table)) => Some((instance, table)),
                        _ => None,
                    };
                space.push(table.with_context(|| {
                    format!(
                        "cannot tell which table core instance {index} imports as \
                                 `{module}` `{name}`"
                    )
                })?);
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
    fn origin(&self, instance: u32, func: u32) -> Option<Origin> {
        match self.imports.get(&instance)?.get(func as usize) {
            Some(import) => *import,
            None => Some(Origin::Defined(instance, func)),
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
            if let Origin::Defined(i, f) = origin
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

/// The core index spaces of a level, as its sections build them.
struct Resolver {
    instances: Vec<CoreInstance>,
    /// Core tables: aliases of core instance exports.
    tables: Vec<Aliased>,
    funcs: Vec<Aliased>,
    /// The links of each instantiated module (by index into `info.modules`).
    modules: BTreeMap<usize, ModuleLinks>,
}

impl Resolver {
    /// Reads the level `info`'s core instance, alias and canonical sections.
    fn read(bytes: &[u8], info: &ComponentInfo) -> Result<Resolver> {
        let mut resolver = Resolver {
            instances: Vec::new(),
            tables: Vec::new(),
            funcs: Vec::new(),
            modules: BTreeMap::new(),
        };
        for instance in &info.instances {
            if let std::collections::btree_map::Entry::Vacant(e) =
                resolver.modules.entry(instance.definition)
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
                2 => resolver.read_instances(info, reader)?,
                6 => resolver.read_aliases(reader)?,
                8 => {
                    for canonical in wasmparser::ComponentCanonicalSectionReader::new(reader)? {
                        if !matches!(canonical?, wasmparser::CanonicalFunction::Lift { .. }) {
                            resolver.funcs.push(Aliased::Canonical);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(resolver)
    }

    /// A core instance section.
    fn read_instances(
        &mut self,
        info: &ComponentInfo,
        reader: wasmparser::BinaryReader<'_>,
    ) -> Result<()> {
        for instance in wasmparser::InstanceSectionReader::new(reader)? {
            let instance = match instance? {
                Instance::Instantiate { args, .. } => {
                    let index = self.instances.len() as u32;
                    let definition = info
                        .instances
                        .iter()
                        .find(|i| i.index == index)
                        .with_context(|| {
                            format!("internal error: core instance {index} was not parsed")
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
            };
            self.instances.push(instance);
        }
        Ok(())
    }

    /// An alias section: the core tables and functions it aliases.
    fn read_aliases(&mut self, reader: wasmparser::BinaryReader<'_>) -> Result<()> {
        for alias in wasmparser::ComponentAliasSectionReader::new(reader)? {
            if let ComponentAlias::CoreInstanceExport {
                kind,
                instance_index,
                name,
            } = alias?
            {
                match kind {
                    ExternalKind::Table => self
                        .tables
                        .push(Aliased::Export(instance_index, name.to_string())),
                    ExternalKind::Func => self
                        .funcs
                        .push(Aliased::Export(instance_index, name.to_string())),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The item of `kind` (a table or a function) that instance `instance`
    /// imports as `module` `name`.
    fn import(
        &self,
        instance: u32,
        module: &str,
        name: &str,
        kind: ExternalKind,
        depth: usize,
    ) -> Option<Origin> {
        let CoreInstance::Module { args, .. } = self.instances.get(instance as usize)? else {
            return None;
        };
        let (_, arg) = args.iter().find(|(n, _)| n == module)?;
        self.export(*arg, name, kind, depth + 1)
    }

    /// The item of `kind` that instance `instance` exports as `name`.
    fn export(
        &self,
        instance: u32,
        name: &str,
        kind: ExternalKind,
        depth: usize,
    ) -> Option<Origin> {
        if depth > self.instances.len() + self.tables.len() + self.funcs.len() {
            return None;
        }
        match self.instances.get(instance as usize)? {
            CoreInstance::Module { definition, .. } => {
                let links = self.modules.get(definition)?;
                let &(_, _, index) = links
                    .exports
                    .iter()
                    .find(|(n, k, _)| n == name && *k == kind)?;
                let imports = match kind {
                    ExternalKind::Table => &links.table_imports,
                    _ => &links.func_imports,
                };
                match imports.get(index as usize) {
                    Some((module, field)) => self.import(instance, module, field, kind, depth + 1),
                    None => Some(Origin::Defined(instance, index)),
                }
            }
            CoreInstance::Bundle(items) => {
                let &(_, _, index) = items.iter().find(|(n, k, _)| n == name && *k == kind)?;
                let space = match kind {
                    ExternalKind::Table => &self.tables,
                    _ => &self.funcs,
                };
                match space.get(index as usize)? {
                    Aliased::Export(from, export) => self.export(*from, export, kind, depth + 1),
                    Aliased::Canonical => Some(Origin::Canonical(index)),
                }
            }
        }
    }
}
