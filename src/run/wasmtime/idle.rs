//! Telling when the component model's event loop has gone idle after init
//! returned: no guest work left to run and nothing pending in the host,
//! while tasks remain. Those tasks can never finish (each waits for
//! something only another task or the host could give), so the snapshot is
//! refused at once rather than at the timeout.
//!
//! Wasmtime 48 detects this state for `call_async` (`Trap::AsyncDeadlock`)
//! but not for `run_concurrent`, which the tasks left after init must run
//! under. When the loop is idle, it polls the future it runs twice without
//! running anything in between (once as usual, once more after finding no
//! work and no host future), and then waits. So the future counts, through
//! a call hook, every entry to and exit from wasm and host code: two polls
//! within one poll of the loop with no such entry between them mean the
//! loop found nothing to do. A host future still pending (a sleep) wakes the
//! loop later; so the state must last a grace period with no wake-up before
//! it is reported.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// How long the loop must stay idle, with nothing waking it, to count as
/// stuck.
const GRACE: Duration = Duration::from_millis(250);

/// Every task left after init is stuck.
pub(super) struct Stuck;

/// Shared between the loop's driver ([`IdleWatch::drive`]) and the future
/// it runs ([`IdleWatch::polled`]).
#[derive(Clone, Default)]
pub(super) struct IdleWatch(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// Polls of the loop so far.
    loop_polls: AtomicU64,
    /// The future was polled twice in this poll of the loop with no
    /// progress between.
    idle: AtomicBool,
}

impl IdleWatch {
    /// Called on each poll of the future the loop runs, with the progress
    /// count (entries to and exits from wasm and host code so far) and the
    /// previous poll's `(loop poll, progress)`.
    pub(super) fn polled(&self, progress: u64, last: &mut Option<(u64, u64)>) {
        let now = (self.0.loop_polls.load(Ordering::SeqCst), progress);
        if *last == Some(now) {
            self.0.idle.store(true, Ordering::SeqCst);
        }
        *last = Some(now);
    }

    /// Drives the loop `drain` to its end, or to [`Stuck`] once it has been
    /// idle for [`GRACE`] with nothing waking it.
    pub(super) async fn drive<T>(
        &self,
        drain: impl Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<Result<T, Stuck>> {
        let mut drain = pin!(drain);
        let mut timer: Option<GraceTimer> = None;
        std::future::poll_fn(|cx| {
            if timer.as_ref().is_some_and(GraceTimer::expired) {
                return Poll::Ready(Ok(Err(Stuck)));
            }
            self.0.loop_polls.fetch_add(1, Ordering::SeqCst);
            self.0.idle.store(false, Ordering::SeqCst);
            if let Poll::Ready(result) = drain.as_mut().poll(cx) {
                return Poll::Ready(result.map(Ok));
            }
            match self.0.idle.load(Ordering::SeqCst) {
                true if timer.is_none() => timer = Some(GraceTimer::start(cx.waker().clone())),
                true => {}
                false => timer = None,
            }
            Poll::Pending
        })
        .await
    }
}

/// Wakes the loop's driver after [`GRACE`], unless dropped first.
struct GraceTimer {
    expired: Arc<AtomicBool>,
    /// Dropping it ends the timer's thread without waking anyone.
    _stop: mpsc::Sender<()>,
}

impl GraceTimer {
    fn start(waker: Waker) -> GraceTimer {
        let expired = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let flag = expired.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(GRACE) {
                flag.store(true, Ordering::SeqCst);
                waker.wake();
            }
        });
        GraceTimer {
            expired,
            _stop: stop,
        }
    }

    fn expired(&self) -> bool {
        self.expired.load(Ordering::SeqCst)
    }
}
