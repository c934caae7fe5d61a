//! The snapshot file format: how a [`Snapshot`] is written to and read
//! from bytes, for a runtime other than Wasmtime that reads the plan's
//! accessors itself.

use anyhow::{Result, bail};

use crate::plan::image::MemoryImage;
use crate::plan::{GlobalValue, Snapshot, Value};

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
