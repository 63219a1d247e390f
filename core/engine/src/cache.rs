//! Cache: validation and TTL arithmetic over a [`CacheStore`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{check_name, check_optional_name, check_range_ms, now_ms, Limits};
use crate::model::CacheEntry;
use crate::store::{CacheSetOnce, CacheSetOutcome, CacheStore};

/// How long a cache set's request id is remembered: longer than a client keeps retrying a call
/// (30 s by default).
pub const SET_REQUEST_MEMORY_MS: i64 = 5 * 60 * 1000;

/// What this server's cache operations did since it started (per replica).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    invalidated: AtomicU64,
}

/// Cache operations of the engine.
pub struct CacheManager {
    store: Arc<dyn CacheStore>,
    limits: Limits,
    counters: Counters,
}

impl CacheManager {
    pub(crate) fn new(store: Arc<dyn CacheStore>, limits: Limits) -> Self {
        CacheManager {
            store,
            limits,
            counters: Counters::default(),
        }
    }

    /// Counts of this server's cache operations since it started.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            sets: c.sets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            invalidated: c.invalidated.load(Ordering::Relaxed),
        }
    }

    fn check_key(&self, key: &str) -> Result<()> {
        check_name("key", key, self.limits.max_key_bytes)
    }

    /// The value of `key`, never an expired one.
    #[tracing::instrument(level = "debug", name = "engine.cache.get", skip_all, fields(key = %key))]
    pub async fn get(&self, key: &str) -> Result<Option<CacheEntry>> {
        self.check_key(key)?;
        let entry = self.store.get(key, now_ms()).await?;
        crate::telemetry::cache_lookup(entry.is_some());
        let counter = if entry.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(entry)
    }

    /// Store `value` under `key` for `ttl_ms` (0 = no expiry) with `tags`, replacing any earlier
    /// value and tags. Returns the stored entry (with its expiry).
    #[tracing::instrument(level = "debug", name = "engine.cache.set", skip_all, fields(key = %key))]
    pub async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_ms: u64,
        tags: Vec<String>,
    ) -> Result<CacheEntry> {
        self.set_once(key, value, ttl_ms, tags, "").await
    }

    /// Like [`CacheManager::set`], idempotent per `request_id` (empty = not idempotent): a
    /// repeat within [`SET_REQUEST_MEMORY_MS`] of a set already applied changes nothing and
    /// answers with the first set's expiry. So a client retrying a set whose reply was lost never
    /// stores its value again after an `invalidate_tag` (or a newer set) replaced it.
    #[tracing::instrument(level = "debug", name = "engine.cache.set_once", skip_all, fields(key = %key))]
    pub async fn set_once(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_ms: u64,
        mut tags: Vec<String>,
        request_id: &str,
    ) -> Result<CacheEntry> {
        self.check_key(key)?;
        check_optional_name("request_id", request_id, self.limits.max_request_id_bytes)?;
        if value.len() > self.limits.cache_max_value_bytes {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "value is {} bytes; the maximum is {}",
                    value.len(),
                    self.limits.cache_max_value_bytes
                ),
            )
            .with_detail("max_bytes", self.limits.cache_max_value_bytes));
        }
        if ttl_ms != 0 {
            check_range_ms("ttl", ttl_ms, 1, self.limits.cache_max_ttl_ms)?;
        }
        if tags.len() > self.limits.max_tags {
            return Err(Error::invalid(format!(
                "{} tags given; the maximum is {}",
                tags.len(),
                self.limits.max_tags
            )));
        }
        for tag in &tags {
            check_name("tag", tag, self.limits.max_tag_bytes)?;
        }
        tags.sort();
        tags.dedup();
        let now = now_ms();
        let expires_at_ms =
            (ttl_ms != 0).then(|| now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)));
        let mut entry = CacheEntry {
            key: key.to_string(),
            value,
            expires_at_ms,
            tags,
        };
        let once = (!request_id.is_empty()).then(|| CacheSetOnce {
            request_id: request_id.to_string(),
            now_ms: now,
            forget_at_ms: now.saturating_add(SET_REQUEST_MEMORY_MS),
        });
        match self.store.set(&entry, once.as_ref()).await? {
            CacheSetOutcome::Stored => {
                self.counters.sets.fetch_add(1, Ordering::Relaxed);
            }
            CacheSetOutcome::Repeated { expires_at_ms } => entry.expires_at_ms = expires_at_ms,
        }
        Ok(entry)
    }

    /// Remove `key`; true if it existed.
    #[tracing::instrument(level = "debug", name = "engine.cache.delete", skip_all, fields(key = %key))]
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        let deleted = self.store.delete(key).await?;
        if deleted {
            self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(deleted)
    }

    /// Remove every key carrying `tag`, atomically. Returns how many were removed.
    #[tracing::instrument(level = "debug", name = "engine.cache.invalidate_tag", skip_all, fields(tag = %tag))]
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        check_name("tag", tag, self.limits.max_tag_bytes)?;
        let removed = self.store.invalidate_tag(tag).await?;
        self.counters
            .invalidated
            .fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    pub(crate) async fn purge_expired(&self) -> Result<u64> {
        self.store.purge_expired(now_ms()).await
    }
}
