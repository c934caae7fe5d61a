//! The limits while init runs: the timeout's clock (epoch interruption for
//! wasm code, a watch channel for waits in host calls), lifting the limits
//! afterwards, and saying which limit ended init.

use std::pin::pin;
use std::sync::mpsc;
use std::task::Poll;
use tokio::sync::watch;
use wasmtime::Trap;

use super::{NO_DEADLINE, WasmtimeRuntime};
use crate::run::limits::ShowDuration;

impl WasmtimeRuntime {
    /// Starts the timeout's clock: from now on, wasm code running past the
    /// timeout traps (epoch interruption), and a wait in a host call past it
    /// is abandoned (see [`bounded`](WasmtimeRuntime::bounded)).
    pub(super) fn start_timer(&mut self) {
        let Some(timeout) = self.limits.timeout else {
            return;
        };
        self.store.set_epoch_deadline(1);
        self.store.epoch_deadline_trap();
        let (stop, stopped) = mpsc::channel::<()>();
        let (expire, expired) = watch::channel(false);
        let engine = self.engine.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(timeout) {
                engine.increment_epoch();
                expire.send_replace(true);
            }
        });
        self.timer = Some(stop);
        self.expired = Some(expired);
    }

    /// Runs `work` (instantiation or the init call) until it ends or the
    /// timeout expires, whichever comes first. Epoch interruption stops wasm
    /// code but not a host call that waits (a WASI sleep, a blocking read, a
    /// poll): when the timeout expires during one, `work` is dropped
    /// unfinished, which abandons the wait, and the result is the timeout
    /// error. The store must not run anything afterwards.
    pub(super) async fn bounded<T>(
        expired: Option<watch::Receiver<bool>>,
        work: impl Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        let Some(mut expired) = expired else {
            return work.await;
        };
        let mut work = pin!(work);
        let mut timeout = pin!(async move {
            // an error here means the timer ended without expiring
            if expired.wait_for(|expired| *expired).await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        std::future::poll_fn(|cx| {
            // the work first: wasm interrupted by the epoch reports as such
            if let Poll::Ready(result) = work.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            match timeout.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(wasmtime::Error::from(Trap::Interrupt))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Lifts the limits once init is done: reading the state back is this
    /// crate's code, and its memory does not count.
    pub(super) fn end_limits(&mut self) {
        self.timer = None;
        self.expired = None;
        self.store.set_epoch_deadline(NO_DEADLINE);
        if self.limits.fuel.is_some() {
            self.store.set_fuel(u64::MAX).ok();
        }
        self.store.data_mut().limiter.max = None;
    }

    /// Says which limit ended `e`, if one did.
    pub(super) fn explain(&self, e: wasmtime::Error) -> anyhow::Error {
        let e = anyhow::Error::from(e);
        let limit = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => self.limits.timeout.map(|t| {
                format!(
                    "timed out: still running after {} (`--timeout`)",
                    ShowDuration(t)
                )
            }),
            Some(Trap::OutOfFuel) => self
                .limits
                .fuel
                .map(|fuel| format!("ran out of fuel: used all of its {fuel} units (`--fuel`)")),
            _ => None,
        };
        match limit {
            Some(limit) => anyhow::anyhow!(limit),
            None => e,
        }
    }
}
