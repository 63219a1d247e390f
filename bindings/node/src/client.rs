//! [`Client`]: the connection and every operation of the binding API.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use syros_binding_api as api;

use crate::handles::{ComputeTicket, Lease, Subscription, Worker};
use crate::records::*;
use crate::{js, non_negative, token, wait, CancelToken};

/// A connection to Syros (connecting starts when it is created).
#[napi]
pub struct Client {
    inner: Arc<api::Client>,
}

fn expected_version(expected: Either<String, i64>) -> Result<api::ExpectedVersion> {
    match expected {
        Either::A(name) => js(api::parse_expected_version(&name)),
        Either::B(version) => Ok(api::ExpectedVersion::Exact(non_negative(
            "expectedVersion",
            version,
        )?)),
    }
}

fn subscribe_start(from: Either<String, i64>) -> Result<api::SubscribeStart> {
    match from {
        Either::A(name) => js(api::SubscribeStart::parse(&name)),
        Either::B(at) => Ok(api::SubscribeStart::At(non_negative("from", at)?)),
    }
}

#[napi]
impl Client {
    /// Check `config` and start connecting.
    #[napi(factory)]
    pub fn create(config: ClientConfig) -> Result<Client> {
        Ok(Client {
            inner: js(api::Client::new(config.record()?))?,
        })
    }

    /// Wait until connected.
    #[napi]
    pub async fn connect(&self, cancel: Option<&CancelToken>) -> Result<()> {
        wait(self.inner.connect(), token(cancel)).await
    }

    /// Replace the bearer token sent with later calls (`null`: none).
    #[napi]
    pub fn set_auth_token(&self, auth_token: Option<String>) {
        self.inner.set_auth_token(auth_token);
    }

    /// Refuse every later call (idempotent).
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The default lock owner (once connected).
    #[napi]
    pub fn owner(&self) -> Result<String> {
        js(self.inner.owner())
    }

    /// The address calls go to now (once connected).
    #[napi]
    pub fn current_address(&self) -> Result<String> {
        js(self.inner.current_address())
    }

    /// Calls, attempts, retries and failovers so far.
    #[napi]
    pub fn stats(&self) -> Result<ClientStats> {
        js(self.inner.stats()).map(Into::into)
    }

    /// Ask the server whether it is serving.
    #[napi]
    pub async fn check_health(&self) -> Result<()> {
        js(self.inner.check_health().await)
    }

    /// Acquire `key`, waiting up to `request.waitMs`.
    #[napi]
    pub async fn lock(
        &self,
        key: String,
        request: LockRequest,
        cancel: Option<&CancelToken>,
    ) -> Result<Lease> {
        let lease = wait(self.inner.lock(key, request.record()?), token(cancel)).await?;
        Ok(Lease { inner: lease })
    }

    /// Try once: `null` when someone else holds `key`.
    #[napi]
    pub async fn try_lock(&self, key: String, request: LockRequest) -> Result<Option<Lease>> {
        let lease = js(self.inner.try_lock(key, request.record()?).await)?;
        Ok(lease.map(|inner| Lease { inner }))
    }

    /// The current holder of `key`.
    #[napi]
    pub async fn lock_status(&self, key: String) -> Result<Option<LeaseInfo>> {
        Ok(js(self.inner.lock_status(key).await)?.map(Into::into))
    }

    /// Held locks whose key starts with `prefix`.
    #[napi]
    pub async fn list_locks(&self, prefix: String, limit: Option<u32>) -> Result<Vec<LeaseInfo>> {
        let locks = js(self.inner.list_locks(prefix, limit.unwrap_or(0)).await)?;
        Ok(locks.into_iter().map(Into::into).collect())
    }

    /// Administrative: drop whatever lease holds `key`; returns it.
    #[napi]
    pub async fn force_release(&self, key: String) -> Result<Option<LeaseInfo>> {
        Ok(js(self.inner.force_release(key).await)?.map(Into::into))
    }

    /// The entry under `key`.
    #[napi]
    pub async fn cache_get(&self, key: String) -> Result<Option<CacheEntry>> {
        Ok(js(self.inner.cache_get(key).await)?.map(Into::into))
    }

    /// Store `value`; its expiry (ms since the epoch), if any.
    #[napi]
    pub async fn cache_set(
        &self,
        key: String,
        value: Buffer,
        set: CacheSet,
    ) -> Result<Option<i64>> {
        js(self
            .inner
            .cache_set(key, value.to_vec(), set.record()?)
            .await)
    }

    /// Remove `key`; whether it existed.
    #[napi]
    pub async fn cache_delete(&self, key: String) -> Result<bool> {
        js(self.inner.cache_delete(key).await)
    }

    /// Remove every key tagged `tag`; how many.
    #[napi]
    pub async fn cache_invalidate_tag(&self, tag: String) -> Result<i64> {
        Ok(crate::number(js(self
            .inner
            .cache_invalidate_tag(tag)
            .await)?))
    }

    /// Get-or-compute: the value, or a ticket this caller completes (single-flight).
    #[napi]
    pub async fn cache_begin(
        &self,
        key: String,
        set: CacheSet,
    ) -> Result<Either<Buffer, ComputeTicket>> {
        Ok(
            match js(self.inner.cache_begin(key, set.record()?).await)? {
                api::CacheLookup::Hit(value) => Either::A(value.to_vec().into()),
                api::CacheLookup::Compute(inner) => Either::B(ComputeTicket { inner }),
            },
        )
    }

    /// Append `events` atomically if `stream` is at `expected` (`"any"`, `"no_stream"` or a
    /// version).
    #[napi]
    pub async fn append(
        &self,
        stream: String,
        events: Vec<NewEvent>,
        expected: Either<String, i64>,
    ) -> Result<AppendResult> {
        let expected = expected_version(expected)?;
        let events = events.into_iter().map(Into::into).collect();
        Ok(js(self.inner.append(stream, events, expected).await)?.into())
    }

    /// Read a page of one stream or of all streams.
    #[napi]
    pub async fn read(&self, request: ReadRequest) -> Result<ReadResult> {
        Ok(js(self.inner.read(request.record()?).await)?.into())
    }

    /// Follow one stream (or all: `stream` null) from `"start"`, `"end"` or a position.
    #[napi]
    pub async fn subscribe(
        &self,
        stream: Option<String>,
        from: Either<String, i64>,
        cancel: Option<&CancelToken>,
    ) -> Result<Subscription> {
        let start = subscribe_start(from)?;
        let inner = wait(self.inner.subscribe(stream, start), token(cancel)).await?;
        Ok(Subscription { inner })
    }

    /// Start a saga (or get the one started with the same idempotency key).
    #[napi]
    pub async fn start_saga(&self, saga: StartSaga) -> Result<SagaInfo> {
        Ok(js(self.inner.start_saga(saga.record()?).await)?.into())
    }

    /// One saga.
    #[napi]
    pub async fn get_saga(&self, saga_id: String) -> Result<SagaInfo> {
        Ok(js(self.inner.get_saga(saga_id).await)?.into())
    }

    /// Sagas, newest first, optionally of one state and/or name.
    #[napi]
    pub async fn list_sagas(
        &self,
        state: Option<String>,
        name: Option<String>,
        limit: Option<u32>,
    ) -> Result<Vec<SagaInfo>> {
        let state = state.map(|s| js(api::parse_saga_state(&s))).transpose()?;
        let sagas = js(self.inner.list_sagas(state, name, limit.unwrap_or(0)).await)?;
        Ok(sagas.into_iter().map(Into::into).collect())
    }

    /// Cancel a saga: what completed is compensated.
    #[napi]
    pub async fn cancel_saga(&self, saga_id: String) -> Result<SagaInfo> {
        Ok(js(self.inner.cancel_saga(saga_id).await)?.into())
    }

    /// Wait until the saga is final, at most `timeout_ms` (then `deadline_exceeded`).
    #[napi]
    pub async fn wait_saga(
        &self,
        saga_id: String,
        timeout_ms: i64,
        cancel: Option<&CancelToken>,
    ) -> Result<SagaInfo> {
        let timeout = non_negative("timeout", timeout_ms)?;
        let saga = wait(self.inner.wait_saga(saga_id, timeout), token(cancel)).await?;
        Ok(saga.into())
    }

    /// Start a step runner for `service`, at most `max_concurrent` tasks held at once.
    #[napi]
    pub async fn worker(&self, service: String, max_concurrent: u32) -> Result<Worker> {
        let inner = js(self.inner.worker(service, max_concurrent).await)?;
        Ok(Worker { inner })
    }
}
