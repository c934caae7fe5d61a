//! Choosing data segments for a memory snapshot: the non-zero runs of the
//! memory (which [`MemoryImage`] keeps), split at the stretches of zeros
//! inside them and merged across the gaps between them wherever that makes
//! the output smaller (a segment of its own costs a header, covering a gap
//! costs its zeros), then across the cheapest gaps when there are too many.

use std::borrow::Cow;
use std::ops::Range;

use crate::plan::image::MemoryImage;

/// The most data segments a module may have where engines load it:
/// wasmparser's (and so Wasmtime's) limit and V8's are both 100,000.
pub const ENGINE_LIMIT: usize = 100_000;

/// The most segments the memories of a module holding `existing` data
/// segments (kept, or emptied in place) may get in all: what is left of
/// [`ENGINE_LIMIT`].
pub fn budget(existing: usize) -> usize {
    ENGINE_LIMIT.saturating_sub(existing)
}

/// Where a memory's segments go, which decides how their headers are
/// encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The module's memory index: memory 0's segments have a one-byte flag,
    /// the others' a flag and the index.
    pub memory: u32,
    /// Whether the memory uses 64-bit addresses (offsets are `i64.const`).
    pub memory64: bool,
}

impl Target {
    /// Bytes of the header of an active segment of `len` bytes at `offset`,
    /// as `module::edit_lazily` writes it: the flags (and memory index), the
    /// offset's `i32.const`/`i64.const` and `end`, and the length.
    fn header(self, offset: u64, len: usize) -> u64 {
        let flags = if self.memory == 0 {
            1
        } else {
            1 + leb_len(u64::from(self.memory))
        };
        flags + 1 + offset_len(offset, self.memory64) + 1 + leb_len(len as u64)
    }
}

/// Zeros inside a run shorter than this are never worth a segment
/// boundary: the smallest header (flag, `i32.const`, a one-byte offset,
/// `end`, a one-byte length) is 5 bytes.
const MIN_SPLIT: usize = 5;

/// Bytes of `value` as an unsigned LEB128.
fn leb_len(value: u64) -> u64 {
    u64::from((64 - (value | 1).leading_zeros()).div_ceil(7))
}

/// Bytes of the offset of a segment at `offset`: the signed LEB128 of the
/// `i32.const` (the offset as an `i32`) or, for a 64-bit memory, of the
/// `i64.const`.
fn offset_len(offset: u64, memory64: bool) -> u64 {
    let v = if memory64 {
        offset as i64
    } else {
        i64::from(offset as u32 as i32)
    };
    // the bits that are not copies of the sign, and the sign bit
    let bits = u64::from(64 - (v ^ (v >> 63)).leading_zeros()) + 1;
    bits.div_ceil(7)
}

/// A piece of a run between stretches of zeros worth a segment boundary:
/// its offset in memory, its bytes, and the run (by index) it is part of.
struct Piece<'a> {
    offset: u64,
    bytes: &'a [u8],
    run: usize,
}

/// The data segments for `image` in memory `target`, as (offset, bytes),
/// sorted and disjoint, every non-zero byte in exactly one: of the ways to
/// cover the non-zero bytes with at most `max` segments, one with (close
/// to) the fewest output bytes.
///
/// The size rule: a segment of its own costs its header (flags, offset
/// expression, length; [`Target::header`]), covering a stretch of zeros
/// with its neighbours' segment costs those zeros. So each stretch of
/// zeros between non-zero bytes becomes a boundary when its zeros would
/// cost more than the header the next segment needs (the stretches inside
/// the image's runs too, which are shorter than 15 bytes), and, when that
/// leaves more than `max` segments, the boundaries whose merging costs the
/// fewest bytes (zeros minus the header saved) are merged, as few as it
/// takes to fit. Segments that lie within one run of the image borrow its
/// bytes.
pub fn segments(image: &MemoryImage, max: usize, target: Target) -> Vec<(u64, Cow<'_, [u8]>)> {
    let max = max.max(1);
    let runs: Vec<(u64, &[u8])> = image.runs().collect();
    let mut pieces: Vec<Piece<'_>> = Vec::with_capacity(runs.len());
    for (run, &(offset, bytes)) in runs.iter().enumerate() {
        split_at_zeros(bytes, |range| {
            pieces.push(Piece {
                offset: offset + range.start as u64,
                bytes: &bytes[range],
                run,
            })
        });
    }
    // merge[i]: piece i + 1 goes in the segment of piece i
    let mut merge: Vec<bool> = Vec::with_capacity(pieces.len().saturating_sub(1));
    let mut start = pieces.first().map_or(0, |p| p.offset);
    let mut end = start;
    for (i, piece) in pieces.iter().enumerate() {
        let piece_end = piece.offset + piece.bytes.len() as u64;
        if i > 0 {
            let gap = piece.offset - end;
            // what covering the gap adds to the current segment, against the
            // header a segment of its own needs
            let merged = gap + leb_len(piece_end - start) - leb_len(end - start);
            let own = target.header(piece.offset, piece.bytes.len());
            merge.push(merged < own);
            if merged >= own {
                start = piece.offset;
            }
        }
        end = piece_end;
    }
    let count = pieces.len() - merge.iter().filter(|&&m| m).count();
    if count > max {
        // merge the boundaries that cost the fewest bytes, as few as it takes
        let mut open: Vec<(u64, usize)> = (0..merge.len())
            .filter(|&i| !merge[i])
            .map(|i| {
                let (a, b) = (&pieces[i], &pieces[i + 1]);
                let gap = b.offset - (a.offset + a.bytes.len() as u64);
                (
                    gap.saturating_sub(target.header(b.offset, b.bytes.len())),
                    i,
                )
            })
            .collect();
        let k = count - max;
        open.select_nth_unstable(k - 1);
        for &(_, i) in &open[..k] {
            merge[i] = true;
        }
    }
    let mut out = Vec::with_capacity(count.min(max));
    let mut first = 0;
    for last in 0..pieces.len() {
        if merge.get(last) == Some(&true) {
            continue;
        }
        out.push(segment(&runs, &pieces[first..=last]));
        first = last + 1;
    }
    out
}

/// The segment covering `pieces` (one or more, in order): a slice of their
/// run when they are all of one, else a copy with the gaps filled in.
fn segment<'a>(runs: &[(u64, &'a [u8])], pieces: &[Piece<'a>]) -> (u64, Cow<'a, [u8]>) {
    let (first, last) = (&pieces[0], &pieces[pieces.len() - 1]);
    let start = first.offset;
    let end = last.offset + last.bytes.len() as u64;
    if first.run == last.run {
        let (offset, bytes) = runs[first.run];
        let at = (start - offset) as usize;
        return (
            start,
            Cow::Borrowed(&bytes[at..at + (end - start) as usize]),
        );
    }
    let mut bytes = vec![0; (end - start) as usize];
    for piece in pieces {
        let at = (piece.offset - start) as usize;
        bytes[at..at + piece.bytes.len()].copy_from_slice(piece.bytes);
    }
    (start, Cow::Owned(bytes))
}

/// Calls `piece` with the ranges of `bytes` (which start and end with a
/// non-zero byte) between its stretches of at least [`MIN_SPLIT`] zeros,
/// in order.
///
/// The scan goes 64 bytes at a time: each block gives a mask of its zero
/// bytes (a comparison the compiler does 16 or 32 bytes at a time), and a
/// stretch shows where a byte and the four before it (in this block or the
/// one before) are zero; only there does it look further.
fn split_at_zeros(bytes: &[u8], mut piece: impl FnMut(Range<usize>)) {
    const _: () = assert!(MIN_SPLIT == 5, "the scan finds stretches of 5");
    let n = bytes.len();
    let mut from = 0;
    // zero bytes of the block before `i` (their bits at the top), those
    // before `from` left out
    let (mut before, mut i) = (0u64, 0usize);
    'blocks: while i < n {
        let z = zero_mask(bytes, i);
        // bit k: byte i + k and the four before it are zero
        let mut hits = z
            & ((z << 1) | (before >> 63))
            & ((z << 2) | (before >> 62))
            & ((z << 3) | (before >> 61))
            & ((z << 4) | (before >> 60));
        while hits != 0 {
            // the fifth zero of a stretch: find its ends
            let fifth = i + hits.trailing_zeros() as usize;
            let mut s = fifth - (MIN_SPLIT - 1);
            while s > from && bytes[s - 1] == 0 {
                s -= 1;
            }
            let k = fifth - i + 1;
            let mut e = fifth
                + 1
                + if k < 64 {
                    (z >> k).trailing_ones() as usize
                } else {
                    0
                };
            if e >= i + 64 {
                // the zeros reach past this block
                loop {
                    let zeros = zero_mask(bytes, e).trailing_ones() as usize;
                    e += zeros;
                    if zeros < 64 || e >= n {
                        break;
                    }
                }
            }
            let e = e.min(n);
            if s > from {
                piece(from..s);
            }
            from = e;
            if e >= i + 64 {
                // go on at `e`, a non-zero byte: no stretch reaches back past it
                before = 0;
                i = e;
                continue 'blocks;
            }
            // the stretches left in this block start after `e`, which is
            // not zero
            hits &= u64::MAX << (e - i);
        }
        before = if from > i {
            z & (u64::MAX << (from - i))
        } else {
            z
        };
        i += 64;
    }
    if from < n {
        piece(from..n);
    }
}

/// Bit k set when `bytes[at + k]` is zero, for the 64 bytes from `at`;
/// bytes past the end count as non-zero.
#[inline]
fn zero_mask(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 64) {
        Some(block) => block_zero_mask(block.try_into().expect("64 bytes")),
        None => {
            let mut block = [0xffu8; 64];
            let rest = bytes.get(at..).unwrap_or_default();
            block[..rest.len()].copy_from_slice(rest);
            block_zero_mask(&block)
        }
    }
}

/// Bit k set when `block[k]` is zero, a word at a time.
#[inline]
fn block_zero_mask(block: &[u8; 64]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let words = block
        .chunks_exact(8)
        .map(|word| u64::from_le_bytes(word.try_into().expect("8 bytes")));
    // a block without a zero byte (a dense memory's) has no mask to build:
    // bit 7 set where a byte is zero (or, after one, where it is 0x01)
    if words
        .clone()
        .fold(0, |any, w| any | (w.wrapping_sub(ONES) & !w & HIGH))
        == 0
    {
        return 0;
    }
    let mut mask = 0u64;
    for (k, word) in block.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // bit 7 of each byte set when that byte is zero, gathered into
        // the low 8 bits
        let zeros = !(((w & LOW7) + LOW7) | w | LOW7) >> 7;
        mask |= (zeros.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
    }
    mask
}

#[cfg(test)]
mod tests {
    /// The budget the tests give one memory.
    const MAX_SEGMENTS: usize = 10_000;

    use super::*;

    /// Checks that `segments` are sorted, disjoint, and rebuild `memory`.
    fn rebuilds(memory: &[u8], segments: &[(u64, Cow<'_, [u8]>)]) {
        let mut rebuilt = vec![0u8; memory.len()];
        for (offset, bytes) in segments {
            let at = *offset as usize;
            rebuilt[at..at + bytes.len()].copy_from_slice(bytes);
        }
        assert!(rebuilt == memory, "segments do not rebuild the memory");
        for pair in segments.windows(2) {
            assert!(
                pair[0].0 + pair[0].1.len() as u64 <= pair[1].0,
                "segments not sorted/disjoint"
            );
        }
    }

    #[test]
    fn empty_and_all_zero_memories_have_no_segments() {
        assert!(segments(&MemoryImage::new(), MAX_SEGMENTS, Target::default()).is_empty());
        assert!(
            segments(
                &MemoryImage::from(vec![0u8; 100_000]),
                MAX_SEGMENTS,
                Target::default()
            )
            .is_empty()
        );
    }

    /// The length of the signed LEB128 of `v`, one group at a time.
    fn sleb_len(mut v: i64) -> u64 {
        let mut n = 1;
        loop {
            let sign = v & 0x40;
            v >>= 7;
            if (v == 0 && sign == 0) || (v == -1 && sign != 0) {
                return n;
            }
            n += 1;
        }
    }

    #[test]
    fn offset_lengths_are_those_of_the_encoding() {
        let mut values = vec![0u64, u64::MAX];
        for bit in 0..64 {
            for delta in [-1i64, 0, 1] {
                values.push((1u64 << bit).wrapping_add(delta as u64));
            }
        }
        for v in values {
            assert_eq!(offset_len(v, true), sleb_len(v as i64), "i64 {v}");
            let v32 = i64::from(v as u32 as i32);
            assert_eq!(offset_len(v, false), sleb_len(v32), "i32 {v}");
        }
    }

    #[test]
    fn offset_lengths() {
        for (offset, len) in [
            (0, 1),
            (63, 1),
            (64, 2),
            ((1 << 20) - 1, 3),
            (1 << 27, 5),
            ((1 << 27) - 1, 4),
            (u64::from(u32::MAX), 1),
        ] {
            assert_eq!(offset_len(offset, false), len, "{offset}");
        }
        // i64.const: no wrapping at 2^31
        for (offset, len) in [
            (63, 1),
            (u64::from(u32::MAX), 5),
            (1 << 32, 5),
            (1 << 34, 6),
        ] {
            assert_eq!(offset_len(offset, true), len, "{offset}");
        }
    }

    #[test]
    fn few_runs_are_borrowed_as_they_are() {
        let mut memory = vec![0u8; 1003];
        memory[3] = 1;
        memory[5] = 2;
        memory[500] = 3;
        memory[1002] = 5;
        let image = MemoryImage::from(&memory[..]);
        let segments = segments(&image, MAX_SEGMENTS, Target::default());
        assert_eq!(
            segments
                .iter()
                .map(|(o, b)| (*o, b.len(), matches!(b, Cow::Borrowed(_))))
                .collect::<Vec<_>>(),
            vec![(3, 3, true), (500, 1, true), (1002, 1, true)]
        );
        rebuilds(&memory, &segments);
    }

    #[test]
    fn gaps_shorter_than_a_header_are_merged() {
        // Runs split at aligned zero words. At offsets of 2^27 and more a
        // header takes 9 bytes (5 of them the offset, a signed LEB128): an
        // 8-byte gap is cheaper, a 16-byte one is not. Below 2^27 a header
        // takes 8 bytes: not merged.
        for (base, merged) in [(1u64 << 27, true), (1 << 21, false)] {
            let mut image = MemoryImage::new();
            image.push_zeros(base);
            let mut tail = vec![0u8; 64];
            tail[..8].fill(1);
            tail[16..24].fill(2);
            tail[40..48].fill(3);
            image.push(&tail);
            assert_eq!(image.runs().len(), 3);
            let got: Vec<(u64, usize)> = segments(&image, MAX_SEGMENTS, Target::default())
                .iter()
                .map(|(o, b)| (*o, b.len()))
                .collect();
            let expected = if merged {
                vec![(base, 24), (base + 40, 8)]
            } else {
                vec![(base, 8), (base + 16, 8), (base + 40, 8)]
            };
            assert_eq!(got, expected, "at {base}");
        }
    }

    #[test]
    fn the_smallest_gaps_merge_when_there_are_too_many() {
        // MAX_SEGMENTS + 2 runs: the two smallest gaps (of 40 and 48 bytes)
        // merge, no other
        let mut memory = vec![0u8; 64 * (MAX_SEGMENTS + 3)];
        let mut offsets: Vec<usize> = (0..MAX_SEGMENTS + 2).map(|i| 64 * i).collect();
        offsets[7] -= 24; // gap before run 7: 40 bytes
        offsets[100] -= 16; // gap before run 100: 48 bytes
        for &o in &offsets {
            memory[o] = 0xff;
        }
        let image = MemoryImage::from(&memory[..]);
        let segments = segments(&image, MAX_SEGMENTS, Target::default());
        assert_eq!(segments.len(), MAX_SEGMENTS);
        assert_eq!(segments[6].0, offsets[6] as u64);
        assert_eq!(segments[6].1.len(), offsets[7] - offsets[6] + 1);
        assert_eq!(segments[98].0, offsets[99] as u64);
        assert_eq!(segments[98].1.len(), offsets[100] - offsets[99] + 1);
        rebuilds(&memory, &segments);
    }

    #[test]
    fn segment_count_is_bounded() {
        let mut memory = vec![0u8; 64 * (MAX_SEGMENTS * 3)];
        for i in (0..memory.len()).step_by(64) {
            memory[i] = 0xff;
        }
        let image = MemoryImage::from(&memory[..]);
        assert_eq!(image.runs().len(), MAX_SEGMENTS * 3);
        let segments = segments(&image, MAX_SEGMENTS, Target::default());
        assert!(
            segments.len() <= MAX_SEGMENTS,
            "{} segments",
            segments.len()
        );
        rebuilds(&memory, &segments);
    }

    /// Bytes of `segments` in a data section, as the rewrite writes them
    /// (wasm-encoder's encoding; `module::edit_lazily` writes the same).
    fn encoded_len(target: Target, segments: &[(u64, Cow<'_, [u8]>)]) -> usize {
        let mut section = wasm_encoder::DataSection::new();
        for (offset, bytes) in segments {
            let offset = if target.memory64 {
                wasm_encoder::ConstExpr::i64_const(*offset as i64)
            } else {
                wasm_encoder::ConstExpr::i32_const(*offset as u32 as i32)
            };
            section.active(target.memory, &offset, bytes.iter().copied());
        }
        let mut out = Vec::new();
        wasm_encoder::Encode::encode(&section, &mut out);
        out.len()
    }

    /// The smallest data section for `tail` at `base` in at most `max`
    /// segments, trying every set of boundaries between its non-zero bytes.
    fn smallest(target: Target, base: u64, tail: &[u8], max: usize) -> usize {
        let nonzero: Vec<usize> = (0..tail.len()).filter(|&i| tail[i] != 0).collect();
        // the stretches of zeros between non-zero bytes: where a boundary can go
        let cuts: Vec<usize> = (1..nonzero.len())
            .filter(|&k| nonzero[k] > nonzero[k - 1] + 1)
            .collect();
        assert!(cuts.len() <= 14, "too many stretches to try them all");
        let mut best = usize::MAX;
        for set in 0u32..1 << cuts.len() {
            if set.count_ones() as usize + 1 > max {
                continue;
            }
            let mut segments = Vec::new();
            let mut first = nonzero[0];
            for (c, &k) in cuts.iter().enumerate() {
                if set & (1 << c) != 0 {
                    let end = nonzero[k - 1] + 1;
                    segments.push((base + first as u64, Cow::Borrowed(&tail[first..end])));
                    first = nonzero[k];
                }
            }
            let end = nonzero[nonzero.len() - 1] + 1;
            segments.push((base + first as u64, Cow::Borrowed(&tail[first..end])));
            best = best.min(encoded_len(target, &segments));
        }
        best
    }

    #[test]
    fn a_stretch_of_zeros_is_a_boundary_when_it_costs_more_than_a_header() {
        // One run of the image (no aligned zero word): 4 non-zero bytes, a
        // stretch of `zeros` zeros, 5 non-zero bytes, at offset 1000, where a
        // header for memory 0 takes 6 bytes (flag, i32.const, a 2-byte
        // offset, end, length), for memory 1 7 (the index too).
        for (zeros, memory, split) in [
            (5, 0, false),
            (6, 0, true),
            (7, 0, true),
            (6, 1, false),
            (7, 1, true),
        ] {
            let mut tail = vec![1u8; 4 + zeros + 5];
            tail[4..4 + zeros].fill(0);
            let mut image = MemoryImage::new();
            image.push_zeros(1000);
            image.push(&tail);
            assert_eq!(image.runs().len(), 1);
            let target = Target {
                memory,
                memory64: false,
            };
            let got = segments(&image, MAX_SEGMENTS, target);
            let shape: Vec<(u64, usize, bool)> = got
                .iter()
                .map(|(o, b)| (*o, b.len(), matches!(b, Cow::Borrowed(_))))
                .collect();
            let expected = if split {
                vec![(1000, 4, true), (1004 + zeros as u64, 5, true)]
            } else {
                vec![(1000, tail.len(), true)]
            };
            assert_eq!(shape, expected, "{zeros} zeros, memory {memory}");
            assert_eq!(
                encoded_len(target, &got),
                smallest(target, 1000, &tail, MAX_SEGMENTS),
                "{zeros} zeros, memory {memory}"
            );
        }
    }

    #[test]
    fn the_output_is_the_smallest_that_fits() {
        // Pseudo-random short memories: non-zero bytes with stretches of
        // 1 to 17 zeros between them, at offsets where the header's size
        // changes, in 32- and 64-bit memories 0 and 3, with budgets from
        // plenty down to one segment. Every set of boundaries is tried: ours
        // must be as small as the smallest.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut random_below = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..300 {
            let mut tail = Vec::new();
            for stretch in 0..1 + random_below(10) {
                if stretch > 0 {
                    tail.extend(std::iter::repeat_n(0, 1 + random_below(17) as usize));
                }
                tail.extend((0..1 + random_below(6)).map(|_| 1 + random_below(255) as u8));
            }
            let base = [0, 50, 8_150, (1 << 20) - 40, 1 << 27, (1 << 31) - 30][round % 6];
            let target = Target {
                memory: [0, 3][round / 6 % 2],
                memory64: round / 12 % 2 == 1,
            };
            let max = [MAX_SEGMENTS, 4, 2, 1][round / 24 % 4];
            let mut image = MemoryImage::new();
            image.push_zeros(base);
            image.push(&tail);
            let got = segments(&image, max, target);
            assert!(got.len() <= max);
            let mut memory = vec![0u8; tail.len()];
            for (offset, bytes) in &got {
                let at = (offset - base) as usize;
                memory[at..at + bytes.len()].copy_from_slice(bytes);
            }
            assert_eq!(
                memory, tail,
                "round {round}: segments do not rebuild the memory"
            );
            assert_eq!(
                encoded_len(target, &got),
                smallest(target, base, &tail, max),
                "round {round}: {target:?} at {base}, at most {max} segments: {:?}",
                got.iter().map(|(o, b)| (*o, b.len())).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn splitting_finds_every_long_stretch() {
        // Stretches of 5 or more zeros at every alignment and length inside
        // a run, next to shorter ones: the pieces are exactly the stretches'
        // complements.
        // (up to 300 bytes: stretches after whole blocks of 64 too)
        for len in 1..40 {
            for at in 1..250 {
                let mut bytes = vec![9u8; 300];
                bytes[at..at + len].fill(0);
                bytes[at + len + 3] = 0; // a single zero: no boundary
                bytes[at + len + 5..at + len + 9].fill(0); // 4 zeros: no boundary
                let mut pieces = Vec::new();
                split_at_zeros(&bytes, |r| pieces.push(r));
                let whole: Range<usize> = 0..300;
                let expected = if len >= MIN_SPLIT {
                    vec![0..at, at + len..300]
                } else {
                    vec![whole]
                };
                assert_eq!(pieces, expected, "{len} zeros at {at}");
            }
        }
    }

    /// The split as a plain loop over the bytes: the stretches of at least
    /// `MIN_SPLIT` zeros, and what lies between them.
    fn split_by_bytes(bytes: &[u8]) -> Vec<Range<usize>> {
        let mut pieces = Vec::new();
        let (mut from, mut i) = (0, 0);
        while i < bytes.len() {
            if bytes[i] != 0 {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && bytes[i] == 0 {
                i += 1;
            }
            if i - start >= MIN_SPLIT {
                if start > from {
                    pieces.push(from..start);
                }
                from = i;
            }
        }
        if from < bytes.len() {
            pieces.push(from..bytes.len());
        }
        pieces
    }

    #[test]
    fn splitting_agrees_with_a_byte_by_byte_split() {
        // Pseudo-random runs: zeros in stretches of 1 to 200, at every
        // alignment, between non-zero bytes, lengths around the 64-byte
        // blocks.
        let mut x: u32 = 0x2545_f491;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..3000 {
            let len = 1 + (next() % 700) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| 1 + (next() % 255) as u8).collect();
            let stretches = next() % 12;
            for _ in 0..stretches {
                let at = (next() as usize) % len;
                let run = 1 + match next() % 3 {
                    0 => next() % 6,
                    1 => next() % 70,
                    _ => next() % 200,
                } as usize;
                let end = (at + run).min(len);
                bytes[at..end].fill(0);
            }
            // runs start and end with a non-zero byte
            bytes[0] = 7;
            bytes[len - 1] = 7;
            let mut pieces = Vec::new();
            split_at_zeros(&bytes, |r| pieces.push(r));
            assert_eq!(pieces, split_by_bytes(&bytes), "round {round}: {bytes:?}");
        }
    }
}
