//! The `tracing` subscriber ([`Recorder`]) that records the WASI host
//! calls of one init run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::Call;

/// Records the WASI host calls of one init run. Every WASI 0.2 and 0.3 host function
/// of `wasmtime-wasi` opens a `tracing` span named `wit-bindgen import`
/// (fields `module` and `function`) and emits a `call` event with its
/// arguments inside it; this subscriber counts the spans and keeps the
/// `path` arguments.
#[derive(Clone, Default)]
pub(crate) struct Recorder(pub(super) Arc<Mutex<RecorderState>>);

#[derive(Default)]
pub(super) struct RecorderState {
    next_id: u64,
    /// Open spans: the function each is for, and how many handles it has.
    spans: HashMap<u64, (String, usize)>,
    /// Entered spans, innermost last.
    stack: Vec<u64>,
    pub(super) calls: BTreeMap<String, Call>,
}

const SPAN_NAME: &str = "wit-bindgen import";
/// The span WASI preview1's host functions open (fields `module`, which is
/// `wasi_snapshot_preview1`, and `function`).
const P1_SPAN_NAME: &str = "wiggle abi";

/// `wasmtime-wasi` names the interface only (`environment`); the package
/// follows from it.
fn qualify(interface: &str) -> String {
    let package = match interface {
        "environment" | "exit" | "run" | "stdin" | "stdout" | "stderr" | "terminal-input"
        | "terminal-output" | "terminal-stdin" | "terminal-stdout" | "terminal-stderr" => "cli",
        "wall-clock" | "monotonic-clock" | "system-clock" | "timezone" => "clocks",
        "random" | "insecure" | "insecure-seed" => "random",
        "types" | "preopens" => "filesystem",
        "streams" | "poll" | "error" => "io",
        "network" | "instance-network" | "tcp" | "udp" | "tcp-create-socket"
        | "udp-create-socket" | "ip-name-lookup" => "sockets",
        _ => return interface.to_string(),
    };
    format!("wasi:{package}/{interface}")
}

#[derive(Default)]
struct SpanFields {
    module: Option<String>,
    function: Option<String>,
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "module" => self.module = Some(value.to_string()),
            "function" => self.function = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, format!("{value:?}").trim_matches('"'));
    }
}

struct PathFields<'a>(&'a mut BTreeSet<String>);

impl Visit for PathFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "path" | "old_path" | "new_path")
            && self.0.len() < Call::MAX_PATHS
        {
            self.0.insert(format!("{value:?}"));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if metadata.is_span() {
            metadata.name() == SPAN_NAME || metadata.name() == P1_SPAN_NAME
        } else {
            metadata.target().starts_with("wasmtime_wasi")
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = SpanFields::default();
        span.record(&mut fields);
        let name = format!(
            "{}#{}",
            qualify(fields.module.as_deref().unwrap_or("<unknown>")),
            fields.function.as_deref().unwrap_or("<unknown>")
        );
        let Ok(mut state) = self.0.lock() else {
            return Id::from_u64(u64::MAX);
        };
        state.calls.entry(name.clone()).or_default().count += 1;
        state.next_id += 1;
        let id = state.next_id;
        state.spans.insert(id, (name, 1));
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        let state = &mut *state;
        let Some(name) = state
            .stack
            .last()
            .and_then(|id| state.spans.get(id))
            .map(|(name, _)| name)
        else {
            return;
        };
        if let Some(call) = state.calls.get_mut(name) {
            event.record(&mut PathFields(&mut call.paths));
        }
    }

    fn enter(&self, span: &Id) {
        if let Ok(mut state) = self.0.lock() {
            state.stack.push(span.into_u64());
        }
    }

    fn exit(&self, span: &Id) {
        if let Ok(mut state) = self.0.lock()
            && let Some(at) = state.stack.iter().rposition(|id| *id == span.into_u64())
        {
            state.stack.remove(at);
        }
    }

    fn clone_span(&self, span: &Id) -> Id {
        if let Ok(mut state) = self.0.lock()
            && let Some((_, refs)) = state.spans.get_mut(&span.into_u64())
        {
            *refs += 1;
        }
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        let Ok(mut state) = self.0.lock() else {
            return false;
        };
        let id = span.into_u64();
        let Some((_, refs)) = state.spans.get_mut(&id) else {
            return false;
        };
        *refs -= 1;
        if *refs == 0 {
            state.spans.remove(&id);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifies() {
        assert_eq!(qualify("types"), "wasi:filesystem/types");
        assert_eq!(qualify("custom"), "custom");
    }
}
