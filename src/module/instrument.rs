//! Phase 2 for a core module: export every memory, mutable global and probe
//! under a reserved name, so that the runtime can read them after init. A
//! core module's state is read straight from its exports: no accessor
//! functions are synthesized.

use anyhow::{Context, Result, bail};

use super::ModuleOptions;
use super::parse::{ParsedModule, page_size_log2};
use crate::edit::probe::{self, Probed};
use crate::edit::{self, CoreExport, ModuleEdit};
use crate::plan::{GlobalValue, ScalarType, State};

/// The init function Wizer runs by default, and its older spelling, used
/// when only that one is exported.
pub const DEFAULT_INIT_FUNC: &str = "wizer-initialize";
const OLD_DEFAULT_INIT_FUNC: &str = "wizer.initialize";
/// The constructor of a WASI reactor: it runs before the init function.
pub const WASI_INITIALIZE: &str = "_initialize";

/// An instrumented core module and what to do with it.
pub struct InstrumentedModule {
    /// The module, exporting its state under reserved names.
    pub module: Vec<u8>,
    /// What to run and read.
    pub plan: ModulePlan,
}

/// What the runtime does with an instrumented module.
#[derive(Clone, Debug)]
pub struct ModulePlan {
    /// The exported functions to call, in order, each `[] -> []`:
    /// `_initialize` when the module exports it, then the init function.
    pub calls: Vec<String>,
    /// The state to read back after init: its export name and what it is.
    pub states: Vec<(String, State)>,
}

/// Instruments `bytes`, a core module that [`parse`](super::parse::parse)
/// gave `parsed` for.
pub fn instrument(
    bytes: &[u8],
    parsed: &ParsedModule,
    options: &ModuleOptions,
) -> Result<InstrumentedModule> {
    let init = init_func(parsed, options)?;
    let mut calls = Vec::new();
    if init != WASI_INITIALIZE && parsed.exported_func(WASI_INITIALIZE).is_some() {
        calls.push(WASI_INITIALIZE.to_string());
    }
    calls.push(init);
    let probed = probe::probe(
        bytes,
        parsed.global_count,
        parsed.imported_funcs,
        &parsed.ref_globals,
    )
    .context("failed to scan the module's code")?;
    let states = states(parsed, probed.as_ref())?;
    let exports: Vec<CoreExport> = states.iter().map(CoreExport::of).collect();
    if let Some(taken) = exports.iter().find(|e| parsed.exports(&e.name)) {
        bail!(
            "the module already exports `{}`, a name this tool reserves for reading its state",
            taken.name
        );
    }
    let edit = ModuleEdit {
        exports,
        new_globals: probed
            .as_ref()
            .map_or(Vec::new(), |p| vec![GlobalValue::I32(0); p.probes.len()]),
        code: probed.map(|p| p.code),
        ..ModuleEdit::default()
    };
    let module = edit::edit(bytes, edit).context("failed to instrument the module")?;
    let states = states
        .into_iter()
        .map(|state| (CoreExport::of(&state).name, state))
        .collect();
    Ok(InstrumentedModule {
        module,
        plan: ModulePlan { calls, states },
    })
}

/// The export that runs as init: the one asked for, else Wizer's default
/// (`wizer-initialize`, or `wizer.initialize` when only that is exported).
/// It must be a function without parameters or results.
pub fn init_func(parsed: &ParsedModule, options: &ModuleOptions) -> Result<String> {
    let name = match &options.init_func {
        Some(name) => name.clone(),
        None if parsed.exported_func(DEFAULT_INIT_FUNC).is_none()
            && parsed.exported_func(OLD_DEFAULT_INIT_FUNC).is_some() =>
        {
            OLD_DEFAULT_INIT_FUNC.to_string()
        }
        None => DEFAULT_INIT_FUNC.to_string(),
    };
    if parsed.exported_func(&name).is_none() {
        if parsed.exports(&name) {
            bail!("the module's export `{name}` is not a function, so it cannot run as init");
        }
        bail!(
            "the module does not export the init function `{name}`{}",
            if options.init_func.is_none() {
                " (the default; choose another with `--init-func`)"
            } else {
                ""
            }
        );
    }
    Ok(name)
}

/// Every memory, mutable global and probe of the module: memories, then
/// globals, then probes.
fn states(parsed: &ParsedModule, probed: Option<&Probed>) -> Result<Vec<State>> {
    let mut states = Vec::new();
    for memory in &parsed.memories {
        states.push(State::Memory {
            index: memory.index,
            memory64: memory.ty.memory64,
            page_size_log2: page_size_log2(&memory.ty),
        });
    }
    for global in &parsed.globals {
        let ty = ScalarType::of(global.ty).with_context(|| {
            format!(
                "internal error: mutable global {} has type {}, which parse keeps apart",
                global.index, global.ty
            )
        })?;
        states.push(State::Global {
            index: global.index,
            ty,
        });
    }
    if let Some(probed) = probed {
        for (k, probe) in probed.probes.iter().enumerate() {
            let index = u32::try_from(k)
                .ok()
                .and_then(|k| probed.first_global.checked_add(k))
                .context("internal error: too many probes")?;
            states.push(State::Probe {
                index,
                probe: *probe,
            });
        }
    }
    Ok(states)
}
