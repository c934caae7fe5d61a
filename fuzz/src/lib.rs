//! Shared logic of component-init's fuzz targets. The same files are
//! compiled into the `differential` integration test (`tests/all/
//! differential.rs` includes them with `#[path]`), so `cargo test` and
//! `cargo fuzz` run one check, not two copies of it.

pub mod hostile;
pub mod oracle;
