//! Every name this crate adds to the user's component, in one place: its
//! exports (those an [invoker](crate::transform::Invoker) calls included),
//! the core exports of its modules, the WIT package. (Names inside
//! the reader modules this crate synthesizes are private to those modules
//! and live with them, in `readers`.)
//!
//! Names are built from indices only, never from user strings, so they are
//! always valid; each carries a reserved prefix, and [`check_unused`] rejects
//! inputs that already use one.

use anyhow::{Result, bail};

/// The fixed WIT package that ships in `wit/`.
pub const WIT_PACKAGE_SOURCE: &str = include_str!("../../wit/component-init.wit");

/// Name of the synthesized interface inside the package
/// `component-init:snapshot@0.1.0` of [`WIT_PACKAGE_SOURCE`].
pub const ACCESSOR_INTERFACE_NAME: &str = "accessors";

/// Component-level export name of the instance holding the accessors.
pub const ACCESSOR_INSTANCE_EXPORT: &str = "component-init:snapshot/accessors@0.1.0";

/// The default init function (the `initializable` world's export).
pub const DEFAULT_INIT_FUNC: &str = "component-init";

// The core exports of state, shared by both front ends, are named in `edit`.
pub use crate::edit::CORE_EXPORT_PREFIX;

/// Fallback init function, used by components made for `wasmtime wizer`.
pub const WIZER_INIT_FUNC: &str = "wizer-initialize";

/// Accessor function for memory number `n` of the plan.
pub fn memory_accessor(n: usize) -> String {
    format!("get-memory-{n}")
}

/// Accessor function for global number `n` of the plan.
pub fn global_accessor(n: usize) -> String {
    format!("get-global-{n}")
}

/// Accessor function for table number `n` of the plan.
pub fn table_accessor(n: usize) -> String {
    format!("get-table-{n}")
}

/// Accessor function for reference-typed global number `n` of the plan.
pub fn ref_global_accessor(n: usize) -> String {
    format!("get-ref-global-{n}")
}

/// Accessor function for probe number `n` of the plan.
pub fn probe_accessor(n: usize) -> String {
    format!("get-probe-{n}")
}

/// Prefix of the top-level exports through which an
/// [invoker](crate::transform::Invoker) reads the accessors.
pub const INVOKER_EXPORT_PREFIX: &str = "component-init-";

/// The top-level export through which an invoker reads `func`, an accessor
/// of the plan (a scalar one, or a memory).
pub fn invoker_export(func: &str) -> String {
    format!("{INVOKER_EXPORT_PREFIX}{func}")
}

/// The two exports, low and high 64 bits, through which an invoker reads
/// `func`, a `v128` accessor.
pub fn invoker_v128_exports(func: &str) -> [String; 2] {
    [
        format!("{INVOKER_EXPORT_PREFIX}{func}-low"),
        format!("{INVOKER_EXPORT_PREFIX}{func}-high"),
    ]
}

/// Import name, inside the accessor module, of accessor state number `n`.
pub fn accessor_import(n: usize) -> String {
    n.to_string()
}

/// Fails when a module already exports a name in our reserved namespace.
pub fn check_unused(export_name: &str, what: &str) -> Result<()> {
    if export_name.starts_with(CORE_EXPORT_PREFIX) {
        bail!(
            "{what} already exports `{export_name}`, a name reserved for component-init's instrumentation"
        );
    }
    Ok(())
}
