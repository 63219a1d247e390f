//! `syros._syros.Client`: every client-core operation, each either blocking (`blocking=True`, the
//! GIL released while waiting) or returning an asyncio awaitable (`blocking=False`). The Python
//! package (`syros.Client`, `syros.AsyncClient`) is the idiomatic API over it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use pyo3::IntoPyObjectExt;
use syros_client::{
    Client as CoreClient, ClientOptions, Direction, Error, ErrorKind, EventData, ExpectedVersion,
    ReadFrom, RetryPolicy, SagaState, SetOptions, StartSaga, StepDefinition, StepRetryPolicy,
    SubscribeFrom, TokenProvider,
};

use crate::callback;
use crate::errors::{of_kind, to_py, with_cause};
use crate::handles::{seconds, Lease, Subscription, Worker};
use crate::rt;
use crate::types::{AppendResult, CacheEntry, LeaseInfo, ReadResult, Saga};

type Connection = Shared<BoxFuture<'static, Result<CoreClient, Error>>>;

/// A value built with the GIL when it is handed to Python (for results holding Python objects).
struct WithGil<F>(F);

fn with_gil<F>(build: F) -> WithGil<F>
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

fn invalid(message: impl Into<String>) -> PyErr {
    of_kind(ErrorKind::InvalidArgument, message)
}

/// `syros.RetryPolicy` (read by attribute).
#[derive(FromPyObject)]
struct RetryArg {
    initial_interval: f64,
    multiplier: f64,
    max_interval: f64,
    max_attempts: u32,
    deadline: Option<f64>,
}

impl RetryArg {
    fn policy(&self) -> PyResult<RetryPolicy> {
        Ok(RetryPolicy {
            initial_interval: seconds("initial_interval", self.initial_interval)?,
            multiplier: self.multiplier,
            max_interval: seconds("max_interval", self.max_interval)?,
            max_attempts: self.max_attempts,
            deadline: self.deadline.map(|d| seconds("deadline", d)).transpose()?,
        })
    }
}

/// `syros.StepRetryPolicy` (read by attribute).
#[derive(FromPyObject)]
struct StepRetryArg {
    initial_interval: f64,
    backoff_coefficient: f64,
    maximum_interval: f64,
    maximum_attempts: u32,
    non_retryable_errors: Vec<String>,
}

impl StepRetryArg {
    fn policy(&self) -> PyResult<StepRetryPolicy> {
        Ok(StepRetryPolicy {
            initial_interval: seconds("initial_interval", self.initial_interval)?,
            backoff_coefficient: self.backoff_coefficient,
            maximum_interval: seconds("maximum_interval", self.maximum_interval)?,
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

/// An expected stream version: an int, "any" or "no_stream".
#[derive(FromPyObject)]
enum ExpectedArg {
    Exact(u64),
    Named(String),
}

/// Where a subscription starts: an int, "start" or "end".
#[derive(FromPyObject)]
enum FromArg {
    At(u64),
    Named(String),
}

fn saga_state(name: &str) -> PyResult<SagaState> {
    Ok(match name {
        "pending" => SagaState::Pending,
        "running" => SagaState::Running,
        "compensating" => SagaState::Compensating,
        "completed" => SagaState::Completed,
        "compensated" => SagaState::Compensated,
        "compensation_failed" => SagaState::CompensationFailed,
        "cancelled" => SagaState::Cancelled,
        other => return Err(invalid(format!("unknown saga state {other:?}"))),
    })
}

fn saga_object(py: Python<'_>, saga: syros_client::SagaInfo) -> PyResult<Bound<'_, PyAny>> {
    Bound::new(py, Saga::new(py, saga)?).map(Bound::into_any)
}

/// A connection to Syros. Connecting starts when it is created and runs on the core runtime; every
/// operation first waits for it.
#[pyclass(frozen, module = "syros._syros", name = "Client")]
pub struct Client {
    conn: Connection,
    /// The process the client was created in: its connections do not survive a fork.
    pid: u32,
}

impl Client {
    fn same_process(&self) -> PyResult<()> {
        if std::process::id() == self.pid {
            Ok(())
        } else {
            Err(invalid(
                "this client was created in another process (before a fork): create a new \
                 client in this process",
            ))
        }
    }

    fn conn(&self) -> PyResult<Connection> {
        self.same_process()?;
        Ok(self.conn.clone())
    }

    fn connected(&self) -> PyResult<CoreClient> {
        self.same_process()?;
        match self.conn.peek() {
            Some(Ok(client)) => Ok(client.clone()),
            Some(Err(err)) => Err(to_py(err.clone())),
            None => Err(of_kind(
                ErrorKind::Unavailable,
                "the client is still connecting: await connect() first",
            )),
        }
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        addresses, *, connect_timeout = 5.0, call_timeout = 10.0, retry = None,
        resubscribe = None, owner = None, auth_token = None, keepalive_interval = Some(20.0),
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        addresses: Vec<String>,
        connect_timeout: f64,
        call_timeout: f64,
        retry: Option<RetryArg>,
        resubscribe: Option<RetryArg>,
        owner: Option<String>,
        auth_token: Option<Py<PyAny>>,
        keepalive_interval: Option<f64>,
    ) -> PyResult<Self> {
        let mut options = ClientOptions::new(addresses);
        options.connect_timeout = seconds("connect_timeout", connect_timeout)?;
        options.call_timeout = seconds("call_timeout", call_timeout)?;
        if let Some(retry) = retry {
            options.retry = retry.policy()?;
        }
        if let Some(resubscribe) = resubscribe {
            options.resubscribe = resubscribe.policy()?;
        }
        options.owner = owner;
        options.keepalive_interval = keepalive_interval
            .map(|s| seconds("keepalive_interval", s))
            .transpose()?;
        options.auth_token = match auth_token {
            None => None,
            Some(token) => Some(token_provider(py, token)?),
        };
        let handle = syros_client::runtime::try_runtime()
            .map_err(|err| crate::errors::internal(err.to_string()))?;
        let task = handle.spawn(CoreClient::connect(options));
        let conn: Connection = async move {
            match task.await {
                Ok(result) => result,
                Err(_) => Err(Error::new(
                    ErrorKind::Cancelled,
                    "connecting was cancelled (the client runtime was shut down)",
                )),
            }
        }
        .boxed()
        .shared();
        Ok(Client {
            conn,
            pid: std::process::id(),
        })
    }

    /// Wait until connected (raises the connection's error).
    #[pyo3(signature = (blocking = true))]
    fn connect<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            conn.await.map(|_| ()).map_err(to_py)
        })
    }

    /// Ask the server whether it is serving.
    #[pyo3(signature = (blocking = true))]
    fn check_health<'py>(&self, py: Python<'py>, blocking: bool) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            client.check_health().await.map_err(to_py)
        })
    }

    /// The default lock owner.
    #[getter]
    fn owner(&self) -> PyResult<String> {
        Ok(self.connected()?.owner().to_string())
    }

    /// The address calls currently go to.
    #[getter]
    fn current_address(&self) -> PyResult<String> {
        Ok(self.connected()?.current_address().to_string())
    }

    /// Calls, attempts, retries and failovers since connecting.
    fn stats(&self) -> PyResult<Vec<(&'static str, u64)>> {
        let stats = self.connected()?.stats();
        Ok(vec![
            ("calls", stats.calls),
            ("attempts", stats.attempts),
            ("retries", stats.retries),
            ("failovers", stats.failovers),
        ])
    }

    // --- locks ----------------------------------------------------------------------------

    /// Acquire `key` (waiting up to `wait` seconds); `try_only` returns None instead of raising
    /// LockTimeout when it is held.
    #[pyo3(signature = (key, ttl, wait, owner = None, auto_renew = true, try_only = false, blocking = true))]
    #[allow(clippy::too_many_arguments)]
    fn lock<'py>(
        &self,
        py: Python<'py>,
        key: String,
        ttl: f64,
        wait: f64,
        owner: Option<String>,
        auto_renew: bool,
        try_only: bool,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ttl = seconds("ttl", ttl)?;
        let wait = seconds("wait", wait)?;
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let mut builder = client.lock(key).ttl(ttl).wait(wait).auto_renew(auto_renew);
            if let Some(owner) = owner {
                builder = builder.owner(owner);
            }
            if try_only {
                let lease = builder.try_acquire().await.map_err(to_py)?;
                Ok(lease.map(Lease::new))
            } else {
                let lease = builder.acquire().await.map_err(to_py)?;
                Ok(Some(Lease::new(lease)))
            }
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
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let info = client.lock_status(&key).await.map_err(to_py)?;
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
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let leases = client.list_locks(&prefix, limit).await.map_err(to_py)?;
            Ok(leases.into_iter().map(LeaseInfo::from).collect::<Vec<_>>())
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
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let info = client.force_release(&key).await.map_err(to_py)?;
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
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let entry = client.cache().get(&key).await.map_err(to_py)?;
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
        let value = syros_client::Bytes::copy_from_slice(value.as_bytes());
        let options = SetOptions {
            ttl: ttl.map(|t| seconds("ttl", t)).transpose()?,
            tags,
        };
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            client
                .cache()
                .set(&key, value, options)
                .await
                .map_err(to_py)
        })
    }

    #[pyo3(signature = (key, blocking = true))]
    fn cache_delete<'py>(
        &self,
        py: Python<'py>,
        key: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            client.cache().delete(&key).await.map_err(to_py)
        })
    }

    #[pyo3(signature = (tag, blocking = true))]
    fn cache_invalidate_tag<'py>(
        &self,
        py: Python<'py>,
        tag: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            client.cache().invalidate_tag(&tag).await.map_err(to_py)
        })
    }

    /// The value under `key`, or `compute()`'s (stored with `ttl` and `tags`); single-flight
    /// per key in this process. `compute` may be async when not blocking.
    #[pyo3(signature = (key, compute, ttl = None, tags = Vec::new(), blocking = true))]
    fn cache_get_or_compute<'py>(
        &self,
        py: Python<'py>,
        key: String,
        compute: Py<PyAny>,
        ttl: Option<f64>,
        tags: Vec<String>,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = SetOptions {
            ttl: ttl.map(|t| seconds("ttl", t)).transpose()?,
            tags,
        };
        let locals = if blocking {
            None
        } else {
            Some(rt::current_locals(py)?)
        };
        let compute = Arc::new(compute);
        let raised: Arc<Mutex<Option<Py<PyAny>>>> = Arc::default();
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let slot = raised.clone();
            let result = client
                .cache()
                .get_or_compute_with(&key, options, move || {
                    callback::compute(compute, locals, slot)
                })
                .await;
            match result {
                Ok(value) => Ok(value),
                Err(err) => {
                    let cause = raised.lock().unwrap_or_else(|p| p.into_inner()).take();
                    Err(with_cause(err, cause))
                }
            }
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
            ExpectedArg::Exact(v) => ExpectedVersion::Exact(v),
            ExpectedArg::Named(name) => match name.as_str() {
                "any" => ExpectedVersion::Any,
                "no_stream" => ExpectedVersion::NoStream,
                other => {
                    return Err(invalid(format!(
                        "expected_version must be an int, \"any\" or \"no_stream\", not {other:?}"
                    )))
                }
            },
        };
        let events: Vec<EventData> = events
            .into_iter()
            .map(
                |(event_id, event_type, data_json, metadata_json)| EventData {
                    event_id,
                    event_type,
                    data_json,
                    metadata_json,
                },
            )
            .collect();
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let result = client
                .events()
                .append(&stream, events, expected)
                .await
                .map_err(to_py)?;
            Ok(AppendResult::from(result))
        })
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
        let from = start.map_or(ReadFrom::End, ReadFrom::At);
        let direction = if backwards {
            Direction::Backwards
        } else {
            Direction::Forwards
        };
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let events = client.events();
            let read = match stream {
                Some(stream) => events.read_stream(&stream, from, direction, limit).await,
                None => events.read_all(from, direction, limit).await,
            }
            .map_err(to_py)?;
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
        start: FromArg,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let from = match start {
            FromArg::At(at) => SubscribeFrom::At(at),
            FromArg::Named(name) => match name.as_str() {
                "start" => SubscribeFrom::Start,
                "end" => SubscribeFrom::End,
                other => {
                    return Err(invalid(format!(
                        "a subscription starts at an int, \"start\" or \"end\", not {other:?}"
                    )))
                }
            },
        };
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let events = client.events();
            let subscription = match stream {
                Some(stream) => events.subscribe(&stream, from).await,
                None => events.subscribe_all(from).await,
            }
            .map_err(to_py)?;
            Ok(Subscription::new(subscription))
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
        let steps = steps
            .into_iter()
            .map(|step| {
                Ok(StepDefinition {
                    name: step.name,
                    service: step.service,
                    action: step.action,
                    compensation: step.compensation,
                    timeout: step
                        .timeout
                        .map(|t| seconds("timeout", t))
                        .transpose()?
                        .unwrap_or(Duration::ZERO),
                    retry: step.retry.as_ref().map(StepRetryArg::policy).transpose()?,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let saga = StartSaga {
            name,
            steps,
            input_json,
            idempotency_key,
            retry: retry.as_ref().map(StepRetryArg::policy).transpose()?,
        };
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let saga = client.sagas().start(saga).await.map_err(to_py)?;
            Ok(with_gil(move |py| saga_object(py, saga)))
        })
    }

    #[pyo3(signature = (saga_id, blocking = true))]
    fn sagas_get<'py>(
        &self,
        py: Python<'py>,
        saga_id: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let saga = client.sagas().get(&saga_id).await.map_err(to_py)?;
            Ok(with_gil(move |py| saga_object(py, saga)))
        })
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
        let state = state.as_deref().map(saga_state).transpose()?;
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let sagas = client
                .sagas()
                .list(state, name.as_deref(), limit)
                .await
                .map_err(to_py)?;
            Ok(with_gil(move |py| {
                let sagas = sagas
                    .into_iter()
                    .map(|saga| saga_object(py, saga))
                    .collect::<PyResult<Vec<_>>>()?;
                sagas.into_bound_py_any(py)
            }))
        })
    }

    #[pyo3(signature = (saga_id, blocking = true))]
    fn sagas_cancel<'py>(
        &self,
        py: Python<'py>,
        saga_id: String,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let saga = client.sagas().cancel(&saga_id).await.map_err(to_py)?;
            Ok(with_gil(move |py| saga_object(py, saga)))
        })
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
        let timeout = seconds("timeout", timeout)?;
        let conn = self.conn()?;
        rt::call(py, blocking, async move {
            let client = conn.await.map_err(to_py)?;
            let saga = client
                .sagas()
                .wait(&saga_id, timeout)
                .await
                .map_err(to_py)?;
            Ok(with_gil(move |py| saga_object(py, saga)))
        })
    }

    /// Start a step runner for `service` with `(name, callable)` handlers. `event_loop` runs the
    /// handlers that are `async def` functions. The client must be connected.
    #[pyo3(signature = (service, handlers, max_concurrent = 16, event_loop = None))]
    fn start_worker(
        &self,
        py: Python<'_>,
        service: String,
        handlers: Vec<(String, Py<PyAny>)>,
        max_concurrent: usize,
        event_loop: Option<Py<PyAny>>,
    ) -> PyResult<Worker> {
        let client = self.connected()?;
        let locals = match event_loop {
            Some(event_loop) => Some(
                pyo3_async_runtimes::TaskLocals::new(event_loop.into_bound(py)).copy_context(py)?,
            ),
            None => None,
        };
        let mut builder = client.worker(service).max_concurrent(max_concurrent);
        for (name, callable) in handlers {
            builder = builder.boxed_handler(name, callback::handler(callable, locals.clone()));
        }
        builder.start().map(Worker::new).map_err(to_py)
    }
}

/// A bearer token: a fixed string, or a function called before every attempt (from a client
/// thread, with the GIL; it must be quick).
fn token_provider(py: Python<'_>, token: Py<PyAny>) -> PyResult<TokenProvider> {
    if let Ok(text) = token.bind(py).cast::<PyString>() {
        let text = text.to_str()?.to_string();
        return Ok(Arc::new(move || Some(text.clone())));
    }
    if !token.bind(py).is_callable() {
        return Err(invalid(
            "auth_token must be a str or a function returning a str or None",
        ));
    }
    Ok(Arc::new(move || {
        Python::attach(|py| match token.call0(py) {
            Ok(value) => value.extract::<Option<String>>(py).unwrap_or(None),
            Err(err) => {
                err.write_unraisable(py, Some(token.bind(py)));
                None
            }
        })
    }))
}
