//! Baking one instance's snapshot into its module: memories as data
//! segments chosen by the segment rule (minimums raised to the snapshot's
//! size), globals set, dropped passive segments emptied, the start function
//! removed. Both front ends bake modules this way.

use anyhow::Result;
use wasmparser::Parser;

use super::probe::{Fired, Probe};
use super::segments;
use super::tables::TableEdit;
use super::{Edited, ModuleEdit, Segment};
use crate::plan::image::MemoryImage;
use crate::plan::{GlobalValue, State, Value};

/// The snapshot state of one core instance.
#[derive(Default, PartialEq)]
pub struct InstanceState<'a> {
    /// Its memories.
    pub memories: Vec<MemoryState<'a>>,
    /// (module global index, value)
    pub globals: Vec<(u32, GlobalValue)>,
    /// Passive data segments dropped during init.
    pub dropped_data: Vec<u32>,
    /// Element segments dropped during init.
    pub dropped_elems: Vec<u32>,
    /// The last table mutation or write of a reference-typed global that
    /// ran in this instance ([`Probe::TablesChanged`]), if any.
    pub tables_changed: Option<Fired>,
    /// Tables and reference-typed globals as read (the component front end
    /// resolves them across instances into `tables`, then clears this).
    pub table_reads: Vec<(State, &'a MemoryImage)>,
    /// Tables and reference-typed globals to set.
    pub tables: Option<TableEdit>,
}

/// A memory of an instance, as the snapshot left it.
#[derive(PartialEq)]
pub struct MemoryState<'a> {
    /// The memory's index in its module.
    pub index: u32,
    /// log2 of its page size.
    pub page_size_log2: u32,
    /// Whether it uses 64-bit addresses.
    pub memory64: bool,
    /// Its contents.
    pub image: &'a MemoryImage,
}

/// A snapshot value of another kind than the state it is for.
pub struct WrongKind;

impl<'a> InstanceState<'a> {
    /// Records the snapshot `value` of the piece of state `what`; a fired
    /// [`Probe::Unsnapshottable`] is returned for the caller to report
    /// where it ran.
    pub fn record(&mut self, what: State, value: &'a Value) -> Result<Option<Fired>, WrongKind> {
        match (what, value) {
            (
                State::Memory {
                    index,
                    memory64,
                    page_size_log2,
                },
                Value::Memory(image),
            ) => self.memories.push(MemoryState {
                index,
                page_size_log2,
                memory64,
                image,
            }),
            (State::Global { index, .. }, Value::Global(v)) => self.globals.push((index, *v)),
            (State::Probe { probe, .. }, Value::Global(GlobalValue::I32(v))) => match probe {
                _ if *v == 0 => {}
                Probe::Unsnapshottable => return Ok(Fired::decode(*v)),
                Probe::DataDropped { segment } => self.dropped_data.push(segment),
                Probe::ElemDropped { segment } => self.dropped_elems.push(segment),
                Probe::TablesChanged => self.tables_changed = Fired::decode(*v),
            },
            (State::Table { .. } | State::RefGlobal { .. }, Value::Memory(image)) => {
                self.table_reads.push((what, image))
            }
            _ => return Err(WrongKind),
        }
        Ok(None)
    }
}

/// How many data segments the module `bytes` has.
fn data_segment_count(bytes: &[u8]) -> Result<usize> {
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            wasmparser::Payload::DataSection(section) => return Ok(section.count() as usize),
            wasmparser::Payload::End(_) => break,
            _ => {}
        }
    }
    Ok(0)
}

/// Bakes `state` into the module `bytes`, with the other changes of `edit`
/// (exports renamed or removed).
pub fn bake<'a>(
    bytes: &'a [u8],
    state: &InstanceState<'a>,
    edit: ModuleEdit<'a>,
) -> Result<Edited<'a>> {
    let mut minimums = Vec::new();
    let mut data = Vec::new();
    // the module's own segments stay (emptied or not), so what is left of
    // the engines' limit is shared among its memories
    let budget = segments::budget(data_segment_count(bytes)?);
    let per_memory = budget / state.memories.len().max(1);
    for m in &state.memories {
        let (memory, memory64, image) = (m.index, m.memory64, m.image);
        minimums.push((memory, image.len() >> m.page_size_log2));
        let target = segments::Target { memory, memory64 };
        for (offset, bytes) in segments::segments(image, per_memory, target) {
            data.push(Segment {
                memory,
                memory64,
                offset,
                bytes,
            });
        }
    }
    let edit = ModuleEdit {
        drop_start: true,
        memory_minimums: minimums,
        globals: state.globals.clone(),
        empty_data: state.dropped_data.clone(),
        empty_elems: state.dropped_elems.clone(),
        data: Some(data),
        tables: edit.tables.or_else(|| state.tables.clone()),
        ..edit
    };
    super::edit_lazily(bytes, edit)
}
