//! GraphQL at `/graphql` (POST queries and mutations, GET the playground page) with
//! subscriptions over WebSocket at `/graphql/ws` (`graphql-transport-ws` and the older
//! `graphql-ws` protocol). Every resolver is one engine call; errors carry
//! `extensions.code` (the same codes as REST) and `extensions.details`.
//!
//! Caps, so that one request or connection cannot make the server do unbounded work: at most
//! [`MAX_BATCH`] operations per POST, a query depth of [`MAX_DEPTH`], a complexity of
//! [`MAX_COMPLEXITY`] (a field that calls storage costs [`STORAGE_CALL_COST`], a list costs its
//! `limit` — or the default page size — times the fields selected per item, a list argument
//! costs its length) and [`super::ws::MAX_SUBSCRIPTIONS`] subscriptions per WebSocket
//! connection, like the WebSocket API.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_graphql::http::{playground_source, GraphQLPlaygroundConfig, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::BatchRequest;
use async_graphql::{
    Context, Enum, ErrorExtensions, InputObject, Json, Object, Schema, SimpleObject, Subscription,
};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLBatchRequest, GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use base64::Engine as _;
use futures::{SinkExt, Stream, StreamExt};
use serde_json::Value;
use syros_engine::{
    AcquireLock, AcquireOutcome, Direction, Engine, EventInput as EngineEvent, ExpectedVersion,
    SubscriptionStart, SubscriptionTarget,
};
use tokio_stream::wrappers::ReceiverStream;

use super::{rfc3339, AppState};
use crate::security::{Denied, Permission, Principal, Security};

/// The executable schema.
pub type SyrosSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Most operations in one batched POST.
pub const MAX_BATCH: usize = 10;
/// Deepest selection set.
pub const MAX_DEPTH: usize = 16;
/// Highest complexity of one operation (see the module documentation for how it is counted).
pub const MAX_COMPLEXITY: usize = 25_000;
/// Complexity of a field that makes one storage call, so that aliases cannot multiply calls:
/// at most `MAX_COMPLEXITY / STORAGE_CALL_COST` (1000) calls per operation.
pub const STORAGE_CALL_COST: usize = 25;

/// Complexity of a field returning up to `limit` items (`default` when 0) of
/// `child_complexity` each, after one storage call.
fn list_cost(limit: u32, default: usize, child_complexity: usize) -> usize {
    let items = if limit == 0 { default } else { limit as usize };
    STORAGE_CALL_COST.saturating_add(items.saturating_mul(child_complexity.max(1)))
}

/// Complexity of a storage call with a list argument of `len` items.
fn input_list_cost(len: usize, child_complexity: usize) -> usize {
    STORAGE_CALL_COST
        .saturating_add(len)
        .saturating_add(child_complexity)
}

/// Build the schema over `engine`, with depth and complexity limits.
pub fn schema(engine: Arc<Engine>) -> SyrosSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(engine)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// `/graphql`: queries and mutations (POST), the playground page (GET).
pub fn routes(schema: SyrosSchema) -> Router<AppState> {
    Router::new().route(
        "/graphql",
        get(playground).post(move |Extension(principal): Extension<Principal>, request| {
            execute(schema.clone(), principal, request)
        }),
    )
}

/// `/graphql/ws`: subscriptions. The principal comes from the handshake when it carried a
/// credential (see `auth::authenticate_or_defer`), otherwise from `connection_init`.
pub fn subscription_routes(schema: SyrosSchema) -> Router<AppState> {
    Router::new().route(
        "/graphql/ws",
        get(
            move |State(state): State<AppState>,
                  principal: Option<Extension<Principal>>,
                  protocol,
                  upgrade| {
                subscriptions(
                    schema.clone(),
                    state,
                    principal.map(|p| p.0),
                    protocol,
                    upgrade,
                )
            },
        ),
    )
}

/// graphql-transport-ws close code for a refused `connection_init` ("Forbidden").
const CLOSE_FORBIDDEN: u16 = 4403;
/// graphql-transport-ws close code for no `connection_init` in time.
const CLOSE_INIT_TIMEOUT: u16 = 4408;

/// `GET /graphql/ws`: a subscription connection, with its own subscription count.
async fn subscriptions(
    schema: SyrosSchema,
    state: AppState,
    principal: Option<Principal>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(super::ws::MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(super::ws::MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve_subscriptions(socket, schema, state, principal, protocol))
}

/// Serve one subscription connection. Without a principal from the handshake, the
/// `connection_init` payload must carry a credential (as the WebSocket API's `authenticate`
/// message); either way `connection_init` must arrive within
/// [`super::ws::AUTHENTICATE_TIMEOUT`]. On server shutdown the connection is closed with 1001
/// (going away), and shutdown waits for that close frame, as for the WebSocket API.
async fn serve_subscriptions(
    socket: WebSocket,
    schema: SyrosSchema,
    state: AppState,
    principal: Option<Principal>,
    protocol: GraphQLProtocol,
) {
    let _open = super::ws::OpenWebSocket::count(&state.open_websockets);
    let security = state.security.clone();
    let mut stopping = state.stopping.clone();
    let mut data = async_graphql::Data::default();
    data.insert(SubscriptionCount::default());
    let from_handshake = principal.is_some();
    if let Some(principal) = principal {
        data.insert(principal);
    }
    // Set when `connection_init` is refused: async-graphql then closes with 1002, which the
    // sink below turns into graphql-transport-ws's 4403, so clients do not retry.
    let refused = Arc::new(AtomicBool::new(false));
    let (initialised_tx, initialised) = tokio::sync::oneshot::channel::<()>();
    let on_init = {
        let refused = refused.clone();
        move |payload: Value| async move {
            let mut init_data = async_graphql::Data::default();
            if !from_handshake {
                match init_principal(&security, &payload).await {
                    Ok(principal) => init_data.insert(principal),
                    Err(denied) => {
                        refused.store(true, Ordering::SeqCst);
                        return Err(async_graphql::Error::new(format!(
                            "{}: {}",
                            denied.code(),
                            denied.message()
                        )));
                    }
                }
            }
            let _ = initialised_tx.send(());
            Ok(init_data)
        }
    };
    let (sink, stream) = socket.split();
    let mut sink = sink.with(move |message: Message| {
        let message = match message {
            Message::Close(Some(frame)) if frame.code == 1002 && refused.load(Ordering::SeqCst) => {
                Message::Close(Some(CloseFrame {
                    code: CLOSE_FORBIDDEN,
                    reason: frame.reason,
                }))
            }
            other => other,
        };
        futures::future::ready(Ok::<_, axum::Error>(message))
    });
    let (code, reason) = {
        let serve = GraphQLWebSocket::new_with_pair(&mut sink, stream, schema, protocol)
            .with_data(data)
            .on_connection_init(on_init)
            .serve();
        tokio::pin!(serve);
        let stopped = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) };
        tokio::pin!(stopped);
        tokio::select! {
            biased;
            () = &mut serve => return,
            _ = &mut stopped => (super::ws::CLOSE_AWAY, "server shutting down"),
            in_time = tokio::time::timeout(super::ws::AUTHENTICATE_TIMEOUT, initialised) => {
                if in_time.is_err() {
                    (CLOSE_INIT_TIMEOUT, "connection_init timeout")
                } else {
                    // Initialised, or refused (the protocol handler then closes by itself).
                    tokio::select! {
                        biased;
                        () = &mut serve => return,
                        _ = &mut stopped => (super::ws::CLOSE_AWAY, "server shutting down"),
                    }
                }
            }
        }
    };
    let closing = sink.send(Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    })));
    let _ = tokio::time::timeout(super::ws::WRITE_TIMEOUT, closing).await;
}

/// The principal named by a `connection_init` payload, through the one decision point
/// ([`Security::authenticate`]), counted once against its rate limit like a handshake.
async fn init_principal(security: &Security, payload: &Value) -> Result<Principal, Denied> {
    let Some(credential) = init_credential(payload) else {
        return Err(Denied::Unauthenticated(
            "authentication required: send {\"authorization\": \"Bearer ...\"} in connection_init"
                .into(),
        ));
    };
    let principal = security.authenticate(Some(credential)).await?;
    security.rate_check(&principal, None)?;
    Ok(principal)
}

/// The credential of a `connection_init` payload: `authorization` (`Bearer <credential>`),
/// `token` (the bare credential), or `headers.authorization` as Apollo's clients send it; keys
/// in any case.
fn init_credential(payload: &Value) -> Option<&str> {
    fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
        object
            .as_object()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
    field(payload, "authorization")
        .or_else(|| field(payload, "token"))
        .or_else(|| field(field(payload, "headers")?, "authorization"))
        .and_then(Value::as_str)
}

/// The live subscriptions of one WebSocket connection.
#[derive(Default)]
struct SubscriptionCount(Arc<AtomicUsize>);

/// One live subscription; frees its place when the subscription's stream is dropped.
struct SubscriptionSlot(Arc<AtomicUsize>);

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Take a place for a new subscription, or say why there is none.
fn subscription_slot(ctx: &Context<'_>) -> async_graphql::Result<Option<SubscriptionSlot>> {
    // Subscriptions only run over `/graphql/ws`, which always provides the count.
    let Some(SubscriptionCount(count)) = ctx.data_opt::<SubscriptionCount>() else {
        return Ok(None);
    };
    let max = super::ws::MAX_SUBSCRIPTIONS;
    if count.fetch_add(1, Ordering::SeqCst) >= max {
        count.fetch_sub(1, Ordering::SeqCst);
        return Err(gql(syros_engine::Error::invalid(format!(
            "at most {max} subscriptions per connection"
        ))
        .with_detail("limit", max)));
    }
    Ok(Some(SubscriptionSlot(count.clone())))
}

/// `POST /graphql`: one request or a batch of at most [`MAX_BATCH`]. A body that is not a
/// GraphQL request, or a batch over the cap, gets the JSON error shape of the REST API.
async fn execute(
    schema: SyrosSchema,
    principal: Principal,
    request: Result<GraphQLBatchRequest, GraphQLRejection>,
) -> Response {
    match request {
        Ok(request) => {
            let request = request.into_inner();
            if let BatchRequest::Batch(batch) = &request {
                if batch.len() > MAX_BATCH {
                    return super::error::ApiError::invalid(format!(
                        "a batch holds at most {MAX_BATCH} operations, not {}",
                        batch.len()
                    ))
                    .with_detail("limit", MAX_BATCH)
                    .into_response();
                }
            }
            let request = request.data(principal);
            GraphQLResponse::from(schema.execute_batch(request).await).into_response()
        }
        Err(rejection) => {
            super::error::ApiError::invalid(format!("not a GraphQL request: {}", rejection.0))
                .into_response()
        }
    }
}

async fn playground() -> Html<String> {
    Html(playground_source(
        GraphQLPlaygroundConfig::new("/graphql").subscription_endpoint("/graphql/ws"),
    ))
}

/// An engine error as a GraphQL error with `extensions.code`, and `extensions.details` when
/// it has details.
fn gql(err: syros_engine::Error) -> async_graphql::Error {
    let details = (!err.details.is_empty())
        .then(|| serde_json::to_value(&err.details).ok())
        .flatten()
        .and_then(|details| async_graphql::Value::from_json(details).ok());
    async_graphql::Error::new(err.message.clone()).extend_with(|_, ext| {
        ext.set("code", err.kind.code());
        if let Some(details) = details {
            ext.set("details", details);
        }
    })
}

fn invalid(message: &str) -> async_graphql::Error {
    gql(syros_engine::Error::invalid(message))
}

/// Check that the caller has `permission` on `resource` (see [`Principal::require`]); the
/// principal comes from the HTTP middleware through the request data.
fn require(
    ctx: &Context<'_>,
    permission: Permission,
    resource: Option<&str>,
) -> async_graphql::Result<Principal> {
    let principal = ctx
        .data_opt::<Principal>()
        .cloned()
        .unwrap_or_else(Principal::nobody);
    principal.require(permission, resource).map_err(|denied| {
        let code = denied.code();
        async_graphql::Error::new(denied.message()).extend_with(move |_, ext| {
            ext.set("code", code);
            ext.set(
                "details",
                async_graphql::value!({ "permission": permission.name() }),
            );
        })
    })?;
    Ok(principal)
}

fn engine<'a>(ctx: &Context<'a>) -> &'a Arc<Engine> {
    ctx.data_unchecked::<Arc<Engine>>()
}

/// A held lock.
#[derive(SimpleObject)]
pub struct Lease {
    pub lease_id: String,
    pub key: String,
    pub owner: String,
    /// Strictly increasing across every lease granted.
    pub fencing_token: u64,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
    /// RFC 3339.
    pub expires_at: String,
}

impl From<syros_engine::Lease> for Lease {
    fn from(l: syros_engine::Lease) -> Self {
        Lease {
            expires_at: rfc3339(l.expires_at_ms),
            lease_id: l.lease_id,
            key: l.key,
            owner: l.owner,
            fencing_token: l.fencing_token,
            acquired_at_ms: l.acquired_at_ms,
            expires_at_ms: l.expires_at_ms,
        }
    }
}

/// The holder of a key.
#[derive(SimpleObject)]
pub struct LockStatus {
    pub key: String,
    pub held: bool,
    pub lease: Option<Lease>,
}

/// What happened to a lock.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "LockChangeKind")]
pub enum LockChangeKindValue {
    /// A lease was granted (directly or handed to a waiter).
    Acquired,
    /// A lease was extended.
    Renewed,
    /// The holder released its lease.
    Released,
    /// An admin dropped the lease.
    ForceReleased,
    /// A lease granted by this server reached its expiry without being released.
    Expired,
}

impl From<syros_engine::LockChangeKind> for LockChangeKindValue {
    fn from(kind: syros_engine::LockChangeKind) -> Self {
        use syros_engine::LockChangeKind as K;
        match kind {
            K::Acquired => LockChangeKindValue::Acquired,
            K::Renewed => LockChangeKindValue::Renewed,
            K::Released => LockChangeKindValue::Released,
            K::ForceReleased => LockChangeKindValue::ForceReleased,
            K::Expired => LockChangeKindValue::Expired,
        }
    }
}

/// One change of one lock (see docs/websocket-api.md for what is reported).
#[derive(SimpleObject)]
#[graphql(name = "LockChange")]
pub struct LockChangeValue {
    pub kind: LockChangeKindValue,
    pub key: String,
    /// `null` when the server that made the change did not say.
    pub owner: Option<String>,
    pub fencing_token: Option<u64>,
    pub lease_id: Option<String>,
    /// When the lease ends (acquired, renewed) or ended (expired); `null` for releases.
    pub expires_at_ms: Option<i64>,
    /// RFC 3339.
    pub expires_at: Option<String>,
    /// When the server published the change.
    pub changed_at_ms: i64,
    /// RFC 3339.
    pub changed_at: String,
}

impl From<syros_engine::LockChange> for LockChangeValue {
    fn from(change: syros_engine::LockChange) -> Self {
        LockChangeValue {
            kind: change.kind.into(),
            expires_at: change.expires_at_ms.map(rfc3339),
            changed_at: rfc3339(change.at_ms),
            key: change.key,
            owner: change.owner,
            fencing_token: change.fencing_token,
            lease_id: change.lease_id,
            expires_at_ms: change.expires_at_ms,
            changed_at_ms: change.at_ms,
        }
    }
}

/// The outcome of `acquireLock`.
#[derive(SimpleObject)]
pub struct AcquireResult {
    pub acquired: bool,
    /// The new lease when acquired.
    pub lease: Option<Lease>,
    /// The current holder when not acquired.
    pub holder: Option<Lease>,
}

/// The outcome of `forceReleaseLock`.
#[derive(SimpleObject)]
pub struct ForceReleaseResult {
    pub released: bool,
    pub lease: Option<Lease>,
}

/// What this server's cache operations did since it started (per replica).
#[derive(SimpleObject)]
pub struct CacheStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (absent or expired).
    pub misses: u64,
    /// Entries stored.
    pub sets: u64,
    /// Deletes that removed an entry.
    pub deletes: u64,
    /// Entries removed by tag invalidation.
    pub invalidated: u64,
}

impl From<syros_engine::CacheStats> for CacheStats {
    fn from(s: syros_engine::CacheStats) -> Self {
        CacheStats {
            hits: s.hits,
            misses: s.misses,
            sets: s.sets,
            deletes: s.deletes,
            invalidated: s.invalidated,
        }
    }
}

/// A cache entry.
#[derive(SimpleObject)]
pub struct CacheEntry {
    pub key: String,
    /// The value as JSON, when the stored bytes are a JSON document.
    pub value: Option<Json<Value>>,
    pub value_base64: String,
    pub expires_at_ms: Option<i64>,
    pub tags: Vec<String>,
}

impl From<syros_engine::CacheEntry> for CacheEntry {
    fn from(e: syros_engine::CacheEntry) -> Self {
        CacheEntry {
            value: serde_json::from_slice(&e.value).ok().map(Json),
            value_base64: base64::engine::general_purpose::STANDARD.encode(&e.value),
            key: e.key,
            expires_at_ms: e.expires_at_ms,
            tags: e.tags,
        }
    }
}

/// A stored event.
#[derive(SimpleObject)]
pub struct Event {
    pub stream: String,
    pub version: u64,
    pub global_position: u64,
    pub event_id: String,
    pub event_type: String,
    pub data: Json<Value>,
    pub metadata: Option<Json<Value>>,
    pub created_at_ms: i64,
}

fn json_text(text: &str) -> Json<Value> {
    Json(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

impl From<syros_engine::RecordedEvent> for Event {
    fn from(e: syros_engine::RecordedEvent) -> Self {
        Event {
            data: json_text(&e.data),
            metadata: e.metadata.as_deref().map(json_text),
            stream: e.stream,
            version: e.version,
            global_position: e.global_position,
            event_id: e.event_id,
            event_type: e.event_type,
            created_at_ms: e.created_at_ms,
        }
    }
}

/// Events of one stream.
#[derive(SimpleObject)]
pub struct StreamEvents {
    pub stream: String,
    pub exists: bool,
    pub last_version: Option<u64>,
    pub events: Vec<Event>,
}

/// Events of all streams.
#[derive(SimpleObject)]
pub struct AllEvents {
    pub last_position: u64,
    pub events: Vec<Event>,
}

/// Where an append landed.
#[derive(SimpleObject)]
pub struct AppendResult {
    pub stream: String,
    pub first_version: u64,
    pub last_version: u64,
    pub first_position: u64,
    pub last_position: u64,
}

/// One attempt to run a step's action or compensation.
#[derive(SimpleObject)]
pub struct StepAttempt {
    pub attempt: u32,
    /// `action` or `compensation`.
    pub kind: String,
    pub started_at_ms: i64,
    /// 0 while running.
    pub finished_at_ms: i64,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

/// A saga step and what happened to it.
#[derive(SimpleObject)]
pub struct SagaStep {
    pub name: String,
    pub service: String,
    pub action: String,
    pub compensation: Option<String>,
    pub timeout_ms: u64,
    /// `pending`, `running`, `completed`, `failed`, `compensating`, `compensated` or
    /// `compensation_failed`.
    pub state: String,
    pub output: Option<Json<Value>>,
    pub attempts: Vec<StepAttempt>,
}

/// A saga and everything that happened to it.
#[derive(SimpleObject)]
pub struct Saga {
    pub saga_id: String,
    pub name: String,
    /// `pending`, `running`, `compensating`, `completed`, `compensated`,
    /// `compensation_failed` or `cancelled`.
    pub state: String,
    pub input: Json<Value>,
    pub idempotency_key: Option<String>,
    pub steps: Vec<SagaStep>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub error: Option<String>,
    pub cancel_requested: bool,
    /// The event stream with the saga's transitions (subscribe to follow it).
    pub audit_stream: String,
}

/// A page of sagas.
#[derive(SimpleObject)]
pub struct SagaPage {
    /// Newest first.
    pub sagas: Vec<Saga>,
    /// Pass as `pageToken` for the next page; null on the last page.
    pub next_page_token: Option<String>,
}

impl From<syros_engine::sagas::Saga> for Saga {
    fn from(saga: syros_engine::sagas::Saga) -> Self {
        Saga {
            audit_stream: format!("saga-{}", saga.saga_id),
            input: json_text(&saga.input),
            saga_id: saga.saga_id,
            name: saga.name,
            state: saga.state.as_str().to_string(),
            idempotency_key: saga.idempotency_key,
            steps: saga
                .steps
                .into_iter()
                .map(|step| SagaStep {
                    name: step.definition.name,
                    service: step.definition.service,
                    action: step.definition.action,
                    compensation: step.definition.compensation,
                    timeout_ms: step.definition.timeout_ms,
                    state: step.state.as_str().to_string(),
                    output: step.output.as_deref().map(json_text),
                    attempts: step
                        .attempts
                        .into_iter()
                        .map(|a| StepAttempt {
                            attempt: a.attempt,
                            kind: a.kind.as_str().to_string(),
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
            cancel_requested: saga.cancel_requested,
        }
    }
}

/// A retry policy; absent fields take the defaults (1000 ms, x2, 60000 ms, 3 attempts).
#[derive(InputObject)]
pub struct RetryPolicyInput {
    pub initial_interval_ms: Option<u64>,
    pub backoff_coefficient: Option<f64>,
    pub maximum_interval_ms: Option<u64>,
    pub maximum_attempts: Option<u32>,
    #[graphql(default)]
    pub non_retryable_errors: Vec<String>,
}

impl From<RetryPolicyInput> for syros_engine::sagas::RetryPolicy {
    fn from(p: RetryPolicyInput) -> Self {
        super::sagas::RetryPolicyBody {
            initial_interval_ms: p.initial_interval_ms,
            backoff_coefficient: p.backoff_coefficient,
            maximum_interval_ms: p.maximum_interval_ms,
            maximum_attempts: p.maximum_attempts,
            non_retryable_errors: p.non_retryable_errors,
        }
        .into()
    }
}

/// One step of a saga to start.
#[derive(InputObject)]
pub struct SagaStepInput {
    pub name: String,
    pub service: String,
    pub action: String,
    pub compensation: Option<String>,
    /// Time limit of one attempt (0, the default: 30000).
    #[graphql(default)]
    pub timeout_ms: u64,
    pub retry_policy: Option<RetryPolicyInput>,
}

/// Arguments of `startSaga`.
#[derive(InputObject)]
pub struct StartSagaInput {
    pub name: String,
    #[graphql(validator(max_items = 100))]
    pub steps: Vec<SagaStepInput>,
    /// Handed to every step (default `{}`).
    pub input: Option<Json<Value>>,
    pub idempotency_key: Option<String>,
    pub retry_policy: Option<RetryPolicyInput>,
}

/// Read direction.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum ReadDirection {
    #[default]
    Forwards,
    Backwards,
}

impl From<ReadDirection> for Direction {
    fn from(d: ReadDirection) -> Self {
        match d {
            ReadDirection::Forwards => Direction::Forwards,
            ReadDirection::Backwards => Direction::Backwards,
        }
    }
}

/// Arguments of `acquireLock`.
#[derive(InputObject)]
pub struct AcquireLockInput {
    pub key: String,
    pub owner: String,
    pub ttl_ms: u64,
    /// 0 (default): try once.
    #[graphql(default)]
    pub wait_timeout_ms: u64,
    pub request_id: Option<String>,
}

/// One event to append.
#[derive(InputObject)]
pub struct EventInput {
    pub event_type: String,
    pub data: Json<Value>,
    pub metadata: Option<Json<Value>>,
    pub event_id: Option<String>,
}

/// Queries.
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Who holds `key`.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn lock(&self, ctx: &Context<'_>, key: String) -> async_graphql::Result<LockStatus> {
        require(ctx, Permission::LocksRead, Some(&key))?;
        let lease = engine(ctx).locks.status(&key).await.map_err(gql)?;
        Ok(LockStatus {
            key,
            held: lease.is_some(),
            lease: lease.map(Into::into),
        })
    }

    /// Held locks whose key starts with `prefix` (`limit` 0: 1000).
    #[graphql(complexity = "list_cost(limit, 1000, child_complexity)")]
    async fn locks(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] prefix: String,
        #[graphql(default, validator(maximum = 10000))] limit: u32,
    ) -> async_graphql::Result<Vec<Lease>> {
        require(ctx, Permission::LocksRead, Some(&prefix))?;
        let leases = engine(ctx)
            .locks
            .list(&prefix, limit as usize)
            .await
            .map_err(gql)?;
        Ok(leases.into_iter().map(Into::into).collect())
    }

    /// Cache operation counts of this server since it started.
    async fn cache_stats(&self, ctx: &Context<'_>) -> async_graphql::Result<CacheStats> {
        require(ctx, Permission::CacheRead, None)?;
        Ok(engine(ctx).cache.stats().into())
    }

    /// A cache entry, `null` when absent.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn cache(
        &self,
        ctx: &Context<'_>,
        key: String,
    ) -> async_graphql::Result<Option<CacheEntry>> {
        require(ctx, Permission::CacheRead, Some(&key))?;
        let entry = engine(ctx).cache.get(&key).await.map_err(gql)?;
        Ok(entry.map(Into::into))
    }

    /// Events of one stream from version `from` (inclusive; `limit` 0: 100).
    #[graphql(complexity = "list_cost(limit, 100, child_complexity)")]
    async fn stream_events(
        &self,
        ctx: &Context<'_>,
        stream: String,
        from: Option<u64>,
        #[graphql(default)] direction: ReadDirection,
        #[graphql(default, validator(maximum = 10000))] limit: u32,
    ) -> async_graphql::Result<StreamEvents> {
        require(ctx, Permission::EventsRead, Some(&stream))?;
        let slice = engine(ctx)
            .events
            .read_stream(&stream, from, direction.into(), limit as usize)
            .await
            .map_err(gql)?;
        Ok(StreamEvents {
            stream,
            exists: slice.last_version.is_some(),
            last_version: slice.last_version,
            events: slice.events.into_iter().map(Into::into).collect(),
        })
    }

    /// Events of every stream from global position `from` (inclusive; `limit` 0: 100).
    #[graphql(complexity = "list_cost(limit, 100, child_complexity)")]
    async fn all_events(
        &self,
        ctx: &Context<'_>,
        from: Option<u64>,
        #[graphql(default)] direction: ReadDirection,
        #[graphql(default, validator(maximum = 10000))] limit: u32,
    ) -> async_graphql::Result<AllEvents> {
        require(ctx, Permission::EventsRead, Some(""))?;
        let slice = engine(ctx)
            .events
            .read_all(from, direction.into(), limit as usize)
            .await
            .map_err(gql)?;
        Ok(AllEvents {
            last_position: slice.last_position,
            events: slice.events.into_iter().map(Into::into).collect(),
        })
    }

    /// A saga with its steps and attempts.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn saga(&self, ctx: &Context<'_>, saga_id: String) -> async_graphql::Result<Saga> {
        require(ctx, Permission::SagasRead, None)?;
        let saga = engine(ctx).sagas.get(&saga_id).await.map_err(gql)?;
        Ok(saga.into())
    }

    /// Sagas, newest first, optionally by state (`running`, `completed`, ...) and name: the
    /// first page only (see `sagaPage` to page on; `limit` 0: 100).
    #[graphql(complexity = "list_cost(limit, 100, child_complexity)")]
    async fn sagas(
        &self,
        ctx: &Context<'_>,
        state: Option<String>,
        name: Option<String>,
        #[graphql(default, validator(maximum = 10000))] limit: u32,
    ) -> async_graphql::Result<Vec<Saga>> {
        Ok(self.saga_page(ctx, state, name, limit, None).await?.sagas)
    }

    /// One page of sagas, newest first; pass `nextPageToken` as `pageToken` for the next one.
    #[graphql(complexity = "list_cost(limit, 100, child_complexity)")]
    async fn saga_page(
        &self,
        ctx: &Context<'_>,
        state: Option<String>,
        name: Option<String>,
        #[graphql(default, validator(maximum = 10000))] limit: u32,
        page_token: Option<String>,
    ) -> async_graphql::Result<SagaPage> {
        require(
            ctx,
            Permission::SagasRead,
            Some(name.as_deref().unwrap_or("")),
        )?;
        let state = match state.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                syros_engine::sagas::SagaState::parse(text)
                    .ok_or_else(|| invalid(&format!("unknown saga state {text:?}")))?,
            ),
        };
        let page = engine(ctx)
            .sagas
            .list(syros_engine::sagas::SagaFilter {
                state,
                name: name.filter(|n| !n.is_empty()),
                page_token,
                limit: limit as usize,
            })
            .await
            .map_err(gql)?;
        Ok(SagaPage {
            sagas: page.sagas.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token,
        })
    }
}

/// Mutations.
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Acquire a lock, waiting up to `waitTimeoutMs` in FIFO order.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn acquire_lock(
        &self,
        ctx: &Context<'_>,
        input: AcquireLockInput,
    ) -> async_graphql::Result<AcquireResult> {
        require(ctx, Permission::LocksAcquire, Some(&input.key))?;
        let outcome = engine(ctx)
            .locks
            .acquire(AcquireLock {
                key: input.key,
                owner: input.owner,
                ttl_ms: input.ttl_ms,
                wait_timeout_ms: input.wait_timeout_ms,
                request_id: input.request_id.unwrap_or_default(),
            })
            .await;
        Ok(match outcome.map_err(gql)? {
            AcquireOutcome::Acquired(lease) => AcquireResult {
                acquired: true,
                lease: Some(lease.into()),
                holder: None,
            },
            AcquireOutcome::TimedOut { holder } => AcquireResult {
                acquired: false,
                lease: None,
                holder: holder.map(Into::into),
            },
        })
    }

    /// Extend a held lease to `ttlMs` from now.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn renew_lock(
        &self,
        ctx: &Context<'_>,
        lease_id: String,
        ttl_ms: u64,
    ) -> async_graphql::Result<Lease> {
        require(ctx, Permission::LocksAcquire, None)?;
        let lease = engine(ctx)
            .locks
            .renew(&lease_id, ttl_ms)
            .await
            .map_err(gql)?;
        Ok(lease.into())
    }

    /// Release a held lease; returns the lease that ended.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn release_lock(
        &self,
        ctx: &Context<'_>,
        lease_id: String,
    ) -> async_graphql::Result<Lease> {
        require(ctx, Permission::LocksAcquire, None)?;
        let lease = engine(ctx).locks.release(&lease_id).await.map_err(gql)?;
        Ok(lease.into())
    }

    /// Admin: drop whatever lease holds `key`.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn force_release_lock(
        &self,
        ctx: &Context<'_>,
        key: String,
    ) -> async_graphql::Result<ForceReleaseResult> {
        let who = require(ctx, Permission::LocksAdmin, Some(&key))?;
        crate::security::audit(&who.id, "force_release", &key);
        let dropped = engine(ctx).locks.force_release(&key).await.map_err(gql)?;
        Ok(ForceReleaseResult {
            released: dropped.is_some(),
            lease: dropped.map(Into::into),
        })
    }

    /// Store a value: `value` (any JSON, stored as its JSON text) or `valueBase64` (bytes).
    /// `ttlMs` 0 or absent: never expires.
    #[graphql(complexity = "input_list_cost(tags.len(), child_complexity)")]
    async fn cache_set(
        &self,
        ctx: &Context<'_>,
        key: String,
        value: Option<Json<Value>>,
        value_base64: Option<String>,
        #[graphql(default)] ttl_ms: u64,
        #[graphql(default, validator(max_items = 32))] tags: Vec<String>,
    ) -> async_graphql::Result<CacheEntry> {
        require(ctx, Permission::CacheWrite, Some(&key))?;
        let bytes = match (value, value_base64) {
            (Some(Json(value)), None) => serde_json::to_vec(&value)
                .map_err(|e| invalid(&format!("value cannot be stored: {e}")))?,
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|e| invalid(&format!("valueBase64 is not base64: {e}")))?,
            _ => return Err(invalid("give exactly one of value and valueBase64")),
        };
        let entry = engine(ctx)
            .cache
            .set(&key, bytes, ttl_ms, tags)
            .await
            .map_err(gql)?;
        Ok(entry.into())
    }

    /// Remove a key; true if it existed.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn cache_delete(&self, ctx: &Context<'_>, key: String) -> async_graphql::Result<bool> {
        require(ctx, Permission::CacheWrite, Some(&key))?;
        engine(ctx).cache.delete(&key).await.map_err(gql)
    }

    /// Remove every key carrying `tag`; returns how many.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn invalidate_cache_tag(
        &self,
        ctx: &Context<'_>,
        tag: String,
    ) -> async_graphql::Result<u64> {
        require(ctx, Permission::CacheWrite, Some(&tag))?;
        engine(ctx).cache.invalidate_tag(&tag).await.map_err(gql)
    }

    /// Append events atomically. `expectedVersion`: the stream's current version;
    /// `noStream: true`: the stream must not exist yet; neither: any.
    #[graphql(complexity = "input_list_cost(events.len(), child_complexity)")]
    async fn append_events(
        &self,
        ctx: &Context<'_>,
        stream: String,
        #[graphql(validator(max_items = 1000))] events: Vec<EventInput>,
        expected_version: Option<u64>,
        #[graphql(default)] no_stream: bool,
    ) -> async_graphql::Result<AppendResult> {
        require(ctx, Permission::EventsAppend, Some(&stream))?;
        let expected = match (expected_version, no_stream) {
            (Some(_), true) => return Err(invalid("give expectedVersion or noStream, not both")),
            (Some(v), false) => ExpectedVersion::Exact(v),
            (None, true) => ExpectedVersion::NoStream,
            (None, false) => ExpectedVersion::Any,
        };
        let count = events.len() as u64;
        let events = events
            .into_iter()
            .map(|e| EngineEvent {
                event_id: e.event_id.unwrap_or_default(),
                event_type: e.event_type,
                data: e.data.0.to_string(),
                metadata: e.metadata.map(|m| m.0.to_string()).unwrap_or_default(),
            })
            .collect();
        let appended = engine(ctx)
            .events
            .append(&stream, events, expected)
            .await
            .map_err(gql)?;
        Ok(AppendResult {
            stream,
            first_version: (appended.last_version + 1).saturating_sub(count),
            last_version: appended.last_version,
            first_position: appended.first_position,
            last_position: appended.last_position,
        })
    }

    /// Start a saga; its steps run on step runners in order, compensated in reverse on
    /// failure. Starting again with the same `idempotencyKey` returns the existing saga.
    #[graphql(complexity = "input_list_cost(input.steps.len(), child_complexity)")]
    async fn start_saga(
        &self,
        ctx: &Context<'_>,
        input: StartSagaInput,
    ) -> async_graphql::Result<Saga> {
        require(ctx, Permission::SagasStart, Some(&input.name))?;
        let request = syros_engine::sagas::StartSaga {
            name: input.name,
            steps: input
                .steps
                .into_iter()
                .map(|s| syros_engine::sagas::StepDefinition {
                    name: s.name,
                    service: s.service,
                    action: s.action,
                    compensation: s.compensation,
                    timeout_ms: s.timeout_ms,
                    retry: s.retry_policy.map(Into::into),
                })
                .collect(),
            input: input.input.map(|v| v.0.to_string()).unwrap_or_default(),
            idempotency_key: input.idempotency_key.unwrap_or_default(),
            retry: input.retry_policy.map(Into::into),
        };
        let saga = engine(ctx).sagas.start(request).await.map_err(gql)?;
        Ok(saga.into())
    }

    /// Cancel a saga: queued work is withdrawn, completed steps are compensated.
    #[graphql(complexity = "STORAGE_CALL_COST + child_complexity")]
    async fn cancel_saga(&self, ctx: &Context<'_>, saga_id: String) -> async_graphql::Result<Saga> {
        let who = require(ctx, Permission::SagasCancel, None)?;
        crate::security::audit(&who.id, "saga_cancel", &saga_id);
        let saga = engine(ctx).sagas.cancel(&saga_id).await.map_err(gql)?;
        Ok(saga.into())
    }
}

/// Subscriptions (over `/graphql/ws`).
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Events of `stream` (all streams when absent): every stored one from `from` (a version,
    /// or a global position for all streams; default 0), then new ones as they are appended.
    /// `fromEnd: true` skips the stored ones.
    async fn events(
        &self,
        ctx: &Context<'_>,
        stream: Option<String>,
        from: Option<u64>,
        #[graphql(default)] from_end: bool,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Event>>> {
        require(
            ctx,
            Permission::EventsRead,
            Some(stream.as_deref().unwrap_or("")),
        )?;
        let target = match stream {
            Some(stream) => SubscriptionTarget::Stream(stream),
            None => SubscriptionTarget::All,
        };
        let start = match (from_end, from) {
            (true, Some(_)) => return Err(invalid("give from or fromEnd, not both")),
            (true, None) => SubscriptionStart::End,
            (false, from) => SubscriptionStart::From(from.unwrap_or(0)),
        };
        let slot = subscription_slot(ctx)?;
        let events = engine(ctx)
            .events
            .subscribe(target, start)
            .await
            .map_err(gql)?;
        Ok(ReceiverStream::new(events).map(move |item| {
            let _held = &slot;
            item.map(Event::from).map_err(gql)
        }))
    }

    /// Changes of the locks whose key starts with `prefix` (every lock when empty), from now
    /// on: acquired, renewed, released, force-released, expired. Ends with an `unavailable`
    /// error when the subscriber fell too far behind (changes were missed) or the server shuts
    /// down.
    async fn lock_changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] prefix: String,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<LockChangeValue>>> {
        require(ctx, Permission::LocksRead, Some(&prefix))?;
        let slot = subscription_slot(ctx)?;
        let watch = engine(ctx).locks.watch(&prefix).await.map_err(gql)?;
        Ok(futures::stream::unfold(
            (watch, slot),
            |(mut watch, slot)| async move {
                let item = watch.next().await?;
                Some((item.map(LockChangeValue::from).map_err(gql), (watch, slot)))
            },
        ))
    }
}
