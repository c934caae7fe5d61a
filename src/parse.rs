//! Phase 1, parse: validate the component and record, for its top level,
//! every section, every core module and core instance, the mutable state each
//! instantiated module defines, and the component's exports.
//!
//! Parsing and validation happen in one pass: the validator runs in lockstep
//! with the walk, and every index this crate needs (which module a module
//! section defines, which core instance an instantiation creates, which
//! component function an export defines) is read from the validator's types
//! at the moment the item is seen.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::ops::Range;
use wasmparser::{
    ComponentExternalKind, Encoding, GlobalType, Instance, MemoryType, Parser, Payload, TypeRef,
    ValType, ValidPayload, Validator, WasmFeatures, types::Types,
};

use crate::names;

/// A validated component and what the later phases need to know about it.
pub struct Parsed<'a> {
    /// The whole component.
    pub bytes: &'a [u8],
    /// Top-level sections, in order, as ranges into `bytes`.
    pub sections: Vec<Section>,
    /// Core modules defined by module sections at the top level, in order.
    pub modules: Vec<ModuleInfo>,
    /// Top-level core instances created by instantiating one of `modules`.
    pub instances: Vec<InstanceInfo>,
    /// Top-level component exports, in order.
    pub exports: Vec<ExportInfo>,
    /// The validator's types for the top level.
    pub types: Types,
}

/// One top-level section.
pub struct Section {
    /// The section id, as in the binary format.
    pub id: u8,
    /// The section's contents (without id and size) within the component.
    pub range: Range<usize>,
    /// What the later phases care about in this section.
    pub kind: SectionKind,
}

/// Sections that the rewrite treats specially.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// A core module: the index into [`Parsed::modules`].
    Module(usize),
    /// Component exports: `exports[start..start + len]` of [`Parsed::exports`].
    Exports {
        /// Index of the section's first export in [`Parsed::exports`].
        start: usize,
        /// Number of exports in the section.
        len: usize,
    },
    /// The `producers` custom section.
    Producers,
    /// Anything else: copied unchanged.
    Other,
}

/// A core module defined at the top level.
pub struct ModuleInfo {
    /// The module's index in the component's core module index space.
    pub index: u32,
    /// The module's bytes (from the `\0asm` header on) within the component.
    pub range: Range<usize>,
    /// Memories the module defines (imported memories are owned elsewhere).
    pub memories: Vec<MemoryDef>,
    /// Mutable globals the module defines.
    pub globals: Vec<GlobalDef>,
    /// Size of the module's global index space.
    pub global_count: u32,
    /// Number of functions the module imports.
    pub imported_funcs: u32,
}

/// A memory defined by a module.
#[derive(Clone, Copy)]
pub struct MemoryDef {
    /// Index in the module's memory index space (imports included).
    pub index: u32,
    /// The declared type.
    pub ty: MemoryType,
}

/// A mutable global defined by a module.
#[derive(Clone, Copy)]
pub struct GlobalDef {
    /// Index in the module's global index space (imports included).
    pub index: u32,
    /// The global's value type.
    pub ty: ValType,
}

/// A core instance that instantiates a module defined in the component.
pub struct InstanceInfo {
    /// The instance's index in the component's core instance index space.
    pub index: u32,
    /// Index into [`Parsed::modules`].
    pub module: usize,
}

/// A top-level component export.
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

/// The features this crate accepts; the output is validated with the same.
pub fn features() -> WasmFeatures {
    WasmFeatures::all()
}

/// Parses and validates `bytes` as a component.
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>> {
    check_header(bytes)?;
    Walker::default().walk(bytes)
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
            "input is a core WebAssembly module, not a component; \
             wrap it with `wasm-tools component new` first"
        ),
        _ => Ok(()),
    }
}

/// Where the walk is: the top-level component, a nested component, or a
/// module (top-level or nested).
enum Frame {
    Component {
        /// Whether some core instance in this component (or deeper) was
        /// created with `instantiate`.
        instantiates: bool,
        /// The component's index in the top level, for components nested
        /// directly in the top level.
        index: Option<u32>,
    },
    Module(ModuleFrame),
}

#[derive(Default)]
struct ModuleFrame {
    /// The module's index in its parent, for modules of the top level.
    index: Option<u32>,
    range: Range<usize>,
    imported_memories: u32,
    imported_globals: u32,
    imported_funcs: u32,
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    sections: Vec<Section>,
    modules: Vec<ModuleInfo>,
    /// Core module index -> index into `modules`, for top-level modules.
    local_modules: HashMap<u32, usize>,
    instances: Vec<InstanceInfo>,
    exports: Vec<ExportInfo>,
}

impl Walker {
    fn walk(mut self, bytes: &[u8]) -> Result<Parsed<'_>> {
        let mut validator = Validator::new_with_features(features());
        let mut allocs = wasmparser::FuncValidatorAllocations::default();
        let mut types = None;
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.context("failed to parse the component")?;
            self.before(&payload, &validator)?;
            match validator
                .payload(&payload)
                .context("input is not a valid component")?
            {
                ValidPayload::Func(func, body) => {
                    let mut v = func.into_validator(std::mem::take(&mut allocs));
                    v.validate(&body)
                        .context("input is not a valid component")?;
                    allocs = v.into_allocations();
                }
                ValidPayload::End(t) if self.stack.is_empty() => types = Some(t),
                _ => {}
            }
        }
        let Some(types) = types else {
            bail!("input is truncated: the component ends early");
        };
        Ok(Parsed {
            bytes,
            sections: self.sections,
            modules: self.modules,
            instances: self.instances,
            exports: self.exports,
            types,
        })
    }

    /// Looks at a payload before the validator sees it, so the validator's
    /// counts still give the index the payload's first item will get.
    fn before(&mut self, payload: &Payload<'_>, validator: &Validator) -> Result<()> {
        let top_level = self.stack.len() == 1;
        if let Payload::Version { .. } = payload {
            // Nested modules and components push their frame at their section.
            if self.stack.is_empty() {
                self.stack.push(Frame::Component {
                    instantiates: false,
                    index: None,
                });
            }
            return Ok(());
        }
        if let Some((id, range)) = payload.as_section().filter(|_| top_level) {
            let kind = match payload {
                Payload::ModuleSection { .. } => SectionKind::Module(self.modules.len()),
                Payload::ComponentExportSection(s) => SectionKind::Exports {
                    start: self.exports.len(),
                    len: s.count() as usize,
                },
                Payload::CustomSection(c) if c.name() == "producers" => SectionKind::Producers,
                _ => SectionKind::Other,
            };
            self.sections.push(Section { id, range, kind });
        }
        let types = validator.types(0);
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                let index = match types {
                    Some(types) if top_level => {
                        let index = types.module_count();
                        self.local_modules.insert(index, self.modules.len());
                        Some(index)
                    }
                    _ => None,
                };
                self.stack.push(Frame::Module(ModuleFrame {
                    index,
                    range: unchecked_range.clone(),
                    ..Default::default()
                }));
            }
            Payload::ComponentSection { .. } => {
                let index = types.filter(|_| top_level).map(|t| t.component_count());
                self.stack.push(Frame::Component {
                    instantiates: false,
                    index,
                });
            }
            Payload::ImportSection(imports) => {
                if let Some(Frame::Module(frame)) = self.stack.last_mut() {
                    for import in imports.clone().into_imports() {
                        match import.context("failed to parse an import")?.ty {
                            TypeRef::Memory(_) => frame.imported_memories += 1,
                            TypeRef::Global(_) => frame.imported_globals += 1,
                            TypeRef::Func(_) | TypeRef::FuncExact(_) => frame.imported_funcs += 1,
                            _ => {}
                        }
                    }
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports.clone() {
                    let export = export.context("failed to parse an export")?;
                    names::check_unused(export.name, "a core module")?;
                }
            }
            Payload::InstanceSection(section) => {
                let base = types.map(|t| t.core_instance_count()).unwrap_or(0);
                for (i, instance) in section.clone().into_iter().enumerate() {
                    let instance = instance.context("failed to parse a core instance")?;
                    let Instance::Instantiate { module_index, .. } = instance else {
                        continue;
                    };
                    if let Some(Frame::Component { instantiates, .. }) = self.stack.last_mut() {
                        *instantiates = true;
                    }
                    if !top_level {
                        continue;
                    }
                    let index = base + i as u32;
                    match self.local_modules.get(&module_index) {
                        Some(&module) => self.instances.push(InstanceInfo { index, module }),
                        None => bail!(
                            "core instance {index} instantiates core module {module_index}, which \
                             the component imports or aliases rather than defines; component-init \
                             can only snapshot modules defined inside the component"
                        ),
                    }
                }
            }
            Payload::ComponentExportSection(section) if top_level => {
                let Some(types) = types else { return Ok(()) };
                let mut next = [
                    types.module_count(),
                    types.component_function_count(),
                    types.value_count(),
                    types.component_type_count(),
                    types.component_instance_count(),
                    types.component_count(),
                ];
                for export in section.clone() {
                    let export = export.context("failed to parse a component export")?;
                    let slot = &mut next[kind_slot(export.kind)];
                    self.exports.push(ExportInfo {
                        name: export.name.name.to_string(),
                        kind: export.kind,
                        source: export.index,
                        defines: *slot,
                    });
                    *slot += 1;
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

    fn end(&mut self, validator: &Validator) -> Result<()> {
        match self.stack.pop() {
            Some(Frame::Module(frame)) => {
                let Some(types) = validator.types(0) else {
                    return Ok(());
                };
                let mut memories = Vec::new();
                for index in frame.imported_memories..types.memory_count() {
                    let ty = types.memory_at(index);
                    if ty.shared {
                        bail!(
                            "core module {} defines shared memory {index}; shared memories \
                             (threads) cannot be snapshotted",
                            frame.index.map_or("nested".to_string(), |i| i.to_string())
                        );
                    }
                    memories.push(MemoryDef { index, ty });
                }
                let mut globals = Vec::new();
                for index in frame.imported_globals..types.global_count() {
                    let GlobalType {
                        content_type,
                        mutable,
                        shared,
                    } = types.global_at(index);
                    if !mutable {
                        continue;
                    }
                    if shared {
                        bail!("mutable global {index} is shared; shared globals are not supported");
                    }
                    match content_type {
                        ValType::I32
                        | ValType::I64
                        | ValType::F32
                        | ValType::F64
                        | ValType::V128 => {}
                        other => bail!(
                            "mutable global {index} has type `{other}`, which component-init \
                             cannot snapshot yet (supported: i32, i64, f32, f64, v128)"
                        ),
                    }
                    globals.push(GlobalDef {
                        index,
                        ty: content_type,
                    });
                }
                if let Some(index) = frame.index {
                    self.modules.push(ModuleInfo {
                        index,
                        range: frame.range,
                        memories,
                        globals,
                        global_count: types.global_count(),
                        imported_funcs: frame.imported_funcs,
                    });
                }
            }
            Some(Frame::Component {
                instantiates,
                index,
            }) => {
                if !instantiates {
                    return Ok(());
                }
                if let Some(index) = index {
                    bail!(
                        "nested component {index} instantiates core modules; nested components \
                         with core instances are not supported yet"
                    );
                }
                if let Some(Frame::Component { instantiates, .. }) = self.stack.last_mut() {
                    *instantiates = true;
                }
            }
            None => {}
        }
        Ok(())
    }
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
