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
use wasm_encoder::ExportKind;

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
    /// Tables and reference-typed globals, when the module's code can
    /// change them.
    pub tables: Option<TablePlan>,
}

/// How to read a module's tables and reference-typed globals.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// The export of the probe global that is nonzero once a table
    /// mutation or a write of a reference-typed global ran.
    pub changed: String,
    /// Each table that holds functions: index and export.
    pub tables: Vec<(u32, String)>,
    /// Tables of other references (which only null can fill): index and
    /// export.
    pub other_tables: Vec<(u32, String)>,
    /// Mutable reference-typed globals: index and export.
    pub globals: Vec<(u32, String)>,
    /// Exports of functions, each with its index: how the runtime tells
    /// apart the functions tables and globals hold.
    pub funcs: Vec<(String, u32)>,
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
    let probed = probe::probe_carrying_tables(
        bytes,
        parsed.global_count,
        parsed.imported_funcs,
        &parsed.ref_globals,
    )
    .context("failed to scan the module's code")?;
    let states = states(parsed, probed.as_ref())?;
    let mut exports: Vec<CoreExport> = states.iter().map(CoreExport::of).collect();
    let tables = probed
        .as_ref()
        .and_then(|p| p.tables_changed)
        .map(|changed| table_plan(parsed, changed, &mut exports));
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
            .map_or(Vec::new(), |p| vec![GlobalValue::I32(0); p.global_count()]),
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
        plan: ModulePlan {
            calls,
            states,
            tables,
        },
    })
}

/// The plan for reading tables and reference-typed globals, whose exports
/// it adds to `exports`: every table, every mutable reference-typed
/// global, the probe global `changed`, and every function that can become
/// a reference and is not exported yet.
fn table_plan(parsed: &ParsedModule, changed: u32, exports: &mut Vec<CoreExport>) -> TablePlan {
    let mut add = |name: String, kind: ExportKind, index: u32| {
        exports.push(CoreExport {
            name: name.clone(),
            kind,
            index,
        });
        name
    };
    let changed = add(
        edit::core_global_export(changed),
        ExportKind::Global,
        changed,
    );
    let mut plan = TablePlan {
        changed,
        tables: Vec::new(),
        other_tables: Vec::new(),
        globals: Vec::new(),
        funcs: Vec::new(),
    };
    for &(index, functions) in &parsed.tables {
        let name = add(edit::core_table_export(index), ExportKind::Table, index);
        match functions {
            true => plan.tables.push((index, name)),
            false => plan.other_tables.push((index, name)),
        }
    }
    for &index in &parsed.ref_globals {
        let name = add(edit::core_global_export(index), ExportKind::Global, index);
        plan.globals.push((index, name));
    }
    for &(ref name, kind, index) in &parsed.exports {
        if kind == wasmparser::ExternalKind::Func {
            plan.funcs.push((name.clone(), index));
        }
    }
    for &index in &parsed.refs {
        if !plan.funcs.iter().any(|&(_, f)| f == index) {
            let name = add(edit::core_func_export(index), ExportKind::Func, index);
            plan.funcs.push((name, index));
        }
    }
    plan
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
