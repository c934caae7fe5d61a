//! Editing one core module: copy its sections through unchanged (code stays
//! byte-identical) except the few an edit touches.
//!
//! Used by instrument (to export a module's state) and by rewrite (to bake a
//! snapshot into it).

pub mod bake;
pub mod codegen;
pub mod facts;
pub mod identify;
pub mod probe;
pub mod segments;
pub mod tables;

use anyhow::{Context, Result, bail};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use wasm_encoder::ExportKind;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{ConstExpr, Encode};
use wasmparser::{Chunk, DataKind, Parser, Payload, WasmFeatures};

use crate::plan::{GlobalValue, State};

/// What to change in a module; an empty edit reproduces the module.
#[derive(Default)]
pub struct ModuleEdit<'a> {
    /// Exports to add.
    pub exports: Vec<CoreExport>,
    /// Exports of the module to rename (`Some(new name)`) or remove
    /// (`None`), by name.
    pub export_renames: BTreeMap<String, Option<String>>,
    /// Drop the start section.
    pub drop_start: bool,
    /// New minimum sizes, in pages, for memories (module memory index, pages).
    pub memory_minimums: Vec<(u32, u64)>,
    /// New values for globals (module global index, value).
    pub globals: Vec<(u32, GlobalValue)>,
    /// Mutable globals to append, with their initial values.
    pub new_globals: Vec<GlobalValue>,
    /// A replacement for the code section's contents.
    pub code: Option<Vec<u8>>,
    /// Passive data segments to empty (they were dropped).
    pub empty_data: Vec<u32>,
    /// Element segments to make empty passive ones (they were dropped).
    pub empty_elems: Vec<u32>,
    /// Replace every active data segment with an empty passive one and
    /// append these active segments.
    pub data: Option<Vec<Segment<'a>>>,
    /// Set tables and reference-typed globals as a snapshot left them.
    pub tables: Option<tables::TableEdit>,
}

/// A core export that exposes an item of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreExport {
    /// The export's name.
    pub name: String,
    /// The item's kind.
    pub kind: wasm_encoder::ExportKind,
    /// The item's index in its kind's index space.
    pub index: u32,
}

/// The features this crate accepts; the output is validated with the same.
pub fn features() -> WasmFeatures {
    WasmFeatures::all()
}

/// Prefix of every core export that instrumentation adds to a module.
pub const CORE_EXPORT_PREFIX: &str = "component-init:";

/// Core export that instrumentation adds to a module for its memory `index`.
pub fn core_memory_export(index: u32) -> String {
    format!("{CORE_EXPORT_PREFIX}memory-{index}")
}

/// Core export that instrumentation adds to a module for its table `index`.
pub fn core_table_export(index: u32) -> String {
    format!("{CORE_EXPORT_PREFIX}table-{index}")
}

/// Core export that instrumentation adds to a module for its function
/// `index`, by which the runtime tells the functions in tables apart.
pub fn core_func_export(index: u32) -> String {
    format!("{CORE_EXPORT_PREFIX}func-{index}")
}

/// Core exports that instrumentation adds to a module whose functions carry
/// probe prologues ([`identify`]): its `probing` and `found` globals.
pub const CORE_PROBING_EXPORT: &str = "component-init:probing";
/// See [`CORE_PROBING_EXPORT`].
pub const CORE_FOUND_EXPORT: &str = "component-init:found";

/// Core export that instrumentation adds to a module for its global `index`.
pub fn core_global_export(index: u32) -> String {
    format!("{CORE_EXPORT_PREFIX}global-{index}")
}

impl CoreExport {
    /// The core export that exposes `state` from its module.
    pub fn of(state: &State) -> CoreExport {
        match *state {
            State::Memory { index, .. } => CoreExport {
                name: core_memory_export(index),
                kind: ExportKind::Memory,
                index,
            },
            State::Global { index, .. }
            | State::Probe { index, .. }
            | State::RefGlobal { index } => CoreExport {
                name: core_global_export(index),
                kind: ExportKind::Global,
                index,
            },
            State::Table { index } => CoreExport {
                name: core_table_export(index),
                kind: ExportKind::Table,
                index,
            },
        }
    }
}

/// An active data segment to add.
pub struct Segment<'a> {
    /// The module's memory index.
    pub memory: u32,
    /// Whether that memory uses 64-bit addresses.
    pub memory64: bool,
    /// Where the bytes go.
    pub offset: u64,
    /// The bytes.
    pub bytes: Cow<'a, [u8]>,
}

/// The ids of the module sections an edit looks at, as in the binary format.
mod id {
    use wasm_encoder::SectionId;

    pub const TYPE: u8 = SectionId::Type as u8;
    pub const IMPORT: u8 = SectionId::Import as u8;
    pub const FUNCTION: u8 = SectionId::Function as u8;
    pub const TABLE: u8 = SectionId::Table as u8;
    pub const MEMORY: u8 = SectionId::Memory as u8;
    pub const GLOBAL: u8 = SectionId::Global as u8;
    pub const EXPORT: u8 = SectionId::Export as u8;
    pub const START: u8 = SectionId::Start as u8;
    pub const ELEMENT: u8 = SectionId::Element as u8;
    pub const CODE: u8 = SectionId::Code as u8;
    pub const DATA: u8 = SectionId::Data as u8;
    pub const DATA_COUNT: u8 = SectionId::DataCount as u8;
    pub const TAG: u8 = SectionId::Tag as u8;
}

/// The non-custom sections, in the order they must appear in a module.
const ORDER: [u8; 13] = [
    id::TYPE,
    id::IMPORT,
    id::FUNCTION,
    id::TABLE,
    id::MEMORY,
    id::TAG,
    id::GLOBAL,
    id::EXPORT,
    id::START,
    id::ELEMENT,
    id::DATA_COUNT,
    id::CODE,
    id::DATA,
];

/// Where a section with `id` goes in a module: its position in [`ORDER`];
/// `None` for custom and unknown sections.
fn rank(id: u8) -> Option<usize> {
    ORDER.iter().position(|&known| known == id)
}

struct Out<'a> {
    id: u8,
    data: Cow<'a, [u8]>,
}

/// A module after an edit, not yet written out: its sections, as slices of
/// the original where unchanged, and the data section as the pieces it is
/// made of, so that a snapshot's bytes are copied once, into the buffer the
/// module is written to.
pub struct Edited<'a> {
    sections: Vec<Out<'a>>,
    data: Option<DataPieces<'a>>,
}

/// The data section, as the pieces it is made of.
struct DataPieces<'a> {
    /// The section's index in [`Edited::sections`] (whose `data` is unused).
    at: usize,
    /// The number of segments.
    count: u32,
    /// The section's contents after the count.
    pieces: Vec<Cow<'a, [u8]>>,
}

impl DataPieces<'_> {
    /// The size of the section's contents, count included.
    fn size(&self) -> usize {
        leb_len(u64::from(self.count)) + self.pieces.iter().map(|p| p.len()).sum::<usize>()
    }
}

impl Edited<'_> {
    /// The size of the module in bytes.
    pub fn len(&self) -> usize {
        let mut len = 8;
        for (i, section) in self.sections.iter().enumerate() {
            let size = self.section_size(i, section);
            len += 1 + leb_len(size as u64) + size;
        }
        len
    }

    fn section_size(&self, i: usize, section: &Out<'_>) -> usize {
        match &self.data {
            Some(data) if data.at == i => data.size(),
            _ => section.data.len(),
        }
    }

    /// Appends the module to `sink`.
    pub fn write_to(&self, sink: &mut Vec<u8>) {
        sink.reserve(self.len());
        sink.extend_from_slice(&wasm_encoder::Module::new().finish());
        for (i, section) in self.sections.iter().enumerate() {
            sink.push(section.id);
            (self.section_size(i, section) as u32).encode(sink);
            match &self.data {
                Some(data) if data.at == i => {
                    data.count.encode(sink);
                    for piece in &data.pieces {
                        sink.extend_from_slice(piece);
                    }
                }
                _ => sink.extend_from_slice(&section.data),
            }
        }
    }
}

/// The number of bytes of `value` as an unsigned LEB128.
pub fn leb_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Applies `edit` to the module in `bytes`.
pub fn edit(bytes: &[u8], edit: ModuleEdit<'_>) -> Result<Vec<u8>> {
    let edited = edit_lazily(bytes, edit)?;
    let mut out = Vec::with_capacity(edited.len());
    edited.write_to(&mut out);
    Ok(out)
}

/// Applies `edit` to the module in `bytes`, to be written out later.
pub fn edit_lazily<'a>(bytes: &'a [u8], mut edit: ModuleEdit<'a>) -> Result<Edited<'a>> {
    let mut out: Vec<Out<'a>> = Vec::new();
    let mut parser = Parser::new(0);
    let mut remaining = bytes;
    let mut data_segments = None;
    loop {
        let (consumed, payload) = match parser.parse(remaining, true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => anyhow::bail!("module is truncated"),
        };
        let section = payload.as_section();
        let mut skip = 0;
        match payload {
            Payload::Version { .. } | Payload::CodeSectionEntry(_) => {}
            Payload::End(_) => break,
            Payload::CodeSectionStart { size, range, .. } => {
                // Copied whole, unless replaced: function bodies stay
                // byte-identical.
                parser.skip_section();
                skip = size as usize;
                out.push(code_section(bytes, range, &mut edit));
            }
            Payload::ElementSection(reader) => match &edit.tables {
                Some(tables) => {
                    let section =
                        tables::element_section(bytes, &out, Some(reader), &edit, tables)?;
                    push(&mut out, id::ELEMENT, &section)?;
                }
                None if !edit.empty_elems.is_empty() => {
                    push(
                        &mut out,
                        id::ELEMENT,
                        &element_section(bytes, reader, &edit)?,
                    )?;
                }
                None => {
                    if let Some((id, range)) = section {
                        out.push(Out {
                            id,
                            data: Cow::Borrowed(&bytes[range]),
                        });
                    }
                }
            },
            Payload::TableSection(reader) if edit.tables.is_some() => {
                if let Some(tables) = &edit.tables {
                    let section = tables::table_section(&out, reader, tables)?;
                    push(&mut out, id::TABLE, &section)?;
                }
            }
            Payload::ExportSection(reader) => {
                push(&mut out, id::EXPORT, &export_section(reader, &edit)?)?;
            }
            Payload::StartSection { .. } if edit.drop_start => {}
            Payload::MemorySection(reader) if !edit.memory_minimums.is_empty() => {
                let section = memory_section(&out, reader, &edit)?;
                push(&mut out, id::MEMORY, &section)?;
            }
            Payload::GlobalSection(reader)
                if !edit.globals.is_empty()
                    || !edit.new_globals.is_empty()
                    || edit.tables.as_ref().is_some_and(|t| !t.globals.is_empty()) =>
            {
                let section = global_section(&out, reader, &edit)?;
                push(&mut out, id::GLOBAL, &section)?;
            }
            Payload::DataSection(reader) if edit.data.is_some() => {
                data_segments = Some(data_section(bytes, reader, &edit, out.len())?);
                out.push(Out {
                    id: id::DATA,
                    data: Cow::Borrowed(&[]),
                });
            }
            _ => {
                if let Some((id, range)) = section {
                    out.push(Out {
                        id,
                        data: Cow::Borrowed(&bytes[range]),
                    });
                }
            }
        }
        remaining = &remaining[consumed + skip..];
    }

    if let Some(tables) = &edit.tables
        && !out.iter().any(|s| s.id == id::ELEMENT)
    {
        let section = tables::element_section(bytes, &out, None, &edit, tables)?;
        insert(&mut out, id::ELEMENT, encode(&section)?);
    }
    if !edit.new_globals.is_empty() && !out.iter().any(|s| s.id == id::GLOBAL) {
        let mut section = wasm_encoder::GlobalSection::new();
        add_globals(&mut section, &edit);
        insert(&mut out, id::GLOBAL, encode(&section)?);
    }
    if !edit.exports.is_empty() && !out.iter().any(|s| s.id == id::EXPORT) {
        let mut section = wasm_encoder::ExportSection::new();
        add_exports(&mut section, &edit);
        insert(&mut out, id::EXPORT, encode(&section)?);
    }
    let data = match edit.data.take() {
        Some(segments) => Some(append_segments(&mut out, data_segments, segments)?),
        None => None,
    };

    Ok(Edited {
        sections: out,
        data,
    })
}

/// The code section: copied whole from `range` of `bytes`, unless the edit
/// replaces it.
fn code_section<'a>(bytes: &'a [u8], range: Range<usize>, edit: &mut ModuleEdit<'a>) -> Out<'a> {
    Out {
        id: id::CODE,
        data: match edit.code.take() {
            Some(code) => Cow::Owned(code),
            None => Cow::Borrowed(&bytes[range]),
        },
    }
}

/// The element section with the segments the edit empties made empty
/// passive ones.
fn element_section(
    bytes: &[u8],
    reader: wasmparser::ElementSectionReader<'_>,
    edit: &ModuleEdit<'_>,
) -> Result<wasm_encoder::ElementSection> {
    let mut section = wasm_encoder::ElementSection::new();
    let mut declared = std::collections::BTreeSet::new();
    for (i, element) in reader.into_iter().enumerate() {
        let element = element?;
        // `elem.drop` of an active or declarative segment changes nothing
        // (both are dropped once the module is instantiated): only a passive
        // segment that init dropped is emptied, and an active one must stay
        // to fill its table
        let passive = matches!(element.kind, wasmparser::ElementKind::Passive);
        if !passive || !edit.empty_elems.contains(&(i as u32)) {
            section.raw(&bytes[element.range.clone()]);
            continue;
        }
        section.passive(tables::emptied(element.items, &mut declared)?);
    }
    // what the emptied segments declared stays declared (`ref.func` needs it)
    if !declared.is_empty() {
        let funcs: Vec<u32> = declared.into_iter().collect();
        section.declared(wasm_encoder::Elements::Functions(Cow::Owned(funcs)));
    }
    Ok(section)
}

/// The export section with the edit's exports added.
fn export_section(
    reader: wasmparser::ExportSectionReader<'_>,
    edit: &ModuleEdit<'_>,
) -> Result<wasm_encoder::ExportSection> {
    let mut section = wasm_encoder::ExportSection::new();
    for export in reader {
        let export = export?;
        let name = match edit.export_renames.get(export.name) {
            Some(Some(renamed)) => renamed.as_str(),
            Some(None) => continue,
            None => export.name,
        };
        section.export(
            name,
            RoundtripReencoder.export_kind(export.kind)?,
            export.index,
        );
    }
    add_exports(&mut section, edit);
    Ok(section)
}

/// The memory section with the edit's minimum sizes; `out` holds the
/// sections before it.
fn memory_section(
    out: &[Out<'_>],
    reader: wasmparser::MemorySectionReader<'_>,
    edit: &ModuleEdit<'_>,
) -> Result<wasm_encoder::MemorySection> {
    let imported = imported_before(out, |ty| matches!(ty, wasmparser::TypeRef::Memory(_)))?;
    let mut section = wasm_encoder::MemorySection::new();
    for (i, memory) in reader.into_iter().enumerate() {
        let mut ty = RoundtripReencoder.memory_type(memory?)?;
        let index = imported + i as u32;
        if let Some(&(_, pages)) = edit.memory_minimums.iter().find(|(m, _)| *m == index) {
            if let Some(maximum) = ty.maximum.filter(|&max| pages > max) {
                bail!(
                    "the snapshot of memory {index} is {pages} pages, more than \
                     its declared maximum of {maximum}"
                );
            }
            ty.minimum = ty.minimum.max(pages);
        }
        section.memory(ty);
    }
    Ok(section)
}

/// The global section with the edit's values and new globals; `out` holds
/// the sections before it.
fn global_section(
    out: &[Out<'_>],
    reader: wasmparser::GlobalSectionReader<'_>,
    edit: &ModuleEdit<'_>,
) -> Result<wasm_encoder::GlobalSection> {
    let imported = imported_before(out, |ty| matches!(ty, wasmparser::TypeRef::Global(_)))?;
    let mut section = wasm_encoder::GlobalSection::new();
    for (i, global) in reader.into_iter().enumerate() {
        let global = global?;
        let index = imported + i as u32;
        let set_ref = match &edit.tables {
            Some(tables) => tables::global_init(tables, index, global.ty.content_type)?,
            None => None,
        };
        let init = match edit.globals.iter().find(|(g, _)| *g == index) {
            Some(&(_, value)) => const_expr(value),
            None => match set_ref {
                Some(init) => init,
                None => RoundtripReencoder.const_expr(global.init_expr)?,
            },
        };
        section.global(RoundtripReencoder.global_type(global.ty)?, &init);
    }
    add_globals(&mut section, edit);
    Ok(section)
}

/// The data section, to be at index `at` of the sections, with every active
/// segment and every passive one the edit empties made an empty passive one.
fn data_section<'a>(
    bytes: &'a [u8],
    reader: wasmparser::DataSectionReader<'a>,
    edit: &ModuleEdit<'_>,
    at: usize,
) -> Result<DataPieces<'a>> {
    let mut pieces = Vec::new();
    let mut count = 0u32;
    for data in reader {
        let data = data?;
        match data.kind {
            DataKind::Passive if !edit.empty_data.contains(&count) => {
                pieces.push(Cow::Borrowed(&bytes[data.range.clone()]))
            }
            // active segments were applied and dropped at
            // instantiation; dropped passive ones are gone too:
            // an empty passive segment (flags 1, no bytes)
            _ => pieces.push(Cow::Borrowed(&[1, 0][..])),
        };
        count += 1;
    }
    Ok(DataPieces { at, count, pieces })
}

/// Appends `segments` to the data section `data_segments` (inserting an
/// empty one into `out` when the module has none) and updates the data
/// count section.
fn append_segments<'a>(
    out: &mut Vec<Out<'a>>,
    data_segments: Option<DataPieces<'a>>,
    segments: Vec<Segment<'a>>,
) -> Result<DataPieces<'a>> {
    let mut data = match data_segments {
        // sections inserted since the data section was read (an element,
        // global or export section) moved it
        Some(found) => DataPieces {
            at: out
                .iter()
                .position(|s| s.id == id::DATA)
                .context("internal error: the data section is missing")?,
            ..found
        },
        None => {
            insert(out, id::DATA, Vec::new());
            let at = out
                .iter()
                .position(|s| s.id == id::DATA)
                .context("internal error: the data section just inserted is missing")?;
            DataPieces {
                at,
                count: 0,
                pieces: Vec::new(),
            }
        }
    };
    data.pieces.reserve(2 * segments.len());
    for segment in segments {
        let offset = if segment.memory64 {
            ConstExpr::i64_const(segment.offset as i64)
        } else {
            ConstExpr::i32_const(segment.offset as u32 as i32)
        };
        // As `wasm_encoder::DataSection::active` writes it, but the
        // bytes are a piece of their own rather than copied in.
        let mut header = Vec::new();
        if segment.memory == 0 {
            header.push(0x00);
        } else {
            header.push(0x02);
            segment.memory.encode(&mut header);
        }
        offset.encode(&mut header);
        let Ok(len) = u32::try_from(segment.bytes.len()) else {
            bail!("a data segment of the snapshot is larger than 4 GiB");
        };
        len.encode(&mut header);
        data.pieces.push(Cow::Owned(header));
        data.pieces.push(segment.bytes);
        data.count += 1;
    }
    for s in out.iter_mut().filter(|s| s.id == id::DATA_COUNT) {
        let mut count = Vec::new();
        data.count.encode(&mut count);
        s.data = Cow::Owned(count);
    }
    if u32::try_from(data.size()).is_err() {
        bail!("the data section would be larger than 4 GiB");
    }
    Ok(data)
}

fn add_globals(section: &mut wasm_encoder::GlobalSection, edit: &ModuleEdit<'_>) {
    for value in &edit.new_globals {
        let val_type = match value {
            GlobalValue::I32(_) => wasm_encoder::ValType::I32,
            GlobalValue::I64(_) => wasm_encoder::ValType::I64,
            GlobalValue::F32(_) => wasm_encoder::ValType::F32,
            GlobalValue::F64(_) => wasm_encoder::ValType::F64,
            GlobalValue::V128(_) => wasm_encoder::ValType::V128,
        };
        let ty = wasm_encoder::GlobalType {
            val_type,
            mutable: true,
            shared: false,
        };
        section.global(ty, &const_expr(*value));
    }
}

fn add_exports(section: &mut wasm_encoder::ExportSection, edit: &ModuleEdit<'_>) {
    for export in &edit.exports {
        section.export(&export.name, export.kind, export.index);
    }
}

fn encode(section: &impl wasm_encoder::Section) -> Result<Vec<u8>> {
    let mut sized = Vec::new();
    section.encode(&mut sized);
    codegen::strip_size(sized)
}

fn push(out: &mut Vec<Out<'_>>, id: u8, section: &impl wasm_encoder::Section) -> Result<()> {
    out.push(Out {
        id,
        data: Cow::Owned(encode(section)?),
    });
    Ok(())
}

/// Inserts a new section with `id` where the binary format wants it: before
/// the first section that must follow it, else after the last known section.
fn insert(out: &mut Vec<Out<'_>>, id: u8, data: Vec<u8>) {
    let want = rank(id);
    let at = out
        .iter()
        .position(|s| rank(s.id) > want)
        .unwrap_or_else(|| {
            out.iter()
                .rposition(|s| rank(s.id).is_some())
                .map_or(out.len(), |i| i + 1)
        });
    out.insert(
        at,
        Out {
            id,
            data: Cow::Owned(data),
        },
    );
}

/// Counts the imports matching `is_kind` in the import section already copied.
fn imported_before(out: &[Out<'_>], is_kind: impl Fn(&wasmparser::TypeRef) -> bool) -> Result<u32> {
    let Some(imports) = out.iter().find(|s| s.id == id::IMPORT) else {
        return Ok(0);
    };
    let reader =
        wasmparser::ImportSectionReader::new(wasmparser::BinaryReader::new(&imports.data, 0))?;
    let mut n = 0;
    for import in reader.into_imports() {
        if is_kind(&import.context("failed to read an import")?.ty) {
            n += 1;
        }
    }
    Ok(n)
}

fn const_expr(value: GlobalValue) -> ConstExpr {
    match value {
        GlobalValue::I32(v) => ConstExpr::i32_const(v),
        GlobalValue::I64(v) => ConstExpr::i64_const(v),
        GlobalValue::F32(bits) => ConstExpr::f32_const(f32::from_bits(bits).into()),
        GlobalValue::F64(bits) => ConstExpr::f64_const(f64::from_bits(bits).into()),
        GlobalValue::V128(bits) => ConstExpr::v128_const(bits as i128),
    }
}
