//! `syros._syros.Client`: every binding-API operation, each either blocking (`blocking=True`,
//! the GIL released while waiting) or returning an asyncio awaitable (`blocking=False`). The
//! Python package (`syros.Client`, `syros.AsyncClient`) is the idiomatic API over it.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;
use syros_binding_api as api;

use crate::errors::to_py;
use crate::handles::{ComputeTicket, Lease, Subscription, Worker};
use crate::millis;
use crate::rt::{finish, with_gil};
use crate::types::{AppendResult, CacheEntry, LeaseInfo, ReadResult, Saga};

/// `syros.RetryPolicy` (read by attribute; seconds).
#[derive(FromPyObject)]
struct RetryArg {
    initial_interval: f64,
    multiplier: f64,
    max_interval: f64,
    max_attempts: u32,
    deadline: Option<f64>,
}

impl RetryArg {
    fn record(&self) -> PyResult<api::RetryConfig> {
        Ok(api::RetryConfig {
            initial_interval_ms: millis("initial_interval", self.initial_interval)?,
            multiplier: self.multiplier,
            max_interval_ms: millis("max_interval", self.max_interval)?,
            max_attempts: self.max_attempts,
            deadline_ms: self.deadline.map(|d| millis("deadline", d)).transpose()?,
        })
    }
}

/// `syros.StepRetryPolicy` (read by attribute; seconds).
#[derive(FromPyObject)]
struct StepRetryArg {
    initial_interval: f64,
    backoff_coefficient: f64,
    maximum_interval: f64,
    maximum_attempts: u32,
    non_retryable_errors: Vec<String>,
}

impl StepRetryArg {
    fn record(&self) -> PyResult<api::StepRetry> {
        Ok(api::StepRetry {
            initial_interval_ms: millis("initial_interval", self.initial_interval)?,
            backoff_coefficient: self.backoff_coefficient,
            maximum_interval_ms: millis("maximum_interval", self.maximum_interval)?,
            maximum_attempts: self.maximum_attempts,
            non_retryable_errors: self.non_retryable_errors.clone(),
        })
    }
}

/// `syros.Step` (read by attribute).
#[derive(FromPyObject)]
struct StepArg {
    name: String,
    service: String,
    action: String,
    compensation: Option<String>,
    timeout: Option<f64>,
    retry: Option<StepRetryArg>,
}

impl StepArg {
    fn record(self) -> PyResult<api::StepDefinition> {
        Ok(api::StepDefinition {
            timeout_ms: self.timeout.map_or(Ok(0), |t| millis("timeout", t))?,
            retry: self.retry.as_ref().map(StepRetryArg::record).transpose()?,
            name: self.name,
            service: self.service,
            action: self.action,
            compensation: self.compensation,
        })
    }
}

/// A version number, or a name the binding API parses ("any", "no_stream").
#[derive(FromPyObject)]
enum ExpectedArg {
    Exact(u64),
    Named(String),
}

/// A position, or a name the binding API parses ("start", "end").
#[derive(FromPyObject)]
enum StartArg {
    At(u64),
    Named(String),
}

/// A file argument (`str` or `os.PathLike`) as the binding API's text.
fn path_text(path: std::path::PathBuf) -> PyResult<String> {
    path.into_os_string()
        .into_string()
        .map_err(|path| crate::errors::invalid(format!("{path:?} is not a UTF-8 path")))
}

fn saga_object(py: Python<'_>, saga: api::SagaInfo) -> PyResult<Bound<'_, PyAny>> {
    Bound::new(py, Saga::new(py, saga)?).map(Bound::into_any)
}

fn lease_object(lease: Arc<api::Lease>) -> Lease {
    Lease { inner: lease }
}

/// A connection to Syros. Connecting starts when it is created and runs on the core runtime; every
/// operation first waits for it.
#[pyclass(frozen, module = "syros._syros", name = "Client")]
pub struct Client {
    inner: Arc<api::Client>,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        addresses, *, connect_timeout = 5.0, call_timeout = 10.0, retry = None,
        resubscribe = None, owner = None, auth_token = None, keepalive_interval = Some(20.0),
        tls_ca_file = None, tls_server_name = None, tls_client_cert_file = None,
        tls_client_key_file = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        addresses: Vec<String>,
        connect_timeout: f64,
        call_timeout: f64,
        retry: Option<RetryArg>,
        resubscribe: Option<RetryArg>,
        owner: Option<String>,
        auth_token: Option<String>,
        keepalive_interval: Option<f64>,
        tls_ca_file: Option<std::path::PathBuf>,
        tls_server_name: Option<String>,
        tls_client_cert_file: Option<std::path::PathBuf>,
        tls_client_key_file: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let mut config = api::ClientConfig::new(addresses);
        config.connect_timeout_ms = millis("connect_timeout", connect_timeout)?;
        config.call_timeout_ms = millis("call_timeout", call_timeout)?;
        config.retry = retry.as_ref().map(RetryArg::record).transpose()?;
        config.resubscribe = resubscribe.as_ref().map(RetryArg::record).transpose()?;
        config.owner = owner;
        config.auth_token = auth_token;
        config.keepalive_interval_ms = keepalive_interval
            .map(|s| millis("keepalive_interval", s))
            .transpose()?;
        config.tls_ca_file = tls_ca_file.map(path_text).transpose()?;
        config.tls_server_name = tls_server_name;
        config.tls_client_cert_file = tls_client_cert_file.map(path_text).transpose()?;
        config.tls_client_key_file = tls_client_key_file.map(path_text).transpose()?;
        Ok(Client {
            inner: api::Client::new(config).map_err(to_py)?,
        })
    }

    /// Wait until connected (raises the connection's error).
    #[pyo3(signature = (blocking = true))]
    fn connect<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.connect(), Ok)
    }

    /// Replace the bearer token sent with every later call (None: send none).
    fn set_auth_token(&self, token: Option<String>) {
        self.inner.set_auth_token(token);
    }

    /// Ask the server whether it is serving.
    #[pyo3(signature = (blocking = true))]
    fn check_health<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.check_health(), Ok)
    }

    /// The default lock owner (once connected).
    #[getter]
    fn owner(&self) -> PyResult<String> {
        self.inner.owner().map_err(to_py)
    }

    /// The address calls currently go to (once connected).
    #[getter]
    fn current_address(&self) -> PyResult<String> {
        self.inner.current_address().map_err(to_py)
    }

    /// Calls, attempts, retries and failovers since connecting.
    fn stats(&self) -> PyResult<Vec<(&'static str, u64)>> {
        let stats = self.inner.stats().map_err(to_py)?;
        Ok(vec![
            ("calls", stats.calls),
            ("attempts", stats.attempts),
            ("retries", stats.retries),
            ("failovers", stats.failovers),
        ])
    }

    // --- locks ----------------------------------------------------------------------------

    /// Acquire `key`, waiting up to `wait` seconds (then LockTimeout).
    #[pyo3(signature = (key, ttl, wait, owner = None, auto_renew = true, blocking = true))]
    #[allow(clippy::too_many_arguments)]
    fn lock<'py>(
        &self,
        py: Python<'py>,
        key: String,
        ttl: f64,
        wait: f64,
        owner: Option<String>,
        auto_renew: bool,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut request = api::LockRequest::new(millis("ttl", ttl)?, millis("wait", wait)?);
        request.owner = owner;
        request.auto_renew = auto_renew;
        finish(py, blocking, self.inner.lock(key, request), |lease| {
            Ok(lease_object(lease))
        })
    }

    /// Acquire `key` if it is free now; None when someone holds it.
    #[pyo3(signature = (key, ttl, owner = None, auto_renew = true, blocking = true))]
    fn try_lock<'py>(
        &self,
        py: Python<'py>,
        key: String,
        ttl: f64,
        owner: Option<String>,
        auto_renew: bool,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut request = api::LockRequest::new(millis("ttl", ttl)?, 0);
        request.owner = owner;
        request.auto_renew = auto_renew;
        finish(py, blocking, self.inner.try_lock(key, request), |lease| {
            Ok(lease.map(lease_object))
        })
    }

    /// The current holder of `key`, or None.
    #[pyo3(signature = (key, blocking = true))]
    fn lock_status<'py>(
        &self,
        py: Python<'py>,
        key: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.lock_status(key), |info| {
            Ok(info.map(LeaseInfo::from))
        })
    }

    /// Held locks whose key starts with `prefix`.
    #[pyo3(signature = (prefix = String::new(), limit = 0, blocking = true))]
    fn list_locks<'py>(
        &self,
        py: Python<'py>,
        prefix: String,
        limit: u32,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.list_locks(prefix, limit), |all| {
            Ok(all.into_iter().map(LeaseInfo::from).collect::<Vec<_>>())
        })
    }

    /// Administrative: drop whatever lease holds `key`; returns it.
    #[pyo3(signature = (key, blocking = true))]
    fn force_release<'py>(
        &self,
        py: Python<'py>,
        key: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.force_release(key), |info| {
            Ok(info.map(LeaseInfo::from))
        })
    }

    // --- cache ----------------------------------------------------------------------------

    #[pyo3(signature = (key, blocking = true))]
    fn cache_get<'py>(
        &self,
        py: Python<'py>,
        key: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.cache_get(key), |entry| {
            Ok(entry.map(CacheEntry::from))
        })
    }

    /// Store `value`; returns the expiry (ms since the epoch) or None.
    #[pyo3(signature = (key, value, ttl = None, tags = Vec::new(), blocking = true))]
    fn cache_set<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: &Bound<'py, PyBytes>,
        ttl: Option<f64>,
        tags: Vec<String>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let set = cache_set_record(ttl, tags)?;
        let task = self.inner.cache_set(key, value.as_bytes().to_vec(), set);
        finish(py, blocking, task, Ok)
    }

    #[pyo3(signature = (key, blocking = true))]
    fn cache_delete<'py>(
        &self,
        py: Python<'py>,
        key: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.cache_delete(key), Ok)
    }

    #[pyo3(signature = (tag, blocking = true))]
    fn cache_invalidate_tag<'py>(
        &self,
        py: Python<'py>,
        tag: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.cache_invalidate_tag(tag), Ok)
    }

    /// Get-or-compute, pulled: the value under `key` (bytes), or a `ComputeTicket` when this
    /// caller computes it (single-flight per key in this process). The value is stored with
    /// `ttl` and `tags`.
    #[pyo3(signature = (key, ttl = None, tags = Vec::new(), blocking = true))]
    fn cache_begin<'py>(
        &self,
        py: Python<'py>,
        key: String,
        ttl: Option<f64>,
        tags: Vec<String>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let set = cache_set_record(ttl, tags)?;
        finish(py, blocking, self.inner.cache_begin(key, set), |lookup| {
            Ok(with_gil(move |py| match lookup {
                api::CacheLookup::Hit(value) => Ok(PyBytes::new(py, &value).into_any()),
                api::CacheLookup::Compute(ticket) => {
                    Ok(Bound::new(py, ComputeTicket { inner: ticket })?.into_any())
                }
            }))
        })
    }

    // --- events ---------------------------------------------------------------------------

    /// Append `(event_id, type, data_json, metadata_json)` tuples atomically if the stream is at
    /// `expected_version` (an int, "any" or "no_stream").
    #[pyo3(signature = (stream, events, expected_version, blocking = true))]
    fn events_append<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        events: Vec<(Option<String>, String, String, Option<String>)>,
        expected_version: ExpectedArg,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let expected = match expected_version {
            ExpectedArg::Exact(version) => api::ExpectedVersion::Exact(version),
            ExpectedArg::Named(name) => api::parse_expected_version(&name).map_err(to_py)?,
        };
        let events = events
            .into_iter()
            .map(
                |(event_id, event_type, data_json, metadata_json)| api::NewEvent {
                    event_id,
                    event_type,
                    data_json,
                    metadata_json,
                },
            )
            .collect();
        finish(
            py,
            blocking,
            self.inner.append(stream, events, expected),
            |r| Ok(AppendResult::from(r)),
        )
    }

    /// Read one stream (or all streams, `stream=None`) from a version/position (`None` = the
    /// end, for backwards reads), at most `limit` events (0 = the server's default).
    #[pyo3(signature = (stream, start, backwards = false, limit = 0, blocking = true))]
    fn events_read<'py>(
        &self,
        py: Python<'py>,
        stream: Option<String>,
        start: Option<u64>,
        backwards: bool,
        limit: u32,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = api::ReadRequest {
            stream,
            start,
            backwards,
            limit,
        };
        finish(py, blocking, self.inner.read(request), |read| {
            Ok(with_gil(move |py| {
                ReadResult::new(py, read)?.into_bound_py_any(py)
            }))
        })
    }

    /// Follow one stream (or all, `stream=None`) from a version/position, "start" or "end".
    #[pyo3(signature = (stream, start, blocking = true))]
    fn events_subscribe<'py>(
        &self,
        py: Python<'py>,
        stream: Option<String>,
        start: StartArg,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let start = match start {
            StartArg::At(at) => api::SubscribeStart::At(at),
            StartArg::Named(name) => api::SubscribeStart::parse(&name).map_err(to_py)?,
        };
        finish(py, blocking, self.inner.subscribe(stream, start), |inner| {
            Ok(Subscription { inner })
        })
    }

    // --- sagas ----------------------------------------------------------------------------

    #[pyo3(signature = (name, steps, input_json, idempotency_key = None, retry = None, blocking = true))]
    #[allow(clippy::too_many_arguments)]
    fn sagas_start<'py>(
        &self,
        py: Python<'py>,
        name: String,
        steps: Vec<StepArg>,
        input_json: String,
        idempotency_key: Option<String>,
        retry: Option<StepRetryArg>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let saga = api::StartSaga {
            name,
            steps: steps
                .into_iter()
                .map(StepArg::record)
                .collect::<PyResult<_>>()?,
            input_json,
            idempotency_key,
            retry: retry.as_ref().map(StepRetryArg::record).transpose()?,
        };
        finish(py, blocking, self.inner.start_saga(saga), saga_result)
    }

    #[pyo3(signature = (saga_id, blocking = true))]
    fn sagas_get<'py>(
        &self,
        py: Python<'py>,
        saga_id: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.get_saga(saga_id), saga_result)
    }

    #[pyo3(signature = (state = None, name = None, limit = 0, blocking = true))]
    fn sagas_list<'py>(
        &self,
        py: Python<'py>,
        state: Option<String>,
        name: Option<String>,
        limit: u32,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let state = state
            .as_deref()
            .map(api::parse_saga_state)
            .transpose()
            .map_err(to_py)?;
        finish(
            py,
            blocking,
            self.inner.list_sagas(state, name, limit),
            |sagas| {
                Ok(with_gil(move |py| {
                    sagas
                        .into_iter()
                        .map(|saga| saga_object(py, saga))
                        .collect::<PyResult<Vec<_>>>()?
                        .into_bound_py_any(py)
                }))
            },
        )
    }

    #[pyo3(signature = (saga_id, blocking = true))]
    fn sagas_cancel<'py>(
        &self,
        py: Python<'py>,
        saga_id: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(py, blocking, self.inner.cancel_saga(saga_id), saga_result)
    }

    /// Wait until the saga is final, at most `timeout` seconds (then DeadlineExceeded).
    #[pyo3(signature = (saga_id, timeout, blocking = true))]
    fn sagas_wait<'py>(
        &self,
        py: Python<'py>,
        saga_id: String,
        timeout: f64,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout_ms = millis("timeout", timeout)?;
        finish(
            py,
            blocking,
            self.inner.wait_saga(saga_id, timeout_ms),
            saga_result,
        )
    }

    /// A pulled step runner for `service`, holding at most `max_concurrent` tasks at once.
    #[pyo3(signature = (service, max_concurrent = 16, blocking = true))]
    fn worker<'py>(
        &self,
        py: Python<'py>,
        service: String,
        max_concurrent: u32,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        finish(
            py,
            blocking,
            self.inner.worker(service, max_concurrent),
            |inner| Ok(Worker { inner }),
        )
    }
}

fn cache_set_record(ttl: Option<f64>, tags: Vec<String>) -> PyResult<api::CacheSet> {
    Ok(api::CacheSet {
        ttl_ms: ttl.map(|t| millis("ttl", t)).transpose()?,
        tags,
    })
}

#[allow(clippy::unnecessary_wraps)] // the shape `finish` takes
fn saga_result(
    saga: api::SagaInfo,
) -> PyResult<crate::rt::WithGil<impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>>>
{
    Ok(with_gil(move |py| saga_object(py, saga)))
}
