//! Editing one core module: copy its sections through unchanged (code stays
//! byte-identical) except the few an edit touches.
//!
//! Used by instrument (to export a module's state) and by rewrite (to bake a
//! snapshot into it).

pub mod codegen;
pub mod probe;
pub mod segments;

use anyhow::{Context, Result, bail};
use std::borrow::Cow;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{ConstExpr, Encode};
use wasmparser::{Chunk, DataKind, Parser, Payload};

use crate::plan::GlobalValue;

/// What to change in a module; an empty edit reproduces the module.
#[derive(Default)]
pub struct ModuleEdit<'a> {
    /// Exports to add.
    pub exports: Vec<CoreExport>,
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

/// The order in which non-custom sections must appear in a module.
fn rank(id: u8) -> Option<u8> {
    Some(match id {
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => return None,
    })
}

const EXPORT: u8 = 7;
const DATA: u8 = 11;

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

/// The data section: its index in `sections` (whose `data` is unused), its
/// segment count and its contents after the count.
type DataPieces<'a> = (usize, u32, Vec<Cow<'a, [u8]>>);

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
            Some((at, count, pieces)) if *at == i => {
                leb_len(u64::from(*count)) + pieces.iter().map(|p| p.len()).sum::<usize>()
            }
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
                Some((at, count, pieces)) if *at == i => {
                    count.encode(sink);
                    for piece in pieces {
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
                out.push(Out {
                    id: 10,
                    data: match edit.code.take() {
                        Some(code) => Cow::Owned(code),
                        None => Cow::Borrowed(&bytes[range]),
                    },
                });
            }
            Payload::ElementSection(reader) if !edit.empty_elems.is_empty() => {
                let mut section = wasm_encoder::ElementSection::new();
                for (i, element) in reader.into_iter().enumerate() {
                    let element = element?;
                    if !edit.empty_elems.contains(&(i as u32)) {
                        section.raw(&bytes[element.range.clone()]);
                        continue;
                    }
                    match element.items {
                        wasmparser::ElementItems::Functions(_) => {
                            section.passive(wasm_encoder::Elements::Functions(Cow::Borrowed(&[])))
                        }
                        wasmparser::ElementItems::Expressions(ty, _) => {
                            section.passive(wasm_encoder::Elements::Expressions(
                                RoundtripReencoder.ref_type(ty)?,
                                Cow::Borrowed(&[]),
                            ))
                        }
                    };
                }
                push(&mut out, 9, &section)?;
            }
            Payload::ExportSection(reader) => {
                let mut section = wasm_encoder::ExportSection::new();
                for export in reader {
                    let export = export?;
                    section.export(
                        export.name,
                        RoundtripReencoder.export_kind(export.kind)?,
                        export.index,
                    );
                }
                add_exports(&mut section, &edit);
                push(&mut out, EXPORT, &section)?;
            }
            Payload::StartSection { .. } if edit.drop_start => {}
            Payload::MemorySection(reader) if !edit.memory_minimums.is_empty() => {
                let imported = imported_before(&out, bytes, |ty| {
                    matches!(ty, wasmparser::TypeRef::Memory(_))
                })?;
                let mut section = wasm_encoder::MemorySection::new();
                for (i, memory) in reader.into_iter().enumerate() {
                    let mut ty = RoundtripReencoder.memory_type(memory?)?;
                    let index = imported + i as u32;
                    if let Some(&(_, pages)) =
                        edit.memory_minimums.iter().find(|(m, _)| *m == index)
                    {
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
                push(&mut out, 5, &section)?;
            }
            Payload::GlobalSection(reader)
                if !edit.globals.is_empty() || !edit.new_globals.is_empty() =>
            {
                let imported = imported_before(&out, bytes, |ty| {
                    matches!(ty, wasmparser::TypeRef::Global(_))
                })?;
                let mut section = wasm_encoder::GlobalSection::new();
                for (i, global) in reader.into_iter().enumerate() {
                    let global = global?;
                    let index = imported + i as u32;
                    let init = match edit.globals.iter().find(|(g, _)| *g == index) {
                        Some(&(_, value)) => const_expr(value),
                        None => RoundtripReencoder.const_expr(global.init_expr)?,
                    };
                    section.global(RoundtripReencoder.global_type(global.ty)?, &init);
                }
                add_globals(&mut section, &edit);
                push(&mut out, 6, &section)?;
            }
            Payload::DataSection(reader) if edit.data.is_some() => {
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
                data_segments = Some((out.len(), count, pieces));
                out.push(Out {
                    id: DATA,
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

    if !edit.new_globals.is_empty() && !out.iter().any(|s| s.id == 6) {
        let mut section = wasm_encoder::GlobalSection::new();
        add_globals(&mut section, &edit);
        insert(&mut out, 6, encode(&section)?);
    }
    if !edit.exports.is_empty() && !out.iter().any(|s| s.id == EXPORT) {
        let mut section = wasm_encoder::ExportSection::new();
        add_exports(&mut section, &edit);
        insert(&mut out, EXPORT, encode(&section)?);
    }
    let mut data = None;
    if let Some(segments) = edit.data.take() {
        let (at, mut count, mut pieces) = match data_segments.take() {
            Some(found) => found,
            None => {
                insert(&mut out, DATA, Vec::new());
                let at = out
                    .iter()
                    .position(|s| s.id == DATA)
                    .context("internal error: the data section just inserted is missing")?;
                (at, 0, Vec::new())
            }
        };
        pieces.reserve(2 * segments.len());
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
            pieces.push(Cow::Owned(header));
            pieces.push(segment.bytes);
            count += 1;
        }
        for s in out.iter_mut().filter(|s| s.id == 12) {
            let mut data = Vec::new();
            count.encode(&mut data);
            s.data = Cow::Owned(data);
        }
        let size = leb_len(u64::from(count)) + pieces.iter().map(|p| p.len()).sum::<usize>();
        if u32::try_from(size).is_err() {
            bail!("the data section would be larger than 4 GiB");
        }
        data = Some((at, count, pieces));
    }

    Ok(Edited {
        sections: out,
        data,
    })
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
fn imported_before(
    out: &[Out<'_>],
    _bytes: &[u8],
    is_kind: impl Fn(&wasmparser::TypeRef) -> bool,
) -> Result<u32> {
    let Some(imports) = out.iter().find(|s| s.id == 2) else {
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
