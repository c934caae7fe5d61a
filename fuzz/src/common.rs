//! What the two differential oracles share: `oracle.rs` (components) and
//! `module_oracle.rs` (core modules). Both generate a wasm-smith module
//! alike, pick init's chain of calls alike, fold its results and write them
//! into state alike, and judge the runs alike.
//!
//! Included once next to the oracles: by this crate's `lib.rs` (the
//! `module_differential` fuzz target, which includes `module_oracle.rs` by
//! path, takes it from there), and by the tests' `seeds.rs` (with
//! `#[path]`; `differential.rs` and `module_differential.rs` take it from
//! there). The oracles (and `hostile.rs`) name it `super::common`.

use anyhow::{Result, bail};
use arbitrary::Unstructured;
use std::collections::BTreeMap;
use std::fmt;
use wasm_encoder as enc;
use wasmparser as wp;
use wasmtime::Trap;

/// How many modules a check generates at most for one case.
pub const MODULES: usize = 3;

/// A call overflows the stack on one side only; see [`exhausted`].
pub const STACK_DEPTH_DIFFERS: &str = "a call overflows the stack on one side only (stack use \
                                       is implementation-defined)";
pub const INIT_TRAPS: &str = "init traps";
pub const INIT_OUT_OF_FUEL: &str = "init runs out of fuel";
pub const START_OUT_OF_FUEL: &str = "a start function runs out of fuel";

pub const STACK_OVERFLOW: &str = "trap: StackOverflow";
pub const OUT_OF_FUEL: &str = "trap: OutOfFuel";

/// The wasm-smith configuration: small memories (maxima required), mutable
/// globals, and no feature component-init rejects by design (shared
/// memories, GC, exceptions). Reference types are on in half of the cases.
/// No imports, but with `may_import` one case in eight may import anything.
pub fn smith_config(
    u: &mut Unstructured<'_>,
    may_import: bool,
) -> arbitrary::Result<wasm_smith::Config> {
    let reference_types = u.arbitrary()?;
    // Most cases keep wasm-smith from generating traps (it guards
    // divisions, loads, ...; stack overflows remain), so that more of them
    // get past init; the others trap freely.
    let disallow_traps = u.ratio(3, 4)?;
    let max_imports = if may_import && u.ratio(1, 8)? { 3 } else { 0 };
    Ok(wasm_smith::Config {
        max_imports,
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

/// The Wasmtime configuration of the harness engines: the proposals
/// component-init snapshots, and fuel. Wasmtime makes an error, Rust
/// backtrace included when `RUST_BACKTRACE` is set, for every `memory.grow`
/// past a maximum, even though the guest only sees -1; in deep recursion,
/// which generated code is full of, capturing it walks the whole stack, and
/// the cases take twice as long. So backtraces are disabled (a process-wide
/// switch, for this test binary or fuzz target; errors keep their
/// messages).
pub fn engine_config() -> wasmtime::Config {
    wasmtime::error::disable_backtrace();
    let mut config = wasmtime::Config::new();
    config.wasm_multi_memory(true);
    config.wasm_memory64(true);
    config.wasm_custom_page_sizes(true);
    config.consume_fuel(true);
    config
}

/// An integer, mostly small (the interesting values for generated code), or
/// any bits.
pub fn int(u: &mut Unstructured<'_>) -> arbitrary::Result<i64> {
    Ok(if u.ratio(2, 3)? {
        u.int_in_range(-4..=20)?
    } else {
        u.arbitrary()?
    })
}

/// A constant argument (`ref.null` for references).
#[derive(Debug, Clone, Copy)]
pub enum Const {
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    V128(i128),
    Null(wp::RefType),
}

impl Const {
    /// A constant of type `ty`; `None` for a type without one. With
    /// `float_bits`, a float is any bits one time in four.
    pub fn new(
        ty: wp::ValType,
        u: &mut Unstructured<'_>,
        float_bits: bool,
    ) -> arbitrary::Result<Option<Const>> {
        let v = int(u)?;
        Ok(Some(match ty {
            wp::ValType::I32 => Const::I32(v as i32),
            wp::ValType::I64 => Const::I64(v),
            wp::ValType::F32 if float_bits && u.ratio(1, 4)? => {
                Const::F32(f32::from_bits(u.arbitrary()?))
            }
            wp::ValType::F32 => Const::F32(v as f32),
            wp::ValType::F64 if float_bits && u.ratio(1, 4)? => {
                Const::F64(f64::from_bits(u.arbitrary()?))
            }
            wp::ValType::F64 => Const::F64(v as f64),
            wp::ValType::V128 => Const::V128(i128::from(v)),
            wp::ValType::Ref(r) if r.is_nullable() => Const::Null(r),
            wp::ValType::Ref(_) => return Ok(None),
        }))
    }

    pub fn instr(self) -> Result<enc::Instruction<'static>> {
        use enc::reencode::Reencode;
        Ok(match self {
            Const::I32(v) => enc::Instruction::I32Const(v),
            Const::I64(v) => enc::Instruction::I64Const(v),
            Const::F32(v) => enc::Instruction::F32Const(v.into()),
            Const::F64(v) => enc::Instruction::F64Const(v.into()),
            Const::V128(v) => enc::Instruction::V128Const(v),
            Const::Null(r) => enc::Instruction::RefNull(
                enc::reencode::RoundtripReencoder.heap_type(r.heap_type())?,
            ),
        })
    }

    /// The same value for a core call through Wasmtime's API, if it has
    /// one.
    pub fn val(self) -> Option<wasmtime::Val> {
        use wasmtime::Val as V;
        Some(match self {
            Const::I32(v) => V::I32(v),
            Const::I64(v) => V::I64(v),
            Const::F32(v) => V::F32(v.to_bits()),
            Const::F64(v) => V::F64(v.to_bits()),
            Const::V128(v) => V::V128((v as u128).into()),
            Const::Null(r) => match r.heap_type() {
                wp::HeapType::Abstract {
                    ty: wp::AbstractHeapType::Func,
                    ..
                } => V::FuncRef(None),
                wp::HeapType::Abstract {
                    ty: wp::AbstractHeapType::Extern,
                    ..
                } => V::ExternRef(None),
                _ => return None,
            },
        })
    }
}

/// How a chain of calls on a fresh core instance of the module ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    Returns,
    Traps,
    OutOfFuel,
    /// Not run (an argument Wasmtime's API cannot make, or the module does
    /// not instantiate).
    Unknown,
}

/// Calls `calls` (export names and arguments) in order on `instance`, up
/// to the first that does not return.
pub fn run_chain<'a>(
    store: &mut wasmtime::Store<()>,
    instance: &wasmtime::Instance,
    calls: impl IntoIterator<Item = (&'a str, &'a [Const])>,
) -> Ends {
    for (name, args) in calls {
        let Some(func) = instance.get_func(&mut *store, name) else {
            return Ends::Unknown;
        };
        let Some(params) = args.iter().map(|c| c.val()).collect::<Option<Vec<_>>>() else {
            return Ends::Unknown;
        };
        let mut results = vec![wasmtime::Val::I32(0); func.ty(&*store).results().len()];
        match func.call(&mut *store, &params, &mut results) {
            Ok(()) => {}
            Err(e) if is_out_of_fuel(&e) => return Ends::OutOfFuel,
            Err(_) => return Ends::Traps,
        }
    }
    Ends::Returns
}

/// Init's chain, from `candidates` tried with `run`: one to three calls
/// that return, sometimes followed by one that traps; a call that traps, or
/// any, when none returns. And whether a call returns (the first).
pub fn screened_chain(
    u: &mut Unstructured<'_>,
    candidates: &[usize],
    run: &dyn Fn(&[usize]) -> Ends,
) -> Result<(Vec<usize>, bool)> {
    if candidates.is_empty() {
        return Ok((Vec::new(), true));
    }
    let mut returning = Vec::new();
    let mut trapping = Vec::new();
    for &f in candidates {
        match run(&[f]) {
            Ends::Returns => returning.push(f),
            Ends::Traps => trapping.push(f),
            Ends::OutOfFuel | Ends::Unknown => {}
        }
    }
    let Ok(&first) = u.choose(&returning) else {
        let from = if trapping.is_empty() {
            candidates
        } else {
            &trapping
        };
        return Ok((vec![*u.choose(from)?], false));
    };
    let mut chain = vec![first];
    let len = u.int_in_range(1..=3)?;
    while chain.len() < len {
        // Any function may follow, one that returned alone or not: the
        // state is not the same any more.
        let mut added = false;
        for _ in 0..3 {
            let mut longer = chain.clone();
            longer.push(*u.choose(candidates)?);
            if run(&longer) == Ends::Returns {
                chain = longer;
                added = true;
                break;
            }
        }
        if !added {
            break;
        }
    }
    if !trapping.is_empty() && u.ratio(1, 8)? {
        chain.push(*u.choose(&trapping)?);
    }
    Ok((chain, true))
}

/// Memories with room for 8 bytes (by position in `memories`), and how many
/// bytes they may have.
pub fn roomy_memories<'a>(
    memories: impl IntoIterator<Item = &'a wp::MemoryType>,
) -> Vec<(usize, u64)> {
    (memories.into_iter().enumerate())
        .filter_map(|(k, m)| {
            let log2 = m.page_size_log2.unwrap_or(16);
            let max = m.maximum?.checked_shl(log2)?.min(1 << 20);
            (max >= 8).then_some((k, max))
        })
        .collect()
}

/// One of `roomy` ([`roomy_memories`]) and an offset to write 8 bytes at:
/// mostly near the start; else anywhere below the maximum, which may take
/// growing the memory.
pub fn memory_write(
    u: &mut Unstructured<'_>,
    roomy: &[(usize, u64)],
) -> arbitrary::Result<(usize, u64)> {
    let (m, max) = *u.choose(roomy)?;
    let offset = if u.ratio(1, 2)? {
        u.int_in_range(0..=(max - 8).min(56))?
    } else {
        u.int_in_range(0..=max - 8)?
    };
    Ok((m, offset))
}

/// Multiplier of init's fold (the 64-bit golden ratio).
const FOLD: i64 = 0x9e37_79b9_7f4a_7c15_u64 as i64;

/// `acc = (acc * FOLD ^ x) + 1`, `x` the `i64` on the stack.
pub fn mix(f: &mut enc::Function, acc: u32) {
    use enc::Instruction as I;
    f.instruction(&I::GlobalGet(acc))
        .instruction(&I::I64Const(FOLD))
        .instruction(&I::I64Mul)
        .instruction(&I::I64Xor)
        .instruction(&I::I64Const(1))
        .instruction(&I::I64Add)
        .instruction(&I::GlobalSet(acc));
}

/// Folds the results of a call, `results` on the stack, into global `acc`
/// (a `0` when there are none); locals `temps` and `temps + 1` are an `f32`
/// and an `f64` temporary. NaNs are folded as one canonical NaN: their
/// payloads may differ between the compilers that run init. A `v128` is
/// folded as its low lane with `v128_low_lane` (NaN or not, the bits are
/// state like any), else as only that there was one (lanes may hold NaNs
/// too).
pub fn fold_results(
    f: &mut enc::Function,
    results: &[wp::ValType],
    temps: u32,
    acc: u32,
    v128_low_lane: bool,
) {
    use enc::Instruction as I;
    for ty in results.iter().rev() {
        match ty {
            wp::ValType::I32 => {
                f.instruction(&I::I64ExtendI32U);
            }
            wp::ValType::I64 => {}
            wp::ValType::F32 => {
                f.instruction(&I::LocalSet(temps))
                    .instruction(&I::I64Const(0x7fc0_0000))
                    .instruction(&I::LocalGet(temps))
                    .instruction(&I::I32ReinterpretF32)
                    .instruction(&I::I64ExtendI32U)
                    .instruction(&I::LocalGet(temps))
                    .instruction(&I::LocalGet(temps))
                    .instruction(&I::F32Ne)
                    .instruction(&I::Select);
            }
            wp::ValType::F64 => {
                f.instruction(&I::LocalSet(temps + 1))
                    .instruction(&I::I64Const(0x7ff8_0000_0000_0000))
                    .instruction(&I::LocalGet(temps + 1))
                    .instruction(&I::I64ReinterpretF64)
                    .instruction(&I::LocalGet(temps + 1))
                    .instruction(&I::LocalGet(temps + 1))
                    .instruction(&I::F64Ne)
                    .instruction(&I::Select);
            }
            wp::ValType::V128 if v128_low_lane => {
                f.instruction(&I::I64x2ExtractLane(0));
            }
            wp::ValType::V128 => {
                f.instruction(&I::Drop).instruction(&I::I64Const(2));
            }
            wp::ValType::Ref(_) => {
                f.instruction(&I::RefIsNull).instruction(&I::I64ExtendI32U);
            }
        }
        mix(f, acc);
    }
    if results.is_empty() {
        f.instruction(&I::I64Const(0));
        mix(f, acc);
    }
}

/// Writes global `acc` (an `i64`) into global `global` of type `ty`.
pub fn write_global(f: &mut enc::Function, acc: u32, global: u32, ty: wp::ValType) -> Result<()> {
    use enc::Instruction as I;
    f.instruction(&I::GlobalGet(acc));
    match ty {
        wp::ValType::I32 => {
            f.instruction(&I::I32WrapI64);
        }
        wp::ValType::I64 => {}
        wp::ValType::F32 => {
            f.instruction(&I::I32WrapI64)
                .instruction(&I::F32ReinterpretI32);
        }
        wp::ValType::F64 => {
            f.instruction(&I::F64ReinterpretI64);
        }
        wp::ValType::V128 => {
            f.instruction(&I::I64x2Splat);
        }
        wp::ValType::Ref(_) => bail!("the harness cannot write a global of type {ty}"),
    }
    f.instruction(&I::GlobalSet(global));
    Ok(())
}

/// Writes global `acc` (an `i64`) at `offset` of memory `memory` of type
/// `ty`: grows the memory when `offset + 8` is past its end (which fails at
/// its maximum), then writes if it fits.
pub fn write_memory(f: &mut enc::Function, acc: u32, memory: u32, ty: wp::MemoryType, offset: u64) {
    use enc::Instruction as I;
    let log2 = i64::from(ty.page_size_log2.unwrap_or(16));
    let end = offset as i64 + 8;
    let pages = (end + (1 << log2) - 1) >> log2;
    let size = |f: &mut enc::Function| {
        f.instruction(&I::MemorySize(memory));
        if !ty.memory64 {
            f.instruction(&I::I64ExtendI32U);
        }
        f.instruction(&I::I64Const(log2)).instruction(&I::I64Shl);
    };
    size(f);
    f.instruction(&I::I64Const(end))
        .instruction(&I::I64LtU)
        .instruction(&I::If(enc::BlockType::Empty))
        .instruction(&I::I64Const(pages))
        .instruction(&I::MemorySize(memory));
    if !ty.memory64 {
        f.instruction(&I::I64ExtendI32U);
    }
    f.instruction(&I::I64Sub);
    if !ty.memory64 {
        f.instruction(&I::I32WrapI64);
    }
    f.instruction(&I::MemoryGrow(memory))
        .instruction(&I::Drop)
        .instruction(&I::End);
    size(f);
    f.instruction(&I::I64Const(end))
        .instruction(&I::I64GeU)
        .instruction(&I::If(enc::BlockType::Empty))
        .instruction(&if ty.memory64 {
            I::I64Const(offset as i64)
        } else {
            I::I32Const(offset as i32)
        })
        .instruction(&I::GlobalGet(acc))
        .instruction(&I::I64Store(enc::MemArg {
            offset: 0,
            align: 0,
            memory_index: memory,
        }))
        .instruction(&I::End);
}

/// The case [`MODULES`] attempts settle on. `next` generates one (`Err`:
/// why there is none); the first that is `settled` (its init returns, ...)
/// is taken, as is, three times in four, any other; after the last attempt,
/// the last case. `Ok(Err)`: a reason to skip; `Err`: a harness failure.
pub fn settle<C>(
    u: &mut Unstructured<'_>,
    mut next: impl FnMut(&mut Unstructured<'_>) -> Result<Result<C, &'static str>>,
    settled: impl Fn(&C) -> bool,
) -> Result<Result<C, &'static str>, String> {
    let mut attempts = || -> Result<Result<C, &'static str>> {
        let mut last = None;
        for attempt in 1..=MODULES {
            let case = match next(u)? {
                Ok(case) => case,
                Err(_) if last.is_some() => break,
                Err(why) => return Ok(Err(why)),
            };
            let keep = u.ratio(1, 4)?;
            if settled(&case) || attempt == MODULES || keep {
                return Ok(Ok(case));
            }
            last = Some(case);
        }
        Ok(Ok(last.expect("a case was generated")))
    };
    attempts().or_else(|e| {
        if e.downcast_ref::<arbitrary::Error>().is_some() {
            return Ok(Err("input too short"));
        }
        Err(format!("harness: generation failed: {e:#}"))
    })
}

/// How the original's run went (`O` an outcome of one step).
pub enum Original<O> {
    StartOutOfFuel,
    InitOutOfFuel,
    /// Instantiation or init trapped: why, and whether by overflowing the
    /// stack.
    Traps(&'static str, bool),
    /// Init returned: every step's outcome, and the observations of a fresh
    /// instance (before init).
    Ran {
        expected: Vec<O>,
        before: Vec<O>,
    },
}

/// Whether init changed anything: anything the observations read
/// (`before`, of a fresh instance, against the first of `expected`), and
/// anything but what `harness_only` steps read.
pub fn init_changes<S, O>(
    steps: &[S],
    before: &[O],
    expected: &[O],
    same: impl Fn(&O, &O) -> bool,
    harness_only: impl Fn(&S) -> bool,
) -> (bool, bool) {
    let differs = |(a, b): (&O, &O)| !same(a, b);
    let observed = before.iter().zip(expected);
    let changed = observed.clone().any(differs);
    let module_changed = (steps.iter().zip(observed))
        .filter(|(s, _)| !harness_only(s))
        .map(|(_, o)| o)
        .any(differs);
    (changed, module_changed)
}

/// Runs `f`, turning a panic into `Err` with its message.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(no message)".into())
    })
}

/// A documented limitation a pre-initialization error reports: tables and
/// reference-typed globals were refused whenever init changed them, and
/// still are when a start function does (the output drops start
/// functions); mutable globals of some types are rejected outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limitation {
    /// A mutable global of a type component-init cannot snapshot yet.
    UnsupportedGlobal,
    /// A start function (instantiation) changes a table, a
    /// reference-typed global or a GC object.
    AtInstantiation,
    /// Init changes a table (`tables cannot be snapshotted`).
    InitChangesTable,
    /// Init changes a reference-typed global.
    InitChangesRefGlobal,
    /// Init changes other unsnapshottable state (GC objects, ...).
    InitChangesOther,
}

/// The [`Limitation`] a pre-initialization error reports, if any.
pub fn limitation(msg: &str) -> Option<Limitation> {
    let during_init = msg.contains("so init must not change them");
    let at_instantiation = msg.contains("so instantiation must not change them");
    Some(if msg.contains("cannot snapshot yet") {
        Limitation::UnsupportedGlobal
    } else if at_instantiation {
        Limitation::AtInstantiation
    } else if during_init && msg.contains("tables cannot be snapshotted") {
        Limitation::InitChangesTable
    } else if during_init && msg.contains("reference-typed globals cannot be snapshotted") {
        Limitation::InitChangesRefGlobal
    } else if during_init {
        Limitation::InitChangesOther
    } else {
        return None;
    })
}

/// The documented limitation a pre-initialization error reports, if any,
/// named by `names`, in the order of [`Limitation`]'s variants: a mutable
/// global of an unsupported type, a start function changing a table or
/// reference-typed global, init changing a table, a reference-typed global,
/// other unsnapshottable state.
pub fn documented_limitation(msg: &str, names: &[&'static str; 5]) -> Option<&'static str> {
    limitation(msg).map(|l| names[l as usize])
}

/// Why a pre-initializer that carries tables and funcref globals may still
/// refuse what init left in them, if `msg` says so: a value no element
/// segment or initializer can express (a non-null `externref` or GC
/// object), a slot holding a function of an instance that cannot reach the
/// table, typed function references (the carried tables and globals are
/// of abstract reference types). Any other refusal of a table or
/// reference-typed global that init changed is a bug.
pub fn uncarried_reference(msg: &str) -> Option<&'static str> {
    Some(
        if msg.contains("holds a non-null reference that is not a function") {
            "a table slot holds a non-null reference that is not a function (documented)"
        } else if msg.contains("holds a reference no initializer can express") {
            "a reference-typed global holds a reference no initializer can express (documented)"
        } else if msg.contains("neither defines nor imports that table") {
            "a table slot holds a function of an instance that cannot reach the table (documented)"
        } else if msg.contains("holds typed function references")
            || msg.contains("holds typed references")
        {
            "a table or global holds typed references (documented)"
        } else {
            return None;
        },
    )
}

pub fn is_out_of_fuel(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel))
}

/// Whether a trap is resource exhaustion. Running out of fuel and
/// overflowing the stack are the same outcome here: which comes first in
/// deep recursion depends on stack frame sizes, which depend on how the
/// module is compiled, and the output is a different module (for example
/// `elem.drop` of a segment that was active compiles to nothing, of the
/// empty passive segment that replaces it in the output to a libcall, so the
/// frame grows).
pub fn exhausted(trap: &str) -> bool {
    trap == OUT_OF_FUEL || trap == STACK_OVERFLOW
}

/// NaN-aware equality of returned floats: NaNs are equal whatever their
/// payload.
pub fn same_f32(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// [`same_f32`] for `f64`.
pub fn same_f64(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(
            "first difference at byte {i}: {:#04x} vs {:#04x}",
            a[i], b[i]
        ),
        None => format!("lengths {} vs {}", a.len(), b.len()),
    }
}

pub fn wat_of(bytes: &[u8]) -> String {
    wasmprinter::print_bytes(bytes).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

/// Adds the counts of `theirs` to `mine`.
pub fn merge_counts(
    mine: &mut BTreeMap<&'static str, usize>,
    theirs: BTreeMap<&'static str, usize>,
) {
    for (k, v) in theirs {
        *mine.entry(k).or_default() += v;
    }
}

/// A line a count: `  {label} {key}: {count}`.
pub fn write_counts(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    counts: &BTreeMap<&'static str, usize>,
) -> fmt::Result {
    for (key, n) in counts {
        writeln!(f, "  {label} {key}: {n}")?;
    }
    Ok(())
}

/// Byte-level mutations: overwrite, insert, remove, truncate, duplicate;
/// with `bit_flips`, flip a bit too.
pub fn mutate(
    bytes: &mut Vec<u8>,
    u: &mut Unstructured<'_>,
    bit_flips: bool,
) -> arbitrary::Result<()> {
    for _ in 0..u.int_in_range(1..=6)? {
        if bytes.is_empty() {
            break;
        }
        let at = u.choose_index(bytes.len())?;
        match u.int_in_range(0..=if bit_flips { 5 } else { 4 })? {
            0 => bytes[at] = u.arbitrary()?,
            1 => bytes.insert(at, u.arbitrary()?),
            2 => {
                let end = (at + u.int_in_range(1..=16)?).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => bytes.truncate(at),
            4 if bit_flips => bytes[at] ^= 1 << u.int_in_range(0..=7)?,
            _ => {
                let end = (at + u.int_in_range(1..=32)?).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                let to = u.choose_index(bytes.len())?;
                bytes.splice(to..to, piece);
            }
        }
    }
    Ok(())
}

/// Deterministic input bytes for case `seed` (splitmix64), 256 bytes to
/// 16 KiB long: what the `cargo test` runs and the stable driver feed to
/// the checks; a seed means the same bytes to both oracles.
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
