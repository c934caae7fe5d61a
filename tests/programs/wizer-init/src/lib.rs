//! A core module written for Wizer: a wasip1 reactor whose
//! `wizer-initialize` export builds expensive state once, and whose other
//! exports only use it.
//!
//! A reactor exports `_initialize`, which its host calls before anything
//! else (and Wizer calls before the init function). Rust's `cdylib` for
//! `wasm32-wasip1` does not get one (rustc links wasi-libc's
//! `crt1-reactor.o` only under the unstable `-Z wasi-exec-model=reactor`),
//! so this module defines it as that object does: it runs the
//! constructors, and counts its calls so that a test can see it ran, once.
//!
//! Init compiles a few regular expressions (Unicode classes make that
//! costly), sieves the primes below [`LIMIT`] into a `Vec` and counts their
//! gaps in a `HashMap` (whose hasher std seeds from WASI's `random_get`),
//! and reads the `GREETING` environment variable (through WASI's
//! `environ_get`). Pre-initialized, none of that runs again and nothing
//! from WASI is needed.
//!
//! Every export answers a sentinel (all bits set) while the state is not
//! built, so a test can tell an initialized instance from one that is not.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use regex::Regex;

/// The primes are those below this.
const LIMIT: u32 = 1_000_000;

/// What [`PATTERNS`] are tried on (`matches(n)` tries word `n`).
const WORDS: &[&str] = &[
    "2024-02-29",
    "ada@example.org",
    "#C0FFEE",
    "über",
    "naïve",
    "-12.5e3",
    "192.168.0.1",
    "zucchini",
];

const PATTERNS: &[&str] = &[
    r"^\d{4}-\d{2}-\d{2}$",
    r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$",
    r"^#[0-9A-Fa-f]{6}$",
    r"^\p{Letter}+$",
    r"[^\p{ASCII}]",
    r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$",
    r"^(\d{1,3}\.){3}\d{1,3}$",
    r"^\p{Lowercase_Letter}+$",
];

struct State {
    patterns: Vec<Regex>,
    primes: Vec<u32>,
    /// How many consecutive primes are this far apart.
    gaps: HashMap<u32, u32>,
    greeting: String,
}

static STATE: OnceLock<State> = OnceLock::new();
static INIT_CALLS: AtomicU32 = AtomicU32::new(0);

fn build() -> State {
    INIT_CALLS.fetch_add(1, Ordering::SeqCst);
    let patterns = PATTERNS.iter().map(|p| Regex::new(p).unwrap()).collect();
    let mut composite = vec![false; LIMIT as usize];
    let mut primes = Vec::new();
    for n in 2..LIMIT {
        if !composite[n as usize] {
            primes.push(n);
            let mut multiple = u64::from(n) * u64::from(n);
            while multiple < u64::from(LIMIT) {
                composite[multiple as usize] = true;
                multiple += u64::from(n);
            }
        }
    }
    let mut gaps = HashMap::new();
    for pair in primes.windows(2) {
        *gaps.entry(pair[1] - pair[0]).or_insert(0) += 1;
    }
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "<unset>".to_string());
    State {
        patterns,
        primes,
        gaps,
        greeting,
    }
}

unsafe extern "C" {
    /// The module's constructors, a function the linker (wasm-ld) makes.
    fn __wasm_call_ctors();
}

static REACTOR_INITS: AtomicU32 = AtomicU32::new(0);

/// The reactor's `_initialize`, as wasi-libc's `crt1-reactor.o` defines it.
#[unsafe(export_name = "_initialize")]
pub extern "C" fn reactor_initialize() {
    REACTOR_INITS.fetch_add(1, Ordering::SeqCst);
    unsafe { __wasm_call_ctors() }
}

/// How many times `_initialize` has run.
#[unsafe(no_mangle)]
pub extern "C" fn reactor_inits() -> u32 {
    REACTOR_INITS.load(Ordering::SeqCst)
}

/// Wizer's init function: builds the state (once).
#[unsafe(export_name = "wizer-initialize")]
pub extern "C" fn init() {
    STATE.get_or_init(build);
}

/// How many times init has built the state (0 before, 1 after).
#[unsafe(no_mangle)]
pub extern "C" fn init_calls() -> u32 {
    INIT_CALLS.load(Ordering::SeqCst)
}

/// Which of the patterns match word `n`: bit `i` for pattern `i`;
/// `u32::MAX` before init or for no such word.
#[unsafe(no_mangle)]
pub extern "C" fn matches(n: u32) -> u32 {
    let (Some(state), Some(word)) = (STATE.get(), WORDS.get(n as usize)) else {
        return u32::MAX;
    };
    let mut bits = 0;
    for (i, pattern) in state.patterns.iter().enumerate() {
        if pattern.is_match(word) {
            bits |= 1 << i;
        }
    }
    bits
}

/// The sum of the primes below [`LIMIT`]; `u64::MAX` before init.
#[unsafe(no_mangle)]
pub extern "C" fn table_sum() -> u64 {
    STATE
        .get()
        .map_or(u64::MAX, |s| s.primes.iter().map(|&p| u64::from(p)).sum())
}

/// How many primes there are below [`LIMIT`]; `u32::MAX` before init.
#[unsafe(no_mangle)]
pub extern "C" fn prime_count() -> u32 {
    STATE.get().map_or(u32::MAX, |s| s.primes.len() as u32)
}

/// How many consecutive primes below [`LIMIT`] are `gap` apart (a lookup
/// in the `HashMap`); `u32::MAX` before init.
#[unsafe(no_mangle)]
pub extern "C" fn gap_count(gap: u32) -> u32 {
    STATE
        .get()
        .map_or(u32::MAX, |s| s.gaps.get(&gap).copied().unwrap_or(0))
}

/// The length in bytes of `GREETING` as init read it (`<unset>` when it
/// was not set); `u32::MAX` before init.
#[unsafe(no_mangle)]
pub extern "C" fn greeting_len() -> u32 {
    STATE.get().map_or(u32::MAX, |s| s.greeting.len() as u32)
}

/// Byte `i` of the greeting; `u32::MAX` before init or past its end.
#[unsafe(no_mangle)]
pub extern "C" fn greeting_byte(i: u32) -> u32 {
    STATE
        .get()
        .and_then(|s| s.greeting.as_bytes().get(i as usize))
        .map_or(u32::MAX, |&b| u32::from(b))
}
