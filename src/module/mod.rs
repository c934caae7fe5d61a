//! The core-module front end: the four phases for a core WebAssembly module
//! (what Wizer and `wasmtime wizer` pre-initialize), sharing with the
//! component front end the per-module editing, probes and segment rule
//! (`edit`), and the runtime, limits, WASI policy and reproducible mode
//! (`run`).
//!
//! 1. [`parse`]: validate, find the memories and mutable globals;
//! 2. [`instrument`]: export them (and probes) under reserved names;
//! 3. snapshot: Wasmtime instantiates the module, runs `_initialize` (when
//!    exported) and the init function, and reads the exports back;
//! 4. [`rewrite`]: the original module with the state baked in.

pub mod instrument;
pub mod parse;
pub mod rewrite;

pub use instrument::ModulePlan;

use crate::edit::tables::TableEdit;
use crate::plan::Snapshot;

/// What init left in a core module: its memories and globals, as the
/// accessors' values are for components, and its tables and
/// reference-typed globals when init changed any.
pub struct ModuleSnapshot {
    /// Memories, numeric globals and probes, in the order of
    /// [`ModulePlan::states`].
    pub state: Snapshot,
    /// Tables and reference-typed globals; `None` when init changed none.
    pub tables: Option<TableEdit>,
}
pub use parse::is_core_module;

/// How to pre-initialize a core module, with Wizer's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleOptions {
    /// The exported function to run as init; `None`: `wizer-initialize`,
    /// or `wizer.initialize` when only that is exported. An exported
    /// `_initialize` (a WASI reactor's constructor) runs first.
    pub init_func: Option<String>,
    /// Keep the init function's export in the output (by default it is
    /// removed: it already ran). `_initialize` is removed either way, as
    /// Wizer does: calling it again would run the constructors again.
    pub keep_init_func: bool,
    /// `(DST, SRC)` pairs: the output exports SRC's function as DST (an
    /// export already named DST is removed), as Wizer's `--rename-func
    /// DST=SRC` does.
    pub renames: Vec<(String, String)>,
}
