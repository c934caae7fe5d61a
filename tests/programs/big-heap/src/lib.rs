//! Init allocates a dense region of pseudo-random bytes (64 MiB) and a sparse
//! one (32 MiB, one word set every 64 KiB); `checksum` hashes both.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "component-init:test-guests/big-heap",
});

const DENSE: usize = 64 << 20;
const SPARSE: usize = 32 << 20;
const SPARSE_STRIDE: usize = 64 << 10;

struct Heap {
    dense: Vec<u8>,
    sparse: Vec<u8>,
}

static HEAP: OnceLock<Heap> = OnceLock::new();
static INIT_CALLS: AtomicU32 = AtomicU32::new(0);

/// xorshift64*: fast, deterministic, and dense (few zero bytes).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn build() -> Heap {
    INIT_CALLS.fetch_add(1, Ordering::SeqCst);
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut dense = vec![0u8; DENSE];
    for chunk in dense.chunks_exact_mut(8) {
        chunk.copy_from_slice(&next(&mut state).to_le_bytes());
    }
    let mut sparse = vec![0u8; SPARSE];
    for (i, at) in (0..SPARSE).step_by(SPARSE_STRIDE).enumerate() {
        let word = next(&mut state) | 1;
        // Vary the offset inside each 64 KiB stride, and write the last byte.
        let at = at + (i * 8) % (SPARSE_STRIDE - 8);
        sparse[at..at + 8].copy_from_slice(&word.to_le_bytes());
    }
    sparse[SPARSE - 1] = 0x5a;
    Heap { dense, sparse }
}

fn heap() -> &'static Heap {
    HEAP.get()
        .expect("not initialized: call `component-init` first")
}

fn hash(mut h: u64, bytes: &[u8]) -> u64 {
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }
    h
}

struct BigHeap;

impl Guest for BigHeap {
    fn component_init() {
        HEAP.get_or_init(build);
    }

    fn checksum() -> u64 {
        let heap = heap();
        hash(hash(0xcbf2_9ce4_8422_2325, &heap.dense), &heap.sparse)
    }

    fn sizes() -> (u64, u64) {
        let heap = heap();
        (heap.dense.len() as u64, heap.sparse.len() as u64)
    }

    fn init_calls() -> u32 {
        INIT_CALLS.load(Ordering::SeqCst)
    }
}

export!(BigHeap);
