//! The core-module differential check (see `src/module_oracle.rs`) on
//! fuzzer input: a wasm-smith core module initialized at run time and
//! pre-initialized by `initialize_module` behave the same. One input in
//! eight is a hostile case for the core-module pipeline instead (arbitrary
//! or mutated modules: no panic, nothing invalid returned).

#![no_main]

use libfuzzer_sys::fuzz_target;

// Included by path, as the integration test includes it, so that the
// fuzz crate's library stays as it is; what it shares with `oracle.rs` it
// takes from the library, as `super::common`.
#[allow(dead_code, unused_imports)]
#[path = "../src/module_oracle.rs"]
mod module_oracle;

use component_init_fuzz::common;

fuzz_target!(|data: &[u8]| {
    let mut u = arbitrary::Unstructured::new(data);
    if u.ratio(1, 8).unwrap_or(false) {
        if let Err(bug) = module_oracle::check_hostile(&mut u, &module_oracle::default_pre_init) {
            panic!("{bug}");
        }
    } else if let Err(failure) = module_oracle::check(&mut u) {
        panic!("{failure}");
    }
});
