//! Choosing data segments for a memory snapshot: the non-zero runs of the
//! memory, with short zero gaps merged so that the number of segments stays
//! bounded.

use std::ops::Range;

/// Zero gaps shorter than this are kept inside a segment: a new segment costs
/// a few bytes of header, so splitting around a short gap does not pay.
const MIN_GAP: usize = 8;

/// The most segments one memory gets; gaps are merged until it fits.
pub const MAX_SEGMENTS: usize = 10_000;

/// The ranges of `memory` to emit as data segments: every non-zero byte is
/// in exactly one range, ranges are sorted and disjoint, and there are at
/// most [`MAX_SEGMENTS`] of them.
pub fn nonzero_runs(memory: &[u8]) -> Vec<Range<usize>> {
    let mut runs = scan(memory, MIN_GAP);
    let mut gap = MIN_GAP;
    while runs.len() > MAX_SEGMENTS {
        gap *= 2;
        runs = merge(&runs, gap);
    }
    runs
}

/// Non-zero runs separated by at least `gap` zero bytes.
///
/// The scan goes a 64-bit word at a time: a run ends at the first stretch of
/// zero words covering `gap` bytes; its ends are then trimmed to the exact
/// non-zero bytes. Zero stretches that are not whole words stay inside runs.
fn scan(memory: &[u8], gap: usize) -> Vec<Range<usize>> {
    let gap_words = gap.div_ceil(8).max(1);
    let words = memory.len() / 8;
    let word = |i: usize| {
        let at = i * 8;
        u64::from_ne_bytes(memory[at..at + 8].try_into().unwrap_or([0; 8]))
    };
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < words {
        if word(i) == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1; // one past the last non-zero word
        let mut j = i + 1;
        while j < words && j - end < gap_words {
            if word(j) != 0 {
                end = j + 1;
            }
            j += 1;
        }
        runs.push(trim(memory, start * 8..end * 8));
        i = j;
    }
    // The bytes after the last whole word.
    let tail = words * 8;
    if let Some(first) = memory[tail..].iter().position(|&b| b != 0) {
        let run = trim(memory, tail + first..memory.len());
        match runs.last_mut() {
            Some(last) if run.start - last.end < gap => last.end = run.end,
            _ => runs.push(run),
        }
    }
    runs
}

/// Shrinks `range` to start and end at non-zero bytes (it holds at least one).
fn trim(memory: &[u8], range: Range<usize>) -> Range<usize> {
    let bytes = &memory[range.clone()];
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(0);
    let end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(bytes.len(), |p| p + 1);
    range.start + start..range.start + end
}

fn merge(runs: &[Range<usize>], gap: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::with_capacity(runs.len() / 2);
    for run in runs {
        match out.last_mut() {
            Some(last) if run.start - last.end < gap => last.end = run.end,
            _ => out.push(run.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers_all_nonzero(memory: &[u8], runs: &[Range<usize>]) {
        for (i, &b) in memory.iter().enumerate() {
            if b != 0 {
                assert!(runs.iter().any(|r| r.contains(&i)), "byte {i} not covered");
            }
        }
        for pair in runs.windows(2) {
            assert!(pair[0].end < pair[1].start, "{pair:?} not sorted/disjoint");
        }
    }

    #[test]
    fn empty_and_all_zero_memories_have_no_segments() {
        assert!(nonzero_runs(&[]).is_empty());
        assert!(nonzero_runs(&[0; 100_000]).is_empty());
    }

    #[test]
    fn short_gaps_merge_long_gaps_split() {
        let mut memory = vec![0u8; 1003];
        memory[3] = 1;
        memory[5] = 2; // gap of 1: merged
        memory[500] = 3; // far away: own segment
        memory[999] = 4; // last whole word
        memory[1002] = 5; // in the tail after the last whole word: merged
        let runs = nonzero_runs(&memory);
        assert_eq!(runs, vec![3..6, 500..501, 999..1003]);
        covers_all_nonzero(&memory, &runs);
    }

    #[test]
    fn runs_are_exact_at_every_alignment() {
        for len in 0..40 {
            for at in 0..len {
                for width in 1..=(len - at).min(10) {
                    let mut memory = vec![0u8; len];
                    memory[at..at + width].fill(7);
                    assert_eq!(
                        nonzero_runs(&memory),
                        vec![at..at + width],
                        "{len} {at} {width}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_zero_word_gap_splits_runs() {
        let mut memory = vec![0u8; 64];
        memory[0] = 1;
        memory[31] = 1; // bytes 8..31 are zero: three whole zero words
        let runs = nonzero_runs(&memory);
        assert_eq!(runs, vec![0..1, 31..32]);
    }

    #[test]
    fn segment_count_is_bounded() {
        let mut memory = vec![0u8; 64 * (MAX_SEGMENTS * 3)];
        for i in (0..memory.len()).step_by(64) {
            memory[i] = 0xff;
        }
        let runs = nonzero_runs(&memory);
        assert!(runs.len() <= MAX_SEGMENTS, "{} segments", runs.len());
        covers_all_nonzero(&memory, &runs);
    }
}
