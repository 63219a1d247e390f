//! The binding API's plain records as read-only Python objects (milliseconds become seconds
//! where the Python API speaks seconds). JSON documents are kept as text
//! (`*_json`) and parsed on access (`data`, `input`, ...).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use syros_binding_api as api;

/// Python's spelling of an optional value in a repr.
fn opt<T: std::fmt::Display>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "None".to_string(), |v| v.to_string())
}

fn loads<'py>(py: Python<'py>, text: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
    match text {
        None => Ok(py.None().into_bound(py)),
        Some("") => Ok(py.None().into_bound(py)),
        Some(text) => py
            .import(pyo3::intern!(py, "json"))?
            .call_method1(pyo3::intern!(py, "loads"), (text,)),
    }
}

/// A lease as the server granted (or last renewed) it.
#[pyclass(frozen, get_all, module = "syros._syros")]
#[derive(Clone)]
pub struct LeaseInfo {
    pub lease_id: String,
    pub key: String,
    pub owner: String,
    pub fencing_token: u64,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
}

impl From<api::LeaseInfo> for LeaseInfo {
    fn from(info: api::LeaseInfo) -> Self {
        LeaseInfo {
            lease_id: info.lease_id,
            key: info.key,
            owner: info.owner,
            fencing_token: info.fencing_token,
            acquired_at_ms: info.acquired_at_ms,
            expires_at_ms: info.expires_at_ms,
        }
    }
}

#[pymethods]
impl LeaseInfo {
    fn __repr__(&self) -> String {
        format!(
            "LeaseInfo(key={:?}, owner={:?}, fencing_token={}, expires_at_ms={})",
            self.key, self.owner, self.fencing_token, self.expires_at_ms
        )
    }
}

/// A cached value with its expiry and tags.
#[pyclass(frozen, module = "syros._syros")]
pub struct CacheEntry {
    entry: api::CacheEntry,
}

impl From<api::CacheEntry> for CacheEntry {
    fn from(entry: api::CacheEntry) -> Self {
        CacheEntry { entry }
    }
}

#[pymethods]
impl CacheEntry {
    /// The stored bytes.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.entry.value)
    }

    /// When it expires (ms since the epoch), or None.
    #[getter]
    fn expires_at_ms(&self) -> Option<i64> {
        self.entry.expires_at_ms
    }

    /// Its tags.
    #[getter]
    fn tags(&self) -> Vec<String> {
        self.entry.tags.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "CacheEntry(len={}, expires_at_ms={}, tags={:?})",
            self.entry.value.len(),
            opt(&self.entry.expires_at_ms),
            self.entry.tags
        )
    }
}

/// A stored event.
#[pyclass(frozen, get_all, module = "syros._syros")]
pub struct RecordedEvent {
    pub stream: String,
    pub version: u64,
    pub global_position: u64,
    pub event_id: String,
    pub event_type: String,
    pub data_json: String,
    pub metadata_json: Option<String>,
    pub created_at_ms: i64,
}

impl From<api::RecordedEvent> for RecordedEvent {
    fn from(e: api::RecordedEvent) -> Self {
        RecordedEvent {
            stream: e.stream,
            version: e.version,
            global_position: e.global_position,
            event_id: e.event_id,
            event_type: e.event_type,
            data_json: e.data_json,
            metadata_json: e.metadata_json,
            created_at_ms: e.created_at_ms,
        }
    }
}

#[pymethods]
impl RecordedEvent {
    /// The event's type name (same as `event_type`).
    #[getter]
    fn r#type(&self) -> &str {
        &self.event_type
    }

    /// The data, parsed from JSON.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, Some(&self.data_json))
    }

    /// The metadata, parsed from JSON (`None` if there is none).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, self.metadata_json.as_deref())
    }

    fn __repr__(&self) -> String {
        format!(
            "RecordedEvent(stream={:?}, version={}, global_position={}, type={:?}, data={})",
            self.stream, self.version, self.global_position, self.event_type, self.data_json
        )
    }
}

/// A page of events.
#[pyclass(frozen, get_all, module = "syros._syros")]
pub struct ReadResult {
    pub events: Vec<Py<RecordedEvent>>,
    /// The stream's last version (stream reads) or the store's last position (reads of all).
    pub last: u64,
    pub exists: bool,
}

impl ReadResult {
    pub fn new(py: Python<'_>, result: api::ReadResult) -> PyResult<Self> {
        Ok(ReadResult {
            events: result
                .events
                .into_iter()
                .map(|e| Py::new(py, RecordedEvent::from(e)))
                .collect::<PyResult<_>>()?,
            last: result.last,
            exists: result.exists,
        })
    }
}

#[pymethods]
impl ReadResult {
    fn __len__(&self) -> usize {
        self.events.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "ReadResult(events=<{}>, last={}, exists={})",
            self.events.len(),
            self.last,
            if self.exists { "True" } else { "False" }
        )
    }
}

/// What an append wrote.
#[pyclass(frozen, get_all, module = "syros._syros")]
pub struct AppendResult {
    pub last_version: u64,
    pub first_position: u64,
    pub last_position: u64,
}

impl From<api::AppendResult> for AppendResult {
    fn from(r: api::AppendResult) -> Self {
        AppendResult {
            last_version: r.last_version,
            first_position: r.first_position,
            last_position: r.last_position,
        }
    }
}

#[pymethods]
impl AppendResult {
    fn __repr__(&self) -> String {
        format!(
            "AppendResult(last_version={}, first_position={}, last_position={})",
            self.last_version, self.first_position, self.last_position
        )
    }
}

/// One attempt at a step's action or compensation.
#[pyclass(frozen, get_all, module = "syros._syros")]
pub struct StepAttempt {
    pub attempt: u32,
    pub kind: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

#[pymethods]
impl StepAttempt {
    fn __repr__(&self) -> String {
        format!(
            "StepAttempt(attempt={}, kind={:?}, error_type={})",
            self.attempt,
            self.kind,
            opt(&self.error_type)
        )
    }
}

/// A saga step as the server reports it.
#[pyclass(frozen, get_all, module = "syros._syros")]
pub struct SagaStep {
    pub name: String,
    pub service: String,
    pub action: String,
    pub compensation: Option<String>,
    pub state: String,
    pub output_json: Option<String>,
    pub attempts: Vec<Py<StepAttempt>>,
}

#[pymethods]
impl SagaStep {
    /// The action's output, parsed from JSON (`None` until it completed).
    #[getter]
    fn output<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, self.output_json.as_deref())
    }

    fn __repr__(&self) -> String {
        format!(
            "SagaStep(name={:?}, state={:?}, attempts={})",
            self.name,
            self.state,
            self.attempts.len()
        )
    }
}

/// A saga as the server reports it.
#[pyclass(frozen, get_all, module = "syros._syros")]
pub struct Saga {
    pub saga_id: String,
    pub name: String,
    /// pending, running, compensating, completed, compensated, compensation_failed, cancelled.
    pub state: String,
    pub input_json: String,
    pub idempotency_key: Option<String>,
    pub steps: Vec<Py<SagaStep>>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub error: Option<String>,
    /// Whether nothing more will happen to the saga.
    pub is_final: bool,
}

impl Saga {
    pub fn new(py: Python<'_>, saga: api::SagaInfo) -> PyResult<Self> {
        let steps = saga
            .steps
            .into_iter()
            .map(|step| {
                let attempts = step
                    .attempts
                    .into_iter()
                    .map(|a| {
                        Py::new(
                            py,
                            StepAttempt {
                                attempt: a.attempt,
                                kind: a.kind,
                                started_at_ms: a.started_at_ms,
                                finished_at_ms: a.finished_at_ms,
                                error_type: a.error_type,
                                error_message: a.error_message,
                            },
                        )
                    })
                    .collect::<PyResult<_>>()?;
                Py::new(
                    py,
                    SagaStep {
                        name: step.name,
                        service: step.service,
                        action: step.action,
                        compensation: step.compensation,
                        state: step.state,
                        output_json: step.output_json,
                        attempts,
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        Ok(Saga {
            saga_id: saga.saga_id,
            name: saga.name,
            state: saga.state.as_str().to_string(),
            input_json: saga.input_json,
            idempotency_key: saga.idempotency_key,
            steps,
            created_at_ms: saga.created_at_ms,
            updated_at_ms: saga.updated_at_ms,
            error: saga.error,
            is_final: saga.state.is_final(),
        })
    }
}

#[pymethods]
impl Saga {
    /// The input, parsed from JSON.
    #[getter]
    fn input<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, Some(&self.input_json))
    }

    /// The named step.
    fn step(&self, py: Python<'_>, name: &str) -> Option<Py<SagaStep>> {
        self.steps
            .iter()
            .find(|s| s.get().name == name)
            .map(|s| s.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        format!(
            "Saga(saga_id={:?}, name={:?}, state={:?})",
            self.saga_id, self.name, self.state
        )
    }
}

/// What a step handler is asked to do.
#[pyclass(frozen, get_all, module = "syros._syros")]
pub struct Task {
    pub task_id: String,
    pub saga_id: String,
    pub step_name: String,
    /// The action or compensation name.
    pub handler: String,
    pub is_compensation: bool,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `<saga_id>/<step>/<action|compensation>`: the same for every redelivery and retry.
    pub idempotency_key: String,
    pub input_json: String,
    pub previous_outputs_json: String,
    /// Seconds the server gives the attempt.
    pub timeout: f64,
}

impl From<api::TaskRecord> for Task {
    fn from(t: api::TaskRecord) -> Self {
        Task {
            task_id: t.task_id,
            saga_id: t.saga_id,
            step_name: t.step_name,
            handler: t.handler,
            is_compensation: t.is_compensation,
            attempt: t.attempt,
            idempotency_key: t.idempotency_key,
            input_json: t.input_json,
            previous_outputs_json: t.previous_outputs_json,
            timeout: crate::seconds(t.timeout_ms),
        }
    }
}

#[pymethods]
impl Task {
    /// The saga's input, parsed from JSON.
    #[getter]
    fn input<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, Some(&self.input_json))
    }

    /// Outputs of the steps completed so far, by step name.
    #[getter]
    fn previous_outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, Some(&self.previous_outputs_json))
    }

    fn __repr__(&self) -> String {
        format!(
            "Task(saga_id={:?}, step_name={:?}, handler={:?}, attempt={})",
            self.saga_id, self.step_name, self.handler, self.attempt
        )
    }
}
