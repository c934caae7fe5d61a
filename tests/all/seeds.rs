//! Ranges of seeds and the two-worker runner the differential tests share
//! (`differential.rs`, `module_differential.rs`), and the one copy of what
//! their oracles share (`fuzz/src/common.rs`; each test names it `common`,
//! so that its oracle finds it as `super::common`).

use std::fmt;
use std::ops::Range;

#[path = "../../fuzz/src/common.rs"]
pub mod common;

/// The seeds `var` names (`START..END`), or `default`.
pub fn seeds(var: &str, default: Range<u64>) -> Range<u64> {
    match std::env::var(var) {
        Ok(s) => {
            let (a, b) = s.split_once("..").expect("seeds are given as START..END");
            a.parse().expect("START is a number")..b.parse().expect("END is a number")
        }
        Err(_) => default,
    }
}

/// How the workers' tallies merge, and where they count the cases run.
pub struct Tally<S> {
    pub merge: fn(&mut S, S),
    pub cases: fn(&mut S) -> &mut usize,
}

/// Runs `check` for every seed of `seeds`, on two workers (one per core;
/// the seeds alternate between them); `check` records what a case came to
/// in a tally, or fails; the workers' tallies go together as `tally`
/// says. Prints the tally, titled `name`, and
/// panics on the first failure; returns the tally otherwise.
pub fn run<S: Default + Send + fmt::Display, F: fmt::Display + Send>(
    name: &str,
    seeds: Range<u64>,
    Tally { merge, cases }: Tally<S>,
    check: impl Fn(&mut S, u64) -> Result<(), F> + Sync,
) -> S {
    let start = std::time::Instant::now();
    let check = &check;
    let worker = |w: u64| {
        let mut stats = S::default();
        let mut failures = Vec::new();
        for seed in seeds.clone().filter(|seed| seed % 2 == w) {
            if let Err(failure) = check(&mut stats, seed) {
                *cases(&mut stats) += 1;
                failures.push((seed, failure));
            }
        }
        (stats, failures)
    };
    let (mut stats, mut failures) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64).map(|w| s.spawn(move || worker(w))).collect();
        let mut stats = S::default();
        let mut failures = Vec::new();
        for worker in workers {
            let (s, f) = worker.join().expect("a worker panicked");
            merge(&mut stats, s);
            failures.extend(f);
        }
        (stats, failures)
    });
    failures.sort_by_key(|(seed, _)| *seed);
    let n = cases(&mut stats);
    *n = (*n).max(failures.len());
    println!("{name}, seeds {seeds:?}, {:.1?}:\n{stats}", start.elapsed());
    if let Some((seed, first)) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|(s, _)| *s).collect();
        panic!(
            "{} of {} cases failed (seeds {seeds:?}); seed {seed}:\n{first}",
            failures.len(),
            cases(&mut stats)
        );
    }
    stats
}
