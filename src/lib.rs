//! Pre-initialize WebAssembly components.
//!
//! `component-init` runs a component's init function once, at build time, and
//! writes a new component whose memories and mutable globals already hold the
//! state that init left behind. It works in four phases, one module each:
//!
//! 1. [`parse`](mod@parse): validate the component and find every core
//!    instance and the mutable state (memories, mutable globals) its module
//!    defines;
//! 2. [`instrument`](mod@instrument): export that state through synthesized
//!    accessor functions, one exported instance whose WIT interface is
//!    checked against the synthesized WIT ([`wit`]);
//! 3. [`snapshot`]: a [`Runtime`] instantiates the instrumented component,
//!    calls the init function, and reads the state back through the
//!    accessors;
//! 4. [`rewrite`]: the original component is re-emitted with the snapshot
//!    baked in.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let input = std::fs::read("app.wasm")?;
//! let output = component_init::initialize_with_wasmtime(&input, &Default::default())?;
//! std::fs::write("app.init.wasm", output)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod codegen;
pub mod image;
pub mod init_func;
pub mod instrument;
pub mod limits;
mod module;
pub mod names;
pub mod parse;
pub mod plan;
pub mod probe;
#[cfg(feature = "wasmtime")]
pub mod reproducible;
pub mod retarget;
pub mod rewrite;
pub mod runtime;
mod segments;
pub mod snapshot;
pub mod transform;
#[cfg(feature = "wasmtime")]
pub mod wasi;
#[cfg(feature = "wasmtime")]
pub mod wasmtime_runtime;
#[cfg(feature = "wasmtime")]
mod wave;
pub mod wit;

#[cfg(feature = "cli")]
pub mod cli;

use anyhow::{Context, Result};

pub use image::MemoryImage;
pub use init_func::InitFunc;
pub use instrument::{InstrumentOptions, Instrumented, instrument};
pub use limits::Limits;
pub use plan::{GlobalValue, Plan, Snapshot, Value};
#[cfg(feature = "wasmtime")]
pub use reproducible::Reproducible;
pub use runtime::Runtime;
#[cfg(feature = "wasmtime")]
pub use wasi::{Audit, WasiOptions};
#[cfg(feature = "wasmtime")]
pub use wasmtime_runtime::WasmtimeRuntime;

impl Plan {
    /// Bakes `snapshot` into `original`, the component this plan was made
    /// for; see [`rewrite::apply`].
    pub fn apply(&self, original: &[u8], snapshot: &Snapshot) -> Result<Vec<u8>> {
        rewrite::apply(original, self, snapshot)
    }
}

/// Pre-initializes `component` with `runtime`: instrument, instantiate, call
/// init, read the state back, rewrite.
pub async fn initialize<R: Runtime>(
    component: &[u8],
    options: &InstrumentOptions,
    runtime: &mut R,
) -> Result<Vec<u8>> {
    let (plan, snapshot) = take_snapshot(component, options, runtime).await?;
    rewrite::apply_to_validated(component, &plan, &snapshot)
}

/// [`initialize`] up to the rewrite: instrument, instantiate, call init, read
/// the state back.
async fn take_snapshot<R: Runtime>(
    component: &[u8],
    options: &InstrumentOptions,
    runtime: &mut R,
) -> Result<(Plan, Snapshot)> {
    let Instrumented {
        component: instrumented,
        plan,
    } = instrument(component, options)?;
    runtime
        .instantiate(&instrumented)
        .await
        .context("failed to instantiate the component")?;
    snapshot::check_instantiation(runtime, &plan).await?;
    runtime
        .call_init(&plan.init)
        .await
        .with_context(|| format!("init function `{}` failed", plan.init))?;
    let snapshot = snapshot::read(runtime, &plan).await?;
    Ok((plan, snapshot))
}

/// Pre-initializes `component` with Wasmtime, blocking until done.
#[cfg(feature = "wasmtime")]
pub fn initialize_with_wasmtime(component: &[u8], options: &InstrumentOptions) -> Result<Vec<u8>> {
    let mut runtime = WasmtimeRuntime::new()?;
    let (plan, snapshot) =
        wasmtime_runtime::block_on(take_snapshot(component, options, &mut runtime))??;
    // The guest's memory goes before the rewrite, which needs room for the
    // output: the two are not held at once.
    drop(runtime);
    rewrite::apply_to_validated(component, &plan, &snapshot)
}
