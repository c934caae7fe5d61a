//! Instrumenting a component level whose code can change tables: when any
//! module instantiated at the level has a table mutation or a write of a
//! reference-typed global, every module there gets probe prologues
//! ([`crate::edit::identify`]), every table and mutable reference-typed
//! global a module defines gets an accessor, and a table reader
//! ([`crate::component::table_reader`]) reads them after init.
//!
//! Core functions, tables and globals never cross a component boundary
//! (lifting and lowering make new functions, which are imports of the
//! module that receives them), so each level is carried on its own.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};

use crate::component::parse::ComponentInfo;
use crate::component::table_reader::{ProbeType, Read};
use crate::edit::identify::{self, FuncFacts};
use crate::edit::probe::Probed;
use crate::plan::State;

/// What a level in table mode needs.
pub(crate) struct LevelTables {
    /// Facts of each module instantiated at the level (by index into
    /// `info.modules`).
    pub modules: BTreeMap<usize, FuncFacts>,
    /// The core instances whose modules carry prologues, in the order the
    /// table reader imports their globals.
    pub probed: Vec<u32>,
    /// The function types of every function that can become a reference,
    /// which the table reader tries.
    pub types: Vec<ProbeType>,
}

impl LevelTables {
    /// The level's table mode, when some module of `info` (with the probes
    /// `probed`, by module) can change a table.
    pub(crate) fn of(
        bytes: &[u8],
        info: &ComponentInfo,
        probed: &BTreeMap<usize, Probed>,
    ) -> Result<Option<LevelTables>> {
        if !probed.values().any(|p| p.tables_changed.is_some()) {
            return Ok(None);
        }
        let mut modules = BTreeMap::new();
        for instance in &info.instances {
            if modules.contains_key(&instance.definition) {
                continue;
            }
            let module = &info.modules[instance.definition];
            let facts = FuncFacts::of(&bytes[module.range.clone()])
                .with_context(|| format!("failed to read core module {}", module.index))?;
            // a level with tables or globals of typed references is not
            // read (the reader would need their types); a table change
            // there is refused by the rewrite, as before tables were carried
            let typed = |ty: wasmparser::RefType| {
                matches!(
                    ty.heap_type(),
                    wasmparser::HeapType::Concrete(_) | wasmparser::HeapType::Exact(_)
                )
            };
            if facts.tables.iter().any(|&(_, t)| typed(t.element_type))
                || facts.ref_globals.iter().any(|&(_, t)| typed(t))
            {
                return Ok(None);
            }
            modules.insert(instance.definition, facts);
        }
        let probed: Vec<u32> = info
            .instances
            .iter()
            .filter(|i| !modules[&i.definition].refs.is_empty())
            .map(|i| i.index)
            .collect();
        let mut types: Vec<ProbeType> = Vec::new();
        for facts in modules.values() {
            for &func in &facts.refs {
                let Some(ty) = facts.func_type(func) else {
                    continue;
                };
                if let Some(ty) = probe_type(ty)
                    && !types.contains(&ty)
                {
                    types.push(ty);
                }
            }
        }
        Ok(Some(LevelTables {
            modules,
            probed,
            types,
        }))
    }

    /// The table and reference-typed global states of module `m` (by
    /// index into `info.modules`).
    pub(crate) fn states(&self, m: usize) -> Vec<State> {
        let Some(facts) = self.modules.get(&m) else {
            return Vec::new();
        };
        let tables = facts
            .tables
            .iter()
            .map(|&(index, _)| State::Table { index });
        let globals = facts
            .ref_globals
            .iter()
            .map(|&(index, _)| State::RefGlobal { index });
        tables.chain(globals).collect()
    }

    /// How the table reader imports what `state` of module `m` names.
    pub(crate) fn read(&self, m: usize, state: State) -> Result<Read> {
        let facts = self
            .modules
            .get(&m)
            .context("internal error: a table read of a module outside table mode")?;
        match state {
            State::Table { index } => {
                let (_, ty) = facts
                    .tables
                    .iter()
                    .find(|(i, _)| *i == index)
                    .with_context(|| format!("internal error: no table {index}"))?;
                let mut ty = RoundtripReencoder.table_type(*ty)?;
                ty.minimum = 0;
                ty.maximum = None;
                Ok(Read::Table(ty))
            }
            State::RefGlobal { index } => {
                let (_, ty) = facts
                    .ref_globals
                    .iter()
                    .find(|(i, _)| *i == index)
                    .with_context(|| format!("internal error: no global {index}"))?;
                Ok(Read::Global(RoundtripReencoder.ref_type(*ty)?))
            }
            _ => bail!("internal error: {state:?} is not read by the table reader"),
        }
    }

    /// Whether module `m`'s functions carry prologues.
    pub(crate) fn prologued(&self, m: usize) -> bool {
        self.modules.get(&m).is_some_and(|f| !f.refs.is_empty())
    }
}

/// `ty` as the table reader declares it, when a probe can call it: every
/// parameter and result with a default value, and no reference to a type
/// of the module (which the reader does not have).
fn probe_type(ty: &wasmparser::FuncType) -> Option<ProbeType> {
    if !identify::probeable(ty) {
        return None;
    }
    let convert = |types: &[wasmparser::ValType]| -> Option<Vec<wasm_encoder::ValType>> {
        types
            .iter()
            .map(|t| match t {
                wasmparser::ValType::Ref(r)
                    if matches!(
                        r.heap_type(),
                        wasmparser::HeapType::Concrete(_) | wasmparser::HeapType::Exact(_)
                    ) =>
                {
                    None
                }
                t => RoundtripReencoder.val_type(*t).ok(),
            })
            .collect()
    };
    Some((convert(ty.params())?, convert(ty.results())?))
}
