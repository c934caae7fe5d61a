//! Choosing data segments for a memory snapshot: the non-zero runs of the
//! memory (which [`MemoryImage`] keeps), with the closest ones merged when
//! there are too many.

use std::borrow::Cow;
use std::ops::Range;

use crate::image::MemoryImage;

/// The gap, in bytes, below which runs merge first when there are too many;
/// it doubles until they fit. Runs are already split only at aligned zero
/// words, so gaps shorter than this are rare.
const FIRST_MERGE_GAP: u64 = 16;

/// The most segments one memory gets; gaps are merged until it fits.
pub const MAX_SEGMENTS: usize = 10_000;

/// The data segments for `image`, as (offset, bytes): its runs, borrowed,
/// unless there are more than [`MAX_SEGMENTS`]; then runs separated by
/// short gaps are merged (the gaps filled with zeros) until they fit. Every
/// non-zero byte is in exactly one segment; segments are sorted and
/// disjoint.
pub fn segments(image: &MemoryImage) -> Vec<(u64, Cow<'_, [u8]>)> {
    let runs: Vec<(u64, &[u8])> = image.runs().collect();
    if runs.len() <= MAX_SEGMENTS {
        return runs
            .into_iter()
            .map(|(offset, bytes)| (offset, Cow::Borrowed(bytes)))
            .collect();
    }
    // Merge into groups of consecutive runs: (range in the memory, runs).
    let mut groups: Vec<(Range<u64>, Range<usize>)> = runs
        .iter()
        .enumerate()
        .map(|(i, (offset, bytes))| (*offset..offset + bytes.len() as u64, i..i + 1))
        .collect();
    let mut gap = FIRST_MERGE_GAP;
    while groups.len() > MAX_SEGMENTS {
        groups = merge(&groups, gap);
        gap *= 2;
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

/// Merges neighbouring groups separated by fewer than `gap` bytes.
fn merge(groups: &[(Range<u64>, Range<usize>)], gap: u64) -> Vec<(Range<u64>, Range<usize>)> {
    let mut out: Vec<(Range<u64>, Range<usize>)> = Vec::with_capacity(groups.len() / 2);
    for (range, members) in groups {
        match out.last_mut() {
            Some((last, last_members)) if range.start - last.end < gap => {
                last.end = range.end;
                last_members.end = members.end;
            }
            _ => out.push((range.clone(), members.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
        assert!(segments(&MemoryImage::new()).is_empty());
        assert!(segments(&MemoryImage::from(vec![0u8; 100_000])).is_empty());
    }

    #[test]
    fn few_runs_are_borrowed_as_they_are() {
        let mut memory = vec![0u8; 1003];
        memory[3] = 1;
        memory[5] = 2;
        memory[500] = 3;
        memory[1002] = 5;
        let image = MemoryImage::from(&memory[..]);
        let segments = segments(&image);
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
    fn segment_count_is_bounded() {
        let mut memory = vec![0u8; 64 * (MAX_SEGMENTS * 3)];
        for i in (0..memory.len()).step_by(64) {
            memory[i] = 0xff;
        }
        let image = MemoryImage::from(&memory[..]);
        assert_eq!(image.runs().len(), MAX_SEGMENTS * 3);
        let segments = segments(&image);
        assert!(
            segments.len() <= MAX_SEGMENTS,
            "{} segments",
            segments.len()
        );
        rebuilds(&memory, &segments);
    }
}
