//! [`Client`]: the connection and every operation of the binding API.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use syros_binding_api as api;

use crate::handles::{ComputeTicket, Lease, Subscription, Worker};
use crate::records::*;
use crate::{js, non_negative, promise, token, CancelToken};

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
    #[napi(ts_return_type = "Promise<void>")]
    pub fn connect<'env>(
        &self,
        env: &'env Env,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        promise(env, self.inner.connect(), token(cancel), Ok)
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
    #[napi(ts_return_type = "Promise<void>")]
    pub fn check_health<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        promise(env, self.inner.check_health(), None, Ok)
    }

    /// Acquire `key`, waiting up to `request.waitMs`.
    #[napi(ts_return_type = "Promise<Lease>")]
    pub fn lock<'env>(
        &self,
        env: &'env Env,
        key: String,
        request: LockRequest,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let task = self.inner.lock(key, request.record()?);
        promise(env, task, token(cancel), |inner| Ok(Lease { inner }))
    }

    /// Try once: `null` when someone else holds `key`.
    #[napi(ts_return_type = "Promise<Lease | null>")]
    pub fn try_lock<'env>(
        &self,
        env: &'env Env,
        key: String,
        request: LockRequest,
    ) -> Result<Object<'env>> {
        let task = self.inner.try_lock(key, request.record()?);
        promise(env, task, None, |lease| {
            Ok(lease.map(|inner| Lease { inner }))
        })
    }

    /// The current holder of `key`.
    #[napi(ts_return_type = "Promise<LeaseInfo | null>")]
    pub fn lock_status<'env>(&self, env: &'env Env, key: String) -> Result<Object<'env>> {
        promise(env, self.inner.lock_status(key), None, |lease| {
            Ok(lease.map(LeaseInfo::from))
        })
    }

    /// Held locks whose key starts with `prefix`.
    #[napi(ts_return_type = "Promise<Array<LeaseInfo>>")]
    pub fn list_locks<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        limit: Option<u32>,
    ) -> Result<Object<'env>> {
        let task = self.inner.list_locks(prefix, limit.unwrap_or(0));
        promise(env, task, None, |locks| {
            Ok(locks.into_iter().map(LeaseInfo::from).collect::<Vec<_>>())
        })
    }

    /// Administrative: drop whatever lease holds `key`; returns it.
    #[napi(ts_return_type = "Promise<LeaseInfo | null>")]
    pub fn force_release<'env>(&self, env: &'env Env, key: String) -> Result<Object<'env>> {
        promise(env, self.inner.force_release(key), None, |lease| {
            Ok(lease.map(LeaseInfo::from))
        })
    }

    /// The entry under `key`.
    #[napi(ts_return_type = "Promise<CacheEntry | null>")]
    pub fn cache_get<'env>(&self, env: &'env Env, key: String) -> Result<Object<'env>> {
        promise(env, self.inner.cache_get(key), None, |entry| {
            Ok(entry.map(CacheEntry::from))
        })
    }

    /// Store `value`; its expiry (ms since the epoch), if any.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn cache_set<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Buffer,
        set: CacheSet,
    ) -> Result<Object<'env>> {
        let task = self.inner.cache_set(key, value.to_vec(), set.record()?);
        promise(env, task, None, Ok)
    }

    /// Remove `key`; whether it existed.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn cache_delete<'env>(&self, env: &'env Env, key: String) -> Result<Object<'env>> {
        promise(env, self.inner.cache_delete(key), None, Ok)
    }

    /// Remove every key tagged `tag`; how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn cache_invalidate_tag<'env>(&self, env: &'env Env, tag: String) -> Result<Object<'env>> {
        promise(env, self.inner.cache_invalidate_tag(tag), None, |removed| {
            Ok(crate::number(removed))
        })
    }

    /// Get-or-compute: the value, or a ticket this caller completes (single-flight).
    #[napi(ts_return_type = "Promise<Buffer | ComputeTicket>")]
    pub fn cache_begin<'env>(
        &self,
        env: &'env Env,
        key: String,
        set: CacheSet,
    ) -> Result<Object<'env>> {
        let task = self.inner.cache_begin(key, set.record()?);
        promise(env, task, None, |lookup| {
            Ok(match lookup {
                api::CacheLookup::Hit(value) => Either::<Buffer, _>::A(value.to_vec().into()),
                api::CacheLookup::Compute(inner) => Either::B(ComputeTicket { inner }),
            })
        })
    }

    /// Append `events` atomically if `stream` is at `expected` (`"any"`, `"no_stream"` or a
    /// version).
    #[napi(ts_return_type = "Promise<AppendResult>")]
    pub fn append<'env>(
        &self,
        env: &'env Env,
        stream: String,
        events: Vec<NewEvent>,
        expected: Either<String, i64>,
    ) -> Result<Object<'env>> {
        let expected = expected_version(expected)?;
        let events = events.into_iter().map(Into::into).collect();
        let task = self.inner.append(stream, events, expected);
        promise(env, task, None, |appended| Ok(AppendResult::from(appended)))
    }

    /// Read a page of one stream or of all streams.
    #[napi(ts_return_type = "Promise<ReadResult>")]
    pub fn read<'env>(&self, env: &'env Env, request: ReadRequest) -> Result<Object<'env>> {
        let task = self.inner.read(request.record()?);
        promise(env, task, None, |page| Ok(ReadResult::from(page)))
    }

    /// Follow one stream (or all: `stream` null) from `"start"`, `"end"` or a position.
    #[napi(ts_return_type = "Promise<Subscription>")]
    pub fn subscribe<'env>(
        &self,
        env: &'env Env,
        stream: Option<String>,
        from: Either<String, i64>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let start = subscribe_start(from)?;
        let task = self.inner.subscribe(stream, start);
        promise(env, task, token(cancel), |inner| Ok(Subscription { inner }))
    }

    /// Start a saga (or get the one started with the same idempotency key).
    #[napi(ts_return_type = "Promise<SagaInfo>")]
    pub fn start_saga<'env>(&self, env: &'env Env, saga: StartSaga) -> Result<Object<'env>> {
        let task = self.inner.start_saga(saga.record()?);
        promise(env, task, None, |saga| Ok(SagaInfo::from(saga)))
    }

    /// One saga.
    #[napi(ts_return_type = "Promise<SagaInfo>")]
    pub fn get_saga<'env>(&self, env: &'env Env, saga_id: String) -> Result<Object<'env>> {
        promise(env, self.inner.get_saga(saga_id), None, |saga| {
            Ok(SagaInfo::from(saga))
        })
    }

    /// Sagas, newest first, optionally of one state and/or name.
    #[napi(ts_return_type = "Promise<Array<SagaInfo>>")]
    pub fn list_sagas<'env>(
        &self,
        env: &'env Env,
        state: Option<String>,
        name: Option<String>,
        limit: Option<u32>,
    ) -> Result<Object<'env>> {
        let state = state.map(|s| js(api::parse_saga_state(&s))).transpose()?;
        let task = self.inner.list_sagas(state, name, limit.unwrap_or(0));
        promise(env, task, None, |sagas| {
            Ok(sagas.into_iter().map(SagaInfo::from).collect::<Vec<_>>())
        })
    }

    /// Cancel a saga: what completed is compensated.
    #[napi(ts_return_type = "Promise<SagaInfo>")]
    pub fn cancel_saga<'env>(&self, env: &'env Env, saga_id: String) -> Result<Object<'env>> {
        promise(env, self.inner.cancel_saga(saga_id), None, |saga| {
            Ok(SagaInfo::from(saga))
        })
    }

    /// Wait until the saga is final, at most `timeout_ms` (then `deadline_exceeded`).
    #[napi(ts_return_type = "Promise<SagaInfo>")]
    pub fn wait_saga<'env>(
        &self,
        env: &'env Env,
        saga_id: String,
        timeout_ms: i64,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let timeout = non_negative("timeout", timeout_ms)?;
        let task = self.inner.wait_saga(saga_id, timeout);
        promise(env, task, token(cancel), |saga| Ok(SagaInfo::from(saga)))
    }

    /// Start a step runner for `service`, at most `max_concurrent` tasks held at once.
    #[napi(ts_return_type = "Promise<Worker>")]
    pub fn worker<'env>(
        &self,
        env: &'env Env,
        service: String,
        max_concurrent: u32,
    ) -> Result<Object<'env>> {
        let task = self.inner.worker(service, max_concurrent);
        promise(env, task, None, |inner| Ok(Worker { inner }))
    }
}
