//! asyncio results handed to their event loop in batches (Unix).
//!
//! A call made with `blocking=False` returns an `asyncio.Future` of the running loop. The
//! binding-API task completes it through [`CoreTask::settle`]: on the core runtime's thread that
//! saw the work end, the result is queued for the future's loop in a
//! [`WakeQueue`](syros_binding_api::wake::WakeQueue) — no GIL is taken there, no thread is handed
//! the result. The first result queued while the loop is not yet woken writes one byte to a
//! socket the loop watches (`loop.add_reader`); the loop then takes every queued result at once
//! and completes their futures on its own thread, with the GIL. Under load many results share one
//! wake-up (pyo3-async-runtimes took a blocking-pool thread, the GIL and a
//! `call_soon_threadsafe` per result).
//!
//! Cancelling the future (its awaiting task was cancelled) cancels the work, as dropping the
//! `CoreTask` would.
//!
//! [`CoreTask::settle`]: syros_binding_api::rt::CoreTask::settle

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};
use pyo3::IntoPyObjectExt;
use syros_binding_api::rt::{CancelToken, CoreTask};
use syros_binding_api::wake::WakeQueue;

use crate::errors::to_py;

/// A result ready to be handed to its future, run on the loop's thread with the GIL.
type Completion = Box<dyn FnOnce(Python<'_>) + Send>;

/// One event loop's queued results.
struct LoopQueue {
    results: WakeQueue<Completion>,
    /// The process that made it: a forked child makes its own.
    pid: u32,
}

/// The loop's reader callback: completes every queued future.
#[pyclass(frozen)]
struct TakeResults(Arc<LoopQueue>);

#[pymethods]
impl TakeResults {
    fn __call__(&self, py: Python<'_>) {
        self.0.results.clear_wake_ups();
        for completion in self.0.results.take(usize::MAX) {
            completion(py);
        }
    }
}

/// A future's done callback: a cancelled future cancels its work.
#[pyclass(frozen)]
struct CancelWork(CancelToken);

#[pymethods]
impl CancelWork {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        // After a result this is a no-op: the work is over.
        self.0.cancel();
    }
}

/// The queues of the event loops this process has used (a handful: pytest makes one per test),
/// with their loops.
static LOOPS: Mutex<Vec<(Py<PyAny>, Arc<LoopQueue>)>> = Mutex::new(Vec::new());

/// The queue of `event_loop`, made and watched on first use. Queues of closed loops, and of
/// the parent process after a fork, are let go then. (The lock is waited for detached from the
/// interpreter: whoever holds it may be running Python code that lets other threads run.)
fn queue_of(event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<LoopQueue>> {
    let mut loops = LOOPS
        .lock_py_attached(event_loop.py())
        .unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if let Some((_, queue)) = loops
        .iter()
        .find(|(known, queue)| known.as_ptr() == event_loop.as_ptr() && queue.pid == pid)
    {
        return Ok(queue.clone());
    }
    loops.retain(|(known, queue)| {
        queue.pid == pid
            && !known
                .bind(event_loop.py())
                .call_method0("is_closed")
                .and_then(|closed| closed.extract::<bool>())
                .unwrap_or(true)
    });
    let queue = Arc::new(LoopQueue {
        results: WakeQueue::new()?,
        pid,
    });
    event_loop.call_method1(
        "add_reader",
        (queue.results.fd(), TakeResults(queue.clone())),
    )?;
    loops.push((event_loop.clone().unbind(), queue.clone()));
    Ok(queue)
}

/// An `asyncio.Future` of the running loop that `task` completes with `convert`'s value.
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
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let event_loop = GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()?;
    let queue = queue_of(&event_loop)?;
    let future = event_loop.call_method0("create_future")?;
    let cancel = CancelToken::new();
    future.call_method1("add_done_callback", (CancelWork(cancel.clone()),))?;
    let completes = future.clone().unbind();
    task.settle(Some(&cancel), move |result| {
        queue.results.push(Box::new(move |py| {
            let future = completes.bind(py);
            let done = future
                .call_method0("done")
                .and_then(|done| done.extract::<bool>());
            if !matches!(done, Ok(false)) {
                // Cancelled while the result was on its way.
                return;
            }
            let value = result
                .map_err(to_py)
                .and_then(convert)
                .and_then(|value| value.into_bound_py_any(py));
            let handed = match value {
                Ok(value) => future.call_method1("set_result", (value,)),
                Err(err) => future.call_method1("set_exception", (err.into_value(py),)),
            };
            if let Err(err) = handed {
                err.write_unraisable(py, Some(future));
            }
        }));
    });
    Ok(future)
}
