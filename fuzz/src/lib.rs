//! Shared logic of component-init's fuzz targets. The same files are
//! compiled into the `differential` integration test (`tests/all/
//! differential.rs` includes them with `#[path]`), so `cargo test` and
//! `cargo fuzz` run one check, not two copies of it. `common.rs` holds what
//! both differential oracles share (`module_oracle.rs`, included by path by
//! the `module_differential` target and test, uses it from here there).

pub mod common;
pub mod hostile;
pub mod oracle;
