//! Phase 4, rewrite: emit the ORIGINAL component with the snapshot baked in.
//!
//! Every instantiated module gets its mutable globals set to their snapshot
//! values, its memories' minimums raised to the snapshot size, its active data
//! segments replaced (by empty passive ones, which keep data indices valid)
//! plus segments built from the snapshot, and its start function dropped (it
//! already ran). The init function's export is removed unless kept; every
//! other section is copied unchanged, or re-encoded with component function
//! indices shifted down past the removed export.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use wasm_encoder::reencode::ReencodeComponent;
use wasm_encoder::{Component, ComponentExportSection, RawSection};
use wasmparser::{Parser, Validator};

use crate::module::{self, ModuleEdit, Segment};
use crate::names;
use crate::parse::{self, Parsed, SectionKind};
use crate::plan::{GlobalValue, InputId, Plan, Snapshot, State, Value};
use crate::probe::{self, Probe};
use crate::segments;

/// Applies `snapshot`, read according to `plan`, to `original`, the
/// component `plan` was made for. The result is validated.
pub fn apply(original: &[u8], plan: &Plan, snapshot: &Snapshot) -> Result<Vec<u8>> {
    if InputId::of(original) != plan.input {
        bail!("the plan was made for a different component than the one given");
    }
    plan.check_snapshot(snapshot)?;
    let parsed = parse::parse(original)?;
    let states = instance_states(&parsed, plan, snapshot)?;
    let removed = if plan.remove_init_export {
        let Some(i) = parsed
            .exports
            .iter()
            .position(|e| plan.init.interface.is_none() && e.name == plan.init.name)
        else {
            bail!("the component has no export `{}` to remove", plan.init);
        };
        Some(i)
    } else {
        None
    };
    let out = encode(&parsed, &states, removed)?;
    Validator::new_with_features(parse::features())
        .validate_all(&out)
        .context("internal error: the rewritten component does not validate; please report this")?;
    Ok(out)
}

/// The snapshot state of one core instance.
#[derive(Default, PartialEq)]
struct InstanceState<'a> {
    /// (module memory index, page size log2, memory64, contents)
    memories: Vec<(u32, u32, bool, &'a [u8])>,
    /// (module global index, value)
    globals: Vec<(u32, GlobalValue)>,
    /// Passive data segments dropped during init.
    dropped_data: Vec<u32>,
    /// Element segments dropped during init.
    dropped_elems: Vec<u32>,
}

/// For each instantiated module (by index into `parsed.modules`), the state
/// its instances ended in. Instances of one module must agree.
fn instance_states<'a>(
    parsed: &Parsed<'_>,
    plan: &Plan,
    snapshot: &'a Snapshot,
) -> Result<BTreeMap<usize, InstanceState<'a>>> {
    let mut by_instance: BTreeMap<u32, InstanceState<'a>> = BTreeMap::new();
    for (accessor, value) in plan.accessors.iter().zip(&snapshot.values) {
        let state = by_instance.entry(accessor.instance).or_default();
        match (accessor.state, value) {
            (
                State::Memory {
                    index,
                    memory64,
                    page_size_log2,
                },
                Value::Memory(bytes),
            ) => state
                .memories
                .push((index, page_size_log2, memory64, bytes)),
            (State::Global { index, .. }, Value::Global(v)) => state.globals.push((index, *v)),
            (State::Probe { probe, .. }, Value::Global(GlobalValue::I32(v))) => match probe {
                _ if *v == 0 => {}
                Probe::TableWrite => {
                    let module = parsed
                        .modules
                        .iter()
                        .find(|m| m.index == accessor.module)
                        .context("the plan names a module the component lacks")?;
                    let (op, func) = probe::decode_table_write(*v).unwrap_or(("table", 0));
                    let name = probe::function_name(&parsed.bytes[module.range.clone()], func)
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default();
                    bail!(
                        "`{op}` ran during init, in function {func}{name} of core module {} \
                         (core instance {}); tables cannot be snapshotted, so init must not \
                         change them",
                        accessor.module,
                        accessor.instance
                    );
                }
                Probe::DataDropped { segment } => state.dropped_data.push(segment),
                Probe::ElemDropped { segment } => state.dropped_elems.push(segment),
            },
            _ => bail!("snapshot value for `{}` has the wrong kind", accessor.func),
        }
    }
    let mut by_module: BTreeMap<usize, (u32, InstanceState<'a>)> = BTreeMap::new();
    for instance in &parsed.instances {
        let state = by_instance.remove(&instance.index).unwrap_or_default();
        match by_module.get(&instance.module) {
            None => {
                by_module.insert(instance.module, (instance.index, state));
            }
            Some((first, existing)) if *existing != state => bail!(
                "core module {} is instantiated more than once (core instances {first} and {}) \
                 and the instances end init in different states; this is not supported yet",
                parsed.modules[instance.module].index,
                instance.index
            ),
            Some(_) => {}
        }
    }
    if let Some(instance) = by_instance.keys().next() {
        bail!(
            "the plan reads core instance {instance}, which does not instantiate a module of this component"
        );
    }
    Ok(by_module.into_iter().map(|(m, (_, s))| (m, s)).collect())
}

fn encode(
    parsed: &Parsed<'_>,
    states: &BTreeMap<usize, InstanceState<'_>>,
    removed: Option<usize>,
) -> Result<Vec<u8>> {
    let mut component = Component::new();
    let mut remap = removed.map(|i| Remap {
        removed: parsed.exports[i].defines,
        source: parsed.exports[i].source,
    });
    let mut remapping = false;
    let mut wrote_producers = false;
    for section in &parsed.sections {
        let data = &parsed.bytes[section.range.clone()];
        match section.kind {
            SectionKind::Module(m) => match states.get(&m) {
                Some(state) => {
                    let module = &parsed.modules[m];
                    let bytes = &parsed.bytes[module.range.clone()];
                    let edited = rewrite_module(bytes, state).with_context(|| {
                        format!("failed to rewrite core module {}", module.index)
                    })?;
                    component.section(&RawSection {
                        id: 1,
                        data: &edited,
                    });
                }
                None => {
                    component.section(&RawSection {
                        id: section.id,
                        data,
                    });
                }
            },
            SectionKind::Exports { start, len }
                if removed.is_some_and(|r| (start..start + len).contains(&r)) =>
            {
                let removed = removed.unwrap_or_default();
                let reencoder = remap.as_mut().context("no remap")?;
                let mut exports = ComponentExportSection::new();
                let reader = wasmparser::ComponentExportSectionReader::new(
                    wasmparser::BinaryReader::new(data, section.range.start),
                )?;
                for (i, export) in reader.into_iter().enumerate() {
                    if start + i == removed {
                        continue;
                    }
                    reencoder
                        .parse_component_export(&mut exports, export?)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                component.section(&exports);
                remapping = true;
            }
            SectionKind::Producers => {
                let reader = wasmparser::CustomSectionReader::new(wasmparser::BinaryReader::new(
                    data,
                    section.range.start,
                ))?;
                let mut producers =
                    wasm_metadata::Producers::from_bytes(reader.data(), reader.data_offset())
                        .context("failed to read the producers section")?;
                add_processed_by(&mut producers);
                component.section(&RawSection {
                    id: 0,
                    data: &module::strip_size(producers.raw_custom_section()),
                });
                wrote_producers = true;
            }
            SectionKind::Exports { .. } | SectionKind::Other if remapping => {
                let reencoder = remap.as_mut().context("no remap")?;
                reencode_section(
                    reencoder,
                    &mut component,
                    parsed,
                    section.id,
                    &section.range,
                )?;
            }
            _ => {
                component.section(&RawSection {
                    id: section.id,
                    data,
                });
            }
        }
    }
    if !wrote_producers {
        let mut producers = wasm_metadata::Producers::empty();
        add_processed_by(&mut producers);
        component.section(&RawSection {
            id: 0,
            data: &module::strip_size(producers.raw_custom_section()),
        });
    }
    Ok(component.finish())
}

fn add_processed_by(producers: &mut wasm_metadata::Producers) {
    producers.add(
        "processed-by",
        names::PRODUCER_NAME,
        env!("CARGO_PKG_VERSION"),
    );
}

/// Re-encodes one component-level section with `reencoder`; module and
/// component sections, which have their own index spaces, are copied.
fn reencode_section(
    reencoder: &mut Remap,
    component: &mut Component,
    parsed: &Parsed<'_>,
    id: u8,
    range: &std::ops::Range<usize>,
) -> Result<()> {
    // Parse just this section as if it were the only one in a component.
    let data = &parsed.bytes[range.clone()];
    match id {
        // custom, core module, core type, component: no component function
        // indices inside
        // (ids from the component binary format)
        0 | 1 | 3 | 4 => {
            component.section(&RawSection { id, data });
            return Ok(());
        }
        _ => {}
    }
    let mut bytes = Vec::with_capacity(data.len() + 16);
    bytes.extend_from_slice(&[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
    bytes.push(id);
    leb128_u32(&mut bytes, data.len() as u32);
    bytes.extend_from_slice(data);
    let mut parser = Parser::new(0);
    let mut remaining = &bytes[..];
    loop {
        match parser.parse(remaining, true)? {
            wasmparser::Chunk::Parsed { consumed, payload } => {
                remaining = &remaining[consumed..];
                if let wasmparser::Payload::End(_) = payload {
                    break;
                }
                reencoder
                    .parse_component_payload(component, payload, &bytes)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            wasmparser::Chunk::NeedMoreData(_) => bail!("section is truncated"),
        }
    }
    Ok(())
}

fn leb128_u32(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

/// Shifts component function indices down past the removed export; uses of
/// the removed export itself go to the function it exported.
struct Remap {
    removed: u32,
    source: u32,
}

impl wasm_encoder::reencode::Reencode for Remap {
    type Error = std::convert::Infallible;
}

impl ReencodeComponent for Remap {
    fn component_func_index(&mut self, index: u32) -> u32 {
        match index.cmp(&self.removed) {
            std::cmp::Ordering::Less => index,
            std::cmp::Ordering::Equal => self.source,
            std::cmp::Ordering::Greater => index - 1,
        }
    }
}

/// Bakes `state` into a module.
fn rewrite_module(bytes: &[u8], state: &InstanceState<'_>) -> Result<Vec<u8>> {
    let mut minimums = Vec::new();
    let mut data = Vec::new();
    for &(memory, page_size_log2, memory64, contents) in &state.memories {
        minimums.push((memory, (contents.len() as u64) >> page_size_log2));
        for range in segments::nonzero_runs(contents) {
            data.push(Segment {
                memory,
                memory64,
                offset: range.start as u64,
                bytes: &contents[range],
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
        ..ModuleEdit::default()
    };
    module::edit(bytes, &edit)
}
