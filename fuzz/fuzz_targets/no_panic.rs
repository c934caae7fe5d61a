//! Hostile inputs (see `src/hostile.rs`) on fuzzer input: parse,
//! instrument and `Plan::apply` must not panic, and must not return invalid
//! components.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = arbitrary::Unstructured::new(data);
    if let Err(bug) = component_init_fuzz::hostile::check(&mut u) {
        panic!("{bug}");
    }
});
