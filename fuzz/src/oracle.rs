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
//!   reference types (so table instructions and funcref globals) half the
//!   time;
//! - core module 1, the *observer*: imports the memories, mutable globals
//!   and tables module 0 exports and reads them (a whole memory as
//!   `list<u8>`, a global as `s32`/`s64` holding its bits, so NaN payloads
//!   are compared exactly; the tables and reference-typed globals as
//!   `list<u8>`: each table's size and, for each slot and global, null or
//!   which function type it holds; and a call of every function in them,
//!   through `call_indirect` or `call_ref`, folded into an `s64`: see
//!   `RefReads`);
//! - core module 2, the *glue*: imports functions and state of every
//!   instance of module 0, and exports `init`, which on every instance (they
//!   end init in the same state) or on the first only (they end in different
//!   states) calls a chain of one to three of the module's functions with
//!   fixed arguments, folds their results into a global of its own (`acc`),
//!   and writes that value into one of the instance's mutable globals and
//!   one of its memories (growing it when the offset is past its end); and,
//!   three times in four when module 0 exports a funcref table or global,
//!   writes them (`table.set/grow/fill/copy`, `global.set`; `RefWrite`)
//!   with null, the instance's functions (imported by the glue) or what a
//!   slot holds;
//! - module 0 instantiated once or twice, the observer once per instance of
//!   module 0, the glue once;
//! - exports: `component-init` (the glue's `init`), `iN-fK` for every function
//!   of instance N whose signature can be lifted, `iN-mK`, `iN-gK`
//!   (`iN-gK-lo`/`-hi` for `v128`), `iN-refs` and `iN-ref-calls` for the
//!   observers, and `glue-acc`.
//!
//! After init, on both sides: the observations (memories, globals, tables),
//! the `iN-ref-calls` (calls of what init left in the tables), every
//! `iN-fK`, the observations again.
//!
//! Init and some of the `iN-fK` are lifted with the component model's async
//! ABI (see [`Lift`]): `async` with a callback, returning EXIT at once or
//! YIELD first and finishing in the callback, or `async` without a callback
//! (stackful), calling `thread.yield` before it finishes; an async-lifted
//! `iN-fK` is a glue function that calls the module's function and hands its
//! result to `task.return`. Every call, on both sides, goes through
//! `call_async`.
//!
//! The chain init calls is chosen by running the module's functions on a
//! plain core instance first (the component's instance of module 0 is one,
//! as the module has no imports): calls that return within the fuel budget,
//! so that most cases end init with state to snapshot. One chain in eight
//! ends with a call that traps, so that pre-initialization has to fail. A
//! module none of whose functions returns (or that does not instantiate) is
//! replaced by another three times in four, up to twice ([`check`]); when it
//! is kept, init calls one that traps if there is one.
//!
//! Every call runs with the same fuel budget on both sides, so loops in
//! generated code end the same way in both; observations (harness code
//! only) get a larger one ([`OBSERVATION_FUEL`]).
//!
//! component-init carries the tables and funcref globals init changes, so
//! a refusal of them is a bug, but for what no segment or initializer can
//! express ([`common::uncarried_reference`]: a non-null `externref`, a
//! function of an instance that cannot reach the table, typed references)
//! and the limitations it documents (`documented`).

use anyhow::Result;
use arbitrary::Unstructured;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use wasm_encoder as enc;
use wasmparser as wp;
use wasmtime::component::{Component, Instance, Linker, Val};
use wasmtime::{Engine, Store, Trap};

pub use super::common::seed_bytes;
use super::common::{
    self, Const, Ends, INIT_OUT_OF_FUEL, INIT_TRAPS, Original, STACK_DEPTH_DIFFERS, STACK_OVERFLOW,
    catch_panic, first_difference, is_out_of_fuel, wat_of,
};

/// Fuel for every instantiation and call, on both sides.
pub const FUEL: u64 = 100_000;

/// Fuel for an observation. Wasmtime charges `memory.copy` a unit of fuel
/// per byte, so reading a memory of 64 KiB takes more than 65,536: with
/// [`FUEL`], reading memories of two pages or more ran out of fuel, on both
/// sides alike, and the check stopped there.
pub const OBSERVATION_FUEL: u64 = 1 << 24;

/// Name of the init export.
pub const INIT: &str = "component-init";

/// How a function is lifted into the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lift {
    /// Synchronously.
    Sync,
    /// `async (callback ...)`: the core function does the work, calls
    /// `task.return` and returns EXIT (0).
    Callback,
    /// `async (callback ...)`: the core function returns YIELD (1), and the
    /// callback does the work (init: one instance per callback, yielding
    /// again between them), calls `task.return` and returns EXIT.
    CallbackYield,
    /// `async` without a callback: the core function runs on its own stack,
    /// calls `thread.yield` (init: after each instance's work), then
    /// `task.return`.
    Stackful,
}

impl Lift {
    /// The async ones.
    pub const ASYNC: [Lift; 3] = [Lift::Callback, Lift::CallbackYield, Lift::Stackful];

    /// How the tallies name it.
    pub fn name(self) -> &'static str {
        match self {
            Lift::Sync => "sync",
            Lift::Callback => "async callback",
            Lift::CallbackYield => "async callback, yielding",
            Lift::Stackful => "async stackful",
        }
    }

    fn is_async(self) -> bool {
        self != Lift::Sync
    }
}

/// What one case came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both runs were compared and agreed.
    Compared {
        /// Init changed state the observers see (memories, mutable globals,
        /// the glue's `acc`).
        init_changed_state: bool,
        /// Init changed state of the wasm-smith instances (their memories
        /// and mutable globals), not only the glue's.
        module_state_changed: bool,
        /// Init changed what the observers see of tables and
        /// reference-typed globals (a size, a slot's or global's null-ness
        /// or function type).
        tables_changed: bool,
        /// Calls of the functions in tables and reference-typed globals
        /// (`RefReads::calls`) compared.
        ref_calls: usize,
        /// How init is lifted ([`Lift::name`]).
        init_lift: &'static str,
        /// Calls of async-lifted exports compared (init not counted).
        async_calls: usize,
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
    /// Compared cases in which init changed the wasm-smith instances' state.
    pub changed_module: usize,
    /// Compared cases in which init changed a table or reference-typed
    /// global, as the observers see them.
    pub tables_changed: usize,
    /// Calls of every function in the tables and reference-typed globals
    /// of an instance compared (one a step).
    pub ref_calls: usize,
    /// Calls (and observations) compared over all compared cases.
    pub steps: usize,
    /// Calls of async-lifted exports among them.
    pub async_calls: usize,
    /// Compared cases, by how init is lifted.
    pub init_lifts: BTreeMap<&'static str, usize>,
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
            Verdict::Compared {
                init_changed_state,
                module_state_changed,
                tables_changed,
                ref_calls,
                init_lift,
                async_calls,
            } => {
                self.compared += 1;
                self.changed += usize::from(*init_changed_state);
                self.changed_module += usize::from(*module_state_changed);
                self.tables_changed += usize::from(*tables_changed);
                self.ref_calls += ref_calls;
                self.steps += steps;
                self.async_calls += async_calls;
                *self.init_lifts.entry(init_lift).or_default() += 1;
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
        self.changed_module += other.changed_module;
        self.tables_changed += other.tables_changed;
        self.ref_calls += other.ref_calls;
        self.steps += other.steps;
        self.async_calls += other.async_calls;
        common::merge_counts(&mut self.init_lifts, other.init_lifts);
        common::merge_counts(&mut self.error_checked, other.error_checked);
        common::merge_counts(&mut self.skipped, other.skipped);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} cases: {} compared (init changed state in {}, the wasm-smith instances' \
             state in {}, their tables or reference-typed globals in {}; {} calls and \
             observations, {} of them calls of async-lifted exports, {} calls of every \
             function in an instance's tables and reference-typed globals), {} \
             error-checked, {} skipped",
            self.cases,
            self.compared,
            self.changed,
            self.changed_module,
            self.tables_changed,
            self.steps,
            self.async_calls,
            self.ref_calls,
            self.error_checked.values().sum::<usize>(),
            self.skipped.values().sum::<usize>()
        )?;
        common::write_counts(f, "compared, init lifted", &self.init_lifts)?;
        common::write_counts(f, "error-checked:", &self.error_checked)?;
        common::write_counts(f, "skipped:", &self.skipped)
    }
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

/// An exported table of the generated module.
struct TableExport {
    name: String,
    ty: wp::TableType,
}

struct ModuleExports {
    funcs: Vec<FuncExport>,
    memories: Vec<MemoryExport>,
    globals: Vec<GlobalExport>,
    tables: Vec<TableExport>,
}

fn module_exports(module: &[u8]) -> Result<ModuleExports> {
    let types = wp::Validator::new_with_features(wp::WasmFeatures::all()).validate_all(module)?;
    let types = types.as_ref();
    let mut exports = ModuleExports {
        funcs: Vec::new(),
        memories: Vec::new(),
        globals: Vec::new(),
        tables: Vec::new(),
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
                wp::ExternalKind::Table => exports.tables.push(TableExport {
                    name,
                    ty: types.table_at(export.index),
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

/// How a module that uses table `t` of the generated module imports it.
fn table_import(t: &TableExport) -> Result<enc::TableType> {
    use enc::reencode::Reencode;
    Ok(enc::TableType {
        element_type: enc::reencode::RoundtripReencoder.ref_type(t.ty.element_type)?,
        table64: t.ty.table64,
        minimum: 0,
        maximum: None,
        shared: false,
    })
}

fn enc_val(ty: wp::ValType) -> Result<enc::ValType> {
    use enc::reencode::Reencode;
    Ok(enc::reencode::RoundtripReencoder.val_type(ty)?)
}

/// A component-level argument of type `ty`.
fn arg(ty: wp::ValType, u: &mut Unstructured<'_>) -> arbitrary::Result<Val> {
    let v = common::int(u)?;
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
    /// Call an export, lifted so, with arguments.
    Call(String, Vec<Val>, Lift),
    /// Read a memory through an observer (`list<u8>`).
    Memory(String),
    /// Read a global's bits through an observer (`s32` or `s64`).
    Global(String, bool),
    /// Read an instance's tables and reference-typed globals through an
    /// observer (`list<u8>`, see `RefReads`).
    Refs(String),
}

impl Step {
    fn name(&self) -> &str {
        match self {
            Step::Call(name, ..)
            | Step::Memory(name)
            | Step::Global(name, _)
            | Step::Refs(name) => name,
        }
    }
}

/// Name of the export reading the glue's `acc`.
const GLUE_ACC: &str = "glue-acc";

/// A generated case.
pub struct Case {
    /// The component.
    pub component: Vec<u8>,
    /// The exported functions of the module init calls, in order, on each
    /// instance it initializes.
    pub init: Vec<usize>,
    /// How init is lifted.
    pub init_lift: Lift,
    /// Whether the first call of init's chain returned when tried on a core
    /// instance of the module (`false` when not tried).
    pub init_returns: bool,
    /// Steps after init: observations, every other export, observations.
    pub steps: Vec<Step>,
    /// How many observations start (and end) `steps`; the last is
    /// [`GLUE_ACC`].
    pub observations: usize,
}

/// Generates a case from `u`, init's functions chosen at random (not run
/// first); `None` when wasm-smith cannot, or the module has no function the
/// glue can call.
pub fn generate(u: &mut Unstructured<'_>) -> Result<Option<Case>> {
    match Generated::new(u)? {
        Some(g) => g.case(u, false),
        None => Ok(None),
    }
}

/// A generated module, before it is wrapped into a component.
pub struct Generated {
    module: Vec<u8>,
    exports: ModuleExports,
}

/// The module compiled as a core module, to try init's candidates on.
struct Screen {
    module: wasmtime::Module,
}

impl Screen {
    /// `None` when the module does not compile or does not instantiate
    /// (then neither does the component).
    fn new(bytes: &[u8]) -> Option<Screen> {
        let module = wasmtime::Module::new(engine(), bytes).ok()?;
        let screen = Screen { module };
        screen.instantiate().map(|_| screen)
    }

    fn instantiate(&self) -> Option<(Store<()>, wasmtime::Instance)> {
        let mut store = Store::new(engine(), ());
        store.set_fuel(FUEL).expect("fuel is enabled");
        let instance = wasmtime::Instance::new(&mut store, &self.module, &[]).ok()?;
        Some((store, instance))
    }

    /// Runs `chain` (with its arguments) on a fresh instance, on `fuel`.
    fn run(
        &self,
        exports: &ModuleExports,
        args: &BTreeMap<usize, Vec<Const>>,
        chain: &[usize],
        fuel: u64,
    ) -> Ends {
        let Some((mut store, instance)) = self.instantiate() else {
            return Ends::Unknown;
        };
        store.set_fuel(fuel).expect("fuel is enabled");
        let calls = (chain.iter()).map(|f| (exports.funcs[*f].name.as_str(), args[f].as_slice()));
        common::run_chain(&mut store, &instance, calls)
    }
}

/// Fuel the glue's own instructions may need during init, on top of its
/// calls.
const GLUE_FUEL: u64 = 2_000;

impl Generated {
    /// Generates a module from `u`; `None` when wasm-smith cannot.
    pub fn new(u: &mut Unstructured<'_>) -> Result<Option<Generated>> {
        // Modules without imports that export everything (the shared
        // configuration). Reference types are on in half of the cases:
        // their tables and mutable funcref globals are carried, and
        // compared.
        let config = common::smith_config(u, false)?;
        let module = match wasm_smith::Module::new(config, u) {
            Ok(m) => m.to_bytes(),
            Err(_) => return Ok(None),
        };
        let exports = module_exports(&module)?;
        Ok(Some(Generated { module, exports }))
    }

    /// Wraps the module into a component; `None` when it has no function
    /// the glue can call. With `screen`, init's chain is chosen by running
    /// candidates on a core instance first (see the module docs); without,
    /// at random.
    pub fn case(&self, u: &mut Unstructured<'_>, screen: bool) -> Result<Option<Case>> {
        let candidates: Vec<usize> = (0..self.exports.funcs.len())
            .filter(|i| callable_by_glue(&self.exports.funcs[*i]))
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        let instances: u32 = if u.ratio(1, 3)? { 2 } else { 1 };
        // Init runs on every instance, or (half the time, with two) on the
        // first only, so that the instances end init in different states.
        let initialized = if instances == 2 && u.arbitrary()? {
            1
        } else {
            instances
        };
        // The same arguments for every call of a function, on every
        // instance, so that instances initialized alike end alike.
        let mut args = BTreeMap::new();
        for &f in &candidates {
            let params = &self.exports.funcs[f].params;
            let consts = params
                .iter()
                .map(|p| {
                    Const::new(*p, u, false)?.ok_or_else(|| anyhow::anyhow!("no constant for {p}"))
                })
                .collect::<Result<Vec<_>>>()?;
            args.insert(f, consts);
        }
        let screen = if screen {
            Screen::new(&self.module)
        } else {
            None
        };
        let (chain, init_returns) = match &screen {
            Some(screen) => {
                let fuel = (FUEL - GLUE_FUEL) / u64::from(initialized);
                let run = |chain: &[usize]| screen.run(&self.exports, &args, chain, fuel);
                common::screened_chain(u, &candidates, &run)?
            }
            None => {
                let mut chain = vec![*u.choose(&candidates)?];
                if u.ratio(1, 3)? {
                    chain.push(*u.choose(&candidates)?);
                }
                (chain, false)
            }
        };
        let plan = Plan {
            instances,
            initialized,
            chain,
            args,
        };
        let mut case = build(&self.module, &self.exports, &plan, u)?;
        case.init_returns = init_returns;
        Ok(Some(case))
    }
}

/// What init does, decided before the component is built.
struct Plan {
    instances: u32,
    /// Init runs its chain on instances `0..initialized`.
    initialized: u32,
    chain: Vec<usize>,
    /// Arguments for every function the glue may call.
    args: BTreeMap<usize, Vec<Const>>,
}

/// An exported function of the component that calls one of the module's.
struct ExportPlan {
    instance: u32,
    func: usize,
    lift: Lift,
    /// The component-level arguments the harness calls it with.
    args: Vec<Val>,
}

/// The builtin a glue import names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Builtin {
    /// `task.return` with a result of this core type (`None`: no result).
    TaskReturn(Option<ScalarKind>),
    ThreadYield,
}

/// The scalar core types a lifted function's result can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ScalarKind {
    I32,
    I64,
    F32,
    F64,
}

impl ScalarKind {
    fn of(ty: wp::ValType) -> Option<ScalarKind> {
        Some(match ty {
            wp::ValType::I32 => ScalarKind::I32,
            wp::ValType::I64 => ScalarKind::I64,
            wp::ValType::F32 => ScalarKind::F32,
            wp::ValType::F64 => ScalarKind::F64,
            _ => return None,
        })
    }

    fn core(self) -> enc::ValType {
        match self {
            ScalarKind::I32 => enc::ValType::I32,
            ScalarKind::I64 => enc::ValType::I64,
            ScalarKind::F32 => enc::ValType::F32,
            ScalarKind::F64 => enc::ValType::F64,
        }
    }

    fn component(self) -> enc::PrimitiveValType {
        match self {
            ScalarKind::I32 => enc::PrimitiveValType::S32,
            ScalarKind::I64 => enc::PrimitiveValType::S64,
            ScalarKind::F32 => enc::PrimitiveValType::F32,
            ScalarKind::F64 => enc::PrimitiveValType::F64,
        }
    }
}

impl Builtin {
    fn name(self) -> String {
        match self {
            Builtin::TaskReturn(None) => "task.return".into(),
            Builtin::TaskReturn(Some(k)) => format!("task.return-{k:?}"),
            Builtin::ThreadYield => "thread.yield".into(),
        }
    }
}

/// Callback codes.
const EXIT: i32 = 0;
const YIELD: i32 = 1;

/// Core function types of the glue, each once.
#[derive(Default)]
struct CoreTypes {
    types: Vec<(Vec<enc::ValType>, Vec<enc::ValType>)>,
}

impl CoreTypes {
    fn index(&mut self, params: &[enc::ValType], results: &[enc::ValType]) -> u32 {
        let ty = (params.to_vec(), results.to_vec());
        let i = match self.types.iter().position(|t| *t == ty) {
            Some(i) => i,
            None => {
                self.types.push(ty);
                self.types.len() - 1
            }
        };
        i as u32
    }

    fn section(&self) -> enc::TypeSection {
        let mut section = enc::TypeSection::new();
        for (params, results) in &self.types {
            section
                .ty()
                .function(params.iter().copied(), results.iter().copied());
        }
        section
    }
}

/// What the glue writes into each initialized instance after its chain:
/// `acc` into a mutable global (index in the module's exported globals) and
/// at an offset of a memory (index in its exported memories).
struct Writes {
    global: Option<usize>,
    memory: Option<(usize, u64)>,
    /// Then these, in order.
    refs: Vec<RefWrite>,
}

/// A reference the glue writes into an instance's table or global.
#[derive(Debug, Clone, Copy)]
enum RefValue {
    Null,
    /// A function of the instance (by place in [`ModuleExports::funcs`]):
    /// `ref.func` of the glue's import of it.
    Func(usize),
    /// What slot `slot` of a table (by place in [`ModuleExports::tables`])
    /// of the instance holds, or with `other` of the other instance
    /// (`table.get` when in bounds, else null).
    Slot {
        table: usize,
        slot: u64,
        other: bool,
    },
}

/// A write of a table (by place in [`ModuleExports::tables`]) or funcref
/// global (in [`ModuleExports::globals`]) that the glue makes during init,
/// after the chain, on each instance it initializes. Writes out of bounds
/// are skipped (they would trap).
#[derive(Debug, Clone, Copy)]
enum RefWrite {
    Set {
        table: usize,
        slot: u64,
        value: RefValue,
    },
    Grow {
        table: usize,
        n: u64,
        value: RefValue,
    },
    Fill {
        table: usize,
        slot: u64,
        n: u64,
        value: RefValue,
    },
    Copy {
        table: usize,
        dst: u64,
        src: u64,
        n: u64,
    },
    Global {
        global: usize,
        value: RefValue,
    },
}

impl RefWrite {
    /// Three times in four, when the module exports a funcref table or
    /// mutable funcref global: one to three writes of them, in any order, to
    /// slots mostly in bounds. A function the glue names (its own import of
    /// the module's function) reaches a table or global as the glue's; the
    /// module names the same function, which writes it.
    fn draw(
        exports: &ModuleExports,
        instances: u32,
        u: &mut Unstructured<'_>,
    ) -> arbitrary::Result<Vec<RefWrite>> {
        let tables = RefWrite::func_tables(exports);
        let globals: Vec<usize> = (exports.globals.iter().enumerate())
            .filter(|(_, g)| match g.ty {
                wp::ValType::Ref(r) => r.is_nullable() && RefKind::of(r) == Some(RefKind::Func),
                _ => false,
            })
            .map(|(k, _)| k)
            .collect();
        if (tables.is_empty() && globals.is_empty()) || u.ratio(1, 4)? {
            return Ok(Vec::new());
        }
        // Tables have 16 slots at most, mostly fewer.
        let slot = |u: &mut Unstructured<'_>| {
            let last = if u.ratio(3, 4)? { 3 } else { 17 };
            u.int_in_range(0..=last)
        };
        let n = |u: &mut Unstructured<'_>| u.int_in_range(0..=3u64);
        let value = |u: &mut Unstructured<'_>, global: bool| -> arbitrary::Result<RefValue> {
            Ok(match u.int_in_range(0..=3)? {
                0 => RefValue::Null,
                1 | 2 if global && !tables.is_empty() => RefValue::Slot {
                    table: *u.choose(&tables)?,
                    slot: slot(u)?,
                    other: false,
                },
                1 if !tables.is_empty() => RefValue::Slot {
                    table: *u.choose(&tables)?,
                    slot: slot(u)?,
                    // A function of the other instance: no instance of the
                    // output can put it in this one's table (a documented
                    // refusal).
                    other: instances == 2 && u.ratio(1, 8)?,
                },
                _ => RefValue::Func(u.choose_index(exports.funcs.len())?),
            })
        };
        let mut writes = Vec::new();
        for _ in 0..u.int_in_range(1..=3)? {
            let kind = u.int_in_range(0..=4)?;
            writes.push(if tables.is_empty() || (kind == 4 && !globals.is_empty()) {
                RefWrite::Global {
                    global: *u.choose(&globals)?,
                    value: value(u, true)?,
                }
            } else {
                let table = *u.choose(&tables)?;
                match kind {
                    0 => RefWrite::Grow {
                        table,
                        n: n(u)?,
                        value: value(u, false)?,
                    },
                    1 => RefWrite::Fill {
                        table,
                        slot: slot(u)?,
                        n: n(u)?,
                        value: value(u, false)?,
                    },
                    2 => RefWrite::Copy {
                        table,
                        dst: slot(u)?,
                        src: slot(u)?,
                        n: n(u)?,
                    },
                    _ => RefWrite::Set {
                        table,
                        slot: slot(u)?,
                        value: value(u, false)?,
                    },
                }
            });
        }
        Ok(writes)
    }

    /// The funcref tables of the module (places in
    /// [`ModuleExports::tables`]).
    fn func_tables(exports: &ModuleExports) -> Vec<usize> {
        (exports.tables.iter().enumerate())
            .filter(|(_, t)| {
                t.ty.element_type.is_nullable()
                    && RefKind::of(t.ty.element_type) == Some(RefKind::Func)
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// The tables, globals and functions, each as (instance, place in
    /// [`ModuleExports`]), that the glue imports to make `writes` on
    /// instances `0..initialized` (of `instances`).
    fn imports(writes: &[RefWrite], instances: u32, initialized: u32) -> [Items; 3] {
        let (mut tables, mut globals, mut funcs) = (Items::new(), Items::new(), Items::new());
        let value = |i: u32, v: &RefValue, tables: &mut Items, funcs: &mut Items| match *v {
            RefValue::Null => {}
            RefValue::Func(f) => {
                funcs.insert((i, f));
            }
            RefValue::Slot { table, other, .. } => {
                let j = if other { instances - 1 - i } else { i };
                tables.insert((j, table));
            }
        };
        for i in 0..initialized {
            for w in writes {
                match w {
                    RefWrite::Set {
                        table, value: v, ..
                    }
                    | RefWrite::Grow {
                        table, value: v, ..
                    }
                    | RefWrite::Fill {
                        table, value: v, ..
                    } => {
                        tables.insert((i, *table));
                        value(i, v, &mut tables, &mut funcs);
                    }
                    RefWrite::Copy { table, .. } => {
                        tables.insert((i, *table));
                    }
                    RefWrite::Global { global, value: v } => {
                        globals.insert((i, *global));
                        value(i, v, &mut tables, &mut funcs);
                    }
                }
            }
        }
        [tables, globals, funcs]
    }
}

/// Items of the instances of the module: (instance, place in
/// [`ModuleExports`]).
type Items = std::collections::BTreeSet<(u32, usize)>;

/// The glue module's index spaces, as [`build`] lays them out.
struct GlueLayout<'a> {
    exports: &'a ModuleExports,
    plan: &'a Plan,
    writes: &'a Writes,
    /// Imported module functions: (instance, function) to function index.
    funcs: BTreeMap<(u32, usize), u32>,
    builtins: BTreeMap<Builtin, u32>,
    /// The imported global written on instance i is global i; the imported
    /// memory, memory i.
    acc: u32,
    /// Imported tables: (instance, table) to table index.
    tables: BTreeMap<(u32, usize), u32>,
    /// Imported funcref globals: (instance, global) to global index.
    ref_globals: BTreeMap<(u32, usize), u32>,
}

impl GlueLayout<'_> {
    /// The chain on instance `i`, its results folded into `acc`, then the
    /// writes; `temps` holds an `f32` and an `f64` local.
    fn stage(&self, f: &mut enc::Function, i: u32, temps: u32) -> Result<()> {
        for func in &self.plan.chain {
            for c in &self.plan.args[func] {
                f.instruction(&c.instr()?);
            }
            f.instruction(&enc::Instruction::Call(self.funcs[&(i, *func)]));
            // A `v128` result: only that there was one (lanes may hold NaNs
            // too).
            let results = &self.exports.funcs[*func].results;
            common::fold_results(f, results, temps, self.acc, false);
        }
        if let Some(g) = self.writes.global {
            common::write_global(f, self.acc, i, self.exports.globals[g].ty)?;
        }
        if let Some((m, offset)) = self.writes.memory {
            common::write_memory(f, self.acc, i, self.exports.memories[m].ty, offset);
        }
        for w in &self.writes.refs {
            self.ref_write(f, i, w);
        }
        Ok(())
    }

    /// Pushes `v` as a table index or count of table `t` of the module.
    fn table_int(&self, f: &mut enc::Function, t: usize, v: u64) {
        f.instruction(&if self.exports.tables[t].ty.table64 {
            enc::Instruction::I64Const(v as i64)
        } else {
            enc::Instruction::I32Const(v as i32)
        });
    }

    /// Pushes whether `end` is at most the size of the glue's table
    /// `table` (table `t` of the module).
    fn fits(&self, f: &mut enc::Function, t: usize, table: u32, end: u64) {
        use enc::Instruction as I;
        f.instruction(&I::I64Const(end as i64))
            .instruction(&I::TableSize(table));
        if !self.exports.tables[t].ty.table64 {
            f.instruction(&I::I64ExtendI32U);
        }
        f.instruction(&I::I64LeU);
    }

    /// Pushes `v` for instance `i`.
    fn ref_value(&self, f: &mut enc::Function, i: u32, v: &RefValue) {
        use enc::Instruction as I;
        let null = I::RefNull(enc::HeapType::FUNC);
        match *v {
            RefValue::Null => {
                f.instruction(&null);
            }
            RefValue::Func(func) => {
                f.instruction(&I::RefFunc(self.funcs[&(i, func)]));
            }
            RefValue::Slot {
                table: t,
                slot,
                other,
            } => {
                let j = if other {
                    self.plan.instances - 1 - i
                } else {
                    i
                };
                let table = self.tables[&(j, t)];
                self.fits(f, t, table, slot + 1);
                f.instruction(&I::If(enc::BlockType::Result(enc::ValType::FUNCREF)));
                self.table_int(f, t, slot);
                f.instruction(&I::TableGet(table))
                    .instruction(&I::Else)
                    .instruction(&null)
                    .instruction(&I::End);
            }
        }
    }

    /// Makes `w` on instance `i`.
    fn ref_write(&self, f: &mut enc::Function, i: u32, w: &RefWrite) {
        use enc::Instruction as I;
        let guarded = |f: &mut enc::Function, t: usize, end: u64| {
            self.fits(f, t, self.tables[&(i, t)], end);
            f.instruction(&I::If(enc::BlockType::Empty));
        };
        match *w {
            RefWrite::Set {
                table: t,
                slot,
                value,
            } => {
                guarded(f, t, slot + 1);
                self.table_int(f, t, slot);
                self.ref_value(f, i, &value);
                f.instruction(&I::TableSet(self.tables[&(i, t)]))
                    .instruction(&I::End);
            }
            RefWrite::Grow { table: t, n, value } => {
                self.ref_value(f, i, &value);
                self.table_int(f, t, n);
                f.instruction(&I::TableGrow(self.tables[&(i, t)]))
                    .instruction(&I::Drop);
            }
            RefWrite::Fill {
                table: t,
                slot,
                n,
                value,
            } => {
                guarded(f, t, slot + n);
                self.table_int(f, t, slot);
                self.ref_value(f, i, &value);
                self.table_int(f, t, n);
                f.instruction(&I::TableFill(self.tables[&(i, t)]))
                    .instruction(&I::End);
            }
            RefWrite::Copy {
                table: t,
                dst,
                src,
                n,
            } => {
                let table = self.tables[&(i, t)];
                guarded(f, t, dst.max(src) + n);
                self.table_int(f, t, dst);
                self.table_int(f, t, src);
                self.table_int(f, t, n);
                f.instruction(&I::TableCopy {
                    dst_table: table,
                    src_table: table,
                })
                .instruction(&I::End);
            }
            RefWrite::Global { global, value } => {
                self.ref_value(f, i, &value);
                f.instruction(&I::GlobalSet(self.ref_globals[&(i, global)]));
            }
        }
    }
}

/// The locals of a function that runs stages, after `params` parameters:
/// the temporaries [`GlueLayout::stage`] needs.
fn stage_function(params: u32) -> (enc::Function, u32) {
    (
        enc::Function::new([(1, enc::ValType::F32), (1, enc::ValType::F64)]),
        params,
    )
}

/// A function of the glue: its type, body and export name.
struct GlueFunc {
    ty: u32,
    body: enc::Function,
    export: String,
}

/// The glue module's types, imports, functions and globals.
struct Glue {
    types: CoreTypes,
    imports: enc::ImportSection,
    imported_funcs: u32,
    funcs: Vec<GlueFunc>,
    /// Its own globals: (type, initial value).
    globals: Vec<(enc::ValType, Const)>,
    imported_globals: u32,
    /// Functions `ref.func` names (declared by an element segment).
    declared: Vec<u32>,
}

impl Glue {
    /// Adds a function; returns its export name.
    fn func(
        &mut self,
        params: &[enc::ValType],
        results: &[enc::ValType],
        body: enc::Function,
        export: String,
    ) -> String {
        let ty = self.types.index(params, results);
        self.funcs.push(GlueFunc {
            ty,
            body,
            export: export.clone(),
        });
        export
    }

    /// Adds a global of its own; returns its index.
    fn global(&mut self, ty: enc::ValType, init: Const) -> u32 {
        self.globals.push((ty, init));
        self.imported_globals + self.globals.len() as u32 - 1
    }

    fn encode(self) -> Result<enc::Module> {
        let mut module = enc::Module::new();
        let mut functions = enc::FunctionSection::new();
        let mut code = enc::CodeSection::new();
        let mut exports = enc::ExportSection::new();
        for (k, f) in self.funcs.iter().enumerate() {
            functions.function(f.ty);
            code.function(&f.body);
            exports.export(
                &f.export,
                enc::ExportKind::Func,
                self.imported_funcs + k as u32,
            );
        }
        let mut globals = enc::GlobalSection::new();
        for (ty, init) in &self.globals {
            let init = match init {
                Const::I32(v) => enc::ConstExpr::i32_const(*v),
                Const::I64(v) => enc::ConstExpr::i64_const(*v),
                Const::F32(v) => enc::ConstExpr::f32_const((*v).into()),
                Const::F64(v) => enc::ConstExpr::f64_const((*v).into()),
                other => anyhow::bail!("no glue global starts as {other:?}"),
            };
            globals.global(
                enc::GlobalType {
                    val_type: *ty,
                    mutable: true,
                    shared: false,
                },
                &init,
            );
        }
        let mut elements = enc::ElementSection::new();
        if !self.declared.is_empty() {
            elements.declared(enc::Elements::Functions(self.declared.as_slice().into()));
        }
        module
            .section(&self.types.section())
            .section(&self.imports)
            .section(&functions)
            .section(&globals)
            .section(&exports)
            .section(&elements)
            .section(&code);
        Ok(module)
    }
}

fn zero(ty: enc::ValType) -> Const {
    match ty {
        enc::ValType::I64 => Const::I64(0),
        enc::ValType::F32 => Const::F32(0.0),
        enc::ValType::F64 => Const::F64(0.0),
        _ => Const::I32(0),
    }
}

/// What an observer function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observes {
    /// A memory (`list<u8>`).
    Memory,
    /// A global's bits (`s64` when `wide`, else `s32`).
    Global { wide: bool },
    /// The tables and reference-typed globals (`list<u8>`, [`RefReads`]).
    Refs,
    /// Calls of their functions (`s64`, [`RefReads::calls`]).
    RefCalls,
}

/// Export names of the observer's [`RefReads`] functions.
const REFS: &str = "refs";
const REF_CALLS: &str = "ref-calls";

/// The references an observer can tell apart: a function's, whose type it
/// tests, or an `externref`, only null or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefKind {
    Func,
    Extern,
}

impl RefKind {
    fn of(ty: wp::RefType) -> Option<RefKind> {
        match ty.heap_type() {
            wp::HeapType::Abstract {
                shared: false,
                ty: wp::AbstractHeapType::Func,
            } => Some(RefKind::Func),
            wp::HeapType::Abstract {
                shared: false,
                ty: wp::AbstractHeapType::Extern,
            } => Some(RefKind::Extern),
            _ => None,
        }
    }

    fn local(self) -> enc::ValType {
        enc::ValType::Ref(match self {
            RefKind::Func => enc::RefType::FUNCREF,
            RefKind::Extern => enc::RefType::EXTERNREF,
        })
    }
}

/// A function type a reference is tested against, and the arguments a
/// function of it is called with (`None`: a parameter no constant has).
struct RefType {
    params: Vec<wp::ValType>,
    results: Vec<wp::ValType>,
    args: Option<Vec<Const>>,
}

/// How an observer reads the tables and mutable reference-typed globals
/// its instance of the module exports, as no core-module API can from a
/// component: `refs` returns a `list<u8>`, for each table its size (4
/// bytes, little-endian) and a byte a slot (the first [`RefReads::SLOTS`]),
/// then a byte a global: 0 for null, `1 + k` for a function of type `k` of
/// [`RefReads::types`] (found with `ref.test`), [`RefReads::OTHER_FUNC`]
/// for a function of none, [`RefReads::EXTERN`] for a non-null
/// `externref`. `ref-calls` calls every non-null function slot (each
/// table's, through `call_indirect` with the type `ref.test` found) and
/// function global (`call_ref`), with fixed arguments, and folds the type
/// and results of each call into an `s64` (a trap is the step's outcome).
struct RefReads {
    /// The tables observed: their place in [`ModuleExports::tables`] (the
    /// observer imports them in this order) and kind.
    tables: Vec<(usize, RefKind)>,
    /// The globals observed: their place in [`ModuleExports::globals`]
    /// (the observer's index of the global) and kind.
    globals: Vec<(u32, RefKind)>,
    /// The function types of the module's functions, each once, at the
    /// observer's type indices [`RefReads::FIRST_TYPE`] on.
    types: Vec<RefType>,
}

impl RefReads {
    /// Slots read of each table, at most.
    const SLOTS: i32 = 256;
    /// The observer's first type index of [`RefReads::types`].
    const FIRST_TYPE: u32 = 2;
    const OTHER_FUNC: i32 = 0xff;
    const EXTERN: i32 = 0xfe;

    fn new(exports: &ModuleExports, u: &mut Unstructured<'_>) -> Result<RefReads> {
        let tables = (exports.tables.iter().enumerate())
            .filter_map(|(k, t)| Some((k, RefKind::of(t.ty.element_type)?)))
            .collect();
        let globals = (exports.globals.iter().enumerate())
            .filter_map(|(k, g)| match g.ty {
                wp::ValType::Ref(r) => Some((k as u32, RefKind::of(r)?)),
                _ => None,
            })
            .collect();
        let mut types: Vec<RefType> = Vec::new();
        for f in &exports.funcs {
            if types.len() >= 200
                || (types.iter()).any(|t| t.params == f.params && t.results == f.results)
            {
                continue;
            }
            let args = (f.params.iter())
                .map(|p| Const::new(*p, u, false))
                .collect::<arbitrary::Result<Option<Vec<_>>>>()?;
            types.push(RefType {
                params: f.params.clone(),
                results: f.results.clone(),
                args,
            });
        }
        Ok(RefReads {
            tables,
            globals,
            types,
        })
    }

    /// Adds [`RefReads::types`] to the observer's types.
    fn declare_types(&self, types: &mut enc::TypeSection) -> Result<()> {
        for ty in &self.types {
            let params = ty.params.iter().map(|t| enc_val(*t));
            let results = ty.results.iter().map(|t| enc_val(*t));
            types.ty().function(
                params.collect::<Result<Vec<_>>>()?,
                results.collect::<Result<Vec<_>>>()?,
            );
        }
        Ok(())
    }

    fn observes_anything(&self) -> bool {
        !self.tables.is_empty() || !self.globals.is_empty()
    }

    fn heap_type(k: usize) -> enc::HeapType {
        enc::HeapType::Concrete(RefReads::FIRST_TYPE + k as u32)
    }

    /// Pushes slot `i` (a local) of table `t` as its index type.
    fn slot_index(f: &mut enc::Function, exports: &ModuleExports, t: usize, i: u32) {
        f.instruction(&enc::Instruction::LocalGet(i));
        if exports.tables[t].ty.table64 {
            f.instruction(&enc::Instruction::I64ExtendI32U);
        }
    }

    /// Opens a loop over the first [`RefReads::SLOTS`] slots of table `t`
    /// (the observer's `table`), local `i` the slot and `n` the count;
    /// close it with [`RefReads::end_slots`].
    fn slots(f: &mut enc::Function, exports: &ModuleExports, t: usize, table: u32, n: u32, i: u32) {
        use enc::Instruction as I;
        f.instruction(&I::TableSize(table));
        if exports.tables[t].ty.table64 {
            f.instruction(&I::I32WrapI64);
        }
        f.instruction(&I::LocalTee(n))
            .instruction(&I::I32Const(RefReads::SLOTS))
            .instruction(&I::I32GtU)
            .instruction(&I::If(enc::BlockType::Empty))
            .instruction(&I::I32Const(RefReads::SLOTS))
            .instruction(&I::LocalSet(n))
            .instruction(&I::End)
            .instruction(&I::I32Const(0))
            .instruction(&I::LocalSet(i))
            .instruction(&I::Block(enc::BlockType::Empty))
            .instruction(&I::Loop(enc::BlockType::Empty))
            .instruction(&I::LocalGet(i))
            .instruction(&I::LocalGet(n))
            .instruction(&I::I32GeU)
            .instruction(&I::BrIf(1));
    }

    fn end_slots(f: &mut enc::Function, i: u32) {
        use enc::Instruction as I;
        f.instruction(&I::LocalGet(i))
            .instruction(&I::I32Const(1))
            .instruction(&I::I32Add)
            .instruction(&I::LocalSet(i))
            .instruction(&I::Br(0))
            .instruction(&I::End)
            .instruction(&I::End);
    }

    /// Pushes the byte that tells the reference in local `r` (of `kind`).
    fn tag(&self, f: &mut enc::Function, kind: RefKind, r: u32) {
        use enc::Instruction as I;
        f.instruction(&I::Block(enc::BlockType::Result(enc::ValType::I32)))
            .instruction(&I::I32Const(0))
            .instruction(&I::LocalGet(r))
            .instruction(&I::RefIsNull)
            .instruction(&I::BrIf(0))
            .instruction(&I::Drop);
        match kind {
            RefKind::Func => {
                for k in 0..self.types.len() {
                    f.instruction(&I::I32Const(1 + k as i32))
                        .instruction(&I::LocalGet(r))
                        .instruction(&I::RefTestNonNull(RefReads::heap_type(k)))
                        .instruction(&I::BrIf(0))
                        .instruction(&I::Drop);
                }
                f.instruction(&I::I32Const(RefReads::OTHER_FUNC));
            }
            RefKind::Extern => {
                f.instruction(&I::I32Const(RefReads::EXTERN));
            }
        }
        f.instruction(&I::End);
    }

    /// The body of `refs` (`[] -> i32`, a pointer to the list in memory
    /// `own`, the observer's).
    fn read(&self, exports: &ModuleExports, own: u32) -> enc::Function {
        use enc::Instruction as I;
        // locals: the write cursor, the slot count and slot, a reference of
        // each kind
        let (cur, n, i, func, ext) = (0, 1, 2, 3, 4);
        let mut f = enc::Function::new([
            (3, enc::ValType::I32),
            (1, RefKind::Func.local()),
            (1, RefKind::Extern.local()),
        ]);
        let local = |kind| if kind == RefKind::Func { func } else { ext };
        let byte = enc::MemArg {
            offset: 0,
            align: 0,
            memory_index: own,
        };
        let advance = |f: &mut enc::Function, by: i32| {
            f.instruction(&I::LocalGet(cur))
                .instruction(&I::I32Const(by))
                .instruction(&I::I32Add)
                .instruction(&I::LocalSet(cur));
        };
        // a page is room enough
        f.instruction(&I::MemorySize(own))
            .instruction(&I::I32Eqz)
            .instruction(&I::If(enc::BlockType::Empty))
            .instruction(&I::I32Const(1))
            .instruction(&I::MemoryGrow(own))
            .instruction(&I::Drop)
            .instruction(&I::End)
            .instruction(&I::I32Const(8))
            .instruction(&I::LocalSet(cur));
        for (table, &(t, kind)) in self.tables.iter().enumerate() {
            let table = table as u32;
            f.instruction(&I::LocalGet(cur))
                .instruction(&I::TableSize(table));
            if exports.tables[t].ty.table64 {
                f.instruction(&I::I32WrapI64);
            }
            f.instruction(&I::I32Store(byte));
            advance(&mut f, 4);
            RefReads::slots(&mut f, exports, t, table, n, i);
            f.instruction(&I::LocalGet(cur));
            RefReads::slot_index(&mut f, exports, t, i);
            f.instruction(&I::TableGet(table))
                .instruction(&I::LocalSet(local(kind)));
            self.tag(&mut f, kind, local(kind));
            f.instruction(&I::I32Store8(byte));
            advance(&mut f, 1);
            RefReads::end_slots(&mut f, i);
        }
        for &(g, kind) in &self.globals {
            f.instruction(&I::LocalGet(cur))
                .instruction(&I::GlobalGet(g))
                .instruction(&I::LocalSet(local(kind)));
            self.tag(&mut f, kind, local(kind));
            f.instruction(&I::I32Store8(byte));
            advance(&mut f, 1);
        }
        f.instruction(&I::I32Const(0))
            .instruction(&I::I32Const(8))
            .instruction(&I::I32Store(mem_arg(own, 0)))
            .instruction(&I::I32Const(0))
            .instruction(&I::LocalGet(cur))
            .instruction(&I::I32Const(8))
            .instruction(&I::I32Sub)
            .instruction(&I::I32Store(mem_arg(own, 4)))
            .instruction(&I::I32Const(0))
            .instruction(&I::End);
        f
    }

    /// For each type of [`RefReads::types`] a function of which can be
    /// called: if the reference in local `r` is one, fold the type's
    /// number into global `acc`, call it (`call` pushes what to call it
    /// with after the arguments, and calls), fold its results.
    fn call_each_type(
        &self,
        f: &mut enc::Function,
        r: u32,
        acc: u32,
        call: &dyn Fn(&mut enc::Function, u32),
    ) -> Result<()> {
        use enc::Instruction as I;
        for (k, ty) in self.types.iter().enumerate() {
            let Some(args) = &ty.args else {
                continue;
            };
            f.instruction(&I::LocalGet(r))
                .instruction(&I::RefTestNonNull(RefReads::heap_type(k)))
                .instruction(&I::If(enc::BlockType::Empty))
                .instruction(&I::I64Const(k as i64));
            common::mix(f, acc);
            for c in args {
                f.instruction(&c.instr()?);
            }
            call(f, RefReads::FIRST_TYPE + k as u32);
            // A `v128` result: only that there was one (lanes may hold NaNs).
            common::fold_results(f, &ty.results, 0, acc, false);
            f.instruction(&I::End);
        }
        Ok(())
    }

    /// The body of `ref-calls` (`[] -> i64`); `acc` is the observer's own
    /// global.
    fn calls(&self, exports: &ModuleExports, acc: u32) -> Result<enc::Function> {
        use enc::Instruction as I;
        // locals: the temporaries `fold_results` needs, the slot count and
        // slot, a function reference
        let (n, i, r) = (2, 3, 4);
        let mut f = enc::Function::new([
            (1, enc::ValType::F32),
            (1, enc::ValType::F64),
            (2, enc::ValType::I32),
            (1, RefKind::Func.local()),
        ]);
        f.instruction(&I::I64Const(0))
            .instruction(&I::GlobalSet(acc));
        for (table, &(t, kind)) in self.tables.iter().enumerate() {
            if kind != RefKind::Func {
                continue;
            }
            let table = table as u32;
            RefReads::slots(&mut f, exports, t, table, n, i);
            RefReads::slot_index(&mut f, exports, t, i);
            f.instruction(&I::TableGet(table))
                .instruction(&I::LocalSet(r));
            let call = |f: &mut enc::Function, ty: u32| {
                RefReads::slot_index(f, exports, t, i);
                f.instruction(&I::CallIndirect {
                    type_index: ty,
                    table_index: table,
                });
            };
            self.call_each_type(&mut f, r, acc, &call)?;
            RefReads::end_slots(&mut f, i);
        }
        for &(g, kind) in &self.globals {
            if kind != RefKind::Func {
                continue;
            }
            f.instruction(&I::GlobalGet(g)).instruction(&I::LocalSet(r));
            let call = |f: &mut enc::Function, ty: u32| {
                f.instruction(&I::LocalGet(r))
                    .instruction(&I::RefCastNonNull(enc::HeapType::Concrete(ty)))
                    .instruction(&I::CallRef(ty));
            };
            self.call_each_type(&mut f, r, acc, &call)?;
        }
        f.instruction(&I::GlobalGet(acc)).instruction(&I::End);
        Ok(f)
    }
}

/// Builds the component around `module` (see the module docs), init doing
/// what `plan` says.
fn build(
    module: &[u8],
    exports: &ModuleExports,
    plan: &Plan,
    u: &mut Unstructured<'_>,
) -> Result<Case> {
    let instances = plan.instances;
    let instance_names: Vec<String> = (0..instances).map(|i| format!("m{i}")).collect();

    // Everything drawn from `u` first.
    let init_lift = if u.ratio(2, 5)? {
        Lift::Sync
    } else {
        *u.choose(&Lift::ASYNC)?
    };
    let async_exports = u.ratio(2, 3)?;
    let mut export_plans = Vec::new();
    for instance in 0..instances {
        for (func, f) in exports.funcs.iter().enumerate() {
            if !liftable(f) {
                continue;
            }
            let lift = if async_exports && u.ratio(2, 3)? {
                *u.choose(&Lift::ASYNC)?
            } else {
                Lift::Sync
            };
            let args = (f.params.iter())
                .map(|p| arg(*p, u))
                .collect::<arbitrary::Result<_>>()?;
            export_plans.push(ExportPlan {
                instance,
                func,
                lift,
                args,
            });
        }
    }
    let writable: Vec<usize> = (exports.globals.iter().enumerate())
        .filter(|(_, g)| !matches!(g.ty, wp::ValType::Ref(_)))
        .map(|(k, _)| k)
        .collect();
    let global = if !writable.is_empty() && u.ratio(7, 8)? {
        Some(*u.choose(&writable)?)
    } else {
        None
    };
    let roomy = common::roomy_memories(exports.memories.iter().map(|m| &m.ty));
    let memory = if !roomy.is_empty() && u.ratio(7, 8)? {
        Some(common::memory_write(u, &roomy)?)
    } else {
        None
    };
    let writes = Writes {
        global,
        memory,
        refs: RefWrite::draw(exports, instances, u)?,
    };
    let refs = RefReads::new(exports, u)?;

    // The observer: imports state from "s", reads it.
    let mut observer = enc::Module::new();
    let mut types = enc::TypeSection::new();
    types.ty().function([], [enc::ValType::I32]); // 0
    types.ty().function([], [enc::ValType::I64]); // 1
    refs.declare_types(&mut types)?; // RefReads::FIRST_TYPE on
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
    for &(t, _) in &refs.tables {
        let t = &exports.tables[t];
        imports.import("s", &t.name, table_import(t)?);
    }
    let own = exports.memories.len() as u32;
    let mut functions = enc::FunctionSection::new();
    let mut code = enc::CodeSection::new();
    let mut observer_exports = enc::ExportSection::new();
    let mut observer_funcs: Vec<(String, Observes)> = Vec::new();
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
        observer_funcs.push((name, Observes::Memory));
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
            // reference-typed globals: through `refs`
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
            observer_funcs.push((name, Observes::Global { wide }));
        }
    }
    // The tables and reference-typed globals, and calls of their functions
    // (with `acc`, a global of the observer's own, after the imported ones).
    let mut globals = enc::GlobalSection::new();
    if refs.observes_anything() {
        let acc = exports.globals.len() as u32;
        globals.global(
            enc::GlobalType {
                val_type: enc::ValType::I64,
                mutable: true,
                shared: false,
            },
            &enc::ConstExpr::i64_const(0),
        );
        // (name, body, type: 0 returns an `i32`, 1 an `i64`, what it reads)
        for (name, body, ty, observes) in [
            (REFS, refs.read(exports, own), 0, Observes::Refs),
            (REF_CALLS, refs.calls(exports, acc)?, 1, Observes::RefCalls),
        ] {
            observer_exports.export(name, enc::ExportKind::Func, observer_funcs.len() as u32);
            functions.function(ty);
            code.function(&body);
            observer_funcs.push((name.to_string(), observes));
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
        .section(&globals)
        .section(&observer_exports)
        .section(&code);

    // The glue (see the module docs). Imports: the module's functions it
    // calls, the builtins, then the state it writes.
    let mut glue = Glue {
        types: CoreTypes::default(),
        imports: enc::ImportSection::new(),
        imported_funcs: 0,
        funcs: Vec::new(),
        globals: Vec::new(),
        imported_globals: 0,
        declared: Vec::new(),
    };
    let [ref_tables, ref_globals, ref_funcs] =
        RefWrite::imports(&writes.refs, instances, plan.initialized);
    let mut needed = std::collections::BTreeSet::new();
    for i in 0..plan.initialized {
        needed.extend(plan.chain.iter().map(|f| (i, *f)));
    }
    needed.extend(ref_funcs.iter().copied());
    needed.extend(
        (export_plans.iter())
            .filter(|e| e.lift.is_async())
            .map(|e| (e.instance, e.func)),
    );
    let mut funcs = BTreeMap::new();
    for (i, f) in needed {
        let func = &exports.funcs[f];
        let params = func
            .params
            .iter()
            .map(|t| enc_val(*t))
            .collect::<Result<Vec<_>>>()?;
        let results = func
            .results
            .iter()
            .map(|t| enc_val(*t))
            .collect::<Result<Vec<_>>>()?;
        let ty = glue.types.index(&params, &results);
        glue.imports.import(
            &instance_names[i as usize],
            &func.name,
            enc::EntityType::Function(ty),
        );
        funcs.insert((i, f), glue.imported_funcs);
        glue.imported_funcs += 1;
    }
    let mut wanted = std::collections::BTreeSet::new();
    if init_lift.is_async() {
        wanted.insert(Builtin::TaskReturn(None));
    }
    if init_lift == Lift::Stackful {
        wanted.insert(Builtin::ThreadYield);
    }
    for e in export_plans.iter().filter(|e| e.lift.is_async()) {
        let result = exports.funcs[e.func].results.first();
        wanted.insert(Builtin::TaskReturn(result.and_then(|t| ScalarKind::of(*t))));
        if e.lift == Lift::Stackful {
            wanted.insert(Builtin::ThreadYield);
        }
    }
    let mut builtins = BTreeMap::new();
    for b in &wanted {
        let ty = match b {
            Builtin::TaskReturn(kind) => {
                let params: Vec<enc::ValType> = kind.iter().map(|k| k.core()).collect();
                glue.types.index(&params, &[])
            }
            Builtin::ThreadYield => glue.types.index(&[], &[enc::ValType::I32]),
        };
        glue.imports
            .import("cm", &b.name(), enc::EntityType::Function(ty));
        builtins.insert(*b, glue.imported_funcs);
        glue.imported_funcs += 1;
    }
    for i in 0..plan.initialized {
        let module = &instance_names[i as usize];
        if let Some(g) = writes.global {
            let g = &exports.globals[g];
            glue.imports.import(
                module,
                &g.name,
                enc::GlobalType {
                    val_type: enc_val(g.ty)?,
                    mutable: true,
                    shared: false,
                },
            );
            glue.imported_globals += 1;
        }
        if let Some((m, _)) = writes.memory {
            let m = &exports.memories[m];
            glue.imports.import(
                module,
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
    }
    // The tables and funcref globals the glue writes (or reads) during
    // init, after the rest.
    let mut tables = BTreeMap::new();
    for &(i, t) in &ref_tables {
        let table = &exports.tables[t];
        glue.imports.import(
            &instance_names[i as usize],
            &table.name,
            table_import(table)?,
        );
        tables.insert((i, t), tables.len() as u32);
    }
    let mut ref_global_indices = BTreeMap::new();
    for &(i, g) in &ref_globals {
        let global = &exports.globals[g];
        glue.imports.import(
            &instance_names[i as usize],
            &global.name,
            enc::GlobalType {
                val_type: enc_val(global.ty)?,
                mutable: true,
                shared: false,
            },
        );
        ref_global_indices.insert((i, g), glue.imported_globals);
        glue.imported_globals += 1;
    }
    glue.declared = ref_funcs.iter().map(|k| funcs[k]).collect();
    let acc = glue.global(enc::ValType::I64, Const::I64(0));
    let layout = GlueLayout {
        exports,
        plan,
        writes: &writes,
        funcs,
        builtins,
        acc,
        tables,
        ref_globals: ref_global_indices,
    };
    let task_return = |kind: Option<ScalarKind>| layout.builtins[&Builtin::TaskReturn(kind)];
    use enc::Instruction as I;
    use enc::ValType::I32;
    let callback_params = [I32; 3];

    // init, and its callback
    match init_lift {
        Lift::Sync | Lift::Callback | Lift::Stackful => {
            let (mut f, temps) = stage_function(0);
            for i in 0..plan.initialized {
                layout.stage(&mut f, i, temps)?;
                if init_lift == Lift::Stackful {
                    f.instruction(&I::Call(layout.builtins[&Builtin::ThreadYield]))
                        .instruction(&I::Drop);
                }
            }
            if init_lift.is_async() {
                f.instruction(&I::Call(task_return(None)));
            }
            let results: &[enc::ValType] = if init_lift == Lift::Callback {
                f.instruction(&I::I32Const(EXIT));
                &[I32]
            } else {
                &[]
            };
            f.instruction(&I::End);
            glue.func(&[], results, f, "init".into());
        }
        Lift::CallbackYield => {
            // `phase`: the next instance to initialize.
            let phase = glue.global(I32, Const::I32(0));
            let (mut f, temps) = stage_function(0);
            layout.stage(&mut f, 0, temps)?;
            f.instruction(&I::I32Const(1))
                .instruction(&I::GlobalSet(phase))
                .instruction(&I::I32Const(YIELD))
                .instruction(&I::End);
            glue.func(&[], &[I32], f, "init".into());
            let (mut f, temps) = stage_function(3);
            for k in 1..plan.initialized {
                f.instruction(&I::GlobalGet(phase))
                    .instruction(&I::I32Const(k as i32))
                    .instruction(&I::I32Eq)
                    .instruction(&I::If(enc::BlockType::Empty));
                layout.stage(&mut f, k, temps)?;
                f.instruction(&I::I32Const(k as i32 + 1))
                    .instruction(&I::GlobalSet(phase))
                    .instruction(&I::I32Const(YIELD))
                    .instruction(&I::Return)
                    .instruction(&I::End);
            }
            f.instruction(&I::Call(task_return(None)))
                .instruction(&I::I32Const(EXIT))
                .instruction(&I::End);
            glue.func(&callback_params, &[I32], f, "init-cb".into());
        }
    }
    // The callback of functions that never yield.
    let mut never = enc::Function::new([]);
    never.instruction(&I::Unreachable).instruction(&I::End);
    glue.func(&callback_params, &[I32], never, "never".into());
    let mut f = enc::Function::new([]);
    f.instruction(&I::GlobalGet(acc)).instruction(&I::End);
    glue.func(&[], &[enc::ValType::I64], f, "acc".into());
    // The async-lifted exports' functions.
    for (n, e) in export_plans.iter().enumerate() {
        let func = &exports.funcs[e.func];
        let params = func
            .params
            .iter()
            .map(|t| enc_val(*t))
            .collect::<Result<Vec<_>>>()?;
        let kind = func.results.first().and_then(|t| ScalarKind::of(*t));
        let call = layout.funcs.get(&(e.instance, e.func)).copied();
        let mut f = enc::Function::new([]);
        match e.lift {
            Lift::Sync => continue,
            Lift::Callback => {
                for p in 0..params.len() {
                    f.instruction(&I::LocalGet(p as u32));
                }
                f.instruction(&I::Call(call.expect("imported")))
                    .instruction(&I::Call(task_return(kind)))
                    .instruction(&I::I32Const(EXIT))
                    .instruction(&I::End);
                glue.func(&params, &[I32], f, format!("w{n}"));
            }
            Lift::CallbackYield => {
                // The arguments wait in globals for the callback.
                let stash: Vec<u32> = (params.iter()).map(|t| glue.global(*t, zero(*t))).collect();
                for (p, g) in stash.iter().enumerate() {
                    f.instruction(&I::LocalGet(p as u32))
                        .instruction(&I::GlobalSet(*g));
                }
                f.instruction(&I::I32Const(YIELD)).instruction(&I::End);
                glue.func(&params, &[I32], f, format!("w{n}"));
                let mut f = enc::Function::new([]);
                for g in &stash {
                    f.instruction(&I::GlobalGet(*g));
                }
                f.instruction(&I::Call(call.expect("imported")))
                    .instruction(&I::Call(task_return(kind)))
                    .instruction(&I::I32Const(EXIT))
                    .instruction(&I::End);
                glue.func(&callback_params, &[I32], f, format!("w{n}-cb"));
            }
            Lift::Stackful => {
                f.instruction(&I::Call(layout.builtins[&Builtin::ThreadYield]))
                    .instruction(&I::Drop);
                for p in 0..params.len() {
                    f.instruction(&I::LocalGet(p as u32));
                }
                f.instruction(&I::Call(call.expect("imported")))
                    .instruction(&I::Call(task_return(kind)))
                    .instruction(&I::End);
                glue.func(&params, &[], f, format!("w{n}"));
            }
        }
    }
    let builtin_list: Vec<Builtin> = layout.builtins.keys().copied().collect();
    let glue = glue.encode()?;

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
    c.section(&core_instances);
    // The builtins, in one core instance the glue imports as "cm".
    let mut core_instances = enc::InstanceSection::new();
    let mut glue_args: Vec<(String, enc::ModuleArg)> = (instance_names.iter().enumerate())
        .map(|(i, n)| (n.clone(), enc::ModuleArg::Instance(i as u32)))
        .collect();
    let mut glue_instance = 2 * instances;
    if !builtin_list.is_empty() {
        let mut canon = enc::CanonicalFunctionSection::new();
        for b in &builtin_list {
            match b {
                Builtin::TaskReturn(kind) => canon.task_return(
                    kind.map(|k| enc::ComponentValType::Primitive(k.component())),
                    [],
                ),
                Builtin::ThreadYield => canon.thread_yield(false),
            };
        }
        c.section(&canon);
        let names: Vec<String> = builtin_list.iter().map(|b| b.name()).collect();
        core_instances.export_items(
            (names.iter().enumerate()).map(|(k, n)| (n.as_str(), enc::ExportKind::Func, k as u32)),
        );
        glue_args.push(("cm".into(), enc::ModuleArg::Instance(glue_instance)));
        glue_instance += 1;
    }
    core_instances.instantiate(2, glue_args.iter().map(|(n, a)| (n.as_str(), *a)));
    c.section(&core_instances);

    // Core functions and memories aliased out of the instances, and what
    // each lifted function is. The builtins are the first core functions.
    let mut aliases = enc::ComponentAliasSection::new();
    let mut core_funcs = builtin_list.len() as u32;
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
                    options: Vec<enc::CanonicalOption>| {
        let is_async = options
            .iter()
            .any(|o| matches!(o, enc::CanonicalOption::Async));
        let ty = types.len();
        let params: Vec<(String, enc::ComponentValType)> = (params.iter().enumerate())
            .map(|(i, p)| {
                (
                    format!("p{i}"),
                    enc::ComponentValType::Primitive(
                        scalar(*p).unwrap_or(enc::PrimitiveValType::S32),
                    ),
                )
            })
            .collect();
        let mut func_type = types.function();
        if is_async {
            func_type.async_(true);
        }
        func_type
            .params(params.iter().map(|(n, t)| (n.as_str(), *t)))
            .result(result);
        canon.lift(core_func, ty, options);
        exports.export(name, enc::ComponentExportKind::Func, lifted, None);
        lifted += 1;
    };
    // The options of an async lift of `func`, its callback `callback`.
    let async_options =
        |lift: Lift,
         aliases: &mut enc::ComponentAliasSection,
         alias_func: &mut dyn FnMut(&mut enc::ComponentAliasSection, u32, &str) -> u32,
         callback: &str| {
            use enc::CanonicalOption as O;
            match lift {
                Lift::Sync => vec![],
                Lift::Callback => vec![
                    O::Async,
                    O::Callback(alias_func(aliases, glue_instance, "never")),
                ],
                Lift::CallbackYield => {
                    vec![
                        O::Async,
                        O::Callback(alias_func(aliases, glue_instance, callback)),
                    ]
                }
                Lift::Stackful => vec![O::Async],
            }
        };

    let init_func = alias_func(&mut aliases, glue_instance, "init");
    let options = async_options(init_lift, &mut aliases, &mut alias_func, "init-cb");
    lift(
        &mut type_section,
        &mut canon,
        &mut component_exports,
        INIT,
        init_func,
        &[],
        None,
        options,
    );
    let mut calls = Vec::new();
    let mut observations = Vec::new();
    let mut ref_calls = Vec::new();
    for i in 0..instances {
        let plans = (export_plans.iter().enumerate()).filter(|(_, e)| e.instance == i);
        for (k, (n, e)) in plans.enumerate() {
            let f = &exports.funcs[e.func];
            let name = format!("i{i}-f{k}");
            let (core, options) = if e.lift.is_async() {
                let core = alias_func(&mut aliases, glue_instance, &format!("w{n}"));
                let options =
                    async_options(e.lift, &mut aliases, &mut alias_func, &format!("w{n}-cb"));
                (core, options)
            } else {
                (alias_func(&mut aliases, i, &f.name), vec![])
            };
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
                options,
            );
            calls.push(Step::Call(name, e.args.clone(), e.lift));
        }
        let observer_instance = instances + i;
        aliases.alias(enc::Alias::CoreInstanceExport {
            instance: observer_instance,
            kind: enc::ExportKind::Memory,
            name: "mem",
        });
        // the observers' memories are aliased one per instance, in order
        let memory = i;
        for (name, observes) in &observer_funcs {
            let export = format!("i{i}-{name}");
            let core = alias_func(&mut aliases, observer_instance, name);
            let s64 = enc::ComponentValType::Primitive(enc::PrimitiveValType::S64);
            let s32 = enc::ComponentValType::Primitive(enc::PrimitiveValType::S32);
            let list = enc::ComponentValType::Type(list_u8);
            let (result, step) = match observes {
                Observes::Memory => (list, Step::Memory(export.clone())),
                Observes::Global { wide: true } => (s64, Step::Global(export.clone(), true)),
                Observes::Global { wide: false } => (s32, Step::Global(export.clone(), false)),
                Observes::Refs => (list, Step::Refs(export.clone())),
                Observes::RefCalls => (s64, Step::Call(export.clone(), vec![], Lift::Sync)),
            };
            let options = match observes {
                Observes::Memory | Observes::Refs => vec![enc::CanonicalOption::Memory(memory)],
                _ => vec![],
            };
            lift(
                &mut type_section,
                &mut canon,
                &mut component_exports,
                &export,
                core,
                &[],
                Some(result),
                options,
            );
            match observes {
                Observes::RefCalls => ref_calls.push(step),
                _ => observations.push(step),
            }
        }
    }
    let acc_func = alias_func(&mut aliases, glue_instance, "acc");
    lift(
        &mut type_section,
        &mut canon,
        &mut component_exports,
        GLUE_ACC,
        acc_func,
        &[],
        Some(enc::ComponentValType::Primitive(enc::PrimitiveValType::S64)),
        vec![],
    );
    observations.push(Step::Global(GLUE_ACC.into(), true));
    c.section(&aliases);
    c.section(&type_section);
    c.section(&canon);
    c.section(&component_exports);

    let observation_count = observations.len();
    let mut steps = observations.clone();
    steps.extend(ref_calls);
    steps.extend(calls);
    steps.extend(observations);
    Ok(Case {
        component: c.finish(),
        init: plan.chain.clone(),
        init_lift,
        init_returns: false,
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
/// enables (the async component model included), plus fuel.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = common::engine_config();
        config.wasm_component_model_async(true);
        config.wasm_component_model_more_async_builtins(true);
        config.wasm_component_model_async_stackful(true);
        config.wasm_component_model_error_context(true);
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

/// An error that is not a trap: the harness called something wrongly, or
/// an async-lifted function never returned. The generated code cannot
/// cause one (it has no imports), so it is a bug wherever it shows.
fn not_a_trap(o: &Outcome) -> Option<&str> {
    match o {
        Outcome::Trap(t) if t.starts_with("error:") => Some(t),
        _ => None,
    }
}

/// NaN-aware equality of results: NaNs are equal whatever their payload
/// (the tool keeps NaN bits in globals and memory; those are compared
/// exactly through the observers).
fn same_val(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Float32(x), Val::Float32(y)) => common::same_f32(*x, *y),
        (Val::Float64(x), Val::Float64(y)) => common::same_f64(*x, *y),
        _ => a == b,
    }
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Values(a), Outcome::Values(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_val(x, y))
        }
        (Outcome::Bytes(a), Outcome::Bytes(b)) => a == b,
        (Outcome::Trap(a), Outcome::Trap(b)) => {
            a == b || (common::exhausted(a) && common::exhausted(b))
        }
        _ => false,
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Values(v) => format!("{v:?}"),
        Outcome::Trap(t) => t.clone(),
        Outcome::Bytes(b) => format!("{} bytes", b.len()),
    }
}

/// Runs `future` (Wasmtime's async calls) to its end.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("harness: {e:#}"))?;
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    Ok(output)
}

/// Runs one step, on a full fuel budget. Every call goes through
/// `call_async`, which calls async-lifted functions to their `task.return`.
async fn step(store: &mut Store<()>, instance: &Instance, step: &Step) -> Outcome {
    let fuel = match step {
        Step::Call(..) => FUEL,
        Step::Memory(_) | Step::Global(..) | Step::Refs(_) => OBSERVATION_FUEL,
    };
    store.set_fuel(fuel).expect("fuel is enabled");
    step_result(store, instance, step)
        .await
        .unwrap_or_else(|e| Outcome::Trap(trap_of(&e)))
}

async fn step_result(
    store: &mut Store<()>,
    instance: &Instance,
    step: &Step,
) -> wasmtime::Result<Outcome> {
    let name = step.name();
    let missing = || wasmtime::format_err!("no export `{name}`");
    Ok(match step {
        Step::Call(_, args, _) => {
            let func = instance.get_func(&mut *store, name).ok_or_else(missing)?;
            let mut results = vec![Val::Bool(false); func.ty(&*store).results().len()];
            func.call_async(&mut *store, args, &mut results).await?;
            Outcome::Values(results)
        }
        Step::Memory(_) | Step::Refs(_) => {
            let func = instance.get_typed_func::<(), (Vec<u8>,)>(&mut *store, name)?;
            Outcome::Bytes(func.call_async(&mut *store, ()).await?.0)
        }
        Step::Global(_, false) => {
            let func = instance.get_typed_func::<(), (i32,)>(&mut *store, name)?;
            Outcome::Values(vec![Val::S32(func.call_async(&mut *store, ()).await?.0)])
        }
        Step::Global(_, true) => {
            let func = instance.get_typed_func::<(), (i64,)>(&mut *store, name)?;
            Outcome::Values(vec![Val::S64(func.call_async(&mut *store, ()).await?.0)])
        }
    })
}

/// Runs `steps` until the first trap (the instance may not be entered
/// again after one).
async fn run_steps(store: &mut Store<()>, instance: &Instance, steps: &[Step]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for s in steps {
        let o = step(store, instance, s).await;
        let trapped = matches!(o, Outcome::Trap(_));
        out.push(o);
        if trapped {
            break;
        }
    }
    out
}

/// A pre-initializer: component bytes in, pre-initialized component out.
pub type PreInit<'a> = &'a (dyn Fn(&[u8]) -> Result<Vec<u8>> + Sync);

/// component-init's Wasmtime pipeline: the pre-initializer under test.
pub fn default_pre_init(component: &[u8]) -> Result<Vec<u8>> {
    component_init::initialize_with_wasmtime(
        component,
        &component_init::InstrumentOptions::default(),
    )
}

/// Runs one case from `u`: the whole differential check. `Ok` with what
/// happened and how many steps were compared; `Err` for a bug.
pub fn check(u: &mut Unstructured<'_>) -> Result<(Verdict, usize), Failure> {
    check_with(u, &default_pre_init)
}

/// [`check`] with another pre-initializer in place of component-init's
/// (the test that a wrong snapshot fails the check passes one).
pub fn check_with(
    u: &mut Unstructured<'_>,
    pre_init: PreInit<'_>,
) -> Result<(Verdict, usize), Failure> {
    // A module none of whose functions returns (they loop, or trap), or
    // that does not instantiate, makes a case that never reaches a
    // snapshot: three in four of them are replaced by another module, up to
    // twice.
    let next = |u: &mut Unstructured<'_>| {
        let Some(generated) = Generated::new(u)? else {
            return Ok(Err("wasm-smith generated no module"));
        };
        Ok(generated
            .case(u, true)?
            .ok_or("no function that init can call"))
    };
    match common::settle(u, next, |case: &Case| case.init_returns) {
        Ok(Ok(case)) => check_case(&case, pre_init),
        Ok(Err(why)) => Ok((Verdict::Skipped(why), 0)),
        Err(what) => Err(Failure {
            what,
            wat: String::new(),
        }),
    }
}

const INSTANTIATION_TRAPS: &str = "instantiation traps (a start function or a data segment)";

/// The original: instantiate (start functions run), init, the rest; and
/// the observations of a fresh instance, without init.
async fn run_original(component: &Component, case: &Case) -> Result<Original<Outcome>, String> {
    let engine = engine();
    let linker = Linker::<()>::new(engine);
    let mut store = Store::new(engine, ());
    store.set_fuel(FUEL).expect("fuel is enabled");
    let instance = match linker.instantiate_async(&mut store, component).await {
        Err(e) if is_out_of_fuel(&e) => return Ok(Original::StartOutOfFuel),
        Err(e) if e.downcast_ref::<Trap>().is_none() => {
            return Err(format!("harness: instantiation failed: {e:#}"));
        }
        Err(e) => {
            return Ok(Original::Traps(
                INSTANTIATION_TRAPS,
                trap_of(&e) == STACK_OVERFLOW,
            ));
        }
        Ok(instance) => instance,
    };
    let init = Step::Call(INIT.into(), vec![], case.init_lift);
    match step(&mut store, &instance, &init).await {
        o if not_a_trap(&o).is_some() => Err(format!("harness: init failed: {}", describe(&o))),
        Outcome::Trap(t) if t == common::OUT_OF_FUEL => Ok(Original::InitOutOfFuel),
        Outcome::Trap(t) => Ok(Original::Traps(INIT_TRAPS, t == STACK_OVERFLOW)),
        _ => {
            let expected = run_steps(&mut store, &instance, &case.steps).await;
            harness_errors(&case.steps, &expected)?;
            let mut fresh = Store::new(engine, ());
            fresh.set_fuel(FUEL).expect("fuel is enabled");
            let instance = linker
                .instantiate_async(&mut fresh, component)
                .await
                .map_err(|e| format!("a second instantiation failed: {e:#}"))?;
            let observations = &case.steps[..case.observations];
            let before = run_steps(&mut fresh, &instance, observations).await;
            harness_errors(observations, &before)?;
            Ok(Original::Ran { expected, before })
        }
    }
}

/// Fails when a step of the original's run failed other than by trapping,
/// or an observation failed at all: observers only read.
fn harness_errors(steps: &[Step], outcomes: &[Outcome]) -> Result<(), String> {
    for (s, o) in steps.iter().zip(outcomes) {
        let observation = !matches!(s, Step::Call(..));
        if let Some(e) = not_a_trap(o).or(match o {
            Outcome::Trap(t) if observation => Some(t),
            _ => None,
        }) {
            return Err(format!("harness: `{}` failed: {e}", s.name()));
        }
    }
    Ok(())
}

/// The differential check for one generated case, `pre_init` the
/// pre-initializer.
pub fn check_case(case: &Case, pre_init: PreInit<'_>) -> Result<(Verdict, usize), Failure> {
    let fail = |what: String| Failure {
        what: format!(
            "{what}\n(init, lifted {}, calls the module's exported functions {:?})",
            case.init_lift.name(),
            case.init
        ),
        wat: wat_of(&case.component),
    };
    if let Err(e) =
        wp::Validator::new_with_features(wp::WasmFeatures::all()).validate_all(&case.component)
    {
        return Err(fail(format!(
            "harness: generated component is invalid: {e:#}"
        )));
    }
    let original = match Component::new(engine(), &case.component) {
        Ok(c) => c,
        Err(_) => {
            return Ok((
                Verdict::Skipped("Wasmtime cannot compile the generated component"),
                0,
            ));
        }
    };
    let run = block_on(run_original(&original, case))
        .and_then(|r| r)
        .map_err(fail)?;
    let (why, overflow) = match run {
        Original::StartOutOfFuel => {
            return Ok((Verdict::Skipped(common::START_OUT_OF_FUEL), 0));
        }
        Original::InitOutOfFuel => return Ok((Verdict::Skipped(INIT_OUT_OF_FUEL), 0)),
        Original::Traps(why, overflow) => (why, overflow),
        Original::Ran { expected, before } => {
            // Did init change anything? Anything the observers see,
            // anything of the wasm-smith instances (all but the glue's
            // `acc`), and their tables and reference-typed globals.
            let (state, module_state) =
                common::init_changes(&case.steps, &before, &expected, same, |s| {
                    s.name() == GLUE_ACC
                });
            let (_, tables) = common::init_changes(&case.steps, &before, &expected, same, |s| {
                !matches!(s, Step::Refs(_))
            });
            let changes = Changes {
                state,
                module_state,
                tables,
            };
            return compare(case, pre_init, expected, changes).map_err(fail);
        }
    };

    // The original traps before init returns: pre-initialization must fail,
    // with an error.
    match catch_panic(|| pre_init(&case.component)) {
        // The instrumented code may use less stack than the original.
        Ok(Ok(_)) if overflow => Ok((Verdict::Skipped(STACK_DEPTH_DIFFERS), 0)),
        Ok(Ok(_)) => Err(fail(format!(
            "the original traps ({why}) but pre-initialization succeeded"
        ))),
        Ok(Err(_)) => Ok((Verdict::ErrorChecked(why), 0)),
        Err(panic) => Err(fail(format!("pre-initialization panicked: {panic}"))),
    }
}

/// What a pre-initialization error reports as a documented limitation
/// ([`common::limitation`]) counts as skipped; `None`: a bug, since
/// component-init carries tables and reference-typed globals that init
/// changes (only values no segment can express are refused:
/// [`common::uncarried_reference`]).
fn documented(limitation: common::Limitation) -> Option<&'static str> {
    use common::Limitation as L;
    Some(match limitation {
        L::UnsupportedGlobal => "a mutable global of an unsupported type (documented)",
        L::AtInstantiation => {
            "a start function changes a table or reference-typed global (documented)"
        }
        L::InitChangesOther => "init changes other unsnapshottable state (documented)",
        L::InitChangesTable | L::InitChangesRefGlobal => return None,
    })
}

/// What init changed, as the observers see it (before init, on a fresh
/// instance, and after).
struct Changes {
    /// Anything the observers see.
    state: bool,
    /// State of the wasm-smith instances (not only the glue's `acc`).
    module_state: bool,
    /// Their tables and reference-typed globals.
    tables: bool,
}

/// Pre-initializes and compares the output's run with `expected`, the
/// original's.
fn compare(
    case: &Case,
    pre_init: PreInit<'_>,
    expected: Vec<Outcome>,
    changes: Changes,
) -> Result<(Verdict, usize), String> {
    let output = match catch_panic(|| pre_init(&case.component)) {
        Err(panic) => return Err(format!("pre-initialization panicked: {panic}")),
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            if let Some(why) = common::uncarried_reference(&msg) {
                return Ok((Verdict::Skipped(why), 0));
            }
            if let Some(limitation) = common::limitation(&msg) {
                return match documented(limitation) {
                    Some(why) => Ok((Verdict::Skipped(why), 0)),
                    None => Err(format!(
                        "pre-initialization refused a table or reference-typed global that \
                         init changed, which it carries: {msg}"
                    )),
                };
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
    let actual = block_on(async {
        let mut store = Store::new(engine, ());
        store.set_fuel(FUEL).expect("fuel is enabled");
        let instance = Linker::<()>::new(engine)
            .instantiate_async(&mut store, &component)
            .await
            .map_err(|e| format!("the output fails to instantiate: {}", trap_of(&e)))?;
        Ok::<_, String>(run_steps(&mut store, &instance, &case.steps).await)
    })??;
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
    let ran = &case.steps[..expected.len()];
    let async_calls = (ran.iter())
        .filter(|s| matches!(s, Step::Call(_, _, lift) if lift.is_async()))
        .count();
    let ref_calls = (ran.iter())
        .filter(|s| matches!(s, Step::Call(name, ..) if name.ends_with(REF_CALLS)))
        .count();
    Ok((
        Verdict::Compared {
            init_changed_state: changes.state,
            module_state_changed: changes.module_state,
            tables_changed: changes.tables,
            ref_calls,
            init_lift: case.init_lift.name(),
            async_calls,
        },
        expected.len(),
    ))
}
