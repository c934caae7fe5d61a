//! Phase 3, snapshot: read every piece of state through the accessors.

use anyhow::{Context, Result, bail};

use crate::image::MemoryImage;
use crate::plan::{GlobalValue, Plan, ScalarType, Snapshot, State, Value};
use crate::probe::{self, Probe};
use crate::runtime::{Runtime, check_chunk};

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
            State::Memory { .. } => {
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
        if let Some((op, what, func)) = probe::decode_unsnapshottable(value) {
            bail!(
                "`{op}` ran while core instance {} (core module {}) was instantiated, in its \
                 function {func}, before init; {what} cannot be snapshotted and the output drops \
                 start functions, so instantiation must not change them",
                accessor.instance,
                accessor.module
            );
        }
    }
    Ok(())
}
