//! The guest's stdout and stderr: counted, then discarded or shown.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// How much of a discarded stderr is kept, to explain a failing init.
const STDERR_TAIL: usize = 4096;

#[derive(Clone, Copy)]
pub(super) enum Sink {
    Discard,
    Stdout,
    Stderr,
}

/// The guest's stdout or stderr: counted, then discarded (keeping the last
/// bytes in `tail`, if any) or shown.
pub(super) struct CountingOutput {
    pub(super) sink: Sink,
    pub(super) bytes: Arc<AtomicU64>,
    pub(super) tail: Option<Arc<Mutex<Vec<u8>>>>,
}

impl IsTerminal for CountingOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CountingOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        let inner: Pin<Box<dyn AsyncWrite + Send + Sync>> = match self.sink {
            Sink::Discard => Box::pin(tokio::io::sink()),
            Sink::Stdout => Box::pin(tokio::io::stdout()),
            Sink::Stderr => Box::pin(tokio::io::stderr()),
        };
        Box::new(CountingWriter {
            inner,
            bytes: self.bytes.clone(),
            tail: self.tail.clone(),
        })
    }
}

struct CountingWriter {
    inner: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    bytes: Arc<AtomicU64>,
    tail: Option<Arc<Mutex<Vec<u8>>>>,
}

impl AsyncWrite for CountingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = self.inner.as_mut().poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.bytes.fetch_add(*n as u64, Ordering::SeqCst);
            if let Some(Ok(mut tail)) = self.tail.as_ref().map(|t| t.lock()) {
                tail.extend_from_slice(&buf[..*n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL);
                tail.drain(..excess);
            }
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}
