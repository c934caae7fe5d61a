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
use crate::parse::{self, ComponentInfo, Parsed, SectionKind};
use crate::plan::{Accessor, GlobalValue, InputId, Plan, Snapshot, State, Value};
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
    let values: Vec<(&Accessor, &Value)> = plan.accessors.iter().zip(&snapshot.values).collect();
    let removed = if plan.remove_init_export {
        let Some(i) = parsed
            .root
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
    let out = encode(&parsed, &parsed.root, &values, 0, removed)?;
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
    info: &ComponentInfo,
    values: &[(&Accessor, &'a Value)],
) -> Result<BTreeMap<usize, InstanceState<'a>>> {
    let mut by_instance: BTreeMap<u32, InstanceState<'a>> = BTreeMap::new();
    for &(accessor, value) in values {
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
                    let module = info
                        .module(accessor.module)
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
    for instance in &info.instances {
        let state = by_instance.remove(&instance.index).unwrap_or_default();
        match by_module.get(&instance.module) {
            None => {
                by_module.insert(instance.module, (instance.index, state));
            }
            Some((first, existing)) if *existing != state => bail!(
                "core module {} is instantiated more than once (core instances {first} and {}) \
                 and the instances end init in different states; this is not supported yet",
                info.modules[instance.module].index,
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

/// Rewrites the component `info`, `depth` levels below the top, with the
/// snapshot `values` of the accessors whose path goes through it.
fn encode(
    parsed: &Parsed<'_>,
    info: &ComponentInfo,
    values: &[(&Accessor, &Value)],
    depth: usize,
    removed: Option<usize>,
) -> Result<Vec<u8>> {
    let root = depth == 0;
    let local: Vec<_> = values
        .iter()
        .copied()
        .filter(|(a, _)| a.path.len() == depth)
        .collect();
    let states = instance_states(parsed, info, &local)?;
    let components = nested_components(parsed, info, values, depth)?;
    let mut component = Component::new();
    let mut remap = removed.map(|i| Remap {
        removed: info.exports[i].defines,
        source: info.exports[i].source,
    });
    let mut remapping = false;
    let mut wrote_producers = false;
    for section in &info.sections {
        let data = &parsed.bytes[section.range.clone()];
        match section.kind {
            SectionKind::Component(c) if components.contains_key(&c) => {
                component.section(&RawSection {
                    id: section.id,
                    data: &components[&c],
                });
            }
            SectionKind::Module(m) => match states.get(&m) {
                Some(state) => {
                    let module = &info.modules[m];
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
            SectionKind::Producers if root => {
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
    if root && !wrote_producers {
        let mut producers = wasm_metadata::Producers::empty();
        add_processed_by(&mut producers);
        component.section(&RawSection {
            id: 0,
            data: &module::strip_size(producers.raw_custom_section()),
        });
    }
    Ok(component.finish())
}

/// The rewritten bytes of each nested component definition (by index into
/// `info.components`) that is instantiated and instantiates modules.
fn nested_components(
    parsed: &Parsed<'_>,
    info: &ComponentInfo,
    values: &[(&Accessor, &Value)],
    depth: usize,
) -> Result<BTreeMap<usize, Vec<u8>>> {
    if let Some((a, _)) = values.iter().find(|(a, _)| {
        a.path.len() > depth
            && !info
                .component_instances
                .iter()
                .any(|i| i.index == a.path[depth])
    }) {
        bail!(
            "the plan reads component instance {}, which does not instantiate a component of \
             this component",
            a.path[depth]
        );
    }
    let mut out: BTreeMap<usize, (u32, Vec<u8>)> = BTreeMap::new();
    for instance in &info.component_instances {
        let child = &info.components[instance.module];
        if !child.instantiates() {
            continue;
        }
        let sub: Vec<_> = values
            .iter()
            .copied()
            .filter(|(a, _)| a.path.len() > depth && a.path[depth] == instance.index)
            .collect();
        let bytes = encode(parsed, child, &sub, depth + 1, None)
            .with_context(|| format!("in component instance {}", instance.index))?;
        match out.get(&instance.module) {
            None => {
                out.insert(instance.module, (instance.index, bytes));
            }
            Some((first, existing)) if *existing != bytes => bail!(
                "nested component {} is instantiated more than once (component instances \
                 {first} and {}) and the instances end init in different states; this is not \
                 supported yet",
                child.index.unwrap_or_default(),
                instance.index
            ),
            Some(_) => {}
        }
    }
    Ok(out.into_iter().map(|(c, (_, bytes))| (c, bytes)).collect())
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
