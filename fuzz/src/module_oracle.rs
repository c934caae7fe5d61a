//! The core-module differential oracle: generate a wasm-smith core module,
//! give it an init function, run it as is (instantiate, init, then every
//! export) and pre-initialized by component-init (instantiate, every
//! export), and compare. Also hostile inputs for the core-module pipeline.
//!
//! The counterpart of `oracle.rs` (which wraps wasm-smith modules into
//! components) for what `initialize_module` does, as Wizer does: the
//! modules are core modules already, so there is no wrapping: the module
//! pre-initialized is compared with the module initialized at run time.
//! Shared by the `module_differential` test (`tests/all/
//! module_differential.rs` includes this file with `#[path]`) and the
//! `module_differential` fuzz target.
//!
//! A case:
//!
//! - **The module.** wasm-smith, every item exported, small memories with
//!   maxima (32- and 64-bit, custom page sizes), mutable globals of every
//!   numeric type and `v128`, bulk memory, SIMD, tail calls, reference
//!   types half the time. No imports, but in one case in eight any (a
//!   module importing a memory, table or global must be refused; imported
//!   functions trap when called, on both sides).
//! - **Init.** Mostly appended: a `wizer-initialize` export (one time in
//!   eight the old spelling `wizer.initialize`, found by default only when
//!   alone) calling a chain of one to three of the module's functions with
//!   constant arguments, folding their results into a new mutable `i64`
//!   global (exported as `harness-acc`), then writing that value into one
//!   of the module's mutable globals and at an offset of one of its
//!   memories (growing it when the offset is past its end). One time in
//!   five the chain is split with an appended `_initialize`, which must run
//!   first (the fold does not commute) and be removed from the output. One
//!   time in five init is instead an exported `[] -> []` function of the
//!   module, named with `init_func`. The chain is chosen by running
//!   candidates on a plain instance first (calls that return within the
//!   fuel budget; one chain in eight ends with a call that traps); a module
//!   none of whose functions returns is replaced by another three times in
//!   four, up to twice.
//! - **Options.** `keep_init_func` one time in four (then init is called
//!   again among the exports, on both sides); a `--rename-func` one time in
//!   four (an export renamed to a fresh name, or to the name of another
//!   export, which goes).
//! - **Runs.** The reference: Wasmtime, every unknown import a trap,
//!   instantiation and init on one budget of [`FUEL`]. Then, and on the
//!   output (instantiated fresh), the same steps: read every exported
//!   global (bits; reference-typed: null or not), memory (bytes) and table
//!   (size, null or not per element); call every exported function in
//!   order, each on [`FUEL`], with fixed arguments (results NaN-aware;
//!   traps compared, the instance used on); read the state again. A call
//!   that exhausts fuel or stack ends the steps (which comes first is up to
//!   the compiler). The output must validate, export exactly what the
//!   original does less init (unless kept) and `_initialize`, renamed as
//!   asked, and have no start function.
//! - **Verdicts.** Compared (the same), refused (component-init failed
//!   with a documented error: imported state, init or a start function
//!   changing a table or reference-typed global), error-checked (the
//!   original traps before init returns, and component-init failed with an
//!   error, as it must), skipped (init out of fuel, ...). A difference, an
//!   undocumented error, a panic or an invalid output is a [`Failure`].
//!
//! component-init runs with Cranelift and fuel ([`PIPELINE_FUEL`]: its
//! instrumented module also pays for probes) through
//! `WasmtimeRuntime::builder()`.

use anyhow::{Context, Result, bail};
use arbitrary::Unstructured;
use component_init::{Compiler, Limits, ModuleOptions, WasmtimeRuntime};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;
use wasm_encoder as enc;
use wasmparser as wp;
use wasmtime::{Engine, Instance, Linker, Module, Store, Trap};

pub use super::common::seed_bytes;
use super::common::{
    self, Const, Ends, INIT_TRAPS, Original, STACK_DEPTH_DIFFERS, STACK_OVERFLOW, exhausted,
    is_out_of_fuel, wat_of,
};

/// Fuel for the reference's instantiation and init (one budget, as
/// component-init's limits count both), and for every later call.
pub const FUEL: u64 = 100_000;

/// Fuel component-init gets for instantiation and init: its instrumented
/// module also runs the probes (a few instructions per `data.drop`,
/// `table.set`, ...).
pub const PIPELINE_FUEL: u64 = 4 * FUEL;

/// Wizer's default init export, and its older spelling.
pub const INIT: &str = "wizer-initialize";
const OLD_INIT: &str = "wizer.initialize";
/// A WASI reactor's constructor: runs before init, removed from the output.
const WASI_INITIALIZE: &str = "_initialize";
/// The global init folds the chain's results into.
const ACC: &str = "harness-acc";
/// The fresh name of a renamed export.
const RENAMED: &str = "harness-renamed";

/// How the init function came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitKind {
    /// An appended `wizer-initialize`.
    Appended,
    /// An appended `wizer.initialize`, found by default.
    OldName,
    /// An appended `_initialize` running the chain's first part, then an
    /// appended `wizer-initialize` the rest.
    WithInitialize,
    /// An exported `[] -> []` function of the module, named with
    /// `init_func`.
    Exported,
}

impl InitKind {
    /// How the tallies name it.
    pub fn name(self) -> &'static str {
        match self {
            InitKind::Appended => "appended wizer-initialize",
            InitKind::OldName => "appended wizer.initialize",
            InitKind::WithInitialize => "appended _initialize, then wizer-initialize",
            InitKind::Exported => "an exported function, by --init-func",
        }
    }
}

/// What one case came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both runs were compared and agreed.
    Compared {
        /// Init changed state the steps read (the module's or `harness-acc`).
        init_changed_state: bool,
        /// Init changed the module's own state (not only `harness-acc`).
        module_state_changed: bool,
        /// How init came to be.
        init: InitKind,
        /// Whether the init export was kept (and called again).
        kept: bool,
        /// Whether an export was renamed.
        renamed: bool,
    },
    /// component-init refused the module with a documented error; why.
    Refused(&'static str),
    /// The original traps before init returns, and pre-initialization
    /// failed with an error, as it must.
    ErrorChecked(&'static str),
    /// Nothing to compare; why.
    Skipped(&'static str),
}

/// A difference between the two runs, an invalid output, an undocumented
/// error or a panic: a bug (in component-init, or in this harness).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub what: String,
    /// The module, as text.
    pub wat: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\nmodule:\n{}", self.what, self.wat)
    }
}

/// Counts of verdicts over many cases.
#[derive(Debug, Default)]
pub struct Stats {
    /// Cases run.
    pub cases: usize,
    /// Cases compared.
    pub compared: usize,
    /// Compared cases in which init changed state the steps read.
    pub changed: usize,
    /// Compared cases in which init changed the module's own state.
    pub changed_module: usize,
    /// Calls and observations compared over all compared cases.
    pub steps: usize,
    /// Compared cases, by how init came to be.
    pub inits: BTreeMap<&'static str, usize>,
    /// Compared cases with the init export kept.
    pub kept: usize,
    /// Compared cases with an export renamed.
    pub renamed: usize,
    /// Refused cases, by reason.
    pub refused: BTreeMap<&'static str, usize>,
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
                init,
                kept,
                renamed,
            } => {
                self.compared += 1;
                self.changed += usize::from(*init_changed_state);
                self.changed_module += usize::from(*module_state_changed);
                self.steps += steps;
                self.kept += usize::from(*kept);
                self.renamed += usize::from(*renamed);
                *self.inits.entry(init.name()).or_default() += 1;
            }
            Verdict::Refused(why) => *self.refused.entry(why).or_default() += 1,
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
        self.steps += other.steps;
        self.kept += other.kept;
        self.renamed += other.renamed;
        common::merge_counts(&mut self.inits, other.inits);
        common::merge_counts(&mut self.refused, other.refused);
        common::merge_counts(&mut self.error_checked, other.error_checked);
        common::merge_counts(&mut self.skipped, other.skipped);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} cases: {} compared (init changed state in {}, the module's own in {}; \
             {} calls and observations; init kept in {}, an export renamed in {}), \
             {} refused, {} error-checked, {} skipped",
            self.cases,
            self.compared,
            self.changed,
            self.changed_module,
            self.steps,
            self.kept,
            self.renamed,
            self.refused.values().sum::<usize>(),
            self.error_checked.values().sum::<usize>(),
            self.skipped.values().sum::<usize>()
        )?;
        common::write_counts(f, "compared, init", &self.inits)?;
        common::write_counts(f, "refused:", &self.refused)?;
        common::write_counts(f, "error-checked:", &self.error_checked)?;
        common::write_counts(f, "skipped:", &self.skipped)
    }
}

/// What the harness needs to know of a module.
struct Facts {
    /// Size of the type index space.
    types: u32,
    /// Size of the function index space (imports included).
    funcs: u32,
    /// Size of the global index space.
    globals: u32,
    /// Every memory, by index.
    memories: Vec<wp::MemoryType>,
    /// Mutable numeric (and `v128`) globals: index and type.
    writable_globals: Vec<(u32, wp::ValType)>,
    /// Every export: name, kind, index.
    exports: Vec<(String, wp::ExternalKind, u32)>,
    /// Exported functions: export position, function index, signature.
    funcs_exported: Vec<ExportedFunc>,
    /// The first import of a memory, table or global, if any (the module
    /// must be refused).
    imported_state: Option<String>,
}

struct ExportedFunc {
    name: String,
    index: u32,
    params: Vec<wp::ValType>,
    results: Vec<wp::ValType>,
}

impl Facts {
    fn new(module: &[u8]) -> Result<Facts> {
        let types = wp::Validator::new_with_features(wp::WasmFeatures::all())
            .validate_all(module)
            .context("the generated module does not validate")?;
        let types = types.as_ref();
        let mut facts = Facts {
            types: types.core_type_count_in_module(),
            funcs: types.function_count(),
            globals: types.global_count(),
            memories: (0..types.memory_count())
                .map(|i| types.memory_at(i))
                .collect(),
            writable_globals: (0..types.global_count())
                .map(|i| (i, types.global_at(i)))
                .filter(|(_, g)| g.mutable && !matches!(g.content_type, wp::ValType::Ref(_)))
                .map(|(i, g)| (i, g.content_type))
                .collect(),
            exports: Vec::new(),
            funcs_exported: Vec::new(),
            imported_state: None,
        };
        for payload in wp::Parser::new(0).parse_all(module) {
            match payload? {
                wp::Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import?;
                        let what = match import.ty {
                            wp::TypeRef::Memory(_) => "a memory",
                            wp::TypeRef::Table(_) => "a table",
                            wp::TypeRef::Global(_) => "a global",
                            _ => continue,
                        };
                        facts.imported_state.get_or_insert_with(|| {
                            format!("{what} (`{}` `{}`)", import.module, import.name)
                        });
                    }
                }
                wp::Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        let name = export.name.to_string();
                        if export.kind == wp::ExternalKind::Func {
                            let ty = types[types.core_function_at(export.index)].unwrap_func();
                            facts.funcs_exported.push(ExportedFunc {
                                name: name.clone(),
                                index: export.index,
                                params: ty.params().to_vec(),
                                results: ty.results().to_vec(),
                            });
                        }
                        facts.exports.push((name, export.kind, export.index));
                    }
                }
                _ => {}
            }
        }
        Ok(facts)
    }
}

/// What the harness does after init, on both sides: the export's name in
/// the original and in the output (they differ when renamed).
#[derive(Debug, Clone)]
pub enum Step {
    /// Call a function with arguments.
    Call(String, String, Vec<wasmtime::Val>),
    /// Read a global.
    Global(String, String),
    /// Read a memory.
    Memory(String, String),
    /// Read a table: its size and which elements are null.
    Table(String, String),
}

impl Step {
    fn name(&self, output: bool) -> &str {
        let (Step::Call(a, b, _) | Step::Global(a, b) | Step::Memory(a, b) | Step::Table(a, b)) =
            self;
        if output { b } else { a }
    }
}

/// A generated case.
pub struct Case {
    /// The module, init function appended.
    pub module: Vec<u8>,
    /// The options component-init is given.
    pub options: ModuleOptions,
    /// How init came to be.
    pub init: InitKind,
    /// The exports the reference calls as init, in order.
    pub init_calls: Vec<String>,
    /// Steps after init: observations, every function, observations.
    pub steps: Vec<Step>,
    /// How many observations start `steps`.
    pub observations: usize,
    /// The exports the output must have: name and kind, sorted.
    pub output_exports: Vec<(String, String)>,
    /// The module imports a memory, table or global: what (it must be
    /// refused).
    pub imported_state: Option<String>,
    /// Whether init's chain returned when tried on a plain instance.
    pub init_returns: bool,
}

/// The engine of the reference runs (and of the outputs' runs): the
/// proposals component-init snapshots, and fuel.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(&common::engine_config()).expect("the harness engine is configured correctly")
    })
}

/// Instantiates `module` on `fuel`, every function import trapping.
fn instantiate(module: &Module, fuel: u64) -> Result<(Store<()>, Instance), wasmtime::Error> {
    let mut store = Store::new(engine(), ());
    store.set_fuel(fuel)?;
    let mut linker = Linker::new(engine());
    linker.define_unknown_imports_as_traps(module)?;
    let instance = linker.instantiate(&mut store, module)?;
    Ok((store, instance))
}

/// A trap's code, or an error's root cause (an imported function's "unknown
/// import"): the context around it holds code offsets, which differ between
/// the original and the output.
fn trap_of(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(trap) => format!("trap: {trap:?}"),
        None => format!("error: {}", e.root_cause()),
    }
}

/// The module compiled, to try init's candidates on.
struct Screen {
    module: Module,
}

impl Screen {
    /// Runs `chain` on a fresh instance, instantiation included, on `fuel`.
    fn run(&self, funcs: &[ExportedFunc], args: &[Vec<Const>], chain: &[usize], fuel: u64) -> Ends {
        let (mut store, instance) = match instantiate(&self.module, fuel) {
            Ok(ok) => ok,
            Err(_) => return Ends::Unknown,
        };
        let calls = (chain.iter()).map(|&f| (funcs[f].name.as_str(), args[f].as_slice()));
        common::run_chain(&mut store, &instance, calls)
    }
}

/// Fuel init's own instructions may need, on top of its calls.
const INIT_FUEL: u64 = 2_000;

/// What an appended init does.
struct InitPlan {
    /// Exported functions (indices into `Facts::funcs_exported`) init
    /// calls, in order.
    chain: Vec<usize>,
    /// `_initialize` runs `chain[..split]`, when present.
    split: Option<usize>,
    /// The name of the appended init.
    name: &'static str,
    /// A writable global (index into `Facts::writable_globals`) init writes
    /// `acc` into.
    global: Option<usize>,
    /// A memory and an offset init writes `acc` at.
    memory: Option<(u32, u64)>,
}

/// Appends init (and maybe `_initialize`) to `module`, as `plan` says.
fn append_init(
    module: &[u8],
    facts: &Facts,
    args: &[Vec<Const>],
    plan: &InitPlan,
) -> Result<Vec<u8>> {
    let acc = facts.globals;
    let ty = facts.types;
    let mut funcs = Vec::new();
    let (first, rest) = match plan.split {
        Some(k) => (Some(&plan.chain[..k]), &plan.chain[k..]),
        None => (None, &plan.chain[..]),
    };
    if let Some(first) = first {
        funcs.push((WASI_INITIALIZE, init_body(facts, args, first, None, acc)?));
    }
    funcs.push((plan.name, init_body(facts, args, rest, Some(plan), acc)?));
    for (name, _) in &funcs {
        if facts.exports.iter().any(|(n, ..)| n == name) {
            bail!("the module already exports `{name}`");
        }
    }
    if facts.exports.iter().any(|(n, ..)| n == ACC) {
        bail!("the module already exports `{ACC}`");
    }

    use enc::reencode::{Reencode, RoundtripReencoder as R};
    /// The sections to extend, by their place in a module.
    const TYPE: u8 = 1;
    const FUNCTION: u8 = 3;
    const GLOBAL: u8 = 7;
    const EXPORT: u8 = 8;
    const CODE: u8 = 12;
    fn place(id: u8) -> u8 {
        match id {
            13 => 6,  // tag: after memory
            6 => 7,   // global
            7 => 8,   // export
            8 => 9,   // start
            9 => 10,  // element
            12 => 11, // data count
            10 => 12, // code
            11 => 13, // data
            other => other,
        }
    }
    let mut out = enc::Module::new();
    let mut done = BTreeSet::new();
    let mut types = enc::TypeSection::new();
    let mut functions = enc::FunctionSection::new();
    let mut globals = enc::GlobalSection::new();
    let mut exports = enc::ExportSection::new();
    let mut code = enc::CodeSection::new();
    let mut code_left = None;
    // Emits the extended section at `at`, with what it had before.
    let finish = |at: u8,
                  out: &mut enc::Module,
                  types: &mut enc::TypeSection,
                  functions: &mut enc::FunctionSection,
                  globals: &mut enc::GlobalSection,
                  exports: &mut enc::ExportSection,
                  code: &mut enc::CodeSection| {
        match at {
            TYPE => {
                types.ty().function([], []);
                out.section(types);
            }
            FUNCTION => {
                for _ in &funcs {
                    functions.function(ty);
                }
                out.section(functions);
            }
            GLOBAL => {
                globals.global(
                    enc::GlobalType {
                        val_type: enc::ValType::I64,
                        mutable: true,
                        shared: false,
                    },
                    &enc::ConstExpr::i64_const(0),
                );
                out.section(globals);
            }
            EXPORT => {
                for (k, (name, _)) in funcs.iter().enumerate() {
                    exports.export(name, enc::ExportKind::Func, facts.funcs + k as u32);
                }
                exports.export(ACC, enc::ExportKind::Global, acc);
                out.section(exports);
            }
            _ => {
                for (_, body) in &funcs {
                    code.function(body);
                }
                out.section(code);
            }
        }
    };
    // `finish` on the sections being built.
    macro_rules! finish {
        ($at:expr) => {
            finish(
                $at,
                &mut out,
                &mut types,
                &mut functions,
                &mut globals,
                &mut exports,
                &mut code,
            )
        };
    }
    // Emits the extended sections the module lacks that go before `place`.
    macro_rules! missing_before {
        ($place:expr) => {
            for at in [TYPE, FUNCTION, GLOBAL, EXPORT, CODE] {
                if at < $place && done.insert(at) {
                    finish!(at);
                }
            }
        };
    }
    for payload in wp::Parser::new(0).parse_all(module) {
        let payload = payload?;
        let at = match &payload {
            wp::Payload::CodeSectionEntry(_) => None,
            p => p.as_section().map(|(id, _)| place(id)),
        };
        if let Some(at) = at
            && at != 0
        {
            missing_before!(at);
        }
        match payload {
            wp::Payload::TypeSection(reader) => R.parse_type_section(&mut types, reader)?,
            wp::Payload::FunctionSection(reader) => {
                R.parse_function_section(&mut functions, reader)?
            }
            wp::Payload::GlobalSection(reader) => R.parse_global_section(&mut globals, reader)?,
            wp::Payload::ExportSection(reader) => R.parse_export_section(&mut exports, reader)?,
            wp::Payload::CodeSectionStart { count, .. } => code_left = Some(count),
            wp::Payload::CodeSectionEntry(body) => {
                R.parse_function_body(&mut code, body)?;
                code_left = code_left.map(|n| n - 1);
            }
            wp::Payload::End(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&enc::RawSection {
                        id,
                        data: &module[range],
                    });
                }
                continue;
            }
        }
        if let Some(at) = at.filter(|at| [TYPE, FUNCTION, GLOBAL, EXPORT].contains(at))
            && done.insert(at)
        {
            finish!(at);
        }
        if code_left == Some(0) && done.insert(CODE) {
            finish!(CODE);
        }
    }
    missing_before!(u8::MAX);
    let bytes = out.finish();
    wp::Validator::new_with_features(wp::WasmFeatures::all())
        .validate_all(&bytes)
        .map_err(|e| anyhow::anyhow!("the module with init appended is invalid: {e}"))?;
    Ok(bytes)
}

/// The body of an appended function: calls `chain`, folding each result
/// into `acc`; with `writes`, then writes `acc` into state.
fn init_body(
    facts: &Facts,
    args: &[Vec<Const>],
    chain: &[usize],
    writes: Option<&InitPlan>,
    acc: u32,
) -> Result<enc::Function> {
    use enc::Instruction as I;
    // Locals 0 and 1: an `f32` and an `f64` temporary.
    let mut f = enc::Function::new([(1, enc::ValType::F32), (1, enc::ValType::F64)]);
    // A fold of a constant first (which function this is), so that running
    // it twice never leaves the state as once does.
    f.instruction(&I::I64Const(if writes.is_some() { 1 } else { 2 }));
    common::mix(&mut f, acc);
    for &k in chain {
        let func = &facts.funcs_exported[k];
        for c in &args[k] {
            f.instruction(&c.instr()?);
        }
        f.instruction(&I::Call(func.index));
        // A `v128` result: its low lane, NaN or not (the bits are state
        // like any).
        common::fold_results(&mut f, &func.results, 0, acc, true);
    }
    let Some(plan) = writes else {
        f.instruction(&I::End);
        return Ok(f);
    };
    if let Some(g) = plan.global {
        let (index, ty) = facts.writable_globals[g];
        common::write_global(&mut f, acc, index, ty)?;
    }
    if let Some((m, offset)) = plan.memory {
        common::write_memory(&mut f, acc, m, facts.memories[m as usize], offset);
    }
    f.instruction(&I::End);
    Ok(f)
}

/// A generated module, before init is added.
pub struct Generated {
    module: Vec<u8>,
    facts: Facts,
}

impl Generated {
    /// Generates a module from `u`; `None` when wasm-smith cannot.
    pub fn new(u: &mut Unstructured<'_>) -> Result<Option<Generated>> {
        // The shared configuration, but one case in eight may import
        // anything.
        let config = common::smith_config(u, true)?;
        let module = match wasm_smith::Module::new(config, u) {
            Ok(m) => m.to_bytes(),
            Err(_) => return Ok(None),
        };
        let facts = Facts::new(&module)?;
        Ok(Some(Generated { module, facts }))
    }

    /// The case: init added (or chosen), options, steps. With `screen`,
    /// init's chain is chosen by running candidates first.
    pub fn case(&self, u: &mut Unstructured<'_>, screen: bool) -> Result<Case> {
        let facts = &self.facts;
        let funcs = &facts.funcs_exported;
        // The same arguments for every call of a function, in init and
        // after; `None` for a function with a parameter no constant has.
        let mut args = Vec::new();
        let mut callable = Vec::new();
        for f in funcs {
            let mut consts = Vec::new();
            for p in &f.params {
                consts.push(Const::new(*p, u, true)?);
            }
            callable.push(consts.iter().all(Option::is_some));
            args.push(consts.into_iter().flatten().collect::<Vec<_>>());
        }
        let candidates: Vec<usize> = (0..funcs.len()).filter(|f| callable[*f]).collect();
        let screen = if screen && facts.imported_state.is_none() {
            Module::new(engine(), &self.module)
                .ok()
                .map(|module| Screen { module })
        } else {
            None
        };
        let run = |chain: &[usize]| match &screen {
            Some(s) => s.run(funcs, &args, chain, FUEL - INIT_FUEL),
            None => Ends::Unknown,
        };
        // An exported `[] -> []` function as init, one time in five.
        let nullary: Vec<usize> = (0..funcs.len())
            .filter(|f| funcs[*f].params.is_empty() && funcs[*f].results.is_empty())
            .collect();
        let exported = match nullary.is_empty() || !u.ratio(1, 5)? {
            true => None,
            false => {
                let returning: Vec<usize> = (nullary.iter().copied())
                    .filter(|f| run(&[*f]) == Ends::Returns)
                    .collect();
                let from = if returning.is_empty() {
                    &nullary
                } else {
                    &returning
                };
                Some((*u.choose(from)?, !returning.is_empty()))
            }
        };
        let (module, init, init_name, init_returns, with_initialize) = match exported {
            Some((f, returns)) => (
                self.module.clone(),
                InitKind::Exported,
                funcs[f].name.clone(),
                returns,
                false,
            ),
            None => {
                let (chain, returns) = common::screened_chain(u, &candidates, &run)?;
                let kind = if u.ratio(1, 5)? {
                    InitKind::WithInitialize
                } else if u.ratio(1, 8)? {
                    InitKind::OldName
                } else {
                    InitKind::Appended
                };
                let plan = InitPlan {
                    split: match kind {
                        InitKind::WithInitialize => Some(u.int_in_range(0..=chain.len())?),
                        _ => None,
                    },
                    chain,
                    name: if kind == InitKind::OldName {
                        OLD_INIT
                    } else {
                        INIT
                    },
                    global: match facts.writable_globals.is_empty() || u.ratio(1, 8)? {
                        true => None,
                        false => Some(u.choose_index(facts.writable_globals.len())?),
                    },
                    memory: memory_write(facts, u)?,
                };
                let module = append_init(&self.module, facts, &args, &plan)?;
                (
                    module,
                    kind,
                    plan.name.to_string(),
                    returns,
                    kind == InitKind::WithInitialize,
                )
            }
        };
        let facts = Facts::new(&module)?;
        let mut init_calls = Vec::new();
        if with_initialize {
            init_calls.push(WASI_INITIALIZE.to_string());
        }
        init_calls.push(init_name.clone());
        let keep = u.ratio(1, 4)?;
        let options = ModuleOptions {
            init_func: match init {
                InitKind::Exported => Some(init_name.clone()),
                // Named explicitly one time in four: the same function.
                InitKind::Appended | InitKind::WithInitialize if u.ratio(1, 4)? => {
                    Some(init_name.clone())
                }
                _ => None,
            },
            keep_init_func: keep,
            renames: Vec::new(),
        };
        let mut case = Case {
            module,
            options,
            init,
            init_calls,
            steps: Vec::new(),
            observations: 0,
            output_exports: Vec::new(),
            imported_state: facts.imported_state.clone(),
            init_returns,
        };
        // A rename, one time in four: a function (neither init nor
        // `_initialize`) to a fresh name, or to the name of another export
        // (which goes).
        let renameable: Vec<&ExportedFunc> = (facts.funcs_exported.iter())
            .filter(|f| f.name != init_name && f.name != WASI_INITIALIZE)
            .collect();
        if !renameable.is_empty() && u.ratio(1, 4)? {
            let src = u.choose(&renameable)?.name.clone();
            let others: Vec<&String> = (facts.exports.iter())
                .map(|(n, ..)| n)
                .filter(|n| **n != src && **n != init_name && *n != WASI_INITIALIZE)
                .collect();
            let dst = if !others.is_empty() && u.ratio(1, 3)? {
                (*u.choose(&others)?).clone()
            } else {
                RENAMED.to_string()
            };
            case.options.renames.push((dst, src));
        }
        steps(&mut case, &facts, &init_name, u)?;
        Ok(case)
    }
}

/// A memory with room for 8 bytes and an offset init writes at: mostly near
/// the start, else anywhere below the maximum (which may take growing).
fn memory_write(facts: &Facts, u: &mut Unstructured<'_>) -> Result<Option<(u32, u64)>> {
    let roomy = common::roomy_memories(&facts.memories);
    if roomy.is_empty() || u.ratio(1, 8)? {
        return Ok(None);
    }
    let (m, offset) = common::memory_write(u, &roomy)?;
    Ok(Some((m as u32, offset)))
}

/// The steps of `case` and the exports its output must have: every export
/// of the module but init (unless kept) and `_initialize`, renamed as the
/// options say.
fn steps(case: &mut Case, facts: &Facts, init: &str, u: &mut Unstructured<'_>) -> Result<()> {
    let mut observations = Vec::new();
    let mut calls = Vec::new();
    let mut exports = Vec::new();
    for (name, kind, _) in &facts.exports {
        let dropped = name == WASI_INITIALIZE
            || (name == init && !case.options.keep_init_func)
            || case
                .options
                .renames
                .iter()
                .any(|(dst, src)| dst == name && src != name);
        if dropped {
            continue;
        }
        let out = match case.options.renames.iter().find(|(_, src)| src == name) {
            Some((dst, _)) => dst.clone(),
            None => name.clone(),
        };
        let (a, b) = (name.clone(), out.clone());
        exports.push((out, format!("{kind:?}")));
        match kind {
            wp::ExternalKind::Func => {
                let f = (facts.funcs_exported.iter())
                    .find(|f| f.name == *name)
                    .context("an exported function")?;
                let mut args = Vec::new();
                for p in &f.params {
                    match Const::new(*p, u, true)?.and_then(Const::val) {
                        Some(v) => args.push(v),
                        None => break,
                    }
                }
                if args.len() == f.params.len() {
                    calls.push(Step::Call(a, b, args));
                }
            }
            wp::ExternalKind::Global => observations.push(Step::Global(a, b)),
            wp::ExternalKind::Memory => observations.push(Step::Memory(a, b)),
            wp::ExternalKind::Table => observations.push(Step::Table(a, b)),
            _ => {}
        }
    }
    exports.sort();
    case.output_exports = exports;
    case.observations = observations.len();
    case.steps = observations.clone();
    case.steps.extend(calls);
    case.steps.extend(observations);
    Ok(())
}

/// A value read or returned, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
    /// A reference: null or not.
    Null(bool),
}

impl V {
    fn of(v: &wasmtime::Val) -> V {
        use wasmtime::Val;
        match v {
            Val::I32(v) => V::I32(*v),
            Val::I64(v) => V::I64(*v),
            Val::F32(v) => V::F32(*v),
            Val::F64(v) => V::F64(*v),
            Val::V128(v) => V::V128(v.as_u128()),
            other => V::Null((*other).ref_().is_none_or(|r| r.is_null())),
        }
    }

    /// NaN-aware: NaNs returned are equal whatever their payload.
    fn same_result(&self, other: &V) -> bool {
        match (self, other) {
            (V::F32(a), V::F32(b)) => common::same_f32(f32::from_bits(*a), f32::from_bits(*b)),
            (V::F64(a), V::F64(b)) => common::same_f64(f64::from_bits(*a), f64::from_bits(*b)),
            _ => self == other,
        }
    }
}

/// What one step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A call's results.
    Results(Vec<V>),
    /// A global's value: its bits, NaN payloads included (they are state).
    Global(V),
    Bytes(Vec<u8>),
    /// A table's elements: null or not.
    Table(Vec<bool>),
    Trap(String),
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Results(a), Outcome::Results(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_result(y))
        }
        (Outcome::Trap(a), Outcome::Trap(b)) => a == b || (exhausted(a) && exhausted(b)),
        _ => a == b,
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Bytes(b) => format!("{} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

fn first_difference(a: &Outcome, b: &Outcome) -> String {
    let (Outcome::Bytes(a), Outcome::Bytes(b)) = (a, b) else {
        return String::new();
    };
    format!("({})", common::first_difference(a, b))
}

/// Runs one step; a call on a full [`FUEL`] budget.
fn step(store: &mut Store<()>, instance: &Instance, s: &Step, output: bool) -> Outcome {
    let name = s.name(output);
    let missing = || Outcome::Trap(format!("harness: no export `{name}`"));
    match s {
        Step::Call(_, _, args) => {
            let Some(func) = instance.get_func(&mut *store, name) else {
                return missing();
            };
            store.set_fuel(FUEL).expect("fuel is enabled");
            let mut results = vec![wasmtime::Val::I32(0); func.ty(&*store).results().len()];
            match func.call(&mut *store, args, &mut results) {
                Ok(()) => Outcome::Results(results.iter().map(V::of).collect()),
                Err(e) => Outcome::Trap(trap_of(&e)),
            }
        }
        Step::Global(..) => match instance.get_global(&mut *store, name) {
            Some(g) => Outcome::Global(V::of(&g.get(&mut *store))),
            None => missing(),
        },
        Step::Memory(..) => match instance.get_memory(&mut *store, name) {
            Some(m) => Outcome::Bytes(m.data(&*store).to_vec()),
            None => missing(),
        },
        Step::Table(..) => match instance.get_table(&mut *store, name) {
            Some(t) => {
                let size = t.size(&*store);
                Outcome::Table(
                    (0..size)
                        .map(|i| t.get(&mut *store, i).is_none_or(|r| r.is_null()))
                        .collect(),
                )
            }
            None => missing(),
        },
    }
}

/// Runs `steps` until the first that exhausts fuel or stack (after which
/// the two sides' state may differ: see [`exhausted`]). Other traps leave a
/// core instance usable: the steps go on.
fn run_steps(
    store: &mut Store<()>,
    instance: &Instance,
    steps: &[Step],
    output: bool,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for s in steps {
        let o = step(store, instance, s, output);
        let stop = matches!(&o, Outcome::Trap(t) if exhausted(t));
        out.push(o);
        if stop {
            break;
        }
    }
    out
}

/// A pre-initializer: module bytes and options in, pre-initialized module
/// out.
pub type PreInit<'a> = &'a (dyn Fn(&[u8], &ModuleOptions) -> Result<Vec<u8>> + Sync);

/// component-init's core-module pipeline, the pre-initializer under test:
/// Cranelift, fuel, a timeout and a memory limit as backstops.
pub fn default_pre_init(module: &[u8], options: &ModuleOptions) -> Result<Vec<u8>> {
    WasmtimeRuntime::builder()
        .compiler(Compiler::Cranelift)
        .limits(Limits {
            fuel: Some(PIPELINE_FUEL),
            timeout: Some(Duration::from_secs(60)),
            max_memory: Some(1 << 28),
        })
        .build()?
        .initialize_module(module, options)
}

/// Runs `pre_init`, turning a panic into `Err`.
fn catch_panic(
    pre_init: PreInit<'_>,
    module: &[u8],
    options: &ModuleOptions,
) -> Result<Result<Vec<u8>>, String> {
    common::catch_panic(|| pre_init(module, options))
}

/// Runs one case from `u`: the whole differential check. `Ok` with what
/// happened and how many steps were compared; `Err` for a bug.
pub fn check(u: &mut Unstructured<'_>) -> Result<(Verdict, usize), Failure> {
    check_with(u, &default_pre_init)
}

/// [`check`] with another pre-initializer in place of component-init's.
pub fn check_with(
    u: &mut Unstructured<'_>,
    pre_init: PreInit<'_>,
) -> Result<(Verdict, usize), Failure> {
    // A module none of whose functions returns makes a case that never
    // reaches a snapshot: three in four are replaced, up to twice.
    let next = |u: &mut Unstructured<'_>| {
        let Some(generated) = Generated::new(u)? else {
            return Ok(Err("wasm-smith generated no module"));
        };
        generated.case(u, true).map(Ok)
    };
    let settled = |case: &Case| case.init_returns || case.imported_state.is_some();
    match common::settle(u, next, settled) {
        Ok(Ok(case)) => check_case(&case, pre_init),
        Ok(Err(why)) => Ok((Verdict::Skipped(why), 0)),
        Err(what) => Err(Failure {
            what,
            wat: String::new(),
        }),
    }
}

const INSTANTIATION_TRAPS: &str = "instantiation traps (a start function or a segment)";
const IMPORTS_STATE: &str = "the module imports a memory, table or global";

/// The reference run (see [`Original`]).
fn run_reference(module: &Module, case: &Case) -> Result<Original<Outcome>, String> {
    let (mut store, instance) = match instantiate(module, FUEL) {
        Ok(ok) => ok,
        Err(e) if is_out_of_fuel(&e) => return Ok(Original::StartOutOfFuel),
        // A trap, or an imported function called by the start function.
        Err(e) => {
            let overflow = trap_of(&e) == STACK_OVERFLOW;
            return Ok(Original::Traps(INSTANTIATION_TRAPS, overflow));
        }
    };
    // `_initialize` and init on what is left of the instantiation's budget.
    for name in &case.init_calls {
        let func = instance
            .get_typed_func::<(), ()>(&mut store, name)
            .map_err(|e| format!("harness: init `{name}`: {e:#}"))?;
        match func.call(&mut store, ()) {
            Ok(()) => {}
            Err(e) if is_out_of_fuel(&e) => return Ok(Original::InitOutOfFuel),
            Err(e) => return Ok(Original::Traps(INIT_TRAPS, trap_of(&e) == STACK_OVERFLOW)),
        }
    }
    let expected = run_steps(&mut store, &instance, &case.steps, false);
    let observations = &case.steps[..case.observations];
    let (mut fresh, instance) = instantiate(module, FUEL)
        .map_err(|e| format!("harness: a second instantiation failed: {e:#}"))?;
    let before = run_steps(&mut fresh, &instance, observations, false);
    for o in expected.iter().chain(&before) {
        if let Outcome::Trap(t) = o
            && t.starts_with("harness")
        {
            return Err(t.clone());
        }
    }
    Ok(Original::Ran { expected, before })
}

/// What a pre-initialization error reports as a documented limitation
/// ([`common::documented_limitation`]) counts as refused.
const DOCUMENTED: [&str; 5] = [
    "a mutable global of an unsupported type",
    "a start function changes a table or reference-typed global",
    "init changes a table",
    "init changes a reference-typed global",
    "init changes other unsnapshottable state",
];

/// The differential check for one case, `pre_init` the pre-initializer.
pub fn check_case(case: &Case, pre_init: PreInit<'_>) -> Result<(Verdict, usize), Failure> {
    let fail = |what: String| Failure {
        what: format!(
            "{what}\n(init: {}; calls {:?}; options {:?})",
            case.init.name(),
            case.init_calls,
            case.options
        ),
        wat: wat_of(&case.module),
    };
    if let Some(what) = &case.imported_state {
        return match catch_panic(pre_init, &case.module, &case.options) {
            Err(panic) => Err(fail(format!("pre-initialization panicked: {panic}"))),
            Ok(Ok(_)) => Err(fail(format!(
                "the module imports {what}, but pre-initialization succeeded"
            ))),
            Ok(Err(e)) if format!("{e:#}").contains("the module imports") => {
                Ok((Verdict::Refused(IMPORTS_STATE), 0))
            }
            Ok(Err(e)) => Err(fail(format!(
                "the module imports {what}, but pre-initialization failed otherwise: {e:#}"
            ))),
        };
    }
    let Ok(original) = Module::new(engine(), &case.module) else {
        return Ok((Verdict::Skipped("Wasmtime cannot compile the module"), 0));
    };
    let (why, overflow) = match run_reference(&original, case).map_err(fail)? {
        Original::StartOutOfFuel => {
            return Ok((Verdict::Skipped(common::START_OUT_OF_FUEL), 0));
        }
        Original::InitOutOfFuel => return Ok((Verdict::Skipped(common::INIT_OUT_OF_FUEL), 0)),
        Original::Traps(why, overflow) => (why, overflow),
        Original::Ran { expected, before } => {
            let (changed, module_changed) =
                common::init_changes(&case.steps, &before, &expected, same, |s| {
                    s.name(false) == ACC
                });
            return compare(case, pre_init, expected, changed, module_changed).map_err(fail);
        }
    };
    // The original traps before init returns: pre-initialization must fail.
    match catch_panic(pre_init, &case.module, &case.options) {
        // The instrumented code may use less stack than the original.
        Ok(Ok(_)) if overflow => Ok((Verdict::Skipped(STACK_DEPTH_DIFFERS), 0)),
        Ok(Ok(_)) => Err(fail(format!(
            "the original traps ({why}) but pre-initialization succeeded"
        ))),
        Ok(Err(_)) => Ok((Verdict::ErrorChecked(why), 0)),
        Err(panic) => Err(fail(format!("pre-initialization panicked: {panic}"))),
    }
}

/// The names and kinds a module exports, sorted.
fn exports_of(module: &[u8]) -> Result<Vec<(String, String)>> {
    let mut names = Vec::new();
    for payload in wp::Parser::new(0).parse_all(module) {
        if let wp::Payload::ExportSection(reader) = payload? {
            for export in reader {
                let export = export?;
                names.push((export.name.to_string(), format!("{:?}", export.kind)));
            }
        }
    }
    names.sort();
    Ok(names)
}

fn has_start(module: &[u8]) -> bool {
    (wp::Parser::new(0).parse_all(module))
        .any(|p| matches!(p, Ok(wp::Payload::StartSection { .. })))
}

/// Pre-initializes and compares the output's run with `expected`, the
/// original's.
fn compare(
    case: &Case,
    pre_init: PreInit<'_>,
    expected: Vec<Outcome>,
    init_changed_state: bool,
    module_state_changed: bool,
) -> Result<(Verdict, usize), String> {
    let output = match catch_panic(pre_init, &case.module, &case.options) {
        Err(panic) => return Err(format!("pre-initialization panicked: {panic}")),
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            if let Some(why) = common::documented_limitation(&msg, &DOCUMENTED) {
                return Ok((Verdict::Refused(why), 0));
            }
            if msg.contains("call stack exhausted") {
                return Ok((Verdict::Skipped(STACK_DEPTH_DIFFERS), 0));
            }
            return Err(format!(
                "pre-initialization failed, but the original's init returns: {msg}"
            ));
        }
        Ok(Ok(output)) => output,
    };
    let with_output = |what: String| format!("{what}\noutput:\n{}", wat_of(&output));
    if let Err(e) = wp::Validator::new_with_features(wp::WasmFeatures::all()).validate_all(&output)
    {
        return Err(with_output(format!("the output does not validate: {e:#}")));
    }
    let exports = exports_of(&output).map_err(|e| format!("{e:#}"))?;
    if exports != case.output_exports {
        return Err(with_output(format!(
            "the output exports {exports:?}, not {:?}",
            case.output_exports
        )));
    }
    if has_start(&output) {
        return Err(with_output("the output has a start function".into()));
    }
    let module = Module::new(engine(), &output)
        .map_err(|e| with_output(format!("Wasmtime cannot compile the output: {e:#}")))?;
    let (mut store, instance) = instantiate(&module, FUEL)
        .map_err(|e| with_output(format!("the output fails to instantiate: {}", trap_of(&e))))?;
    let actual = run_steps(&mut store, &instance, &case.steps, true);
    for (i, (s, (a, b))) in case
        .steps
        .iter()
        .zip(expected.iter().zip(&actual))
        .enumerate()
    {
        if !same(a, b) {
            let overflow = |o: &Outcome| matches!(o, Outcome::Trap(t) if t == STACK_OVERFLOW);
            if overflow(a) || overflow(b) {
                return Ok((Verdict::Skipped(STACK_DEPTH_DIFFERS), 0));
            }
            return Err(with_output(format!(
                "step {i} (`{}`) differs: original {}, pre-initialized {} {}",
                s.name(false),
                describe(a),
                describe(b),
                first_difference(a, b)
            )));
        }
    }
    if expected.len() != actual.len() {
        return Err(with_output(format!(
            "the original ran {} steps, the pre-initialized {}",
            expected.len(),
            actual.len()
        )));
    }
    Ok((
        Verdict::Compared {
            init_changed_state,
            module_state_changed,
            init: case.init,
            kept: case.options.keep_init_func,
            renamed: !case.options.renames.is_empty(),
        },
        expected.len(),
    ))
}

// Hostile inputs for the core-module pipeline.

/// A hand-written module with the shapes the core-module pipeline handles:
/// two memories (one 64-bit), every numeric global type and `v128`, an
/// active and a passive data segment (`memory.init` then `data.drop` in
/// init), an element segment, a start function. No loops or branches, so
/// that no bit flip of it is likely to run for long.
pub const HOSTILE_SEED: &str = r#"(module
  (memory $m 1 2)
  (memory $n i64 1 1)
  (global $g (mut i32) (i32.const 7))
  (global $h (mut i64) (i64.const 1))
  (global $f (mut f32) (f32.const 0.5))
  (global $d (mut f64) (f64.const 1.5))
  (global $v (mut v128) (v128.const i32x4 1 2 3 4))
  (global $k i32 (i32.const 3))
  (table 2 funcref)
  (elem (i32.const 0) $get)
  (data $p "passive bytes")
  (data (memory $m) (i32.const 16) "active")
  (data (memory $n) (i64.const 8) "wide")
  (func $start (global.set $h (i64.add (global.get $h) (i64.const 41))))
  (start $start)
  (func (export "wizer-initialize")
    (memory.init $p (i32.const 100) (i32.const 0) (i32.const 7))
    (data.drop $p)
    (global.set $g (i32.add (global.get $g) (global.get $k)))
    (i64.store $n (i64.const 32) (global.get $h))
    (global.set $f (f32.mul (global.get $f) (f32.const 3)))
    (global.set $d (f64.mul (global.get $d) (f64.const 3)))
    (global.set $v (i32x4.add (global.get $v) (global.get $v)))
    (drop (memory.grow $m (i32.const 1))))
  (func $get (export "get") (result i32) (i32.add (global.get $g) (i32.load (i32.const 100))))
  (func (export "call") (result i32) (call_indirect (result i32) (i32.const 0))))"#;

/// Options, mostly Wizer's defaults, sometimes arbitrary.
fn hostile_options(u: &mut Unstructured<'_>) -> arbitrary::Result<ModuleOptions> {
    let mut options = ModuleOptions {
        keep_init_func: u.ratio(1, 4)?,
        ..ModuleOptions::default()
    };
    options.init_func = match u.int_in_range(0..=7)? {
        0 => Some(u.arbitrary::<&str>()?.to_string()),
        1 => Some("get".into()),
        2 => Some(WASI_INITIALIZE.into()),
        _ => None,
    };
    if u.ratio(1, 4)? {
        let dst = u.arbitrary::<&str>()?.to_string();
        let src = if u.arbitrary()? {
            "get".to_string()
        } else {
            u.arbitrary::<&str>()?.to_string()
        };
        options.renames.push((dst, src));
    }
    Ok(options)
}

/// Checks what the core-module pipeline did with `bytes`: no panic; an
/// output validates, has no start function and no `wizer-initialize`
/// unless kept; an error does not say that the output was invalid. `Ok`
/// tells whether it was accepted.
pub fn check_hostile_output(
    bytes: &[u8],
    options: &ModuleOptions,
    pre_init: PreInit<'_>,
) -> Result<bool, String> {
    match catch_panic(pre_init, bytes, options) {
        Err(panic) => Err(format!("pre-initialization panicked: {panic}")),
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            if msg.contains("output module is invalid") {
                return Err(format!(
                    "pre-initialization produced an invalid module: {msg}"
                ));
            }
            Ok(false)
        }
        Ok(Ok(output)) => {
            wp::Validator::new_with_features(wp::WasmFeatures::all())
                .validate_all(&output)
                .map_err(|e| format!("the output does not validate: {e}"))?;
            if has_start(&output) {
                return Err("the output has a start function".into());
            }
            let exports = exports_of(&output).map_err(|e| format!("{e:#}"))?;
            let init = options.init_func.as_deref().unwrap_or(INIT);
            let renamed = options.renames.iter().any(|(dst, _)| dst == init);
            if !options.keep_init_func && !renamed && exports.iter().any(|(n, _)| n == init) {
                return Err(format!("the output still exports `{init}`"));
            }
            Ok(true)
        }
    }
}

/// One hostile case from `u`: arbitrary bytes after a core module's header,
/// a generated module with init (as the differential check makes them),
/// mutated or not, or the hand-written [`HOSTILE_SEED`], mutated; through
/// `pre_init` with mostly default options. `Ok` names what it exercised
/// and whether it was accepted; `Err` is a bug.
pub fn check_hostile(
    u: &mut Unstructured<'_>,
    pre_init: PreInit<'_>,
) -> Result<(&'static str, bool), String> {
    let (mut bytes, what, options) = match u.int_in_range(0..=3).unwrap_or(0) {
        0 => {
            let mut bytes = b"\0asm\x01\0\0\0".to_vec();
            bytes.extend_from_slice(u.arbitrary::<&[u8]>().unwrap_or_default());
            (bytes, "arbitrary bytes", None)
        }
        1 => (
            wat::parse_str(HOSTILE_SEED).expect("the seed module parses"),
            "mutated seed module",
            None,
        ),
        mode => {
            let case = match Generated::new(u) {
                Ok(Some(g)) => g.case(u, false).ok(),
                _ => None,
            };
            match case {
                Some(case) if mode == 2 => (case.module, "generated module", Some(case.options)),
                Some(case) => (case.module, "mutated generated module", Some(case.options)),
                None => return Ok(("no input", false)),
            }
        }
    };
    if what.starts_with("mutated") {
        // Bit flips too (not in `hostile.rs`).
        common::mutate(&mut bytes, u, true).ok();
    }
    // A generated module's own options three times in four.
    let options = match options {
        Some(options) if u.ratio(3, 4).unwrap_or(true) => options,
        _ => hostile_options(u).unwrap_or_default(),
    };
    check_hostile_output(&bytes, &options, pre_init)
        .map(|ok| (what, ok))
        .map_err(|bug| {
            format!(
                "{bug} ({what}; options {options:?})\ninput:\n{}",
                wat_of(&bytes)
            )
        })
}
