//! The UniFFI bridge between Kotlin/Swift and the Syros binding API (`syros-binding-api`).
//!
//! It only translates, in two ways:
//!
//! - **Records and enums** are the binding API's own types, declared to UniFFI with
//!   `#[uniffi::remote(...)]` in [`records`]: the compiler checks each declaration against the
//!   original, nothing is copied at run time, and no mirror type exists. (Half of them are the
//!   client core's and the vocabulary's, re-exported by the binding API, so the derives cannot
//!   sit on the definitions without making those crates depend on UniFFI.)
//! - **Objects** ([`Client`], [`Lease`], [`Subscription`], [`Worker`], [`ComputeTicket`]) wrap
//!   the binding API's `Arc`s. Their `async` methods are UniFFI async exports that only await a
//!   [`rt::CoreTask`], which runs on the client core's runtime: Kotlin coroutines and Swift tasks
//!   poll the `JoinHandle`, nothing here runs a runtime of its own. Cancelling the coroutine or
//!   task drops the future, which aborts the work (the binding API's cancel-on-drop).
//!
//! Nothing calls back into Kotlin or Swift from a Rust thread on a hot path: workers,
//! subscriptions, lease ends and get-or-compute tickets are pulled by the idiomatic layers
//! (`sdks/kotlin`, `sdks/swift`). Every error is one [`FfiError`] carrying the
//! [`ErrorRecord`]; the idiomatic layers map its code to their error classes.

use std::collections::HashMap;
use std::sync::Arc;

use syros_binding_api as api;
use syros_binding_api::{rt, ErrorKind, ErrorRecord};

mod records;

pub use records::*;

uniffi::setup_scaffolding!("syros");

/// A failed call: the binding API's [`ErrorRecord`]. `code` is the stable snake_case code of its
/// kind ([`error_codes`] lists them all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FfiError {
    /// The only variant: every failure carries the same fields.
    #[error("{code}: {description}")]
    Failed {
        /// Stable code of the kind (`lock_timeout`, `version_conflict`, ...).
        code: String,
        /// Whether the same request may succeed later.
        retryable: bool,
        /// Human-readable explanation (named so it does not shadow the host's own `message`).
        description: String,
        /// Structured context (`holder_owner`, `grpc_code`, ...).
        details: HashMap<String, String>,
    },
}

impl From<ErrorRecord> for FfiError {
    fn from(err: ErrorRecord) -> Self {
        FfiError::Failed {
            code: err.code,
            retryable: err.retryable,
            description: err.message,
            details: err.details.into_iter().collect(),
        }
    }
}

/// The bridge's `Result`.
pub type FfiResult<T> = Result<T, FfiError>;

async fn wait<T: Send + 'static>(task: rt::CoreTask<T>) -> FfiResult<T> {
    Ok(task.await?)
}

/// The stable codes of every error kind, in the core's order.
#[uniffi::export]
pub fn error_codes() -> Vec<String> {
    ErrorKind::ALL
        .iter()
        .map(|kind| kind.code().to_string())
        .collect()
}

/// The client core's version.
#[uniffi::export]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Stop the client core's runtime, waiting up to `timeout_ms` for its tasks (renewals,
/// subscriptions and workers end; pending calls fail with `cancelled`). The next call starts a
/// new one. Hosts call it at exit.
#[uniffi::export]
pub fn shutdown(timeout_ms: u64) {
    rt::shutdown(timeout_ms);
}

/// The defaults of a [`ClientConfig`] for these addresses.
#[uniffi::export]
pub fn default_client_config(addresses: Vec<String>) -> ClientConfig {
    ClientConfig::new(addresses)
}

/// A connection to Syros ([`api::Client`]).
#[derive(uniffi::Object)]
pub struct Client {
    inner: Arc<api::Client>,
}

#[uniffi::export]
impl Client {
    /// Check `config` and start connecting (on the core runtime); calls wait for the connection.
    #[uniffi::constructor]
    pub fn new(config: ClientConfig) -> FfiResult<Arc<Client>> {
        Ok(Arc::new(Client {
            inner: api::Client::new(config)?,
        }))
    }

    /// Wait until connected; fails with the connection's error.
    pub async fn connect(&self) -> FfiResult<()> {
        wait(self.inner.connect()).await
    }

    /// Replace the bearer token sent with every later call (`None`: send none).
    pub fn set_auth_token(&self, token: Option<String>) {
        self.inner.set_auth_token(token);
    }

    /// Refuse every later call (idempotent); leases, workers and subscriptions keep working.
    /// (Not `close`: that is the generated Kotlin class's `AutoCloseable.close`, which frees it.)
    pub fn close_client(&self) {
        self.inner.close();
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The default lock owner (once connected).
    pub fn owner(&self) -> FfiResult<String> {
        Ok(self.inner.owner()?)
    }

    /// The address calls go to now (once connected).
    pub fn current_address(&self) -> FfiResult<String> {
        Ok(self.inner.current_address()?)
    }

    /// Calls, attempts, retries and failovers so far (once connected).
    pub fn stats(&self) -> FfiResult<ClientStats> {
        Ok(self.inner.stats()?)
    }

    /// Ask the server whether it is serving.
    pub async fn check_health(&self) -> FfiResult<()> {
        wait(self.inner.check_health()).await
    }

    /// Acquire `key`, waiting up to `request.wait_ms`; `lock_timeout` when still held then.
    pub async fn lock(&self, key: String, request: LockRequest) -> FfiResult<Arc<Lease>> {
        let lease = wait(self.inner.lock(key, request)).await?;
        Ok(Arc::new(Lease { inner: lease }))
    }

    /// Try once: `None` when someone else holds `key`.
    pub async fn try_lock(
        &self,
        key: String,
        request: LockRequest,
    ) -> FfiResult<Option<Arc<Lease>>> {
        let lease = wait(self.inner.try_lock(key, request)).await?;
        Ok(lease.map(|inner| Arc::new(Lease { inner })))
    }

    /// The current holder of `key`.
    pub async fn lock_status(&self, key: String) -> FfiResult<Option<LeaseInfo>> {
        wait(self.inner.lock_status(key)).await
    }

    /// Held locks whose key starts with `prefix` (`limit` 0 = the server's default).
    pub async fn list_locks(&self, prefix: String, limit: u32) -> FfiResult<Vec<LeaseInfo>> {
        wait(self.inner.list_locks(prefix, limit)).await
    }

    /// Administrative: drop whatever lease holds `key`; returns it.
    pub async fn force_release(&self, key: String) -> FfiResult<Option<LeaseInfo>> {
        wait(self.inner.force_release(key)).await
    }

    /// The entry under `key`.
    pub async fn cache_get(&self, key: String) -> FfiResult<Option<CacheEntry>> {
        wait(self.inner.cache_get(key)).await
    }

    /// Store `value`; returns its expiry (ms since the epoch), if any.
    pub async fn cache_set(
        &self,
        key: String,
        value: Vec<u8>,
        set: CacheSet,
    ) -> FfiResult<Option<i64>> {
        wait(self.inner.cache_set(key, value, set)).await
    }

    /// Remove `key`; whether it existed.
    pub async fn cache_delete(&self, key: String) -> FfiResult<bool> {
        wait(self.inner.cache_delete(key)).await
    }

    /// Remove every key tagged `tag`; how many.
    pub async fn cache_invalidate_tag(&self, tag: String) -> FfiResult<u64> {
        wait(self.inner.cache_invalidate_tag(tag)).await
    }

    /// Get-or-compute, pulled: the value, or a ticket this caller completes (single-flight per
    /// key in this process).
    pub async fn cache_begin(&self, key: String, set: CacheSet) -> FfiResult<CacheLookup> {
        Ok(match wait(self.inner.cache_begin(key, set)).await? {
            api::CacheLookup::Hit(value) => CacheLookup::Hit {
                value: value.to_vec(),
            },
            api::CacheLookup::Compute(ticket) => CacheLookup::Compute {
                ticket: Arc::new(ComputeTicket { inner: ticket }),
            },
        })
    }

    /// Append `events` atomically if `stream` is at `expected`.
    pub async fn append(
        &self,
        stream: String,
        events: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> FfiResult<AppendResult> {
        wait(self.inner.append(stream, events, expected)).await
    }

    /// Read a page of one stream or of all streams.
    pub async fn read(&self, request: ReadRequest) -> FfiResult<ReadResult> {
        wait(self.inner.read(request)).await
    }

    /// Follow one stream (or all, `stream = None`): catch-up, then live.
    pub async fn subscribe(
        &self,
        stream: Option<String>,
        start: SubscribeStart,
    ) -> FfiResult<Arc<Subscription>> {
        let inner = wait(self.inner.subscribe(stream, start)).await?;
        Ok(Arc::new(Subscription { inner }))
    }

    /// Start a saga (or get the one started with the same idempotency key).
    pub async fn start_saga(&self, saga: StartSaga) -> FfiResult<SagaInfo> {
        wait(self.inner.start_saga(saga)).await
    }

    /// One saga.
    pub async fn get_saga(&self, saga_id: String) -> FfiResult<SagaInfo> {
        wait(self.inner.get_saga(saga_id)).await
    }

    /// Sagas, newest first, optionally of one state and/or name (`limit` 0 = the default).
    pub async fn list_sagas(
        &self,
        state: Option<SagaState>,
        name: Option<String>,
        limit: u32,
    ) -> FfiResult<Vec<SagaInfo>> {
        wait(self.inner.list_sagas(state, name, limit)).await
    }

    /// Cancel a saga: what completed is compensated.
    pub async fn cancel_saga(&self, saga_id: String) -> FfiResult<SagaInfo> {
        wait(self.inner.cancel_saga(saga_id)).await
    }

    /// Wait until the saga is final, at most `timeout_ms` (then `deadline_exceeded`).
    pub async fn wait_saga(&self, saga_id: String, timeout_ms: u64) -> FfiResult<SagaInfo> {
        wait(self.inner.wait_saga(saga_id, timeout_ms)).await
    }

    /// Start a step runner for `service`'s tasks, at most `max_concurrent` held at once.
    pub async fn worker(&self, service: String, max_concurrent: u32) -> FfiResult<Arc<Worker>> {
        let inner = wait(self.inner.worker(service, max_concurrent)).await?;
        Ok(Arc::new(Worker { inner }))
    }
}

/// A held lock ([`api::Lease`]), renewed by the core; destroying the last reference releases it.
#[derive(uniffi::Object)]
pub struct Lease {
    inner: Arc<api::Lease>,
}

#[uniffi::export]
impl Lease {
    /// The lease as last granted or renewed.
    pub fn info(&self) -> LeaseInfo {
        self.inner.info()
    }

    /// The TTL it was acquired with.
    pub fn ttl_ms(&self) -> u64 {
        self.inner.ttl_ms()
    }

    /// Whether it was lost.
    pub fn is_lost(&self) -> bool {
        self.inner.is_lost()
    }

    /// Whether it is still ours: neither released nor lost.
    pub fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// Release it; releasing again does nothing.
    pub async fn release(&self) -> FfiResult<()> {
        wait(self.inner.release()).await
    }

    /// Extend it now (the core renews it by itself anyway).
    pub async fn renew(&self) -> FfiResult<LeaseInfo> {
        wait(self.inner.renew()).await
    }

    /// Wait until the lease ends (lost or released), at most `timeout_ms` (`None`: no limit).
    pub async fn wait_end(&self, timeout_ms: Option<u64>) -> FfiResult<LeaseEnd> {
        wait(self.inner.wait_end(timeout_ms)).await
    }
}

/// A live subscription ([`api::Subscription`]), read with `next`.
#[derive(uniffi::Object)]
pub struct Subscription {
    inner: Arc<api::Subscription>,
}

#[uniffi::export]
impl Subscription {
    /// The next event, waiting up to `timeout_ms` (`None`: until one comes or it is closed).
    pub async fn next(&self, timeout_ms: Option<u64>) -> FfiResult<SubscriptionItem> {
        wait(self.inner.next(timeout_ms)).await
    }

    /// Stop following (idempotent); a pending `next` returns `Ended`. (Not `close`: that is the
    /// generated Kotlin class's `AutoCloseable.close`, which frees it.)
    pub fn unsubscribe(&self) {
        self.inner.close();
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

/// A pulled saga step runner ([`api::Worker`]).
#[derive(uniffi::Object)]
pub struct Worker {
    inner: Arc<api::Worker>,
}

#[uniffi::export]
impl Worker {
    /// The id the server knows this worker by.
    pub fn worker_id(&self) -> String {
        self.inner.worker_id()
    }

    /// The next task, waiting up to `timeout_ms` (`None`: until one comes or the worker stops).
    pub async fn poll_task(&self, timeout_ms: Option<u64>) -> FfiResult<Option<TaskRecord>> {
        wait(self.inner.poll_task(timeout_ms)).await
    }

    /// Report a task's outcome; whether the server accepted it.
    pub async fn complete(&self, task_id: String, outcome: TaskOutcome) -> FfiResult<bool> {
        wait(self.inner.complete(task_id, outcome)).await
    }

    /// Whether the task is still assigned to this worker.
    pub async fn heartbeat(&self, task_id: String) -> FfiResult<bool> {
        wait(self.inner.heartbeat(task_id)).await
    }

    /// Tasks held now (handed out or buffered, not yet completed).
    pub fn outstanding(&self) -> u64 {
        self.inner.outstanding()
    }

    /// Stop taking tasks (idempotent); pending polls return `None`.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Stop, then wait until every task handed out has been completed (or timed out).
    pub async fn stop_and_drain(&self) -> FfiResult<()> {
        wait(self.inner.stop_and_drain()).await
    }
}

/// The outcome of `Client.cache_begin`.
#[derive(uniffi::Enum)]
pub enum CacheLookup {
    /// The value: cached, or computed by another caller of the same flight.
    Hit {
        /// The bytes.
        value: Vec<u8>,
    },
    /// A miss, and this caller computes: complete (or fail) the ticket.
    Compute {
        /// The ticket.
        ticket: Arc<ComputeTicket>,
    },
}

/// The right and duty to compute one missing cache value ([`api::ComputeTicket`]); destroying
/// it unfinished fails it.
#[derive(uniffi::Object)]
pub struct ComputeTicket {
    inner: Arc<api::ComputeTicket>,
}

#[uniffi::export]
impl ComputeTicket {
    /// The key to compute.
    pub fn key(&self) -> String {
        self.inner.key().to_string()
    }

    /// Hand over the computed value; resolves to it once stored.
    pub async fn complete(&self, value: Vec<u8>) -> FfiResult<Vec<u8>> {
        Ok(wait(self.inner.complete(value)).await?.to_vec())
    }

    /// The computation failed: every waiting caller gets `callback_failed`; nothing is stored.
    pub async fn fail(&self, message: String) -> FfiResult<()> {
        wait(self.inner.fail(message)).await
    }
}
