//! The accessor interface as WIT: synthesized from a plan, resolved together
//! with the fixed package in `wit/` by wit-parser, and checked against the
//! component types of the instrumented component.

use anyhow::{Context, Result, anyhow, bail};
use std::fmt::Write;
use wasmparser::component_types::{
    ComponentDefinedType, ComponentEntityType, ComponentFuncType, ComponentValType,
};
use wasmparser::types::TypesRef;
use wasmparser::{Parser, PrimitiveValType, ValidPayload, Validator, WasmFeatures};
use wit_parser::{InterfaceId, Resolve, SourceMap};

use crate::component::names;
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
            State::Table { index } => {
                let _ = writeln!(
                    wit,
                    "  /// Table {index} of core instance {} (core module {}): slots [offset / 8, \
                     (offset + len) / 8), 8 bytes each (little-endian: 0 null, (instance + 1) \
                     << 32 | function index, 2^64 - 1 a function without identity, 2^64 - 2 \
                     another reference), cut short at the end of the table.",
                    accessor.instance, accessor.module
                );
                let _ = writeln!(
                    wit,
                    "  {}: func(offset: u64, len: u32) -> list<u8>;",
                    accessor.func
                );
            }
            State::RefGlobal { index } => {
                let _ = writeln!(
                    wit,
                    "  /// Reference-typed global {index} of core instance {} (core module {}), \
                     read as a table of one slot.",
                    accessor.instance, accessor.module
                );
                let _ = writeln!(
                    wit,
                    "  {}: func(offset: u64, len: u32) -> list<u8>;",
                    accessor.func
                );
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

/// Checks that `instrumented` validates and exports `plan.interface` as an
/// instance with exactly the synthesized interface's functions, each of the
/// type [`interface_source`] gives it in WIT.
///
/// The types come from the validator (as wit-component's decoder reads
/// them, function bodies aside) and are compared with the plan's directly,
/// without parsing the synthesized WIT or decoding the component to WIT; a
/// test checks that the two descriptions of the interface agree.
pub fn check(instrumented: &[u8], plan: &Plan) -> Result<()> {
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut depth = 0usize;
    let mut types = None;
    for payload in Parser::new(0).parse_all(instrumented) {
        match validator.payload(&payload?)? {
            ValidPayload::Parser(_) => depth += 1,
            ValidPayload::End(t) => {
                if depth == 0 {
                    types = Some(t);
                } else {
                    depth -= 1;
                }
            }
            ValidPayload::Ok | ValidPayload::Func(..) => {}
        }
    }
    let types = types.context("the instrumented component is truncated")?;
    let types = types.as_ref();
    let instance = match types
        .component_item_for_export(&plan.interface)
        .map(|i| i.ty)
    {
        Some(ComponentEntityType::Instance(id)) => &types[id],
        _ => bail!(
            "the instrumented component does not export `{}`",
            plan.interface
        ),
    };
    let funcs = instance
        .exports
        .values()
        .filter(|item| matches!(item.ty, ComponentEntityType::Func(_)))
        .count();
    if funcs != plan.accessors.len() {
        bail!(
            "`{}` exports {funcs} functions, the synthesized WIT has {}",
            plan.interface,
            plan.accessors.len()
        );
    }
    for accessor in &plan.accessors {
        let name = &accessor.func;
        let want = expected_signature(accessor.state);
        let got = match instance.exports.get(name).map(|item| item.ty) {
            Some(ComponentEntityType::Func(id)) => signature_of(types, &types[id]),
            Some(_) => format!("{name} (not a function)"),
            None => bail!("`{}` lacks `{name}`", plan.interface),
        };
        if want != got {
            bail!(
                "`{}#{name}` has type `{got}`, the synthesized WIT says `{want}`",
                plan.interface
            );
        }
    }
    Ok(())
}

/// The WIT type of the accessor for `state`, as [`interface_source`] writes it.
fn expected_signature(state: State) -> String {
    match state {
        State::Memory { .. } | State::Table { .. } | State::RefGlobal { .. } => {
            "func(offset: u64, len: u32) -> list<u8>".to_string()
        }
        State::Global { ty, .. } => format!("func() -> {}", ty.wit()),
        State::Probe { .. } => "func() -> s32".to_string(),
    }
}

/// A component function type in WIT syntax (the types accessors use; any
/// other prints as a placeholder that matches no accessor's type).
fn signature_of(types: TypesRef<'_>, func: &ComponentFuncType) -> String {
    let params: Vec<String> = func
        .params
        .iter()
        .map(|(name, ty)| format!("{}: {}", name.as_str(), val_type(types, ty)))
        .collect();
    let prefix = if func.async_ { "async " } else { "" };
    match &func.result {
        Some(ty) => format!(
            "{prefix}func({}) -> {}",
            params.join(", "),
            val_type(types, ty)
        ),
        None => format!("{prefix}func({})", params.join(", ")),
    }
}

fn val_type(types: TypesRef<'_>, ty: &ComponentValType) -> String {
    match ty {
        ComponentValType::Primitive(p) => primitive(*p).to_string(),
        ComponentValType::Type(id) => match &types[*id] {
            ComponentDefinedType::Primitive(p) => primitive(*p).to_string(),
            ComponentDefinedType::List { element, .. } => {
                format!("list<{}>", val_type(types, element))
            }
            ComponentDefinedType::Tuple(t) => {
                let types: Vec<String> = t.types.iter().map(|t| val_type(types, t)).collect();
                format!("tuple<{}>", types.join(", "))
            }
            _ => "<another type>".to_string(),
        },
    }
}

fn primitive(ty: PrimitiveValType) -> &'static str {
    match ty {
        PrimitiveValType::Bool => "bool",
        PrimitiveValType::S8 => "s8",
        PrimitiveValType::U8 => "u8",
        PrimitiveValType::S16 => "s16",
        PrimitiveValType::U16 => "u16",
        PrimitiveValType::S32 => "s32",
        PrimitiveValType::U32 => "u32",
        PrimitiveValType::S64 => "s64",
        PrimitiveValType::U64 => "u64",
        PrimitiveValType::F32 => "f32",
        PrimitiveValType::F64 => "f64",
        PrimitiveValType::Char => "char",
        PrimitiveValType::String => "string",
        PrimitiveValType::ErrorContext => "error-context",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::probe::Probe;
    use crate::plan::{Accessor, InputId, PLAN_FORMAT, ScalarType};
    use wit_parser::{Function, Type, TypeDefKind};

    /// `check` compares with the plan directly: what it expects must be what
    /// the synthesized WIT says, as wit-parser reads it.
    #[test]
    fn expected_signatures_are_those_of_the_synthesized_wit() {
        let mut accessors = vec![Accessor {
            func: names::memory_accessor(0),
            path: Vec::new(),
            instance: 0,
            module: 0,
            state: State::Memory {
                index: 0,
                memory64: false,
                page_size_log2: 16,
            },
        }];
        for (i, ty) in [
            ScalarType::I32,
            ScalarType::I64,
            ScalarType::F32,
            ScalarType::F64,
            ScalarType::V128,
        ]
        .into_iter()
        .enumerate()
        {
            accessors.push(Accessor {
                func: format!("get-global-{i}"),
                path: Vec::new(),
                instance: 0,
                module: 0,
                state: State::Global { index: 0, ty },
            });
        }
        accessors.push(Accessor {
            func: "get-probe-0".to_string(),
            path: Vec::new(),
            instance: 0,
            module: 0,
            state: State::Probe {
                index: 0,
                probe: Probe::Unsnapshottable,
            },
        });
        let plan = Plan {
            format: PLAN_FORMAT,
            input: InputId::of(&[]),
            init: crate::InitFunc {
                interface: None,
                name: "component-init".to_string(),
                args: None,
            },
            remove_init_export: true,
            interface: names::ACCESSOR_INSTANCE_EXPORT.to_string(),
            accessors,
        };
        let (resolve, interface) = resolve(&plan).unwrap();
        let funcs = &resolve.interfaces[interface].functions;
        assert_eq!(funcs.len(), plan.accessors.len());
        for accessor in &plan.accessors {
            let func = &funcs[accessor.func.as_str()];
            assert_eq!(
                signature(&resolve, func),
                expected_signature(accessor.state),
                "{}",
                accessor.func
            );
        }
    }

    /// `check` fails, naming what differs, when the component and the plan
    /// disagree.
    #[test]
    fn check_rejects_what_the_plan_does_not_say() {
        let input = wat::parse_str(
            r#"(component
              (core module $m
                (memory 1)
                (global (mut i32) (i32.const 0))
                (func (export "init")))
              (core instance $i (instantiate $m))
              (func (export "component-init") (canon lift (core func $i "init"))))"#,
        )
        .unwrap();
        let instrumented = crate::instrument(&input, &crate::InstrumentOptions::default()).unwrap();
        let component = &instrumented.component;
        let plan = &instrumented.plan;
        check(component, plan).unwrap();

        let mut wrong_type = plan.clone();
        for accessor in &mut wrong_type.accessors {
            if let State::Global { ty, .. } = &mut accessor.state {
                *ty = ScalarType::I64;
            }
        }
        let err = check(component, &wrong_type).unwrap_err().to_string();
        assert!(
            err.ends_with("has type `func() -> s32`, the synthesized WIT says `func() -> s64`"),
            "{err}"
        );

        let mut extra = plan.clone();
        extra.accessors.push(extra.accessors[0].clone());
        let err = check(component, &extra).unwrap_err().to_string();
        assert!(
            err.contains("exports 2 functions, the synthesized WIT has 3"),
            "{err}"
        );

        let mut renamed = plan.clone();
        renamed.accessors[0].func = "get-memory-9".to_string();
        let err = check(component, &renamed).unwrap_err().to_string();
        assert!(err.ends_with("lacks `get-memory-9`"), "{err}");

        let mut elsewhere = plan.clone();
        elsewhere.interface = "other:pkg/accessors@0.1.0".to_string();
        let err = check(component, &elsewhere).unwrap_err().to_string();
        assert!(
            err.contains("does not export `other:pkg/accessors@0.1.0`"),
            "{err}"
        );

        assert!(check(&component[..component.len() - 1], plan).is_err());
    }

    /// A function type in WIT syntax, as wit-parser resolved it.
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
                    let types: Vec<String> =
                        t.types.iter().map(|t| type_name(resolve, t)).collect();
                    format!("tuple<{}>", types.join(", "))
                }
                other => format!("{other:?}"),
            },
            other => format!("{other:?}").to_lowercase(),
        }
    }
}
