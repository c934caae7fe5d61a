//! The plan: which accessor reads which piece of state, and the snapshot
//! that reading them produces. Both are plain data (serde), so the phases may
//! run in different processes.

pub mod file;
pub mod image;
pub mod init_func;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::plan::image::MemoryImage;
use crate::plan::init_func::InitFunc;

/// Version of the plan format; bumped on incompatible changes.
pub const PLAN_FORMAT: u32 = 1;

/// What instrumentation added and how to read it back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `PLAN_FORMAT` (this crate's plan format version) when the plan was
    /// made.
    pub format: u32,
    /// Identifies the original component the plan was made for.
    pub input: InputId,
    /// The init function that runs before the accessors are read.
    pub init: InitFunc,
    /// Whether the rewrite removes the init function's export.
    pub remove_init_export: bool,
    /// Component-level export name of the accessor instance.
    pub interface: String,
    /// The accessors, in the order of [`Snapshot::values`].
    pub accessors: Vec<Accessor>,
}

/// Length and FNV-1a hash of the original component's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputId {
    /// Length in bytes.
    pub len: u64,
    /// 64-bit FNV-1a of the bytes, in hex.
    pub fnv1a: String,
}

impl InputId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> InputId {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        InputId {
            len: bytes.len() as u64,
            fnv1a: format!("{hash:016x}"),
        }
    }
}

/// One accessor function of the synthesized interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accessor {
    /// Function name inside the accessor interface (`get-memory-N`, ...).
    pub func: String,
    /// The component instances, from the top level down, that hold the core
    /// instance: empty for a core instance of the top level, `[3]` for one
    /// inside component instance 3, `[3, 0]` deeper, and so on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<u32>,
    /// The core instance whose state it reads, in the component that `path`
    /// leads to.
    pub instance: u32,
    /// The core module that instance instantiates, in that component.
    pub module: u32,
    /// Which state of the module it reads.
    pub state: State,
}

/// A piece of state defined by a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum State {
    /// Memory `index` of the module (its memory index space, imports included).
    Memory {
        /// The module's memory index.
        index: u32,
        /// Whether the memory uses 64-bit addresses.
        memory64: bool,
        /// log2 of the page size (16 for 64 KiB pages).
        page_size_log2: u32,
    },
    /// A probe global that instrumentation added to the module (read as
    /// `s32`; see [`crate::Probe`]).
    Probe {
        /// The probe global's index in the instrumented module.
        index: u32,
        /// What it records.
        probe: Probe,
    },
    /// Mutable global `index` of the module.
    Global {
        /// The module's global index.
        index: u32,
        /// The global's type.
        ty: ScalarType,
    },
    /// Table `index`, defined by the module, read as
    /// `func(offset: u64, len: u32) -> list<u8>` over its slots, 8 bytes
    /// (a little-endian [`RefId`]) each.
    Table {
        /// The module's table index.
        index: u32,
    },
    /// Mutable reference-typed global `index`, defined by the module, read
    /// as a one-slot [`State::Table`].
    RefGlobal {
        /// The module's global index.
        index: u32,
    },
}

/// What a slot of a table (or a reference-typed global) holds, as a
/// [`State::Table`] accessor reads it: 8 bytes, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefId {
    /// Null.
    Null,
    /// Function `func` of core instance `instance` (of the same component),
    /// by its index in that instance's module.
    Func {
        /// The core instance.
        instance: u32,
        /// The function's index in the instance's module.
        func: u32,
    },
    /// A function none of the component's modules made (it has no identity
    /// the reader could ask for).
    Unknown,
    /// A non-null reference that is not a function (an externref or a GC
    /// object).
    NotAFunction,
}

impl RefId {
    /// The encoding of [`RefId::Unknown`].
    pub const UNKNOWN: u64 = u64::MAX;
    /// The encoding of [`RefId::NotAFunction`].
    pub const NOT_A_FUNCTION: u64 = u64::MAX - 1;

    /// Decodes the 8 bytes a reader wrote.
    pub fn decode(bits: u64) -> RefId {
        match bits {
            0 => RefId::Null,
            RefId::UNKNOWN => RefId::Unknown,
            RefId::NOT_A_FUNCTION => RefId::NotAFunction,
            _ => RefId::Func {
                instance: ((bits >> 32) as u32).wrapping_sub(1),
                func: bits as u32,
            },
        }
    }

    /// The encoding of `self`, as a table reader writes it: the inverse of
    /// [`RefId::decode`].
    pub fn encode(self) -> u64 {
        match self {
            RefId::Null => 0,
            RefId::Func { instance, func } => ((u64::from(instance) + 1) << 32) | u64::from(func),
            RefId::Unknown => RefId::UNKNOWN,
            RefId::NotAFunction => RefId::NOT_A_FUNCTION,
        }
    }

    /// The slots of a table image (8 bytes each) that are not null, in
    /// order: each slot's index and its bytes as a little-endian `u64`. Read
    /// from the image's runs, so that a large table of nulls costs nothing.
    pub fn non_null(image: &MemoryImage) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for (offset, bytes) in image.runs() {
            let end = offset + bytes.len() as u64;
            // runs never share an aligned word
            for slot in offset / 8..end.div_ceil(8) {
                let mut word = [0u8; 8];
                for (k, byte) in word.iter_mut().enumerate() {
                    let at = slot * 8 + k as u64;
                    if (offset..end).contains(&at) {
                        *byte = bytes[(at - offset) as usize];
                    }
                }
                let bits = u64::from_le_bytes(word);
                if bits != 0 {
                    out.push((slot, bits));
                }
            }
        }
        out
    }

    /// The slots of a table image (8 bytes each).
    pub fn slots(image: &MemoryImage) -> Vec<RefId> {
        let bytes = image.to_vec();
        bytes
            .chunks_exact(8)
            .map(|c| RefId::decode(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect()
    }
}

/// What a probe global records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Probe {
    /// 0 when no instruction of `edit::probe::UNSNAPSHOTTABLE` ran, else the index in
    /// that list of the last one that ran, times 2^24, plus 1 + the index of
    /// the function it is in.
    #[serde(rename = "unsnapshottable")]
    Unsnapshottable,
    /// Nonzero when `data.drop` ran on the data segment.
    DataDropped {
        /// The data segment's index.
        segment: u32,
    },
    /// Nonzero when `elem.drop` ran on the element segment.
    ElemDropped {
        /// The element segment's index.
        segment: u32,
    },
    /// Nonzero when a table mutation or a write of a reference-typed global
    /// ran (encoded as [`Probe::Unsnapshottable`] is): the tables and
    /// reference-typed globals of the component read after init are baked.
    TablesChanged,
}

/// Value types of globals that accessors read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScalarType {
    /// `i32`, read as WIT `s32`.
    I32,
    /// `i64`, read as WIT `s64`.
    I64,
    /// `f32`, read as WIT `f32`.
    F32,
    /// `f64`, read as WIT `f64`.
    F64,
    /// `v128`, read as WIT `tuple<u64, u64>`: the low 64 bits (lanes in
    /// little-endian order, as `v128.store` lays them out), then the high.
    V128,
}

impl ScalarType {
    /// The scalar type of a global of value type `ty`; `None` for reference
    /// types, which accessors cannot read.
    pub fn of(ty: wasmparser::ValType) -> Option<ScalarType> {
        Some(match ty {
            wasmparser::ValType::I32 => ScalarType::I32,
            wasmparser::ValType::I64 => ScalarType::I64,
            wasmparser::ValType::F32 => ScalarType::F32,
            wasmparser::ValType::F64 => ScalarType::F64,
            wasmparser::ValType::V128 => ScalarType::V128,
            wasmparser::ValType::Ref(_) => return None,
        })
    }

    /// The WIT type of the accessor's result.
    pub fn wit(self) -> &'static str {
        match self {
            ScalarType::I32 => "s32",
            ScalarType::I64 => "s64",
            ScalarType::F32 => "f32",
            ScalarType::F64 => "f64",
            ScalarType::V128 => "tuple<u64, u64>",
        }
    }
}

/// The state read back after init, one value for each accessor of the plan,
/// in the same order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The values.
    pub values: Vec<Value>,
}

/// The value of one piece of state.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A memory's whole contents, kept sparse; its length is the memory's
    /// size.
    Memory(MemoryImage),
    /// A global's value.
    Global(GlobalValue),
}

/// A global's value; floats are kept as bits, so NaN payloads survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GlobalValue {
    /// An `i32`.
    I32(i32),
    /// An `i64`.
    I64(i64),
    /// The bits of an `f32`.
    F32(u32),
    /// The bits of an `f64`.
    F64(u64),
    /// The bits of a `v128`, as a little-endian integer.
    V128(u128),
}

impl GlobalValue {
    /// The value's type.
    pub fn ty(self) -> ScalarType {
        match self {
            GlobalValue::I32(_) => ScalarType::I32,
            GlobalValue::I64(_) => ScalarType::I64,
            GlobalValue::F32(_) => ScalarType::F32,
            GlobalValue::F64(_) => ScalarType::F64,
            GlobalValue::V128(_) => ScalarType::V128,
        }
    }
}

impl State {
    /// For state read as a global: the global's index and type.
    pub fn global(&self) -> Option<(u32, ScalarType)> {
        match *self {
            State::Global { index, ty } => Some((index, ty)),
            State::Probe { index, .. } => Some((index, ScalarType::I32)),
            State::Memory { .. } | State::Table { .. } | State::RefGlobal { .. } => None,
        }
    }
}

impl Plan {
    /// Whether the plan reads tables or reference-typed globals (the
    /// instrumented component then has a table reader).
    pub fn reads_tables(&self) -> bool {
        self.accessors
            .iter()
            .any(|a| matches!(a.state, State::Table { .. } | State::RefGlobal { .. }))
    }

    /// Checks that `snapshot` has one value of the right kind per accessor.
    pub fn check_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        if snapshot.values.len() != self.accessors.len() {
            bail!(
                "the snapshot has {} values but the plan lists {} accessors",
                snapshot.values.len(),
                self.accessors.len()
            );
        }
        for (accessor, value) in self.accessors.iter().zip(&snapshot.values) {
            match (accessor.state, value) {
                (
                    State::Memory {
                        page_size_log2,
                        memory64,
                        ..
                    },
                    Value::Memory(image),
                ) => {
                    if page_size_log2 > 16 {
                        bail!(
                            "the plan gives `{}` a page size of 2^{page_size_log2} bytes; \
                             WebAssembly pages are 1 or 65536 bytes",
                            accessor.func
                        );
                    }
                    let page = 1u64 << page_size_log2;
                    let len = image.len();
                    if !len.is_multiple_of(page) {
                        bail!(
                            "snapshot of `{}` is {len} bytes, not a whole number of {page}-byte pages",
                            accessor.func
                        );
                    }
                    if !memory64 && len > 1 << 32 {
                        bail!("snapshot of `{}` exceeds 4 GiB", accessor.func);
                    }
                }
                (State::Table { .. } | State::RefGlobal { .. }, Value::Memory(image)) => {
                    if !image.len().is_multiple_of(8) {
                        bail!(
                            "snapshot of `{}` is {} bytes, not a whole number of 8-byte slots",
                            accessor.func,
                            image.len()
                        );
                    }
                }
                (State::Global { ty, .. }, Value::Global(v)) if v.ty() == ty => {}
                (State::Probe { .. }, Value::Global(GlobalValue::I32(_))) => {}
                _ => bail!(
                    "snapshot value for `{}` does not match the accessor's type",
                    accessor.func
                ),
            }
        }
        Ok(())
    }
}

impl Plan {
    /// The plan as JSON, the format of `--plan` files.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a plan written by [`Plan::to_json`].
    pub fn from_json(text: &str) -> Result<Plan> {
        let plan: Plan =
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("invalid plan: {e}"))?;
        if plan.format != PLAN_FORMAT {
            bail!(
                "plan format {} is not supported (this component-init reads format {PLAN_FORMAT})",
                plan.format
            );
        }
        Ok(plan)
    }
}
