//! Runs a fuzz target's check over seeded random inputs, without libFuzzer
//! (for a stable toolchain):
//! `cargo run --release --example driver -- differential|no_panic [START..END]`.
//! Prints the tally and every failing seed; exits 1 if any failed.

use arbitrary::Unstructured;
use component_init_fuzz::{hostile, oracle};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target = args.first().map(String::as_str).unwrap_or("differential");
    let (start, end) = match args.get(1).and_then(|r| r.split_once("..")) {
        Some((a, b)) => (a.parse().expect("START"), b.parse().expect("END")),
        None => (0u64, 1000u64),
    };
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut stats = oracle::Stats::default();
    let mut exercised: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in start..end {
        let bytes = oracle::seed_bytes(seed);
        let mut u = Unstructured::new(&bytes);
        let result = match target {
            "differential" => oracle::check(&mut u)
                .map(|(verdict, steps)| stats.record(&verdict, steps))
                .map_err(|f| f.to_string()),
            "no_panic" => hostile::check(&mut u).map(|what| *exercised.entry(what).or_default() += 1),
            other => panic!("unknown target `{other}` (differential, no_panic)"),
        };
        if let Err(e) = result {
            eprintln!("seed {seed}: {e}\n");
            failed.push(seed);
        }
    }
    println!("{target}, seeds {start}..{end}, {:.1?}", started.elapsed());
    if target == "differential" {
        print!("{stats}");
    } else {
        println!("{exercised:?}");
    }
    println!("{} failed: {failed:?}", failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
