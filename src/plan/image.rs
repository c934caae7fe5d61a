//! A memory's snapshot, kept sparse: the memory's size and its non-zero
//! runs, so that a large memory that init barely touched costs the host what
//! init wrote, not the memory's size.

use std::fmt;

/// The contents of a linear memory: its length in bytes and the runs of it
/// that hold non-zero bytes. Everything outside the runs is zero.
///
/// The runs are those of the memory seen as aligned 8-byte words (the last
/// one padded with zeros): each is a maximal stretch of words that are not
/// all zero, trimmed to its first and last non-zero byte. So a run starts
/// and ends with a non-zero byte, zeros inside it are fewer than 15 in a row,
/// and an image is the same however its bytes were pushed (whole or in
/// chunks of any size): two images are equal exactly when the memories are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemoryImage {
    /// The memory's size in bytes.
    len: u64,
    /// The runs' bytes, one after another.
    data: Vec<u8>,
    /// The runs, in order of offset: where each starts in the memory and its
    /// length (its bytes in `data` follow those of the runs before it).
    runs: Vec<Run>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    offset: u64,
    len: usize,
}

/// Words scanned as one block by the zero and non-zero scans.
const BLOCK: usize = 8;

impl MemoryImage {
    /// An empty memory (0 bytes).
    pub fn new() -> MemoryImage {
        MemoryImage::default()
    }

    /// The memory's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the memory has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many bytes the runs hold (what the image keeps of the memory).
    pub fn stored_len(&self) -> usize {
        self.data.len()
    }

    /// The runs that hold the non-zero bytes, in order: each is its offset in
    /// the memory and its bytes, which start and end with a non-zero byte.
    pub fn runs(&self) -> impl ExactSizeIterator<Item = (u64, &[u8])> + '_ {
        let mut at = 0;
        self.runs.iter().map(move |run| {
            let bytes = &self.data[at..at + run.len];
            at += run.len;
            (run.offset, bytes)
        })
    }

    /// Appends `bytes` to the end of the memory; only their non-zero runs
    /// are kept.
    pub fn push(&mut self, bytes: &[u8]) {
        let base = self.len;
        // The bytes up to the next 8-byte boundary of the memory, one by one.
        let head = (base.wrapping_neg() % 8).min(bytes.len() as u64) as usize;
        for (i, &b) in bytes[..head].iter().enumerate() {
            if b != 0 {
                self.add(base + i as u64, &bytes[i..=i]);
            }
        }
        // Whole words: stretches of non-zero words, copied at once.
        let body = &bytes[head..];
        let (words, tail) = body.as_chunks::<8>();
        let mut i = 0;
        while i < words.len() {
            i = skip(words, i, true);
            if i == words.len() {
                break;
            }
            let start = i;
            i = skip(words, i, false);
            let first = start * 8 + first_nonzero(words[start]);
            let end = (i - 1) * 8 + last_nonzero(words[i - 1]) + 1;
            self.add(base + (head + first) as u64, &body[first..end]);
        }
        // The bytes after the last whole word.
        let tail_at = head + words.len() * 8;
        for (i, &b) in tail.iter().enumerate() {
            if b != 0 {
                self.add(base + (tail_at + i) as u64, &[b]);
            }
        }
        self.len = base + bytes.len() as u64;
    }

    /// Appends `n` zero bytes to the end of the memory.
    pub fn push_zeros(&mut self, n: u64) {
        self.len = self.len.saturating_add(n);
    }

    /// Adds `bytes`, which start and end with a non-zero byte, at `offset`,
    /// at or after the end of the last run: to the last run when no aligned
    /// zero word lies between them, else as a run of its own.
    fn add(&mut self, offset: u64, bytes: &[u8]) {
        if let Some(last) = self.runs.last_mut() {
            let end = last.offset + last.len as u64;
            if offset / 8 <= (end - 1) / 8 + 1 {
                let gap = (offset - end) as usize;
                self.data.resize(self.data.len() + gap, 0);
                self.data.extend_from_slice(bytes);
                last.len += gap + bytes.len();
                return;
            }
        }
        self.runs.push(Run {
            offset,
            len: bytes.len(),
        });
        self.data.extend_from_slice(bytes);
    }

    /// The memory's bytes, zeros included.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.write_to(&mut out);
        out
    }

    /// Appends the memory's bytes, zeros included, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        for (offset, bytes) in self.runs() {
            out.resize(start + offset as usize, 0);
            out.extend_from_slice(bytes);
        }
        out.resize(start + self.len as usize, 0);
    }
}

/// From word `i`, skips the words that are zero (`zero`) or not zero
/// (`!zero`), a block of words at a time; returns the index of the first
/// other word, or `words.len()`.
fn skip(words: &[[u8; 8]], mut i: usize, zero: bool) -> usize {
    let is = |w: &[u8; 8]| (u64::from_ne_bytes(*w) == 0) == zero;
    while i + BLOCK <= words.len() && words[i..i + BLOCK].iter().fold(true, |all, w| all & is(w)) {
        i += BLOCK;
    }
    while i < words.len() && is(&words[i]) {
        i += 1;
    }
    i
}

fn first_nonzero(word: [u8; 8]) -> usize {
    word.iter().position(|&b| b != 0).unwrap_or(0)
}

fn last_nonzero(word: [u8; 8]) -> usize {
    word.iter().rposition(|&b| b != 0).unwrap_or(7)
}

impl From<&[u8]> for MemoryImage {
    fn from(bytes: &[u8]) -> MemoryImage {
        let mut image = MemoryImage::new();
        image.push(bytes);
        image
    }
}

impl From<Vec<u8>> for MemoryImage {
    fn from(bytes: Vec<u8>) -> MemoryImage {
        MemoryImage::from(&bytes[..])
    }
}

impl<const N: usize> From<[u8; N]> for MemoryImage {
    fn from(bytes: [u8; N]) -> MemoryImage {
        MemoryImage::from(&bytes[..])
    }
}

impl fmt::Debug for MemoryImage {
    /// The size and the runs' extents, not the bytes (memories are large).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryImage")
            .field("len", &self.len)
            .field("stored", &self.data.len())
            .field(
                "runs",
                &self
                    .runs
                    .iter()
                    .map(|r| r.offset..r.offset + r.len as u64)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(image: &MemoryImage) -> Vec<std::ops::Range<u64>> {
        image
            .runs()
            .map(|(offset, bytes)| offset..offset + bytes.len() as u64)
            .collect()
    }

    /// The definition, byte by byte: maximal stretches of non-zero aligned
    /// words, trimmed.
    fn reference(memory: &[u8]) -> Vec<std::ops::Range<u64>> {
        let mut out: Vec<std::ops::Range<u64>> = Vec::new();
        let mut last_word = None;
        for (i, &b) in memory.iter().enumerate() {
            if b == 0 {
                continue;
            }
            let word = i / 8;
            match (out.last_mut(), last_word) {
                (Some(run), Some(w)) if word <= w + 1 => run.end = i as u64 + 1,
                _ => out.push(i as u64..i as u64 + 1),
            }
            last_word = Some(word);
        }
        out
    }

    fn check(memory: &[u8]) -> MemoryImage {
        let image = MemoryImage::from(memory);
        assert_eq!(runs(&image), reference(memory));
        assert_eq!(image.len(), memory.len() as u64);
        assert_eq!(image.to_vec(), memory);
        for (_, bytes) in image.runs() {
            assert_ne!(bytes[0], 0);
            assert_ne!(bytes[bytes.len() - 1], 0);
        }
        image
    }

    #[test]
    fn empty_and_all_zero_memories_have_no_runs() {
        assert_eq!(check(&[]).runs().len(), 0);
        let zeros = check(&[0; 100_003]);
        assert_eq!(zeros.runs().len(), 0);
        assert_eq!(zeros.stored_len(), 0);
        let mut pushed = MemoryImage::new();
        pushed.push_zeros(100_003);
        assert_eq!(pushed, zeros);
    }

    #[test]
    fn short_gaps_stay_in_runs_zero_words_split_them() {
        let mut memory = vec![0u8; 1003];
        memory[3] = 1;
        memory[5] = 2; // same word: one run
        memory[500] = 3; // far away: a run of its own
        memory[999] = 4; // the last whole word
        memory[1002] = 5; // the padded last word, next to it: same run
        let image = check(&memory);
        assert_eq!(runs(&image), vec![3..6, 500..501, 999..1003]);

        let mut memory = vec![0u8; 64];
        memory[0] = 1;
        memory[31] = 1; // words 1 and 2 are zero
        assert_eq!(runs(&check(&memory)), vec![0..1, 31..32]);

        let mut memory = vec![0u8; 64];
        memory[7] = 1;
        memory[8] = 1; // adjacent words
        memory[23] = 1; // word 1 is non-zero, word 2 too: 14 zeros inside
        assert_eq!(runs(&check(&memory)), vec![7..24]);
    }

    #[test]
    fn runs_are_exact_at_every_alignment() {
        for len in 0..40 {
            for at in 0..len {
                for width in 1..=(len - at).min(10) {
                    let mut memory = vec![0u8; len];
                    memory[at..at + width].fill(7);
                    let at = at as u64;
                    assert_eq!(
                        runs(&check(&memory)),
                        vec![at..at + width as u64],
                        "{len} {at} {width}"
                    );
                }
            }
        }
    }

    #[test]
    fn chunks_of_any_size_give_the_same_image() {
        // A pseudo-random memory with dense and sparse parts.
        let mut memory = vec![0u8; 5000];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for (i, byte) in memory.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let dense = (1000..2500).contains(&i);
            if dense || x.is_multiple_of(37) {
                *byte = (x >> 32) as u8;
            }
        }
        let whole = check(&memory);
        for chunk in [1, 3, 7, 8, 9, 64, 65, 1000, 4999] {
            let mut image = MemoryImage::new();
            for part in memory.chunks(chunk) {
                image.push(part);
            }
            assert_eq!(image, whole, "chunks of {chunk}");
        }
        // Uneven chunks, the first one short, as accessors return them.
        let mut image = MemoryImage::new();
        let mut at = 0;
        for size in [8, 1, 2, 700, 13, 5000].into_iter().cycle() {
            let end = (at + size).min(memory.len());
            image.push(&memory[at..end]);
            at = end;
            if at == memory.len() {
                break;
            }
        }
        assert_eq!(image, whole);
    }

    #[test]
    fn dense_memories_are_one_run() {
        let memory: Vec<u8> = (0..100_000u32).map(|i| (i % 251 + 1) as u8).collect();
        let image = check(&memory);
        assert_eq!(image.runs().len(), 1);
        assert_eq!(image.stored_len(), memory.len());
    }
}
