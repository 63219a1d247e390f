//! The lock-change feed: what happened to which lock, as this server sees it, for WebSocket and
//! GraphQL subscribers — and the record of leases granted here behind the `syros_locks_held`
//! gauge and the `expired` notices.
//!
//! Changes are published after the store confirmed them, with no store round trip of their own:
//! acquisitions (fast path and hand-off), renewals, releases and force-releases made through this
//! server, releases and force-releases made through other replicas (announced by a shared store),
//! and expiries of leases granted here that nobody released. Publishing with nobody subscribed
//! costs one uncontended mutex.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{broadcast, watch};

use crate::error::{Error, Result};
use crate::limits::now_ms;
use crate::model::Lease;
use crate::store::{AnnouncementGuard, ReleasedKey};
use crate::telemetry;

/// Changes buffered per subscriber; one that falls further behind misses changes and is told so.
pub const LOCK_CHANGE_BUFFER: usize = 4096;

/// What happened to a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockChangeKind {
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

impl LockChangeKind {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LockChangeKind::Acquired => "acquired",
            LockChangeKind::Renewed => "renewed",
            LockChangeKind::Released => "released",
            LockChangeKind::ForceReleased => "force_released",
            LockChangeKind::Expired => "expired",
        }
    }
}

/// One change of one lock. Fields of the lease are `None` when the change was announced by a
/// server that did not say which lease ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockChange {
    /// What happened.
    pub kind: LockChangeKind,
    /// The lock's key.
    pub key: String,
    /// The lease's holder.
    pub owner: Option<String>,
    /// The lease's fencing token.
    pub fencing_token: Option<u64>,
    /// The lease's id.
    pub lease_id: Option<String>,
    /// When the lease ends (`acquired`, `renewed`) or ended (`expired`); `None` for releases.
    pub expires_at_ms: Option<i64>,
    /// When this server published the change (milliseconds since the Unix epoch).
    pub at_ms: i64,
}

impl LockChange {
    fn of(kind: LockChangeKind, lease: &Lease, at_ms: i64) -> Self {
        LockChange {
            kind,
            key: lease.key.clone(),
            owner: Some(lease.owner.clone()),
            fencing_token: Some(lease.fencing_token),
            lease_id: Some(lease.lease_id.clone()),
            expires_at_ms: matches!(
                kind,
                LockChangeKind::Acquired | LockChangeKind::Renewed | LockChangeKind::Expired
            )
            .then_some(lease.expires_at_ms),
            at_ms,
        }
    }
}

/// Leases granted by this server that it believes held, by key, with an expiry index.
#[derive(Default)]
struct Held {
    by_key: HashMap<String, Lease>,
    by_expiry: BTreeSet<(i64, String)>,
}

impl Held {
    fn insert(&mut self, lease: Lease) {
        let entry = (lease.expires_at_ms, lease.key.clone());
        match self.by_key.insert(lease.key.clone(), lease) {
            Some(old) => {
                self.by_expiry.remove(&(old.expires_at_ms, old.key));
            }
            None => telemetry::locks_held(1.0),
        }
        self.by_expiry.insert(entry);
    }

    fn remove(&mut self, key: &str) -> Option<Lease> {
        let old = self.by_key.remove(key)?;
        self.by_expiry.remove(&(old.expires_at_ms, old.key.clone()));
        telemetry::locks_held(-1.0);
        Some(old)
    }

    /// The held lease of `key` if it is `lease_id` (any lease when `lease_id` is `None`).
    fn get(&self, key: &str, lease_id: Option<&str>) -> Option<&Lease> {
        self.by_key
            .get(key)
            .filter(|held| lease_id.is_none_or(|id| held.lease_id == id))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.by_key.is_empty() {
            telemetry::locks_held(-(self.by_key.len() as f64));
        }
    }
}

/// The feed and the record of leases granted here; shared by the lock manager and its waiters.
pub(crate) struct LockFeed {
    changes: broadcast::Sender<LockChange>,
    held: Mutex<Held>,
}

impl LockFeed {
    pub(crate) fn new() -> Self {
        LockFeed {
            changes: broadcast::channel(LOCK_CHANGE_BUFFER).0,
            held: Mutex::new(Held::default()),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LockChange> {
        self.changes.subscribe()
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // Every update is a few map operations that cannot be left half done by a panic.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publish a change, building it only if someone listens. Called with `held` locked, so the
    /// feed's order is the order of the record's updates.
    fn publish(&self, change: impl FnOnce() -> LockChange) {
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(change());
        }
    }

    /// This server granted `lease`.
    pub(crate) fn acquired(&self, lease: &Lease) {
        let now = now_ms();
        let mut held = self.held();
        if let Some(old) = held.by_key.get(&lease.key) {
            if old.lease_id == lease.lease_id {
                return; // a retried acquire (same request id) got the same lease again
            }
            if let Some(old) = held.remove(&lease.key) {
                // A lease still unexpired by the clock was released meanwhile; that release is
                // reported by whoever made it, possibly just after this acquisition.
                if old.expires_at_ms <= now {
                    self.publish(|| LockChange::of(LockChangeKind::Expired, &old, now));
                }
            }
        }
        held.insert(lease.clone());
        self.publish(|| LockChange::of(LockChangeKind::Acquired, lease, now));
    }

    /// `lease` was renewed through this server.
    pub(crate) fn renewed(&self, lease: &Lease) {
        let now = now_ms();
        let mut held = self.held();
        if held.get(&lease.key, Some(&lease.lease_id)).is_some() {
            held.insert(lease.clone());
        }
        self.publish(|| LockChange::of(LockChangeKind::Renewed, lease, now));
    }

    /// `lease` was released (or force-released) through this server.
    pub(crate) fn released(&self, lease: &Lease, forced: bool) {
        let now = now_ms();
        let mut held = self.held();
        if held.get(&lease.key, Some(&lease.lease_id)).is_some() {
            held.remove(&lease.key);
        }
        let kind = if forced {
            LockChangeKind::ForceReleased
        } else {
            LockChangeKind::Released
        };
        self.publish(|| LockChange::of(kind, lease, now));
    }

    /// A shared store announced a release; ones this server made were reported already.
    pub(crate) fn announced(&self, notice: &ReleasedKey) {
        if notice.own {
            return;
        }
        let now = now_ms();
        let mut held = self.held();
        let lease_id = notice.lease.as_ref().map(|l| l.lease_id.as_str());
        let known = held.get(&notice.key, lease_id).is_some();
        let held_lease = if known {
            held.remove(&notice.key)
        } else {
            None
        };
        let kind = if notice.forced {
            LockChangeKind::ForceReleased
        } else {
            LockChangeKind::Released
        };
        self.publish(|| match notice.lease.as_ref().or(held_lease.as_ref()) {
            Some(lease) => LockChange::of(kind, lease, now),
            None => LockChange {
                kind,
                key: notice.key.clone(),
                owner: None,
                fencing_token: None,
                lease_id: None,
                expires_at_ms: None,
                at_ms: now,
            },
        });
    }

    /// Leases granted here whose expiry has passed at `now`, by expiry.
    pub(crate) fn due(&self, now: i64) -> Vec<Lease> {
        let held = self.held();
        held.by_expiry
            .iter()
            .take_while(|(expires, _)| *expires <= now)
            .filter_map(|(_, key)| held.by_key.get(key).cloned())
            .collect()
    }

    /// Settle a lease returned by [`Self::due`]: `current` is the store's holder of its key
    /// (`None` when not asked, for a store only this server uses). A lease the store still holds
    /// was renewed elsewhere; otherwise it expired. Nothing happens if the record changed since.
    pub(crate) fn settle(&self, lease: &Lease, current: Option<&Lease>) {
        let now = now_ms();
        let mut held = self.held();
        match held.get(&lease.key, Some(&lease.lease_id)) {
            Some(h) if h.expires_at_ms == lease.expires_at_ms => {}
            _ => return,
        }
        match current {
            Some(current) if current.lease_id == lease.lease_id && current.expires_at_ms > now => {
                held.insert(current.clone());
                self.publish(|| LockChange::of(LockChangeKind::Renewed, current, now));
            }
            _ => {
                held.remove(&lease.key);
                self.publish(|| LockChange::of(LockChangeKind::Expired, lease, now));
            }
        }
    }
}

/// Lock changes of the keys under one prefix, from [`crate::LockManager::watch`].
pub struct LockWatch {
    pub(crate) changes: broadcast::Receiver<LockChange>,
    pub(crate) prefix: String,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) ended: bool,
    /// Keeps a shared store announcing other replicas' releases to this server.
    pub(crate) _announcements: AnnouncementGuard,
}

impl LockWatch {
    /// The next change of a key under the prefix, in the order this server published them.
    /// Ends with an `Unavailable` error when the watcher fell more than [`LOCK_CHANGE_BUFFER`]
    /// changes behind (changes were missed: watch again and re-read the holders) or when the
    /// server shuts down; `None` afterwards and once the engine is gone.
    pub async fn next(&mut self) -> Option<Result<LockChange>> {
        use tokio::sync::broadcast::error::RecvError;
        if self.ended {
            return None;
        }
        loop {
            let received = tokio::select! {
                biased;
                Ok(_) = self.shutdown.wait_for(|stop| *stop) => {
                    self.ended = true;
                    return Some(Err(Error::unavailable("server is shutting down")));
                }
                received = self.changes.recv() => received,
            };
            match received {
                Ok(change) if change.key.starts_with(&self.prefix) => return Some(Ok(change)),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    self.ended = true;
                    return Some(Err(Error::unavailable(format!(
                        "fell behind by {missed} lock changes; watch again"
                    ))
                    .with_detail("missed", missed)));
                }
                Err(RecvError::Closed) => {
                    self.ended = true;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;

    fn lease(key: &str, id: &str, expires_at_ms: i64) -> Lease {
        Lease {
            lease_id: id.to_string(),
            key: key.to_string(),
            owner: "o".to_string(),
            fencing_token: 1,
            acquired_at_ms: 0,
            expires_at_ms,
        }
    }

    fn kinds(rx: &mut broadcast::Receiver<LockChange>) -> Vec<(LockChangeKind, Option<String>)> {
        let mut out = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(change) => out.push((change.kind, change.lease_id)),
                Err(TryRecvError::Empty) => return out,
                Err(other) => panic!("{other:?}"),
            }
        }
    }

    fn id(kind: LockChangeKind, lease_id: &str) -> (LockChangeKind, Option<String>) {
        (kind, Some(lease_id.to_string()))
    }

    #[test]
    fn the_record_follows_leases_granted_here() {
        use LockChangeKind::*;
        let feed = LockFeed::new();
        let mut rx = feed.subscribe();
        let far = now_ms() + 60_000;
        let a1 = lease("a", "a1", far);
        feed.acquired(&a1);
        feed.acquired(&a1); // a retried acquire: reported once
                            // A lease that expired unreleased is reported before the next holder's.
        let b1 = lease("b", "b1", now_ms() - 1);
        feed.acquired(&b1);
        let b2 = lease("b", "b2", far);
        feed.acquired(&b2);
        assert_eq!(
            kinds(&mut rx),
            [
                id(Acquired, "a1"),
                id(Acquired, "b1"),
                id(Expired, "b1"),
                id(Acquired, "b2")
            ]
        );
        assert_eq!(feed.held().by_key.len(), 2);

        // Due leases: one renewed elsewhere, one gone.
        let c1 = lease("c", "c1", now_ms() - 1);
        let d1 = lease("d", "d1", now_ms() - 1);
        feed.acquired(&c1);
        feed.acquired(&d1);
        kinds(&mut rx);
        let due = feed.due(now_ms());
        assert_eq!(due.len(), 2);
        feed.settle(&due[0], Some(&lease(&due[0].key, &due[0].lease_id, far)));
        feed.settle(&due[1], None);
        feed.settle(&due[1], None); // settled already: nothing
        let (renewed, expired) = (&due[0].lease_id, &due[1].lease_id);
        assert_eq!(kinds(&mut rx), [id(Renewed, renewed), id(Expired, expired)]);
        assert!(feed.due(now_ms()).is_empty());

        // Releases: here, announced by this store (seen already), announced by another server.
        feed.released(&a1, false);
        feed.announced(&ReleasedKey {
            key: "a".into(),
            lease: Some(a1.clone()),
            forced: false,
            own: true,
        });
        feed.announced(&ReleasedKey {
            key: "b".into(),
            lease: None,
            forced: true,
            own: false,
        });
        feed.announced(&ReleasedKey {
            key: "elsewhere".into(),
            lease: None,
            forced: false,
            own: false,
        });
        // An announcement without the lease (an older server) takes it from the record if the
        // key was granted here.
        assert_eq!(
            kinds(&mut rx),
            [
                id(Released, "a1"),
                id(ForceReleased, "b2"),
                (Released, None)
            ]
        );
        assert_eq!(feed.held().by_key.len(), 1, "{:?}", feed.held().by_key);
    }

    #[tokio::test]
    async fn a_watch_that_falls_behind_ends_with_an_error() {
        let feed = LockFeed::new();
        let (_stop, shutdown) = watch::channel(false);
        let mut watch = LockWatch {
            changes: feed.subscribe(),
            prefix: "k".into(),
            shutdown,
            ended: false,
            _announcements: Box::new(()),
        };
        let lease = lease("k", "k1", now_ms() + 60_000);
        for _ in 0..LOCK_CHANGE_BUFFER + 10 {
            feed.renewed(&lease);
        }
        let err = watch.next().await.expect("an item").expect_err("an error");
        assert_eq!(err.kind, crate::ErrorKind::Unavailable);
        assert_eq!(err.details.get("missed").map(String::as_str), Some("10"));
        assert!(watch.next().await.is_none());
    }

    #[tokio::test]
    async fn a_watch_ends_on_shutdown() {
        let feed = LockFeed::new();
        let (stop, shutdown) = watch::channel(false);
        let mut watch = LockWatch {
            changes: feed.subscribe(),
            prefix: String::new(),
            shutdown,
            ended: false,
            _announcements: Box::new(()),
        };
        feed.renewed(&lease("k", "k1", now_ms() + 60_000));
        assert_eq!(
            watch.next().await.unwrap().unwrap().kind,
            LockChangeKind::Renewed
        );
        stop.send_replace(true);
        let err = watch.next().await.unwrap().expect_err("an error");
        assert_eq!(err.kind, crate::ErrorKind::Unavailable);
        assert!(watch.next().await.is_none());
    }
}
