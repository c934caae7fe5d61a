//! The plan: which accessor reads which piece of state, and the snapshot
//! that reading them produces. Both are plain data (serde), so the phases may
//! run in different processes.

pub mod image;
pub mod init_func;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::edit::probe::Probe;
use crate::plan::image::MemoryImage;
use crate::plan::init_func::InitFunc;

/// Version of the plan format; bumped on incompatible changes.
pub const PLAN_FORMAT: u32 = 1;

/// What instrumentation added and how to read it back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_FORMAT`] when the plan was made.
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
            State::Memory { .. } => None,
        }
    }
}

impl Plan {
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

/// The first bytes of a snapshot file in the format this crate writes
/// (version 2, sparse memories).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CISNAP\0\x02";

/// The first bytes of a version 1 snapshot file (memories written in
/// full), which [`Snapshot::from_bytes`] still reads.
pub const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"CISNAP\0\x01";

impl Snapshot {
    /// Encodes the snapshot in the snapshot file format, which a runtime
    /// other than Wasmtime writes after calling the plan's accessors; see
    /// [`Snapshot::write_to`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing to a Vec does not fail");
        out
    }

    /// Writes the snapshot file format (version 2) to `out`, value by
    /// value, without building it in memory first:
    ///
    /// ```text
    /// magic   8 bytes   "CISNAP\0\x02" (version 1: "CISNAP\0\x01")
    /// count   u32 LE    number of values, one per accessor, in plan order
    /// value   tag u8, then
    ///           0 memory, dense: length u64 LE, then the bytes (the whole
    ///             memory, zeros included)
    ///           6 memory, sparse (version 2): length u64 LE, run count
    ///             u64 LE, then per run offset u64 LE, byte count u64 LE and
    ///             the bytes; runs sorted and disjoint, the rest zeros
    ///           1 i32: 4 bytes LE     2 i64: 8 bytes LE
    ///           3 f32: 4 bytes LE (bits)   4 f64: 8 bytes LE (bits)
    ///           5 v128: 16 bytes LE
    /// ```
    ///
    /// This crate writes memories sparse (a 1 GiB memory holding 64 KiB of
    /// data takes about 64 KiB); readers take both. Probe accessors
    /// (`get-probe-N`, `s32`) are written as `i32` values.
    pub fn write_to(&self, out: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        out.write_all(SNAPSHOT_MAGIC)?;
        out.write_all(&(self.values.len() as u32).to_le_bytes())?;
        for value in &self.values {
            match value {
                Value::Memory(image) => {
                    out.write_all(&[6])?;
                    out.write_all(&image.len().to_le_bytes())?;
                    out.write_all(&(image.runs().len() as u64).to_le_bytes())?;
                    for (offset, bytes) in image.runs() {
                        out.write_all(&offset.to_le_bytes())?;
                        out.write_all(&(bytes.len() as u64).to_le_bytes())?;
                        out.write_all(bytes)?;
                    }
                }
                Value::Global(GlobalValue::I32(v)) => {
                    out.write_all(&[1])?;
                    out.write_all(&v.to_le_bytes())?;
                }
                Value::Global(GlobalValue::I64(v)) => {
                    out.write_all(&[2])?;
                    out.write_all(&v.to_le_bytes())?;
                }
                Value::Global(GlobalValue::F32(v)) => {
                    out.write_all(&[3])?;
                    out.write_all(&v.to_le_bytes())?;
                }
                Value::Global(GlobalValue::F64(v)) => {
                    out.write_all(&[4])?;
                    out.write_all(&v.to_le_bytes())?;
                }
                Value::Global(GlobalValue::V128(v)) => {
                    out.write_all(&[5])?;
                    out.write_all(&v.to_le_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// Decodes the snapshot file format (see [`Snapshot::to_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot> {
        let (mut rest, sparse) = match bytes.strip_prefix(SNAPSHOT_MAGIC) {
            Some(rest) => (rest, true),
            None => (
                bytes
                    .strip_prefix(SNAPSHOT_MAGIC_V1)
                    .ok_or_else(|| anyhow::anyhow!("not a snapshot file (bad magic)"))?,
                false,
            ),
        };
        let count = u32::from_le_bytes(take(&mut rest)?);
        let mut values = Vec::new();
        for i in 0..count {
            let [tag] = take::<1>(&mut rest)?;
            let value = match tag {
                0 => {
                    let len = u64::from_le_bytes(take(&mut rest)?);
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|len| *len <= rest.len())
                        .ok_or_else(|| anyhow::anyhow!("snapshot value {i} is truncated"))?;
                    let (memory, tail) = rest.split_at(len);
                    rest = tail;
                    Value::Memory(MemoryImage::from(memory))
                }
                1 => Value::Global(GlobalValue::I32(i32::from_le_bytes(take(&mut rest)?))),
                2 => Value::Global(GlobalValue::I64(i64::from_le_bytes(take(&mut rest)?))),
                3 => Value::Global(GlobalValue::F32(u32::from_le_bytes(take(&mut rest)?))),
                4 => Value::Global(GlobalValue::F64(u64::from_le_bytes(take(&mut rest)?))),
                5 => Value::Global(GlobalValue::V128(u128::from_le_bytes(take(&mut rest)?))),
                6 if sparse => Value::Memory(sparse_memory(i, &mut rest)?),
                other => bail!("snapshot value {i} has unknown tag {other}"),
            };
            values.push(value);
        }
        if !rest.is_empty() {
            bail!(
                "snapshot file has {} bytes after its last value",
                rest.len()
            );
        }
        Ok(Snapshot { values })
    }
}

/// Reads a sparse memory (tag 6) of value `i`.
fn sparse_memory(i: u32, rest: &mut &[u8]) -> Result<MemoryImage> {
    let len = u64::from_le_bytes(take(rest)?);
    let runs = u64::from_le_bytes(take(rest)?);
    let mut image = MemoryImage::new();
    for _ in 0..runs {
        let offset = u64::from_le_bytes(take(rest)?);
        let count = u64::from_le_bytes(take(rest)?);
        let count = usize::try_from(count)
            .ok()
            .filter(|count| *count <= rest.len())
            .ok_or_else(|| anyhow::anyhow!("snapshot value {i} is truncated"))?;
        let end = offset.checked_add(count as u64);
        if offset < image.len() || end.is_none_or(|end| end > len) {
            bail!("snapshot value {i} has runs out of order or past its length");
        }
        image.push_zeros(offset - image.len());
        let (bytes, tail) = rest.split_at(count);
        image.push(bytes);
        *rest = tail;
    }
    image.push_zeros(len - image.len());
    Ok(image)
}

fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N]> {
    if rest.len() < N {
        bail!("snapshot file is truncated");
    }
    let (head, tail) = rest.split_at(N);
    *rest = tail;
    let mut out = [0; N];
    out.copy_from_slice(head);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_files_round_trip_and_reject_damage() {
        let snapshot = Snapshot {
            values: vec![
                Value::Memory(vec![1, 2, 3, 0, 0].into()),
                Value::Global(GlobalValue::I32(-7)),
                Value::Global(GlobalValue::I64(1 << 40)),
                Value::Global(GlobalValue::F32(0x7fa0_0001)),
                Value::Global(GlobalValue::F64(f64::to_bits(6.25))),
                Value::Global(GlobalValue::V128(u128::MAX - 5)),
            ],
        };
        let bytes = snapshot.to_bytes();
        assert_eq!(Snapshot::from_bytes(&bytes).unwrap(), snapshot);
        for cut in 0..bytes.len() {
            assert!(Snapshot::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Snapshot::from_bytes(&extra).is_err());
        let mut bad_tag = bytes;
        bad_tag[12] = 9;
        assert!(Snapshot::from_bytes(&bad_tag).is_err());
    }

    #[test]
    fn memories_are_written_sparse_and_version_1_files_still_read() {
        let mut image = MemoryImage::new();
        image.push_zeros(1 << 30);
        let mut sparse = MemoryImage::new();
        sparse.push_zeros(5 << 20);
        sparse.push(&[7, 0, 9]);
        sparse.push_zeros((1 << 30) - (5 << 20) - 3);
        let snapshot = Snapshot {
            values: vec![Value::Memory(image), Value::Memory(sparse)],
        };
        let bytes = snapshot.to_bytes();
        assert!(
            bytes.len() < 100,
            "{} bytes for 2 GiB of memory",
            bytes.len()
        );
        assert_eq!(Snapshot::from_bytes(&bytes).unwrap(), snapshot);

        let mut v1 = SNAPSHOT_MAGIC_V1.to_vec();
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.push(0);
        v1.extend_from_slice(&4u64.to_le_bytes());
        v1.extend_from_slice(&[0, 3, 0, 0]);
        let read = Snapshot::from_bytes(&v1).unwrap();
        assert_eq!(read.values, [Value::Memory(vec![0u8, 3, 0, 0].into())]);
        // a sparse tag is not version 1
        let mut bad = v1.clone();
        bad[12] = 6;
        assert!(Snapshot::from_bytes(&bad).is_err());
        // runs out of order or past the length
        let mut overlong = SNAPSHOT_MAGIC.to_vec();
        overlong.extend_from_slice(&1u32.to_le_bytes());
        overlong.push(6);
        overlong.extend_from_slice(&2u64.to_le_bytes());
        overlong.extend_from_slice(&1u64.to_le_bytes());
        overlong.extend_from_slice(&1u64.to_le_bytes());
        overlong.extend_from_slice(&2u64.to_le_bytes());
        overlong.extend_from_slice(&[1, 2]);
        assert!(Snapshot::from_bytes(&overlong).is_err());
    }

    #[test]
    fn sparse_memories_round_trip_through_the_file_format() {
        // 3 pages, a few scattered runs, the last byte set.
        let mut memory = vec![0u8; 3 << 16];
        memory[17] = 1;
        memory[70_000..70_100].fill(0xab);
        memory[(3 << 16) - 1] = 9;
        let mut image = MemoryImage::new();
        image.push(&memory[..70_050]);
        image.push_zeros(0);
        image.push(&memory[70_050..]);
        assert_eq!(image.stored_len(), 1 + 100 + 1);
        let snapshot = Snapshot {
            values: vec![
                Value::Memory(image),
                Value::Global(GlobalValue::I32(5)),
                Value::Memory(MemoryImage::new()),
            ],
        };
        let runs = match &snapshot.values[0] {
            Value::Memory(image) => image.runs().len(),
            _ => unreachable!("value 0 is the memory"),
        };
        let bytes = snapshot.to_bytes();
        // The file holds the non-zero runs only: tag, length, run count,
        // then each run's offset, length and bytes.
        assert_eq!(bytes.len(), 8 + 4 + 17 + 16 * runs + 102 + 5 + 17);
        assert_eq!(&bytes[12..21], &[6, 0, 0, 3, 0, 0, 0, 0, 0]);
        let read = Snapshot::from_bytes(&bytes).unwrap();
        assert_eq!(read, snapshot);
        let Value::Memory(read) = &read.values[0] else {
            panic!("not a memory: {read:?}");
        };
        assert_eq!(read.stored_len(), 102);
        assert_eq!(read.to_vec(), memory);
    }
}
