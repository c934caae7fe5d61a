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
//! dropped: they ran in stage 1), but their instances pair with those of the
//! stage 1 module they map to in the same way, when the counts allow, and
//! take their probes (dropped segments, changed tables). The state of stage 1
//! instances that no stage 2 module maps to is dropped, unless a probe says
//! that init ran an instruction whose effect cannot be snapshotted: that is
//! an error, as it would be without stages.
//!
//! # Tables
//!
//! At a component level where init changed a table or a reference-typed
//! global in stage 1 (a [`Probe::TablesChanged`] probe fired there), the
//! level's tables and mutable reference-typed globals are state too: a stage
//! 2 module of that level that defines one must map to a stage 1 module that
//! defines the same ones (same indices and reference types), and its
//! instances take their slots, read as [`RefId`]s, and their probes, so that
//! the rewrite of stage 2 bakes the level's tables as it would stage 1's. A
//! slot names a function by the core instance whose module has it; carried
//! over, that stage 1 instance becomes the stage 2 instance paired with it
//! (a table's own instance becomes the instance that takes the table), and
//! the function must exist in that instance's module with the type it had in
//! stage 1 (stage 2's module may differ from stage 1's, as a real import
//! differs from its stub). Refused, each with a one-line error: a slot
//! naming a stage 1 instance that no stage 2 instance takes, or that several
//! take (the slot and the function named); a function missing from stage 2
//! or of another type there (both named); a stage 1 instance of a changed
//! level that no stage 2 instance takes while its table or global holds
//! something (it would be lost); a changed level where no stage 2 instance
//! takes an instance whose probe fired (stage 2 would start with its tables
//! as declared). Levels where init changed no table keep stage 2's tables as
//! they are.
//!
//! Pairing instances that have no state, and reading function types, needs
//! stage 1 itself: [`Plan::retarget_from`] takes it, and [`Plan::retarget`],
//! which does not, refuses a snapshot in which init changed a table.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

use crate::component::parse::{self, ComponentInfo, ModuleInfo};
use crate::edit::identify::FuncFacts;
use crate::edit::probe::{Fired, Probe};
use crate::plan::image::MemoryImage;
use crate::plan::{
    Accessor, GlobalValue, InputId, Plan, RefId, ScalarType, Snapshot, State, Value,
};

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
    /// A table (only at a level where init changed tables).
    Table {
        index: u32,
        element: wasmparser::RefType,
    },
    /// A mutable reference-typed global (only at a level where init
    /// changed tables).
    RefGlobal {
        index: u32,
        ty: wasmparser::RefType,
    },
}

impl Slot {
    /// Memories first, then globals, tables and reference-typed globals,
    /// each by index (unique within a kind).
    fn key(&self) -> (u8, u32) {
        match *self {
            Slot::Memory { index, .. } => (0, index),
            Slot::Global { index, .. } => (1, index),
            Slot::Table { index, .. } => (2, index),
            Slot::RefGlobal { index, .. } => (3, index),
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
            Slot::Table { index, element } => write!(f, "table {index} ({element})"),
            Slot::RefGlobal { index, ty } => write!(f, "global {index} ({ty})"),
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
    /// functions are dropped: they ran in stage 1), but take the probes
    /// (dropped segments) of the stage 1 instances they pair with, as
    /// modules with state do, when the instance counts allow. The state of
    /// stage 1 instances that no stage 2 module maps to is dropped, unless
    /// a probe says that init ran an instruction whose effect cannot be
    /// snapshotted: that is an error, as it would be without stages.
    ///
    /// When init changed a table or a reference-typed global, carrying them
    /// needs stage 1 itself: this is an error that says so, and
    /// [`Plan::retarget_from`] carries them.
    pub fn retarget(
        &self,
        snapshot: &Snapshot,
        stage2: &[u8],
        map: &dyn Fn(u32) -> u32,
    ) -> Result<Retargeted> {
        self.retarget_stages(None, snapshot, stage2, map)
    }

    /// [`Plan::retarget`] given `stage1`, the component this plan was made
    /// for, which carries tables and reference-typed globals too. Without a
    /// table change, the same as [`Plan::retarget`].
    ///
    /// At each component level where init changed a table or a
    /// reference-typed global, the level's tables and mutable
    /// reference-typed globals are state like memories: a stage 2 module
    /// that defines one must map to a stage 1 module that defines the same
    /// ones (indices and reference types), and takes their slots and its
    /// probes. A slot names a function by its core instance ([`RefId`]);
    /// in stage 2 it names the instance paired with that one: the instances
    /// of every stage 2 module (with state or without) pair in order with
    /// those of the stage 1 module it maps to, or all with the only one, and
    /// a table's own instance is the one that takes the table. The function
    /// must exist in that instance's module with the type it had in stage 1.
    ///
    /// Refused with a one-line error: a slot naming a stage 1 instance that
    /// no stage 2 instance takes, or that several take; a function missing
    /// from stage 2 or of another type there; a stage 1 instance of such a
    /// level that no stage 2 instance takes while its table or global holds
    /// something (it would be lost); such a level where stage 2 takes none
    /// of the instances whose probe saw the change (stage 2 would start with
    /// its tables as declared).
    pub fn retarget_from(
        &self,
        stage1: &[u8],
        snapshot: &Snapshot,
        stage2: &[u8],
        map: &dyn Fn(u32) -> u32,
    ) -> Result<Retargeted> {
        if InputId::of(stage1) != self.input {
            bail!("the plan was made for a different component than the stage 1 given");
        }
        self.retarget_stages(Some(stage1), snapshot, stage2, map)
    }

    fn retarget_stages(
        &self,
        stage1: Option<&[u8]>,
        snapshot: &Snapshot,
        stage2: &[u8],
        map: &dyn Fn(u32) -> u32,
    ) -> Result<Retargeted> {
        self.check_snapshot(snapshot)?;
        check_unsnapshottable(self, snapshot)?;
        let changed = changed_levels(self, snapshot);
        for (path, &(a, fired)) in &changed {
            let read = self
                .accessors
                .iter()
                .any(|accessor| accessor.path == *path && is_table(accessor.state));
            if !read {
                // the level's tables were not read (they hold typed
                // references): the rewrite of stage 1 would refuse too
                let accessor = &self.accessors[a];
                return Err(fired.during_init(
                    accessor.module,
                    accessor.instance,
                    None,
                    &in_path(path),
                    " of stage 1, in a component level with a table or global of typed \
                     references, whose tables component-init does not read",
                ));
            }
        }
        // Stage 1 is read only when some level's tables go to stage 2.
        let stage1 = match (changed.values().next(), stage1) {
            (None, _) => None,
            (Some(_), Some(bytes)) => Some(
                parse::parse_validated_code(bytes)
                    .context("failed to read the stage 1 component")?,
            ),
            (Some(&(a, fired)), None) => {
                let accessor = &self.accessors[a];
                bail!(
                    "`{}` ran during init, in function {} of core module {} (core instance \
                     {}{}) of stage 1, so the tables of its level go to stage 2; carrying them \
                     needs stage 1 itself (to pair instances without state and compare function \
                     types): use `Plan::retarget_from`",
                    fired.op,
                    fired.func,
                    accessor.module,
                    accessor.instance,
                    in_path(&accessor.path)
                );
            }
        };
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
            stage1: stage1.as_ref().map(|p| p.bytes),
            stage2,
            changed: &changed,
            carried: vec![false; self.accessors.len()],
            out: &mut out,
        };
        retargeter.retarget(&parsed.root, stage1.as_ref().map(|p| &p.root), &[], map)?;
        retargeter.check_nothing_lost()?;
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

/// The component levels (by path) where init changed a table or a
/// reference-typed global: the first [`Probe::TablesChanged`] accessor that
/// fired there, and what it recorded.
fn changed_levels(plan: &Plan, snapshot: &Snapshot) -> BTreeMap<Vec<u32>, (usize, Fired)> {
    let mut levels = BTreeMap::new();
    for (a, (accessor, value)) in plan.accessors.iter().zip(&snapshot.values).enumerate() {
        if let Some(fired) = tables_changed(accessor, value) {
            levels.entry(accessor.path.clone()).or_insert((a, fired));
        }
    }
    levels
}

/// What a [`Probe::TablesChanged`] accessor recorded, when it fired.
fn tables_changed(accessor: &Accessor, value: &Value) -> Option<Fired> {
    match (accessor.state, value) {
        (
            State::Probe {
                probe: Probe::TablesChanged,
                ..
            },
            Value::Global(GlobalValue::I32(v)),
        ) => Fired::decode(*v),
        _ => None,
    }
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

/// Whether `state` is read by the table reader (a table or a
/// reference-typed global).
fn is_table(state: State) -> bool {
    matches!(state, State::Table { .. } | State::RefGlobal { .. })
}

/// Pairs the instances of a stage 2 module with those of the stage 1 module
/// it maps to: in order when there are as many, all with the one when stage
/// 1 has one; `None` otherwise.
fn pair(stage2: &[u32], stage1: &[u32]) -> Option<Vec<(u32, u32)>> {
    if stage1.len() == stage2.len() {
        Some(stage2.iter().copied().zip(stage1.iter().copied()).collect())
    } else if let [one] = stage1 {
        Some(stage2.iter().map(|&i| (i, *one)).collect())
    } else {
        None
    }
}

struct Retargeter<'a> {
    plan: &'a Plan,
    snapshot: &'a Snapshot,
    /// Stage 1's bytes, when some level's tables go to stage 2.
    stage1: Option<&'a [u8]>,
    stage2: &'a [u8],
    /// The levels where init changed tables ([`changed_levels`]).
    changed: &'a BTreeMap<Vec<u32>, (usize, Fired)>,
    /// For each stage 1 accessor, whether some stage 2 instance took it.
    carried: Vec<bool>,
    out: &'a mut Retargeted,
}

/// What the walk gathers at one component level.
struct Level<'a> {
    /// The component instances, from the top level down, that lead to it.
    path: &'a [u32],
    /// Stage 1 accessors at this path: module -> instance -> accessors.
    stage1: BTreeMap<u32, BTreeMap<u32, Vec<usize>>>,
    /// Both stages' facts, when init changed tables here.
    changed: Option<ChangedLevel<'a>>,
    /// Stage 1 instance -> the stage 2 instances that take its place.
    partners: BTreeMap<u32, Vec<u32>>,
    /// Tables carried: (index in the output, index in the plan).
    tables: Vec<(usize, usize)>,
}

impl Retargeter<'_> {
    /// Retargets the state of the stage 2 component `info`, reached through
    /// the component instances `path`, from `info1`, stage 1's component at
    /// the same path (when stage 1 was read); `map` maps its module indices.
    fn retarget(
        &mut self,
        info: &ComponentInfo,
        info1: Option<&ComponentInfo>,
        path: &[u32],
        map: &dyn Fn(u32) -> u32,
    ) -> Result<()> {
        let changed = match (self.changed.contains_key(path), info1, self.stage1) {
            (false, _, _) => None,
            (true, Some(info1), Some(bytes1)) => {
                Some(ChangedLevel::of(info1, bytes1, info, self.stage2)?)
            }
            (true, _, _) => bail!(
                "internal error: init changed tables at a level{} that stage 1 does not have",
                in_path(path)
            ),
        };
        let mut level = Level {
            path,
            stage1: BTreeMap::new(),
            changed,
            partners: BTreeMap::new(),
            tables: Vec::new(),
        };
        for (i, accessor) in self.plan.accessors.iter().enumerate() {
            if accessor.path == path {
                level
                    .stage1
                    .entry(accessor.module)
                    .or_default()
                    .entry(accessor.instance)
                    .or_default()
                    .push(i);
            }
        }
        for (m, module) in info.modules.iter().enumerate() {
            self.retarget_module(&mut level, info, m, map(module.index))?;
        }
        for &(o, a) in &level.tables {
            self.rename_slots(o, a, &level)?;
        }
        for instance in &info.component_instances {
            let mut inner = path.to_vec();
            inner.push(instance.index);
            let inner1 = info1.and_then(|info1| {
                let i = info1
                    .component_instances
                    .iter()
                    .find(|i| i.index == instance.index)?;
                info1.components.get(i.definition)
            });
            self.retarget(
                &info.components[instance.definition],
                inner1,
                &inner,
                &|m| m,
            )?;
        }
        Ok(())
    }

    /// Retargets the state of the instances of module `m` (by index into
    /// `info.modules`) of the stage 2 component `info`, from those of stage
    /// 1 module `source`.
    fn retarget_module(
        &mut self,
        level: &mut Level<'_>,
        info: &ComponentInfo,
        m: usize,
        source: u32,
    ) -> Result<()> {
        let module = &info.modules[m];
        let instances: Vec<u32> = info
            .instances
            .iter()
            .filter(|i| i.definition == m)
            .map(|i| i.index)
            .collect();
        if instances.is_empty() {
            return Ok(());
        }
        let mut layout = module_layout(module)?;
        if let Some(changed) = &level.changed {
            layout.extend(changed.stage2_tables(m));
            layout.sort_by_key(Slot::key);
        }
        let here = format!(
            "core module {} of stage 2{}",
            module.index,
            in_path(level.path)
        );
        let sources: Vec<(u32, Vec<usize>)> = level
            .stage1
            .get(&source)
            .map(|instances| instances.iter().map(|(i, a)| (*i, a.clone())).collect())
            .unwrap_or_default();
        if layout.is_empty() {
            // No state: its instances pair with stage 1's for the slots that
            // name them, and take their probes.
            let candidates = match &level.changed {
                Some(changed) => changed.stage1_instances(source),
                None => sources.iter().map(|(i, _)| *i).collect(),
            };
            for (instance, i1) in pair(&instances, &candidates).unwrap_or_default() {
                level.partners.entry(i1).or_default().push(instance);
                let probes = sources.iter().filter(|(i, _)| *i == i1);
                for &a in probes.flat_map(|(_, accessors)| accessors) {
                    if matches!(self.plan.accessors[a].state, State::Probe { .. }) {
                        self.carry(a, instance, module.index);
                    }
                }
            }
            return Ok(());
        }
        if sources.is_empty() {
            bail!(
                "{here} defines {}, but stage 1 module {source}, which it maps to, has no \
                 state in the snapshot (is the module map right?)",
                describe(&layout)
            );
        }
        for (_, accessors) in &sources {
            let found = self.layout(accessors, level.changed.as_ref(), source)?;
            if found != layout {
                bail!(
                    "{here} defines {}, but stage 1 module {source}, which it maps to, defines \
                     {} (is the module map right?)",
                    describe(&layout),
                    describe(&found)
                );
            }
        }
        let from: Vec<u32> = sources.iter().map(|(i, _)| *i).collect();
        let Some(pairs) = pair(&instances, &from) else {
            bail!(
                "{here} is instantiated {} times, but stage 1 module {source}, which it maps \
                 to, {} times",
                instances.len(),
                sources.len()
            );
        };
        for (instance, i1) in pairs {
            level.partners.entry(i1).or_default().push(instance);
            let Some((_, accessors)) = sources.iter().find(|(i, _)| *i == i1) else {
                continue;
            };
            for &a in accessors {
                let (accessor, value) = (&self.plan.accessors[a], &self.snapshot.values[a]);
                if is_table(accessor.state) {
                    let Some(changed) = &level.changed else {
                        // init changed no table here: stage 2 keeps its own
                        continue;
                    };
                    changed.check_table_maximum(m, accessor, value, &here)?;
                    level.tables.push((self.out.plan.accessors.len(), a));
                }
                check_maximum(module, accessor, value, &here)?;
                self.carry(a, instance, module.index);
            }
        }
        Ok(())
    }

    /// Gives stage 1 accessor `a` to core instance `instance` of module
    /// `module` of stage 2.
    fn carry(&mut self, a: usize, instance: u32, module: u32) {
        let mut accessor: Accessor = self.plan.accessors[a].clone();
        accessor.instance = instance;
        accessor.module = module;
        self.out.plan.accessors.push(accessor);
        self.out
            .snapshot
            .values
            .push(self.snapshot.values[a].clone());
        self.carried[a] = true;
    }

    /// The state that stage 1 accessors of module `source` read, in order;
    /// tables and reference-typed globals at a `level` where init changed
    /// them.
    fn layout(
        &self,
        accessors: &[usize],
        level: Option<&ChangedLevel<'_>>,
        source: u32,
    ) -> Result<Vec<Slot>> {
        let mut slots = Vec::new();
        for &a in accessors {
            let state = self.plan.accessors[a].state;
            slots.push(match (state, level) {
                (
                    State::Memory {
                        index,
                        memory64,
                        page_size_log2,
                    },
                    _,
                ) => Slot::Memory {
                    index,
                    memory64,
                    page_size_log2,
                },
                (State::Global { index, ty }, _) => Slot::Global { index, ty },
                (State::Table { .. } | State::RefGlobal { .. }, Some(level)) => {
                    level.stage1_table(source, state)?
                }
                (State::Probe { .. } | State::Table { .. } | State::RefGlobal { .. }, _) => {
                    continue;
                }
            });
        }
        slots.sort_by_key(Slot::key);
        Ok(slots)
    }

    /// Renames the functions in the slots of output value `o`, a table or
    /// reference-typed global carried from stage 1 accessor `a`, from stage
    /// 1 core instances to the stage 2 ones that take their place.
    fn rename_slots(&mut self, o: usize, a: usize, level: &Level<'_>) -> Result<()> {
        let changed = level
            .changed
            .as_ref()
            .context("internal error: a slot rename where no table changed")?;
        let (owner1, module1) = (
            self.plan.accessors[a].instance,
            self.plan.accessors[a].module,
        );
        let owner2 = self.out.plan.accessors[o].instance;
        let what = match self.plan.accessors[a].state {
            State::Table { index } => format!("table {index}"),
            State::RefGlobal { index } => format!("global {index}"),
            _ => bail!("internal error: a slot rename of state that is not a table"),
        };
        let Value::Memory(image) = &self.out.snapshot.values[o] else {
            bail!("internal error: the snapshot of {what} is not a table image");
        };
        let held = RefId::non_null(image);
        if held.is_empty() {
            return Ok(());
        }
        let slots = image.len() / 8;
        let mut renamed = MemoryImage::new();
        let mut next = 0;
        for (slot, bits) in held {
            let id = match RefId::decode(bits) {
                RefId::Func { instance: i1, func } => {
                    let place = || {
                        let slot = match self.plan.accessors[a].state {
                            State::Table { .. } => format!("slot {slot} of "),
                            _ => String::new(),
                        };
                        format!(
                            "{slot}{what} of core instance {owner1} (core module {module1}) of \
                             stage 1{} holds function {func} of core instance {i1}{}",
                            in_path(level.path),
                            changed
                                .stage1_module(i1)
                                .map_or_else(String::new, |(m, _)| format!(" (core module {m})"))
                        )
                    };
                    let i2 = if i1 == owner1 {
                        owner2
                    } else {
                        match level.partners.get(&i1).map(Vec::as_slice) {
                            Some([one]) => *one,
                            None | Some([]) => bail!(
                                "{}, which no stage 2 instance takes: the output could not \
                                 name it (is the module map right?)",
                                place()
                            ),
                            Some(many) => bail!(
                                "{}, whose state {} stage 2 instances take (core instances \
                                 {}): the slot cannot name one of them",
                                place(),
                                many.len(),
                                many.iter()
                                    .map(u32::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        }
                    };
                    changed.check_function(i1, i2, func, &place)?;
                    RefId::Func { instance: i2, func }
                }
                other => other,
            };
            renamed.push_zeros((slot - next) * 8);
            renamed.push(&id.encode().to_le_bytes());
            next = slot + 1;
        }
        renamed.push_zeros((slots - next) * 8);
        self.out.snapshot.values[o] = Value::Memory(renamed);
        Ok(())
    }

    /// Fails when, at a level where init changed tables, stage 2 takes no
    /// instance whose table or global holds something after init (it would
    /// be lost), or no instance whose probe fired (stage 2 would not bake
    /// the level's tables).
    fn check_nothing_lost(&self) -> Result<()> {
        for (path, &(first, fired)) in self.changed {
            let here = self
                .plan
                .accessors
                .iter()
                .zip(&self.snapshot.values)
                .enumerate()
                .filter(|(_, (accessor, _))| accessor.path == *path);
            let mut probe_carried = false;
            for (a, (accessor, value)) in here {
                probe_carried |= self.carried[a] && tables_changed(accessor, value).is_some();
                let (false, true, Value::Memory(image)) =
                    (self.carried[a], is_table(accessor.state), value)
                else {
                    continue;
                };
                let held = RefId::non_null(image).len();
                if held > 0 {
                    let what = match accessor.state {
                        State::Table { index } => format!("table {index}"),
                        State::RefGlobal { index } => format!("reference-typed global {index}"),
                        _ => continue,
                    };
                    bail!(
                        "{what} of core instance {} (core module {}) of stage 1{} holds {held} \
                         non-null slot{} after an init that changed tables, but no stage 2 \
                         instance takes that instance's state: stage 2 would lose {} (map a \
                         stage 2 module to stage 1 module {})",
                        accessor.instance,
                        accessor.module,
                        in_path(path),
                        if held == 1 { "" } else { "s" },
                        if held == 1 { "it" } else { "them" },
                        accessor.module
                    );
                }
            }
            if !probe_carried {
                let accessor = &self.plan.accessors[first];
                bail!(
                    "`{}` ran during init, in function {} of core module {} (core instance \
                     {}{}) of stage 1, which no stage 2 instance takes: stage 2 would start \
                     with the tables of that level as declared, not as init left them (map a \
                     stage 2 module to stage 1 module {})",
                    fired.op,
                    fired.func,
                    accessor.module,
                    accessor.instance,
                    in_path(path),
                    accessor.module
                );
            }
        }
        Ok(())
    }
}

/// Both stages at a component level where init changed tables: the
/// function and table facts of each instantiated module.
struct ChangedLevel<'a> {
    info1: &'a ComponentInfo,
    info2: &'a ComponentInfo,
    /// By index into `info1.modules`.
    facts1: BTreeMap<usize, FuncFacts>,
    /// By index into `info2.modules`.
    facts2: BTreeMap<usize, FuncFacts>,
}

impl<'a> ChangedLevel<'a> {
    fn of(
        info1: &'a ComponentInfo,
        bytes1: &[u8],
        info2: &'a ComponentInfo,
        bytes2: &[u8],
    ) -> Result<ChangedLevel<'a>> {
        let facts = |info: &ComponentInfo, bytes: &[u8], stage: u32| {
            let mut facts = BTreeMap::new();
            for instance in &info.instances {
                if facts.contains_key(&instance.definition) {
                    continue;
                }
                let module = &info.modules[instance.definition];
                let read = FuncFacts::of(&bytes[module.range.clone()]).with_context(|| {
                    format!(
                        "failed to read core module {} of stage {stage}",
                        module.index
                    )
                })?;
                facts.insert(instance.definition, read);
            }
            anyhow::Ok(facts)
        };
        Ok(ChangedLevel {
            info1,
            info2,
            facts1: facts(info1, bytes1, 1)?,
            facts2: facts(info2, bytes2, 2)?,
        })
    }

    /// The core instances of stage 1 module `module` (by index), in order.
    fn stage1_instances(&self, module: u32) -> Vec<u32> {
        self.info1
            .instances
            .iter()
            .filter(|i| self.info1.modules[i.definition].index == module)
            .map(|i| i.index)
            .collect()
    }

    /// The module (index and facts) that stage 1 core instance `instance`
    /// instantiates.
    fn stage1_module(&self, instance: u32) -> Option<(u32, &FuncFacts)> {
        let i = self.info1.instances.iter().find(|i| i.index == instance)?;
        Some((
            self.info1.modules[i.definition].index,
            self.facts1.get(&i.definition)?,
        ))
    }

    /// The module (index and facts) that stage 2 core instance `instance`
    /// instantiates.
    fn stage2_module(&self, instance: u32) -> Option<(u32, &FuncFacts)> {
        let i = self.info2.instances.iter().find(|i| i.index == instance)?;
        Some((
            self.info2.modules[i.definition].index,
            self.facts2.get(&i.definition)?,
        ))
    }

    /// The tables and mutable reference-typed globals that stage 2 module
    /// `m` (by index into `info2.modules`) defines.
    fn stage2_tables(&self, m: usize) -> Vec<Slot> {
        let Some(facts) = self.facts2.get(&m) else {
            return Vec::new();
        };
        let tables = facts.tables.iter().map(|&(index, ty)| Slot::Table {
            index,
            element: ty.element_type,
        });
        let globals = facts
            .ref_globals
            .iter()
            .map(|&(index, ty)| Slot::RefGlobal { index, ty });
        tables.chain(globals).collect()
    }

    /// The table or reference-typed global `state` of stage 1 module
    /// `module` (by index), with its type.
    fn stage1_table(&self, module: u32, state: State) -> Result<Slot> {
        let facts = self
            .info1
            .instances
            .iter()
            .find(|i| self.info1.modules[i.definition].index == module)
            .and_then(|i| self.facts1.get(&i.definition));
        let slot = facts.and_then(|facts| match state {
            State::Table { index } => {
                facts
                    .tables
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|&(index, ty)| Slot::Table {
                        index,
                        element: ty.element_type,
                    })
            }
            State::RefGlobal { index } => facts
                .ref_globals
                .iter()
                .find(|(i, _)| *i == index)
                .map(|&(index, ty)| Slot::RefGlobal { index, ty }),
            _ => None,
        });
        slot.with_context(|| {
            format!(
                "the plan reads {state:?} of core module {module} of stage 1, which that module \
                 does not define (is stage 1 the component the plan was made for?)"
            )
        })
    }

    /// Fails when a table's snapshot does not fit the maximum of the table
    /// of stage 2 module `m` (by index into `info2.modules`).
    fn check_table_maximum(
        &self,
        m: usize,
        accessor: &Accessor,
        value: &Value,
        here: &str,
    ) -> Result<()> {
        let (State::Table { index }, Value::Memory(image)) = (accessor.state, value) else {
            return Ok(());
        };
        let slots = image.len() / 8;
        let maximum = self
            .facts2
            .get(&m)
            .and_then(|f| f.tables.iter().find(|(i, _)| *i == index))
            .and_then(|(_, ty)| ty.maximum);
        if let Some(maximum) = maximum
            && slots > maximum
        {
            bail!(
                "table {index} of {here} may hold at most {maximum} slots, but the snapshot \
                 taken in stage 1 has {slots}"
            );
        }
        Ok(())
    }

    /// Fails unless function `func` of stage 2 core instance `i2` has the
    /// type that function `func` of stage 1 core instance `i1` has; `place`
    /// says where stage 1 holds it.
    fn check_function(
        &self,
        i1: u32,
        i2: u32,
        func: u32,
        place: &dyn Fn() -> String,
    ) -> Result<()> {
        let Some((_, facts1)) = self.stage1_module(i1) else {
            bail!(
                "{}, which instantiates no module of stage 1 (is stage 1 the component the plan \
                 was made for?)",
                place()
            );
        };
        let (m2, facts2) = self.stage2_module(i2).with_context(|| {
            format!("internal error: stage 2 core instance {i2} instantiates no module")
        })?;
        let Some(ty1) = facts1.func_type(func) else {
            bail!(
                "{}, which that module does not have (is stage 1 the component the plan was \
                 made for?)",
                place()
            );
        };
        match facts2.func_type(func) {
            Some(ty2) if ty2 == ty1 => Ok(()),
            Some(ty2) => bail!(
                "{}, of type `{ty1}`, but function {func} of core module {m2} of stage 2 (core \
                 instance {i2}, which takes its place) has type `{ty2}`",
                place()
            ),
            None => bail!(
                "{}, of type `{ty1}`, but core module {m2} of stage 2 (core instance {i2}, which \
                 takes its place) has no function {func}",
                place()
            ),
        }
    }
}

/// The state a stage 2 module defines, in order: memories and mutable
/// globals of numeric types (tables are added at levels where they go to
/// stage 2).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `non_null_slots` reads the slots `RefId::slots` decodes, without
    /// the nulls, and `encode` writes back what `RefId::decode` read.
    #[test]
    fn non_null_slots_are_the_decoded_slots_without_nulls() {
        let words: Vec<u64> = vec![
            0,
            0x0000_0001_0000_0000,
            0x0000_0003_0000_0007,
            0,
            0,
            0xff,
            RefId::UNKNOWN,
            RefId::NOT_A_FUNCTION,
            0x0100,
            0,
        ];
        for skip in 0..words.len() {
            let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            bytes[skip * 8..].rotate_left(3);
            let image = MemoryImage::from(bytes.as_slice());
            let expected: Vec<(u64, u64)> = bytes
                .chunks_exact(8)
                .enumerate()
                .map(|(i, c)| (i as u64, u64::from_le_bytes(c.try_into().unwrap())))
                .filter(|(_, bits)| *bits != 0)
                .collect();
            assert_eq!(RefId::non_null(&image), expected);
            for (_, bits) in expected {
                assert_eq!(RefId::decode(bits).encode(), bits);
            }
        }
    }
}
