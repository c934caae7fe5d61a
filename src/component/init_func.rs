//! Finding the component's init function among its exports and checking
//! its type (the component front end's part of [`InitFunc`]).

use anyhow::{Result, bail};
use wasmparser::ComponentExternalKind;
use wasmparser::component_types::ComponentEntityType;

use crate::component::names;
use crate::component::parse::Parsed;
use crate::plan::init_func::InitFunc;

/// The init function as found in the component.
pub struct ResolvedInit {
    /// What the runtime calls.
    pub func: InitFunc,
    /// Index into the top level's [`ComponentInfo::exports`](crate::component::parse::ComponentInfo::exports)
    /// of the export that the rewrite removes,
    /// when the function is a top-level export.
    pub export: Option<usize>,
}

/// Finds the init function among the component's exports and checks its
/// type: it takes no parameters (results are ignored).
pub fn resolve(parsed: &Parsed<'_>, requested: Option<&InitFunc>) -> Result<ResolvedInit> {
    let func = match requested {
        Some(func) => func.clone(),
        None => {
            let default = find(parsed, names::DEFAULT_INIT_FUNC);
            let wizer = find(parsed, names::WIZER_INIT_FUNC);
            match (default, wizer) {
                (Some(_), _) | (None, None) => InitFunc::top_level(names::DEFAULT_INIT_FUNC),
                (None, Some(_)) => InitFunc::top_level(names::WIZER_INIT_FUNC),
            }
        }
    };
    let types = parsed.types.as_ref();
    match &func.interface {
        None => {
            let Some(i) = find(parsed, &func.name) else {
                bail!(
                    "the component has no export named `{}`{}",
                    func.name,
                    hint(parsed, requested.is_none())
                );
            };
            let Some(ComponentEntityType::Func(id)) = export_type(parsed, &func.name) else {
                bail!("export `{}` is not a function", func.name);
            };
            check_params(&func, types[id].params.len())?;
            Ok(ResolvedInit {
                func,
                export: Some(i),
            })
        }
        Some(interface) => {
            if find(parsed, interface).is_none() {
                bail!("the component has no export named `{interface}`");
            }
            let Some(ComponentEntityType::Instance(id)) = export_type(parsed, interface) else {
                bail!("export `{interface}` is not an instance");
            };
            let instance = &types[id];
            let Some(item) = instance.exports.get(&func.name) else {
                bail!(
                    "exported instance `{interface}` has no function `{}`",
                    func.name
                );
            };
            let ComponentEntityType::Func(id) = item.ty else {
                bail!("`{func}` is not a function");
            };
            check_params(&func, types[id].params.len())?;
            Ok(ResolvedInit { func, export: None })
        }
    }
}

/// The type of the top-level export `name`, as the validator resolved it.
fn export_type(parsed: &Parsed<'_>, name: &str) -> Option<ComponentEntityType> {
    parsed
        .types
        .as_ref()
        .component_item_for_export(name)
        .map(|item| item.ty)
}

fn find(parsed: &Parsed<'_>, name: &str) -> Option<usize> {
    parsed.root.exports.iter().position(|e| e.name == name)
}

fn check_params(func: &InitFunc, params: usize) -> Result<()> {
    if params != 0 && func.args.is_none() {
        bail!(
            "init function `{func}` takes {params} parameter{}; pass the arguments in WAVE, as \
             `--init-func '{}(ARG, ...)'`",
            if params == 1 { "" } else { "s" },
            func.path()
        );
    }
    Ok(())
}

fn hint(parsed: &Parsed<'_>, defaulted: bool) -> String {
    let funcs: Vec<&str> = parsed
        .root
        .exports
        .iter()
        .filter(|e| e.kind == ComponentExternalKind::Func)
        .map(|e| e.name.as_str())
        .collect();
    let mut hint = String::new();
    if defaulted {
        hint.push_str(&format!(
            " (nor `{}`); pass `--init-func NAME` to pick one",
            names::WIZER_INIT_FUNC
        ));
    }
    if !funcs.is_empty() {
        hint.push_str(&format!("; exported functions: {}", funcs.join(", ")));
    }
    hint
}
