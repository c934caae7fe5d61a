//! Tables and reference-typed globals as a snapshot left them: each table's
//! minimum raised to its final size, its slots written by active element
//! segments appended after the module's own (whose active segments become
//! empty passive ones, as active data segments do, with a declarative
//! segment keeping their functions declared), and reference-typed globals
//! set to the function they hold, or null.

use anyhow::{Context, Result, bail};
use std::borrow::Cow;
use std::collections::BTreeSet;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{ConstExpr, Elements};

use super::{ModuleEdit, Out, id};

/// Tables and reference-typed globals to set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableEdit {
    /// Every table of the module, as init left it.
    pub tables: Vec<TableImage>,
    /// Mutable reference-typed globals: (global index, the function it
    /// holds, or `None` for null).
    pub globals: Vec<(u32, Option<u32>)>,
}

/// A table as init left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableImage {
    /// The table's index.
    pub index: u32,
    /// Each slot: the function it holds, or `None` for null.
    pub slots: Vec<Option<u32>>,
}

/// What the table section says of one table.
struct TableFacts {
    table64: bool,
    element: wasm_encoder::RefType,
    /// Slots start non-null (the table has an initializer expression).
    initialized: bool,
}

/// The table section with each table's minimum raised to its final size.
pub(super) fn table_section(
    out: &[Out<'_>],
    reader: wasmparser::TableSectionReader<'_>,
    edit: &TableEdit,
) -> Result<wasm_encoder::TableSection> {
    let imported = super::imported_before(out, |ty| matches!(ty, wasmparser::TypeRef::Table(_)))?;
    let mut section = wasm_encoder::TableSection::new();
    for (i, table) in reader.into_iter().enumerate() {
        let table = table?;
        let index = imported + i as u32;
        let mut ty = RoundtripReencoder.table_type(table.ty)?;
        if let Some(image) = edit.tables.iter().find(|t| t.index == index) {
            let size = image.slots.len() as u64;
            if let Some(maximum) = ty.maximum.filter(|&max| size > max) {
                bail!(
                    "the snapshot of table {index} has {size} slots, more than its declared \
                     maximum of {maximum}"
                );
            }
            ty.minimum = ty.minimum.max(size);
        }
        match table.init {
            wasmparser::TableInit::RefNull => section.table(ty),
            wasmparser::TableInit::Expr(expr) => {
                section.table_with_init(ty, &RoundtripReencoder.const_expr(expr)?)
            }
        };
    }
    Ok(section)
}

/// The element section: the module's segments, active ones made empty
/// passive ones (and those `empty_elems` names emptied), then a declarative
/// segment for the functions the active ones named, then the segments that
/// write the snapshot's slots. `reader` is `None` when the module has no
/// element section.
pub(super) fn element_section(
    bytes: &[u8],
    out: &[Out<'_>],
    reader: Option<wasmparser::ElementSectionReader<'_>>,
    edit: &ModuleEdit<'_>,
    tables: &TableEdit,
) -> Result<wasm_encoder::ElementSection> {
    let mut section = wasm_encoder::ElementSection::new();
    let mut declared = BTreeSet::new();
    for (i, element) in reader.into_iter().flatten().enumerate() {
        let element = element?;
        let active = matches!(element.kind, wasmparser::ElementKind::Active { .. });
        let passive = matches!(element.kind, wasmparser::ElementKind::Passive);
        let dropped = passive && edit.empty_elems.contains(&(i as u32));
        if !active && !dropped {
            section.raw(&bytes[element.range.clone()]);
            continue;
        }
        section.passive(emptied(element.items, &mut declared)?);
    }
    if !declared.is_empty() {
        let funcs: Vec<u32> = declared.into_iter().collect();
        section.declared(Elements::Functions(Cow::Owned(funcs)));
    }
    let facts = table_facts(out)?;
    for image in &tables.tables {
        let facts = facts
            .get(image.index as usize)
            .with_context(|| format!("internal error: no table {}", image.index))?;
        write_slots(&mut section, image, facts)?;
    }
    Ok(section)
}

/// An empty passive segment of the element type of `items`, whose
/// functions are added to `declared` (so that they stay declared).
pub(super) fn emptied(
    items: wasmparser::ElementItems<'_>,
    declared: &mut BTreeSet<u32>,
) -> Result<Elements<'static>> {
    Ok(match items {
        wasmparser::ElementItems::Functions(funcs) => {
            for func in funcs {
                declared.insert(func?);
            }
            Elements::Functions(Cow::Borrowed(&[]))
        }
        wasmparser::ElementItems::Expressions(ty, exprs) => {
            for expr in exprs {
                for op in expr?.get_operators_reader() {
                    if let wasmparser::Operator::RefFunc { function_index } = op? {
                        declared.insert(function_index);
                    }
                }
            }
            Elements::Expressions(RoundtripReencoder.ref_type(ty)?, Cow::Borrowed(&[]))
        }
    })
}

/// Appends the active segments that write `image`'s slots: its runs of
/// functions, and its runs of nulls where slots do not start null.
fn write_slots(
    section: &mut wasm_encoder::ElementSection,
    image: &TableImage,
    facts: &TableFacts,
) -> Result<()> {
    let mut at = 0;
    while at < image.slots.len() {
        let null = image.slots[at].is_none();
        let end = image.slots[at..]
            .iter()
            .position(|s| s.is_none() != null)
            .map_or(image.slots.len(), |n| at + n);
        if !null || facts.initialized {
            let offset = match facts.table64 {
                true => ConstExpr::i64_const(at as i64),
                false => ConstExpr::i32_const(
                    i32::try_from(at).context("internal error: a 32-bit table past 2^31")?,
                ),
            };
            let run = &image.slots[at..end];
            let elements = match (null, facts.element == wasm_encoder::RefType::FUNCREF) {
                (false, true) => {
                    Elements::Functions(Cow::Owned(run.iter().flatten().copied().collect()))
                }
                (false, false) => Elements::Expressions(
                    facts.element,
                    Cow::Owned(
                        run.iter()
                            .flatten()
                            .map(|&f| ConstExpr::ref_func(f))
                            .collect(),
                    ),
                ),
                (true, _) => Elements::Expressions(
                    facts.element,
                    Cow::Owned(vec![
                        ConstExpr::ref_null(facts.element.heap_type);
                        run.len()
                    ]),
                ),
            };
            section.active(Some(image.index), &offset, elements);
        }
        at = end;
    }
    Ok(())
}

/// The table index space's facts, from the imports and the table section
/// already copied to `out`.
fn table_facts(out: &[Out<'_>]) -> Result<Vec<TableFacts>> {
    let mut facts = Vec::new();
    if let Some(imports) = out.iter().find(|s| s.id == id::IMPORT) {
        let reader =
            wasmparser::ImportSectionReader::new(wasmparser::BinaryReader::new(&imports.data, 0))?;
        for import in reader.into_imports() {
            if let wasmparser::TypeRef::Table(ty) = import?.ty {
                facts.push(TableFacts {
                    table64: ty.table64,
                    element: RoundtripReencoder.ref_type(ty.element_type)?,
                    initialized: false,
                });
            }
        }
    }
    if let Some(tables) = out.iter().find(|s| s.id == id::TABLE) {
        let reader =
            wasmparser::TableSectionReader::new(wasmparser::BinaryReader::new(&tables.data, 0))?;
        for table in reader {
            let table = table?;
            facts.push(TableFacts {
                table64: table.ty.table64,
                element: RoundtripReencoder.ref_type(table.ty.element_type)?,
                initialized: matches!(table.init, wasmparser::TableInit::Expr(_)),
            });
        }
    }
    Ok(facts)
}

/// The initializer of reference-typed global `index` of type `ty`, if the
/// edit sets it.
pub(super) fn global_init(
    tables: &TableEdit,
    index: u32,
    ty: wasmparser::ValType,
) -> Result<Option<ConstExpr>> {
    let Some(&(_, value)) = tables.globals.iter().find(|(g, _)| *g == index) else {
        return Ok(None);
    };
    let wasmparser::ValType::Ref(ty) = ty else {
        bail!("internal error: global {index} is not reference-typed");
    };
    Ok(Some(match value {
        Some(func) => ConstExpr::ref_func(func),
        None => ConstExpr::ref_null(RoundtripReencoder.ref_type(ty)?.heap_type),
    }))
}
