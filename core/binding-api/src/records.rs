//! Plain records that cross the binding boundary: strings, bytes, integers, milliseconds, and
//! C-like enums with a parser for their documented names, so no binding parses names itself.
//!
//! Records the client core already defines as plain data are re-exported as they are
//! ([`LeaseInfo`], [`RecordedEvent`], [`AppendResult`], [`ReadResult`], [`CacheEntry`],
//! [`SagaInfo`], [`StepInfo`], [`AttemptInfo`]), and so are the vocabulary's ([`SagaState`],
//! [`ExpectedVersion`], `syros-vocab`).

use std::time::Duration;

pub use syros_client::{
    AppendResult, AttemptInfo, CacheEntry, ExpectedVersion, LeaseInfo, ReadResult, RecordedEvent,
    SagaInfo, SagaState, StepInfo,
};

use crate::error::{ErrorRecord, Result};

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// How a client retries calls that failed in a retryable way (full-jitter backoff).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Upper bound of the first backoff.
    pub initial_interval_ms: u64,
    /// Growth of the bound per retry (at least 1).
    pub multiplier: f64,
    /// Largest backoff bound.
    pub max_interval_ms: u64,
    /// Attempts in total, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Budget of a whole call, retries included; `None` = attempts only.
    pub deadline_ms: Option<u64>,
}

impl From<&RetryConfig> for syros_client::RetryPolicy {
    fn from(config: &RetryConfig) -> Self {
        syros_client::RetryPolicy {
            initial_interval: ms(config.initial_interval_ms),
            multiplier: config.multiplier,
            max_interval: ms(config.max_interval_ms),
            max_attempts: config.max_attempts,
            deadline: config.deadline_ms.map(ms),
        }
    }
}

/// How to reach Syros.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `host:port` addresses; the client fails over between them.
    pub addresses: Vec<String>,
    /// Limit for establishing a connection (default 5000).
    pub connect_timeout_ms: u64,
    /// Limit for one attempt of a unary call (default 10000).
    pub call_timeout_ms: u64,
    /// Retries of unary calls; `None` = the core's default.
    pub retry: Option<RetryConfig>,
    /// Reconnection of subscriptions and task feeds; `None` = forever, default backoff.
    pub resubscribe: Option<RetryConfig>,
    /// Default lock owner; `None` = `syros-<pid>-<random>`.
    pub owner: Option<String>,
    /// Bearer token sent with every call (change it later with `Client::set_auth_token`).
    pub auth_token: Option<String>,
    /// HTTP/2 keepalive interval; `None` = off (default 20000).
    pub keepalive_interval_ms: Option<u64>,
    /// PEM CA file: connect over TLS and check the server's certificate against it; `None` =
    /// plaintext.
    pub tls_ca_file: Option<String>,
    /// The name the server's certificate must carry; `None` = the host of each address.
    pub tls_server_name: Option<String>,
    /// PEM client certificate file, for servers that require one (mTLS; with the key file).
    pub tls_client_cert_file: Option<String>,
    /// PEM private key of the client certificate.
    pub tls_client_key_file: Option<String>,
}

impl ClientConfig {
    /// The defaults, for these addresses.
    pub fn new(addresses: Vec<String>) -> Self {
        let defaults = syros_client::ClientOptions::default();
        ClientConfig {
            addresses,
            connect_timeout_ms: millis(defaults.connect_timeout),
            call_timeout_ms: millis(defaults.call_timeout),
            retry: None,
            resubscribe: None,
            owner: None,
            auth_token: None,
            keepalive_interval_ms: defaults.keepalive_interval.map(millis),
            tls_ca_file: None,
            tls_server_name: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
        }
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// How to acquire a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// Lease time to live.
    pub ttl_ms: u64,
    /// How long to wait while someone else holds it (0 = try once).
    pub wait_ms: u64,
    /// Lease owner; `None` = the client's.
    pub owner: Option<String>,
    /// Renew in the background at about a third of the TTL (default true).
    pub auto_renew: bool,
}

impl LockRequest {
    /// `ttl_ms` and `wait_ms`, the client's owner, renewed in the background.
    pub fn new(ttl_ms: u64, wait_ms: u64) -> Self {
        LockRequest {
            ttl_ms,
            wait_ms,
            owner: None,
            auto_renew: true,
        }
    }

    pub(crate) fn options(&self) -> syros_client::LockOptions {
        syros_client::LockOptions {
            owner: self.owner.clone(),
            ttl: ms(self.ttl_ms),
            wait: ms(self.wait_ms),
            auto_renew: self.auto_renew,
        }
    }
}

/// How to store a cache value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheSet {
    /// Time to live; `None` = no expiry.
    pub ttl_ms: Option<u64>,
    /// Tags for invalidation.
    pub tags: Vec<String>,
}

impl CacheSet {
    pub(crate) fn options(&self) -> syros_client::SetOptions {
        syros_client::SetOptions {
            ttl: self.ttl_ms.map(ms),
            tags: self.tags.clone(),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id; `None` = the client makes one (the same for its retries).
    pub event_id: Option<String>,
    /// The event's type.
    pub event_type: String,
    /// JSON payload.
    pub data_json: String,
    /// JSON metadata.
    pub metadata_json: Option<String>,
}

impl From<NewEvent> for syros_client::EventData {
    fn from(event: NewEvent) -> Self {
        syros_client::EventData {
            event_id: event.event_id,
            event_type: event.event_type,
            data_json: event.data_json,
            metadata_json: event.metadata_json,
        }
    }
}

/// The expected version of an append `"any"`, `"no_stream"` or a version number (`"3"`), as
/// the vocabulary's [`ExpectedVersion`]; any other text is `invalid_argument`.
pub fn parse_expected_version(text: &str) -> Result<ExpectedVersion> {
    ExpectedVersion::parse(text).ok_or_else(|| {
        ErrorRecord::invalid(format!(
            "expected_version must be a version number, \"any\" or \"no_stream\", not {text:?}"
        ))
    })
}

/// A read of one stream or of all streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// The stream; `None` = all streams (by global position).
    pub stream: Option<String>,
    /// First version/position to read (inclusive); `None` = the end (backwards reads).
    pub start: Option<u64>,
    /// Newest first.
    pub backwards: bool,
    /// At most this many events (0 = the server's default).
    pub limit: u32,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeStart {
    /// From the first event.
    Start,
    /// Only events appended from now on.
    End,
    /// From this version (stream) or global position (all), inclusive.
    At(u64),
}

impl SubscribeStart {
    /// `"start"` or `"end"` (a position is a number: use [`SubscribeStart::At`]).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "start" => Ok(SubscribeStart::Start),
            "end" => Ok(SubscribeStart::End),
            other => Err(ErrorRecord::invalid(format!(
                "a subscription starts at a position number, \"start\" or \"end\", not {other:?}"
            ))),
        }
    }
}

impl From<SubscribeStart> for syros_client::SubscribeFrom {
    fn from(start: SubscribeStart) -> Self {
        match start {
            SubscribeStart::Start => syros_client::SubscribeFrom::Start,
            SubscribeStart::End => syros_client::SubscribeFrom::End,
            SubscribeStart::At(at) => syros_client::SubscribeFrom::At(at),
        }
    }
}

/// The saga state named `name` (`pending`, `running`, `compensating`, `completed`,
/// `compensated`, `compensation_failed`, `cancelled`).
pub fn parse_saga_state(name: &str) -> Result<SagaState> {
    SagaState::parse(name).ok_or_else(|| {
        ErrorRecord::invalid(format!(
            "unknown saga state {name:?} (one of: pending, running, compensating, completed, \
             compensated, compensation_failed, cancelled)"
        ))
    })
}

/// Server-side retry policy of a saga or a step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRetry {
    /// Delay before the first retry.
    pub initial_interval_ms: u64,
    /// Growth of the delay per retry.
    pub backoff_coefficient: f64,
    /// Largest delay.
    pub maximum_interval_ms: u64,
    /// Attempts in total.
    pub maximum_attempts: u32,
    /// Error types never retried.
    pub non_retryable_errors: Vec<String>,
}

impl From<&StepRetry> for syros_client::StepRetryPolicy {
    fn from(retry: &StepRetry) -> Self {
        syros_client::StepRetryPolicy {
            initial_interval: ms(retry.initial_interval_ms),
            backoff_coefficient: retry.backoff_coefficient,
            maximum_interval: ms(retry.maximum_interval_ms),
            maximum_attempts: retry.maximum_attempts,
            non_retryable_errors: retry.non_retryable_errors.clone(),
        }
    }
}

/// One step of a saga to start.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDefinition {
    /// Unique among the saga's steps.
    pub name: String,
    /// The worker service that runs it.
    pub service: String,
    /// Action handler name.
    pub action: String,
    /// Compensation handler name, if the step can be undone.
    pub compensation: Option<String>,
    /// Start-to-close timeout of one attempt; 0 = the server's default.
    pub timeout_ms: u64,
    /// Overrides the saga's retry policy.
    pub retry: Option<StepRetry>,
}

/// A saga to start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSaga {
    /// A label for listing.
    pub name: String,
    /// The steps, in order.
    pub steps: Vec<StepDefinition>,
    /// JSON handed to every step (empty = `{}`).
    pub input_json: String,
    /// Starting again with the same key returns the existing saga.
    pub idempotency_key: Option<String>,
    /// Saga-wide retry policy; `None` = the server's default.
    pub retry: Option<StepRetry>,
}

impl From<StartSaga> for syros_client::StartSaga {
    fn from(saga: StartSaga) -> Self {
        syros_client::StartSaga {
            name: saga.name,
            steps: saga
                .steps
                .into_iter()
                .map(|step| syros_client::StepDefinition {
                    name: step.name,
                    service: step.service,
                    action: step.action,
                    compensation: step.compensation,
                    timeout: ms(step.timeout_ms),
                    retry: step.retry.as_ref().map(Into::into),
                })
                .collect(),
            input_json: saga.input_json,
            idempotency_key: saga.idempotency_key,
            retry: saga.retry.as_ref().map(Into::into),
        }
    }
}

/// A step task handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// Name it in `complete` and `heartbeat`.
    pub task_id: String,
    /// The saga it belongs to.
    pub saga_id: String,
    /// The step it runs.
    pub step_name: String,
    /// The action or compensation handler name.
    pub handler: String,
    /// True for a compensation.
    pub is_compensation: bool,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The same for every redelivery and retry of this step's action (or compensation).
    pub idempotency_key: String,
    /// The saga's input (JSON).
    pub input_json: String,
    /// Outputs of completed steps by step name (JSON object).
    pub previous_outputs_json: String,
    /// The attempt is timed out (and reported failed) after this.
    pub timeout_ms: u64,
}

impl From<syros_client::Task> for TaskRecord {
    fn from(task: syros_client::Task) -> Self {
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
            timeout_ms: millis(task.timeout),
        }
    }
}

/// What a handler made of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Done; the step's output (JSON).
    Completed {
        /// The output.
        output_json: String,
    },
    /// Failed; retried by the saga's policy unless `non_retryable`.
    Failed {
        /// Matched against the policy's non-retryable error types.
        error_type: String,
        /// Human-readable message.
        message: String,
        /// Never retry.
        non_retryable: bool,
    },
}

impl From<TaskOutcome> for syros_client::HandlerResult {
    fn from(outcome: TaskOutcome) -> Self {
        match outcome {
            TaskOutcome::Completed { output_json } => Ok(output_json),
            TaskOutcome::Failed {
                error_type,
                message,
                non_retryable,
            } => Err(syros_client::TaskFailure {
                error_type,
                message,
                non_retryable,
            }),
        }
    }
}

/// A client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStats {
    /// Calls started.
    pub calls: u64,
    /// Attempts sent.
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Switches to another address.
    pub failovers: u64,
}
