//! Probes: instructions whose effects a snapshot of memories and globals
//! cannot carry (table mutation, GC object mutation, writes to
//! reference-typed globals) or must carry specially (`data.drop`,
//! `elem.drop`) may exist in a module's code. Instead of rejecting such
//! modules, the instrumented copy records when one of them runs: before each,
//! it sets a probe global, which is read back with the rest of the state.
//!
//! Only function bodies that contain such an instruction are re-encoded; all
//! others are copied byte for byte.

use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{Function, Instruction};
use wasmparser::{Operator, Parser, Payload};

pub use crate::plan::Probe;

/// Instructions whose effect a snapshot cannot carry, by code, with what
/// they change.
pub const UNSNAPSHOTTABLE: [(&str, &str); 12] = [
    ("table.set", "tables"),
    ("table.grow", "tables"),
    ("table.fill", "tables"),
    ("table.copy", "tables"),
    ("table.init", "tables"),
    ("struct.set", "GC objects"),
    ("array.set", "GC objects"),
    ("array.fill", "GC objects"),
    ("array.copy", "GC objects"),
    ("array.init_data", "GC objects"),
    ("array.init_elem", "GC objects"),
    ("global.set", "reference-typed globals"),
];

/// An instruction whose effect a snapshot cannot carry, as a fired
/// [`Probe::Unsnapshottable`] recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The instruction, as in the text format (`table.set`).
    pub op: &'static str,
    /// What it changes (`tables`).
    pub what: &'static str,
    /// The index of the function it ran in.
    pub func: u32,
}

impl Fired {
    /// Decodes a [`Probe::Unsnapshottable`] value; `None` when it did not
    /// fire.
    pub fn decode(value: i32) -> Option<Fired> {
        let value = value as u32;
        if value == 0 {
            return None;
        }
        let (op, what) = UNSNAPSHOTTABLE
            .get((value >> 24) as usize)
            .copied()
            .unwrap_or(("an instruction", "state"));
        Some(Fired {
            op,
            what,
            func: (value & 0x00ff_ffff).saturating_sub(1),
        })
    }

    /// The error for an instruction that ran during init in core instance
    /// `instance` of core module `module`; `func_name` is the function's
    /// name when known, `within` follows the instance in parentheses and
    /// `after` follows them (the rewrite and the staged retarget say where
    /// differently).
    pub fn during_init(
        self,
        module: u32,
        instance: u32,
        func_name: Option<&str>,
        within: &str,
        after: &str,
    ) -> anyhow::Error {
        let Fired { op, what, func } = self;
        let name = func_name.map(|n| format!(" (`{n}`)")).unwrap_or_default();
        anyhow::anyhow!(
            "`{op}` ran during init, in function {func}{name} of core module {module} (core \
             instance {instance}{within}){after}; {what} cannot be snapshotted, so init must \
             not change them"
        )
    }

    /// The error for an instruction that ran during init in a core module
    /// given as the input; `func_name` is the function's name when known.
    pub fn during_module_init(self, func_name: Option<&str>) -> anyhow::Error {
        let Fired { op, what, func } = self;
        let name = func_name.map(|n| format!(" (`{n}`)")).unwrap_or_default();
        anyhow::anyhow!(
            "`{op}` ran during init, in function {func}{name} of the module; {what} cannot be \
             snapshotted, so init must not change them"
        )
    }

    /// The error for an instruction that ran while a core module given as
    /// the input was instantiated (in its start function).
    pub fn during_module_instantiation(self) -> anyhow::Error {
        let Fired { op, what, func } = self;
        anyhow::anyhow!(
            "`{op}` ran while the module was instantiated, in its function {func}, before \
             init; {what} cannot be snapshotted and the output drops the start function, so \
             instantiation must not change them"
        )
    }

    /// The error for an instruction that ran while core instance `instance`
    /// of core module `module` was instantiated, before init.
    pub fn during_instantiation(self, module: u32, instance: u32) -> anyhow::Error {
        let Fired { op, what, func } = self;
        anyhow::anyhow!(
            "`{op}` ran while core instance {instance} (core module {module}) was instantiated, \
             in its function {func}, before init; {what} cannot be snapshotted and the output \
             drops start functions, so instantiation must not change them"
        )
    }
}

/// The probes of one module and the code that sets them.
pub struct Probed {
    /// Probes, one mutable i32 global each, at global indices
    /// `first_global..first_global + probes.len()`.
    pub probes: Vec<Probe>,
    /// Index of the first probe global (after all the module's globals).
    pub first_global: u32,
    /// With [`probe_carrying_tables`]: the probe global that table
    /// mutations and writes of reference-typed globals set (encoded as
    /// [`Probe::Unsnapshottable`] is), after those of `probes`.
    pub tables_changed: Option<u32>,
    /// The new code section's contents.
    pub code: Vec<u8>,
}

impl Probed {
    /// How many probe globals the module gets.
    pub fn global_count(&self) -> usize {
        self.probes.len() + usize::from(self.tables_changed.is_some())
    }
}

/// The [`UNSNAPSHOTTABLE`] code of `op`, given the module's mutable
/// reference-typed globals (defined or imported).
fn unsnapshottable(op: &Operator<'_>, ref_globals: &[u32]) -> Option<u32> {
    Some(match op {
        Operator::TableSet { .. } => 0,
        Operator::TableGrow { .. } => 1,
        Operator::TableFill { .. } => 2,
        Operator::TableCopy { .. } => 3,
        Operator::TableInit { .. } => 4,
        Operator::StructSet { .. } | Operator::StructAtomicSet { .. } => 5,
        Operator::ArraySet { .. } | Operator::ArrayAtomicSet { .. } => 6,
        Operator::ArrayFill { .. } => 7,
        Operator::ArrayCopy { .. } => 8,
        Operator::ArrayInitData { .. } => 9,
        Operator::ArrayInitElem { .. } => 10,
        Operator::GlobalSet { global_index } if ref_globals.contains(global_index) => 11,
        _ => return None,
    })
}

/// Whether the [`UNSNAPSHOTTABLE`] code is one a front end that carries
/// tables can snapshot: table mutations and writes of reference-typed
/// globals (GC object mutations are not).
fn carried(code: u32) -> bool {
    matches!(code, 0..=4 | 11)
}

/// Finds the probed instructions in a module; `None` when it has none.
/// `globals` is the size of the module's global index space,
/// `imported_funcs` the number of imported functions and `ref_globals` the
/// module's mutable reference-typed globals (defined or imported).
///
/// Table mutations and writes of those globals set
/// a probe global of their own ([`Probed::tables_changed`], encoded as
/// [`Probe::Unsnapshottable`] is), and only GC mutations are unsnapshottable.
pub fn probe_carrying_tables(
    bytes: &[u8],
    globals: u32,
    imported_funcs: u32,
    ref_globals: &[u32],
) -> Result<Option<Probed>> {
    // Pass 1: which bodies contain probed instructions, and which segments
    // are dropped.
    let mut bodies = Vec::new();
    let mut unsnapshottables = false;
    let mut tables_changed = false;
    let mut data = BTreeSet::new();
    let mut elems = BTreeSet::new();
    let mut any = false;
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::CodeSectionEntry(body) = payload? {
            let mut probed = false;
            let mut reader = body.get_operators_reader()?;
            while !reader.eof() {
                match reader.read()? {
                    Operator::DataDrop { data_index } => {
                        data.insert(data_index);
                    }
                    Operator::ElemDrop { elem_index } => {
                        elems.insert(elem_index);
                    }
                    ref op => match classify(op, ref_globals) {
                        Some((Kind::TablesChanged, _)) => tables_changed = true,
                        Some((Kind::Unsnapshottable, _)) => unsnapshottables = true,
                        None => continue,
                    },
                }
                probed = true;
            }
            any |= probed;
            bodies.push((body, probed));
        }
    }
    if !any {
        return Ok(None);
    }
    let mut probes = Vec::new();
    if unsnapshottables {
        probes.push(Probe::Unsnapshottable);
    }
    probes.extend(data.iter().map(|&segment| Probe::DataDropped { segment }));
    probes.extend(elems.iter().map(|&segment| Probe::ElemDropped { segment }));
    let globals = ProbeGlobals {
        first: globals,
        // the tables' probe global comes after the others
        tables_changed: tables_changed.then_some(globals + probes.len() as u32),
        probes,
        ref_globals,
    };

    // Pass 2: the new code section.
    let mut code = wasm_encoder::CodeSection::new();
    for (i, (body, probed)) in bodies.iter().enumerate() {
        match probed {
            false => code.raw(&bytes[body.range()]),
            true => code.function(&globals.probed_body(body, imported_funcs + i as u32)?),
        };
    }
    let mut sized = Vec::new();
    wasm_encoder::Encode::encode(&code, &mut sized);
    Ok(Some(Probed {
        tables_changed: globals.tables_changed,
        probes: globals.probes,
        first_global: globals.first,
        code: crate::edit::codegen::strip_size(sized)?,
    }))
}

/// Which probe global an unsnapshottable instruction sets.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Unsnapshottable,
    TablesChanged,
}

/// The probe global `op` sets, and its [`UNSNAPSHOTTABLE`] code; `None`
/// for an instruction that is not probed this way.
fn classify(op: &Operator<'_>, ref_globals: &[u32]) -> Option<(Kind, u32)> {
    let code = unsnapshottable(op, ref_globals)?;
    match carried(code) {
        true => Some((Kind::TablesChanged, code)),
        false => Some((Kind::Unsnapshottable, code)),
    }
}

/// The probe globals of a module.
struct ProbeGlobals<'a> {
    first: u32,
    probes: Vec<Probe>,
    tables_changed: Option<u32>,
    ref_globals: &'a [u32],
}

impl ProbeGlobals<'_> {
    /// The global of `probe`.
    fn of(&self, probe: Probe) -> Result<u32> {
        let position = self
            .probes
            .iter()
            .position(|p| *p == probe)
            .with_context(|| format!("internal error: no probe global for {probe:?}"))?;
        Ok(self.first + position as u32)
    }

    /// The global `op` sets, in function `func`, and the value; `None` for
    /// an instruction that is not probed.
    fn set_by(&self, op: &Operator<'_>, func: u32) -> Result<Option<(u32, i32)>> {
        Ok(Some(match *op {
            Operator::DataDrop { data_index } => (
                self.of(Probe::DataDropped {
                    segment: data_index,
                })?,
                1,
            ),
            Operator::ElemDrop { elem_index } => (
                self.of(Probe::ElemDropped {
                    segment: elem_index,
                })?,
                1,
            ),
            ref op => {
                let Some((kind, code)) = classify(op, self.ref_globals) else {
                    return Ok(None);
                };
                let global = match (kind, self.tables_changed) {
                    (Kind::TablesChanged, Some(global)) => global,
                    (Kind::TablesChanged, None) => {
                        bail!("internal error: a table mutation was probed without its global")
                    }
                    (Kind::Unsnapshottable, _) => self.of(Probe::Unsnapshottable)?,
                };
                (global, ((code << 24) | ((func + 1) & 0x00ff_ffff)) as i32)
            }
        }))
    }

    /// `body`, function `func`, with each probed instruction preceded by
    /// the write of its probe global.
    fn probed_body(&self, body: &wasmparser::FunctionBody<'_>, func: u32) -> Result<Function> {
        let mut locals = Vec::new();
        for local in body.get_locals_reader()? {
            let (count, ty) = local?;
            locals.push((count, RoundtripReencoder.val_type(ty)?));
        }
        let mut f = Function::new(locals);
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            if let Some((global, value)) = self.set_by(&op, func)? {
                f.instruction(&Instruction::I32Const(value));
                f.instruction(&Instruction::GlobalSet(global));
            }
            f.instruction(
                &RoundtripReencoder
                    .instruction(op)
                    .context("failed to re-encode an instruction")?,
            );
        }
        Ok(f)
    }
}

/// The name the module's `name` section gives function `index`, if any.
pub fn function_name(bytes: &[u8], index: u32) -> Option<String> {
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Name(reader) = section.as_known() else {
            continue;
        };
        for name in reader {
            let Ok(wasmparser::Name::Function(names)) = name else {
                continue;
            };
            for naming in names.into_iter().flatten() {
                if naming.index == index {
                    return Some(naming.name.to_string());
                }
            }
        }
    }
    None
}
