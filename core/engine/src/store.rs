//! Storage traits, one per service. A backend implements them atomically; the engine on top adds
//! validation, waiting, notification and subscriptions, so every backend behaves the same.

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::error::Result;
use crate::model::*;
use crate::sagas::model::*;

/// Outcome of one atomic acquire attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryAcquire {
    /// The caller now holds this lease.
    Acquired(Lease),
    /// Someone else holds the key (their lease, unexpired).
    Held(Lease),
}

/// What an acquire attempt asks the store for.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub key: String,
    pub owner: String,
    pub ttl_ms: u64,
    /// When set, an unexpired lease of the same key, owner and request id is returned again
    /// instead of granting a second one (a retried acquire).
    pub request_id: Option<String>,
}

#[async_trait]
pub trait LockStore: Send + Sync + 'static {
    /// Grant the key to the requester if it has no unexpired holder, with the next fencing token.
    async fn try_acquire(&self, request: &LeaseRequest, now_ms: i64) -> Result<TryAcquire>;
    /// Extend an unexpired lease; `LockNotHeld` otherwise.
    async fn renew(&self, lease_id: &str, ttl_ms: u64, now_ms: i64) -> Result<Lease>;
    /// Drop an unexpired lease and return it; `LockNotHeld` otherwise.
    async fn release(&self, lease_id: &str, now_ms: i64) -> Result<Lease>;
    /// The unexpired lease of `key`, if any.
    async fn status(&self, key: &str, now_ms: i64) -> Result<Option<Lease>>;
    /// Unexpired leases whose key starts with `prefix`, by key.
    async fn list(&self, prefix: &str, limit: usize, now_ms: i64) -> Result<Vec<Lease>>;
    /// Drop whatever unexpired lease holds `key`.
    async fn force_release(&self, key: &str, now_ms: i64) -> Result<Option<Lease>>;
    /// Delete rows of leases that expired before `now_ms` (housekeeping only).
    async fn purge_expired(&self, now_ms: i64) -> Result<u64>;
    /// For stores shared by several servers: leases released through *other* servers (and this
    /// one, marked [`ReleasedKey::own`]), so local waiters can be woken. `None` when only this
    /// process uses the store.
    fn releases(&self) -> Option<broadcast::Receiver<LockReleased>> {
        None
    }
    /// A lock-change subscriber appeared on this server: until the returned guard is dropped,
    /// a shared store announces releases made through other replicas to this one (it announces
    /// them only to replicas with subscribers). Returns once the store knows, so every release
    /// made after that reaches [`Self::releases`]. A store only this process uses needs nothing.
    async fn announce_releases(&self) -> Result<AnnouncementGuard> {
        Ok(Box::new(()))
    }
    /// Whether the store keeps each key's waiter queue itself (shared stores: one FIFO per key
    /// across replicas). Then the engine waits through [`Self::acquire_queued`] and the
    /// `*_queued` releases instead of queueing waiters in memory.
    fn keeps_queue(&self) -> bool {
        false
    }
    /// Grant the key to the requester if it is free and nobody queued first; otherwise, when
    /// `waiter` is given, queue it (once) behind the others. A free key with queued waiters goes
    /// to the first of them still waiting, in the same atomic step.
    async fn acquire_queued(
        &self,
        request: &LeaseRequest,
        waiter: Option<&QueuedWaiter>,
        now_ms: i64,
    ) -> Result<QueuedAcquire> {
        let _ = waiter;
        Ok(match self.try_acquire(request, now_ms).await? {
            TryAcquire::Acquired(lease) => QueuedAcquire::Acquired(lease),
            TryAcquire::Held(holder) => QueuedAcquire::Queued {
                holder: Some(holder),
                handed: None,
            },
        })
    }
    /// Take a waiter that gives up out of the store's queue of `key`.
    async fn leave_queue(&self, key: &str, waiter: u64) -> Result<()> {
        let _ = (key, waiter);
        Ok(())
    }
    /// [`Self::release`], and for a store that keeps the queue, the key handed to its first
    /// waiter in the same step (returned when that waiter is this server's).
    async fn release_queued(
        &self,
        lease_id: &str,
        now_ms: i64,
    ) -> Result<(Lease, Option<QueueGrant>)> {
        Ok((self.release(lease_id, now_ms).await?, None))
    }
    /// [`Self::force_release`] with the hand-off of [`Self::release_queued`].
    async fn force_release_queued(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<(Option<Lease>, Option<QueueGrant>)> {
        Ok((self.force_release(key, now_ms).await?, None))
    }
}

/// A caller of this server waiting in a store-kept queue ([`LockStore::acquire_queued`]).
#[derive(Debug, Clone)]
pub struct QueuedWaiter {
    /// Unique among this server's waiters.
    pub id: u64,
    /// The lease id it gets when the key is handed to it.
    pub lease_id: String,
    /// Wall-clock end of its wait: past it, a hand-off skips the entry.
    pub deadline_ms: i64,
    /// It called before (and may be queued, or granted the key already).
    pub asked_before: bool,
}

/// Outcome of [`LockStore::acquire_queued`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuedAcquire {
    /// The caller now holds this lease.
    Acquired(Lease),
    /// Someone else holds the key (`holder`, if known); a waiting caller is queued. `handed`:
    /// the free key was just given to another waiter of this server, which must get it.
    Queued {
        holder: Option<Lease>,
        handed: Option<QueueGrant>,
    },
    /// The queue handed the key to this waiter already (its [`QueuedWaiter::asked_before`]):
    /// the announcement may still be on its way, or lost (a lagging or reconnected listener).
    HandedAlready(Lease),
}

/// A lease a store-kept queue handed to one of this server's waiters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGrant {
    /// The waiter's [`QueuedWaiter::id`].
    pub waiter: u64,
    pub lease: Lease,
}

/// Keeps a shared store announcing releases to this server while it lives
/// ([`LockStore::announce_releases`]).
pub type AnnouncementGuard = Box<dyn std::any::Any + Send + Sync>;

/// A notice from a shared lock store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockReleased {
    /// The lease of a key ended (released or force-released).
    Key(ReleasedKey),
    /// Notices may have been missed (reconnect): re-check every waiting key.
    Resync,
    /// A store-kept queue handed a key to a waiter of this server (through another replica).
    Granted(QueueGrant),
}

/// A lease that ended, as a shared store announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedKey {
    /// The lock's key.
    pub key: String,
    /// The lease that ended, when the announcing server said (older servers send only the key).
    pub lease: Option<Lease>,
    /// Dropped by a force-release rather than by its holder.
    pub forced: bool,
    /// Announced through this very store instance: the engine has seen it already.
    pub own: bool,
}

/// The durable source of fencing epochs for stores (like Redis) that may lose their counter or
/// be replaced by another server (a promoted replica).
#[async_trait]
pub trait FenceEpochs: Send + Sync + 'static {
    /// A number larger than any returned before, persisted before it is returned.
    async fn next_epoch(&self) -> Result<u64>;
    /// The newest epoch handed out, and the lock store last recorded (with
    /// [`Self::record_verified`]) as counting in an epoch of its own.
    async fn fence_state(&self) -> Result<FenceState>;
    /// Record that the lock store identified by `fingerprint` had its counter raised into a new
    /// epoch. Called only after the raise succeeded.
    async fn record_verified(&self, fingerprint: i64) -> Result<()>;
}

/// What the durable store knows about fencing epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceState {
    /// The newest epoch handed out (0: none yet).
    pub epoch: u64,
    /// The fingerprint of the lock store last raised into a new epoch, if any.
    pub verified_store: Option<i64>,
}

/// What makes a cache set idempotent: a retry of an applied set (same request id) must not
/// store the value again, e.g. after an `invalidate_tag` removed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSetOnce {
    pub request_id: String,
    /// The store's clock for this request.
    pub now_ms: i64,
    /// Until when the request id is remembered.
    pub forget_at_ms: i64,
}

/// What a cache set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSetOutcome {
    Stored,
    /// The request id was applied before: nothing changed. The expiry the first set gave.
    Repeated {
        expires_at_ms: Option<i64>,
    },
}

#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// The entry if present and not expired at `now_ms`.
    async fn get(&self, key: &str, now_ms: i64) -> Result<Option<CacheEntry>>;
    /// Replace the value and tags of `key` atomically. With `once`, a request id already applied
    /// (and still remembered) changes nothing and reports [`CacheSetOutcome::Repeated`].
    async fn set(&self, entry: &CacheEntry, once: Option<&CacheSetOnce>)
        -> Result<CacheSetOutcome>;
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Remove every key carrying `tag` in one atomic step; returns how many keys went.
    async fn invalidate_tag(&self, tag: &str) -> Result<u64>;
    async fn purge_expired(&self, now_ms: i64) -> Result<u64>;
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Append all events or none, checking `expected` inside the same transaction.
    async fn append(
        &self,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<AppendResult>;
    async fn read_stream(&self, query: &StreamQuery) -> Result<StreamSlice>;
    async fn read_all(&self, query: &AllQuery) -> Result<AllSlice>;
    /// The newest committed global position, updated after every append (by any replica for a
    /// shared store). Subscriptions to all streams wait on it and then read from the store, so
    /// a missed or merged notification can never cause a gap.
    fn head(&self) -> watch::Receiver<u64>;
    /// The stream of every committed append (by any replica for a shared store), so a
    /// subscription to one stream re-reads the store only when that stream changed. A receiver
    /// that lags, or an [`Appended::Unknown`], means "re-read": never a gap, at worst a read.
    fn appended(&self) -> broadcast::Receiver<Appended>;
}

/// An append as announced to stream subscriptions ([`EventStore::appended`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Events were committed to this stream.
    Stream(std::sync::Arc<str>),
    /// Appends may have been missed or came without their stream (a reconnected listener, an
    /// older replica): every subscription re-reads.
    Unknown,
}

/// How many append notices a stream subscription may fall behind before it just re-reads.
pub const APPENDED_BUFFER: usize = 1024;

/// Saga documents and the task queue. Each method is one atomic step; the orchestration rules
/// live in [`crate::sagas`].
#[async_trait]
pub trait SagaStore: Send + Sync + 'static {
    /// Store a new saga with its first tasks and its `audit` events (appended to the saga's
    /// audit stream, [`audit_stream`], in the same transaction), unless its idempotency key is
    /// taken: then return the existing saga and store nothing.
    async fn insert_saga(
        &self,
        saga: &Saga,
        tasks: &[SagaTask],
        audit: &[NewEvent],
    ) -> Result<Saga>;
    async fn get_saga(&self, saga_id: &str) -> Result<Option<Saga>>;
    /// Up to `query.limit` sagas strictly after `query.after`, ordered by `created_at_ms`
    /// descending, then `saga_id` descending (a total order, so paging is exact).
    async fn list_sagas(&self, query: &SagaQuery) -> Result<Vec<Saga>>;
    /// Apply a transition atomically (see [`Transition`]).
    async fn apply(&self, transition: &Transition) -> Result<TransitionOutcome>;
    /// Claim ready tasks of `service` for `worker_id`, at most `max_held` minus the tasks it
    /// holds already, each with `deadline = now + its timeout` and its saga (a handler gets the
    /// saga's input and earlier outputs). One statement in the SQL stores: a worker's feed claims
    /// once per task it is woken for.
    async fn claim_with_sagas(
        &self,
        service: &str,
        worker_id: &str,
        max_held: usize,
        now_ms: i64,
    ) -> Result<Vec<(SagaTask, Saga)>>;
    async fn get_task(&self, task_id: &str) -> Result<Option<SagaTask>>;
    /// A task with its saga, in one read (what a report decides on).
    async fn get_task_with_saga(&self, task_id: &str) -> Result<Option<(SagaTask, Saga)>>;
    /// Claimed tasks whose deadline passed.
    async fn expired_tasks(&self, now_ms: i64, limit: usize) -> Result<Vec<SagaTask>>;
    /// The earliest time a ready task of `service` becomes visible, if any is queued.
    async fn next_visible(&self, service: &str) -> Result<Option<i64>>;
    /// The saga's queued task that no worker has claimed yet, if any.
    async fn unclaimed_task(&self, saga_id: &str) -> Result<Option<SagaTask>>;
}
