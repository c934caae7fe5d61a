//! Carrying a snapshot over to another component: staged pre-initialization.
//!
//! Init may run in one variant of a component (stage 1; for example one whose
//! WASI imports are replaced by stubs) while the snapshot is meant for another
//! (stage 2; the real thing). [`Plan::retarget`] turns the plan and snapshot
//! of stage 1 into a plan and snapshot for stage 2, which
//! [`Plan::apply`](crate::Plan::apply) then bakes into stage 2 as usual.
//!
//! Top-level core modules correspond through a function from each stage 2
//! module index to the stage 1 module index whose state it takes (indices in
//! the core module index space of the top-level component; for a component
//! that defines every module it has, as wit-component's do, the `n`-th module
//! section is module `n`). Inside nested components, modules and component
//! instances correspond one to one, by index.
//!
//! Every instantiated stage 2 module that defines state (memories, mutable
//! globals) must map to a stage 1 module whose instances were snapshotted
//! with exactly that state (same memory and global indices and types), and
//! must be instantiated as often as that module, or the stage 1 module only
//! once (its state then goes to every instance). Stage 2 modules without
//! state are left to the rewrite as they are (their start functions are
//! dropped: they ran in stage 1). The state of stage 1 instances that no
//! stage 2 module maps to is dropped, unless a probe says that init ran an
//! instruction whose effect cannot be snapshotted: that is an error, as it
//! would be without stages.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

use crate::component::parse::{self, ComponentInfo, ModuleInfo};
use crate::edit::probe::{Fired, Probe};
use crate::plan::{Accessor, GlobalValue, InputId, Plan, ScalarType, Snapshot, State, Value};

/// A plan and snapshot made for stage 2 by [`Plan::retarget`].
#[derive(Clone, Debug, PartialEq)]
pub struct Retargeted {
    /// The plan, made for the stage 2 component.
    pub plan: Plan,
    /// The snapshot, one value per accessor of `plan`.
    pub snapshot: Snapshot,
}

/// One piece of state, as stage 1's accessors and stage 2's module describe
/// it: what must agree between the stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Memory {
        index: u32,
        memory64: bool,
        page_size_log2: u32,
    },
    Global {
        index: u32,
        ty: ScalarType,
    },
}

impl Slot {
    /// Memories first, then globals, each by index (unique within a kind).
    fn key(&self) -> (u8, u32) {
        match *self {
            Slot::Memory { index, .. } => (0, index),
            Slot::Global { index, .. } => (1, index),
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Slot::Memory {
                index,
                memory64,
                page_size_log2,
            } => {
                write!(f, "memory {index}")?;
                if memory64 {
                    f.write_str(" (64-bit)")?;
                }
                if page_size_log2 != 16 {
                    write!(f, " (pages of {} bytes)", 1u64 << page_size_log2)?;
                }
                Ok(())
            }
            Slot::Global { index, ty } => write!(f, "global {index} ({})", ty.wit()),
        }
    }
}

fn describe(slots: &[Slot]) -> String {
    if slots.is_empty() {
        return "no state".to_string();
    }
    slots
        .iter()
        .map(Slot::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Plan {
    /// Makes a plan and snapshot for `stage2` out of this plan and
    /// `snapshot`, read from the stage 1 component the plan was made for.
    /// `map` gives, for each top-level core module index of stage 2, the
    /// index of the stage 1 module whose state it takes.
    ///
    /// Top-level core module indices count the core module index space of
    /// the top-level component (for a component that defines every module
    /// it has, as wit-component's do, the `n`-th module section is module
    /// `n`). Inside nested components, modules and component instances
    /// correspond one to one, by index.
    ///
    /// Every instantiated stage 2 module that defines state (memories,
    /// mutable globals) must map to a stage 1 module whose instances were
    /// snapshotted with exactly that state (same memory and global indices
    /// and types), and must be instantiated as often as that module, or the
    /// stage 1 module only once (its state then goes to every instance).
    /// Stage 2 modules without state are left as they are (their start
    /// functions are dropped: they ran in stage 1). The state of stage 1
    /// instances that no stage 2 module maps to is dropped, unless a probe
    /// says that init ran an instruction whose effect cannot be
    /// snapshotted: that is an error, as it would be without stages.
    pub fn retarget(
        &self,
        snapshot: &Snapshot,
        stage2: &[u8],
        map: &dyn Fn(u32) -> u32,
    ) -> Result<Retargeted> {
        self.check_snapshot(snapshot)?;
        check_unsnapshottable(self, snapshot)?;
        let parsed = parse::parse(stage2).context("failed to read the stage 2 component")?;
        let mut out = Retargeted {
            plan: Plan {
                format: self.format,
                input: InputId::of(stage2),
                init: self.init.clone(),
                remove_init_export: self.remove_init_export,
                interface: self.interface.clone(),
                accessors: Vec::new(),
            },
            snapshot: Snapshot::default(),
        };
        let mut retargeter = Retargeter {
            plan: self,
            snapshot,
            out: &mut out,
        };
        retargeter.retarget(&parsed.root, &[], map)?;
        out.plan.check_snapshot(&out.snapshot)?;
        Ok(out)
    }
}

/// Fails when init ran an instruction whose effect a snapshot cannot carry,
/// in any stage 1 instance (whether or not stage 2 takes its state).
fn check_unsnapshottable(plan: &Plan, snapshot: &Snapshot) -> Result<()> {
    for (accessor, value) in plan.accessors.iter().zip(&snapshot.values) {
        if let (
            State::Probe {
                probe: Probe::TablesChanged,
                ..
            },
            Value::Global(GlobalValue::I32(v)),
        ) = (accessor.state, value)
            && let Some(fired) = Fired::decode(*v)
        {
            bail!(
                "`{}` ran during init, in function {} of core module {} (core instance {}{}) \
                 of stage 1; staged pre-initialization does not carry tables to stage 2, so \
                 init must not change them (pre-initialize the component itself to carry \
                 them)",
                fired.op,
                fired.func,
                accessor.module,
                accessor.instance,
                in_path(&accessor.path)
            );
        }
        if let (
            State::Probe {
                probe: Probe::Unsnapshottable,
                ..
            },
            Value::Global(GlobalValue::I32(v)),
        ) = (accessor.state, value)
            && let Some(fired) = Fired::decode(*v)
        {
            return Err(fired.during_init(
                accessor.module,
                accessor.instance,
                None,
                &in_path(&accessor.path),
                " of stage 1",
            ));
        }
    }
    Ok(())
}

fn in_path(path: &[u32]) -> String {
    match path {
        [] => String::new(),
        _ => format!(
            ", in component instance {}",
            path.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    }
}

struct Retargeter<'a> {
    plan: &'a Plan,
    snapshot: &'a Snapshot,
    out: &'a mut Retargeted,
}

impl Retargeter<'_> {
    /// Retargets the state of the stage 2 component `info`, reached through
    /// the component instances `path`; `map` maps its module indices.
    fn retarget(
        &mut self,
        info: &ComponentInfo,
        path: &[u32],
        map: &dyn Fn(u32) -> u32,
    ) -> Result<()> {
        // Stage 1 accessors at this path: module -> instance -> accessors.
        let mut stage1: BTreeMap<u32, BTreeMap<u32, Vec<usize>>> = BTreeMap::new();
        for (i, accessor) in self.plan.accessors.iter().enumerate() {
            if accessor.path == path {
                stage1
                    .entry(accessor.module)
                    .or_default()
                    .entry(accessor.instance)
                    .or_default()
                    .push(i);
            }
        }
        for (m, module) in info.modules.iter().enumerate() {
            let instances: Vec<u32> = info
                .instances
                .iter()
                .filter(|i| i.definition == m)
                .map(|i| i.index)
                .collect();
            let layout = module_layout(module)?;
            if instances.is_empty() || layout.is_empty() {
                continue;
            }
            let source = map(module.index);
            let here = format!("core module {} of stage 2{}", module.index, in_path(path));
            let sources: Vec<&Vec<usize>> = stage1
                .get(&source)
                .map(|instances| instances.values().collect())
                .unwrap_or_default();
            if sources.is_empty() {
                bail!(
                    "{here} defines {}, but stage 1 module {source}, which it maps to, has no \
                     state in the snapshot (is the module map right?)",
                    describe(&layout)
                );
            }
            for accessors in &sources {
                let found = self.layout(accessors);
                if found != layout {
                    bail!(
                        "{here} defines {}, but stage 1 module {source}, which it maps to, \
                         defines {} (is the module map right?)",
                        describe(&layout),
                        describe(&found)
                    );
                }
            }
            let pairs: Vec<(u32, &Vec<usize>)> = if sources.len() == instances.len() {
                instances
                    .iter()
                    .copied()
                    .zip(sources.iter().copied())
                    .collect()
            } else if sources.len() == 1 {
                instances.iter().map(|i| (*i, sources[0])).collect()
            } else {
                bail!(
                    "{here} is instantiated {} times, but stage 1 module {source}, which it \
                     maps to, {} times",
                    instances.len(),
                    sources.len()
                );
            };
            for (instance, accessors) in pairs {
                for &a in accessors {
                    let mut accessor: Accessor = self.plan.accessors[a].clone();
                    let value = &self.snapshot.values[a];
                    check_maximum(module, &accessor, value, &here)?;
                    accessor.instance = instance;
                    accessor.module = module.index;
                    self.out.plan.accessors.push(accessor);
                    self.out.snapshot.values.push(value.clone());
                }
            }
        }
        for instance in &info.component_instances {
            let mut inner = path.to_vec();
            inner.push(instance.index);
            self.retarget(&info.components[instance.definition], &inner, &|m| m)?;
        }
        Ok(())
    }

    /// The state that stage 1 accessors read, in order.
    fn layout(&self, accessors: &[usize]) -> Vec<Slot> {
        let mut slots: Vec<Slot> = accessors
            .iter()
            .filter_map(|&a| match self.plan.accessors[a].state {
                State::Memory {
                    index,
                    memory64,
                    page_size_log2,
                } => Some(Slot::Memory {
                    index,
                    memory64,
                    page_size_log2,
                }),
                State::Global { index, ty } => Some(Slot::Global { index, ty }),
                State::Probe { .. } | State::Table { .. } | State::RefGlobal { .. } => None,
            })
            .collect();
        slots.sort_by_key(Slot::key);
        slots
    }
}

/// The state a stage 2 module defines, in order.
fn module_layout(module: &ModuleInfo) -> Result<Vec<Slot>> {
    let mut slots = Vec::new();
    for memory in &module.memories {
        slots.push(Slot::Memory {
            index: memory.index,
            memory64: memory.ty.memory64,
            page_size_log2: memory.ty.page_size_log2.unwrap_or(16),
        });
    }
    for global in &module.globals {
        let Some(ty) = ScalarType::of(global.ty) else {
            bail!(
                "mutable global {} of core module {} of stage 2 is reference-typed; it cannot \
                 take a snapshot value",
                global.index,
                module.index
            );
        };
        slots.push(Slot::Global {
            index: global.index,
            ty,
        });
    }
    slots.sort_by_key(Slot::key);
    Ok(slots)
}

/// Fails when a memory snapshot does not fit the stage 2 memory's maximum.
fn check_maximum(
    module: &ModuleInfo,
    accessor: &Accessor,
    value: &Value,
    here: &str,
) -> Result<()> {
    let (
        State::Memory {
            index,
            page_size_log2,
            ..
        },
        Value::Memory(image),
    ) = (accessor.state, value)
    else {
        return Ok(());
    };
    let pages = image.len() >> page_size_log2;
    let maximum = module
        .memories
        .iter()
        .find(|m| m.index == index)
        .and_then(|m| m.ty.maximum);
    if let Some(maximum) = maximum
        && pages > maximum
    {
        bail!(
            "memory {index} of {here} may hold at most {maximum} pages, but the snapshot \
             taken in stage 1 has {pages}"
        );
    }
    Ok(())
}
