//! The objects a client hands out, as Python classes over the binding API's: a held lease, an
//! event subscription, a pulled step runner and a get-or-compute ticket. Each only translates
//! arguments and results; the state machines are the binding API's.

use std::sync::Arc;

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use syros_binding_api as api;

use crate::millis;
use crate::rt::{finish, with_gil};
use crate::types::{LeaseInfo, RecordedEvent, Task};

fn limit(timeout: Option<f64>) -> PyResult<Option<u64>> {
    timeout.map(|t| millis("timeout", t)).transpose()
}

/// A held lock: renewed in the background by the client core until released or lost.
#[pyclass(frozen, module = "syros._syros")]
pub struct Lease {
    pub(crate) inner: Arc<api::Lease>,
}

#[pymethods]
impl Lease {
    /// The lease as last granted or renewed.
    #[getter]
    fn info(&self) -> LeaseInfo {
        self.inner.info().into()
    }

    #[getter]
    fn lease_id(&self) -> String {
        self.inner.info().lease_id
    }

    #[getter]
    fn key(&self) -> String {
        self.inner.info().key
    }

    #[getter]
    fn owner(&self) -> String {
        self.inner.info().owner
    }

    #[getter]
    fn fencing_token(&self) -> u64 {
        self.inner.info().fencing_token
    }

    #[getter]
    fn expires_at_ms(&self) -> i64 {
        self.inner.info().expires_at_ms
    }

    /// The TTL it was acquired with, in seconds.
    #[getter]
    fn ttl(&self) -> f64 {
        crate::seconds(self.inner.ttl_ms())
    }

    /// Whether the lease was lost (the server no longer holds it for us).
    #[getter]
    fn lost(&self) -> bool {
        self.inner.is_lost()
    }

    /// Whether the lease is still ours: neither released nor lost.
    #[getter]
    fn held(&self) -> bool {
        self.inner.is_held()
    }

    /// Release the lease (a second release does nothing).
    #[pyo3(signature = (blocking = true))]
    fn release<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.release(), Ok)
    }

    /// Extend the lease now (the core renews it by itself).
    #[pyo3(signature = (blocking = true))]
    fn renew<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.renew(), |info| {
            Ok(LeaseInfo::from(info))
        })
    }

    /// Wait until the lease ends, at most `timeout` seconds: "lost", "released" or "timed_out".
    #[pyo3(signature = (timeout = None, blocking = true))]
    fn wait_end<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let task = self.inner.wait_end(limit(timeout)?);
        finish(py, blocking, task, |end| {
            Ok(match end {
                api::LeaseEnd::Lost => "lost",
                api::LeaseEnd::Released => "released",
                api::LeaseEnd::TimedOut => "timed_out",
            })
        })
    }

    fn __repr__(&self) -> String {
        let info = self.inner.info();
        format!(
            "Lease(key={:?}, fencing_token={}, lost={})",
            info.key,
            info.fencing_token,
            if self.inner.is_lost() {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// A live event subscription (catch-up, then live; resumes after reconnecting).
#[pyclass(frozen, module = "syros._syros")]
pub struct Subscription {
    pub(crate) inner: Arc<api::Subscription>,
}

#[pymethods]
impl Subscription {
    /// The next event; None once the subscription is closed or ended. Raises `TimeoutError` when
    /// `timeout` seconds pass without an event, and the error that ended the subscription.
    #[pyo3(signature = (timeout = None, blocking = true))]
    fn next<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let task = self.inner.next(limit(timeout)?);
        finish(py, blocking, task, move |item| match item {
            api::SubscriptionItem::Event(event) => Ok(Some(RecordedEvent::from(event))),
            api::SubscriptionItem::Ended => Ok(None),
            api::SubscriptionItem::TimedOut => Err(PyTimeoutError::new_err(format!(
                "no event within {} s",
                timeout.unwrap_or_default()
            ))),
        })
    }

    /// Stop following (a pending `next` returns None).
    fn close(&self) {
        self.inner.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }
}

/// A pulled step runner (see `Client.worker`): `poll_task`, run the handler, `complete` or
/// `fail` the task.
#[pyclass(frozen, module = "syros._syros")]
pub struct Worker {
    pub(crate) inner: Arc<api::Worker>,
}

#[pymethods]
impl Worker {
    /// The id the server knows this worker by.
    #[getter]
    fn worker_id(&self) -> String {
        self.inner.worker_id()
    }

    /// The next task, waiting up to `timeout` seconds (None: until one comes or the worker
    /// stops); None when the time passed or the worker stopped.
    #[pyo3(signature = (timeout = None, blocking = true))]
    fn poll_task<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let task = self.inner.poll_task(limit(timeout)?);
        finish(py, blocking, task, |task| Ok(task.map(Task::from)))
    }

    /// Report a task done with its output (JSON); whether the server accepted it.
    #[pyo3(signature = (task_id, output_json, blocking = true))]
    fn complete<'py>(
        &self,
        py: Python<'py>,
        task_id: String,
        output_json: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let outcome = api::TaskOutcome::Completed { output_json };
        finish(py, blocking, self.inner.complete(task_id, outcome), Ok)
    }

    /// Report a task failed; whether the server accepted it.
    #[pyo3(signature = (task_id, error_type, message, non_retryable, blocking = true))]
    fn fail<'py>(
        &self,
        py: Python<'py>,
        task_id: String,
        error_type: String,
        message: String,
        non_retryable: bool,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let outcome = api::TaskOutcome::Failed {
            error_type,
            message,
            non_retryable,
        };
        finish(py, blocking, self.inner.complete(task_id, outcome), Ok)
    }

    /// Whether the task is still assigned to this worker.
    #[pyo3(signature = (task_id, blocking = true))]
    fn heartbeat<'py>(
        &self,
        py: Python<'py>,
        task_id: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.heartbeat(task_id), Ok)
    }

    /// Tasks held now (handed out or buffered, not yet reported).
    #[getter]
    fn outstanding(&self) -> u64 {
        self.inner.outstanding()
    }

    /// Stop taking tasks; returns at once (safe from a handler or a signal handler). Pending
    /// polls return None.
    fn stop(&self) {
        self.inner.stop();
    }

    /// Stop, then wait until every task handed out has been reported (or timed out).
    #[pyo3(signature = (blocking = true))]
    fn stop_and_drain<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.stop_and_drain(), Ok)
    }
}

/// The duty to compute one missing cache value (`Client.cache_begin`): `complete` it with the
/// value, or `fail` it. Dropped unfinished, it fails.
#[pyclass(frozen, module = "syros._syros")]
pub struct ComputeTicket {
    pub(crate) inner: Arc<api::ComputeTicket>,
}

#[pymethods]
impl ComputeTicket {
    /// The key to compute.
    #[getter]
    fn key(&self) -> String {
        self.inner.key().to_string()
    }

    /// Hand over the value: stored, and handed to every caller waiting for the same key.
    #[pyo3(signature = (value, blocking = true))]
    fn complete<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyBytes>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let task = self.inner.complete(value.as_bytes().to_vec());
        finish(py, blocking, task, |stored| {
            Ok(with_gil(move |py| Ok(PyBytes::new(py, &stored).into_any())))
        })
    }

    /// The computation failed: every caller waiting for this key gets `CallbackFailed` with
    /// `message`; nothing is stored.
    #[pyo3(signature = (message, blocking = true))]
    fn fail<'py>(
        &self,
        py: Python<'py>,
        message: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.fail(message), Ok)
    }
}
