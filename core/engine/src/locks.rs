//! Locks: validation, fair FIFO waiting and hand-off on release.
//!
//! A waiter is never woken to race for the lock. When a lease ends (release, force-release, or
//! expiry noticed by the first waiter), the key is acquired *on behalf of* the longest-waiting
//! caller, which gets the lease through a channel. New callers do not barge past queued waiters.
//!
//! Where the queue lives depends on the store. A store of one process (SQLite) leaves it to this
//! server: [`LockWaiters::hand_off`] acquires for the head of an in-memory FIFO. A store shared
//! by replicas (Redis) keeps one queue per key itself ([`LockStore::keeps_queue`]): its acquire
//! queues the caller and its release grants the key to the queue's head in the same atomic step,
//! so waiters on every replica are served in arrival order; the head's replica is told (the
//! store's [`LockReleased::Granted`], or the release's own reply when it is this server) and
//! delivers the lease from [`LockWaiters`]'s table of waiting callers.
//!
//! Every change is also published on the lock-change feed ([`LockManager::changes`],
//! [`LockManager::watch`]) and counted in the engine's metrics ([`crate::telemetry`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot, watch};
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{check_name, check_optional_name, check_range_ms, now_ms, page_limit, Limits};
use crate::lock_feed::LockFeed;
pub use crate::lock_feed::{LockChange, LockChangeKind, LockWatch, LOCK_CHANGE_BUFFER};
use crate::model::Lease;
use crate::store::{
    LeaseRequest, LockReleased, LockStore, QueueGrant, QueuedAcquire, QueuedWaiter, TryAcquire,
};
use crate::telemetry::AcquireProbe;

/// Arguments of an acquire.
#[derive(Debug, Clone, Default)]
pub struct AcquireLock {
    pub key: String,
    pub owner: String,
    pub ttl_ms: u64,
    /// 0 = try once.
    pub wait_timeout_ms: u64,
    /// Optional id that makes a retried acquire idempotent.
    pub request_id: String,
}

/// Result of an acquire that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireOutcome {
    Acquired(Lease),
    /// The wait timed out; the holder at that moment, if any.
    TimedOut {
        holder: Option<Lease>,
    },
}

/// How long a waiter sleeps when it knows no holder expiry: a safety net only. Wake-ups come from
/// hand-off; this bounds the damage of a notification that can never arrive (e.g. a holder on
/// another replica whose release went unseen).
const WAITER_RECHECK: Duration = Duration::from_millis(500);

/// How often leases granted here are checked for having expired unreleased.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

struct Waiter {
    id: u64,
    request: LeaseRequest,
    tx: oneshot::Sender<Lease>,
}

#[derive(Default)]
struct KeyQueue {
    waiters: VecDeque<Waiter>,
    /// A hand-off for this key is running; others only ask it to go round once more.
    handing_off: bool,
    again: bool,
}

/// The per-key FIFO queues of callers waiting on this server (stores of one process), or the
/// callers of this server waiting in the store's own queues (shared stores).
pub(crate) struct LockWaiters {
    store: Arc<dyn LockStore>,
    feed: Arc<LockFeed>,
    queues: Mutex<HashMap<String, KeyQueue>>,
    next_id: AtomicU64,
    /// Callers queued in the store, by waiter id, for delivering the store's hand-offs.
    store_queued: Mutex<StoreQueued>,
    /// Tells callers queued in the store to ask it again now (hand-off notices may be lost).
    recheck: tokio::sync::Notify,
}

/// This server's callers waiting in a store-kept queue.
#[derive(Default)]
struct StoreQueued {
    slots: HashMap<u64, StoreSlot>,
    per_key: HashMap<String, usize>,
    /// Leases waiters took on asking the store again ([`QueuedAcquire::HandedAlready`]) before
    /// the hand-off's announcement arrived, and when: that announcement, if it still comes,
    /// must not release them. Forgotten after [`CLAIM_MEMORY`].
    claimed: HashMap<String, Instant>,
}

/// How long a claimed lease's late announcement is waited for (pub/sub delivers in
/// milliseconds, or never after a lost subscription).
const CLAIM_MEMORY: Duration = Duration::from_secs(60);

struct StoreSlot {
    key: String,
    tx: oneshot::Sender<Lease>,
}

/// A caller's place in a store-kept queue: on drop (acquire ended, timed out, or cancelled) its
/// slot goes, and unless it got the key, it takes itself out of the store's queue.
struct StoreQueuePlace {
    waiters: Arc<LockWaiters>,
    key: String,
    id: u64,
    in_store_queue: bool,
}

impl Drop for StoreQueuePlace {
    fn drop(&mut self) {
        self.waiters.unregister(self.id);
        if !self.in_store_queue {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, key, id) = (self.waiters.store.clone(), self.key.clone(), self.id);
        runtime.spawn(async move {
            if let Err(err) = store.leave_queue(&key, id).await {
                // Its deadline still takes it out of the queue.
                tracing::debug!(key, error = %err, "cannot leave the lock queue");
            }
        });
    }
}

/// Removes its waiter from the queue when the acquire ends (success, timeout, cancellation).
struct QueuePlace<'a> {
    waiters: &'a LockWaiters,
    key: &'a str,
    id: u64,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.waiters.remove(self.key, self.id);
    }
}

impl LockWaiters {
    pub(crate) fn new(store: Arc<dyn LockStore>, feed: Arc<LockFeed>) -> Self {
        LockWaiters {
            store,
            feed,
            queues: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            store_queued: Mutex::new(StoreQueued::default()),
            recheck: tokio::sync::Notify::new(),
        }
    }

    fn store_queued(&self) -> std::sync::MutexGuard<'_, StoreQueued> {
        // Single inserts and removals: a poisoned lock is still consistent.
        self.store_queued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a caller about to queue in the store for `key`, unless `max_per_key` callers
    /// of this server already wait for it.
    fn register(&self, key: &str, max_per_key: usize) -> Result<(u64, oneshot::Receiver<Lease>)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut queued = self.store_queued();
        let count = queued.per_key.entry(key.to_string()).or_default();
        if *count >= max_per_key {
            if *count == 0 {
                queued.per_key.remove(key);
            }
            return Err(too_many_waiters(max_per_key));
        }
        *count += 1;
        queued.slots.insert(
            id,
            StoreSlot {
                key: key.to_string(),
                tx,
            },
        );
        Ok((id, rx))
    }

    fn unregister(&self, id: u64) -> Option<oneshot::Sender<Lease>> {
        let mut queued = self.store_queued();
        let slot = queued.slots.remove(&id)?;
        if let Some(count) = queued.per_key.get_mut(&slot.key) {
            *count -= 1;
            if *count == 0 {
                queued.per_key.remove(&slot.key);
            }
        }
        Some(slot.tx)
    }

    /// Let waiter `id` take `lease`, which the store says was handed to it, in place of the
    /// announcement (false: the announcement got here first; the lease is in its channel).
    fn claim(&self, id: u64, lease: &Lease) -> bool {
        if self.unregister(id).is_none() {
            return false;
        }
        let now = Instant::now();
        let mut queued = self.store_queued();
        queued
            .claimed
            .retain(|_, at| now.duration_since(*at) < CLAIM_MEMORY);
        queued.claimed.insert(lease.lease_id.clone(), now);
        drop(queued);
        self.feed.acquired(lease);
        true
    }

    /// Give a lease the store's queue handed to waiter `grant.waiter` of this server. A waiter
    /// that is gone (gave up, or its call was cancelled) does not keep it: it is released, which
    /// hands the key to the next in line.
    fn deliver(self: &Arc<Self>, grant: QueueGrant) {
        if self
            .store_queued()
            .claimed
            .remove(&grant.lease.lease_id)
            .is_some()
        {
            return; // Its waiter took it already.
        }
        // Published before the waiter can act on it (and release it).
        self.feed.acquired(&grant.lease);
        let undelivered = match self.unregister(grant.waiter) {
            Some(tx) => tx.send(grant.lease).err(),
            None => Some(grant.lease),
        };
        let Some(lease) = undelivered else {
            return;
        };
        let waiters = self.clone();
        tokio::spawn(async move {
            match waiters.release(&lease.lease_id).await {
                Ok(_) => {}
                Err(err) if err.kind == ErrorKind::LockNotHeld => {}
                Err(err) => {
                    tracing::warn!(key = %lease.key, error = %err, "releasing a lease handed to a departed waiter failed");
                }
            }
        });
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyQueue>> {
        // A panic while holding this mutex cannot leave the map inconsistent (single pushes and
        // pops), so a poisoned lock is still usable.
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Release `lease_id` in the store, report it, and offer its key to the next waiter.
    async fn release(self: &Arc<Self>, lease_id: &str) -> Result<Lease> {
        let (lease, handed) = self.store.release_queued(lease_id, now_ms()).await?;
        self.feed.released(&lease, false);
        match handed {
            Some(grant) => self.deliver(grant),
            None => self.wake(&lease.key),
        }
        Ok(lease)
    }

    /// Offer `key` to its first waiter in the background, if anyone waits here.
    fn wake(self: &Arc<Self>, key: &str) {
        {
            let mut queues = self.queues();
            let Some(queue) = queues.get_mut(key) else {
                return;
            };
            // A running hand-off holds its popped waiter off the queue: the queue may look
            // empty, yet that waiter needs this wake-up. Ask the hand-off to go round again
            // (checked under this same lock before it finishes) instead of dropping the wake.
            if queue.handing_off {
                queue.again = true;
                return;
            }
            if queue.waiters.is_empty() {
                return;
            }
        }
        let waiters = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            if let Err(err) = waiters.hand_off(&key).await {
                tracing::warn!(key, error = %err, "lock hand-off failed; waiters will retry");
            }
        });
    }

    fn waiting_keys(&self) -> Vec<String> {
        self.queues().keys().cloned().collect()
    }

    /// Whether callers wait for `key` here, counting one a running hand-off has taken off the
    /// queue (so newcomers do not barge past it).
    pub(crate) fn has_waiters(&self, key: &str) -> bool {
        self.queues()
            .get(key)
            .is_some_and(|q| q.handing_off || !q.waiters.is_empty())
    }

    /// Queue a waiter for `request.key`, unless `max_per_key` callers already wait for it.
    fn enqueue(
        &self,
        request: LeaseRequest,
        tx: oneshot::Sender<Lease>,
        max_per_key: usize,
    ) -> Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut queues = self.queues();
        let queue = queues.entry(request.key.clone()).or_default();
        if queue.waiters.len() >= max_per_key {
            if queue.waiters.is_empty() && !queue.handing_off {
                queues.remove(&request.key);
            }
            return Err(too_many_waiters(max_per_key));
        }
        queue.waiters.push_back(Waiter { id, request, tx });
        Ok(id)
    }

    fn remove(&self, key: &str, id: u64) {
        let mut queues = self.queues();
        if let Some(queue) = queues.get_mut(key) {
            queue.waiters.retain(|w| w.id != id);
            if queue.waiters.is_empty() && !queue.handing_off {
                queues.remove(key);
            }
        }
    }

    /// [`Self::hand_off`] on its own task: a hand-off holds popped waiters and the per-key
    /// "handing off" mark, so it must run to the end even when the caller that started it is
    /// cancelled (a waiter's acquire dropped by its client), or those waiters would be lost.
    async fn hand_off_detached(self: &Arc<Self>, key: &str) -> Result<Option<i64>> {
        let waiters = self.clone();
        let key = key.to_string();
        run_detached("hand-off", async move { waiters.hand_off(&key).await }).await
    }

    /// Give `key` to the longest waiter if the store says it is free. Returns the expiry of the
    /// lease now holding the key, when known.
    pub(crate) async fn hand_off(&self, key: &str) -> Result<Option<i64>> {
        {
            let mut queues = self.queues();
            let Some(queue) = queues.get_mut(key) else {
                return Ok(None);
            };
            if queue.handing_off {
                queue.again = true;
                return Ok(None);
            }
            queue.handing_off = true;
        }
        loop {
            let result = self.hand_off_loop(key).await;
            let mut queues = self.queues();
            let Some(queue) = queues.get_mut(key) else {
                return result;
            };
            // A release noted while we finished must not be lost: check and clear the marks
            // under the same lock the noter takes.
            if queue.again && result.is_ok() {
                queue.again = false;
                continue;
            }
            queue.handing_off = false;
            queue.again = false;
            if queue.waiters.is_empty() {
                queues.remove(key);
            }
            return result;
        }
    }

    async fn hand_off_loop(&self, key: &str) -> Result<Option<i64>> {
        loop {
            let waiter = {
                let mut queues = self.queues();
                let Some(queue) = queues.get_mut(key) else {
                    return Ok(None);
                };
                queue.again = false;
                loop {
                    match queue.waiters.pop_front() {
                        Some(w) if w.tx.is_closed() => continue,
                        other => break other,
                    }
                }
            };
            let Some(waiter) = waiter else {
                return Ok(None);
            };
            let attempt = self.store.try_acquire(&waiter.request, now_ms()).await;
            match attempt {
                Ok(TryAcquire::Acquired(lease)) => {
                    let expires = lease.expires_at_ms;
                    // Published before the waiter can act on it (and release it).
                    self.feed.acquired(&lease);
                    match waiter.tx.send(lease) {
                        Ok(()) => {
                            if self.take_again(key) {
                                continue;
                            }
                            return Ok(Some(expires));
                        }
                        // The waiter gave up while we acquired for it: undo and serve the next.
                        Err(lease) => match self.store.release(&lease.lease_id, now_ms()).await {
                            Ok(released) => self.feed.released(&released, false),
                            Err(err) if err.kind == ErrorKind::LockNotHeld => {}
                            Err(err) => return Err(err),
                        },
                    }
                }
                Ok(TryAcquire::Held(holder)) => {
                    self.push_front(key, waiter);
                    if self.take_again(key) {
                        continue;
                    }
                    return Ok(Some(holder.expires_at_ms));
                }
                Err(err) => {
                    self.push_front(key, waiter);
                    return Err(err);
                }
            }
        }
    }

    fn push_front(&self, key: &str, waiter: Waiter) {
        self.queues()
            .entry(key.to_string())
            .or_default()
            .waiters
            .push_front(waiter);
    }

    fn take_again(&self, key: &str) -> bool {
        let mut queues = self.queues();
        match queues.get_mut(key) {
            Some(queue) if queue.again => {
                queue.again = false;
                true
            }
            _ => false,
        }
    }
}

fn too_many_waiters(max_per_key: usize) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("{max_per_key} callers already wait for this lock on this server; try later"),
    )
    .with_detail("max_waiters_per_key", max_per_key)
}

/// Lock operations of the engine.
pub struct LockManager {
    store: Arc<dyn LockStore>,
    waiters: Arc<LockWaiters>,
    feed: Arc<LockFeed>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
}

impl LockManager {
    pub(crate) fn new(
        store: Arc<dyn LockStore>,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let feed = Arc::new(LockFeed::new());
        let waiters = Arc::new(LockWaiters::new(store.clone(), feed.clone()));
        let releases = store.releases();
        let shared = releases.is_some();
        if let Some(releases) = releases {
            tokio::spawn(follow_releases(releases, Arc::downgrade(&waiters)));
        }
        tokio::spawn(sweep_expired(Arc::downgrade(&waiters), shared));
        LockManager {
            store,
            waiters,
            feed,
            limits,
            shutdown,
        }
    }

    /// Every lock change this server publishes, from now on: acquisitions, renewals, releases
    /// and force-releases made through it, releases and force-releases made through other
    /// replicas of a shared store (announced by the store; lease fields are `None` when the
    /// announcing server did not send them), and expiries of leases it granted. A receiver that
    /// falls more than [`LOCK_CHANGE_BUFFER`] changes behind gets `Lagged`.
    ///
    /// Changes of one key arrive in the order they happened, except that a release racing with
    /// an immediate re-acquire through another connection may be reported just after that
    /// acquisition (fencing tokens tell the leases apart).
    ///
    /// A shared store announces releases made through other replicas only to replicas with a
    /// [`Self::watch`] open: this receiver alone does not ask for them.
    pub fn changes(&self) -> broadcast::Receiver<LockChange> {
        self.feed.subscribe()
    }

    /// [`Self::changes`] of the keys starting with `prefix` (empty: every key), ending with an
    /// error if the watcher falls behind or the server shuts down. Returns once a shared store
    /// announces other replicas' releases to this server (until the watch is dropped).
    pub async fn watch(&self, prefix: &str) -> Result<LockWatch> {
        if !prefix.is_empty() {
            self.check_key(prefix)?;
        }
        let changes = self.feed.subscribe();
        let announcements = self.store.announce_releases().await?;
        Ok(LockWatch {
            changes,
            prefix: prefix.to_string(),
            shutdown: self.shutdown.clone(),
            ended: false,
            _announcements: announcements,
        })
    }

    fn check_ttl(&self, ttl_ms: u64) -> Result<()> {
        check_range_ms(
            "ttl",
            ttl_ms,
            self.limits.min_lock_ttl_ms,
            self.limits.max_lock_ttl_ms,
        )
    }

    fn check_key(&self, key: &str) -> Result<()> {
        check_name("key", key, self.limits.max_key_bytes)
    }

    fn check_lease_id(&self, lease_id: &str) -> Result<()> {
        check_name("lease_id", lease_id, self.limits.max_request_id_bytes)
    }

    /// Acquire a lock, waiting in FIFO order up to `wait_timeout_ms`.
    #[tracing::instrument(level = "debug", name = "engine.locks.acquire", skip_all, fields(key = %args.key))]
    pub async fn acquire(&self, args: AcquireLock) -> Result<AcquireOutcome> {
        let mut probe = AcquireProbe::start();
        let outcome = self.acquire_probed(args, &mut probe).await;
        probe.finish(match &outcome {
            Ok(AcquireOutcome::Acquired(_)) => "acquired",
            Ok(AcquireOutcome::TimedOut { .. }) => "not_acquired",
            Err(_) => "error",
        });
        outcome
    }

    async fn acquire_probed(
        &self,
        args: AcquireLock,
        probe: &mut AcquireProbe,
    ) -> Result<AcquireOutcome> {
        self.check_key(&args.key)?;
        check_name("owner", &args.owner, self.limits.max_owner_bytes)?;
        self.check_ttl(args.ttl_ms)?;
        check_range_ms(
            "wait_timeout",
            args.wait_timeout_ms,
            0,
            self.limits.max_lock_wait_ms,
        )?;
        check_optional_name(
            "request_id",
            &args.request_id,
            self.limits.max_request_id_bytes,
        )?;
        let deadline = Instant::now() + Duration::from_millis(args.wait_timeout_ms);
        let request = LeaseRequest {
            key: args.key,
            owner: args.owner,
            ttl_ms: args.ttl_ms,
            request_id: (!args.request_id.is_empty()).then_some(args.request_id),
        };
        if self.store.keeps_queue() {
            return self
                .acquire_in_store_queue(request, args.wait_timeout_ms, probe)
                .await;
        }

        // Fast path: nobody queued here, so trying directly is fair.
        let mut holder_expiry = None;
        if args.wait_timeout_ms == 0 && self.waiters.has_waiters(&request.key) {
            // A try-lock does not jump the queue: the key is promised to its first waiter.
            let holder = self.store.status(&request.key, now_ms()).await?;
            return Ok(AcquireOutcome::TimedOut { holder });
        }
        if !self.waiters.has_waiters(&request.key) {
            match self.store.try_acquire(&request, now_ms()).await? {
                TryAcquire::Acquired(lease) => {
                    self.feed.acquired(&lease);
                    return Ok(AcquireOutcome::Acquired(lease));
                }
                TryAcquire::Held(holder) if args.wait_timeout_ms == 0 => {
                    return Ok(AcquireOutcome::TimedOut {
                        holder: Some(holder),
                    })
                }
                TryAcquire::Held(holder) => holder_expiry = Some(holder.expires_at_ms),
            }
        }

        let key = request.key.clone();
        let (tx, rx) = oneshot::channel();
        let mut rx = HandOffSlot {
            rx,
            waiters: self.waiters.clone(),
        };
        let id = self
            .waiters
            .enqueue(request, tx, self.limits.max_waiters_per_key)?;
        probe.waiting();
        let place = QueuePlace {
            waiters: &self.waiters,
            key: &key,
            id,
        };
        // The holder may have released between our attempt and joining the queue, with nobody
        // left to hand off to us: try once now that we are queued.
        if let Some(expiry) = self.waiters.hand_off_detached(&key).await? {
            holder_expiry = Some(expiry);
        }
        loop {
            let recheck = match holder_expiry.take() {
                Some(expiry) => instant_at(expiry + 1),
                None => Instant::now() + WAITER_RECHECK,
            };
            tokio::select! {
                delivered = &mut rx.rx => match delivered {
                    Ok(lease) => return Ok(AcquireOutcome::Acquired(lease)),
                    Err(_) => return Err(Error::internal("lock waiter dropped without an answer")),
                },
                _ = tokio::time::sleep_until(recheck.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                drop(place);
                // Close first: a hand-off still running for us then fails to deliver and
                // releases the lease itself; one that already delivered is taken here.
                rx.rx.close();
                if let Ok(lease) = rx.rx.try_recv() {
                    return Ok(AcquireOutcome::Acquired(lease));
                }
                let holder = self.store.status(&key, now_ms()).await?;
                return Ok(AcquireOutcome::TimedOut { holder });
            }
            // The holder's lease should have expired (or we were told nothing): offer the key
            // to the head of the queue, which may be us.
            holder_expiry = self.waiters.hand_off_detached(&key).await?;
        }
    }

    /// Acquire through the store's own queue of the key (shared stores): one store operation
    /// grants or queues; the lease then arrives from whichever replica's release (or expiry
    /// check) hands the key over.
    async fn acquire_in_store_queue(
        &self,
        request: LeaseRequest,
        wait_timeout_ms: u64,
        probe: &mut AcquireProbe,
    ) -> Result<AcquireOutcome> {
        if wait_timeout_ms == 0 {
            // A try-lock never queues, and a free key with queued waiters goes to their head.
            return match self.store.acquire_queued(&request, None, now_ms()).await? {
                QueuedAcquire::Acquired(lease) => {
                    self.feed.acquired(&lease);
                    Ok(AcquireOutcome::Acquired(lease))
                }
                QueuedAcquire::Queued { holder, handed } => {
                    if let Some(grant) = handed {
                        self.waiters.deliver(grant);
                    }
                    Ok(AcquireOutcome::TimedOut { holder })
                }
                QueuedAcquire::HandedAlready(_) => Err(Error::internal(
                    "a try-lock was answered as a queued waiter",
                )),
            };
        }
        let deadline = Instant::now() + Duration::from_millis(wait_timeout_ms);
        // Registered before the store may queue it: a hand-off can then arrive at any time.
        let (id, rx) = self
            .waiters
            .register(&request.key, self.limits.max_waiters_per_key)?;
        let mut rx = HandOffSlot {
            rx,
            waiters: self.waiters.clone(),
        };
        let mut place = StoreQueuePlace {
            waiters: self.waiters.clone(),
            key: request.key.clone(),
            id,
            in_store_queue: true,
        };
        let mut waiter = QueuedWaiter {
            id,
            lease_id: crate::backend::new_lease_id(&request),
            deadline_ms: now_ms() + i64::try_from(wait_timeout_ms).unwrap_or(i64::MAX),
            asked_before: false,
        };
        loop {
            let answer = match self
                .store
                .acquire_queued(&request, Some(&waiter), now_ms())
                .await
            {
                // Queued already: a store that cannot answer a re-check now (a connection just
                // replaced) leaves the waiter queued; it asks again shortly.
                Err(err) if waiter.asked_before && err.kind == ErrorKind::Unavailable => {
                    tracing::debug!(key = %request.key, error = %err, "lock waiter re-check failed; retrying");
                    QueuedAcquire::Queued {
                        holder: None,
                        handed: None,
                    }
                }
                other => other?,
            };
            let holder_expiry = match answer {
                QueuedAcquire::Acquired(lease) => {
                    place.in_store_queue = false;
                    self.feed.acquired(&lease);
                    return Ok(AcquireOutcome::Acquired(lease));
                }
                QueuedAcquire::Queued { holder, handed } => {
                    if let Some(grant) = handed {
                        self.waiters.deliver(grant);
                    }
                    holder.map(|h| h.expires_at_ms)
                }
                // Its announcement is late or lost (this waiter asked again because the
                // listener lagged or reconnected, or the old holder's expiry came): take it.
                QueuedAcquire::HandedAlready(lease) => {
                    place.in_store_queue = false;
                    if self.waiters.claim(id, &lease) {
                        return Ok(AcquireOutcome::Acquired(lease));
                    }
                    // Delivered meanwhile: the channel has it.
                    None
                }
            };
            if !waiter.asked_before {
                probe.waiting();
                waiter.asked_before = true;
            }
            // Woken by the hand-off; the timers only notice a holder that lapsed unreleased
            // (then asking the store again hands the key to the queue's head) or a lost notice.
            let recheck = match holder_expiry {
                Some(expiry) => instant_at(expiry + 1),
                None => Instant::now() + WAITER_RECHECK,
            };
            tokio::select! {
                delivered = &mut rx.rx => match delivered {
                    Ok(lease) => {
                        place.in_store_queue = false;
                        return Ok(AcquireOutcome::Acquired(lease));
                    }
                    Err(_) => return Err(Error::internal("lock waiter dropped without an answer")),
                },
                _ = tokio::time::sleep_until(recheck.min(deadline)) => {}
                _ = self.waiters.recheck.notified() => {}
            }
            if Instant::now() >= deadline {
                // Out of the slot table first: a hand-off arriving from now on is released.
                self.waiters.unregister(id);
                self.store.leave_queue(&request.key, id).await?;
                place.in_store_queue = false;
                rx.rx.close();
                if let Ok(lease) = rx.rx.try_recv() {
                    return Ok(AcquireOutcome::Acquired(lease));
                }
                let holder = self.store.status(&request.key, now_ms()).await?;
                return Ok(AcquireOutcome::TimedOut { holder });
            }
        }
    }

    /// Extend a held lease to `ttl_ms` from now.
    #[tracing::instrument(level = "debug", name = "engine.locks.renew", skip_all, fields(lease_id = %lease_id))]
    pub async fn renew(&self, lease_id: &str, ttl_ms: u64) -> Result<Lease> {
        self.check_lease_id(lease_id)?;
        self.check_ttl(ttl_ms)?;
        let lease = self.store.renew(lease_id, ttl_ms, now_ms()).await?;
        self.feed.renewed(&lease);
        Ok(lease)
    }

    /// Release a held lease; the next waiter gets the key at once.
    ///
    /// Runs to the end even if the caller is cancelled: once the store may have released the
    /// key, the release must be reported and the next waiter woken (this server ignores the
    /// store's echo of its own releases), or that waiter would sleep until the old lease expires.
    #[tracing::instrument(level = "debug", name = "engine.locks.release", skip_all, fields(lease_id = %lease_id))]
    pub async fn release(&self, lease_id: &str) -> Result<Lease> {
        self.check_lease_id(lease_id)?;
        let waiters = self.waiters.clone();
        let lease_id = lease_id.to_string();
        run_detached("release", async move { waiters.release(&lease_id).await }).await
    }

    /// The current holder of `key`.
    #[tracing::instrument(level = "debug", name = "engine.locks.status", skip_all, fields(key = %key))]
    pub async fn status(&self, key: &str) -> Result<Option<Lease>> {
        self.check_key(key)?;
        self.store.status(key, now_ms()).await
    }

    /// Held locks whose key starts with `prefix`.
    #[tracing::instrument(level = "debug", name = "engine.locks.list", skip_all, fields(prefix = %prefix))]
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<Lease>> {
        if !prefix.is_empty() {
            self.check_key(prefix)?;
        }
        let limit = page_limit(limit, 1000, self.limits.max_read_limit)?;
        self.store.list(prefix, limit, now_ms()).await
    }

    /// Drop the lease holding `key`, whoever owns it.
    ///
    /// Like [`Self::release`], runs to the end (report and wake-up) even if the caller is
    /// cancelled.
    #[tracing::instrument(level = "debug", name = "engine.locks.force_release", skip_all, fields(key = %key))]
    pub async fn force_release(&self, key: &str) -> Result<Option<Lease>> {
        self.check_key(key)?;
        let store = self.store.clone();
        let waiters = self.waiters.clone();
        let key = key.to_string();
        run_detached("force-release", async move {
            let (dropped, handed) = store.force_release_queued(&key, now_ms()).await?;
            if let Some(lease) = &dropped {
                waiters.feed.released(lease, true);
            }
            match handed {
                Some(grant) => waiters.deliver(grant),
                None if dropped.is_some() => waiters.wake(&key),
                None => {}
            }
            Ok(dropped)
        })
        .await
    }

    /// A lease of `key` ended (here or, for shared stores, on another replica).
    pub fn wake_next(&self, key: &str) {
        self.waiters.wake(key);
    }

    pub(crate) async fn purge_expired(&self) -> Result<u64> {
        self.store.purge_expired(now_ms()).await
    }
}

/// Run `work` on its own task and wait for it: cancelling the caller no longer stops it halfway
/// (e.g. after the store changed but before waiters were woken).
/// A queued acquire's end of the hand-off channel. An acquire dropped mid-wait (its client
/// cancelled the call) may be dropped after a hand-off delivered it the lease and before it
/// took it: the lease would then stay held, by nobody, until its TTL. On drop, a delivered
/// lease nobody took is released and the key offered to the next waiter.
struct HandOffSlot {
    rx: oneshot::Receiver<Lease>,
    waiters: Arc<LockWaiters>,
}

impl Drop for HandOffSlot {
    fn drop(&mut self) {
        // Closed first, so a hand-off still under way fails to deliver and undoes its grant.
        self.rx.close();
        let Ok(lease) = self.rx.try_recv() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let waiters = self.waiters.clone();
        runtime.spawn(async move {
            match waiters.release(&lease.lease_id).await {
                Ok(_) => {}
                Err(err) if err.kind == ErrorKind::LockNotHeld => {}
                Err(err) => {
                    tracing::warn!(key = %lease.key, error = %err, "releasing a lease handed to a cancelled waiter failed");
                }
            }
        });
    }
}

async fn run_detached<T: Send + 'static>(
    what: &str,
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    // In the caller's span, so the store work shows beneath the call in traces.
    match tokio::spawn(tracing::Instrument::in_current_span(work)).await {
        Ok(result) => result,
        Err(err) => Err(Error::internal(format!("lock {what} task failed: {err}"))),
    }
}

/// Wake local waiters when a shared store reports a release (possibly by another server), and
/// report releases made elsewhere on the feed. Ends when the store closes the channel or the
/// engine is gone.
async fn follow_releases(
    mut releases: tokio::sync::broadcast::Receiver<LockReleased>,
    waiters: std::sync::Weak<LockWaiters>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let notice = releases.recv().await;
        let Some(waiters) = waiters.upgrade() else {
            return;
        };
        match notice {
            // Our own releases already woke the next waiter, after reporting the release on
            // the feed; waking again from the echo could hand the key over (and report the new
            // acquisition) before the release itself is reported.
            Ok(LockReleased::Key(notice)) if notice.own => {}
            Ok(LockReleased::Key(notice)) => {
                waiters.feed.announced(&notice);
                waiters.wake(&notice.key);
            }
            Ok(LockReleased::Granted(grant)) => waiters.deliver(grant),
            Ok(LockReleased::Resync) | Err(RecvError::Lagged(_)) => {
                for key in waiters.waiting_keys() {
                    waiters.wake(&key);
                }
                // Hand-offs to callers queued in the store may have been missed too.
                waiters.recheck.notify_waiters();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Report leases granted here that reached their expiry unreleased (and drop them from the
/// `syros_locks_held` gauge). For a shared store the holder is checked first, since the lease
/// may have been renewed through another replica. Ends when the engine is gone.
async fn sweep_expired(waiters: Weak<LockWaiters>, shared: bool) {
    loop {
        tokio::time::sleep(EXPIRY_SWEEP).await;
        let Some(waiters) = waiters.upgrade() else {
            return;
        };
        for lease in waiters.feed.due(now_ms()) {
            let current = if shared {
                match waiters.store.status(&lease.key, now_ms()).await {
                    Ok(current) => current,
                    Err(err) => {
                        tracing::debug!(key = %lease.key, error = %err, "cannot check an expired lease; later");
                        continue;
                    }
                }
            } else {
                None
            };
            waiters.feed.settle(&lease, current.as_ref());
        }
    }
}

/// The tokio instant at which the wall clock reads `at_ms`.
fn instant_at(at_ms: i64) -> Instant {
    let delta = at_ms.saturating_sub(now_ms());
    Instant::now() + Duration::from_millis(u64::try_from(delta).unwrap_or(0))
}
