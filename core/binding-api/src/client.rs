//! [`Client`]: the connection and every operation, each returning a [`CoreTask`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::future::{BoxFuture, Shared};
use futures::FutureExt;

use crate::error::{ErrorKind, ErrorRecord, Result};
use crate::records::*;
use crate::rt::{self, CoreTask};

type Connection = Shared<BoxFuture<'static, Result<syros_client::Client>>>;

/// A connection to Syros. Connecting starts in [`Client::new`] and runs on the core runtime;
/// every operation waits for it first, so a host can create a client synchronously and use it
/// at once. Clients created before a `fork` refuse to work in the child (connect again there).
pub struct Client {
    conn: Connection,
    /// The process the client was created in: its connections do not survive a fork.
    pid: u32,
    token: Arc<RwLock<Option<String>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("pid", &self.pid)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Check `config` and start connecting (on the core runtime).
    pub fn new(config: ClientConfig) -> Result<Arc<Client>> {
        let mut options = syros_client::ClientOptions::new(config.addresses);
        options.connect_timeout = std::time::Duration::from_millis(config.connect_timeout_ms);
        options.call_timeout = std::time::Duration::from_millis(config.call_timeout_ms);
        if let Some(retry) = &config.retry {
            options.retry = retry.into();
        }
        if let Some(resubscribe) = &config.resubscribe {
            options.resubscribe = resubscribe.into();
        }
        options.owner = config.owner;
        options.keepalive_interval = config
            .keepalive_interval_ms
            .map(std::time::Duration::from_millis);
        // A half-given client certificate or TLS settings without a CA would otherwise be
        // dropped silently, and the client would connect without them.
        if config.tls_client_cert_file.is_some() != config.tls_client_key_file.is_some() {
            return Err(ErrorRecord::invalid(
                "tls_client_cert_file and tls_client_key_file go together",
            ));
        }
        if config.tls_ca_file.is_none()
            && (config.tls_server_name.is_some() || config.tls_client_cert_file.is_some())
        {
            return Err(ErrorRecord::invalid(
                "tls_server_name and a client certificate need tls_ca_file",
            ));
        }
        if let Some(ca_file) = &config.tls_ca_file {
            options.tls = Some(syros_client::TlsOptions {
                ca_file: ca_file.into(),
                server_name: config.tls_server_name.clone(),
                client_cert: config
                    .tls_client_cert_file
                    .clone()
                    .zip(config.tls_client_key_file.clone())
                    .map(|(cert, key)| (cert.into(), key.into())),
            });
        }
        let token = Arc::new(RwLock::new(config.auth_token));
        let source = token.clone();
        options.auth_token = Some(Arc::new(move || {
            source.read().unwrap_or_else(|p| p.into_inner()).clone()
        }));
        // Connecting starts now, in the background, before anybody awaits it.
        let connecting = rt::spawn(async move {
            syros_client::Client::connect(options)
                .await
                .map_err(ErrorRecord::from)
        })
        .started();
        Ok(Arc::new(Client {
            conn: connecting.boxed().shared(),
            pid: std::process::id(),
            token,
            closed: AtomicBool::new(false),
        }))
    }

    fn conn(&self) -> Result<Connection> {
        if std::process::id() != self.pid {
            return Err(ErrorRecord::invalid(
                "this client was created in another process (before a fork): create a new \
                 client in this process",
            ));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(ErrorRecord::cancelled("the client was closed"));
        }
        Ok(self.conn.clone())
    }

    /// Run `op` on the connected core client, on the core runtime.
    fn call<T, F, Fut>(&self, op: F) -> CoreTask<T>
    where
        F: FnOnce(syros_client::Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match self.conn() {
            Ok(conn) => rt::spawn(async move { op(conn.await?).await }),
            Err(err) => CoreTask::failed(err),
        }
    }

    /// The connected core client, without waiting (`unavailable` while still connecting).
    pub fn connected(&self) -> Result<syros_client::Client> {
        match self.conn()?.peek() {
            Some(Ok(client)) => Ok(client.clone()),
            Some(Err(err)) => Err(err.clone()),
            None => Err(ErrorRecord::new(
                ErrorKind::Unavailable,
                "the client is still connecting: wait for connect() first",
            )),
        }
    }

    /// Wait until connected; fails with the connection's error.
    pub fn connect(&self) -> CoreTask<()> {
        self.call(|_| async { Ok(()) })
    }

    /// Replace the bearer token sent with every later call (`None`: send none).
    pub fn set_auth_token(&self, token: Option<String>) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// Refuse every later call (idempotent). Objects already handed out (leases, workers,
    /// subscriptions) keep working until they are released, stopped or closed.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The default lock owner (once connected).
    pub fn owner(&self) -> Result<String> {
        Ok(self.connected()?.owner().to_string())
    }

    /// The address calls go to now (once connected).
    pub fn current_address(&self) -> Result<String> {
        Ok(self.connected()?.current_address().to_string())
    }

    /// Calls, attempts, retries and failovers so far (once connected).
    pub fn stats(&self) -> Result<ClientStats> {
        let stats = self.connected()?.stats();
        Ok(ClientStats {
            calls: stats.calls,
            attempts: stats.attempts,
            retries: stats.retries,
            failovers: stats.failovers,
        })
    }

    /// Ask the server whether it is serving.
    pub fn check_health(&self) -> CoreTask<()> {
        self.call(|client| async move { Ok(client.check_health().await?) })
    }

    // --- locks ----------------------------------------------------------------------------

    /// Acquire `key`, waiting up to `request.wait_ms`; `lock_timeout` when still held then
    /// (details name the holder).
    pub fn lock(&self, key: String, request: LockRequest) -> CoreTask<Arc<crate::Lease>> {
        self.call(move |client| async move {
            let lease = client
                .lock(key)
                .options(request.options())
                .acquire()
                .await?;
            Ok(Arc::new(crate::Lease::new(lease)))
        })
    }

    /// Try once: `None` when someone else holds `key`.
    pub fn try_lock(
        &self,
        key: String,
        request: LockRequest,
    ) -> CoreTask<Option<Arc<crate::Lease>>> {
        self.call(move |client| async move {
            let lease = client
                .lock(key)
                .options(request.options())
                .try_acquire()
                .await?;
            Ok(lease.map(|lease| Arc::new(crate::Lease::new(lease))))
        })
    }

    /// The current holder of `key`.
    pub fn lock_status(&self, key: String) -> CoreTask<Option<LeaseInfo>> {
        self.call(move |client| async move { Ok(client.lock_status(&key).await?) })
    }

    /// Held locks whose key starts with `prefix` (`limit` 0 = the server's default).
    pub fn list_locks(&self, prefix: String, limit: u32) -> CoreTask<Vec<LeaseInfo>> {
        self.call(move |client| async move { Ok(client.list_locks(&prefix, limit).await?) })
    }

    /// Administrative: drop whatever lease holds `key`; returns it.
    pub fn force_release(&self, key: String) -> CoreTask<Option<LeaseInfo>> {
        self.call(move |client| async move { Ok(client.force_release(&key).await?) })
    }

    // --- cache ----------------------------------------------------------------------------

    /// The entry under `key`.
    pub fn cache_get(&self, key: String) -> CoreTask<Option<CacheEntry>> {
        self.call(move |client| async move { Ok(client.cache().get(&key).await?) })
    }

    /// Store `value`; returns its expiry (ms since the epoch), if any.
    pub fn cache_set(&self, key: String, value: Vec<u8>, set: CacheSet) -> CoreTask<Option<i64>> {
        self.call(move |client| async move {
            Ok(client
                .cache()
                .set(&key, bytes::Bytes::from(value), set.options())
                .await?)
        })
    }

    /// Remove `key`; whether it existed.
    pub fn cache_delete(&self, key: String) -> CoreTask<bool> {
        self.call(move |client| async move { Ok(client.cache().delete(&key).await?) })
    }

    /// Remove every key tagged `tag`; how many.
    pub fn cache_invalidate_tag(&self, tag: String) -> CoreTask<u64> {
        self.call(move |client| async move { Ok(client.cache().invalidate_tag(&tag).await?) })
    }

    /// Get-or-compute, pulled: the value under `key` ([`crate::CacheLookup::Hit`]), or a
    /// [`crate::ComputeTicket`] the host completes with the computed value. Callers for the same
    /// key in this process share one lookup and one computation (single-flight): only one gets
    /// the ticket, the others get the value it is completed with.
    pub fn cache_begin(&self, key: String, set: CacheSet) -> CoreTask<crate::CacheLookup> {
        self.call(move |client| crate::cache::begin(client, key, set))
    }

    // --- events ---------------------------------------------------------------------------

    /// Append `events` atomically if `stream` is at `expected`.
    pub fn append(
        &self,
        stream: String,
        events: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> CoreTask<AppendResult> {
        self.call(move |client| async move {
            let events = events.into_iter().map(Into::into).collect();
            Ok(client.events().append(&stream, events, expected).await?)
        })
    }

    /// Read a page of one stream or of all streams.
    pub fn read(&self, request: ReadRequest) -> CoreTask<ReadResult> {
        self.call(move |client| async move {
            let from = request
                .start
                .map_or(syros_client::ReadFrom::End, syros_client::ReadFrom::At);
            let direction = if request.backwards {
                syros_client::Direction::Backwards
            } else {
                syros_client::Direction::Forwards
            };
            let events = client.events();
            Ok(match request.stream {
                Some(stream) => {
                    events
                        .read_stream(&stream, from, direction, request.limit)
                        .await?
                }
                None => events.read_all(from, direction, request.limit).await?,
            })
        })
    }

    /// Follow one stream (or all, `stream = None`): catch-up, then live; resumes after
    /// reconnecting with no gap and no duplicate.
    pub fn subscribe(
        &self,
        stream: Option<String>,
        start: SubscribeStart,
    ) -> CoreTask<Arc<crate::Subscription>> {
        self.call(move |client| async move {
            let events = client.events();
            let subscription = match stream {
                Some(stream) => events.subscribe(&stream, start.into()).await?,
                None => events.subscribe_all(start.into()).await?,
            };
            Ok(Arc::new(crate::Subscription::new(subscription)))
        })
    }

    // --- sagas ----------------------------------------------------------------------------

    /// Start a saga (or get the one started with the same idempotency key).
    pub fn start_saga(&self, saga: StartSaga) -> CoreTask<SagaInfo> {
        self.call(move |client| async move { Ok(client.sagas().start(saga.into()).await?) })
    }

    /// One saga.
    pub fn get_saga(&self, saga_id: String) -> CoreTask<SagaInfo> {
        self.call(move |client| async move { Ok(client.sagas().get(&saga_id).await?) })
    }

    /// Sagas, newest first, optionally of one state and/or name (`limit` 0 = the default).
    pub fn list_sagas(
        &self,
        state: Option<SagaState>,
        name: Option<String>,
        limit: u32,
    ) -> CoreTask<Vec<SagaInfo>> {
        self.call(move |client| async move {
            Ok(client.sagas().list(state, name.as_deref(), limit).await?)
        })
    }

    /// Cancel a saga: what completed is compensated.
    pub fn cancel_saga(&self, saga_id: String) -> CoreTask<SagaInfo> {
        self.call(move |client| async move { Ok(client.sagas().cancel(&saga_id).await?) })
    }

    /// Wait until the saga is final, at most `timeout_ms` (then `deadline_exceeded`).
    pub fn wait_saga(&self, saga_id: String, timeout_ms: u64) -> CoreTask<SagaInfo> {
        self.call(move |client| async move {
            let timeout = std::time::Duration::from_millis(timeout_ms);
            Ok(client.sagas().wait(&saga_id, timeout).await?)
        })
    }

    /// Start a step runner for `service`'s tasks, at most `max_concurrent` held at once.
    pub fn worker(&self, service: String, max_concurrent: u32) -> CoreTask<Arc<crate::Worker>> {
        self.call(move |client| async move {
            let max = usize::try_from(max_concurrent).unwrap_or(usize::MAX);
            Ok(Arc::new(crate::Worker::start(&client, service, max)))
        })
    }
}
