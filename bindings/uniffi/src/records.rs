//! The binding API's records and enums, declared to UniFFI as they are (`#[uniffi::remote]`).
//!
//! Each declaration restates the original's fields; the generated conversion builds and takes
//! apart the original by these names and types, so a declaration that drifts from its original
//! does not compile. Docs here become the KDoc / Swift doc comments of the generated types.

pub use syros_binding_api::{
    AppendResult, AttemptInfo, CacheEntry, CacheSet, ClientConfig, ClientStats, ExpectedVersion,
    LeaseEnd, LeaseInfo, LockRequest, NewEvent, ReadRequest, ReadResult, RecordedEvent,
    RetryConfig, SagaInfo, SagaState, StartSaga, StepDefinition, StepInfo, StepRetry,
    SubscribeStart, SubscriptionItem, TaskOutcome, TaskRecord,
};

use bytes::Bytes;

// Cache values are `bytes::Bytes` in the core: a byte array on the foreign side.
uniffi::custom_type!(Bytes, Vec<u8>, {
    remote,
    lower: |value| value.to_vec(),
    try_lift: |value| Ok(Bytes::from(value)),
});

/// How a client retries calls that failed in a retryable way (full-jitter backoff).
#[uniffi::remote(Record)]
pub struct RetryConfig {
    /// Upper bound of the first backoff.
    pub initial_interval_ms: u64,
    /// Growth of the bound per retry (at least 1).
    pub multiplier: f64,
    /// Largest backoff bound.
    pub max_interval_ms: u64,
    /// Attempts in total, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Budget of a whole call, retries included; null = attempts only.
    pub deadline_ms: Option<u64>,
}

/// How to reach Syros (`defaultClientConfig(addresses)` gives the defaults).
#[uniffi::remote(Record)]
pub struct ClientConfig {
    /// `host:port` addresses; the client fails over between them.
    pub addresses: Vec<String>,
    /// Limit for establishing a connection (default 5000).
    pub connect_timeout_ms: u64,
    /// Limit for one attempt of a unary call (default 10000).
    pub call_timeout_ms: u64,
    /// Retries of unary calls; null = the core's default.
    pub retry: Option<RetryConfig>,
    /// Reconnection of subscriptions and task feeds; null = forever, default backoff.
    pub resubscribe: Option<RetryConfig>,
    /// Default lock owner; null = `syros-<pid>-<random>`.
    pub owner: Option<String>,
    /// Bearer token sent with every call.
    pub auth_token: Option<String>,
    /// HTTP/2 keepalive interval; null = off.
    pub keepalive_interval_ms: Option<u64>,
    /// PEM CA file: connect over TLS and check the server's certificate against it; null =
    /// plaintext.
    pub tls_ca_file: Option<String>,
    /// The name the server's certificate must carry; null = the host of each address.
    pub tls_server_name: Option<String>,
    /// PEM client certificate file, for servers that require one (mTLS; with the key file).
    pub tls_client_cert_file: Option<String>,
    /// PEM private key of the client certificate.
    pub tls_client_key_file: Option<String>,
}

/// How to acquire a lock.
#[uniffi::remote(Record)]
pub struct LockRequest {
    /// Lease time to live.
    pub ttl_ms: u64,
    /// How long to wait while someone else holds it (0 = try once).
    pub wait_ms: u64,
    /// Lease owner; null = the client's.
    pub owner: Option<String>,
    /// Renew in the background at about a third of the TTL.
    pub auto_renew: bool,
}

/// A lease as the server granted it.
#[uniffi::remote(Record)]
pub struct LeaseInfo {
    /// Opaque identifier; renew and release name it.
    pub lease_id: String,
    /// The locked key.
    pub key: String,
    /// Who holds it.
    pub owner: String,
    /// Strictly increasing for every lease ever granted; pass it to the protected resource.
    pub fencing_token: u64,
    /// When it was granted (ms since the Unix epoch, server clock).
    pub acquired_at_ms: i64,
    /// When it expires unless renewed (ms since the Unix epoch, server clock).
    pub expires_at_ms: i64,
}

/// How a lease's wait ended.
#[uniffi::remote(Enum)]
pub enum LeaseEnd {
    /// The lease can no longer be guaranteed: stop the protected work.
    Lost,
    /// It was released.
    Released,
    /// The wait's time limit passed; the lease is still held.
    TimedOut,
}

/// How to store a cache value.
#[uniffi::remote(Record)]
pub struct CacheSet {
    /// Time to live; null = no expiry.
    pub ttl_ms: Option<u64>,
    /// Tags for invalidation.
    pub tags: Vec<String>,
}

/// A cached value.
#[uniffi::remote(Record)]
pub struct CacheEntry {
    /// The stored bytes.
    pub value: Bytes,
    /// When it expires (ms since the Unix epoch, server clock); null = never.
    pub expires_at_ms: Option<i64>,
    /// The tags it was stored with.
    pub tags: Vec<String>,
}

/// An event to append.
#[uniffi::remote(Record)]
pub struct NewEvent {
    /// Unique id; null = the client makes one (the same for its retries).
    pub event_id: Option<String>,
    /// The event's type.
    pub event_type: String,
    /// JSON payload.
    pub data_json: String,
    /// JSON metadata.
    pub metadata_json: Option<String>,
}

/// The version a stream must be at for an append to succeed.
#[uniffi::remote(Enum)]
pub enum ExpectedVersion {
    /// Any version, including a stream that does not exist yet.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

/// What an append wrote.
#[uniffi::remote(Record)]
pub struct AppendResult {
    /// Version of the last event appended.
    pub last_version: u64,
    /// Global position of the first event appended.
    pub first_position: u64,
    /// Global position of the last event appended.
    pub last_position: u64,
}

/// A stored event.
#[uniffi::remote(Record)]
pub struct RecordedEvent {
    /// Its stream.
    pub stream: String,
    /// Version within the stream (0, 1, 2, ... without gaps).
    pub version: u64,
    /// Position among all events of all streams (from 1).
    pub global_position: u64,
    /// The event id.
    pub event_id: String,
    /// The event's type name.
    pub event_type: String,
    /// A JSON document.
    pub data_json: String,
    /// A JSON document, or null.
    pub metadata_json: Option<String>,
    /// When it was appended (ms since the Unix epoch, server clock).
    pub created_at_ms: i64,
}

/// A read of one stream or of all streams.
#[uniffi::remote(Record)]
pub struct ReadRequest {
    /// The stream; null = all streams (by global position).
    pub stream: Option<String>,
    /// First version/position to read (inclusive); null = the end (backwards reads).
    pub start: Option<u64>,
    /// Newest first.
    pub backwards: bool,
    /// At most this many events (0 = the server's default).
    pub limit: u32,
}

/// A page of events.
#[uniffi::remote(Record)]
pub struct ReadResult {
    /// The events read.
    pub events: Vec<RecordedEvent>,
    /// The stream's last version (stream reads) or the store's last position (reads of all).
    pub last: u64,
    /// Whether the stream (or any event) exists.
    pub exists: bool,
}

/// Where a subscription starts.
#[uniffi::remote(Enum)]
pub enum SubscribeStart {
    /// From the first event.
    Start,
    /// Only events appended from now on.
    End,
    /// From this version (stream) or global position (all), inclusive.
    At(u64),
}

/// What `Subscription.next` got.
#[uniffi::remote(Enum)]
pub enum SubscriptionItem {
    /// The next event.
    Event(RecordedEvent),
    /// No event within the time limit; call `next` again.
    TimedOut,
    /// The subscription was closed (or ended); no more events.
    Ended,
}

/// Where a saga is in its life.
#[uniffi::remote(Enum)]
pub enum SagaState {
    /// Stored, not yet running.
    Pending,
    /// Steps are running.
    Running,
    /// Undoing completed steps.
    Compensating,
    /// Every step completed.
    Completed,
    /// A step failed and every completed step was undone.
    Compensated,
    /// A compensation failed for good: an operator must look.
    CompensationFailed,
    /// Cancelled, and what had completed was undone.
    Cancelled,
}

/// Server-side retry policy of a saga or a step.
#[uniffi::remote(Record)]
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

/// One step of a saga to start.
#[uniffi::remote(Record)]
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
#[uniffi::remote(Record)]
pub struct StartSaga {
    /// A label for listing.
    pub name: String,
    /// The steps, in order.
    pub steps: Vec<StepDefinition>,
    /// JSON handed to every step (empty = `{}`).
    pub input_json: String,
    /// Starting again with the same key returns the existing saga.
    pub idempotency_key: Option<String>,
    /// Saga-wide retry policy; null = the server's default.
    pub retry: Option<StepRetry>,
}

/// One attempt at a step's action or compensation.
#[uniffi::remote(Record)]
pub struct AttemptInfo {
    /// Attempt number, 1 for the first.
    pub attempt: u32,
    /// "action" or "compensation".
    pub kind: String,
    /// When the attempt started (ms since epoch).
    pub started_at_ms: i64,
    /// When it finished (ms since epoch).
    pub finished_at_ms: i64,
    /// The failure's type, if it failed.
    pub error_type: Option<String>,
    /// The failure's message, if it failed.
    pub error_message: Option<String>,
}

/// A step as the server reports it.
#[uniffi::remote(Record)]
pub struct StepInfo {
    /// The step's name.
    pub name: String,
    /// The queue (worker service) that runs it.
    pub service: String,
    /// The action handler name.
    pub action: String,
    /// The compensation handler, if any.
    pub compensation: Option<String>,
    /// pending, running, completed, failed, compensating, compensated, compensation_failed.
    pub state: String,
    /// The action's output (JSON), once completed.
    pub output_json: Option<String>,
    /// Every attempt so far.
    pub attempts: Vec<AttemptInfo>,
}

/// A saga as the server reports it.
#[uniffi::remote(Record)]
pub struct SagaInfo {
    /// The saga's id.
    pub saga_id: String,
    /// The saga's name.
    pub name: String,
    /// Where the saga is.
    pub state: SagaState,
    /// The JSON input handed to every step.
    pub input_json: String,
    /// The key the saga was started with.
    pub idempotency_key: Option<String>,
    /// The steps, run in order.
    pub steps: Vec<StepInfo>,
    /// When it was started (ms since epoch).
    pub created_at_ms: i64,
    /// When it last changed (ms since epoch).
    pub updated_at_ms: i64,
    /// Why it did not complete, if it did not.
    pub error: Option<String>,
}

/// A step task handed to a worker.
#[uniffi::remote(Record)]
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

/// What a handler made of a task.
#[uniffi::remote(Enum)]
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

/// A client's counters.
#[uniffi::remote(Record)]
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
