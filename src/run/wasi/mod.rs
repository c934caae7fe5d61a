//! WASI during init, opt-in: what the init function may see of the host
//! ([`WasiOptions`]), what it used ([`Audit`]), and the check that it left
//! nothing open that a snapshot cannot carry.
//!
//! Without WASI every import traps when called. With it, init gets WASI 0.2 and 0.3
//! from `wasmtime-wasi`, with nothing of the host visible unless granted: no
//! environment variables, no directories, an empty stdin, and stdout and
//! stderr discarded (counted). Randomness and clocks are the host's; the
//! [`Audit`] says when init read them, since whatever it got is frozen into
//! every instance started from the snapshot.

mod audit;
mod host;
mod options;
mod resources;
mod stdio;
mod trace;

pub use audit::{Audit, AuditEntry, Call, Category};
pub(crate) use host::Host;
#[cfg(feature = "cli")]
pub use options::parse_env;
pub use options::{PreopenDir, WasiOptions};
pub use resources::describe_resources;
pub(crate) use resources::open_resources_error;
pub(crate) use trace::Recorder;
