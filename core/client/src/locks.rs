//! Distributed locks: acquisition with de-duplicated retries, background renewal, loss detection,
//! release (explicit or on drop).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use syros_proto::syros::v1 as pb;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::client::{Client, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::session::{unexpected, Answer, Op};

/// A lease as the server granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl From<pb::Lease> for LeaseInfo {
    fn from(lease: pb::Lease) -> Self {
        LeaseInfo {
            lease_id: lease.lease_id.to_string(),
            key: lease.key.to_string(),
            owner: lease.owner.to_string(),
            fencing_token: lease.fencing_token,
            acquired_at_ms: lease.acquired_at_ms,
            expires_at_ms: lease.expires_at_ms,
        }
    }
}

/// How to acquire a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// Lease owner; `None` = the client's [`Client::owner`].
    pub owner: Option<String>,
    /// Lease time to live (the server accepts 100 ms ..= 1 day). Default 30 s.
    pub ttl: Duration,
    /// How long to wait for a held lock (0 = try once; at most 5 minutes). Default 30 s.
    pub wait: Duration,
    /// Renew the lease in the background at about a third of its TTL. Default true.
    pub auto_renew: bool,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            owner: None,
            ttl: Duration::from_secs(30),
            wait: Duration::from_secs(30),
            auto_renew: true,
        }
    }
}

/// Builds a lock acquisition: `client.lock(key).ttl(..).wait(..).acquire().await`.
#[derive(Debug, Clone)]
#[must_use = "a LockBuilder does nothing until acquire() is awaited"]
pub struct LockBuilder {
    client: Client,
    key: String,
    options: LockOptions,
}

impl LockBuilder {
    /// Lease owner (default: the client's owner).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.options.owner = Some(owner.into());
        self
    }

    /// Lease time to live.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.options.ttl = ttl;
        self
    }

    /// How long to wait while someone else holds the lock.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.options.wait = wait;
        self
    }

    /// Whether to renew the lease in the background.
    pub fn auto_renew(mut self, renew: bool) -> Self {
        self.options.auto_renew = renew;
        self
    }

    /// Replace all options at once.
    pub fn options(mut self, options: LockOptions) -> Self {
        self.options = options;
        self
    }

    /// Acquire the lock, waiting up to the configured time. A lock still held by someone else
    /// when the wait ends is an error of kind [`ErrorKind::LockTimeout`] (details:
    /// `holder_owner`, `holder_fencing_token`, `holder_expires_at_ms`).
    ///
    /// Retries (on unavailability) carry the same request id, so the server hands back the lease
    /// a lost answer had granted instead of granting a second one.
    pub async fn acquire(self) -> Result<Lease> {
        acquire(&self.client, &self.key, &self.options).await
    }

    /// Try once without waiting: `Ok(None)` when someone else holds the lock.
    pub async fn try_acquire(mut self) -> Result<Option<Lease>> {
        self.options.wait = Duration::ZERO;
        match acquire(&self.client, &self.key, &self.options).await {
            Ok(lease) => Ok(Some(lease)),
            Err(err) if err.kind == ErrorKind::LockTimeout => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// How a lease ended, as reported by [`LostSignal::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// The lease can no longer be guaranteed: the server said it is not held, or renewals failed
    /// until its expiry passed.
    Lost,
    /// The application released (or dropped) it.
    Released,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Held,
    Lost,
    Released,
}

struct Shared {
    inner: Arc<Inner>,
    info: Mutex<LeaseInfo>,
    ttl: Duration,
    /// The latest moment the client can vouch for the lease: never later than the server's
    /// expiry (see [`acquire`] for how it is dated).
    expiry: Mutex<Instant>,
    state: watch::Sender<State>,
    renewal: Mutex<Option<AbortHandle>>,
}

impl Shared {
    fn info(&self) -> MutexGuard<'_, LeaseInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expiry(&self) -> Instant {
        *self.expiry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a grant or renewal the server made after `granted_after`.
    fn extend(&self, info: LeaseInfo, granted_after: Instant) {
        *self.info() = info;
        *self.expiry.lock().unwrap_or_else(|p| p.into_inner()) = granted_after + self.ttl;
    }

    fn stop_renewal(&self) {
        let handle = self
            .renewal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            handle.abort();
        }
    }

    /// Move from Held to `to`; false if the lease had already ended.
    fn end(&self, to: State) -> bool {
        self.state.send_if_modified(|state| {
            if *state == State::Held {
                *state = to;
                true
            } else {
                false
            }
        })
    }
}

/// Observes whether a lease was lost; cheap to clone, usable after the [`Lease`] is gone.
#[derive(Debug, Clone)]
pub struct LostSignal {
    state: watch::Receiver<State>,
}

impl LostSignal {
    /// Whether the lease has been lost.
    pub fn is_lost(&self) -> bool {
        *self.state.borrow() == State::Lost
    }

    /// Wait until the lease ends, and say how.
    pub async fn wait(&self) -> LeaseEnd {
        let mut state = self.state.clone();
        let lost = matches!(
            state.wait_for(|s| *s != State::Held).await.map(|s| *s),
            Ok(State::Lost)
        );
        if lost {
            LeaseEnd::Lost
        } else {
            LeaseEnd::Released
        }
    }
}

/// A held lock. Renewed in the background (unless disabled), released by
/// [`release`](Lease::release) or, failing that, when dropped (asynchronously, on the client's
/// runtime).
pub struct Lease {
    shared: Arc<Shared>,
    released: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("info", &*self.shared.info())
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl Lease {
    /// The fencing token: strictly increasing for every lease of every key.
    pub fn fencing_token(&self) -> u64 {
        self.shared.info().fencing_token
    }

    /// The lease id.
    pub fn lease_id(&self) -> String {
        self.shared.info().lease_id.clone()
    }

    /// The locked key.
    pub fn key(&self) -> String {
        self.shared.info().key.clone()
    }

    /// The lease as last granted or renewed by the server.
    pub fn info(&self) -> LeaseInfo {
        self.shared.info().clone()
    }

    /// The lease's time to live (each renewal extends it by this much from then).
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// How long the lease is still certainly held, by the client's own clock: measured from the
    /// moment the request that the server granted (or renewed) it in was first sent, so it is
    /// never later than the server's expiry, whatever retries and lost answers happened in
    /// between. Zero once that moment has passed (the lease may still be alive on the server,
    /// e.g. when it was granted after a long wait, but the client can no longer vouch for it).
    pub fn remaining(&self) -> Duration {
        self.shared
            .expiry()
            .saturating_duration_since(Instant::now())
    }

    /// Whether the lease has been lost (see [`LeaseEnd::Lost`]).
    pub fn is_lost(&self) -> bool {
        *self.shared.state.borrow() == State::Lost
    }

    /// Resolves when the lease is lost; pending for as long as it is held. Typically raced
    /// against the protected work with `tokio::select!`.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut state = self.shared.state.subscribe();
        async move {
            if state.wait_for(|s| *s == State::Lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A detachable observer of this lease's fate.
    pub fn lost_signal(&self) -> LostSignal {
        LostSignal {
            state: self.shared.state.subscribe(),
        }
    }

    /// Extend the lease now (renewal normally happens by itself).
    pub async fn renew(&self) -> Result<LeaseInfo> {
        let lease_id = self.lease_id();
        let sent = Instant::now();
        match renew_call(&self.shared.inner, &lease_id, self.shared.ttl, None).await {
            Ok(info) => {
                self.shared.extend(info.clone(), sent);
                Ok(info)
            }
            Err(err) => {
                if err.kind == ErrorKind::LockNotHeld {
                    self.shared.stop_renewal();
                    self.shared.end(State::Lost);
                }
                Err(err)
            }
        }
    }

    /// Release the lease. An error of kind [`ErrorKind::LockNotHeld`] if it was lost meanwhile.
    /// A retried release whose earlier attempt already went through counts as success.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        self.shared.stop_renewal();
        if *self.shared.state.borrow() == State::Lost {
            let info = self.info();
            return Err(Error::new(
                ErrorKind::LockNotHeld,
                format!("the lease of {:?} was lost before release", info.key),
            )
            .with_detail("key", info.key)
            .with_detail("fencing_token", info.fencing_token));
        }
        let lease_id = self.lease_id();
        let result = release_call(&self.shared.inner, &lease_id).await;
        match &result {
            Err(err) if err.kind == ErrorKind::LockNotHeld => {
                self.shared.end(State::Lost);
            }
            _ => {
                self.shared.end(State::Released);
            }
        }
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.shared.stop_renewal();
        if !self.shared.end(State::Released) {
            return;
        }
        let inner = self.shared.inner.clone();
        let lease_id = self.shared.info().lease_id.clone();
        inner.handle.clone().spawn(async move {
            if let Err(err) = release_call(&inner, &lease_id).await {
                tracing::debug!(lease_id, error = %err, "release on drop failed");
            }
        });
    }
}

/// Context handed to a [`Client::with_lock`] closure.
#[derive(Debug, Clone)]
pub struct LockContext {
    /// The lease as granted.
    pub lease: LeaseInfo,
    /// Observes loss of the lease while the closure runs.
    pub lost: LostSignal,
}

impl Client {
    /// Start building an acquisition of `key`.
    pub fn lock(&self, key: impl Into<String>) -> LockBuilder {
        LockBuilder {
            client: self.clone(),
            key: key.into(),
            options: LockOptions::default(),
        }
    }

    /// Acquire `key`, run `f`, release. If the lease was lost while `f` ran, the result of `f` is
    /// discarded and an error of kind [`ErrorKind::LockNotHeld`] returned, since the work may
    /// have overlapped with another holder. A failed release after `f` is only logged (the lease
    /// then ends with its TTL).
    pub async fn with_lock<F, Fut, T>(&self, key: &str, options: LockOptions, f: F) -> Result<T>
    where
        F: FnOnce(LockContext) -> Fut,
        Fut: Future<Output = T>,
    {
        let lease = acquire(self, key, &options).await?;
        let context = LockContext {
            lease: lease.info(),
            lost: lease.lost_signal(),
        };
        let output = f(context).await;
        if lease.is_lost() {
            let info = lease.info();
            drop(lease);
            return Err(Error::new(
                ErrorKind::LockNotHeld,
                format!("the lease of {key:?} was lost while the closure ran"),
            )
            .with_detail("key", key)
            .with_detail("fencing_token", info.fencing_token));
        }
        match lease.release().await {
            Ok(()) => Ok(output),
            Err(err) if err.kind == ErrorKind::LockNotHeld => Err(Error::new(
                ErrorKind::LockNotHeld,
                format!("the lease of {key:?} expired while the closure ran"),
            )
            .with_detail("key", key)),
            Err(err) => {
                tracing::warn!(key, error = %err, "release after with_lock failed; the lease will expire");
                Ok(output)
            }
        }
    }

    /// The current holder of `key`, if any.
    pub async fn lock_status(&self, key: &str) -> Result<Option<LeaseInfo>> {
        let inner = &self.inner;
        let spec = inner.spec("locks.status", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::LockStatusRequest {
                        key: key.to_string().into(),
                    },
                    Some(timeout),
                );
                async move { Ok(ep.locks.status(request?).await?.into_inner()) }
            })
            .await
            .result
            .map(|resp| {
                if resp.held {
                    resp.lease.map(LeaseInfo::from)
                } else {
                    None
                }
            })
    }

    /// Held locks whose key starts with `prefix` (empty = all), at most `limit` (0 = 1000).
    pub async fn list_locks(&self, prefix: &str, limit: u32) -> Result<Vec<LeaseInfo>> {
        let inner = &self.inner;
        let spec = inner.spec("locks.list", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::ListLocksRequest {
                        prefix: prefix.to_string().into(),
                        limit,
                    },
                    Some(timeout),
                );
                async move { Ok(ep.locks.list(request?).await?.into_inner()) }
            })
            .await
            .result
            .map(|resp| resp.leases.into_iter().map(LeaseInfo::from).collect())
    }

    /// Administrative: drop whatever lease holds `key`. Returns the dropped lease.
    ///
    /// Not repeated after a failure that may have reached the server: a repeat would drop
    /// whatever lease holds the key by then, e.g. the one a queued client was granted after the
    /// first attempt went through. Such a failure is an error of kind
    /// [`ErrorKind::OutcomeUnknown`]; check [`lock_status`](Self::lock_status) before trying
    /// again.
    pub async fn force_release(&self, key: &str) -> Result<Option<LeaseInfo>> {
        let inner = &self.inner;
        let spec = inner.spec("locks.force_release", false);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::ForceReleaseLockRequest {
                        key: key.to_string().into(),
                    },
                    Some(timeout),
                );
                async move { Ok(ep.locks.force_release(request?).await?.into_inner()) }
            })
            .await
            .result
            .map(|resp| resp.lease.map(LeaseInfo::from))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

async fn acquire(client: &Client, key: &str, options: &LockOptions) -> Result<Lease> {
    let inner = &client.inner;
    let owner = options.owner.clone().unwrap_or_else(|| inner.owner.clone());
    let request_id = uuid::Uuid::new_v4().to_string();
    // The lease is dated from here, the start of the FIRST attempt, not from the attempt whose
    // answer arrived: retries carry the same request id, so a retry after a lost answer gets
    // the lease the first attempt was granted, with that grant's expiry. The server granted
    // after this moment, so `started + ttl` is never later than its expiry, whichever clock the
    // server has. The alternative, a remaining time reported by the server and dated from the
    // sending of the attempt that got it, would be tighter after a long wait but needs the
    // server to report it; this rule needs nothing from the server. Its cost: a lease granted
    // after a long wait is believed to end early, which only brings its first renewal forward.
    let started = Instant::now();
    let wait = options.wait;
    let mut abandoned = AbandonedGrant {
        inner: inner.clone(),
        key: key.to_string(),
        request_id: request_id.clone(),
        armed: true,
    };
    let mut spec = inner.spec("locks.acquire", true);
    spec.extra_timeout = wait;
    spec.deadline = inner.options.retry.deadline.map(|d| started + d + wait);
    let outcome = inner
        .run(&spec, |ep, timeout| {
            let remaining_wait = wait.saturating_sub(started.elapsed());
            let message = pb::AcquireLockRequest {
                key: key.to_string().into(),
                owner: owner.clone().into(),
                ttl_ms: millis(options.ttl),
                wait_timeout_ms: millis(remaining_wait),
                request_id: request_id.clone().into(),
            };
            let framed = inner.lock_frame(&ep, Op::Acquire(message.clone()), timeout);
            async move {
                match framed.await {
                    Some(Ok(Answer::Acquire(resp))) => Ok(resp),
                    Some(Ok(other)) => Err(unexpected(other)),
                    Some(Err(status)) => Err(status),
                    None => {
                        let request = inner.request(message, Some(timeout))?;
                        Ok(ep.locks.acquire(request).await?.into_inner())
                    }
                }
            }
        })
        .await;
    // Finished, not dropped mid-call: a grant reaches the caller below. Only an attempt that
    // failed ambiguously (its answer lost, no retry got through) may have left one behind.
    abandoned.armed = outcome.ambiguous && outcome.result.is_err();
    let resp = outcome.result?;
    match (resp.acquired, resp.lease) {
        (true, Some(lease)) => Ok(start_lease(inner, lease.into(), options, started)),
        (true, None) => Err(Error::new(
            ErrorKind::Internal,
            "the server granted the lock but sent no lease",
        )),
        (false, _) => {
            let mut err = Error::new(
                ErrorKind::LockTimeout,
                format!("{key:?} is still held after waiting {wait:?}"),
            )
            .with_detail("key", key)
            .with_detail("wait_ms", millis(wait));
            if let Some(holder) = resp.holder {
                err = err
                    .with_detail("holder_owner", holder.owner)
                    .with_detail("holder_fencing_token", holder.fencing_token)
                    .with_detail("holder_expires_at_ms", holder.expires_at_ms);
            }
            Err(err)
        }
    }
}

/// An acquire dropped by its caller (a cancelled task, an abandoned wait) after its request
/// may have reached the server: the server may have granted the lock with the answer still on
/// its way, and nobody would release it before its TTL. On drop it releases the lease that
/// request would have been granted, by the id the server derives from the request id
/// ([`syros_vocab::lease_id_for_request`]): a grant that happened ends now; when there was none,
/// the release finds nothing and nothing else changes (no lock is taken to find out).
struct AbandonedGrant {
    inner: Arc<Inner>,
    key: String,
    request_id: String,
    armed: bool,
}

impl Drop for AbandonedGrant {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let inner = self.inner.clone();
        let lease_id = syros_vocab::lease_id_for_request(&self.key, &self.request_id);
        let key = std::mem::take(&mut self.key);
        inner.handle.clone().spawn(async move {
            match release_call(&inner, &lease_id).await {
                Ok(()) => tracing::debug!(key, lease_id, "released the grant of an abandoned acquire"),
                Err(err) if err.kind == ErrorKind::LockNotHeld => {}
                Err(err) => {
                    tracing::debug!(key, lease_id, error = %err, "releasing an abandoned grant failed")
                }
            }
        });
    }
}

/// A held lease granted by a request first sent at `granted_after`.
fn start_lease(
    inner: &Arc<Inner>,
    info: LeaseInfo,
    options: &LockOptions,
    granted_after: Instant,
) -> Lease {
    let (state, _) = watch::channel(State::Held);
    let shared = Arc::new(Shared {
        inner: inner.clone(),
        info: Mutex::new(info),
        ttl: options.ttl,
        expiry: Mutex::new(granted_after + options.ttl),
        state,
        renewal: Mutex::new(None),
    });
    if options.auto_renew {
        // The lease lasts at least until `granted_after + ttl`; renewals are scheduled from it.
        let task = inner
            .handle
            .spawn(renew_loop(shared.clone(), granted_after));
        *shared.renewal.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
    }
    Lease {
        shared,
        released: false,
    }
}

/// Renew at a third of the TTL; on failure keep trying until the lease's local expiry passes,
/// then declare it lost. The server saying it is not held declares it lost at once. Like the
/// grant, each renewal is dated from the first attempt of its call (the server extended the
/// lease after that moment), never from a retry.
async fn renew_loop(shared: Arc<Shared>, granted_after: Instant) {
    let ttl = shared.ttl;
    let interval = ttl / 3;
    let mut next = granted_after + interval;
    let lease_id = shared.info().lease_id.clone();
    loop {
        tokio::time::sleep_until(next).await;
        let mut failures: u32 = 0;
        loop {
            let now = Instant::now();
            let expiry = shared.expiry();
            if failures > 0 && now >= expiry {
                tracing::warn!(lease_id, "lease lost: renewals failed until it expired");
                shared.end(State::Lost);
                return;
            }
            // At least one full attempt even if the local estimate says expired (a lease granted
            // after a long wait lives longer than that estimate).
            let deadline = if expiry > now {
                expiry
            } else {
                now + shared.inner.options.call_timeout.min(ttl)
            };
            let sent = Instant::now();
            match renew_call(&shared.inner, &lease_id, ttl, Some(deadline)).await {
                Ok(info) => {
                    shared.extend(info, sent);
                    next = sent + interval;
                    break;
                }
                Err(err) if matches!(err.kind, ErrorKind::LockNotHeld | ErrorKind::NotFound) => {
                    tracing::warn!(lease_id, error = %err, "lease lost: the server no longer holds it");
                    shared.end(State::Lost);
                    return;
                }
                Err(err) => {
                    failures += 1;
                    tracing::debug!(lease_id, error = %err, failures, "lease renewal failed");
                    let pause = shared
                        .inner
                        .options
                        .retry
                        .backoff(failures - 1)
                        .min(expiry.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

async fn renew_call(
    inner: &Inner,
    lease_id: &str,
    ttl: Duration,
    deadline: Option<Instant>,
) -> Result<LeaseInfo> {
    // The renewal loop retries until its deadline, however many attempts that takes.
    let patient = crate::RetryPolicy {
        max_attempts: u32::MAX,
        ..inner.options.retry.clone()
    };
    let mut spec = inner.spec("locks.renew", true);
    if deadline.is_some() {
        spec.deadline = deadline;
        spec.policy = &patient;
    }
    let resp = inner
        .run(&spec, |ep, timeout| {
            let message = pb::RenewLockRequest {
                lease_id: lease_id.to_string().into(),
                ttl_ms: millis(ttl),
            };
            let framed = inner.lock_frame(&ep, Op::Renew(message.clone()), timeout);
            async move {
                match framed.await {
                    Some(Ok(Answer::Renew(resp))) => Ok(resp),
                    Some(Ok(other)) => Err(unexpected(other)),
                    Some(Err(status)) => Err(status),
                    None => {
                        let request = inner.request(message, Some(timeout))?;
                        Ok(ep.locks.renew(request).await?.into_inner())
                    }
                }
            }
        })
        .await
        .result?;
    resp.lease
        .map(LeaseInfo::from)
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the server renewed but sent no lease"))
}

async fn release_call(inner: &Inner, lease_id: &str) -> Result<()> {
    let spec = inner.spec("locks.release", true);
    let outcome = inner
        .run(&spec, |ep, timeout| {
            let message = pb::ReleaseLockRequest {
                lease_id: lease_id.to_string().into(),
            };
            let framed = inner.lock_frame(&ep, Op::Release(message.clone()), timeout);
            async move {
                match framed.await {
                    Some(Ok(Answer::Release(resp))) => Ok(resp),
                    Some(Ok(other)) => Err(unexpected(other)),
                    Some(Err(status)) => Err(status),
                    None => {
                        let request = inner.request(message, Some(timeout))?;
                        Ok(ep.locks.release(request).await?.into_inner())
                    }
                }
            }
        })
        .await;
    match outcome.result {
        Ok(_) => Ok(()),
        // An earlier attempt may have released it and lost the answer.
        Err(err) if err.kind == ErrorKind::LockNotHeld && outcome.ambiguous => Ok(()),
        Err(err) => Err(err),
    }
}
