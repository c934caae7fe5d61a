//! Choosing data segments for a memory snapshot: the non-zero runs of the
//! memory (which [`MemoryImage`] keeps), merged across the gaps where a
//! segment of its own would cost more than the zeros, and across the
//! smallest gaps when there are too many.

use std::borrow::Cow;
use std::ops::Range;

use crate::image::MemoryImage;

/// The most data segments a module may have where engines load it:
/// wasmparser's (and so Wasmtime's) limit and V8's are both 100,000.
pub const ENGINE_LIMIT: usize = 100_000;

/// The most segments the memories of a module holding `existing` data
/// segments (kept, or emptied in place) may get in all: what is left of
/// [`ENGINE_LIMIT`].
pub fn budget(existing: usize) -> usize {
    ENGINE_LIMIT.saturating_sub(existing)
}

/// Bytes of an active data segment's header for memory 0 besides its
/// offset: the flags, `i32.const`, `end` and (at least) the length.
const HEADER: u64 = 4;

/// Bytes of the offset of a segment at `offset`: the signed LEB128 of the
/// `i32.const` (the offset as an `i32`) or, past 4 GiB, the `i64.const`.
fn offset_len(offset: u64) -> u64 {
    let mut v = match u32::try_from(offset) {
        Ok(offset) => i64::from(offset as i32),
        Err(_) => offset as i64,
    };
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

/// The data segments for `image`, as (offset, bytes): its runs, borrowed,
/// with two kinds of gaps filled with zeros and their runs merged: gaps
/// shorter than the header a segment of its own would need (so merging
/// makes the output smaller), and, when there are more than `max` runs left,
/// the smallest gaps, as few as it takes to fit: of the ways to fit in
/// `max` segments, the one with the fewest bytes of zeros. Every non-zero
/// byte is in exactly one segment; segments are sorted and disjoint.
pub fn segments(image: &MemoryImage, max: usize) -> Vec<(u64, Cow<'_, [u8]>)> {
    let max = max.max(1);
    let runs: Vec<(u64, &[u8])> = image.runs().collect();
    // gaps[i]: zeros between run i and run i + 1
    let gaps: Vec<u64> = runs
        .windows(2)
        .map(|w| w[1].0 - (w[0].0 + w[0].1.len() as u64))
        .collect();
    let mut merge: Vec<bool> = runs
        .windows(2)
        .zip(&gaps)
        .map(|(w, &gap)| gap < HEADER + offset_len(w[1].0))
        .collect();
    let mut count = runs.len() - merge.iter().filter(|&&m| m).count();
    if count > max {
        // merge the smallest of the remaining gaps, as few as it takes
        let mut open: Vec<usize> = (0..gaps.len()).filter(|&i| !merge[i]).collect();
        let k = count - max;
        open.select_nth_unstable_by_key(k - 1, |&i| (gaps[i], i));
        for &i in &open[..k] {
            merge[i] = true;
        }
        count = max;
    }
    let mut groups: Vec<(Range<u64>, Range<usize>)> = Vec::with_capacity(count);
    for (i, (offset, bytes)) in runs.iter().enumerate() {
        let end = offset + bytes.len() as u64;
        match groups.last_mut() {
            Some((range, members)) if merge[i - 1] => {
                range.end = end;
                members.end = i + 1;
            }
            _ => groups.push((*offset..end, i..i + 1)),
        }
    }
    groups
        .into_iter()
        .map(|(range, members)| {
            if members.len() == 1 {
                return (range.start, Cow::Borrowed(runs[members.start].1));
            }
            let mut bytes = vec![0; (range.end - range.start) as usize];
            for &(offset, run) in &runs[members] {
                let at = (offset - range.start) as usize;
                bytes[at..at + run.len()].copy_from_slice(run);
            }
            (range.start, Cow::Owned(bytes))
        })
        .collect()
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
        assert!(segments(&MemoryImage::new(), MAX_SEGMENTS).is_empty());
        assert!(segments(&MemoryImage::from(vec![0u8; 100_000]), MAX_SEGMENTS).is_empty());
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
            (1 << 32, 5),
        ] {
            assert_eq!(offset_len(offset), len, "{offset}");
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
        let segments = segments(&image, MAX_SEGMENTS);
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
            let got: Vec<(u64, usize)> = segments(&image, MAX_SEGMENTS)
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
        let segments = segments(&image, MAX_SEGMENTS);
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
        let segments = segments(&image, MAX_SEGMENTS);
        assert!(
            segments.len() <= MAX_SEGMENTS,
            "{} segments",
            segments.len()
        );
        rebuilds(&memory, &segments);
    }
}
