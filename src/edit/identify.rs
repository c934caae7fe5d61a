//! Telling functions apart inside a running component. No instruction
//! compares two function references, and a component runtime gives no
//! access to a core instance's tables, so the instrumented copy of each
//! module answers for its functions itself: every function that can become
//! a reference gets a probe prologue. While the instance's `probing` global
//! is set, the function stores 1 + its index in the instance's `found`
//! global and returns at once (zeros, nulls); otherwise it runs as before.
//! A reader that holds a reference sets `probing` in every instance, calls
//! the reference and sees which instance's `found` changed, and to what
//! (see [`crate::component::readers::table_reader`]).
//!
//! An imported function cannot carry a prologue: each one that can become a
//! reference is wrapped by a function of the module (the prologue, then a
//! call of the import), and every reference to the import (element
//! segments, `ref.func`, exports, initializers) names the wrapper instead,
//! which answers with the import's index. The output keeps the import: the
//! instrumented copy is only run.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use wasm_encoder::reencode::{Error, Reencode, RoundtripReencoder};
use wasm_encoder::{Function, Instruction as I, SectionId};
use wasmparser::{ExternalKind, Operator, Parser, Payload, TypeRef};

/// The function types of a module and which functions can become
/// references, as the prologue pass needs them.
#[derive(Default)]
pub struct FuncFacts {
    /// For each type index: the function type, when it is one.
    pub types: Vec<Option<wasmparser::FuncType>>,
    /// The type index of each function (imports first).
    pub funcs: Vec<u32>,
    /// Number of imported functions.
    pub imported: u32,
    /// The functions that can become references: those named by element
    /// segments, exports, initializers and `ref.func`.
    pub refs: BTreeSet<u32>,
    /// The tables the module defines: index and type.
    pub tables: Vec<(u32, wasmparser::TableType)>,
    /// The mutable reference-typed globals the module defines: index and
    /// type.
    pub ref_globals: Vec<(u32, wasmparser::RefType)>,
    /// Whether the module has a function section and a code section.
    has_functions: bool,
    has_code: bool,
}

impl FuncFacts {
    /// Reads the facts of the (valid) module `bytes`.
    pub fn of(bytes: &[u8]) -> Result<FuncFacts> {
        let mut facts = FuncFacts::default();
        let (mut imported_tables, mut imported_globals) = (0, 0);
        let refs_in = |expr: &wasmparser::ConstExpr<'_>, refs: &mut BTreeSet<u32>| {
            for op in expr.get_operators_reader() {
                if let Ok(Operator::RefFunc { function_index }) = op {
                    refs.insert(function_index);
                }
            }
        };
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for ty in group?.into_types() {
                            facts.types.push(match ty.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => Some(f),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        match import?.ty {
                            TypeRef::Func(ty) => {
                                facts.funcs.push(ty);
                                facts.imported += 1;
                            }
                            TypeRef::Table(_) => imported_tables += 1,
                            TypeRef::Global(_) => imported_globals += 1,
                            _ => {}
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    facts.has_functions = true;
                    for ty in reader {
                        facts.funcs.push(ty?);
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        let table = table?;
                        let index = imported_tables + facts.tables.len() as u32;
                        facts.tables.push((index, table.ty));
                        if let wasmparser::TableInit::Expr(expr) = table.init {
                            refs_in(&expr, &mut facts.refs);
                        }
                    }
                }
                Payload::GlobalSection(reader) => {
                    for (i, global) in reader.into_iter().enumerate() {
                        let global = global?;
                        if let (true, wasmparser::ValType::Ref(ty)) =
                            (global.ty.mutable, global.ty.content_type)
                        {
                            facts.ref_globals.push((imported_globals + i as u32, ty));
                        }
                        refs_in(&global.init_expr, &mut facts.refs);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        if export.kind == ExternalKind::Func {
                            facts.refs.insert(export.index);
                        }
                    }
                }
                Payload::ElementSection(reader) => {
                    for element in reader {
                        match element?.items {
                            wasmparser::ElementItems::Functions(funcs) => {
                                for func in funcs {
                                    facts.refs.insert(func?);
                                }
                            }
                            wasmparser::ElementItems::Expressions(_, exprs) => {
                                for expr in exprs {
                                    refs_in(&expr?, &mut facts.refs);
                                }
                            }
                        }
                    }
                }
                Payload::CodeSectionStart { .. } => facts.has_code = true,
                Payload::CodeSectionEntry(body) => {
                    for op in body.get_operators_reader()? {
                        if let Operator::RefFunc { function_index } = op? {
                            facts.refs.insert(function_index);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(facts)
    }

    /// The type of function `func`.
    pub fn func_type(&self, func: u32) -> Option<&wasmparser::FuncType> {
        let ty = *self.funcs.get(func as usize)?;
        self.types.get(ty as usize)?.as_ref()
    }
}

/// Whether a probe can call a function of type `ty` and have it return:
/// every parameter and result has a default value (numbers, vectors,
/// nullable references).
pub fn probeable(ty: &wasmparser::FuncType) -> bool {
    ty.params()
        .iter()
        .chain(ty.results())
        .all(|t| default_value(*t).is_ok())
}

/// The instruction that pushes the default value of `ty` (zero or null).
pub fn default_value(ty: wasmparser::ValType) -> Result<I<'static>> {
    Ok(match ty {
        wasmparser::ValType::I32 => I::I32Const(0),
        wasmparser::ValType::I64 => I::I64Const(0),
        wasmparser::ValType::F32 => I::F32Const(0.0.into()),
        wasmparser::ValType::F64 => I::F64Const(0.0.into()),
        wasmparser::ValType::V128 => I::V128Const(0),
        wasmparser::ValType::Ref(r) if r.is_nullable() => {
            I::RefNull(RoundtripReencoder.heap_type(r.heap_type())?)
        }
        wasmparser::ValType::Ref(_) => bail!("a non-nullable reference has no default value"),
    })
}

/// Adds probe prologues to the module `bytes` (valid, with mutable globals
/// `probing: i32` and `found: i32` already added), wrapping its imported
/// functions that can become references.
pub fn add_prologues(bytes: &[u8], probing: u32, found: u32) -> Result<Vec<u8>> {
    let facts = FuncFacts::of(bytes)?;
    let total = facts.funcs.len() as u32;
    let mut wrappers = BTreeMap::new();
    for &func in facts.refs.range(..facts.imported) {
        wrappers.insert(func, total + wrappers.len() as u32);
    }
    let mut pass = Prologues {
        next_body: facts.imported,
        facts,
        wrappers,
        probing,
        found,
        functions_done: false,
        code_done: false,
    };
    let mut module = wasm_encoder::Module::new();
    pass.parse_core_module(&mut module, Parser::new(0), bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("failed to add probe prologues")?;
    Ok(module.finish())
}

struct Prologues {
    facts: FuncFacts,
    /// Imported function → its wrapper.
    wrappers: BTreeMap<u32, u32>,
    probing: u32,
    found: u32,
    /// The index of the function whose body comes next.
    next_body: u32,
    functions_done: bool,
    code_done: bool,
}

impl Prologues {
    /// The prologue of function `func` (answering `answer`), or nothing
    /// when its type has results without a default.
    fn prologue(&self, func: u32, answer: u32) -> Result<Vec<I<'static>>> {
        let Some(ty) = self.facts.func_type(func) else {
            return Ok(Vec::new());
        };
        if !probeable(ty) {
            return Ok(Vec::new());
        }
        let mut code = vec![
            I::GlobalGet(self.probing),
            I::If(wasm_encoder::BlockType::Empty),
            I::I32Const(answer.wrapping_add(1) as i32),
            I::GlobalSet(self.found),
        ];
        for &result in ty.results() {
            code.push(default_value(result)?);
        }
        code.extend([I::Return, I::End]);
        Ok(code)
    }

    /// The wrapper of imported function `import`: prologue, then the call.
    fn wrapper(&self, import: u32) -> Result<Function> {
        let ty = self
            .facts
            .func_type(import)
            .with_context(|| format!("internal error: imported function {import} has no type"))?;
        let mut f = Function::new([]);
        for i in self.prologue(import, import)? {
            f.instruction(&i);
        }
        for param in 0..ty.params().len() as u32 {
            f.instruction(&I::LocalGet(param));
        }
        f.instruction(&I::Call(import));
        f.instruction(&I::End);
        Ok(f)
    }

    fn wrapper_types(&self) -> Vec<u32> {
        self.wrappers
            .keys()
            .map(|&import| self.facts.funcs[import as usize])
            .collect()
    }

    fn wrapper_bodies(&self, code: &mut wasm_encoder::CodeSection) -> Result<()> {
        for &import in self.wrappers.keys() {
            code.function(&self.wrapper(import)?);
        }
        Ok(())
    }
}

/// Where a section goes among the non-custom sections.
fn rank(id: SectionId) -> u8 {
    match id {
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
        _ => 0,
    }
}

impl Reencode for Prologues {
    type Error = anyhow::Error;

    fn function_index(&mut self, func: u32) -> Result<u32, Error<anyhow::Error>> {
        Ok(self.wrappers.get(&func).copied().unwrap_or(func))
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), Error<anyhow::Error>> {
        for ty in section {
            functions.function(self.type_index(ty?)?);
        }
        for ty in self.wrapper_types() {
            functions.function(ty);
        }
        self.functions_done = true;
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), Error<anyhow::Error>> {
        let func = self.next_body;
        self.next_body += 1;
        let mut f = self.new_function_with_parsed_locals(&body)?;
        if self.facts.refs.contains(&func) {
            for i in self.prologue(func, func).map_err(Error::UserError)? {
                f.instruction(&i);
            }
        }
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            f.instruction(&self.parse_instruction(&mut reader)?);
        }
        code.function(&f);
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), Error<anyhow::Error>> {
        for body in section {
            self.parse_function_body(code, body?)?;
        }
        self.wrapper_bodies(code).map_err(Error::UserError)?;
        self.code_done = true;
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), Error<anyhow::Error>> {
        if self.wrappers.is_empty() {
            return Ok(());
        }
        let at = |id: SectionId| {
            after.is_none_or(|a| rank(a) < rank(id)) && before.is_none_or(|b| rank(b) > rank(id))
        };
        if !self.facts.has_functions && !self.functions_done && at(SectionId::Function) {
            let mut functions = wasm_encoder::FunctionSection::new();
            for ty in self.wrapper_types() {
                functions.function(ty);
            }
            module.section(&functions);
            self.functions_done = true;
        }
        if !self.facts.has_code && !self.code_done && at(SectionId::Code) {
            let mut code = wasm_encoder::CodeSection::new();
            self.wrapper_bodies(&mut code).map_err(Error::UserError)?;
            module.section(&code);
            self.code_done = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_that_become_references_are_wrapped_and_prologues_added() -> Result<()> {
        let bytes = wat::parse_str(
            r#"(module
                (import "host" "f" (func $f (param i32) (result i32)))
                (import "host" "g" (func $g))
                (table 2 funcref)
                (elem (i32.const 0) func $f $h)
                (global $probing (mut i32) (i32.const 0))
                (global $found (mut i32) (i32.const 0))
                (func $h (result i64) (call $g) (i64.const 7))
                (func (export "get") (result funcref) (ref.func $f)))"#,
        )?;
        let out = add_prologues(&bytes, 0, 1)?;
        wasmparser::Validator::new_with_features(crate::edit::features()).validate_all(&out)?;
        let facts = FuncFacts::of(&out)?;
        // one wrapper (for $f), after the module's own functions
        assert_eq!(facts.funcs.len(), 5);
        assert_eq!(facts.func_type(4).map(|t| t.params().len()), Some(1));
        // the segment and `ref.func` now name the wrapper; $g stays called
        assert!(facts.refs.contains(&4) && !facts.refs.contains(&0));
        Ok(())
    }

    #[test]
    fn a_module_without_functions_of_its_own_gets_its_wrappers() -> Result<()> {
        // no function, code or global section to extend: they are inserted
        let bytes = wat::parse_str(
            r#"(module
                (import "host" "f" (func $f (param i32) (result i32)))
                (import "host" "probing" (global (mut i32)))
                (import "host" "found" (global (mut i32)))
                (table (export "t") 1 funcref)
                (elem (i32.const 0) func $f))"#,
        )?;
        let out = add_prologues(&bytes, 0, 1)?;
        wasmparser::Validator::new_with_features(crate::edit::features()).validate_all(&out)?;
        let facts = FuncFacts::of(&out)?;
        assert_eq!(facts.funcs.len(), 2);
        assert!(facts.refs.contains(&1) && !facts.refs.contains(&0));
        Ok(())
    }
}
