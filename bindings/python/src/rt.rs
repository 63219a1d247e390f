//! How Python waits for a binding-API [`CoreTask`] (a future already running on the client
//! core's runtime, so the runtime rule holds by construction):
//!
//! - blocking ([`wait`]): the calling thread waits with the GIL released, looking at Python's
//!   signal handlers every 100 ms, so Ctrl-C interrupts a long wait (and cancels the work);
//! - asyncio ([`finish`] with `blocking=false`): an `asyncio.Future` of the running loop that
//!   the task completes; on Unix through [`crate::completions`] (results handed to the loop in
//!   batches, woken through a socket pair), elsewhere through pyo3-async-runtimes
//!   ([`generic_loop`]). Cancelling the asyncio future cancels the work.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use syros_binding_api::rt::CoreTask;

use crate::errors::to_py;

/// How often a blocking wait looks at Python's signal handlers (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Block until `task` is done, with the GIL released. An exception raised by a signal handler
/// (Ctrl-C) cancels the work and is raised.
pub fn wait<T: Send + 'static>(py: Python<'_>, mut task: CoreTask<T>) -> PyResult<T> {
    loop {
        if let Some(result) = py.detach(|| task.wait_blocking(Some(SIGNAL_CHECK))) {
            return result.map_err(to_py);
        }
        // Returning early drops `task`, which cancels the work.
        py.check_signals()?;
    }
}

/// The one exit of every waiting method: block (`blocking`) and return `convert`'s value, or
/// return an asyncio awaitable of it.
pub fn finish<'py, T, O, C>(
    py: Python<'py>,
    blocking: bool,
    task: CoreTask<T>,
    convert: C,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
    C: FnOnce(T) -> PyResult<O> + Send + 'static,
    O: for<'a> IntoPyObject<'a> + Send + 'static,
{
    if blocking {
        convert(wait(py, task)?)?.into_bound_py_any(py)
    } else {
        #[cfg(unix)]
        return crate::completions::future(py, task, convert);
        #[cfg(not(unix))]
        return generic_loop::future(py, task, convert);
    }
}

/// A value built with the GIL when it is handed to Python (for results holding Python objects).
pub struct WithGil<F>(F);

/// Build the result with the GIL, when Python receives it.
pub fn with_gil<F>(build: F) -> WithGil<F>
where
    F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
{
    WithGil(build)
}

impl<'py, F> IntoPyObject<'py> for WithGil<F>
where
    F: FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        (self.0)(py)
    }
}

/// Where Unix socket pairs are missing: pyo3-async-runtimes' awaitable, whose future only awaits
/// the `CoreTask`. It spawns its own small futures through [`generic_loop::CoreRuntime`], i.e. on
/// the core runtime too, and hands each result to the loop from the runtime's blocking pool
/// (`call_soon_threadsafe`); cancelling the asyncio future drops the `CoreTask`.
#[cfg(not(unix))]
mod generic_loop {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use pyo3::prelude::*;
    use pyo3_async_runtimes::generic::{self, ContextExt, JoinError, Runtime};
    use pyo3_async_runtimes::TaskLocals;
    use syros_binding_api::rt::{self, CoreTask};
    use syros_binding_api::{ErrorKind, ErrorRecord};

    use crate::errors::to_py;

    /// An awaitable of `convert`'s value of `task`.
    pub fn future<'py, T, O, C>(
        py: Python<'py>,
        task: CoreTask<T>,
        convert: C,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: Send + 'static,
        C: FnOnce(T) -> PyResult<O> + Send + 'static,
        O: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        generic::future_into_py::<CoreRuntime, _, _>(py, async move {
            convert(task.await.map_err(to_py)?)
        })
    }

    /// pyo3-async-runtimes' view of the client core's runtime.
    pub struct CoreRuntime;

    /// A task pyo3-async-runtimes spawned. It drops most of them unawaited, so dropping one lets
    /// the work finish (a dropped `CoreTask` would cancel it).
    pub struct CoreJoinHandle(Option<CoreTask<()>>);

    impl Drop for CoreJoinHandle {
        fn drop(&mut self) {
            if let Some(task) = self.0.take() {
                task.detach();
            }
        }
    }

    impl Future for CoreJoinHandle {
        type Output = Result<(), CoreJoinError>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let Some(task) = self.0.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match Pin::new(task).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(result) => {
                    self.0 = None;
                    Poll::Ready(result.map_err(CoreJoinError))
                }
            }
        }
    }

    /// Why a spawned task did not finish. The spawned futures themselves never fail, so an error
    /// is a panic (`internal`) or a cancellation (the runtime was shut down).
    pub struct CoreJoinError(ErrorRecord);

    impl JoinError for CoreJoinError {
        fn is_panic(&self) -> bool {
            self.0.kind == ErrorKind::Internal
        }
        fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
            Box::new(self.0.message)
        }
    }

    impl Runtime for CoreRuntime {
        type JoinError = CoreJoinError;
        type JoinHandle = CoreJoinHandle;

        fn spawn<F>(fut: F) -> Self::JoinHandle
        where
            F: Future<Output = ()> + Send + 'static,
        {
            CoreJoinHandle(Some(rt::spawn(async move {
                fut.await;
                Ok(())
            })))
        }

        fn spawn_blocking<F>(f: F) -> Self::JoinHandle
        where
            F: FnOnce() + Send + 'static,
        {
            CoreJoinHandle(Some(rt::spawn_blocking(move || {
                f();
                Ok(())
            })))
        }
    }

    impl ContextExt for CoreRuntime {
        fn scope<F, R>(_locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
        where
            F: Future<Output = R> + Send + 'static,
        {
            // Our futures never call back into Python, so they need no task locals.
            Box::pin(fut)
        }

        fn get_task_locals() -> Option<TaskLocals> {
            // Awaitables are only made from Python code on its running loop, which is then used.
            None
        }
    }
}
