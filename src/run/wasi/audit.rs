//! What init used of the host through WASI ([`Audit`], [`Call`],
//! [`Category`], [`AuditEntry`]), and the audit made from a recording.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use super::trace::Recorder;
use super::{Host, WasiOptions};

/// What the init function took from the host through WASI: every WASI host
/// function it called (with the paths it named), the bytes it wrote to
/// stdout and stderr, and what was granted to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    calls: BTreeMap<String, Call>,
    stdout_bytes: u64,
    stderr_bytes: u64,
    environment: Vec<String>,
    preopens: Vec<String>,
    stdio_shown: bool,
    open_resources: BTreeMap<String, usize>,
    /// Under `--reproducible`: how far init advanced the monotonic clock
    /// (ns), by reading it and sleeping.
    fixed_monotonic: Option<u64>,
}

/// The calls of one WASI host function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// How many times init called it.
    pub count: u64,
    /// The paths it was given (filesystem functions; at most
    /// [`Call::MAX_PATHS`] distinct ones), as Rust debug strings.
    pub paths: BTreeSet<String>,
}

impl Call {
    /// How many distinct paths a [`Call`] keeps.
    pub const MAX_PATHS: usize = 32;
}

/// A kind of WASI use, as the audit summary groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// `wasi:random`.
    Random,
    /// `wasi:clocks`.
    Clocks,
    /// `wasi:cli/environment` (variables, arguments, working directory).
    Environment,
    /// `wasi:filesystem`.
    Filesystem,
    /// `wasi:cli` stdin, stdout, stderr and terminals.
    Stdio,
    /// `wasi:io` streams and polls.
    Io,
    /// `wasi:cli/exit`.
    Exit,
    /// `wasi:sockets`.
    Sockets,
    /// Anything else.
    Other,
}

impl Category {
    /// Whether the values init got are now the same in every instance
    /// started from the snapshot, where a fresh instance would have got new
    /// ones: randomness and clocks.
    pub fn is_frozen(self) -> bool {
        matches!(self, Category::Random | Category::Clocks)
    }

    /// The category of a function named `wasi:PKG/IFACE#FUNC`, or
    /// `wasi_snapshot_preview1#FUNC`.
    pub fn of(func: &str) -> Category {
        let (interface, name) = func.split_once('#').unwrap_or((func, ""));
        if interface == "wasi_snapshot_preview1" {
            return Category::of_preview1(name);
        }
        match interface {
            "wasi:cli/environment" => Category::Environment,
            "wasi:cli/exit" => Category::Exit,
            _ if interface.starts_with("wasi:random/") => Category::Random,
            _ if interface.starts_with("wasi:clocks/") => Category::Clocks,
            _ if interface.starts_with("wasi:filesystem/") => Category::Filesystem,
            _ if interface.starts_with("wasi:cli/") => Category::Stdio,
            _ if interface.starts_with("wasi:io/") => Category::Io,
            _ if interface.starts_with("wasi:sockets/") => Category::Sockets,
            _ => Category::Other,
        }
    }
}

impl Category {
    /// The category of WASI preview1's function `name`.
    fn of_preview1(name: &str) -> Category {
        match name {
            "random_get" => Category::Random,
            "environ_get" | "environ_sizes_get" | "args_get" | "args_sizes_get" => {
                Category::Environment
            }
            "proc_exit" | "proc_raise" => Category::Exit,
            "poll_oneoff" | "sched_yield" => Category::Io,
            _ if name.starts_with("clock_") => Category::Clocks,
            _ if name.starts_with("fd_") || name.starts_with("path_") => Category::Filesystem,
            _ if name.starts_with("sock_") => Category::Sockets,
            _ => Category::Other,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Category::Random => "randomness",
            Category::Clocks => "clocks",
            Category::Environment => "the environment",
            Category::Filesystem => "the filesystem",
            Category::Stdio => "stdio",
            Category::Io => "wasi:io streams and polls",
            Category::Exit => "exit",
            Category::Sockets => "sockets",
            Category::Other => "other WASI functions",
        })
    }
}

/// One line of an audit summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// What kind of use it reports.
    pub category: Category,
    /// The report.
    pub message: String,
}

impl Audit {
    /// Every WASI host function init called, as `wasi:PKG/IFACE#FUNC`
    /// (resource methods as `wasi:PKG/IFACE#[method]RESOURCE.FUNC`).
    pub fn calls(&self) -> impl Iterator<Item = (&str, &Call)> {
        self.calls.iter().map(|(name, call)| (name.as_str(), call))
    }

    /// How many times init called `func` (named as in [`Audit::calls`]).
    pub fn count(&self, func: &str) -> u64 {
        self.calls.get(func).map_or(0, |c| c.count)
    }

    /// Whether init called any WASI function of `category`.
    pub fn used(&self, category: Category) -> bool {
        self.calls.keys().any(|f| Category::of(f) == category)
    }

    /// Whether init called no WASI function at all.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Bytes init wrote to its stdout.
    pub fn stdout_bytes(&self) -> u64 {
        self.stdout_bytes
    }

    /// Bytes init wrote to its stderr.
    pub fn stderr_bytes(&self) -> u64 {
        self.stderr_bytes
    }

    /// Host resources init left open, by kind (only when they were allowed;
    /// otherwise init failed).
    pub fn open_resources(&self) -> &BTreeMap<String, usize> {
        &self.open_resources
    }

    pub(crate) fn set_open_resources(&mut self, open: BTreeMap<String, usize>) {
        self.open_resources = open;
    }

    /// Whether init ran under `--reproducible` ([`WasiOptions::reproducible`]).
    pub fn reproducible(&self) -> bool {
        self.fixed_monotonic.is_some()
    }

    /// A summary, one entry per category of use; randomness and clocks come
    /// first (see [`Category::is_frozen`]).
    pub fn summary(&self) -> Vec<AuditEntry> {
        let mut by_category: BTreeMap<Category, Vec<(&str, &Call)>> = BTreeMap::new();
        for (name, call) in &self.calls {
            by_category
                .entry(Category::of(name))
                .or_default()
                .push((name, call));
        }
        let mut entries = Vec::new();
        for (category, calls) in by_category {
            let mut message = format!("init used {category}: {}", list_calls(&calls));
            match category {
                Category::Random if self.fixed_monotonic.is_some() => message.push_str(
                    "; from the seeded generator of `--reproducible`: the same values every run, \
                     frozen into every instance started from the snapshot",
                ),
                Category::Clocks if self.fixed_monotonic.is_some() => {
                    let _ = write!(
                        message,
                        "; fixed by `--reproducible`: the wall clock read the fixed time, the \
                         monotonic clock went from 0 to {} ns",
                        self.fixed_monotonic.unwrap_or_default()
                    );
                }
                Category::Random => message.push_str(
                    "; the random values it got are now frozen into every instance started from \
                     the snapshot (hash-map seeds, ids, keys), and differ from run to run: \
                     re-seed after startup where that matters, and pass `--reproducible` for \
                     the same output every run",
                ),
                Category::Clocks => message.push_str(
                    "; the times it saw are now frozen into every instance started from the \
                     snapshot, and differ from run to run: read the clock again after startup \
                     where that matters, and pass `--reproducible` for the same output every run",
                ),
                Category::Environment => {
                    if self.environment.is_empty() {
                        message.push_str("; no variables were granted");
                    } else {
                        let _ = write!(message, "; granted: {}", self.environment.join(", "));
                    }
                }
                Category::Filesystem => {
                    if self.preopens.is_empty() {
                        message.push_str("; no directories were granted");
                    } else {
                        let _ = write!(message, "; preopened: {}", self.preopens.join(", "));
                    }
                }
                Category::Stdio => {
                    let _ = write!(
                        message,
                        "; wrote {} bytes to stdout and {} to stderr ({})",
                        self.stdout_bytes,
                        self.stderr_bytes,
                        if self.stdio_shown {
                            "shown"
                        } else {
                            "discarded"
                        }
                    );
                }
                _ => {}
            }
            entries.push(AuditEntry { category, message });
        }
        entries
    }
}

fn list_calls(calls: &[(&str, &Call)]) -> String {
    calls
        .iter()
        .map(|(name, call)| {
            let mut s = format!(
                "{name} ({} call{}",
                call.count,
                if call.count == 1 { "" } else { "s" }
            );
            if !call.paths.is_empty() {
                let paths: Vec<&str> = call.paths.iter().map(String::as_str).collect();
                let _ = write!(s, ": {}", paths.join(", "));
            }
            s.push(')');
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Recorder {
    /// The audit of what was recorded, with what the host granted and the
    /// guest wrote.
    pub(crate) fn audit(&self, options: &WasiOptions, host: &Host) -> Audit {
        let calls = self.0.lock().map(|s| s.calls.clone()).unwrap_or_default();
        let (stdout_bytes, stderr_bytes) = host.output_bytes();
        Audit {
            calls,
            stdout_bytes,
            stderr_bytes,
            environment: options.environment().into_iter().map(|(k, _)| k).collect(),
            preopens: options
                .dirs
                .iter()
                .map(|d| format!("{} (host `{}`)", d.guest, d.host.display()))
                .collect(),
            stdio_shown: options.inherit_stdio,
            open_resources: BTreeMap::new(),
            fixed_monotonic: options
                .reproducible
                .as_ref()
                .map(|_| host.fixed.monotonic.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(
            Category::of("wasi:random/insecure-seed#insecure-seed"),
            Category::Random
        );
        assert_eq!(
            Category::of("wasi:cli/environment#get-environment"),
            Category::Environment
        );
        assert_eq!(Category::of("wasi:cli/stdout#get-stdout"), Category::Stdio);
    }
}
