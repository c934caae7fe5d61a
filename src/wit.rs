//! The accessor interface as WIT: synthesized from a plan, resolved together
//! with the fixed package in `wit/` by wit-parser, and checked against what
//! wit-component decodes from the instrumented component.

use anyhow::{Context, Result, anyhow, bail};
use std::fmt::Write;
use wit_parser::{Function, InterfaceId, Resolve, SourceMap, Type, TypeDefKind, WorldItem};

use crate::names;
use crate::plan::{Plan, State};

/// The synthesized `accessors` interface for `plan`, as WIT source (one file
/// of the package in `wit/`).
pub fn interface_source(plan: &Plan) -> String {
    let mut wit = String::new();
    let _ = writeln!(
        wit,
        "/// Reads the component's state after its init function `{}` ran.",
        plan.init
    );
    let _ = writeln!(wit, "interface {} {{", names::ACCESSOR_INTERFACE_NAME);
    for accessor in &plan.accessors {
        match accessor.state {
            State::Memory { index, .. } => {
                let _ = writeln!(
                    wit,
                    "  /// Memory {index} of core instance {} (core module {}): the bytes at \
                     [offset, offset + len), cut short at the end of the memory.",
                    accessor.instance, accessor.module
                );
                let _ = writeln!(
                    wit,
                    "  {}: func(offset: u64, len: u32) -> list<u8>;",
                    accessor.func
                );
            }
            State::Global { index, ty } => {
                let _ = writeln!(
                    wit,
                    "  /// Mutable global {index} of core instance {} (core module {}).",
                    accessor.instance, accessor.module
                );
                let _ = writeln!(wit, "  {}: func() -> {};", accessor.func, ty.wit());
            }
            State::Probe { probe, .. } => {
                let _ = writeln!(
                    wit,
                    "  /// Probe of core instance {} (core module {}): {probe:?}.",
                    accessor.instance, accessor.module
                );
                let _ = writeln!(wit, "  {}: func() -> s32;", accessor.func);
            }
        }
    }
    wit.push_str("}\n");
    wit
}

/// Resolves the fixed package plus the synthesized interface.
pub fn resolve(plan: &Plan) -> Result<(Resolve, InterfaceId)> {
    let mut sources = SourceMap::new();
    sources.push_str("wit/component-init.wit", names::WIT_PACKAGE_SOURCE);
    sources.push_str("accessors.wit", interface_source(plan));
    let group = sources
        .parse()
        .map_err(|(_, e)| anyhow!("{e}"))
        .context("failed to parse the synthesized accessor WIT")?;
    let mut resolve = Resolve::default();
    let package = resolve
        .push_group(group)
        .context("failed to resolve the synthesized accessor WIT")?;
    let interface = resolve.packages[package]
        .interfaces
        .get(names::ACCESSOR_INTERFACE_NAME)
        .copied()
        .context("the synthesized WIT lacks the accessor interface")?;
    Ok((resolve, interface))
}

/// Prints the synthesized package (the fixed world and the accessor
/// interface) as WIT.
pub fn print(plan: &Plan) -> Result<String> {
    let (resolve, interface) = resolve(plan)?;
    let package = resolve.interfaces[interface]
        .package
        .context("the accessor interface has no package")?;
    let mut printer = wit_component::WitPrinter::default();
    printer.print(&resolve, package, &[])?;
    Ok(printer.output.to_string())
}

/// Decodes `instrumented` with wit-component and checks that its exported
/// accessor instance has exactly the synthesized interface's functions and
/// types.
pub fn check(instrumented: &[u8], plan: &Plan) -> Result<()> {
    let (expected_resolve, expected) = resolve(plan)?;
    let decoded = wit_component::decode(instrumented)
        .context("wit-component cannot decode the instrumented component")?;
    let (resolve, world) = match &decoded {
        wit_component::DecodedWasm::Component(resolve, world) => (resolve, *world),
        wit_component::DecodedWasm::WitPackage(..) => bail!("instrumented output is a WIT package"),
    };
    let actual = resolve.worlds[world]
        .exports
        .iter()
        .find_map(|(key, item)| match item {
            WorldItem::Interface { id, .. } if resolve.name_world_key(key) == plan.interface => {
                Some(*id)
            }
            _ => None,
        })
        .with_context(|| {
            format!(
                "the instrumented component does not export `{}`",
                plan.interface
            )
        })?;
    let expected_funcs = &expected_resolve.interfaces[expected].functions;
    let actual_funcs = &resolve.interfaces[actual].functions;
    if expected_funcs.len() != actual_funcs.len() {
        bail!(
            "`{}` exports {} functions, the synthesized WIT has {}",
            plan.interface,
            actual_funcs.len(),
            expected_funcs.len()
        );
    }
    for (name, func) in expected_funcs {
        let want = signature(&expected_resolve, func);
        let got = actual_funcs
            .get(name)
            .map(|f| signature(resolve, f))
            .with_context(|| format!("`{}` lacks `{name}`", plan.interface))?;
        if want != got {
            bail!(
                "`{}#{name}` has type `{got}`, the synthesized WIT says `{want}`",
                plan.interface
            );
        }
    }
    Ok(())
}

fn signature(resolve: &Resolve, func: &Function) -> String {
    let params: Vec<String> = func
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty)))
        .collect();
    match &func.result {
        Some(ty) => format!("func({}) -> {}", params.join(", "), type_name(resolve, ty)),
        None => format!("func({})", params.join(", ")),
    }
}

fn type_name(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::List(t) => format!("list<{}>", type_name(resolve, t)),
            TypeDefKind::Type(t) => type_name(resolve, t),
            TypeDefKind::Tuple(t) => {
                let types: Vec<String> = t.types.iter().map(|t| type_name(resolve, t)).collect();
                format!("tuple<{}>", types.join(", "))
            }
            other => format!("{other:?}"),
        },
        other => format!("{other:?}").to_lowercase(),
    }
}
