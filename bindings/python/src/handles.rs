//! Handles on running core objects: a held lease, an event subscription, a step runner.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use syros_client::{ErrorKind, LeaseEnd, LostSignal};
use tokio::sync::watch;

use crate::errors::{of_kind, to_py};
use crate::rt;
use crate::types::{LeaseInfo, RecordedEvent};

pub fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        of_kind(
            ErrorKind::InvalidArgument,
            format!("{name} must be a non-negative number of seconds, got {value}"),
        )
    })
}

fn optional_seconds(name: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    value.map(|v| seconds(name, v)).transpose()
}

/// A held lock: renewed in the background by the client core until released or lost.
#[pyclass(frozen, module = "syros._syros")]
pub struct Lease {
    lease: Arc<tokio::sync::Mutex<Option<syros_client::Lease>>>,
    signal: LostSignal,
    info: Mutex<LeaseInfo>,
    ttl: f64,
}

impl Lease {
    pub fn new(lease: syros_client::Lease) -> Lease {
        Lease {
            signal: lease.lost_signal(),
            info: Mutex::new(lease.info().into()),
            ttl: lease.ttl().as_secs_f64(),
            lease: Arc::new(tokio::sync::Mutex::new(Some(lease))),
        }
    }

    fn snapshot(&self) -> LeaseInfo {
        let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(guard) = self.lease.try_lock() {
            if let Some(lease) = guard.as_ref() {
                *info = lease.info().into();
            }
        }
        info.clone()
    }
}

#[pymethods]
impl Lease {
    /// The lease as last granted or renewed.
    #[getter]
    fn info(&self) -> LeaseInfo {
        self.snapshot()
    }

    #[getter]
    fn lease_id(&self) -> String {
        self.snapshot().lease_id
    }

    #[getter]
    fn key(&self) -> String {
        self.snapshot().key
    }

    #[getter]
    fn owner(&self) -> String {
        self.snapshot().owner
    }

    #[getter]
    fn fencing_token(&self) -> u64 {
        self.snapshot().fencing_token
    }

    #[getter]
    fn expires_at_ms(&self) -> i64 {
        self.snapshot().expires_at_ms
    }

    #[getter]
    fn ttl(&self) -> f64 {
        self.ttl
    }

    /// Whether the lease was lost (the server no longer holds it for us).
    #[getter]
    fn lost(&self) -> bool {
        self.signal.is_lost()
    }

    /// Whether the lease is still ours: neither released nor lost.
    #[getter]
    fn held(&self) -> bool {
        !self.signal.is_lost()
            && self
                .lease
                .try_lock()
                .map(|guard| guard.is_some())
                .unwrap_or(true)
    }

    /// Release the lease (a second release does nothing).
    #[pyo3(signature = (blocking = true))]
    fn release<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        let lease = self.lease.clone();
        rt::call(py, blocking, async move {
            let taken = lease.lock().await.take();
            match taken {
                Some(lease) => lease.release().await.map_err(to_py),
                None => Ok(()),
            }
        })
    }

    /// Extend the lease now (the core renews it by itself).
    #[pyo3(signature = (blocking = true))]
    fn renew<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        let lease = self.lease.clone();
        rt::call(py, blocking, async move {
            let guard = lease.lock().await;
            match guard.as_ref() {
                Some(lease) => lease.renew().await.map(LeaseInfo::from).map_err(to_py),
                None => Err(of_kind(
                    ErrorKind::LockNotHeld,
                    "the lease was already released",
                )),
            }
        })
    }

    /// Wait until the lease is lost (True) or released (False), at most `timeout` seconds
    /// (False when it passes).
    #[pyo3(signature = (timeout = None, blocking = true))]
    fn wait_lost<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = optional_seconds("timeout", timeout)?;
        let signal = self.signal.clone();
        rt::call(py, blocking, async move {
            let end = match timeout {
                Some(limit) => tokio::time::timeout(limit, signal.wait()).await.ok(),
                None => Some(signal.wait().await),
            };
            Ok(end == Some(LeaseEnd::Lost))
        })
    }

    /// Call `callback()` (from a background thread, with the GIL) if the lease is lost.
    fn on_lost(&self, callback: Py<PyAny>) -> PyResult<()> {
        let signal = self.signal.clone();
        let handle = syros_client::runtime::try_runtime()
            .map_err(|err| crate::errors::internal(err.to_string()))?;
        handle.spawn(async move {
            if signal.wait().await == LeaseEnd::Lost {
                let _ = rt::with_gil(move |py| {
                    if let Err(err) = callback.call0(py) {
                        err.write_unraisable(py, Some(callback.bind(py)));
                    }
                    Ok(())
                })
                .await;
            }
        });
        Ok(())
    }

    fn __repr__(&self) -> String {
        let info = self.snapshot();
        format!(
            "Lease(key={:?}, fencing_token={}, lost={})",
            info.key,
            info.fencing_token,
            if self.signal.is_lost() {
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
    inner: Arc<tokio::sync::Mutex<Option<syros_client::Subscription>>>,
    closed: watch::Sender<bool>,
}

impl Subscription {
    pub fn new(subscription: syros_client::Subscription) -> Subscription {
        Subscription {
            inner: Arc::new(tokio::sync::Mutex::new(Some(subscription))),
            closed: watch::Sender::new(false),
        }
    }
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
        let timeout = optional_seconds("timeout", timeout)?;
        let inner = self.inner.clone();
        let mut closed = self.closed.subscribe();
        rt::call(py, blocking, async move {
            let next = async {
                let mut guard = inner.lock().await;
                let Some(subscription) = guard.as_mut() else {
                    return Ok(None);
                };
                let event = match timeout {
                    Some(limit) => tokio::time::timeout(limit, subscription.next_event())
                        .await
                        .map_err(|_| {
                            PyTimeoutError::new_err(format!("no event within {limit:?}"))
                        })?,
                    None => subscription.next_event().await,
                };
                match event {
                    Some(Ok(event)) => Ok(Some(RecordedEvent::from(event))),
                    Some(Err(err)) => {
                        guard.take();
                        Err(to_py(err))
                    }
                    None => {
                        guard.take();
                        Ok(None)
                    }
                }
            };
            tokio::select! {
                next = next => next,
                _ = closed.wait_for(|c| *c) => Ok(None),
            }
        })
    }

    /// Stop following (a pending `next` returns None).
    fn close(&self) {
        self.closed.send_replace(true);
        // A pending `next` holds the lock until it sees `closed`; drop the subscription after it.
        if let Ok(mut guard) = self.inner.try_lock() {
            guard.take();
            return;
        }
        let inner = self.inner.clone();
        syros_client::runtime::spawn(async move {
            inner.lock().await.take();
        });
    }

    #[getter]
    fn closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// A running step runner (see `Client.start_worker`).
#[pyclass(frozen, module = "syros._syros")]
pub struct Worker {
    worker_id: String,
    worker: Arc<tokio::sync::Mutex<Option<syros_client::Worker>>>,
    stop: watch::Sender<bool>,
}

impl Worker {
    pub fn new(worker: syros_client::Worker) -> Worker {
        Worker {
            worker_id: worker.worker_id().to_string(),
            worker: Arc::new(tokio::sync::Mutex::new(Some(worker))),
            stop: watch::Sender::new(false),
        }
    }
}

#[pymethods]
impl Worker {
    /// The id the server knows this worker by.
    #[getter]
    fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Whether a stop was requested.
    #[getter]
    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    /// Ask the worker to stop; returns at once (safe from a handler or a signal handler).
    fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Wait until a stop is requested.
    #[pyo3(signature = (blocking = true))]
    fn wait_stop_requested<'py>(
        &self,
        py: Python<'py>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut stop = self.stop.subscribe();
        rt::call(py, blocking, async move {
            let _ = stop.wait_for(|s| *s).await;
            Ok(())
        })
    }

    /// Stop taking tasks and wait until the handlers running now have reported. Must not be
    /// awaited from inside a handler of this worker (it would wait for itself).
    #[pyo3(signature = (blocking = true))]
    fn stop<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        self.stop.send_replace(true);
        let worker = self.worker.clone();
        rt::call(py, blocking, async move {
            let taken = worker.lock().await.take();
            if let Some(worker) = taken {
                worker.stop().await;
            }
            Ok(())
        })
    }
}
