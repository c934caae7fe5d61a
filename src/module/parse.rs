//! Phase 1 for a core module: validate it and record what instrumenting and
//! rewriting need: the memories and mutable globals it defines, its
//! exports, and the imports that nothing at build time can provide.

use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use wasmparser::{
    AbstractHeapType, CompositeInnerType, ConstExpr, ElementItems, ExternalKind, HeapType,
    MemoryType, Operator, Parser, Payload, TypeRef, ValType, Validator, types::TypesRef,
};

use crate::edit::facts::{GlobalDef, MemoryDef};

/// What phase 1 learns about a core module.
pub struct ParsedModule {
    /// Memories the module defines, in index order.
    pub memories: Vec<MemoryDef>,
    /// Mutable globals the module defines, of a numeric or vector type.
    pub globals: Vec<GlobalDef>,
    /// Size of the global index space.
    pub global_count: u32,
    /// Number of imported functions.
    pub imported_funcs: u32,
    /// Mutable reference-typed globals, which init must not write.
    pub ref_globals: Vec<u32>,
    /// Every export: name, kind and index.
    pub exports: Vec<(String, ExternalKind, u32)>,
    /// The tables, with whether their slots hold functions (`funcref` or a
    /// typed function reference): only those can be snapshotted.
    pub tables: Vec<(u32, bool)>,
    /// The functions that can become references (the module's declared
    /// functions: those in element segments, global and table initializers
    /// and exports, which `ref.func` requires).
    pub refs: BTreeSet<u32>,
}

impl ParsedModule {
    /// The index of the function exported as `name`.
    pub fn exported_func(&self, name: &str) -> Option<u32> {
        self.exports
            .iter()
            .find(|(n, kind, _)| n == name && *kind == ExternalKind::Func)
            .map(|&(_, _, index)| index)
    }

    /// Whether anything is exported as `name`.
    pub fn exports(&self, name: &str) -> bool {
        self.exports.iter().any(|(n, _, _)| n == name)
    }
}

/// Whether `bytes` start like a core module (binary format, not a
/// component).
pub fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [0, 0]
}

/// Validates `bytes` as a core module and collects its facts. Imported
/// memories, tables and globals are refused: nothing at build time could
/// provide the ones the module would meet when it runs.
pub fn parse(bytes: &[u8]) -> Result<ParsedModule> {
    let mut validator = Validator::new_with_features(crate::edit::features());
    let types = validator
        .validate_all(bytes)
        .context("the input is not a valid WebAssembly module")?;
    let mut exports = Vec::new();
    let mut imported_funcs = 0;
    let mut refs = BTreeSet::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let what = match import.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => {
                            imported_funcs += 1;
                            continue;
                        }
                        TypeRef::Tag(_) => continue,
                        TypeRef::Memory(_) => "a memory",
                        TypeRef::Table(_) => "a table",
                        TypeRef::Global(_) => "a global",
                    };
                    bail!(
                        "the module imports {what} (`{}` `{}`): nothing at build time can \
                         provide the one it will be given when it runs, so its state cannot \
                         be snapshotted; define it in the module instead",
                        import.module,
                        import.name
                    );
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    if export.kind == ExternalKind::Func {
                        refs.insert(export.index);
                    }
                    exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            Payload::ElementSection(reader) => {
                for element in reader {
                    match element?.items {
                        ElementItems::Functions(funcs) => {
                            for func in funcs {
                                refs.insert(func?);
                            }
                        }
                        ElementItems::Expressions(_, exprs) => {
                            for expr in exprs {
                                ref_funcs(expr?, &mut refs)?;
                            }
                        }
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    ref_funcs(global?.init_expr, &mut refs)?;
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    if let wasmparser::TableInit::Expr(expr) = table?.init {
                        ref_funcs(expr, &mut refs)?;
                    }
                }
            }
            _ => {}
        }
    }
    let types: TypesRef<'_> = types.as_ref();
    let memories = (0..types.memory_count())
        .map(|index| MemoryDef {
            index,
            ty: types.memory_at(index),
        })
        .collect::<Vec<_>>();
    let mut globals = Vec::new();
    let mut ref_globals = Vec::new();
    for index in 0..types.global_count() {
        let ty = types.global_at(index);
        match ty.content_type {
            _ if !ty.mutable => {}
            ValType::Ref(_) => ref_globals.push(index),
            content => globals.push(GlobalDef { index, ty: content }),
        }
    }
    let tables = (0..types.table_count())
        .map(|index| {
            let element = types.table_at(index).element_type;
            (index, holds_functions(&types, element.heap_type()))
        })
        .collect();
    Ok(ParsedModule {
        memories,
        globals,
        global_count: types.global_count(),
        imported_funcs,
        ref_globals,
        exports,
        tables,
        refs,
    })
}

/// Whether references of heap type `ty` are functions.
fn holds_functions(types: &TypesRef<'_>, ty: HeapType) -> bool {
    match ty {
        HeapType::Abstract {
            ty: AbstractHeapType::Func | AbstractHeapType::NoFunc,
            ..
        } => true,
        HeapType::Concrete(index) | HeapType::Exact(index) => {
            index.as_core_type_id().is_some_and(|id| {
                matches!(types[id].composite_type.inner, CompositeInnerType::Func(_))
            })
        }
        HeapType::Abstract { .. } => false,
    }
}

/// Adds the functions `expr` references (`ref.func`) to `refs`.
fn ref_funcs(expr: ConstExpr<'_>, refs: &mut BTreeSet<u32>) -> Result<()> {
    for op in expr.get_operators_reader() {
        if let Operator::RefFunc { function_index } = op? {
            refs.insert(function_index);
        }
    }
    Ok(())
}

/// The page size of `ty`, as log2.
pub fn page_size_log2(ty: &MemoryType) -> u32 {
    ty.page_size_log2.unwrap_or(16)
}
