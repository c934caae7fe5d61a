//! The differential check (see `src/oracle.rs`) on fuzzer input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = arbitrary::Unstructured::new(data);
    if let Err(failure) = component_init_fuzz::oracle::check(&mut u) {
        panic!("{failure}");
    }
});
