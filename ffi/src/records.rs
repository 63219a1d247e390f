//! The JSON encoding of the binding API's records (ffi/README.md lists every one). Field names
//! are the binding API's own; bytes are standard base64; durations are milliseconds; optional
//! fields are `null` (or absent, in inputs).

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use syros_binding_api as api;
use syros_binding_api::ErrorRecord;

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// --- outputs ---------------------------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct ErrorJson<'a> {
    code: &'a str,
    retryable: bool,
    message: &'a str,
    details: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a ErrorRecord> for ErrorJson<'a> {
    fn from(err: &'a ErrorRecord) -> Self {
        ErrorJson {
            code: &err.code,
            retryable: err.retryable,
            message: &err.message,
            details: &err.details,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct LeaseJson<'a> {
    lease_id: &'a str,
    key: &'a str,
    owner: &'a str,
    fencing_token: u64,
    acquired_at_ms: i64,
    expires_at_ms: i64,
}

impl<'a> From<&'a api::LeaseInfo> for LeaseJson<'a> {
    fn from(info: &'a api::LeaseInfo) -> Self {
        LeaseJson {
            lease_id: &info.lease_id,
            key: &info.key,
            owner: &info.owner,
            fencing_token: info.fencing_token,
            acquired_at_ms: info.acquired_at_ms,
            expires_at_ms: info.expires_at_ms,
        }
    }
}

/// A lease handle's record: its info plus the TTL it was acquired with.
#[derive(Serialize)]
pub(crate) struct HeldLeaseJson<'a> {
    #[serde(flatten)]
    info: LeaseJson<'a>,
    ttl_ms: u64,
}

impl<'a> HeldLeaseJson<'a> {
    pub(crate) fn new(info: &'a api::LeaseInfo, ttl_ms: u64) -> Self {
        HeldLeaseJson {
            info: info.into(),
            ttl_ms,
        }
    }
}

pub(crate) fn leases(infos: &[api::LeaseInfo]) -> Vec<LeaseJson<'_>> {
    infos.iter().map(LeaseJson::from).collect()
}

#[derive(Serialize)]
pub(crate) struct CacheEntryJson<'a> {
    value: String,
    expires_at_ms: Option<i64>,
    tags: &'a [String],
}

impl<'a> From<&'a api::CacheEntry> for CacheEntryJson<'a> {
    fn from(entry: &'a api::CacheEntry) -> Self {
        CacheEntryJson {
            value: base64_encode(&entry.value),
            expires_at_ms: entry.expires_at_ms,
            tags: &entry.tags,
        }
    }
}

/// `cache_begin`: `{"hit": base64}` with no ticket, or `{"hit": null}` with a ticket.
#[derive(Serialize)]
pub(crate) struct CacheLookupJson {
    pub(crate) hit: Option<String>,
}

pub(crate) fn value_json(bytes: &[u8]) -> String {
    base64_encode(bytes)
}

#[derive(Serialize)]
pub(crate) struct EventJson<'a> {
    stream: &'a str,
    version: u64,
    global_position: u64,
    event_id: &'a str,
    event_type: &'a str,
    data_json: &'a str,
    metadata_json: Option<&'a str>,
    created_at_ms: i64,
}

impl<'a> From<&'a api::RecordedEvent> for EventJson<'a> {
    fn from(e: &'a api::RecordedEvent) -> Self {
        EventJson {
            stream: &e.stream,
            version: e.version,
            global_position: e.global_position,
            event_id: &e.event_id,
            event_type: &e.event_type,
            data_json: &e.data_json,
            metadata_json: e.metadata_json.as_deref(),
            created_at_ms: e.created_at_ms,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct AppendJson {
    last_version: u64,
    first_position: u64,
    last_position: u64,
}

impl From<&api::AppendResult> for AppendJson {
    fn from(r: &api::AppendResult) -> Self {
        AppendJson {
            last_version: r.last_version,
            first_position: r.first_position,
            last_position: r.last_position,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ReadJson<'a> {
    events: Vec<EventJson<'a>>,
    last: u64,
    exists: bool,
}

impl<'a> From<&'a api::ReadResult> for ReadJson<'a> {
    fn from(r: &'a api::ReadResult) -> Self {
        ReadJson {
            events: r.events.iter().map(EventJson::from).collect(),
            last: r.last,
            exists: r.exists,
        }
    }
}

/// `subscription_next`: `{"kind": "event", "event": {...}}`, `{"kind": "timed_out"}` or
/// `{"kind": "ended"}`.
#[derive(Serialize)]
pub(crate) struct SubscriptionItemJson<'a> {
    kind: &'static str,
    event: Option<EventJson<'a>>,
}

impl<'a> From<&'a api::SubscriptionItem> for SubscriptionItemJson<'a> {
    fn from(item: &'a api::SubscriptionItem) -> Self {
        match item {
            api::SubscriptionItem::Event(e) => SubscriptionItemJson {
                kind: "event",
                event: Some(e.into()),
            },
            api::SubscriptionItem::TimedOut => SubscriptionItemJson {
                kind: "timed_out",
                event: None,
            },
            api::SubscriptionItem::Ended => SubscriptionItemJson {
                kind: "ended",
                event: None,
            },
        }
    }
}

#[derive(Serialize)]
struct AttemptJson<'a> {
    attempt: u32,
    kind: &'a str,
    started_at_ms: i64,
    finished_at_ms: i64,
    error_type: Option<&'a str>,
    error_message: Option<&'a str>,
}

#[derive(Serialize)]
struct StepJson<'a> {
    name: &'a str,
    service: &'a str,
    action: &'a str,
    compensation: Option<&'a str>,
    state: &'a str,
    output_json: Option<&'a str>,
    attempts: Vec<AttemptJson<'a>>,
}

#[derive(Serialize)]
pub(crate) struct SagaJson<'a> {
    saga_id: &'a str,
    name: &'a str,
    state: &'static str,
    input_json: &'a str,
    idempotency_key: Option<&'a str>,
    steps: Vec<StepJson<'a>>,
    created_at_ms: i64,
    updated_at_ms: i64,
    error: Option<&'a str>,
}

impl<'a> From<&'a api::SagaInfo> for SagaJson<'a> {
    fn from(s: &'a api::SagaInfo) -> Self {
        SagaJson {
            saga_id: &s.saga_id,
            name: &s.name,
            state: s.state.as_str(),
            input_json: &s.input_json,
            idempotency_key: s.idempotency_key.as_deref(),
            steps: s
                .steps
                .iter()
                .map(|step| StepJson {
                    name: &step.name,
                    service: &step.service,
                    action: &step.action,
                    compensation: step.compensation.as_deref(),
                    state: &step.state,
                    output_json: step.output_json.as_deref(),
                    attempts: step
                        .attempts
                        .iter()
                        .map(|a| AttemptJson {
                            attempt: a.attempt,
                            kind: &a.kind,
                            started_at_ms: a.started_at_ms,
                            finished_at_ms: a.finished_at_ms,
                            error_type: a.error_type.as_deref(),
                            error_message: a.error_message.as_deref(),
                        })
                        .collect(),
                })
                .collect(),
            created_at_ms: s.created_at_ms,
            updated_at_ms: s.updated_at_ms,
            error: s.error.as_deref(),
        }
    }
}

pub(crate) fn sagas(infos: &[api::SagaInfo]) -> Vec<SagaJson<'_>> {
    infos.iter().map(SagaJson::from).collect()
}

#[derive(Serialize)]
pub(crate) struct TaskJson<'a> {
    task_id: &'a str,
    saga_id: &'a str,
    step_name: &'a str,
    handler: &'a str,
    is_compensation: bool,
    attempt: u32,
    idempotency_key: &'a str,
    input_json: &'a str,
    previous_outputs_json: &'a str,
    timeout_ms: u64,
}

impl<'a> From<&'a api::TaskRecord> for TaskJson<'a> {
    fn from(t: &'a api::TaskRecord) -> Self {
        TaskJson {
            task_id: &t.task_id,
            saga_id: &t.saga_id,
            step_name: &t.step_name,
            handler: &t.handler,
            is_compensation: t.is_compensation,
            attempt: t.attempt,
            idempotency_key: &t.idempotency_key,
            input_json: &t.input_json,
            previous_outputs_json: &t.previous_outputs_json,
            timeout_ms: t.timeout_ms,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct StatsJson {
    calls: u64,
    attempts: u64,
    retries: u64,
    failovers: u64,
}

impl From<api::ClientStats> for StatsJson {
    fn from(s: api::ClientStats) -> Self {
        StatsJson {
            calls: s.calls,
            attempts: s.attempts,
            retries: s.retries,
            failovers: s.failovers,
        }
    }
}

pub(crate) fn lease_end(end: api::LeaseEnd) -> &'static str {
    match end {
        api::LeaseEnd::Lost => "lost",
        api::LeaseEnd::Released => "released",
        api::LeaseEnd::TimedOut => "timed_out",
    }
}

// --- inputs ----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryJson {
    initial_interval_ms: u64,
    multiplier: f64,
    max_interval_ms: u64,
    max_attempts: u32,
    #[serde(default)]
    deadline_ms: Option<u64>,
}

impl From<RetryJson> for api::RetryConfig {
    fn from(r: RetryJson) -> Self {
        api::RetryConfig {
            initial_interval_ms: r.initial_interval_ms,
            multiplier: r.multiplier,
            max_interval_ms: r.max_interval_ms,
            max_attempts: r.max_attempts,
            deadline_ms: r.deadline_ms,
        }
    }
}

/// `syros_client_new`'s configuration; absent fields take the core's defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientConfigJson {
    addresses: Vec<String>,
    #[serde(default)]
    connect_timeout_ms: Option<u64>,
    #[serde(default)]
    call_timeout_ms: Option<u64>,
    #[serde(default)]
    retry: Option<RetryJson>,
    #[serde(default)]
    resubscribe: Option<RetryJson>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    auth_token: Option<String>,
    /// 0 turns keepalive off.
    #[serde(default)]
    keepalive_interval_ms: Option<u64>,
}

impl From<ClientConfigJson> for api::ClientConfig {
    fn from(c: ClientConfigJson) -> Self {
        let mut config = api::ClientConfig::new(c.addresses);
        if let Some(ms) = c.connect_timeout_ms {
            config.connect_timeout_ms = ms;
        }
        if let Some(ms) = c.call_timeout_ms {
            config.call_timeout_ms = ms;
        }
        config.retry = c.retry.map(Into::into);
        config.resubscribe = c.resubscribe.map(Into::into);
        config.owner = c.owner;
        config.auth_token = c.auth_token;
        match c.keepalive_interval_ms {
            Some(0) => config.keepalive_interval_ms = None,
            Some(ms) => config.keepalive_interval_ms = Some(ms),
            None => {}
        }
        config
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LockRequestJson {
    ttl_ms: u64,
    #[serde(default)]
    wait_ms: u64,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default = "yes")]
    auto_renew: bool,
}

impl From<LockRequestJson> for api::LockRequest {
    fn from(r: LockRequestJson) -> Self {
        let mut request = api::LockRequest::new(r.ttl_ms, r.wait_ms);
        request.owner = r.owner;
        request.auto_renew = r.auto_renew;
        request
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheSetJson {
    #[serde(default)]
    ttl_ms: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
}

impl From<CacheSetJson> for api::CacheSet {
    fn from(s: CacheSetJson) -> Self {
        api::CacheSet {
            ttl_ms: s.ttl_ms,
            tags: s.tags,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEventJson {
    #[serde(default)]
    event_id: Option<String>,
    event_type: String,
    data_json: String,
    #[serde(default)]
    metadata_json: Option<String>,
}

impl From<NewEventJson> for api::NewEvent {
    fn from(e: NewEventJson) -> Self {
        api::NewEvent {
            event_id: e.event_id,
            event_type: e.event_type,
            data_json: e.data_json,
            metadata_json: e.metadata_json,
        }
    }
}

/// A position: a number, or one of the names the binding API parses.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum PositionJson {
    At(u64),
    Named(String),
}

impl PositionJson {
    pub(crate) fn expected_version(self) -> Result<api::ExpectedVersion, ErrorRecord> {
        match self {
            PositionJson::At(v) => Ok(api::ExpectedVersion::Exact(v)),
            PositionJson::Named(name) => api::parse_expected_version(&name),
        }
    }

    pub(crate) fn subscribe_start(self) -> Result<api::SubscribeStart, ErrorRecord> {
        match self {
            PositionJson::At(v) => Ok(api::SubscribeStart::At(v)),
            PositionJson::Named(name) => api::SubscribeStart::parse(&name),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadRequestJson {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    start: Option<u64>,
    #[serde(default)]
    backwards: bool,
    #[serde(default)]
    limit: u32,
}

impl From<ReadRequestJson> for api::ReadRequest {
    fn from(r: ReadRequestJson) -> Self {
        api::ReadRequest {
            stream: r.stream,
            start: r.start,
            backwards: r.backwards,
            limit: r.limit,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepRetryJson {
    initial_interval_ms: u64,
    backoff_coefficient: f64,
    maximum_interval_ms: u64,
    maximum_attempts: u32,
    #[serde(default)]
    non_retryable_errors: Vec<String>,
}

impl From<StepRetryJson> for api::StepRetry {
    fn from(r: StepRetryJson) -> Self {
        api::StepRetry {
            initial_interval_ms: r.initial_interval_ms,
            backoff_coefficient: r.backoff_coefficient,
            maximum_interval_ms: r.maximum_interval_ms,
            maximum_attempts: r.maximum_attempts,
            non_retryable_errors: r.non_retryable_errors,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepJsonIn {
    name: String,
    service: String,
    action: String,
    #[serde(default)]
    compensation: Option<String>,
    #[serde(default)]
    timeout_ms: u64,
    #[serde(default)]
    retry: Option<StepRetryJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartSagaJson {
    name: String,
    steps: Vec<StepJsonIn>,
    #[serde(default)]
    input_json: String,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    retry: Option<StepRetryJson>,
}

impl From<StartSagaJson> for api::StartSaga {
    fn from(s: StartSagaJson) -> Self {
        api::StartSaga {
            name: s.name,
            steps: s
                .steps
                .into_iter()
                .map(|step| api::StepDefinition {
                    name: step.name,
                    service: step.service,
                    action: step.action,
                    compensation: step.compensation,
                    timeout_ms: step.timeout_ms,
                    retry: step.retry.map(Into::into),
                })
                .collect(),
            input_json: s.input_json,
            idempotency_key: s.idempotency_key,
            retry: s.retry.map(Into::into),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListSagasJson {
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) limit: u32,
}

/// `{"outcome": "completed", "output_json": ...}` or
/// `{"outcome": "failed", "error_type": ..., "message": ..., "non_retryable": bool}`.
#[derive(Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum TaskOutcomeJson {
    Completed {
        output_json: String,
    },
    Failed {
        error_type: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        non_retryable: bool,
    },
}

impl From<TaskOutcomeJson> for api::TaskOutcome {
    fn from(o: TaskOutcomeJson) -> Self {
        match o {
            TaskOutcomeJson::Completed { output_json } => {
                api::TaskOutcome::Completed { output_json }
            }
            TaskOutcomeJson::Failed {
                error_type,
                message,
                non_retryable,
            } => api::TaskOutcome::Failed {
                error_type,
                message,
                non_retryable,
            },
        }
    }
}
