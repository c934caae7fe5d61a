//! Pre-initialize WebAssembly components.
//!
//! `component-init` runs a component's init function once, at build time, and
//! writes a new component whose memories and mutable globals already hold the
//! state that init left behind. It works in four phases:
//!
//! 1. parse: validate the component and find every core instance and the
//!    mutable state (memories, mutable globals) its module defines;
//! 2. [`instrument`]: export that state through synthesized accessor
//!    functions, one exported instance whose WIT interface
//!    ([`Plan::wit`]) is checked against the instrumented component;
//! 3. [`take_snapshot`]: a [`Runtime`] instantiates the instrumented
//!    component, calls the init function, and reads the state back through
//!    the accessors, giving a [`Snapshot`];
//! 4. [`Plan::apply`]: the original component is re-emitted with the
//!    snapshot baked in.
//!
//! [`initialize`] runs all four with any [`Runtime`];
//! [`initialize_with_wasmtime`] with Wasmtime. [`transform`] is a drop-in for
//! the `component-init-transform` crate.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let input = std::fs::read("app.wasm")?;
//! let output = component_init::initialize_with_wasmtime(&input, &Default::default())?;
//! std::fs::write("app.init.wasm", output)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

// The map of the crate (the README's "How it works" describes each file):
// the data the phases pass on, editing one core module (any front end), the
// component front end, and running init.
mod component;
mod edit;
mod module;
mod plan;
mod run;

pub mod transform;

#[cfg(feature = "cli")]
pub mod cli;

use anyhow::Result;

use component::{rewrite, snapshot};

pub use component::instrument::{InstrumentOptions, Instrumented, instrument};
pub use component::retarget::Retargeted;
pub use edit::probe::Probe;
pub use module::ModuleOptions;
pub use plan::image::MemoryImage;
pub use plan::init_func::InitFunc;
pub use plan::{Accessor, GlobalValue, InputId, Plan, RefId, ScalarType, Snapshot, State, Value};
pub use run::Runtime;
pub use run::limits::Limits;
#[cfg(feature = "wasmtime")]
pub use run::reproducible::Reproducible;
#[cfg(feature = "wasmtime")]
pub use run::wasi::{Audit, AuditEntry, Call, Category, PreopenDir, WasiOptions};
#[cfg(feature = "wasmtime")]
pub use run::wasmtime::{Compiler, RuntimeBuilder, WasmtimeRuntime};

/// Internals that this crate's benchmark and fuzz targets time or probe
/// one at a time; not part of the API.
#[doc(hidden)]
pub mod __internal {
    pub use crate::component::parse::{parse, parse_validated_code};
    pub use crate::component::rewrite::apply_to_validated;
    pub use crate::component::snapshot::read as read_snapshot;
}

impl Plan {
    /// Bakes `snapshot` into `original`, the component this plan was made
    /// for (phase 4, rewrite). The input and the result are validated.
    pub fn apply(&self, original: &[u8], snapshot: &Snapshot) -> Result<Vec<u8>> {
        rewrite::apply(original, self, snapshot)
    }

    /// The accessor interface of this plan as WIT: the fixed package in
    /// `wit/` and the synthesized `accessors` interface.
    pub fn wit(&self) -> Result<String> {
        component::wit::print(self)
    }
}

/// Phase 3 with any runtime: instantiates `instrumented` in `runtime`,
/// checks that instantiation changed nothing a snapshot cannot carry, calls
/// the init function and reads the state back.
pub async fn take_snapshot<R: Runtime>(
    runtime: &mut R,
    instrumented: &Instrumented,
) -> Result<Snapshot> {
    snapshot::take(
        runtime,
        &instrumented.component,
        &instrumented.plan,
        |_, _| {},
    )
    .await
}

/// Pre-initializes `component` with `runtime`: instrument, instantiate, call
/// init, read the state back, rewrite.
pub async fn initialize<R: Runtime>(
    component: &[u8],
    options: &InstrumentOptions,
    runtime: &mut R,
) -> Result<Vec<u8>> {
    let (plan, snapshot) = instrument_and_snapshot(component, options, runtime).await?;
    rewrite::apply_to_validated(component, &plan, &snapshot)
}

/// [`initialize`] up to the rewrite: instrument, instantiate, call init, read
/// the state back.
async fn instrument_and_snapshot<R: Runtime>(
    component: &[u8],
    options: &InstrumentOptions,
    runtime: &mut R,
) -> Result<(Plan, Snapshot)> {
    let Instrumented {
        component: instrumented,
        plan,
    } = instrument(component, options)?;
    let snapshot = snapshot::take(runtime, &instrumented, &plan, |_, _| {}).await?;
    Ok((plan, snapshot))
}

/// Pre-initializes `component` with Wasmtime, blocking until done.
#[cfg(feature = "wasmtime")]
pub fn initialize_with_wasmtime(component: &[u8], options: &InstrumentOptions) -> Result<Vec<u8>> {
    let mut runtime = WasmtimeRuntime::new()?;
    let instrumented = instrument(component, options)?;
    let snapshot = runtime.take_snapshot(&instrumented)?;
    // The guest's memory and the instrumented component go before the
    // rewrite, which needs room for the output: they are not held at once.
    let Instrumented { plan, .. } = instrumented;
    drop(runtime);
    rewrite::apply_to_validated(component, &plan, &snapshot)
}

/// Pre-initializes the core module `module` with Wasmtime, as Wizer does
/// (see [`ModuleOptions`]), blocking until done. The sibling of
/// [`initialize_with_wasmtime`] for core modules; for limits, WASI or a
/// compiler of your choice, use [`WasmtimeRuntime::initialize_module`].
#[cfg(feature = "wasmtime")]
pub fn initialize_module_with_wasmtime(module: &[u8], options: &ModuleOptions) -> Result<Vec<u8>> {
    WasmtimeRuntime::new()?.initialize_module(module, options)
}

/// The blocking entry points of the default runtime: each drives the async
/// pipeline on a Tokio runtime of its own (which WASI's host functions need).
#[cfg(feature = "wasmtime")]
impl WasmtimeRuntime {
    /// Pre-initializes `component` in this runtime, blocking until done:
    /// [`crate::initialize`] driven on a Tokio runtime of its own (which
    /// WASI's host functions need).
    pub fn initialize(&mut self, component: &[u8], options: &InstrumentOptions) -> Result<Vec<u8>> {
        let instrumented = instrument(component, options)?;
        let snapshot = self.take_snapshot(&instrumented)?;
        let Instrumented { plan, .. } = instrumented;
        rewrite::apply_to_validated(component, &plan, &snapshot)
    }

    /// Pre-initializes the core module `module` in this runtime, as Wizer
    /// does (see [`ModuleOptions`](ModuleOptions)), blocking until
    /// done. With [`RuntimeBuilder::wasi`], init gets WASI preview1.
    pub fn initialize_module(&mut self, module: &[u8], options: &ModuleOptions) -> Result<Vec<u8>> {
        let parsed = module::parse::parse(module)?;
        let instrumented = module::instrument::instrument(module, &parsed, options)?;
        let snapshot = run::wasmtime::block_on(
            self.snapshot_module(&instrumented.module, &instrumented.plan),
        )??;
        module::rewrite::apply(module, &parsed, &instrumented.plan, &snapshot, options)
    }

    /// Phase 3 alone, blocking until done: [`crate::take_snapshot`].
    pub fn take_snapshot(&mut self, instrumented: &Instrumented) -> Result<Snapshot> {
        self.prepare_for(&instrumented.plan)?;
        run::wasmtime::block_on(take_snapshot(self, instrumented))?
    }
}
