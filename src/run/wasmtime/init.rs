//! Calling init and running the tasks it started to their end, and the
//! checks afterwards: nothing left that a snapshot cannot carry (async
//! component-model state, backpressure, handles in a handle table).

use anyhow::{Result, bail};
use std::task::Poll;
use wasmtime::Engine;
use wasmtime::Trap;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Func, Val};

use super::WasmtimeRuntime;
use super::idle::{IdleWatch, Stuck};
use crate::run::limits::ShowDuration;

impl WasmtimeRuntime {
    /// Calls init (sync or async-lifted) to its return, then runs the
    /// work it started and did not wait for (tasks it spawned) to the end:
    /// all of it bounded by the limits.
    pub(super) async fn run_init(
        &mut self,
        func: Func,
        args: &[Val],
        results: &mut [Val],
    ) -> Result<()> {
        // `call_async` drives the component model's event loop until init
        // returns (`task.return`), and fails if init can never return
        // (every task blocked, nothing pending in the host).
        let called = WasmtimeRuntime::bounded(
            self.expired.clone(),
            func.call_async(&mut self.store, args, results),
        )
        .await;
        called.map_err(|e| self.init_error(e))?;
        // Tasks that init spawned, or that returned before finishing their
        // work, run on until none is left, or until none can run (see
        // `idle`): every entry to and exit from wasm or host code counts as
        // progress.
        self.store.call_hook(|mut store, _| {
            store.data_mut().progress += 1;
            Ok(())
        });
        let watch = IdleWatch::default();
        let polled = watch.clone();
        let drain = self.store.run_concurrent(async move |accessor| {
            let mut last = None;
            std::future::poll_fn(|cx| {
                if accessor.poll_no_interesting_tasks(cx).is_ready() {
                    return Poll::Ready(());
                }
                let progress = accessor.with(|mut access| access.data_mut().progress);
                polled.polled(progress, &mut last);
                Poll::Pending
            })
            .await
        });
        let finished = WasmtimeRuntime::bounded(self.expired.clone(), watch.drive(drain)).await;
        match finished {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Stuck)) => {
                let left = self
                    .store
                    .concurrent_resource_table()
                    .map_or(0, |table| table.iter_mut().count());
                bail!(
                    "it returned, but tasks it started can never finish: each is waiting for \
                     something no task or host call will give (a stream or future nobody \
                     writes, a subtask that never returns), and nothing is pending in the \
                     host ({left} object(s) of the async component model left: tasks, \
                     streams, futures, waitable sets); end or await every task before init \
                     returns"
                )
            }
            Err(e) if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) => {
                let limit = self.limits.timeout.map(ShowDuration);
                bail!(
                    "it returned, but tasks it started were still pending when the timeout \
                     expired{} (`--timeout`): a task waiting for something that never \
                     arrives (a stream or future nobody writes, a subtask that never \
                     returns) cannot be snapshotted; end or await every task before \
                     init returns",
                    limit.map(|t| format!(" after {t}")).unwrap_or_default()
                )
            }
            Err(e) => Err(self
                .init_error(e)
                .context("it returned, but a task it started (or a subtask it left) failed")),
        }
    }

    /// The error for init failing with `e`: which limit ended it, an exit
    /// call, the end of its discarded stderr.
    pub(super) fn init_error(&self, e: wasmtime::Error) -> anyhow::Error {
        if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return anyhow::anyhow!(
                "it called `wasi:cli/exit#exit` with status {}; init must return instead",
                exit.0
            );
        }
        let e = self.explain(e);
        match self.store.data().last_stderr_lines() {
            Some(lines) if self.wasi.is_some() => anyhow::anyhow!(
                "{e:#} (the end of its stderr, which is discarded without \
                 `--inherit-stdio`: {lines})"
            ),
            _ => e,
        }
    }

    /// Fails if init left state of the async component model that a
    /// snapshot cannot carry: streams, futures, waitable sets, error
    /// contexts or tasks still alive (Wasmtime keeps them all in the
    /// store's concurrent table, which must be empty once every task has
    /// ended), or backpressure left on in the instance of `init`.
    pub(super) async fn check_async_state(&mut self, init: Func) -> Result<()> {
        let backpressure = self
            .store
            .run_concurrent(async |accessor| {
                std::future::poll_fn(|cx| {
                    Poll::Ready(
                        accessor
                            .poll_ready_for_concurrent_call(init, cx)
                            .is_pending(),
                    )
                })
                .await
            })
            .await?;
        if backpressure {
            bail!(
                "init left backpressure on (`backpressure.inc` without a matching \
                 `backpressure.dec`); instances started from a snapshot would start with \
                 it off: turn it off before init returns"
            );
        }
        let alive = self
            .store
            .concurrent_resource_table()
            .map_or(0, |table| table.iter_mut().count());
        if alive > 0 {
            bail!(
                "init left {alive} object(s) of the async component model alive (streams or \
                 futures with an open end, waitable sets, error contexts or subtasks not \
                 dropped); a snapshot cannot carry them: drop them before init returns"
            );
        }
        Ok(())
    }
    /// Fails if any component instance of the store (top level or nested,
    /// every instance of a component instantiated more than once) still
    /// holds a handle in its handle table after init: an `own` or `borrow`
    /// of a guest-defined resource (made with `resource.new`, or received
    /// from another instance), or anything the async checks above missed.
    /// A snapshot cannot carry a handle table: every instance started from
    /// it would start with an empty one, and trap on the first use
    /// (`unknown handle index`).
    ///
    /// Wasmtime 48 has no public view of a component instance's handle
    /// table; the one exact check it offers is the doc-hidden
    /// `Store::assert_concurrent_state_empty`, which panics when any table
    /// or queue of the store's component-model state is not empty. It is
    /// called with the panic caught (and its message kept off stderr).
    pub(super) fn check_handle_tables(&mut self) -> Result<()> {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let store = &mut self.store;
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.assert_concurrent_state_empty();
        }));
        std::panic::set_hook(quiet);
        let Err(panic) = checked else {
            return Ok(());
        };
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("handle_table") {
            bail!(
                "init left handles in a component instance's handle table (resources made \
                 with `resource.new`, or `own` handles received from another component); a \
                 snapshot cannot carry them, and instances started from it would trap on \
                 their first use (`unknown handle index`){}: drop every handle before init \
                 returns",
                self.resource_types_hint()
            );
        }
        bail!(
            "init left state of the component model that a snapshot cannot carry (pending \
             work in Wasmtime's event loop: {}): end every task and drop every handle before \
             init returns",
            message.lines().next().unwrap_or("a queue is not empty")
        )
    }

    /// `; resource types it exports: A, B` for the instantiated component,
    /// when it exports any: where such handles usually come from.
    fn resource_types_hint(&mut self) -> String {
        let mut names = Vec::new();
        if let Some(component) = &self.component {
            let ty = component.component_type();
            let mut exports = ty.exports(&self.engine).map(|(name, item)| (name, item.ty));
            collect_resources(&self.engine, None, &mut exports, &mut names);
        }
        if names.is_empty() {
            return String::new();
        }
        format!("; resource types it exports: {}", names.join(", "))
    }
}

/// The resources among `exports` (recursively, in exported instances), as
/// `INSTANCE#NAME` or `NAME`.
fn collect_resources(
    engine: &Engine,
    parent: Option<&str>,
    exports: &mut dyn Iterator<Item = (&str, ComponentItem)>,
    names: &mut Vec<String>,
) {
    for (name, item) in exports {
        match item {
            ComponentItem::Resource(_) => names.push(match parent {
                Some(parent) => format!("`{parent}#{name}`"),
                None => format!("`{name}`"),
            }),
            ComponentItem::ComponentInstance(instance) => {
                let mut exports = instance.exports(engine).map(|(name, item)| (name, item.ty));
                collect_resources(engine, Some(name), &mut exports, names);
            }
            _ => {}
        }
    }
}
