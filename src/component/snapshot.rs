//! Phase 3, snapshot: run init in the instrumented component and read
//! every piece of state back through the accessors ([`take`]).

use anyhow::{Context, Result};
use std::time::{Duration, Instant};

use crate::edit::probe::{Fired, Probe};
use crate::plan::image::MemoryImage;
use crate::plan::{GlobalValue, Plan, ScalarType, Snapshot, State, Value};
use crate::run::{Runtime, check_chunk};

/// Bytes read from a memory per accessor call. Wasmtime bounds how much one
/// host call may copy; reading in chunks keeps memories of any size (up to
/// the 32-bit and 64-bit limits) readable.
pub const CHUNK: u32 = 16 << 20;

/// Reads the state `plan` lists from an instantiated and initialized
/// component.
pub async fn read<R: Runtime>(runtime: &mut R, plan: &Plan) -> Result<Snapshot> {
    let mut values = Vec::with_capacity(plan.accessors.len());
    for accessor in &plan.accessors {
        let value = match accessor.state {
            State::Memory { .. } | State::Table { .. } | State::RefGlobal { .. } => {
                let mut memory = MemoryImage::new();
                loop {
                    let n = runtime
                        .read_memory_into(
                            &plan.interface,
                            &accessor.func,
                            memory.len(),
                            CHUNK,
                            &mut memory,
                        )
                        .await
                        .with_context(|| format!("failed to call accessor `{}`", accessor.func))?;
                    // A chunk may be short (the first bytes come in a short
                    // chunk); the end is the first empty one.
                    if n == 0 {
                        break;
                    }
                    check_chunk(&accessor.func, n, CHUNK)?;
                }
                Value::Memory(memory)
            }
            State::Global { .. } | State::Probe { .. } => Value::Global(
                runtime
                    .read_global(
                        &plan.interface,
                        &accessor.func,
                        accessor
                            .state
                            .global()
                            .map_or(ScalarType::I32, |(_, ty)| ty),
                    )
                    .await
                    .with_context(|| format!("failed to call accessor `{}`", accessor.func))?,
            ),
        };
        values.push(value);
    }
    let snapshot = Snapshot { values };
    plan.check_snapshot(&snapshot)?;
    Ok(snapshot)
}

/// Reads the probes that record unsnapshottable instructions right after
/// instantiation, before init: one that already fired ran in a start
/// function (or code it called), which the output drops, so the effect
/// (a table or GC write) would be lost. Call it between
/// [`Runtime::instantiate`] and [`Runtime::call_init`].
pub async fn check_instantiation<R: Runtime>(runtime: &mut R, plan: &Plan) -> Result<()> {
    for accessor in &plan.accessors {
        let State::Probe {
            probe: Probe::Unsnapshottable,
            ..
        } = accessor.state
        else {
            continue;
        };
        let value = runtime
            .read_global(&plan.interface, &accessor.func, ScalarType::I32)
            .await
            .with_context(|| format!("failed to call accessor `{}`", accessor.func))?;
        let GlobalValue::I32(value) = value else {
            continue;
        };
        if let Some(fired) = Fired::decode(value) {
            return Err(fired.during_instantiation(accessor.module, accessor.instance));
        }
    }
    Ok(())
}

/// What [`take`] reports after each step, with the time it took.
// Only the command line reads the reports.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) enum Step<'a> {
    /// The instrumented component is instantiated, and no unsnapshottable
    /// instruction ran while it was.
    Instantiated(Duration),
    /// Init returned, successfully or not (the error follows).
    InitReturned { took: Duration, ok: bool },
    /// The snapshot is read.
    Read(Duration, &'a Snapshot),
}

/// The one sequence that takes a snapshot, for the library, the command
/// line and the split pipeline alike: instantiate the instrumented
/// component, check that instantiation changed nothing a snapshot cannot
/// carry, call init, read the state. `report` sees each step and the
/// runtime after it (the command line logs there).
pub(crate) async fn take<R: Runtime>(
    runtime: &mut R,
    instrumented: &[u8],
    plan: &Plan,
    mut report: impl FnMut(Step<'_>, &R),
) -> Result<Snapshot> {
    let start = Instant::now();
    runtime
        .instantiate(instrumented)
        .await
        .context("failed to instantiate the component")?;
    check_instantiation(runtime, plan).await?;
    report(Step::Instantiated(start.elapsed()), runtime);

    let start = Instant::now();
    let result = runtime.call_init(&plan.init).await;
    report(
        Step::InitReturned {
            took: start.elapsed(),
            ok: result.is_ok(),
        },
        runtime,
    );
    result.with_context(|| format!("init function `{}` failed", plan.init))?;

    let start = Instant::now();
    let snapshot = read(runtime, plan).await?;
    report(Step::Read(start.elapsed(), &snapshot), runtime);
    Ok(snapshot)
}
