//! The host resources init left open, which a snapshot cannot carry: what
//! they are, and the error that names them.

use std::any::Any;
use std::collections::BTreeMap;

/// The kinds of resource that WASI preview1 makes for itself at its first
/// call.
pub(super) const INPUT_STREAM: &str = "input stream (stdin, or a file read through a stream)";
pub(super) const OUTPUT_STREAM: &str =
    "output stream (stdout, stderr, or a file written through a stream)";
pub(super) const DIRECTORY: &str = "directory handle (a preopen, or an opened directory)";

pub(super) fn resource_kind(entry: &mut (dyn Any + Send)) -> &'static str {
    use wasmtime_wasi::filesystem::Descriptor;
    use wasmtime_wasi::p2;
    let entry: &(dyn Any + Send) = entry;
    if let Some(descriptor) = entry.downcast_ref::<Descriptor>() {
        return match descriptor {
            Descriptor::File(_) => "open file",
            Descriptor::Dir(_) => DIRECTORY,
        };
    }
    if entry.is::<p2::DynInputStream>() {
        INPUT_STREAM
    } else if entry.is::<p2::DynOutputStream>() {
        OUTPUT_STREAM
    } else if entry.is::<p2::DynPollable>() {
        "pollable"
    } else if entry.is::<p2::ReaddirIterator>() {
        "directory-entry stream"
    } else if entry.is::<p2::IoError>() {
        "wasi:io error"
    } else if entry.is::<p2::TcpSocket>()
        || entry.is::<p2::UdpSocket>()
        || entry.is::<p2::Network>()
    {
        "socket or network handle"
    } else {
        "other host resource"
    }
}

/// The error for resources left open after init.
pub(crate) fn open_resources_error(open: &BTreeMap<String, usize>) -> anyhow::Error {
    anyhow::anyhow!(
        "init left WASI resources open, which a snapshot cannot carry (the guest's handles to \
         them would dangle in every instance started from it): {}; release them before init \
         returns (drop open files, streams and directory handles; with wasi-libc or Rust std, \
         call `__wasilibc_reset_preopens()` to close the preopened directories it caches), or \
         pass `--allow-open-resources` (`WasiOptions::allow_open_resources`) to snapshot anyway",
        describe_resources(open)
    )
}

/// `2 open files, 1 pollable`.
pub fn describe_resources(open: &BTreeMap<String, usize>) -> String {
    open.iter()
        .map(|(kind, n)| format!("{n} × {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}
