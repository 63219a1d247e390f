//! The runtime rule, enforced in one place: every future of the binding API runs on the client
//! core's runtime ([`syros_client::runtime`]) and callers only wait for its `JoinHandle`.
//!
//! A host's executor (asyncio through pyo3-async-runtimes, napi's tokio, a JVM thread, a Go
//! goroutine blocked in cgo) therefore never polls core futures itself; it awaits a [`CoreTask`]
//! or blocks on it ([`CoreTask::wait_blocking`]). The runtime is created lazily, rebuilt in a
//! forked child, and shut down with [`shutdown`] (hosts call it at exit or dispose).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{ErrorRecord, Result};

/// A future running on the core runtime. Awaiting it from any executor waits for the result;
/// dropping it before it finished cancels the work (as dropping a Rust future would).
#[must_use = "a CoreTask is cancelled when dropped"]
pub struct CoreTask<T> {
    handle: Option<JoinHandle<Result<T>>>,
    startup: Option<ErrorRecord>,
}

impl<T: Send + 'static> CoreTask<T> {
    /// Stop the work now (a pending await then yields `cancelled`).
    pub fn abort(&self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }

    /// Let the work run to its end with nobody waiting for it (dropping a `CoreTask` would
    /// cancel it).
    pub fn detach(mut self) {
        self.handle.take();
    }

    /// Whether the work has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Block the calling thread until the work finishes, or `limit` passes (`None`: no limit).
    /// Returns `None` when the time passed; the work goes on and can be waited for again. For
    /// synchronous host APIs that must look up now and then (e.g. Python's Ctrl-C). Must not be
    /// called on a thread that is running an async executor.
    pub fn wait_blocking(&mut self, limit: Option<Duration>) -> Option<Result<T>> {
        if let Some(err) = self.startup.take() {
            return Some(Err(err));
        }
        let handle = match syros_client::runtime::try_runtime() {
            Ok(handle) => handle,
            Err(err) => return Some(Err(runtime_unavailable(err))),
        };
        handle.block_on(async {
            match limit {
                Some(limit) => tokio::time::timeout(limit, &mut *self).await.ok(),
                None => Some((&mut *self).await),
            }
        })
    }
}

impl<T> Future for CoreTask<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if let Some(err) = self.startup.take() {
            return Poll::Ready(Err(err));
        }
        let Some(handle) = self.handle.as_mut() else {
            return Poll::Ready(Err(ErrorRecord::internal(
                "a finished task was polled again",
            )));
        };
        match Pin::new(handle).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(joined) => {
                self.handle = None;
                Poll::Ready(match joined {
                    Ok(result) => result,
                    Err(err) if err.is_panic() => Err(ErrorRecord::internal(format!(
                        "a syros client task panicked: {}",
                        panic_message(err.into_panic())
                    ))),
                    Err(_) => Err(ErrorRecord::cancelled(
                        "the call was cancelled (or the syros client runtime was shut down)",
                    )),
                })
            }
        }
    }
}

impl<T> Drop for CoreTask<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

fn runtime_unavailable(err: std::io::Error) -> ErrorRecord {
    ErrorRecord::internal(format!("cannot start the syros client runtime: {err}"))
}

impl<T> CoreTask<T> {
    /// A task that has already failed with `err` (a call refused before it started).
    pub fn failed(err: ErrorRecord) -> Self {
        CoreTask {
            handle: None,
            startup: Some(err),
        }
    }
}

/// A host-side "stop waiting" switch, for hosts that cannot drop a pending call (a JS Promise
/// with an `AbortSignal`, a Java `CompletableFuture.cancel`, a C# `CancellationToken`): a task
/// made [`CoreTask::cancel_on`] a token ends with `cancelled` once the token is cancelled, and
/// its work is aborted exactly as if the task had been dropped. Cancelling is idempotent and
/// sticky; one token can serve many tasks.
#[derive(Debug, Clone)]
pub struct CancelToken {
    cancelled: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        CancelToken {
            cancelled: std::sync::Arc::new(watch::Sender::new(false)),
        }
    }

    /// Cancel every task tied to this token (now and later).
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }
}

impl<T: Send + 'static> CoreTask<T> {
    /// The same work, ending with `cancelled` (the work aborted, as a drop would) as soon as
    /// `token` is cancelled; a result that is already there wins over a later cancel.
    pub fn cancel_on(self, token: &CancelToken) -> CoreTask<T> {
        if token.is_cancelled() {
            self.abort();
            return CoreTask::failed(cancelled_by_caller());
        }
        let cancelled = token.cancelled.subscribe();
        spawn(until_cancelled(self, cancelled))
    }

    /// Hand the result to `done` when the work ends — or, with `cancel`, when that token is
    /// cancelled first (the work is then aborted, as a drop would). For hosts that complete a
    /// promise, future or callback from any thread (the Node binding's `Deferred`, Java's
    /// `CompletableFuture`, the C ABI's callback): `done` runs on the core runtime's thread that
    /// saw the work end, with no executor of the host's own in between. A task that failed to
    /// start, or a token already cancelled, hands its error to `done` before `settle` returns.
    pub fn settle(
        mut self,
        cancel: Option<&CancelToken>,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        if let Some(err) = self.startup.take() {
            return done(Err(err));
        }
        let cancelled = match cancel {
            Some(token) if token.is_cancelled() => {
                self.abort();
                return done(Err(cancelled_by_caller()));
            }
            Some(token) => Some(token.cancelled.subscribe()),
            None => None,
        };
        spawn(async move {
            done(match cancelled {
                Some(cancelled) => until_cancelled(self, cancelled).await,
                None => self.await,
            });
            Ok(())
        })
        .detach();
    }
}

fn cancelled_by_caller() -> ErrorRecord {
    ErrorRecord::cancelled("the wait was cancelled by the caller")
}

/// `work`'s result, or `cancelled` once the token behind `cancelled` is cancelled (dropping
/// `work` then aborts it).
async fn until_cancelled<T: Send + 'static>(
    work: CoreTask<T>,
    mut cancelled: watch::Receiver<bool>,
) -> Result<T> {
    tokio::select! {
        biased;
        result = work => result,
        _ = async {
            // Every token dropped uncancelled: nobody can cancel any more.
            if cancelled.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        } => Err(cancelled_by_caller()),
    }
}

/// Run `future` on the core runtime.
pub fn spawn<F, T>(future: F) -> CoreTask<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match syros_client::runtime::try_runtime() {
        Ok(handle) => CoreTask {
            // The host's trace context of this call (crate::trace), if it gave one.
            handle: Some(handle.spawn(syros_client::trace::scope(
                crate::trace::host_context(),
                future,
            ))),
            startup: None,
        },
        Err(err) => CoreTask {
            handle: None,
            startup: Some(runtime_unavailable(err)),
        },
    }
}

/// Run the blocking function `work` on the core runtime's blocking pool (never on its async
/// workers), for host code that must not run on, or hold a host lock on, those workers: e.g.
/// handing a result to a host's event loop while holding its interpreter lock.
pub fn spawn_blocking<F, T>(work: F) -> CoreTask<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match syros_client::runtime::try_runtime() {
        // A blocking task's JoinHandle is a CoreTask's like any other (aborting it only stops
        // work that has not started yet).
        Ok(handle) => CoreTask {
            handle: Some(handle.spawn_blocking(work)),
            startup: None,
        },
        Err(err) => CoreTask::failed(runtime_unavailable(err)),
    }
}

/// Whether the core runtime exists in this process now (it is created by the first call, and a
/// forked child starts without one).
pub fn is_running() -> bool {
    syros_client::runtime::is_running()
}

/// Run `future` on the core runtime and block until it is done (for hosts without async).
pub fn block_on<F, T>(future: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match spawn(future).wait_blocking(None) {
        Some(result) => result,
        None => Err(ErrorRecord::internal("an unlimited wait returned early")),
    }
}

/// Stop the core runtime (background renewals, subscriptions and workers end; pending calls
/// fail with `cancelled`), waiting up to `timeout_ms` for its tasks. The next call starts a new
/// one. Hosts call this at exit: a live runtime thread can keep a JVM or Mono from exiting.
pub fn shutdown(timeout_ms: u64) {
    syros_client::runtime::shutdown_timeout(Duration::from_millis(timeout_ms));
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_string()
    }
}
