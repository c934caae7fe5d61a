//! Phase 4 for a core module: the original module with the snapshot baked
//! in (memories and globals as init left them, dropped passive segments
//! emptied, the start function removed), `_initialize` removed, the init
//! export removed unless kept, and the requested exports renamed.

use anyhow::{Result, bail};
use std::collections::BTreeMap;

use super::instrument::{ModulePlan, WASI_INITIALIZE};
use super::parse::ParsedModule;
use super::{ModuleOptions, ModuleSnapshot};
use crate::edit::ModuleEdit;
use crate::edit::bake::{self, InstanceState, WrongKind};
use crate::edit::probe;
use crate::plan::Snapshot;

/// Bakes `snapshot` (read as `plan` says) into `original`, the module
/// `parsed` describes; the result is validated.
pub fn apply(
    original: &[u8],
    parsed: &ParsedModule,
    plan: &ModulePlan,
    snapshot: &ModuleSnapshot,
    options: &ModuleOptions,
) -> Result<Vec<u8>> {
    let state = instance_state(original, plan, &snapshot.state)?;
    let edit = ModuleEdit {
        export_renames: export_renames(parsed, plan, options)?,
        tables: snapshot.tables.clone(),
        ..ModuleEdit::default()
    };
    let edited = bake::bake(original, &state, edit)?;
    let mut out = Vec::with_capacity(edited.len());
    edited.write_to(&mut out);
    wasmparser::Validator::new_with_features(crate::edit::features())
        .validate_all(&out)
        .map_err(|e| anyhow::anyhow!("internal error: the output module is invalid: {e}"))?;
    Ok(out)
}

/// The snapshot as the state of the module's one instance; an
/// instruction that a snapshot cannot carry, having run, is an error.
fn instance_state<'a>(
    original: &[u8],
    plan: &ModulePlan,
    snapshot: &'a Snapshot,
) -> Result<InstanceState<'a>> {
    if snapshot.values.len() != plan.states.len() {
        bail!(
            "the snapshot has {} values for {} pieces of state",
            snapshot.values.len(),
            plan.states.len()
        );
    }
    let mut state = InstanceState::default();
    for ((name, what), value) in plan.states.iter().zip(&snapshot.values) {
        let fired = state.record(*what, value).map_err(|WrongKind| {
            anyhow::anyhow!("the snapshot's value for `{name}` has the wrong kind")
        })?;
        if let Some(fired) = fired {
            let name = probe::function_name(original, fired.func);
            return Err(fired.during_module_init(name.as_deref()));
        }
    }
    Ok(state)
}

/// The exports to remove or rename: `_initialize`, the init function
/// (unless kept), and each `DST=SRC` of `--rename-func` (SRC is exported as
/// DST; an export already named DST goes).
fn export_renames(
    parsed: &ParsedModule,
    plan: &ModulePlan,
    options: &ModuleOptions,
) -> Result<BTreeMap<String, Option<String>>> {
    let mut renames = BTreeMap::new();
    for (dst, src) in &options.renames {
        if parsed.exported_func(src).is_none() {
            bail!("cannot rename `{src}` to `{dst}`: the module exports no function `{src}`");
        }
        if options.renames.iter().filter(|(d, _)| d == dst).count() > 1 {
            bail!("`--rename-func` gives `{dst}` more than once");
        }
        if options.renames.iter().filter(|(_, s)| s == src).count() > 1 {
            bail!("`--rename-func` renames `{src}` more than once");
        }
        renames.insert(src.clone(), Some(dst.clone()));
    }
    for (dst, _) in &options.renames {
        renames.entry(dst.clone()).or_insert(None);
    }
    // `_initialize` always goes, as with Wizer: calling it again would run
    // the constructors over the snapshot; the init function goes unless kept
    for call in &plan.calls {
        let init = Some(call) == plan.calls.last();
        if (call == WASI_INITIALIZE && !init) || (init && !options.keep_init_func) {
            renames.insert(call.clone(), None);
        }
    }
    Ok(renames)
}
