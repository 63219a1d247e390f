//! How Python waits for the client core.
//!
//! One runtime rule (see the design's `Bindings`): every core future runs on the client core's
//! runtime ([`syros_client::runtime`]), which is created lazily, can be shut down and is rebuilt in
//! a forked child. Nothing here keeps a runtime handle between calls, so a child process created
//! with `os.fork()` gets the fresh runtime the core builds for it.
//!
//! - asyncio: [`CoreRuntime`] is pyo3-async-runtimes' generic runtime, implemented by spawning on
//!   the core runtime. `future_into_py` spawns the core future there; the asyncio loop only
//!   receives the result (through `call_soon_threadsafe`).
//! - blocking: [`block`] spawns the future on the core runtime and waits for its `JoinHandle` with
//!   the GIL released, looking at Python's signals every 100 ms so Ctrl-C interrupts a long wait.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use pyo3_async_runtimes::generic::{self, ContextExt, JoinError, Runtime};
use pyo3_async_runtimes::TaskLocals;

use crate::errors::internal;

/// How often a blocking wait looks at Python's signal handlers (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

fn handle() -> PyResult<tokio::runtime::Handle> {
    syros_client::runtime::try_runtime()
        .map_err(|err| internal(format!("cannot start the syros client runtime: {err}")))
}

/// pyo3-async-runtimes' view of the client core's runtime.
pub struct CoreRuntime;

/// A task of the core runtime, as pyo3-async-runtimes expects it.
pub struct CoreJoinHandle(tokio::task::JoinHandle<()>);

/// Why a core task did not finish.
pub struct CoreJoinError(tokio::task::JoinError);

impl JoinError for CoreJoinError {
    fn is_panic(&self) -> bool {
        self.0.is_panic()
    }
    fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        self.0.into_panic()
    }
}

impl Future for CoreJoinHandle {
    type Output = Result<(), CoreJoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(CoreJoinError)
    }
}

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl Runtime for CoreRuntime {
    type JoinError = CoreJoinError;
    type JoinHandle = CoreJoinHandle;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        CoreJoinHandle(syros_client::runtime::spawn(fut))
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        CoreJoinHandle(syros_client::runtime().spawn_blocking(f))
    }
}

impl ContextExt for CoreRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|cell| cell.get().cloned())
            .unwrap_or_default()
    }
}

/// The asyncio loop (and contextvars) of the calling coroutine.
pub fn current_locals(py: Python<'_>) -> PyResult<TaskLocals> {
    generic::get_current_locals::<CoreRuntime>(py)
}

/// Run `fut` on the core runtime and block until it is done, with the GIL released. Ctrl-C (any
/// exception raised by a signal handler) cancels the future and is raised.
pub fn block<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let handle = handle()?;
    let mut task = handle.spawn(fut);
    loop {
        let waited = py.detach(|| {
            // Allowed even on a blocking-pool thread of the core runtime (a sync step handler
            // calling the blocking client), which is not an async context.
            handle.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut task).await })
        });
        match waited {
            Ok(Ok(result)) => return result,
            Ok(Err(err)) if err.is_panic() => {
                return Err(internal(format!(
                    "a syros client task panicked: {}",
                    panic_message(err.into_panic())
                )))
            }
            Ok(Err(_)) => {
                return Err(crate::errors::cancelled(
                    "the syros client runtime was shut down",
                ))
            }
            Err(_elapsed) => {
                if let Err(err) = py.check_signals() {
                    task.abort();
                    return Err(err);
                }
            }
        }
    }
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

/// The one entry point of every client method: block (sync API) or return an asyncio awaitable.
pub fn call<'py, T, F>(py: Python<'py>, blocking: bool, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    if blocking {
        block(py, fut)?.into_bound_py_any(py)
    } else {
        generic::future_into_py::<CoreRuntime, _, _>(py, fut)
    }
}

/// Run a Python call on a blocking-pool thread of the core runtime, with the GIL: Python code
/// never runs on (or holds the GIL on) the runtime's async worker threads.
pub async fn with_gil<T, F>(f: F) -> PyResult<T>
where
    F: for<'py> FnOnce(Python<'py>) -> PyResult<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(move || Python::attach(f)).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => Err(internal(format!(
            "a Python callback panicked: {}",
            panic_message(err.into_panic())
        ))),
        Err(_) => Err(crate::errors::cancelled(
            "the syros client runtime was shut down",
        )),
    }
}

/// Whether `value` should be awaited (a coroutine, task or future).
pub fn is_awaitable(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    value.hasattr(pyo3::intern!(value.py(), "__await__"))
}
