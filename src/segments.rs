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
fn scan(memory: &[u8], gap: usize) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    let n = memory.len();
    while i < n {
        i = next_nonzero(memory, i);
        if i >= n {
            break;
        }
        let start = i;
        let end = next_zero(memory, i);
        match runs.last_mut() {
            Some(last) if start - last.end < gap => last.end = end,
            _ => runs.push(start..end),
        }
        i = end;
    }
    runs
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

/// Index of the first non-zero byte at or after `i`, or `memory.len()`;
/// skips zeros a word at a time.
fn next_nonzero(memory: &[u8], mut i: usize) -> usize {
    let n = memory.len();
    while i < n && !i.is_multiple_of(8) {
        if memory[i] != 0 {
            return i;
        }
        i += 1;
    }
    while i + 8 <= n {
        let word = u64::from_ne_bytes(memory[i..i + 8].try_into().unwrap_or([1; 8]));
        if word != 0 {
            break;
        }
        i += 8;
    }
    while i < n && memory[i] == 0 {
        i += 1;
    }
    i
}

/// Index of the first zero byte at or after `i`, or `memory.len()`.
fn next_zero(memory: &[u8], i: usize) -> usize {
    memory[i..]
        .iter()
        .position(|&b| b == 0)
        .map_or(memory.len(), |p| i + p)
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
        let mut memory = vec![0u8; 1000];
        memory[3] = 1;
        memory[5] = 2; // gap of 1: merged
        memory[500] = 3; // far away: own segment
        memory[999] = 4; // last byte
        let runs = nonzero_runs(&memory);
        assert_eq!(runs, vec![3..6, 500..501, 999..1000]);
        covers_all_nonzero(&memory, &runs);
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
