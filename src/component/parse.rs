//! Phase 1, parse: validate the component and record, for the top level and
//! for each nested component definition alike ([`ComponentInfo`]), every
//! section, every core module and core instance, the mutable state each
//! instantiated module defines, and the component's exports.
//!
//! Parsing and validation happen in one pass: the validator runs in lockstep
//! with the walk, and every index this crate needs (which module a module
//! section defines, which core instance an instantiation creates, which
//! component function an export defines) is read from the validator's types
//! at the moment the item is seen.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use wasmparser::types::{Types, TypesRef};
use wasmparser::{
    ComponentExternalKind, Encoding, FrameKind, FrameStack, FuncValidator, FunctionBody, Instance,
    Parser, Payload, ValidPayload, Validator, ValidatorResources, VisitOperator,
    WasmModuleResources,
};

use crate::component::names;
pub use crate::edit::facts::ModuleInfo;
use crate::edit::facts::{ModuleFrame, finish_module};

pub use crate::edit::features;

/// A validated component and what the later phases need to know about it.
pub struct Parsed<'a> {
    /// The whole component.
    pub bytes: &'a [u8],
    /// The top-level component.
    pub root: ComponentInfo,
    /// The validator's types for the top level.
    pub types: Types,
    /// When function bodies were validated ([`parse`]): the modules (by
    /// the start of [`ModuleInfo::range`]) whose code holds an instruction
    /// that [`crate::edit::probe`] instruments, seen while validating.
    probed_code: Option<BTreeSet<usize>>,
}

impl Parsed<'_> {
    /// Whether the code of `module` may hold an instruction that
    /// [`crate::edit::probe::probe`] instruments: `false` only when the
    /// validation of its bodies saw none (then `probe` finds none either).
    pub fn may_need_probes(&self, module: &ModuleInfo) -> bool {
        self.probed_code
            .as_ref()
            .is_none_or(|modules| modules.contains(&module.range.start))
    }
}

/// One component: the top level or a nested component definition.
pub struct ComponentInfo {
    /// The component's bytes (from the header on) within [`Parsed::bytes`].
    pub range: Range<usize>,
    /// The component's index in its parent (`None` for the top level).
    pub index: Option<u32>,
    /// Sections, in order, as ranges into [`Parsed::bytes`].
    pub sections: Vec<Section>,
    /// Core modules defined by module sections, in order.
    pub modules: Vec<ModuleInfo>,
    /// Core instances created by instantiating one of `modules`.
    pub instances: Vec<InstanceInfo>,
    /// Components defined by component sections, in order.
    pub components: Vec<ComponentInfo>,
    /// Component instances created by instantiating one of `components`.
    pub component_instances: Vec<InstanceInfo>,
    /// Component exports, in order.
    pub exports: Vec<ExportInfo>,
    /// Index-space sizes at the end of the component.
    pub counts: Counts,
}

impl ComponentInfo {
    fn new(range: Range<usize>, index: Option<u32>) -> ComponentInfo {
        ComponentInfo {
            range,
            index,
            sections: Vec::new(),
            modules: Vec::new(),
            instances: Vec::new(),
            components: Vec::new(),
            component_instances: Vec::new(),
            exports: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Whether some module instantiated in this component or in a component
    /// instantiated in it (at any depth) defines state.
    pub fn has_state(&self) -> bool {
        self.instances.iter().any(|i| {
            let m = &self.modules[i.definition];
            !m.memories.is_empty() || !m.globals.is_empty()
        }) || self
            .component_instances
            .iter()
            .any(|i| self.components[i.definition].has_state())
    }

    /// Whether some module is instantiated in this component or in a
    /// component instantiated in it, at any depth.
    pub fn instantiates(&self) -> bool {
        !self.instances.is_empty()
            || self
                .component_instances
                .iter()
                .any(|i| self.components[i.definition].instantiates())
    }

    /// The module with index `index` in this component's module index space.
    pub fn module(&self, index: u32) -> Option<&ModuleInfo> {
        self.modules.iter().find(|m| m.index == index)
    }
}

/// Index-space sizes of a component, from the validator.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Core modules.
    pub modules: u32,
    /// Core instances.
    pub core_instances: u32,
    /// Core memories.
    pub memories: u32,
    /// Core globals.
    pub globals: u32,
    /// Core tables.
    pub tables: u32,
    /// Core functions.
    pub core_funcs: u32,
    /// Component types.
    pub types: u32,
    /// Component functions.
    pub funcs: u32,
    /// Component instances.
    pub instances: u32,
}

impl Counts {
    /// The sizes of the index spaces of the component `types` describes.
    pub fn of(types: &TypesRef<'_>) -> Counts {
        Counts {
            modules: types.module_count(),
            core_instances: types.core_instance_count(),
            memories: types.memory_count(),
            globals: types.global_count(),
            tables: types.table_count(),
            core_funcs: types.function_count(),
            types: types.component_type_count(),
            funcs: types.component_function_count(),
            instances: types.component_instance_count(),
        }
    }
}

/// One section of a component (the top level or a nested one).
pub struct Section {
    /// The section id, as in the binary format.
    pub id: u8,
    /// The section's contents (without id and size) within the component.
    pub range: Range<usize>,
    /// What the later phases care about in this section.
    pub kind: SectionKind,
    /// Core instances defined before this section.
    pub core_instances_before: u32,
    /// Component instances defined before this section.
    pub instances_before: u32,
}

/// Sections that the rewrite treats specially.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// A core module: the index into [`ComponentInfo::modules`].
    Module(usize),
    /// A nested component: the index into [`ComponentInfo::components`].
    Component(usize),
    /// Component exports: `exports[start..start + len]` of [`ComponentInfo::exports`].
    Exports {
        /// Index of the section's first export in [`ComponentInfo::exports`].
        start: usize,
        /// Number of exports in the section.
        len: usize,
    },
    /// The `producers` custom section.
    Producers,
    /// Anything else: copied unchanged.
    Other,
}

/// A core (or component) instance that instantiates a module (or
/// component) defined in the same component.
pub struct InstanceInfo {
    /// The instance's index in its index space.
    pub index: u32,
    /// What it instantiates: for a core instance, an index into
    /// [`ComponentInfo::modules`]; for a component instance, an index into
    /// [`ComponentInfo::components`].
    pub definition: usize,
}

/// An export of a component (the top level or a nested one).
pub struct ExportInfo {
    /// The export's name.
    pub name: String,
    /// What it exports.
    pub kind: ComponentExternalKind,
    /// The index of the exported item.
    pub source: u32,
    /// The index the export itself defines in its kind's index space.
    pub defines: u32,
}

/// Parses and validates `bytes` as a component, function bodies included
/// (in parallel).
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>> {
    check_header(bytes)?;
    let (mut parsed, funcs) = Walker::default().walk(bytes, true)?;
    parsed.probed_code = Some(validate_bodies(funcs)?);
    Ok(parsed)
}

/// [`parse`], the function bodies only read for what the probe pass needs
/// to know: returned unvalidated, for [`Bodies::validate`] later (which
/// must succeed before anything runs them). For a pipeline that can
/// validate them while it does other work.
pub(crate) fn parse_deferring_bodies(bytes: &[u8]) -> Result<(Parsed<'_>, Bodies<'_>)> {
    check_header(bytes)?;
    let (mut parsed, funcs) = Walker::default().walk(bytes, true)?;
    match scan_bodies(&funcs) {
        Ok(probed) => parsed.probed_code = Some(probed),
        // The validator's error, as `parse` gives it.
        Err(_) => {
            validate_bodies(funcs)?;
            bail!("internal error: a function body that does not decode validates");
        }
    }
    Ok((parsed, Bodies(funcs)))
}

/// The function bodies of a component [`parse_deferring_bodies`] read,
/// still to validate.
pub(crate) struct Bodies<'a>(Vec<FuncToCheck<'a>>);

impl Bodies<'_> {
    /// Validates the bodies (in parallel), as [`parse`] does.
    pub(crate) fn validate(self) -> Result<()> {
        validate_bodies(self.0).map(drop)
    }
}

/// Parses `bytes` and validates everything but function bodies: for a
/// component whose bodies were validated already (by [`parse`] in the same
/// process), or whose bodies are byte for byte those of a validated one.
pub fn parse_validated_code(bytes: &[u8]) -> Result<Parsed<'_>> {
    check_header(bytes)?;
    Walker::default()
        .walk(bytes, false)
        .map(|(parsed, _)| parsed)
}

/// Validates `bytes`, a component whose function bodies are, byte for byte,
/// ones validated already (the rewrite's output): everything but the
/// bodies, as [`parse_validated_code`] does, without recording anything.
///
/// A module's data section whose segments are all passive or at an
/// `i32.const`/`i64.const` offset of the memory's address type, as the
/// rewrite writes them, is checked here, segment by segment, for what the
/// validator checks of it (the count, each memory index and offset); any
/// other goes to the validator. Either way a data section must be the last
/// section of its module but custom ones.
pub fn validate_without_code(bytes: &[u8]) -> Result<()> {
    check_header(bytes)?;
    let mut validator = Validator::new_with_features(features());
    // Whether each memory of the module being read has 64-bit addresses.
    let mut memories: Vec<bool> = Vec::new();
    // Whether that module's data section was checked here.
    let mut data_checked = false;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.context("failed to parse the component")?;
        match &payload {
            Payload::Version {
                encoding: Encoding::Module,
                ..
            } => {
                memories.clear();
                data_checked = false;
            }
            Payload::ImportSection(imports) => {
                for import in imports.clone().into_imports() {
                    if let wasmparser::TypeRef::Memory(ty) =
                        import.context("failed to parse an import")?.ty
                    {
                        memories.push(ty.memory64);
                    }
                }
            }
            Payload::MemorySection(section) => {
                for memory in section.clone() {
                    memories.push(memory.context("failed to parse a memory")?.memory64);
                }
            }
            Payload::DataSection(section) if plain_data(&bytes[section.range()], &memories) => {
                data_checked = true;
                continue;
            }
            Payload::CustomSection(_) => {}
            Payload::End(_) => data_checked = false,
            other if data_checked && other.as_section().is_some() => {
                bail!("a module has a section after its data section")
            }
            _ => {}
        }
        validator
            .payload(&payload)
            .context("the component is not valid")?;
    }
    Ok(())
}

/// Whether every segment of the data section `contents` is passive or
/// active at an `i32.const` or `i64.const` offset, whichever the address
/// type of its memory (`memories`: 64-bit or not, by index) is, and there
/// are no more segments than the validator allows: then the validator
/// would accept the section. Read as wasmparser reads a data section
/// (flags, memory index, offset, bytes), without building its items.
fn plain_data(contents: &[u8], memories: &[bool]) -> bool {
    let mut reader = wasmparser::BinaryReader::new(contents, 0);
    let segment = |reader: &mut wasmparser::BinaryReader<'_>| -> wasmparser::Result<bool> {
        let memory = match reader.read_var_u32()? {
            0 => 0,
            1 => {
                // passive: its bytes only
                let len = reader.read_var_u32()?;
                reader.read_bytes(len as usize)?;
                return Ok(true);
            }
            2 => reader.read_var_u32()?,
            _ => return Ok(false),
        };
        let Some(&memory64) = memories.get(memory as usize) else {
            return Ok(false);
        };
        let offset = match (reader.read_u8()?, memory64) {
            (0x41, false) => reader.read_var_i32().map(drop),
            (0x42, true) => reader.read_var_i64().map(drop),
            _ => return Ok(false),
        };
        // `end`
        if offset.is_err() || reader.read_u8()? != 0x0b {
            return Ok(false);
        }
        let len = reader.read_var_u32()?;
        reader.read_bytes(len as usize)?;
        Ok(true)
    };
    let Ok(count) = reader.read_var_u32() else {
        return false;
    };
    if count as usize > crate::edit::segments::ENGINE_LIMIT {
        return false;
    }
    (0..count).all(|_| segment(&mut reader).unwrap_or(false)) && reader.eof()
}

/// A function body to validate: the start of its module's range, and the
/// validator and body wasmparser hands out.
type FuncToCheck<'a> = (
    usize,
    wasmparser::FuncToValidate<ValidatorResources>,
    FunctionBody<'a>,
);

/// Validates the functions in parallel, one thread per core; returns the
/// modules (by the start of their range) whose code holds an instruction
/// that [`crate::edit::probe`] instruments.
fn validate_bodies(funcs: Vec<FuncToCheck<'_>>) -> Result<BTreeSet<usize>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(funcs.len().max(1));
    let mut chunks: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, func) in funcs.into_iter().enumerate() {
        chunks[i % threads].push(func);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || -> Result<BTreeSet<usize>> {
                    let mut allocs = wasmparser::FuncValidatorAllocations::default();
                    let mut probed = BTreeSet::new();
                    for (module, func, body) in chunk {
                        let mut v = func.into_validator(allocs);
                        if validate_body(&mut v, &body).context("input is not a valid component")? {
                            probed.insert(module);
                        }
                        allocs = v.into_allocations();
                    }
                    Ok(probed)
                })
            })
            .collect();
        let mut probed = BTreeSet::new();
        for handle in handles {
            match handle.join() {
                Ok(result) => probed.extend(result?),
                Err(_) => bail!("function validation panicked"),
            }
        }
        Ok(probed)
    })
}

/// Reads the functions, in parallel, one thread per core, without
/// validating them; returns the modules (by the start of their range) whose
/// code holds an instruction that [`crate::edit::probe`] instruments.
fn scan_bodies(funcs: &[FuncToCheck<'_>]) -> wasmparser::Result<BTreeSet<usize>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(funcs.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || -> wasmparser::Result<BTreeSet<usize>> {
                    let mut probed = BTreeSet::new();
                    for (module, func, body) in funcs.iter().skip(first).step_by(threads) {
                        if !probed.contains(module) && scan_body(&func.resources, body)? {
                            probed.insert(*module);
                        }
                    }
                    Ok(probed)
                })
            })
            .collect();
        let mut probed = BTreeSet::new();
        for handle in handles {
            match handle.join() {
                Ok(result) => probed.extend(result?),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        Ok(probed)
    })
}

/// Whether one function body, read but not validated, holds an instruction
/// that [`crate::edit::probe`] instruments.
fn scan_body(resources: &ValidatorResources, body: &FunctionBody<'_>) -> wasmparser::Result<bool> {
    let mut reader = body.get_binary_reader_for_operators()?;
    reader.set_features(features());
    let mut operators = wasmparser::OperatorsReader::new(reader);
    let mut probed = false;
    let mut scan = ProbeScan {
        validator: Unvalidated,
        resources,
        probed: &mut probed,
    };
    while !operators.eof() {
        operators.visit_operator(&mut scan)?;
    }
    operators.finish()?;
    Ok(probed)
}

/// The validator's place in [`ProbeScan`] when a body is only read.
struct Unvalidated;

macro_rules! unvalidated {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
        $(
            fn $visit(&mut self $($(, $arg: $argty)*)?) {
                $($(let _ = $arg;)*)?
            }
        )*
    };
}

impl<'a> VisitOperator<'a> for Unvalidated {
    type Output = ();

    fn simd_visitor(
        &mut self,
    ) -> Option<&mut dyn wasmparser::VisitSimdOperator<'a, Output = Self::Output>> {
        Some(self)
    }

    wasmparser::for_each_visit_operator!(unvalidated);
}

impl<'a> wasmparser::VisitSimdOperator<'a> for Unvalidated {
    wasmparser::for_each_visit_simd_operator!(unvalidated);
}

/// Validates one function body as [`FuncValidator::validate`] does, and
/// says whether it holds an instruction that [`crate::edit::probe`]
/// instruments (seen in the same pass over its operators).
fn validate_body(
    validator: &mut FuncValidator<ValidatorResources>,
    body: &FunctionBody<'_>,
) -> wasmparser::Result<bool> {
    let resources = validator.resources().clone();
    let mut reader = body.get_binary_reader();
    validator.read_locals(&mut reader)?;
    reader.set_features(*validator.features());
    let mut probed = false;
    while !reader.eof() {
        let offset = reader.original_position();
        reader.visit_operator(&mut ProbeScan {
            validator: validator.visitor(offset),
            resources: &resources,
            probed: &mut probed,
        })??;
    }
    reader.finish_expression(&validator.visitor(reader.original_position()))?;
    Ok(probed)
}

/// Hands each operator to the validator, noting the instructions that
/// [`crate::edit::probe`] instruments: those that change tables or GC
/// objects, writes of reference-typed globals, `data.drop` and `elem.drop`.
/// A module none of whose bodies holds one needs no probe.
struct ProbeScan<'s, V> {
    validator: V,
    resources: &'s ValidatorResources,
    probed: &'s mut bool,
}

impl<V> ProbeScan<'_, V> {
    fn note(&mut self) {
        *self.probed = true;
    }

    /// `global.set` is probed for mutable reference-typed globals.
    fn note_global_set(&mut self, global: u32) {
        if self
            .resources
            .global_at(global)
            .is_some_and(|g| g.content_type.is_reference_type())
        {
            self.note();
        }
    }
}

impl<V: FrameStack> FrameStack for ProbeScan<'_, V> {
    fn current_frame(&self) -> Option<FrameKind> {
        self.validator.current_frame()
    }
}

macro_rules! probe_scan {
    // The instructions `edit::probe` instruments (its `unsnapshottable`,
    // `data.drop` and `elem.drop`); a test keeps the two lists the same.
    (@note $self:ident TableSet $($arg:ident)*) => { $self.note() };
    (@note $self:ident TableGrow $($arg:ident)*) => { $self.note() };
    (@note $self:ident TableFill $($arg:ident)*) => { $self.note() };
    (@note $self:ident TableCopy $($arg:ident)*) => { $self.note() };
    (@note $self:ident TableInit $($arg:ident)*) => { $self.note() };
    (@note $self:ident StructSet $($arg:ident)*) => { $self.note() };
    (@note $self:ident StructAtomicSet $($arg:ident)*) => { $self.note() };
    (@note $self:ident ArraySet $($arg:ident)*) => { $self.note() };
    (@note $self:ident ArrayAtomicSet $($arg:ident)*) => { $self.note() };
    (@note $self:ident ArrayFill $($arg:ident)*) => { $self.note() };
    (@note $self:ident ArrayCopy $($arg:ident)*) => { $self.note() };
    (@note $self:ident ArrayInitData $($arg:ident)*) => { $self.note() };
    (@note $self:ident ArrayInitElem $($arg:ident)*) => { $self.note() };
    (@note $self:ident DataDrop $($arg:ident)*) => { $self.note() };
    (@note $self:ident ElemDrop $($arg:ident)*) => { $self.note() };
    (@note $self:ident GlobalSet $global:ident) => { $self.note_global_set($global) };
    (@note $self:ident $other:ident $($arg:ident)*) => {};
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
        $(
            fn $visit(&mut self $($(, $arg: $argty)*)?) -> Self::Output {
                probe_scan!(@note self $op $($($arg)*)?);
                self.validator.$visit($($($arg),*)?)
            }
        )*
    };
}

impl<'a, V: VisitOperator<'a>> VisitOperator<'a> for ProbeScan<'_, V> {
    type Output = V::Output;

    // No SIMD instruction is probed.
    fn simd_visitor(
        &mut self,
    ) -> Option<&mut dyn wasmparser::VisitSimdOperator<'a, Output = Self::Output>> {
        self.validator.simd_visitor()
    }

    wasmparser::for_each_visit_operator!(probe_scan);
}

fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!("input is not a WebAssembly binary (no `\\0asm` header)");
    }
    match Parser::new(0).parse(bytes, true) {
        Ok(wasmparser::Chunk::Parsed {
            payload:
                Payload::Version {
                    encoding: Encoding::Module,
                    ..
                },
            ..
        }) => bail!(
            "input is a core WebAssembly module, not a component: pre-initialize it with \
             `initialize_module_with_wasmtime` (the command line does so by itself), or wrap \
             it with `wasm-tools component new` first"
        ),
        _ => Ok(()),
    }
}

/// Where the walk is: a component (the top level or nested) or a module.
enum Frame {
    Component(Box<ComponentFrame>),
    Module(ModuleFrame),
}

struct ComponentFrame {
    info: ComponentInfo,
    /// Core module index -> index into `info.modules`.
    local_modules: HashMap<u32, usize>,
    /// Component index -> index into `info.components`.
    local_components: HashMap<u32, usize>,
}

impl ComponentFrame {
    fn new(info: ComponentInfo) -> ComponentFrame {
        ComponentFrame {
            info,
            local_modules: HashMap::new(),
            local_components: HashMap::new(),
        }
    }
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    root: Option<ComponentInfo>,
    /// The index-space sizes, by [`kind_slot`], that the export section
    /// being validated must leave: the indices recorded as
    /// [`ExportInfo::defines`] are checked against the validator's.
    exports_end: Option<[u32; 6]>,
}

impl Walker {
    /// Walks `bytes`, validating everything but function bodies; with
    /// `bodies`, returns those to validate too.
    fn walk(mut self, bytes: &[u8], bodies: bool) -> Result<(Parsed<'_>, Vec<FuncToCheck<'_>>)> {
        let mut validator = Validator::new_with_features(features());
        let mut funcs = Vec::new();
        let mut types = None;
        // The start of the range of the module being walked.
        let mut module = 0;
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.context("failed to parse the component")?;
            if let Payload::ModuleSection {
                unchecked_range, ..
            } = &payload
            {
                module = unchecked_range.start;
            }
            self.visit_payload(&payload, &validator, bytes.len())?;
            match validator
                .payload(&payload)
                .context("input is not a valid component")?
            {
                ValidPayload::Func(func, body) if bodies => funcs.push((module, func, body)),
                ValidPayload::End(t) if self.stack.is_empty() => types = Some(t),
                _ => {}
            }
            if let Some(expected) = self.exports_end.take()
                && let Some(types) = validator.types(0)
                && expected != export_slots(&types)
            {
                bail!(
                    "internal error: an export section defined other indices than parse \
                     recorded ({expected:?} against the validator's {:?})",
                    export_slots(&types)
                );
            }
        }
        let (Some(types), Some(root)) = (types, self.root) else {
            bail!("input is truncated: the component ends early");
        };
        let parsed = Parsed {
            bytes,
            root,
            types,
            probed_code: None,
        };
        Ok((parsed, funcs))
    }

    fn component(&mut self) -> Option<&mut ComponentFrame> {
        match self.stack.last_mut() {
            Some(Frame::Component(c)) => Some(c),
            _ => None,
        }
    }

    /// Looks at a payload before the validator sees it, so the validator's
    /// counts still give the index the payload's first item will get.
    fn visit_payload(
        &mut self,
        payload: &Payload<'_>,
        validator: &Validator,
        len: usize,
    ) -> Result<()> {
        if let Payload::Version { .. } = payload {
            // Nested modules and components push their frame at their section.
            if self.stack.is_empty() {
                self.stack
                    .push(Frame::Component(Box::new(ComponentFrame::new(
                        ComponentInfo::new(0..len, None),
                    ))));
            }
            return Ok(());
        }
        let types = validator.types(0);
        self.record_section(payload, types.as_ref());
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            } => self.enter_module(unchecked_range, types.as_ref()),
            Payload::ComponentSection {
                unchecked_range, ..
            } => self.enter_component(unchecked_range, types.as_ref()),
            Payload::ImportSection(imports) => {
                if let Some(Frame::Module(frame)) = self.stack.last_mut() {
                    frame.count_imports(imports)?;
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports.clone() {
                    let export = export.context("failed to parse an export")?;
                    names::check_unused(export.name, "a core module")?;
                }
            }
            Payload::InstanceSection(section) => {
                self.record_core_instances(section, types.as_ref())?
            }
            Payload::ComponentInstanceSection(section) => {
                self.record_component_instances(section, types.as_ref())?
            }
            Payload::ComponentExportSection(section) => {
                if let Some(types) = types {
                    self.record_exports(section, &types)?;
                }
            }
            Payload::ComponentStartSection { .. } => {
                bail!(
                    "component start functions are not supported: the component has a start section"
                )
            }
            Payload::End(_) => self.end(validator)?,
            _ => {}
        }
        Ok(())
    }

    /// Records `payload`, when it is a section of a component, among the
    /// sections of that component.
    fn record_section(&mut self, payload: &Payload<'_>, types: Option<&TypesRef<'_>>) {
        let (Some((id, range)), Some(frame)) = (payload.as_section(), self.component()) else {
            return;
        };
        let info = &frame.info;
        let kind = match payload {
            Payload::ModuleSection { .. } => SectionKind::Module(info.modules.len()),
            Payload::ComponentSection { .. } => SectionKind::Component(info.components.len()),
            Payload::ComponentExportSection(s) => SectionKind::Exports {
                start: info.exports.len(),
                len: s.count() as usize,
            },
            Payload::CustomSection(c) if c.name() == "producers" => SectionKind::Producers,
            _ => SectionKind::Other,
        };
        frame.info.sections.push(Section {
            id,
            range,
            kind,
            core_instances_before: types.map_or(0, |t| t.core_instance_count()),
            instances_before: types.map_or(0, |t| t.component_instance_count()),
        });
    }

    /// Starts walking the module a module section defines.
    fn enter_module(&mut self, range: &Range<usize>, types: Option<&TypesRef<'_>>) {
        let index = types.map_or(0, |t| t.module_count());
        if let Some(frame) = self.component() {
            frame.local_modules.insert(index, frame.info.modules.len());
        }
        self.stack
            .push(Frame::Module(ModuleFrame::new(index, range.clone())));
    }

    /// Starts walking the component a component section defines.
    fn enter_component(&mut self, range: &Range<usize>, types: Option<&TypesRef<'_>>) {
        let index = types.map_or(0, |t| t.component_count());
        if let Some(frame) = self.component() {
            frame
                .local_components
                .insert(index, frame.info.components.len());
        }
        self.stack
            .push(Frame::Component(Box::new(ComponentFrame::new(
                ComponentInfo::new(range.clone(), Some(index)),
            ))));
    }

    /// Records the core instances of `section` that instantiate a module;
    /// an error for one that instantiates a module the component does not
    /// define.
    fn record_core_instances(
        &mut self,
        section: &wasmparser::InstanceSectionReader<'_>,
        types: Option<&TypesRef<'_>>,
    ) -> Result<()> {
        let base = types.map_or(0, |t| t.core_instance_count());
        let Some(frame) = self.component() else {
            return Ok(());
        };
        for (i, instance) in section.clone().into_iter().enumerate() {
            let instance = instance.context("failed to parse a core instance")?;
            let Instance::Instantiate { module_index, .. } = instance else {
                continue;
            };
            let index = base + i as u32;
            match frame.local_modules.get(&module_index) {
                Some(&definition) => frame
                    .info
                    .instances
                    .push(InstanceInfo { index, definition }),
                None => bail!(
                    "core instance {index}{} instantiates core module {module_index}, \
                     which the component imports or aliases rather than defines; \
                     component-init can only snapshot modules defined inside the \
                     component that instantiates them",
                    component_location(&frame.info)
                ),
            }
        }
        Ok(())
    }

    /// Records the component instances of `section` that instantiate a
    /// component; an error for one that instantiates a component the
    /// component does not define.
    fn record_component_instances(
        &mut self,
        section: &wasmparser::ComponentInstanceSectionReader<'_>,
        types: Option<&TypesRef<'_>>,
    ) -> Result<()> {
        let base = types.map_or(0, |t| t.component_instance_count());
        let Some(frame) = self.component() else {
            return Ok(());
        };
        for (i, instance) in section.clone().into_iter().enumerate() {
            let instance = instance.context("failed to parse a component instance")?;
            let wasmparser::ComponentInstance::Instantiate {
                component_index, ..
            } = instance
            else {
                continue;
            };
            let index = base + i as u32;
            match frame.local_components.get(&component_index) {
                Some(&definition) => frame
                    .info
                    .component_instances
                    .push(InstanceInfo { index, definition }),
                None => bail!(
                    "component instance {index}{} instantiates component \
                     {component_index}, which the component imports or aliases rather \
                     than defines; component-init cannot see, nor snapshot, its state",
                    component_location(&frame.info)
                ),
            }
        }
        Ok(())
    }

    /// Records the exports of `section`, each with the index it defines, and
    /// the index-space sizes the section must leave (checked in
    /// [`Walker::walk`] once the validator has seen it).
    fn record_exports(
        &mut self,
        section: &wasmparser::ComponentExportSectionReader<'_>,
        types: &TypesRef<'_>,
    ) -> Result<()> {
        let mut sizes = export_slots(types);
        let Some(frame) = self.component() else {
            return Ok(());
        };
        for export in section.clone() {
            let export = export.context("failed to parse a component export")?;
            if frame.info.index.is_some() && export.name.name == names::ACCESSOR_INSTANCE_EXPORT {
                bail!(
                    "a nested component already exports `{}`, a name reserved for \
                     component-init's instrumentation",
                    export.name.name
                );
            }
            let slot = &mut sizes[kind_slot(export.kind)];
            frame.info.exports.push(ExportInfo {
                name: export.name.name.to_string(),
                kind: export.kind,
                source: export.index,
                defines: *slot,
            });
            *slot += 1;
        }
        self.exports_end = Some(sizes);
        Ok(())
    }

    /// Finishes the module or component whose end the walk reached, and
    /// hands what was learned about it to its parent.
    fn end(&mut self, validator: &Validator) -> Result<()> {
        let Some(types) = validator.types(0) else {
            return Ok(());
        };
        match self.stack.pop() {
            Some(Frame::Module(frame)) => {
                let module = finish_module(frame, &types)?;
                if let Some(parent) = self.component() {
                    parent.info.modules.push(module);
                }
            }
            Some(Frame::Component(mut frame)) => {
                frame.info.counts = Counts::of(&types);
                match self.component() {
                    Some(parent) => parent.info.components.push(frame.info),
                    None => self.root = Some(frame.info),
                }
            }
            None => {}
        }
        Ok(())
    }
}

/// Where the component `info` is, for an error message: empty for the top
/// level, ` (in nested component N)` otherwise.
fn component_location(info: &ComponentInfo) -> String {
    match info.index {
        Some(index) => format!(" (in nested component {index})"),
        None => String::new(),
    }
}

/// The sizes of the index spaces an export adds to, by [`kind_slot`].
fn export_slots(types: &TypesRef<'_>) -> [u32; 6] {
    [
        types.module_count(),
        types.component_function_count(),
        types.value_count(),
        types.component_type_count(),
        types.component_instance_count(),
        types.component_count(),
    ]
}

fn kind_slot(kind: ComponentExternalKind) -> usize {
    match kind {
        ComponentExternalKind::Module => 0,
        ComponentExternalKind::Func => 1,
        ComponentExternalKind::Value => 2,
        ComponentExternalKind::Type => 3,
        ComponentExternalKind::Instance => 4,
        ComponentExternalKind::Component => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::probe;

    /// A component instantiating one module whose function `f` runs `body`,
    /// with `decls` beside it.
    fn component(decls: &str, body: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(component
              (core module $m
                (type $s (struct (field (mut i32))))
                (type $a (array (mut i32)))
                (type $fa (array (mut funcref)))
                (memory 1)
                (table $t 1 funcref)
                (global $i (mut i32) (i32.const 0))
                (global $r (mut externref) (ref.null extern))
                (data $d "abcd")
                (elem $e func $f)
                {decls}
                (func $f {body}))
              (core instance (instantiate $m)))"#
        ))
        .unwrap()
    }

    /// Whether validation notes the module's code, and whether the probe
    /// pass instruments it; reading the code without validating it notes
    /// the same.
    fn scanned_and_probed(bytes: &[u8]) -> (bool, bool) {
        let parsed = parse(bytes).unwrap();
        let module = &parsed.root.modules[0];
        let (read, bodies) = parse_deferring_bodies(bytes).unwrap();
        bodies.validate().unwrap();
        assert_eq!(
            read.may_need_probes(&read.root.modules[0]),
            parsed.may_need_probes(module)
        );
        let found = probe::probe_carrying_tables(
            &bytes[module.range.clone()],
            module.global_count,
            module.imported_funcs,
            &module.ref_globals,
        )
        .unwrap();
        (parsed.may_need_probes(module), found.is_some())
    }

    /// Skipping the probe pass for a module whose validation saw no probed
    /// instruction never changes an output: the scan notes every
    /// instruction the probe pass instruments, and nothing else here.
    #[test]
    fn the_validating_scan_notes_what_probes_instrument() {
        let probed = [
            ("table.set", "(table.set $t (i32.const 0) (ref.null func))"),
            (
                "table.grow",
                "(drop (table.grow $t (ref.null func) (i32.const 1)))",
            ),
            (
                "table.fill",
                "(table.fill $t (i32.const 0) (ref.null func) (i32.const 1))",
            ),
            (
                "table.copy",
                "(table.copy $t $t (i32.const 0) (i32.const 0) (i32.const 1))",
            ),
            (
                "table.init",
                "(table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))",
            ),
            (
                "struct.set",
                "(struct.set $s 0 (struct.new_default $s) (i32.const 1))",
            ),
            (
                "array.set",
                "(array.set $a (array.new_default $a (i32.const 1)) (i32.const 0) (i32.const 1))",
            ),
            (
                "array.fill",
                "(array.fill $a (array.new_default $a (i32.const 1)) (i32.const 0) (i32.const 1) \
                 (i32.const 1))",
            ),
            (
                "array.copy",
                "(array.copy $a $a (array.new_default $a (i32.const 1)) (i32.const 0) \
                 (array.new_default $a (i32.const 1)) (i32.const 0) (i32.const 1))",
            ),
            (
                "array.init_data",
                "(array.init_data $a $d (array.new_default $a (i32.const 1)) (i32.const 0) \
                 (i32.const 0) (i32.const 1))",
            ),
            (
                "array.init_elem",
                "(array.init_elem $fa $e (array.new_default $fa (i32.const 1)) (i32.const 0) \
                 (i32.const 0) (i32.const 1))",
            ),
            ("global.set", "(global.set $r (ref.null extern))"),
            ("data.drop", "(data.drop $d)"),
            ("elem.drop", "(elem.drop $e)"),
        ];
        // Every instruction the probe pass calls unsnapshottable is here.
        for (name, _) in probe::UNSNAPSHOTTABLE {
            assert!(probed.iter().any(|(n, _)| *n == name), "{name}");
        }
        for (name, body) in probed {
            assert_eq!(
                scanned_and_probed(&component("", body)),
                (true, true),
                "{name}"
            );
        }
        for (name, body) in [
            ("global.set of an i32", "(global.set $i (i32.const 1))"),
            (
                "memory.init",
                "(memory.init $d (i32.const 0) (i32.const 0) (i32.const 1))",
            ),
            ("table.get", "(drop (table.get $t (i32.const 0)))"),
            (
                "struct.get",
                "(drop (struct.get $s 0 (struct.new_default $s)))",
            ),
            ("v128", "(drop (i8x16.splat (i32.const 1)))"),
        ] {
            assert_eq!(
                scanned_and_probed(&component("", body)),
                (false, false),
                "{name}"
            );
        }
        // An imported mutable reference-typed global is probed too.
        let imported = wat::parse_str(
            r#"(component
              (core module $g (global (export "r") (mut externref) (ref.null extern)))
              (core instance $gi (instantiate $g))
              (core module $m
                (import "g" "r" (global $r (mut externref)))
                (func (global.set $r (ref.null extern))))
              (core instance (instantiate $m (with "g" (instance $gi)))))"#,
        )
        .unwrap();
        let parsed = parse(&imported).unwrap();
        assert!(parsed.may_need_probes(&parsed.root.modules[1]));
        assert!(!parsed.may_need_probes(&parsed.root.modules[0]));
        let (read, _) = parse_deferring_bodies(&imported).unwrap();
        assert!(read.may_need_probes(&read.root.modules[1]));
        assert!(!read.may_need_probes(&read.root.modules[0]));
        // Without validating bodies, every module may need probes.
        let bytes = component("", "(global.set $i (i32.const 1))");
        let parsed = parse_validated_code(&bytes).unwrap();
        assert!(parsed.may_need_probes(&parsed.root.modules[0]));
    }

    /// A component around one module made of `sections` (id, contents).
    fn with_module(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        for (id, data) in sections {
            module.section(&wasm_encoder::RawSection { id: *id, data });
        }
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::ModuleSection(&module));
        component.finish()
    }

    /// A section's contents, as `Encode` writes them after their size.
    fn contents(section: &impl wasm_encoder::Encode) -> Vec<u8> {
        let mut bytes = Vec::new();
        section.encode(&mut bytes);
        let mut reader = wasmparser::BinaryReader::new(&bytes, 0);
        let size = reader.read_var_u32().unwrap() as usize;
        bytes[bytes.len() - size..].to_vec()
    }

    fn memories(memory64: bool) -> (u8, Vec<u8>) {
        let mut section = wasm_encoder::MemorySection::new();
        section.memory(wasm_encoder::MemoryType {
            minimum: 1,
            maximum: None,
            memory64,
            shared: false,
            page_size_log2: None,
        });
        (5, contents(&section))
    }

    fn data(segments: &[(u32, wasm_encoder::ConstExpr)]) -> (u8, Vec<u8>) {
        let mut section = wasm_encoder::DataSection::new();
        for (memory, offset) in segments {
            section.active(*memory, offset, b"ab".iter().copied());
        }
        section.passive(b"cd".iter().copied());
        (11, contents(&section))
    }

    /// The rewrite's output check accepts and refuses data sections as the
    /// validator does, whether it checks them itself or not.
    #[test]
    fn the_output_check_agrees_with_the_validator_on_data() {
        use wasm_encoder::ConstExpr;
        let global = {
            let mut section = wasm_encoder::GlobalSection::new();
            section.global(
                wasm_encoder::GlobalType {
                    val_type: wasm_encoder::ValType::I32,
                    mutable: false,
                    shared: false,
                },
                &ConstExpr::i32_const(8),
            );
            (6, contents(&section))
        };
        let custom = (0, b"\x04name".to_vec());
        for (what, sections, valid) in [
            (
                "i32.const offsets",
                vec![memories(false), data(&[(0, ConstExpr::i32_const(16))])],
                true,
            ),
            (
                "i64.const offsets of a 64-bit memory",
                vec![memories(true), data(&[(0, ConstExpr::i64_const(16))])],
                true,
            ),
            (
                "a global.get offset",
                vec![
                    memories(false),
                    global.clone(),
                    data(&[(0, ConstExpr::global_get(0))]),
                ],
                true,
            ),
            (
                "a custom section after the data",
                vec![
                    memories(false),
                    data(&[(0, ConstExpr::i32_const(16))]),
                    custom,
                ],
                true,
            ),
            (
                "an i64.const offset of a 32-bit memory",
                vec![memories(false), data(&[(0, ConstExpr::i64_const(16))])],
                false,
            ),
            (
                "an i32.const offset of a 64-bit memory",
                vec![memories(true), data(&[(0, ConstExpr::i32_const(16))])],
                false,
            ),
            (
                "a memory index out of range",
                vec![memories(false), data(&[(1, ConstExpr::i32_const(16))])],
                false,
            ),
            (
                "no memory",
                vec![data(&[(0, ConstExpr::i32_const(16))])],
                false,
            ),
            (
                "two data sections",
                vec![
                    memories(false),
                    data(&[(0, ConstExpr::i32_const(16))]),
                    data(&[(0, ConstExpr::i32_const(32))]),
                ],
                false,
            ),
            (
                "a global section after the data",
                vec![
                    memories(false),
                    data(&[(0, ConstExpr::i32_const(16))]),
                    global.clone(),
                ],
                false,
            ),
        ] {
            let bytes = with_module(&sections);
            let validator = parse_validated_code(&bytes).is_ok();
            assert_eq!(validator, valid, "{what}: the validator");
            assert_eq!(
                validate_without_code(&bytes).is_ok(),
                valid,
                "{what}: the output check"
            );
        }
    }

    /// Reading the code without validating it gives the validator's error
    /// for a body that does not decode; one that decodes but does not
    /// validate is refused by `Bodies::validate`.
    #[test]
    fn deferred_bodies_are_refused_as_parse_refuses_them() {
        let ill_typed = component("", "(global.set $i (i64.const 1))");
        let (_, bodies) = parse_deferring_bodies(&ill_typed).unwrap();
        assert_eq!(
            format!("{:#}", bodies.validate().unwrap_err()),
            format!("{:#}", parse(&ill_typed).err().unwrap())
        );
        // an unknown opcode in place of the body's `nop`
        let mut bad = component("", "(nop)");
        let body = Parser::new(0)
            .parse_all(&bad)
            .find_map(|p| match p.unwrap() {
                Payload::CodeSectionEntry(body) => Some(body.range()),
                _ => None,
            })
            .unwrap();
        // size, no locals, `nop`, `end`
        assert_eq!(bad[body.clone()], [0x00, 0x01, 0x0b]);
        bad[body.start + 1] = 0xff;
        assert_eq!(
            format!("{:#}", parse_deferring_bodies(&bad).err().unwrap()),
            format!("{:#}", parse(&bad).err().unwrap())
        );
    }
}
