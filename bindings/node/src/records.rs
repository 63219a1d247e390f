//! Plain JS objects for the binding API's records (`#[napi(object)]`), and their conversions.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use syros_binding_api as api;

use crate::{non_negative, number};

/// Retry policy of unary calls or of reconnections (milliseconds).
#[napi(object)]
pub struct RetryConfig {
    pub initial_interval_ms: i64,
    pub multiplier: f64,
    pub max_interval_ms: i64,
    pub max_attempts: u32,
    pub deadline_ms: Option<i64>,
}

impl RetryConfig {
    fn record(&self) -> Result<api::RetryConfig> {
        Ok(api::RetryConfig {
            initial_interval_ms: non_negative("initialIntervalMs", self.initial_interval_ms)?,
            multiplier: self.multiplier,
            max_interval_ms: non_negative("maxIntervalMs", self.max_interval_ms)?,
            max_attempts: self.max_attempts,
            deadline_ms: self
                .deadline_ms
                .map(|d| non_negative("deadlineMs", d))
                .transpose()?,
        })
    }
}

/// How to reach Syros; unset fields keep the core's defaults.
#[napi(object)]
pub struct ClientConfig {
    pub addresses: Vec<String>,
    pub connect_timeout_ms: Option<i64>,
    pub call_timeout_ms: Option<i64>,
    pub retry: Option<RetryConfig>,
    pub resubscribe: Option<RetryConfig>,
    pub owner: Option<String>,
    pub auth_token: Option<String>,
    /// 0 turns HTTP/2 keepalive off.
    pub keepalive_interval_ms: Option<i64>,
}

impl ClientConfig {
    pub(crate) fn record(&self) -> Result<api::ClientConfig> {
        let mut config = api::ClientConfig::new(self.addresses.clone());
        if let Some(ms) = self.connect_timeout_ms {
            config.connect_timeout_ms = non_negative("connectTimeoutMs", ms)?;
        }
        if let Some(ms) = self.call_timeout_ms {
            config.call_timeout_ms = non_negative("callTimeoutMs", ms)?;
        }
        config.retry = self.retry.as_ref().map(RetryConfig::record).transpose()?;
        config.resubscribe = self
            .resubscribe
            .as_ref()
            .map(RetryConfig::record)
            .transpose()?;
        config.owner = self.owner.clone();
        config.auth_token = self.auth_token.clone();
        if let Some(ms) = self.keepalive_interval_ms {
            let ms = non_negative("keepaliveIntervalMs", ms)?;
            config.keepalive_interval_ms = (ms > 0).then_some(ms);
        }
        Ok(config)
    }
}

/// How to acquire a lock.
#[napi(object)]
pub struct LockRequest {
    pub ttl_ms: i64,
    pub wait_ms: i64,
    pub owner: Option<String>,
    pub auto_renew: Option<bool>,
}

impl LockRequest {
    pub(crate) fn record(&self) -> Result<api::LockRequest> {
        let mut request = api::LockRequest::new(
            non_negative("ttl", self.ttl_ms)?,
            non_negative("wait", self.wait_ms)?,
        );
        request.owner = self.owner.clone();
        request.auto_renew = self.auto_renew.unwrap_or(true);
        Ok(request)
    }
}

/// A lease as granted or renewed (only ever sent to JS).
#[napi(object, object_to_js = true, object_from_js = false)]
pub struct LeaseInfo {
    pub lease_id: String,
    pub key: String,
    pub owner: String,
    /// Strictly increasing per key, across restarts and replicas.
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

/// A cached value.
#[napi(object)]
pub struct CacheEntry {
    pub value: Buffer,
    pub expires_at_ms: Option<i64>,
    pub tags: Vec<String>,
}

impl From<api::CacheEntry> for CacheEntry {
    fn from(entry: api::CacheEntry) -> Self {
        CacheEntry {
            value: entry.value.to_vec().into(),
            expires_at_ms: entry.expires_at_ms,
            tags: entry.tags,
        }
    }
}

/// How to store a cache value.
#[napi(object)]
pub struct CacheSet {
    pub ttl_ms: Option<i64>,
    pub tags: Option<Vec<String>>,
}

impl CacheSet {
    pub(crate) fn record(&self) -> Result<api::CacheSet> {
        Ok(api::CacheSet {
            ttl_ms: self.ttl_ms.map(|t| non_negative("ttl", t)).transpose()?,
            tags: self.tags.clone().unwrap_or_default(),
        })
    }
}

/// An event to append (data and metadata as JSON text).
#[napi(object)]
pub struct NewEvent {
    pub event_id: Option<String>,
    pub event_type: String,
    pub data_json: String,
    pub metadata_json: Option<String>,
}

impl From<NewEvent> for api::NewEvent {
    fn from(event: NewEvent) -> Self {
        api::NewEvent {
            event_id: event.event_id,
            event_type: event.event_type,
            data_json: event.data_json,
            metadata_json: event.metadata_json,
        }
    }
}

/// A stored event.
#[napi(object)]
pub struct RecordedEvent {
    pub stream: String,
    pub version: i64,
    pub global_position: i64,
    pub event_id: String,
    pub event_type: String,
    pub data_json: String,
    pub metadata_json: Option<String>,
    pub created_at_ms: i64,
}

impl From<api::RecordedEvent> for RecordedEvent {
    fn from(event: api::RecordedEvent) -> Self {
        RecordedEvent {
            stream: event.stream,
            version: number(event.version),
            global_position: number(event.global_position),
            event_id: event.event_id,
            event_type: event.event_type,
            data_json: event.data_json,
            metadata_json: event.metadata_json,
            created_at_ms: event.created_at_ms,
        }
    }
}

/// Where an append landed.
#[napi(object)]
pub struct AppendResult {
    pub last_version: i64,
    pub first_position: i64,
    pub last_position: i64,
}

impl From<api::AppendResult> for AppendResult {
    fn from(result: api::AppendResult) -> Self {
        AppendResult {
            last_version: number(result.last_version),
            first_position: number(result.first_position),
            last_position: number(result.last_position),
        }
    }
}

/// A read of one stream (`stream` set) or of all streams.
#[napi(object)]
pub struct ReadRequest {
    pub stream: Option<String>,
    /// First version/position (inclusive); unset = the end (backwards reads).
    pub start: Option<i64>,
    pub backwards: Option<bool>,
    pub limit: Option<u32>,
}

impl ReadRequest {
    pub(crate) fn record(&self) -> Result<api::ReadRequest> {
        Ok(api::ReadRequest {
            stream: self.stream.clone(),
            start: self.start.map(|s| non_negative("from", s)).transpose()?,
            backwards: self.backwards.unwrap_or(false),
            limit: self.limit.unwrap_or(0),
        })
    }
}

/// A page of events.
#[napi(object)]
pub struct ReadResult {
    pub events: Vec<RecordedEvent>,
    pub last: i64,
    pub exists: bool,
}

impl From<api::ReadResult> for ReadResult {
    fn from(read: api::ReadResult) -> Self {
        ReadResult {
            events: read.events.into_iter().map(Into::into).collect(),
            last: number(read.last),
            exists: read.exists,
        }
    }
}

/// What a subscription's `next` got: `kind` is `event`, `timed_out` or `ended`.
#[napi(object)]
pub struct SubscriptionItem {
    pub kind: String,
    pub event: Option<RecordedEvent>,
}

impl From<api::SubscriptionItem> for SubscriptionItem {
    fn from(item: api::SubscriptionItem) -> Self {
        let (kind, event) = match item {
            api::SubscriptionItem::Event(event) => ("event", Some(event.into())),
            api::SubscriptionItem::TimedOut => ("timed_out", None),
            api::SubscriptionItem::Ended => ("ended", None),
        };
        SubscriptionItem {
            kind: kind.to_string(),
            event,
        }
    }
}

/// Server-side retry policy of a saga or step.
#[napi(object)]
pub struct StepRetry {
    pub initial_interval_ms: i64,
    pub backoff_coefficient: f64,
    pub maximum_interval_ms: i64,
    pub maximum_attempts: u32,
    pub non_retryable_errors: Option<Vec<String>>,
}

impl StepRetry {
    fn record(&self) -> Result<api::StepRetry> {
        Ok(api::StepRetry {
            initial_interval_ms: non_negative("initialInterval", self.initial_interval_ms)?,
            backoff_coefficient: self.backoff_coefficient,
            maximum_interval_ms: non_negative("maximumInterval", self.maximum_interval_ms)?,
            maximum_attempts: self.maximum_attempts,
            non_retryable_errors: self.non_retryable_errors.clone().unwrap_or_default(),
        })
    }
}

/// One step of a saga to start.
#[napi(object)]
pub struct StepDefinition {
    pub name: String,
    pub service: String,
    pub action: String,
    pub compensation: Option<String>,
    pub timeout_ms: Option<i64>,
    pub retry: Option<StepRetry>,
}

/// A saga to start.
#[napi(object)]
pub struct StartSaga {
    pub name: String,
    pub steps: Vec<StepDefinition>,
    pub input_json: String,
    pub idempotency_key: Option<String>,
    pub retry: Option<StepRetry>,
}

impl StartSaga {
    pub(crate) fn record(&self) -> Result<api::StartSaga> {
        let steps = self
            .steps
            .iter()
            .map(|step| {
                Ok(api::StepDefinition {
                    name: step.name.clone(),
                    service: step.service.clone(),
                    action: step.action.clone(),
                    compensation: step.compensation.clone(),
                    timeout_ms: non_negative("timeout", step.timeout_ms.unwrap_or(0))?,
                    retry: step.retry.as_ref().map(StepRetry::record).transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(api::StartSaga {
            name: self.name.clone(),
            steps,
            input_json: self.input_json.clone(),
            idempotency_key: self.idempotency_key.clone(),
            retry: self.retry.as_ref().map(StepRetry::record).transpose()?,
        })
    }
}

/// One attempt of a step.
#[napi(object)]
pub struct AttemptInfo {
    pub attempt: u32,
    pub kind: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

/// A step's state.
#[napi(object)]
pub struct StepInfo {
    pub name: String,
    pub service: String,
    pub action: String,
    pub compensation: Option<String>,
    pub state: String,
    pub output_json: Option<String>,
    pub attempts: Vec<AttemptInfo>,
}

/// A saga's state.
#[napi(object)]
pub struct SagaInfo {
    pub saga_id: String,
    pub name: String,
    pub state: String,
    pub input_json: String,
    pub idempotency_key: Option<String>,
    pub steps: Vec<StepInfo>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub error: Option<String>,
}

impl From<api::SagaInfo> for SagaInfo {
    fn from(saga: api::SagaInfo) -> Self {
        SagaInfo {
            saga_id: saga.saga_id,
            name: saga.name,
            state: saga.state.as_str().to_string(),
            input_json: saga.input_json,
            idempotency_key: saga.idempotency_key,
            steps: saga
                .steps
                .into_iter()
                .map(|step| StepInfo {
                    name: step.name,
                    service: step.service,
                    action: step.action,
                    compensation: step.compensation,
                    state: step.state,
                    output_json: step.output_json,
                    attempts: step
                        .attempts
                        .into_iter()
                        .map(|a| AttemptInfo {
                            attempt: a.attempt,
                            kind: a.kind,
                            started_at_ms: a.started_at_ms,
                            finished_at_ms: a.finished_at_ms,
                            error_type: a.error_type,
                            error_message: a.error_message,
                        })
                        .collect(),
                })
                .collect(),
            created_at_ms: saga.created_at_ms,
            updated_at_ms: saga.updated_at_ms,
            error: saga.error,
        }
    }
}

/// A step task handed to a worker.
#[napi(object)]
pub struct TaskRecord {
    pub task_id: String,
    pub saga_id: String,
    pub step_name: String,
    pub handler: String,
    pub is_compensation: bool,
    pub attempt: u32,
    pub idempotency_key: String,
    pub input_json: String,
    pub previous_outputs_json: String,
    pub timeout_ms: i64,
}

impl From<api::TaskRecord> for TaskRecord {
    fn from(task: api::TaskRecord) -> Self {
        TaskRecord {
            task_id: task.task_id,
            saga_id: task.saga_id,
            step_name: task.step_name,
            handler: task.handler,
            is_compensation: task.is_compensation,
            attempt: task.attempt,
            idempotency_key: task.idempotency_key,
            input_json: task.input_json,
            previous_outputs_json: task.previous_outputs_json,
            timeout_ms: number(task.timeout_ms),
        }
    }
}

/// A task's outcome: `outputJson` when it completed, else `errorType`/`message`/`nonRetryable`.
#[napi(object)]
pub struct TaskOutcome {
    pub output_json: Option<String>,
    pub error_type: Option<String>,
    pub message: Option<String>,
    pub non_retryable: Option<bool>,
}

impl From<TaskOutcome> for api::TaskOutcome {
    fn from(outcome: TaskOutcome) -> Self {
        match outcome.output_json {
            Some(output_json) => api::TaskOutcome::Completed { output_json },
            None => api::TaskOutcome::Failed {
                error_type: outcome.error_type.unwrap_or_else(|| "Error".to_string()),
                message: outcome.message.unwrap_or_default(),
                non_retryable: outcome.non_retryable.unwrap_or(false),
            },
        }
    }
}

/// A client's counters.
#[napi(object)]
pub struct ClientStats {
    pub calls: i64,
    pub attempts: i64,
    pub retries: i64,
    pub failovers: i64,
}

impl From<api::ClientStats> for ClientStats {
    fn from(stats: api::ClientStats) -> Self {
        ClientStats {
            calls: number(stats.calls),
            attempts: number(stats.attempts),
            retries: number(stats.retries),
            failovers: number(stats.failovers),
        }
    }
}
