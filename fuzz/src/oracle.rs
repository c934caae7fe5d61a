//! The differential oracle: generate a component around a wasm-smith module,
//! run it as is (instantiate, call init, call every other export) and
//! pre-initialized (instantiate, call every other export), and compare.
//!
//! Shared by the `differential` test (`tests/all/differential.rs` includes
//! this file with `#[path]`) and by the `differential` fuzz target (through
//! this crate's `lib.rs`), so the two always check the same thing.
//!
//! The generated component:
//!
//! - core module 0, from wasm-smith: no imports, every item exported;
//! - core module 1, the *observer*: imports the memories and mutable globals
//!   module 0 exports and reads them (a whole memory as `list<u8>`, a global
//!   as `s32`/`s64` holding its bits, so NaN payloads are compared exactly);
//! - core module 2, the *glue*: imports one function of every instance of
//!   module 0 and exports `init`, which calls it with fixed arguments on
//!   every instance (they end init in the same state) or on the first only
//!   (they end in different states);
//! - module 0 instantiated once or twice, the observer once per instance of
//!   module 0, the glue once;
//! - exports: `component-init` (the glue's `init`), `iN-fK` for every function
//!   of instance N whose signature can be lifted, and `iN-mK`, `iN-gK`
//!   (`iN-gK-lo`/`-hi` for `v128`) for the observers.
//!
//! Every call runs with the same fuel budget on both sides, so loops in
//! generated code end the same way in both.

use anyhow::Result;
use arbitrary::Unstructured;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use wasm_encoder as enc;
use wasmparser as wp;
use wasmtime::component::{Component, Instance, Linker, Val};
use wasmtime::{Engine, Store, Trap};

/// Fuel for every instantiation and call, on both sides.
pub const FUEL: u64 = 100_000;

/// Name of the init export.
pub const INIT: &str = "component-init";

/// What one case came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both runs were compared and agreed; whether init changed any state
    /// the observers see (memories, mutable globals).
    Compared {
        /// Init changed observable state.
        init_changed_state: bool,
    },
    /// The original traps before init returns, and pre-initialization
    /// failed with an error, as it must.
    ErrorChecked(&'static str),
    /// Nothing to compare; why.
    Skipped(&'static str),
}

/// A difference between the two runs, an invalid output, or an unexpected
/// error or panic: a bug (in component-init, or in this harness).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub what: String,
    /// The component, as text.
    pub wat: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\ncomponent:\n{}", self.what, self.wat)
    }
}

/// Counts of verdicts over many cases.
#[derive(Debug, Default)]
pub struct Stats {
    /// Cases run.
    pub cases: usize,
    /// Cases compared.
    pub compared: usize,
    /// Compared cases in which init changed observable state.
    pub changed: usize,
    /// Calls (and observations) compared over all compared cases.
    pub steps: usize,
    /// Error-checked cases, by reason.
    pub error_checked: BTreeMap<&'static str, usize>,
    /// Skipped cases, by reason.
    pub skipped: BTreeMap<&'static str, usize>,
}

impl Stats {
    /// Records one verdict.
    pub fn record(&mut self, verdict: &Verdict, steps: usize) {
        self.cases += 1;
        match verdict {
            Verdict::Compared { init_changed_state } => {
                self.compared += 1;
                self.changed += usize::from(*init_changed_state);
                self.steps += steps;
            }
            Verdict::ErrorChecked(why) => *self.error_checked.entry(why).or_default() += 1,
            Verdict::Skipped(why) => *self.skipped.entry(why).or_default() += 1,
        }
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, other: Stats) {
        self.cases += other.cases;
        self.compared += other.compared;
        self.changed += other.changed;
        self.steps += other.steps;
        for (k, v) in other.error_checked {
            *self.error_checked.entry(k).or_default() += v;
        }
        for (k, v) in other.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} cases: {} compared (init changed state in {}; {} calls and observations), \
             {} error-checked, {} skipped",
            self.cases,
            self.compared,
            self.changed,
            self.steps,
            self.error_checked.values().sum::<usize>(),
            self.skipped.values().sum::<usize>()
        )?;
        for (why, n) in &self.error_checked {
            writeln!(f, "  error-checked: {why}: {n}")?;
        }
        for (why, n) in &self.skipped {
            writeln!(f, "  skipped: {why}: {n}")?;
        }
        Ok(())
    }
}

/// The wasm-smith configuration: modules without imports that export
/// everything, with small memories (maxima required), mutable globals, and no
/// feature component-init rejects by design (shared memories, GC,
/// exceptions). Reference types are on in half of the cases; their mutable
/// globals are a documented limitation and counted as skipped.
pub fn smith_config(u: &mut Unstructured<'_>) -> arbitrary::Result<wasm_smith::Config> {
    let reference_types = u.arbitrary()?;
    // Most cases keep wasm-smith from generating traps (it guards
    // divisions, loads, ...; stack overflows remain), so that more of them
    // get past init; the others trap freely.
    let disallow_traps = u.ratio(3, 4)?;
    Ok(wasm_smith::Config {
        max_imports: 0,
        min_types: 1,
        min_funcs: 1,
        max_funcs: 8,
        export_everything: true,
        min_globals: 1,
        max_globals: 6,
        min_memories: u.int_in_range(0..=1)?,
        max_memories: 3,
        memory_max_size_required: true,
        max_memory32_bytes: 3 << 16,
        max_memory64_bytes: 3 << 16,
        memory64_enabled: true,
        custom_page_sizes_enabled: true,
        max_tables: if reference_types { 2 } else { 1 },
        table_max_size_required: true,
        max_table_elements: 16,
        max_elements: 8,
        max_element_segments: 3,
        max_data_segments: 4,
        max_types: 10,
        max_instructions: 60,
        max_type_size: 300,
        reference_types_enabled: reference_types,
        disallow_traps,
        bulk_memory_enabled: true,
        multi_value_enabled: true,
        simd_enabled: true,
        relaxed_simd_enabled: true,
        tail_call_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        extended_const_enabled: true,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_descriptors_enabled: false,
        wide_arithmetic_enabled: false,
        ..wasm_smith::Config::default()
    })
}

/// An exported function of the generated module.
struct FuncExport {
    name: String,
    params: Vec<wp::ValType>,
    results: Vec<wp::ValType>,
}

/// An exported memory of the generated module.
struct MemoryExport {
    name: String,
    ty: wp::MemoryType,
}

/// An exported mutable global of the generated module.
struct GlobalExport {
    name: String,
    ty: wp::ValType,
}

struct ModuleExports {
    funcs: Vec<FuncExport>,
    memories: Vec<MemoryExport>,
    globals: Vec<GlobalExport>,
}

fn module_exports(module: &[u8]) -> Result<ModuleExports> {
    let types = wp::Validator::new_with_features(wp::WasmFeatures::all()).validate_all(module)?;
    let types = types.as_ref();
    let mut exports = ModuleExports {
        funcs: Vec::new(),
        memories: Vec::new(),
        globals: Vec::new(),
    };
    for payload in wp::Parser::new(0).parse_all(module) {
        let wp::Payload::ExportSection(section) = payload? else {
            continue;
        };
        for export in section {
            let export = export?;
            let name = export.name.to_string();
            match export.kind {
                wp::ExternalKind::Func | wp::ExternalKind::FuncExact => {
                    let ty = types[types.core_function_at(export.index)].unwrap_func();
                    exports.funcs.push(FuncExport {
                        name,
                        params: ty.params().to_vec(),
                        results: ty.results().to_vec(),
                    });
                }
                wp::ExternalKind::Memory => exports.memories.push(MemoryExport {
                    name,
                    ty: types.memory_at(export.index),
                }),
                wp::ExternalKind::Global => {
                    let ty = types.global_at(export.index);
                    if ty.mutable {
                        exports.globals.push(GlobalExport {
                            name,
                            ty: ty.content_type,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    Ok(exports)
}

fn scalar(ty: wp::ValType) -> Option<enc::PrimitiveValType> {
    Some(match ty {
        wp::ValType::I32 => enc::PrimitiveValType::S32,
        wp::ValType::I64 => enc::PrimitiveValType::S64,
        wp::ValType::F32 => enc::PrimitiveValType::F32,
        wp::ValType::F64 => enc::PrimitiveValType::F64,
        _ => return None,
    })
}

/// Whether the core signature lifts directly to a component function:
/// scalar parameters (at most 16, the flat limit) and at most one scalar
/// result.
fn liftable(f: &FuncExport) -> bool {
    f.params.len() <= 16
        && f.results.len() <= 1
        && f.params
            .iter()
            .chain(&f.results)
            .all(|t| scalar(*t).is_some())
}

/// Whether the glue can call it with constant arguments (`ref.null` for
/// references).
fn callable_by_glue(f: &FuncExport) -> bool {
    f.params.iter().all(|t| match t {
        wp::ValType::Ref(r) => r.is_nullable(),
        _ => true,
    })
}

fn enc_val(ty: wp::ValType) -> Result<enc::ValType> {
    use enc::reencode::Reencode;
    Ok(enc::reencode::RoundtripReencoder.val_type(ty)?)
}

/// An integer, mostly small (the interesting values for generated code), or
/// any bits.
fn int(u: &mut Unstructured<'_>) -> arbitrary::Result<i64> {
    Ok(if u.ratio(2, 3)? {
        u.int_in_range(-4..=20)?
    } else {
        u.arbitrary()?
    })
}

/// A constant for the glue to pass as a parameter of type `ty`.
fn const_instr(ty: wp::ValType, u: &mut Unstructured<'_>) -> Result<enc::Instruction<'static>> {
    let v = int(u)?;
    Ok(match ty {
        wp::ValType::I32 => enc::Instruction::I32Const(v as i32),
        wp::ValType::I64 => enc::Instruction::I64Const(v),
        wp::ValType::F32 => enc::Instruction::F32Const((v as f32).into()),
        wp::ValType::F64 => enc::Instruction::F64Const((v as f64).into()),
        wp::ValType::V128 => enc::Instruction::V128Const(i128::from(v)),
        wp::ValType::Ref(r) if r.is_nullable() => {
            use enc::reencode::Reencode;
            enc::Instruction::RefNull(enc::reencode::RoundtripReencoder.heap_type(r.heap_type())?)
        }
        other => anyhow::bail!("no constant for {other}"),
    })
}

/// A component-level argument of type `ty`.
fn arg(ty: wp::ValType, u: &mut Unstructured<'_>) -> arbitrary::Result<Val> {
    let v = int(u)?;
    Ok(match ty {
        wp::ValType::I32 => Val::S32(v as i32),
        wp::ValType::I64 => Val::S64(v),
        wp::ValType::F32 if u.ratio(1, 4)? => Val::Float32(f32::from_bits(u.arbitrary()?)),
        wp::ValType::F32 => Val::Float32(v as f32),
        wp::ValType::F64 if u.ratio(1, 4)? => Val::Float64(f64::from_bits(u.arbitrary()?)),
        _ => Val::Float64(v as f64),
    })
}

/// What the harness does after init, on both sides.
#[derive(Debug, Clone)]
pub enum Step {
    /// Call an export with arguments.
    Call(String, Vec<Val>),
    /// Read a memory through an observer (`list<u8>`).
    Memory(String),
    /// Read a global's bits through an observer (`s32` or `s64`).
    Global(String, bool),
}

impl Step {
    fn name(&self) -> &str {
        match self {
            Step::Call(name, _) | Step::Memory(name) | Step::Global(name, _) => name,
        }
    }
}

/// A generated case.
pub struct Case {
    /// The component.
    pub component: Vec<u8>,
    /// Which exported function of the module init calls.
    pub init: usize,
    /// Steps after init: observations, every other export, observations.
    pub steps: Vec<Step>,
    /// How many observations start (and end) `steps`.
    pub observations: usize,
}

/// Generates a case from `u`; `None` when wasm-smith cannot, or the module
/// has no function the glue can call.
pub fn generate(u: &mut Unstructured<'_>) -> Result<Option<Case>> {
    match Generated::new(u)? {
        Some(g) => g.case(u, &[]),
        None => Ok(None),
    }
}

/// A generated module, before it is wrapped into a component.
pub struct Generated {
    module: Vec<u8>,
    exports: ModuleExports,
}

impl Generated {
    /// Generates a module from `u`; `None` when wasm-smith cannot.
    pub fn new(u: &mut Unstructured<'_>) -> Result<Option<Generated>> {
        let config = smith_config(u)?;
        let module = match wasm_smith::Module::new(config, u) {
            Ok(m) => m.to_bytes(),
            Err(_) => return Ok(None),
        };
        let exports = module_exports(&module)?;
        Ok(Some(Generated { module, exports }))
    }

    /// Wraps the module into a component whose init calls one of the
    /// module's functions, not one of `tried` (indices of exported
    /// functions); `None` when none is left that the glue can call.
    pub fn case(&self, u: &mut Unstructured<'_>, tried: &[usize]) -> Result<Option<Case>> {
        let candidates: Vec<usize> = (0..self.exports.funcs.len())
            .filter(|i| !tried.contains(i) && callable_by_glue(&self.exports.funcs[*i]))
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        let init = *u.choose(&candidates)?;
        build(&self.module, &self.exports, init, u).map(Some)
    }
}

/// Builds the component around `module`, with its exported function `init`
/// behind the init export.
fn build(
    module: &[u8],
    exports: &ModuleExports,
    init_index: usize,
    u: &mut Unstructured<'_>,
) -> Result<Case> {
    let init = &exports.funcs[init_index];
    let instances: u32 = if u.ratio(1, 3)? { 2 } else { 1 };
    let instance_names: Vec<String> = (0..instances).map(|i| format!("m{i}")).collect();

    // The observer: imports state from "s", reads it.
    let mut observer = enc::Module::new();
    let mut types = enc::TypeSection::new();
    types.ty().function([], [enc::ValType::I32]); // 0
    types.ty().function([], [enc::ValType::I64]); // 1
    let mut imports = enc::ImportSection::new();
    for m in &exports.memories {
        imports.import(
            "s",
            &m.name,
            enc::MemoryType {
                minimum: 0,
                maximum: None,
                memory64: m.ty.memory64,
                shared: false,
                page_size_log2: m.ty.page_size_log2,
            },
        );
    }
    for g in &exports.globals {
        imports.import(
            "s",
            &g.name,
            enc::GlobalType {
                val_type: enc_val(g.ty)?,
                mutable: true,
                shared: false,
            },
        );
    }
    let own = exports.memories.len() as u32;
    let mut functions = enc::FunctionSection::new();
    let mut code = enc::CodeSection::new();
    let mut observer_exports = enc::ExportSection::new();
    // (export name, is memory, is 64-bit)
    let mut observer_funcs: Vec<(String, bool, bool)> = Vec::new();
    for (k, m) in exports.memories.iter().enumerate() {
        use enc::Instruction as I;
        let k = k as u32;
        let mut f = enc::Function::new([(2, enc::ValType::I32)]);
        let (len, delta) = (0, 1);
        f.instruction(&I::MemorySize(k));
        if m.ty.memory64 {
            f.instruction(&I::I32WrapI64);
        }
        f.instruction(&I::I32Const(m.ty.page_size_log2.unwrap_or(16) as i32))
            .instruction(&I::I32Shl)
            .instruction(&I::LocalSet(len))
            // own pages needed for 8 + len bytes, minus own pages there are
            .instruction(&I::LocalGet(len))
            .instruction(&I::I32Const(8 + 0xffff))
            .instruction(&I::I32Add)
            .instruction(&I::I32Const(16))
            .instruction(&I::I32ShrU)
            .instruction(&I::MemorySize(own))
            .instruction(&I::I32Sub)
            .instruction(&I::LocalTee(delta))
            .instruction(&I::I32Const(0))
            .instruction(&I::I32GtS)
            .instruction(&I::If(enc::BlockType::Empty))
            .instruction(&I::LocalGet(delta))
            .instruction(&I::MemoryGrow(own))
            .instruction(&I::Drop)
            .instruction(&I::End)
            .instruction(&I::I32Const(8));
        f.instruction(&if m.ty.memory64 {
            I::I64Const(0)
        } else {
            I::I32Const(0)
        });
        f.instruction(&I::LocalGet(len))
            .instruction(&I::MemoryCopy {
                dst_mem: own,
                src_mem: k,
            })
            .instruction(&I::I32Const(0))
            .instruction(&I::I32Const(8))
            .instruction(&I::I32Store(mem_arg(own, 0)))
            .instruction(&I::I32Const(0))
            .instruction(&I::LocalGet(len))
            .instruction(&I::I32Store(mem_arg(own, 4)))
            .instruction(&I::I32Const(0))
            .instruction(&I::End);
        let name = format!("m{k}");
        observer_exports.export(&name, enc::ExportKind::Func, observer_funcs.len() as u32);
        functions.function(0);
        code.function(&f);
        observer_funcs.push((name, true, false));
    }
    for (k, g) in exports.globals.iter().enumerate() {
        use enc::Instruction as I;
        let reads: Vec<(String, Vec<I<'_>>, bool)> = match g.ty {
            wp::ValType::I32 => vec![(format!("g{k}"), vec![], false)],
            wp::ValType::F32 => vec![(format!("g{k}"), vec![I::I32ReinterpretF32], false)],
            wp::ValType::I64 => vec![(format!("g{k}"), vec![], true)],
            wp::ValType::F64 => vec![(format!("g{k}"), vec![I::I64ReinterpretF64], true)],
            wp::ValType::V128 => vec![
                (format!("g{k}-lo"), vec![I::I64x2ExtractLane(0)], true),
                (format!("g{k}-hi"), vec![I::I64x2ExtractLane(1)], true),
            ],
            // reference-typed globals cannot be observed (nor snapshotted)
            _ => vec![],
        };
        for (name, convert, wide) in reads {
            let mut f = enc::Function::new([]);
            f.instruction(&I::GlobalGet(k as u32));
            for i in &convert {
                f.instruction(i);
            }
            f.instruction(&I::End);
            observer_exports.export(&name, enc::ExportKind::Func, observer_funcs.len() as u32);
            functions.function(u32::from(wide));
            code.function(&f);
            observer_funcs.push((name, false, wide));
        }
    }
    let mut memories = enc::MemorySection::new();
    memories.memory(enc::MemoryType {
        minimum: 0,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    observer_exports.export("mem", enc::ExportKind::Memory, own);
    observer
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&memories)
        .section(&observer_exports)
        .section(&code);

    // The glue: calls `init` on every instance.
    let mut glue = enc::Module::new();
    let mut types = enc::TypeSection::new();
    types.ty().function(
        init.params
            .iter()
            .map(|t| enc_val(*t))
            .collect::<Result<Vec<_>>>()?,
        init.results
            .iter()
            .map(|t| enc_val(*t))
            .collect::<Result<Vec<_>>>()?,
    );
    types.ty().function([], []);
    let mut imports = enc::ImportSection::new();
    for name in &instance_names {
        imports.import(name, &init.name, enc::EntityType::Function(0));
    }
    let mut functions = enc::FunctionSection::new();
    functions.function(1);
    let mut f = enc::Function::new([]);
    // The same arguments for every instance, so that they end in the same
    // state.
    let args = (init.params.iter())
        .map(|p| const_instr(*p, u))
        .collect::<Result<Vec<_>>>()?;
    // Init runs on every instance, or (half the time, with two) on the
    // first only, so that the instances end init in different states.
    let initialized = if instances == 2 && u.arbitrary()? {
        1
    } else {
        instances
    };
    for i in 0..initialized {
        for arg in &args {
            f.instruction(arg);
        }
        f.instruction(&enc::Instruction::Call(i));
        for _ in &init.results {
            f.instruction(&enc::Instruction::Drop);
        }
    }
    f.instruction(&enc::Instruction::End);
    let mut code = enc::CodeSection::new();
    code.function(&f);
    let mut glue_exports = enc::ExportSection::new();
    glue_exports.export("init", enc::ExportKind::Func, instances);
    glue.section(&types)
        .section(&imports)
        .section(&functions)
        .section(&glue_exports)
        .section(&code);

    // The component.
    let mut c = enc::Component::new();
    c.section(&enc::RawSection {
        id: enc::ComponentSectionId::CoreModule.into(),
        data: module,
    });
    c.section(&enc::ModuleSection(&observer));
    c.section(&enc::ModuleSection(&glue));
    let mut core_instances = enc::InstanceSection::new();
    for _ in 0..instances {
        core_instances.instantiate(0, Vec::<(&str, enc::ModuleArg)>::new());
    }
    for i in 0..instances {
        core_instances.instantiate(1, [("s", enc::ModuleArg::Instance(i))]);
    }
    core_instances.instantiate(
        2,
        instance_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), enc::ModuleArg::Instance(i as u32))),
    );
    c.section(&core_instances);
    let glue_instance = 2 * instances;

    // Core functions and memories aliased out of the instances, and what
    // each lifted function is.
    let mut aliases = enc::ComponentAliasSection::new();
    let mut core_funcs = 0u32;
    let mut alias_func = |aliases: &mut enc::ComponentAliasSection, instance, name: &str| {
        aliases.alias(enc::Alias::CoreInstanceExport {
            instance,
            kind: enc::ExportKind::Func,
            name,
        });
        core_funcs += 1;
        core_funcs - 1
    };
    let mut type_section = enc::ComponentTypeSection::new();
    type_section
        .defined_type()
        .list(enc::ComponentValType::Primitive(enc::PrimitiveValType::U8));
    let list_u8 = 0;
    let mut canon = enc::CanonicalFunctionSection::new();
    let mut component_exports = enc::ComponentExportSection::new();
    let mut lifted = 0u32;
    let mut lift = |types: &mut enc::ComponentTypeSection,
                    canon: &mut enc::CanonicalFunctionSection,
                    exports: &mut enc::ComponentExportSection,
                    name: &str,
                    core_func: u32,
                    params: &[wp::ValType],
                    result: Option<enc::ComponentValType>,
                    memory: Option<u32>| {
        let ty = types.len();
        types
            .function()
            .params(
                params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        (
                            format!("p{i}"),
                            enc::ComponentValType::Primitive(
                                scalar(*p).unwrap_or(enc::PrimitiveValType::S32),
                            ),
                        )
                    })
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|(n, t)| (n.as_str(), *t)),
            )
            .result(result);
        canon.lift(core_func, ty, memory.map(enc::CanonicalOption::Memory));
        exports.export(name, enc::ComponentExportKind::Func, lifted, None);
        lifted += 1;
    };

    let init_func = alias_func(&mut aliases, glue_instance, "init");
    lift(
        &mut type_section,
        &mut canon,
        &mut component_exports,
        INIT,
        init_func,
        &[],
        None,
        None,
    );
    let mut calls = Vec::new();
    let mut observations = Vec::new();
    for i in 0..instances {
        for (k, f) in exports.funcs.iter().filter(|f| liftable(f)).enumerate() {
            let name = format!("i{i}-f{k}");
            let core = alias_func(&mut aliases, i, &f.name);
            let result = f.results.first().map(|t| {
                enc::ComponentValType::Primitive(scalar(*t).unwrap_or(enc::PrimitiveValType::S32))
            });
            lift(
                &mut type_section,
                &mut canon,
                &mut component_exports,
                &name,
                core,
                &f.params,
                result,
                None,
            );
            let args = f
                .params
                .iter()
                .map(|p| arg(*p, u))
                .collect::<arbitrary::Result<_>>()?;
            calls.push(Step::Call(name, args));
        }
        let observer_instance = instances + i;
        aliases.alias(enc::Alias::CoreInstanceExport {
            instance: observer_instance,
            kind: enc::ExportKind::Memory,
            name: "mem",
        });
        // the observers' memories are aliased one per instance, in order
        let memory = i;
        for (name, is_memory, wide) in &observer_funcs {
            let export = format!("i{i}-{name}");
            let core = alias_func(&mut aliases, observer_instance, name);
            let (result, step) = if *is_memory {
                (
                    enc::ComponentValType::Type(list_u8),
                    Step::Memory(export.clone()),
                )
            } else if *wide {
                (
                    enc::ComponentValType::Primitive(enc::PrimitiveValType::S64),
                    Step::Global(export.clone(), true),
                )
            } else {
                (
                    enc::ComponentValType::Primitive(enc::PrimitiveValType::S32),
                    Step::Global(export.clone(), false),
                )
            };
            lift(
                &mut type_section,
                &mut canon,
                &mut component_exports,
                &export,
                core,
                &[],
                Some(result),
                is_memory.then_some(memory),
            );
            observations.push(step);
        }
    }
    c.section(&aliases);
    c.section(&type_section);
    c.section(&canon);
    c.section(&component_exports);

    let observation_count = observations.len();
    let mut steps = observations.clone();
    steps.extend(calls);
    steps.extend(observations);
    Ok(Case {
        component: c.finish(),
        init: init_index,
        steps,
        observations: observation_count,
    })
}

fn mem_arg(memory_index: u32, offset: u64) -> enc::MemArg {
    enc::MemArg {
        offset,
        align: 2,
        memory_index,
    }
}

/// The engine both sides run on: the features component-init's own runtime
/// enables, plus fuel.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.wasm_multi_memory(true);
        config.wasm_memory64(true);
        config.wasm_custom_page_sizes(true);
        config.consume_fuel(true);
        Engine::new(&config).expect("the harness engine is configured correctly")
    })
}

/// What one step returned.
#[derive(Debug, Clone)]
enum Outcome {
    Values(Vec<Val>),
    Bytes(Vec<u8>),
    /// A trap (its code) or another error (its message).
    Trap(String),
}

fn trap_of(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(trap) => format!("trap: {trap:?}"),
        None => format!("error: {e:#}"),
    }
}

fn is_out_of_fuel(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel))
}

/// NaN-aware equality of results: NaNs are equal whatever their payload
/// (the tool keeps NaN bits in globals and memory; those are compared
/// exactly through the observers).
fn same_val(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Float32(x), Val::Float32(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Val::Float64(x), Val::Float64(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        _ => a == b,
    }
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Values(a), Outcome::Values(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_val(x, y))
        }
        (Outcome::Bytes(a), Outcome::Bytes(b)) => a == b,
        (Outcome::Trap(a), Outcome::Trap(b)) => a == b || (exhausted(a) && exhausted(b)),
        _ => false,
    }
}

/// Whether a trap is resource exhaustion. Running out of fuel and
/// overflowing the stack are the same outcome here: which comes first in
/// deep recursion depends on stack frame sizes, which depend on how the
/// module is compiled, and the output is a different module (for example
/// `elem.drop` of a segment that was active compiles to nothing, of the
/// empty passive segment that replaces it in the output to a libcall, so the
/// frame grows).
fn exhausted(trap: &str) -> bool {
    trap == "trap: OutOfFuel" || trap == STACK_OVERFLOW
}

const STACK_OVERFLOW: &str = "trap: StackOverflow";

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Values(v) => format!("{v:?}"),
        Outcome::Trap(t) => t.clone(),
        Outcome::Bytes(b) => format!("{} bytes", b.len()),
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(
            "first difference at byte {i}: {:#04x} vs {:#04x}",
            a[i], b[i]
        ),
        None => format!("lengths {} vs {}", a.len(), b.len()),
    }
}

fn step(store: &mut Store<()>, instance: &Instance, step: &Step) -> Outcome {
    store.set_fuel(FUEL).expect("fuel is enabled");
    let result = (|| -> wasmtime::Result<Outcome> {
        let name = step.name();
        let missing = || wasmtime::format_err!("no export `{name}`");
        Ok(match step {
            Step::Call(_, args) => {
                let func = instance.get_func(&mut *store, name).ok_or_else(missing)?;
                let mut results = vec![Val::Bool(false); func.ty(&*store).results().len()];
                func.call(&mut *store, args, &mut results)?;
                Outcome::Values(results)
            }
            Step::Memory(_) => {
                let func = instance.get_typed_func::<(), (Vec<u8>,)>(&mut *store, name)?;
                Outcome::Bytes(func.call(&mut *store, ())?.0)
            }
            Step::Global(_, false) => {
                let func = instance.get_typed_func::<(), (i32,)>(&mut *store, name)?;
                Outcome::Values(vec![Val::S32(func.call(&mut *store, ())?.0)])
            }
            Step::Global(_, true) => {
                let func = instance.get_typed_func::<(), (i64,)>(&mut *store, name)?;
                Outcome::Values(vec![Val::S64(func.call(&mut *store, ())?.0)])
            }
        })
    })();
    result.unwrap_or_else(|e| Outcome::Trap(trap_of(&e)))
}

/// Runs `steps` until the first trap (the instance may not be entered
/// again after one).
fn run_steps(store: &mut Store<()>, instance: &Instance, steps: &[Step]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for s in steps {
        let o = step(store, instance, s);
        let trapped = matches!(o, Outcome::Trap(_));
        out.push(o);
        if trapped {
            break;
        }
    }
    out
}

fn wat_of(bytes: &[u8]) -> String {
    wasmprinter::print_bytes(bytes).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

/// Runs one case from `u`: the whole differential check. `Ok` with what
/// happened and how many steps were compared; `Err` for a bug.
pub fn check(u: &mut Unstructured<'_>) -> Result<(Verdict, usize), Failure> {
    let harness = |e: anyhow::Error| {
        if e.downcast_ref::<arbitrary::Error>().is_some() {
            return Ok((Verdict::Skipped("input too short"), 0));
        }
        Err(Failure {
            what: format!("harness: generation failed: {e:#}"),
            wat: String::new(),
        })
    };
    let generated = match Generated::new(u) {
        Ok(Some(g)) => g,
        Ok(None) => return Ok((Verdict::Skipped("wasm-smith generated no module"), 0)),
        Err(e) => return harness(e),
    };
    // When init traps or runs out of fuel (the error is checked), or changes
    // no state, another function is tried as init (up to four), so that
    // more cases compare state that init made.
    let mut tried = Vec::new();
    let mut first = None;
    let mut compared = None;
    while tried.len() < ATTEMPTS {
        let case = match generated.case(u, &tried) {
            Ok(Some(case)) => case,
            Ok(None) => break,
            Err(e) => return harness(e),
        };
        tried.push(case.init);
        let (verdict, steps) = check_case(&case)?;
        match verdict {
            Verdict::ErrorChecked(INIT_TRAPS) | Verdict::Skipped(INIT_OUT_OF_FUEL) => {
                first.get_or_insert((verdict, steps));
            }
            Verdict::Compared {
                init_changed_state: false,
            } => {
                compared.get_or_insert((verdict, steps));
            }
            _ => return Ok((verdict, steps)),
        }
    }
    Ok(compared
        .or(first)
        .unwrap_or((Verdict::Skipped("no function that init can call"), 0)))
}

/// A call overflows the stack on one side only; see [`exhausted`].
const STACK_DEPTH_DIFFERS: &str = "a call overflows the stack on one side only (stack use is \
                                   implementation-defined)";

/// How many functions [`check`] tries as init.
const ATTEMPTS: usize = 4;
const INIT_TRAPS: &str = "init traps (with every function tried)";
const INIT_OUT_OF_FUEL: &str = "init runs out of fuel (with every function tried)";

/// The differential check for one generated case.
pub fn check_case(case: &Case) -> Result<(Verdict, usize), Failure> {
    let fail = |what: String| Failure {
        what,
        wat: wat_of(&case.component),
    };
    if let Err(e) =
        wp::Validator::new_with_features(wp::WasmFeatures::all()).validate_all(&case.component)
    {
        return Err(fail(format!(
            "harness: generated component is invalid: {e:#}"
        )));
    }
    let engine = engine();
    let original = match Component::new(engine, &case.component) {
        Ok(c) => c,
        Err(_) => {
            return Ok((
                Verdict::Skipped("Wasmtime cannot compile the generated component"),
                0,
            ));
        }
    };
    let linker = Linker::<()>::new(engine);
    let mut store = Store::new(engine, ());
    store.set_fuel(FUEL).expect("fuel is enabled");

    // The original: instantiate (start functions run), init, the rest.
    let (why, overflow) = match linker.instantiate(&mut store, &original) {
        Err(e) if is_out_of_fuel(&e) => {
            return Ok((Verdict::Skipped("a start function runs out of fuel"), 0));
        }
        Err(e) => (
            "instantiation traps (a start function or a data segment)",
            trap_of(&e) == STACK_OVERFLOW,
        ),
        Ok(instance) => match step(&mut store, &instance, &Step::Call(INIT.into(), vec![])) {
            Outcome::Trap(t) if t == "trap: OutOfFuel" => {
                return Ok((Verdict::Skipped(INIT_OUT_OF_FUEL), 0));
            }
            Outcome::Trap(t) => (INIT_TRAPS, t == STACK_OVERFLOW),
            _ => {
                let expected = run_steps(&mut store, &instance, &case.steps);
                // The same observations on a fresh instance, without init:
                // did init change anything?
                let mut fresh = Store::new(engine, ());
                fresh.set_fuel(FUEL).expect("fuel is enabled");
                let instance = linker
                    .instantiate(&mut fresh, &original)
                    .map_err(|e| fail(format!("a second instantiation failed: {e:#}")))?;
                let observations = &case.steps[..case.observations];
                let before = run_steps(&mut fresh, &instance, observations);
                let changed = !(before.iter().zip(&expected)).all(|(a, b)| same(a, b));
                return compare(case, expected, changed).map_err(fail);
            }
        },
    };

    // The original traps before init returns: pre-initialization must fail,
    // with an error.
    match pre_init(&case.component) {
        // The instrumented code may use less stack than the original.
        Ok(Ok(_)) if overflow => Ok((Verdict::Skipped(STACK_DEPTH_DIFFERS), 0)),
        Ok(Ok(_)) => Err(fail(format!(
            "the original traps ({why}) but pre-initialization succeeded"
        ))),
        Ok(Err(_)) => Ok((Verdict::ErrorChecked(why), 0)),
        Err(panic) => Err(fail(format!("pre-initialization panicked: {panic}"))),
    }
}

/// Runs component-init's Wasmtime pipeline, turning a panic into `Err`.
fn pre_init(component: &[u8]) -> Result<Result<Vec<u8>>, String> {
    std::panic::catch_unwind(|| {
        component_init::initialize_with_wasmtime(
            component,
            &component_init::InstrumentOptions::default(),
        )
    })
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(no message)".into())
    })
}

/// The documented limitation a pre-initialization error reports, if any:
/// tables and reference-typed globals cannot be snapshotted, so neither init
/// nor a start function may change them; mutable globals of some types are
/// rejected outright.
fn documented_limitation(msg: &str) -> Option<&'static str> {
    let during_init = msg.contains("so init must not change them");
    let at_instantiation = msg.contains("so instantiation must not change them");
    Some(if msg.contains("cannot snapshot yet") {
        "a mutable global of an unsupported type (documented)"
    } else if at_instantiation {
        "a start function changes a table or reference-typed global (documented)"
    } else if during_init && msg.contains("tables cannot be snapshotted") {
        "init changes a table (documented)"
    } else if during_init && msg.contains("reference-typed globals cannot be snapshotted") {
        "init changes a reference-typed global (documented)"
    } else if during_init {
        "init changes other unsnapshottable state (documented)"
    } else {
        return None;
    })
}

/// Pre-initializes and compares the output's run with `expected`, the
/// original's.
fn compare(
    case: &Case,
    expected: Vec<Outcome>,
    init_changed_state: bool,
) -> Result<(Verdict, usize), String> {
    let output = match pre_init(&case.component) {
        Err(panic) => return Err(format!("pre-initialization panicked: {panic}")),
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            if let Some(why) = documented_limitation(&msg) {
                return Ok((Verdict::Skipped(why), 0));
            }
            if msg.contains("call stack exhausted") {
                // The instrumented code may use more stack than the original.
                return Ok((Verdict::Skipped(STACK_DEPTH_DIFFERS), 0));
            }
            return Err(format!(
                "pre-initialization failed, but the original's init returns: {msg}"
            ));
        }
        Ok(Ok(output)) => output,
    };
    if let Err(e) = wp::Validator::new_with_features(wp::WasmFeatures::all()).validate_all(&output)
    {
        return Err(format!(
            "the output does not validate: {e:#}\noutput:\n{}",
            wat_of(&output)
        ));
    }
    let engine = engine();
    let component = Component::new(engine, &output)
        .map_err(|e| format!("Wasmtime cannot compile the output: {e:#}"))?;
    if component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name == INIT)
    {
        return Err(format!("the output still exports `{INIT}`"));
    }
    let mut store = Store::new(engine, ());
    store.set_fuel(FUEL).expect("fuel is enabled");
    let instance = Linker::<()>::new(engine)
        .instantiate(&mut store, &component)
        .map_err(|e| format!("the output fails to instantiate: {}", trap_of(&e)))?;
    let actual = run_steps(&mut store, &instance, &case.steps);
    for (i, (s, (a, b))) in case
        .steps
        .iter()
        .zip(expected.iter().zip(&actual))
        .enumerate()
    {
        if !same(a, b) {
            let overflow = |o: &Outcome| matches!(o, Outcome::Trap(t) if t == STACK_OVERFLOW);
            if overflow(a) || overflow(b) {
                // How deep recursion may go is up to the implementation.
                return Ok((Verdict::Skipped(STACK_DEPTH_DIFFERS), 0));
            }
            let detail = match (a, b) {
                (Outcome::Bytes(a), Outcome::Bytes(b)) => first_difference(a, b),
                _ => String::new(),
            };
            return Err(format!(
                "step {i} (`{}`) differs: original {}, pre-initialized {} {detail}\noutput:\n{}",
                s.name(),
                describe(a),
                describe(b),
                wat_of(&output)
            ));
        }
    }
    if expected.len() != actual.len() {
        return Err(format!(
            "the original ran {} steps, the pre-initialized {} (one trapped where the other did not)",
            expected.len(),
            actual.len()
        ));
    }
    Ok((Verdict::Compared { init_changed_state }, expected.len()))
}

/// Deterministic input bytes for case `seed` (splitmix64), 256 bytes to
/// 16 KiB long: what the `cargo test` run and the stable driver feed to
/// [`check`].
pub fn seed_bytes(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x00c0_ffee_d15e_a5e5;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let len = 256 + (next() % (16 << 10)) as usize;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
