//! The embedded backend: one SQLite file in WAL mode, through sqlx.
//!
//! One writer connection serialises every write (SQLite allows one writer anyway, and this keeps
//! global event positions in commit order); a small pool of read-only connections serves reads.
//! `synchronous = NORMAL` in WAL mode survives a process crash (kill -9) without losing commits;
//! a power loss may lose the last commits (see docs/storage.md).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::watch;

use crate::error::{Error, ErrorKind, Result};
use crate::model::*;
use crate::store::*;

/// The embedded store. Implements every store trait over one database file.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    head_tx: watch::Sender<u64>,
}

const LEASE_COLUMNS: &str = "lease_id, key, owner, fencing_token, acquired_at_ms, expires_at_ms";
const EVENT_COLUMNS: &str =
    "stream, version, position, event_id, event_type, data, metadata, created_at_ms";

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and run the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        Self::open_with(options).await
    }

    /// Open from a `sqlite:` URL (e.g. `sqlite://./data/syros.db`).
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&reader)
            .await?;
        let (head_tx, _) = watch::channel(to_u64(head));
        Ok(SqliteStore {
            writer,
            reader,
            head_tx,
        })
    }

    /// Close both pools, waiting for in-flight statements.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid(format!("{value} is out of range")))
}

fn lease_from_row(row: &SqliteRow) -> Result<Lease> {
    Ok(Lease {
        lease_id: row.try_get("lease_id")?,
        key: row.try_get("key")?,
        owner: row.try_get("owner")?,
        fencing_token: to_u64(row.try_get("fencing_token")?),
        acquired_at_ms: row.try_get("acquired_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        stream: row.try_get("stream")?,
        version: to_u64(row.try_get("version")?),
        global_position: to_u64(row.try_get("position")?),
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        data: row.try_get("data")?,
        metadata: row.try_get("metadata")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn not_held(lease_id: &str) -> Error {
    Error::new(
        ErrorKind::LockNotHeld,
        format!("lease {lease_id} is not held (released or expired)"),
    )
    .with_detail("lease_id", lease_id)
}

#[async_trait]
impl LockStore for SqliteStore {
    async fn try_acquire(&self, request: &LeaseRequest, now_ms: i64) -> Result<TryAcquire> {
        let mut tx = self.writer.begin().await?;
        let current = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS}, request_id FROM locks WHERE key = ? AND expires_at_ms > ?"
        ))
        .bind(&request.key)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = current {
            let lease = lease_from_row(&row)?;
            let holder_request: Option<String> = row.try_get("request_id")?;
            let same_request = request.request_id.is_some()
                && holder_request == request.request_id
                && lease.owner == request.owner;
            return Ok(if same_request {
                TryAcquire::Acquired(lease)
            } else {
                TryAcquire::Held(lease)
            });
        }
        let token: i64 = sqlx::query_scalar(
            "UPDATE meta SET value = value + 1 WHERE name = 'fencing_token' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        let lease = Lease {
            lease_id: uuid::Uuid::new_v4().simple().to_string(),
            key: request.key.clone(),
            owner: request.owner.clone(),
            fencing_token: to_u64(token),
            acquired_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(to_i64(request.ttl_ms)?),
        };
        sqlx::query(
            "INSERT INTO locks (key, lease_id, owner, fencing_token, acquired_at_ms, expires_at_ms, request_id)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET lease_id = excluded.lease_id, owner = excluded.owner,
               fencing_token = excluded.fencing_token, acquired_at_ms = excluded.acquired_at_ms,
               expires_at_ms = excluded.expires_at_ms, request_id = excluded.request_id",
        )
        .bind(&lease.key)
        .bind(&lease.lease_id)
        .bind(&lease.owner)
        .bind(token)
        .bind(lease.acquired_at_ms)
        .bind(lease.expires_at_ms)
        .bind(&request.request_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TryAcquire::Acquired(lease))
    }

    async fn renew(&self, lease_id: &str, ttl_ms: u64, now_ms: i64) -> Result<Lease> {
        let expires = now_ms.saturating_add(to_i64(ttl_ms)?);
        let row = sqlx::query(&format!(
            "UPDATE locks SET expires_at_ms = ? WHERE lease_id = ? AND expires_at_ms > ?
             RETURNING {LEASE_COLUMNS}"
        ))
        .bind(expires)
        .bind(lease_id)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => lease_from_row(&row),
            None => Err(not_held(lease_id)),
        }
    }

    async fn release(&self, lease_id: &str, now_ms: i64) -> Result<Lease> {
        let row = sqlx::query(&format!(
            "DELETE FROM locks WHERE lease_id = ? AND expires_at_ms > ? RETURNING {LEASE_COLUMNS}"
        ))
        .bind(lease_id)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => lease_from_row(&row),
            None => Err(not_held(lease_id)),
        }
    }

    async fn status(&self, key: &str, now_ms: i64) -> Result<Option<Lease>> {
        let row = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM locks WHERE key = ? AND expires_at_ms > ?"
        ))
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(lease_from_row).transpose()
    }

    async fn list(&self, prefix: &str, limit: usize, now_ms: i64) -> Result<Vec<Lease>> {
        // substr() rather than LIKE: keys may contain % and _.
        let rows = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM locks
             WHERE substr(key, 1, length(?1)) = ?1 AND expires_at_ms > ?2
             ORDER BY key LIMIT ?3"
        ))
        .bind(prefix)
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(lease_from_row).collect()
    }

    async fn force_release(&self, key: &str, now_ms: i64) -> Result<Option<Lease>> {
        let row = sqlx::query(&format!(
            "DELETE FROM locks WHERE key = ? AND expires_at_ms > ? RETURNING {LEASE_COLUMNS}"
        ))
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(lease_from_row).transpose()
    }

    async fn purge_expired(&self, now_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM locks WHERE expires_at_ms <= ?")
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl CacheStore for SqliteStore {
    async fn get(&self, key: &str, now_ms: i64) -> Result<Option<CacheEntry>> {
        let row = sqlx::query(
            "SELECT value, expires_at_ms FROM cache_entries
             WHERE key = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)",
        )
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let tags: Vec<String> =
            sqlx::query_scalar("SELECT tag FROM cache_tags WHERE key = ? ORDER BY tag")
                .bind(key)
                .fetch_all(&self.reader)
                .await?;
        Ok(Some(CacheEntry {
            key: key.to_string(),
            value: row.try_get("value")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            tags,
        }))
    }

    async fn set(&self, entry: &CacheEntry) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO cache_entries (key, value, expires_at_ms) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(&entry.key)
        .bind(&entry.value)
        .bind(entry.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM cache_tags WHERE key = ?")
            .bind(&entry.key)
            .execute(&mut *tx)
            .await?;
        for tag in &entry.tags {
            sqlx::query("INSERT OR IGNORE INTO cache_tags (tag, key) VALUES (?, ?)")
                .bind(tag)
                .bind(&entry.key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM cache_tags WHERE key = ?")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM cache_entries WHERE key = ?")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query(
            "DELETE FROM cache_entries WHERE key IN (SELECT key FROM cache_tags WHERE tag = ?)",
        )
        .bind(tag)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM cache_tags WHERE key IN (SELECT key FROM cache_tags WHERE tag = ?)",
        )
        .bind(tag)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn purge_expired(&self, now_ms: i64) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "DELETE FROM cache_tags WHERE key IN
               (SELECT key FROM cache_entries WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?)",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let removed = sqlx::query(
            "DELETE FROM cache_entries WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<AppendResult> {
        let mut tx = self.writer.begin().await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT last_version FROM streams WHERE stream = ?")
                .bind(stream)
                .fetch_optional(&mut *tx)
                .await?;
        let current = current.map(to_u64);
        crate::events::check_expected(stream, expected, current)?;
        let mut version = current.map_or(0, |v| v + 1);
        let mut first_position = 0u64;
        let mut last_position = 0u64;
        for event in events {
            let position = sqlx::query(
                "INSERT INTO events (stream, version, event_id, event_type, data, metadata, created_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(stream)
            .bind(to_i64(version)?)
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(&event.data)
            .bind(&event.metadata)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
            if first_position == 0 {
                first_position = to_u64(position);
            }
            last_position = to_u64(position);
            version += 1;
        }
        let last_version = version - 1;
        sqlx::query(
            "INSERT INTO streams (stream, last_version) VALUES (?, ?)
             ON CONFLICT (stream) DO UPDATE SET last_version = excluded.last_version",
        )
        .bind(stream)
        .bind(to_i64(last_version)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.head_tx.send_if_modified(|head| {
            let newer = last_position > *head;
            if newer {
                *head = last_position;
            }
            newer
        });
        Ok(AppendResult {
            last_version,
            first_position,
            last_position,
        })
    }

    async fn read_stream(&self, query: &StreamQuery) -> Result<StreamSlice> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_version FROM streams WHERE stream = ?")
                .bind(&query.stream)
                .fetch_optional(&self.reader)
                .await?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let (bound, order) = match query.direction {
            Direction::Forwards => (">=", "ASC"),
            Direction::Backwards => ("<=", "DESC"),
        };
        let from = match (query.from, query.direction) {
            (Some(from), _) => to_i64(from)?,
            (None, Direction::Forwards) => 0,
            (None, Direction::Backwards) => i64::MAX,
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ? AND version {bound} ?
             ORDER BY version {order} LIMIT ?"
        ))
        .bind(&query.stream)
        .bind(from)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(StreamSlice {
            events: rows.iter().map(event_from_row).collect::<Result<_>>()?,
            last_version: last.map(to_u64),
        })
    }

    async fn read_all(&self, query: &AllQuery) -> Result<AllSlice> {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let (bound, order) = match query.direction {
            Direction::Forwards => (">=", "ASC"),
            Direction::Backwards => ("<=", "DESC"),
        };
        let from = match (query.from, query.direction) {
            (Some(from), _) => to_i64(from)?,
            (None, Direction::Forwards) => 0,
            (None, Direction::Backwards) => i64::MAX,
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position {bound} ? ORDER BY position {order} LIMIT ?"
        ))
        .bind(from)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.reader)
            .await?;
        Ok(AllSlice {
            events: rows.iter().map(event_from_row).collect::<Result<_>>()?,
            last_position: to_u64(last),
        })
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }
}

#[async_trait]
impl FenceEpochs for SqliteStore {
    async fn next_epoch(&self) -> Result<u64> {
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE meta SET value = value + 1 WHERE name = 'fence_epoch' RETURNING value",
        )
        .fetch_one(&self.writer)
        .await?;
        Ok(to_u64(epoch))
    }
}
