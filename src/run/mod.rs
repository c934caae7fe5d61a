//! The seam between this crate and whatever runs the instrumented component.

pub mod limits;
#[cfg(feature = "wasmtime")]
pub mod reproducible;
#[cfg(feature = "wasmtime")]
pub mod wasi;
#[cfg(feature = "wasmtime")]
pub mod wasmtime;
#[cfg(feature = "wasmtime")]
pub mod wave;

use anyhow::Result;

use crate::plan::image::MemoryImage;
use crate::plan::init_func::InitFunc;
use crate::plan::{GlobalValue, ScalarType};

/// Runs an instrumented component: instantiates it, calls its init function,
/// then calls accessors by name. Implement this to pre-initialize with a
/// runtime other than Wasmtime (the crate's `wasmtime` feature ships one).
///
/// Every method returns `Result`: a trap while reading state is an error,
/// never a panic.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    /// Instantiates the instrumented `component`.
    async fn instantiate(&mut self, component: &[u8]) -> Result<()>;

    /// Calls the init function (it takes no parameters; results are ignored).
    async fn call_init(&mut self, init: &InitFunc) -> Result<()>;

    /// Calls `interface#func`, a `func(offset: u64, len: u32) -> list<u8>`.
    async fn read_memory(
        &mut self,
        interface: &str,
        func: &str,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>>;

    /// Calls `interface#func` as [`Runtime::read_memory`] does and appends
    /// the bytes it returns to `memory`, failing if there are more than
    /// `len`; returns how many there were.
    ///
    /// The default goes through [`Runtime::read_memory`]. A runtime that can
    /// see the returned list in the guest's memory overrides it and appends
    /// from there, so that the host keeps only the non-zero runs and
    /// allocates nothing per chunk.
    async fn read_memory_into(
        &mut self,
        interface: &str,
        func: &str,
        offset: u64,
        len: u32,
        memory: &mut MemoryImage,
    ) -> Result<usize> {
        let chunk = self.read_memory(interface, func, offset, len).await?;
        check_chunk(func, chunk.len(), len)?;
        memory.push(&chunk);
        Ok(chunk.len())
    }

    /// Calls `interface#func`, a `func() -> s32|s64|f32|f64|tuple<u64, u64>`
    /// as `ty` says (the tuple holds a `v128`: low 64 bits, then high).
    async fn read_global(
        &mut self,
        interface: &str,
        func: &str,
        ty: ScalarType,
    ) -> Result<GlobalValue>;
}

/// Fails if accessor `func` returned `got` bytes when at most `len` were
/// asked for.
pub fn check_chunk(func: &str, got: usize, len: u32) -> Result<()> {
    if got > len as usize {
        anyhow::bail!("accessor `{func}` returned {got} bytes, more than the {len} asked for");
    }
    Ok(())
}
