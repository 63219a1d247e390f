//! The runtime rule, enforced in one place: every future of the binding API runs on the client
//! core's runtime ([`syros_client::runtime`]) and callers only wait for its result.
//!
//! A host's executor (asyncio through pyo3-async-runtimes, napi's tokio, a JVM thread, a Go
//! goroutine blocked in cgo) therefore never polls core futures itself; it awaits a [`CoreTask`]
//! or blocks on it ([`CoreTask::wait_blocking`]), or has the core runtime hand the result over
//! ([`CoreTask::settle`]: the work and the hand-over in one core task). The runtime is created
//! lazily, rebuilt in a forked child, and shut down with [`shutdown`] (hosts call it at exit or dispose).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{ErrorRecord, Result};

/// Work for the core runtime. Awaiting it from any executor waits for the result; dropping it
/// before it finished cancels the work (as dropping a Rust future would).
///
/// The work starts when the task is first awaited, waited for ([`Self::wait_blocking`]),
/// settled ([`Self::settle`]), detached or [`Self::started`], and then runs in ONE core task:
/// settling spawns the work and the hand-over together, so a call completes in the task that
/// ran it (no second task awaiting the first's `JoinHandle`). A task dropped before it started
/// never runs.
#[must_use = "a CoreTask is cancelled when dropped"]
pub struct CoreTask<T> {
    // A lock only for `abort(&self)` from another thread; polling uses `get_mut` (no locking).
    state: std::sync::Mutex<State<T>>,
}

/// A boxed, not yet started piece of work (already in the host's trace context).
type Work<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

enum State<T> {
    /// Not started: the work and the runtime it is to run on.
    Ready(Work<T>, tokio::runtime::Handle),
    /// Running in a task of its own.
    Running(JoinHandle<Result<T>>),
    /// Refused before it started (or the runtime could not start).
    Failed(ErrorRecord),
    /// Aborted before it started.
    Aborted,
    /// Its result was taken.
    Taken,
}

impl<T> CoreTask<T> {
    fn with(state: State<T>) -> Self {
        CoreTask {
            state: std::sync::Mutex::new(state),
        }
    }

    fn state_mut(&mut self) -> &mut State<T> {
        self.state.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    fn take_state(&mut self) -> State<T> {
        std::mem::replace(self.state_mut(), State::Taken)
    }
}

impl<T: Send + 'static> CoreTask<T> {
    /// Start the work now if it has not started (in its own core task).
    fn start(&mut self) {
        let state = self.state_mut();
        if let State::Ready(..) = state {
            let State::Ready(work, runtime) = std::mem::replace(state, State::Taken) else {
                unreachable!("matched above")
            };
            *state = State::Running(runtime.spawn(work));
        }
    }

    /// The same task with its work started now, for work that must go on before anybody
    /// awaits it (a connection made in the background).
    pub fn started(mut self) -> Self {
        self.start();
        self
    }

    /// The work as one future to run inside another core task: the not-started work itself (no
    /// task of its own), else this task to await. `None` with the runtime of a not-started task.
    fn into_work(mut self) -> (Work<T>, Option<tokio::runtime::Handle>) {
        match self.take_state() {
            State::Ready(work, runtime) => (work, Some(runtime)),
            other => {
                *self.state_mut() = other;
                (Box::pin(self), None)
            }
        }
    }

    /// Stop the work now (a pending await then yields `cancelled`).
    pub fn abort(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*state {
            State::Running(handle) => handle.abort(),
            State::Ready(..) => *state = State::Aborted,
            State::Failed(_) | State::Aborted | State::Taken => {}
        }
    }

    /// Let the work run to its end with nobody waiting for it (dropping a `CoreTask` would
    /// cancel it).
    pub fn detach(mut self) {
        self.start();
        self.take_state();
    }

    /// Whether the work has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready(..) => false,
            State::Running(handle) => handle.is_finished(),
            State::Failed(_) | State::Aborted | State::Taken => true,
        }
    }

    /// Block the calling thread until the work finishes, or `limit` passes (`None`: no limit).
    /// Returns `None` when the time passed; the work goes on and can be waited for again. For
    /// synchronous host APIs that must look up now and then (e.g. Python's Ctrl-C). Must not be
    /// called on a thread that is running an async executor.
    pub fn wait_blocking(&mut self, limit: Option<Duration>) -> Option<Result<T>> {
        if let State::Failed(_) = self.state_mut() {
            return Some(self.take_ready_result());
        }
        let handle = match syros_client::runtime::try_runtime() {
            Ok(handle) => handle,
            Err(err) => return Some(Err(runtime_unavailable(err))),
        };
        // Started on the core runtime, never run by this thread's `block_on` (the work must go
        // on after a timed-out wait).
        self.start();
        handle.block_on(async {
            match limit {
                Some(limit) => tokio::time::timeout(limit, &mut *self).await.ok(),
                None => Some((&mut *self).await),
            }
        })
    }
}

impl<T> CoreTask<T> {
    /// The result of a task that did not start: its error, or `cancelled` after an abort.
    fn take_ready_result(&mut self) -> Result<T> {
        match self.take_state() {
            State::Failed(err) => Err(err),
            State::Aborted => Err(ErrorRecord::cancelled("the call was cancelled")),
            _ => Err(ErrorRecord::internal("a finished task was polled again")),
        }
    }
}

impl<T: Send + 'static> Future for CoreTask<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // Awaited from any executor: the work runs in a core task, never in the caller's.
        self.start();
        let State::Running(handle) = self.state_mut() else {
            return Poll::Ready(self.take_ready_result());
        };
        match Pin::new(handle).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(joined) => {
                self.take_state();
                Poll::Ready(match joined {
                    Ok(result) => result,
                    Err(err) if err.is_panic() => Err(panicked(err.into_panic())),
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
        // A running task is aborted; a not-started one is dropped with its work unrun.
        if let State::Running(handle) = self.state_mut() {
            handle.abort();
        }
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> ErrorRecord {
    ErrorRecord::internal(format!(
        "a syros client task panicked: {}",
        panic_message(panic)
    ))
}

fn runtime_unavailable(err: std::io::Error) -> ErrorRecord {
    ErrorRecord::internal(format!("cannot start the syros client runtime: {err}"))
}

impl<T> CoreTask<T> {
    /// A task that has already failed with `err` (a call refused before it started).
    pub fn failed(err: ErrorRecord) -> Self {
        CoreTask::with(State::Failed(err))
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
        match self.into_work() {
            // Not started: still one task when it starts.
            (work, Some(runtime)) => CoreTask::with(State::Ready(
                Box::pin(until_cancelled(work, cancelled)),
                runtime,
            )),
            (task, None) => spawn(until_cancelled(task, cancelled)),
        }
    }

    /// The same work with `f` applied to its value, on the core runtime; a task not started yet
    /// stays one task (no second task awaiting the first).
    pub fn map<U, F>(self, f: F) -> CoreTask<U>
    where
        U: Send + 'static,
        F: FnOnce(T) -> U + Send + 'static,
    {
        match self.into_work() {
            (work, Some(runtime)) => CoreTask::with(State::Ready(
                Box::pin(async move { work.await.map(f) }),
                runtime,
            )),
            (task, None) => spawn(async move { task.await.map(f) }),
        }
    }

    /// Hand the result to `done` when the work ends — or, with `cancel`, when that token is
    /// cancelled first (the work is then aborted, as a drop would). For hosts that complete a
    /// promise, future or callback from any thread (the Node binding's `Deferred`, Java's
    /// `CompletableFuture`, the C ABI's callback): `done` runs on the core runtime's thread that
    /// saw the work end, with no executor of the host's own in between. Work that has not
    /// started runs in the same core task as `done` (one task per call); a panic in it reaches
    /// `done` as an `internal` error. A task that failed to start, or a token already
    /// cancelled, hands its error to `done` before `settle` returns.
    pub fn settle(
        mut self,
        cancel: Option<&CancelToken>,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        if let State::Failed(_) = self.state_mut() {
            return done(self.take_ready_result());
        }
        let cancelled = match cancel {
            Some(token) if token.is_cancelled() => {
                self.abort();
                return done(Err(cancelled_by_caller()));
            }
            Some(token) => Some(token.cancelled.subscribe()),
            None => None,
        };
        let (work, runtime) = self.into_work();
        let runtime = match runtime.map_or_else(syros_client::runtime::try_runtime, Ok) {
            Ok(runtime) => runtime,
            Err(err) => return done(Err(runtime_unavailable(err))),
        };
        // A panic in the work must still reach `done` (a host's promise must settle).
        let work = async move {
            AssertUnwindSafe(work)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(panicked(panic)))
        };
        drop(runtime.spawn(async move {
            done(match cancelled {
                Some(cancelled) => until_cancelled(work, cancelled).await,
                None => work.await,
            })
        }));
    }
}

fn cancelled_by_caller() -> ErrorRecord {
    ErrorRecord::cancelled("the wait was cancelled by the caller")
}

/// `work`'s result, or `cancelled` once the token behind `cancelled` is cancelled (dropping
/// `work` then cancels it).
async fn until_cancelled<T: Send + 'static>(
    work: impl Future<Output = Result<T>>,
    mut cancelled: watch::Receiver<bool>,
) -> Result<T> {
    // Cancelled before the work started (a task started after its token was cancelled): it
    // never runs.
    if *cancelled.borrow_and_update() {
        return Err(cancelled_by_caller());
    }
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

/// Run `future` on the core runtime (it starts when the task is awaited, settled, waited for,
/// detached or [`CoreTask::started`]; see [`CoreTask`]).
pub fn spawn<F, T>(future: F) -> CoreTask<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match syros_client::runtime::try_runtime() {
        Ok(runtime) => CoreTask::with(State::Ready(
            // The host's trace context of this call (crate::trace), taken now, on its thread.
            Box::pin(syros_client::trace::scope(
                crate::trace::host_context(),
                future,
            )),
            runtime,
        )),
        Err(err) => CoreTask::failed(runtime_unavailable(err)),
    }
}

/// Run the blocking function `work` on the core runtime's blocking pool (never on its async
/// workers), for host code that must not run on, or hold a host lock on, those workers: e.g.
/// handing a result to a host's event loop while holding its interpreter lock. It starts now.
pub fn spawn_blocking<F, T>(work: F) -> CoreTask<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match syros_client::runtime::try_runtime() {
        // A blocking task's JoinHandle is a CoreTask's like any other (aborting it only stops
        // work that has not started yet).
        Ok(handle) => CoreTask::with(State::Running(handle.spawn_blocking(work))),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// Sets its flag when dropped: tells whether a task's work was dropped.
    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Work that records whether it ran, and a flag set when it is dropped (run or not).
    fn recorded(value: u32) -> (CoreTask<u32>, Arc<AtomicBool>, Arc<AtomicBool>) {
        let ran = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicBool::new(false));
        let (ran_in, guard) = (ran.clone(), SetOnDrop(dropped.clone()));
        let task = spawn(async move {
            let _guard = guard;
            ran_in.store(true, Ordering::SeqCst);
            Ok(value)
        });
        (task, ran, dropped)
    }

    #[test]
    fn a_task_dropped_before_it_started_never_runs_its_work() {
        let (task, ran, dropped) = recorded(1);
        drop(task);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the work is gone with the task"
        );
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[test]
    fn an_aborted_task_that_had_not_started_ends_cancelled_without_running() {
        let (mut task, ran, _) = recorded(1);
        task.abort();
        assert!(task.is_finished());
        let err = task.wait_blocking(Some(LIMIT)).unwrap().unwrap_err();
        assert_eq!(err.code, "cancelled");
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[test]
    fn a_detached_or_started_task_runs_with_nobody_awaiting_it() {
        let (sent, received) = mpsc::channel();
        let detached = sent.clone();
        spawn(async move { Ok(detached.send("detached").is_ok()) }).detach();
        let started = spawn(async move { Ok(sent.send("started").is_ok()) }).started();
        let mut seen = [
            received.recv_timeout(LIMIT).unwrap(),
            received.recv_timeout(LIMIT).unwrap(),
        ];
        seen.sort();
        assert_eq!(seen, ["detached", "started"]);
        drop(started);
    }

    #[test]
    fn settle_runs_the_work_and_hands_over_its_result_in_one_core_task() {
        let (sent, received) = mpsc::channel();
        spawn(async { Ok(tokio::task::id()) })
            .map(|work_task| (work_task, 7))
            .settle(None, move |result| {
                sent.send((result, tokio::task::try_id())).unwrap()
            });
        let (result, done_task) = received.recv_timeout(LIMIT).unwrap();
        let (work_task, mapped) = result.unwrap();
        assert_eq!(mapped, 7);
        assert_eq!(
            Some(work_task),
            done_task,
            "one task ran the work, map and done"
        );
    }

    #[test]
    fn settle_after_a_cancel_hands_over_cancelled_at_once_and_never_runs_the_work() {
        let token = CancelToken::new();
        token.cancel();
        let (task, ran, dropped) = recorded(1);
        let (sent, received) = mpsc::channel();
        task.settle(Some(&token), move |result| sent.send(result).unwrap());
        let err = received
            .try_recv()
            .expect("before settle returned")
            .unwrap_err();
        assert_eq!(err.code, "cancelled");
        assert!(dropped.load(Ordering::SeqCst) && !ran.load(Ordering::SeqCst));
    }

    #[test]
    fn a_cancel_ends_a_settled_wait_and_drops_the_work_and_a_later_cancel_changes_nothing() {
        // Cancel while the work waits: `cancelled`, and the work is dropped (aborted).
        let token = CancelToken::new();
        let (sent, received) = mpsc::channel();
        let (entered_tx, entered) = mpsc::channel();
        let dropped = Arc::new(AtomicBool::new(false));
        let work_dropped = dropped.clone();
        spawn(async move {
            let _guard = SetOnDrop(work_dropped);
            entered_tx.send(()).unwrap();
            std::future::pending::<()>().await;
            Ok(0u32)
        })
        .settle(Some(&token), move |result| sent.send(result).unwrap());
        entered.recv_timeout(LIMIT).expect("the work started");
        token.cancel();
        let err = received.recv_timeout(LIMIT).unwrap().unwrap_err();
        assert_eq!(err.code, "cancelled");
        assert!(
            dropped.load(Ordering::SeqCst),
            "the cancelled work was dropped"
        );
        // A result that is there first wins; cancelling afterwards hands nothing more over.
        let later = CancelToken::new();
        let (sent, received) = mpsc::channel();
        let (task, ran, _) = recorded(5);
        task.settle(Some(&later), move |result| sent.send(result).unwrap());
        assert_eq!(received.recv_timeout(LIMIT).unwrap().unwrap(), 5);
        later.cancel();
        assert!(ran.load(Ordering::SeqCst));
        assert!(received.recv_timeout(Duration::from_millis(200)).is_err());
    }

    #[test]
    fn a_panic_in_settled_work_reaches_done_as_an_internal_error() {
        let (sent, received) = mpsc::channel();
        spawn(async {
            if std::hint::black_box(true) {
                panic!("boom in the work");
            }
            Ok(1u32)
        })
        .settle(None, move |result| sent.send(result).unwrap());
        let err = received.recv_timeout(LIMIT).unwrap().unwrap_err();
        assert_eq!(err.code, "internal");
        assert!(err.message.contains("boom in the work"), "{}", err.message);
    }

    #[test]
    fn a_not_started_task_tied_to_a_token_ends_cancelled_when_the_token_is_cancelled() {
        let token = CancelToken::new();
        let (task, ran, _) = recorded(1);
        let mut tied = task.cancel_on(&token);
        assert!(!tied.is_finished());
        token.cancel();
        let err = tied.wait_blocking(Some(LIMIT)).unwrap().unwrap_err();
        assert_eq!(err.code, "cancelled", "cancelled before it started");
        assert!(!ran.load(Ordering::SeqCst), "the work never ran");
        // Mapped and awaited, a task gives its mapped value.
        let mut mapped = recorded(20).0.map(|v| v + 1);
        assert_eq!(mapped.wait_blocking(Some(LIMIT)).unwrap().unwrap(), 21);
    }
}
