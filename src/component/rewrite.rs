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
use wasm_encoder::{Component, ComponentExportSection, ComponentSection, Encode};
use wasmparser::Parser;

use crate::component::parse::{self, ComponentInfo, Parsed, SectionKind};
use crate::edit::bake::{self, InstanceState, WrongKind};
use crate::edit::probe;
use crate::edit::{Edited, ModuleEdit};
use crate::plan::{Accessor, InputId, Plan, Snapshot, Value};

/// Applies `snapshot`, read according to `plan`, to `original`, the
/// component `plan` was made for. The input and the result are validated.
pub fn apply(original: &[u8], plan: &Plan, snapshot: &Snapshot) -> Result<Vec<u8>> {
    apply_to(original, plan, snapshot, true)
}

/// `apply` for an `original` that this process validated already
/// (`instrument` did): its function bodies are not validated again
/// (its structure and the output still are). For pipelines that instrument
/// and apply in one process, as `component-init` itself does.
pub fn apply_to_validated(original: &[u8], plan: &Plan, snapshot: &Snapshot) -> Result<Vec<u8>> {
    apply_to(original, plan, snapshot, false)
}

fn apply_to(
    original: &[u8],
    plan: &Plan,
    snapshot: &Snapshot,
    validate_input_code: bool,
) -> Result<Vec<u8>> {
    if InputId::of(original) != plan.input {
        bail!("the plan was made for a different component than the one given");
    }
    plan.check_snapshot(snapshot)?;
    let parsed = if validate_input_code {
        parse::parse(original)?
    } else {
        parse::parse_validated_code(original)?
    };
    rewrite(&parsed, plan, snapshot, Vec::new())
}

/// [`apply`] for the component `parsed`, which [`crate::component::instrument`]
/// made `plan` from in this process (so `plan` is for it, and it is
/// validated). The output is written into `buffer` (cleared first): a
/// buffer of the size of the output whose pages are already in memory, such
/// as the instrumented component's, saves faulting in fresh ones.
pub(crate) fn apply_parsed(
    parsed: &Parsed<'_>,
    plan: &Plan,
    snapshot: &Snapshot,
    buffer: Vec<u8>,
) -> Result<Vec<u8>> {
    plan.check_snapshot(snapshot)?;
    rewrite(parsed, plan, snapshot, buffer)
}

/// Rewrites `parsed` with `snapshot` into `out` (cleared first), and
/// validates the result.
fn rewrite(
    parsed: &Parsed<'_>,
    plan: &Plan,
    snapshot: &Snapshot,
    mut out: Vec<u8>,
) -> Result<Vec<u8>> {
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
    out.clear();
    encode(parsed, &parsed.root, &values, 0, removed, &mut out)?;
    // Every function body of the output is, byte for byte, one of the
    // input's, which was validated, and nothing a body depends on (types,
    // imports, globals' types, memories' and tables' types, the data count,
    // which only grows) changes: validating the rest suffices.
    parse::validate_without_code(&out)
        .context("internal error: the rewritten component does not validate; please report this")?;
    Ok(out)
}

/// Distinct outcomes for the instances of one definition: each with the
/// instances (by index) that ended in it, in order of first appearance.
type Variants<T> = Vec<(T, Vec<u32>)>;

fn add_variant<T: PartialEq>(variants: &mut Variants<T>, value: T, instance: u32) {
    match variants.iter_mut().find(|(v, _)| *v == value) {
        Some((_, instances)) => instances.push(instance),
        None => variants.push((value, vec![instance])),
    }
}

/// For each instantiated module (by index into `info.modules`), the
/// distinct states its instances ended in.
fn instance_states<'a>(
    parsed: &Parsed<'_>,
    info: &ComponentInfo,
    values: &[(&Accessor, &'a Value)],
) -> Result<BTreeMap<usize, Variants<InstanceState<'a>>>> {
    let mut by_instance: BTreeMap<u32, InstanceState<'a>> = BTreeMap::new();
    for &(accessor, value) in values {
        let state = by_instance.entry(accessor.instance).or_default();
        let fired = state.record(accessor.state, value).map_err(|WrongKind| {
            anyhow::anyhow!("snapshot value for `{}` has the wrong kind", accessor.func)
        })?;
        if let Some(fired) = fired {
            let module = info
                .module(accessor.module)
                .context("the plan names a module the component lacks")?;
            let name = probe::function_name(&parsed.bytes[module.range.clone()], fired.func);
            return Err(fired.during_init(
                accessor.module,
                accessor.instance,
                name.as_deref(),
                "",
                "",
            ));
        }
    }
    for instance in &info.instances {
        by_instance.entry(instance.index).or_default();
    }
    crate::component::tables::carry(parsed.bytes, info, &mut by_instance)?;
    let mut by_module: BTreeMap<usize, Variants<InstanceState<'a>>> = BTreeMap::new();
    for instance in &info.instances {
        let state = by_instance.remove(&instance.index).unwrap_or_default();
        add_variant(
            by_module.entry(instance.definition).or_default(),
            state,
            instance.index,
        );
    }
    if let Some(instance) = by_instance.keys().next() {
        bail!(
            "the plan reads core instance {instance}, which does not instantiate a module of this component"
        );
    }
    Ok(by_module)
}

/// Rewrites the component `info`, `depth` levels below the top, with the
/// snapshot `values` of the accessors whose path goes through it, appending
/// it to `sink`. Edited modules are written straight into `sink`, so each
/// snapshot byte is copied once.
fn encode<'a>(
    parsed: &Parsed<'a>,
    info: &ComponentInfo,
    values: &[(&Accessor, &'a Value)],
    depth: usize,
    removed: Option<usize>,
    sink: &mut Vec<u8>,
) -> Result<()> {
    let local: Vec<_> = values
        .iter()
        .copied()
        .filter(|(a, _)| a.path.len() == depth)
        .collect();
    let mut modules: BTreeMap<usize, Variants<Edited<'a>>> = BTreeMap::new();
    for (m, states) in instance_states(parsed, info, &local)? {
        let module = &info.modules[m];
        let bytes: &'a [u8] = &parsed.bytes[module.range.clone()];
        let mut variants = Vec::new();
        for (state, instances) in states {
            let edited = bake::bake(bytes, &state, ModuleEdit::default())
                .with_context(|| format!("failed to rewrite core module {}", module.index))?;
            variants.push((edited, instances));
        }
        modules.insert(m, variants);
    }
    let components = nested_components(parsed, info, values, depth)?;

    // A definition whose instances ended in different states is emitted once
    // per state, the copies right after the original; later indices shift.
    let mut renumber = Renumber {
        func: removed.map(|i| (info.exports[i].defines, info.exports[i].source)),
        ..Renumber::default()
    };
    for (m, variants) in &modules {
        renumber.add(true, info.modules[*m].index, variants);
    }
    for (c, variants) in &components {
        let index = info.components[*c]
            .index
            .context("internal error: a nested component with diverging instances has no index")?;
        renumber.add(false, index, variants);
    }

    // Room for the whole component: the sections copied as they are and the
    // edited modules (the original modules in `info`'s range are an
    // overestimate of what they replace).
    let edited: usize = modules
        .values()
        .flatten()
        .map(|(edited, _)| edited.len() + 5)
        .sum();
    let nested: usize = components
        .values()
        .flatten()
        .map(|(bytes, _)| bytes.len() + 5)
        .sum();
    sink.reserve(info.range.len() + edited + nested);
    sink.extend_from_slice(Component::new().as_slice());
    let mut remapping = false;
    for section in &info.sections {
        let data = &parsed.bytes[section.range.clone()];
        match section.kind {
            SectionKind::Module(m) if modules.contains_key(&m) => {
                for (edited, _) in &modules[&m] {
                    sink.push(section.id);
                    section_size(edited.len())?.encode(sink);
                    edited.write_to(sink);
                }
                remapping |= modules[&m].len() > 1;
            }
            SectionKind::Component(c) if components.contains_key(&c) => {
                for (bytes, _) in &components[&c] {
                    raw(sink, section.id, bytes)?;
                }
                remapping |= components[&c].len() > 1;
            }
            SectionKind::Component(c) if remapping => {
                if has_outer_definition_aliases(data)? {
                    bail!(
                        "nested component {} refers to modules or components of its parent, \
                         whose indices change when diverging instances get their own copies; \
                         this is not supported",
                        info.components[c]
                            .index
                            .map_or_else(|| "?".to_string(), |i| i.to_string())
                    );
                }
                raw(sink, section.id, data)?;
            }
            SectionKind::Exports { start, len }
                if let Some(removed) = removed.filter(|r| (start..start + len).contains(r)) =>
            {
                let reencoder = &mut renumber;
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
                sink.push(exports.id());
                exports.encode(sink);
                remapping = true;
            }
            SectionKind::Exports { .. } | SectionKind::Other if remapping => {
                renumber.core_instances_seen = section.core_instances_before;
                renumber.instances_seen = section.instances_before;
                reencode_section(&mut renumber, sink, parsed, section.id, &section.range)?;
            }
            // Everything else, the producers section included, as it is.
            _ => raw(sink, section.id, data)?,
        }
    }
    Ok(())
}

/// Appends a section with `id` and contents `data` to `sink`.
fn raw(sink: &mut Vec<u8>, id: u8, data: &[u8]) -> Result<()> {
    sink.push(id);
    section_size(data.len())?.encode(sink);
    sink.extend_from_slice(data);
    Ok(())
}

/// A section's size, which the binary format bounds by 4 GiB.
fn section_size(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| anyhow::anyhow!("a section of the output would exceed 4 GiB"))
}

/// The rewritten bytes of each nested component definition (by index into
/// `info.components`) that is instantiated and instantiates modules.
fn nested_components(
    parsed: &Parsed<'_>,
    info: &ComponentInfo,
    values: &[(&Accessor, &Value)],
    depth: usize,
) -> Result<BTreeMap<usize, Variants<Vec<u8>>>> {
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
    let mut out: BTreeMap<usize, Variants<Vec<u8>>> = BTreeMap::new();
    for instance in &info.component_instances {
        let child = &info.components[instance.definition];
        if !child.instantiates() {
            continue;
        }
        let sub: Vec<_> = values
            .iter()
            .copied()
            .filter(|(a, _)| a.path.len() > depth && a.path[depth] == instance.index)
            .collect();
        let mut bytes = Vec::new();
        encode(parsed, child, &sub, depth + 1, None, &mut bytes)
            .with_context(|| format!("in component instance {}", instance.index))?;
        add_variant(
            out.entry(instance.definition).or_default(),
            bytes,
            instance.index,
        );
    }
    Ok(out)
}

/// Re-encodes one component-level section with `reencoder`; module and
/// component sections, which have their own index spaces, are copied.
fn reencode_section(
    reencoder: &mut Renumber,
    sink: &mut Vec<u8>,
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
        0 | 1 | 3 | 4 => return raw(sink, id, data),
        _ => {}
    }
    let mut component = Component::new();
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
                    .parse_component_payload(&mut component, payload, &bytes)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            wasmparser::Chunk::NeedMoreData(_) => bail!("section is truncated"),
        }
    }
    let header = Component::new().as_slice().len();
    sink.extend_from_slice(&component.as_slice()[header..]);
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

/// Renumbers the sections after a change: component function indices shift
/// down past the removed init export (uses of the export itself go to the
/// function it exported); module and component indices shift up past the
/// copies inserted for diverging instances, and each instance that needs a
/// copy instantiates it.
#[derive(Default)]
struct Renumber {
    /// (index the removed export defined, function it exported)
    func: Option<(u32, u32)>,
    /// (module index, copies inserted after it)
    module_copies: Vec<(u32, u32)>,
    /// (component index, copies inserted after it)
    component_copies: Vec<(u32, u32)>,
    /// Core instance -> which copy of its module it instantiates.
    core_variant: BTreeMap<u32, u32>,
    /// Component instance -> which copy of its component it instantiates.
    variant: BTreeMap<u32, u32>,
    /// Core instances / component instances encountered so far: the index
    /// the next one gets.
    core_instances_seen: u32,
    instances_seen: u32,
    /// Copy to add to the next module / component index looked up.
    pending_module: u32,
    pending_component: u32,
}

impl Renumber {
    fn add<T>(&mut self, module: bool, index: u32, variants: &Variants<T>) {
        if variants.len() < 2 {
            return;
        }
        let copies = if module {
            &mut self.module_copies
        } else {
            &mut self.component_copies
        };
        copies.push((index, variants.len() as u32 - 1));
        let map = if module {
            &mut self.core_variant
        } else {
            &mut self.variant
        };
        for (v, (_, instances)) in variants.iter().enumerate() {
            for instance in instances {
                map.insert(*instance, v as u32);
            }
        }
    }

    fn shift(copies: &[(u32, u32)], index: u32) -> u32 {
        index
            + copies
                .iter()
                .filter(|(i, _)| *i < index)
                .map(|(_, n)| n)
                .sum::<u32>()
    }
}

impl wasm_encoder::reencode::Reencode for Renumber {
    type Error = std::convert::Infallible;
}

impl ReencodeComponent for Renumber {
    fn component_func_index(&mut self, index: u32) -> u32 {
        let Some((removed, source)) = self.func else {
            return index;
        };
        match index.cmp(&removed) {
            std::cmp::Ordering::Less => index,
            std::cmp::Ordering::Equal => source,
            std::cmp::Ordering::Greater => index - 1,
        }
    }

    fn module_index(&mut self, index: u32) -> u32 {
        Renumber::shift(&self.module_copies, index) + std::mem::take(&mut self.pending_module)
    }

    fn component_index(&mut self, index: u32) -> u32 {
        Renumber::shift(&self.component_copies, index) + std::mem::take(&mut self.pending_component)
    }

    fn parse_instance(
        &mut self,
        instances: &mut wasm_encoder::InstanceSection,
        instance: wasmparser::Instance<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        let index = self.core_instances_seen;
        self.core_instances_seen += 1;
        if let wasmparser::Instance::Instantiate { .. } = instance {
            // instances that do not diverge use the module itself (copy 0)
            self.pending_module = self.core_variant.get(&index).copied().unwrap_or(ORIGINAL);
        }
        wasm_encoder::reencode::component_utils::parse_instance(self, instances, instance)
    }

    fn parse_component_instance(
        &mut self,
        instances: &mut wasm_encoder::ComponentInstanceSection,
        instance: wasmparser::ComponentInstance<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        let index = self.instances_seen;
        self.instances_seen += 1;
        if let wasmparser::ComponentInstance::Instantiate { .. } = instance {
            self.pending_component = self.variant.get(&index).copied().unwrap_or(ORIGINAL);
        }
        wasm_encoder::reencode::component_utils::parse_component_instance(self, instances, instance)
    }
}

/// The copy of a module or component that instances of its first final
/// state (and instances that do not diverge) use: the original.
const ORIGINAL: u32 = 0;

/// Whether a nested component aliases modules or components of an
/// enclosing component (`alias outer`).
fn has_outer_definition_aliases(bytes: &[u8]) -> Result<bool> {
    for payload in Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::ComponentAliasSection(aliases) = payload? {
            for alias in aliases {
                if let wasmparser::ComponentAlias::Outer {
                    kind:
                        wasmparser::ComponentOuterAliasKind::CoreModule
                        | wasmparser::ComponentOuterAliasKind::Component,
                    ..
                } = alias?
                {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}
