//! The embedded backend: one SQLite file in WAL mode, through sqlx.
//!
//! Write transactions start with `BEGIN IMMEDIATE`, so a writer from another process makes them
//! wait (busy timeout) instead of failing halfway. One writer connection serialises every write (SQLite allows one writer anyway, and this keeps
//! global event positions in commit order); a small pool of read-only connections serves reads.
//! Lock writes (acquire, release, renew, force release) and event appends go through a thread
//! of their own with its own connection (rusqlite, [`lock_writer`]) that commits them in groups
//! (one transaction for all the writes that queued while the previous group was written); the
//! other writes (sagas, cache, API keys) use the sqlx writer connection.
//! `synchronous = NORMAL` in WAL mode survives a process crash (kill -9) without losing commits;
//! an OS crash or power loss may lose the last commits (see docs/storage.md). Fencing stays
//! monotonic anyway: every open durably bumps a boot epoch and raises the token counter above it
//! (migration 0005), and fencing epochs handed to Redis are written with `synchronous = FULL`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, watch};

use lock_writer::LockWrite;

use super::{saga_from_doc, task_with_saga, to_doc};
use crate::error::{Error, ErrorKind, Result};
use crate::model::*;
use crate::sagas::model::*;
use crate::store::*;

/// The columns of a lease, in the order [`lease_from_row`] and the lock writer read them (a
/// macro so that `concat!` can build whole statements with it).
macro_rules! lease_columns {
    () => {
        "lease_id, key, owner, fencing_token, acquired_at_ms, expires_at_ms"
    };
}

mod apikeys;
mod lock_writer;

/// How long a write waits for another connection's write transaction to end (the lock writer's
/// and the sqlx writer's connections share the file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded store. Implements every store trait over one database file.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Where committed appends are announced (the event head, per-stream wake-ups).
    announce: EventAnnounce,
    /// Lock writes and event appends, committed in groups by the [`lock_writer`] thread.
    lock_writes: mpsc::UnboundedSender<LockWrite>,
}

/// Where committed appends are announced (by the group-commit task, and after a saga
/// transition's commit).
#[derive(Clone)]
struct EventAnnounce {
    head_tx: watch::Sender<u64>,
    appended_tx: tokio::sync::broadcast::Sender<Appended>,
}

impl EventAnnounce {
    /// A committed append: move the head and tell the stream's subscriptions.
    fn announce(&self, stream: &str, appended: &AppendResult) {
        advance_head(&self.head_tx, appended.last_position);
        let _ = self.appended_tx.send(Appended::Stream(stream.into()));
    }
}

const LEASE_COLUMNS: &str = lease_columns!();
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
            .busy_timeout(BUSY_TIMEOUT);
        Self::open_with(options).await
    }

    /// Open from a `sqlite:` URL (e.g. `sqlite://./data/syros.db`). The URL must name a file
    /// (not `sqlite::memory:`): the lock writer opens the same file with a connection of its own.
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        Self::open_with(options).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let path = options.get_filename().to_path_buf();
        // No ping before each use (`test_before_acquire`, sqlx's default): a SQLite connection
        // is a file handle that does not go stale, and the ping was one more hop to the
        // connection's worker thread per statement (docs/performance.md).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        if !path.is_file() {
            return Err(Error::invalid(format!(
                "the embedded store needs a database file, not {}",
                path.display()
            )));
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        // Before any token is issued: a new boot epoch, durable, and the counter above it.
        durable_update(
            &writer,
            "UPDATE meta SET value = value + 1 WHERE name = 'boot_epoch' RETURNING value",
        )
        .await?;
        durable_update(
            &writer,
            "UPDATE meta SET value = MAX(value, (SELECT value FROM meta WHERE name = 'boot_epoch') << 32)
             WHERE name = 'fencing_token' RETURNING value",
        )
        .await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&reader)
            .await?;
        let (head_tx, _) = watch::channel(to_u64(head));
        let announce = EventAnnounce {
            head_tx,
            appended_tx: tokio::sync::broadcast::channel(APPENDED_BUFFER).0,
        };
        let lock_writes = lock_writer::start(&path, announce.clone())?;
        Ok(SqliteStore {
            writer,
            reader,
            announce,
            lock_writes,
        })
    }

    fn queue_lock_write(&self, write: LockWrite) -> Result<()> {
        self.lock_writes.send(write).map_err(|_| lock_writer_gone())
    }

    /// Close both pools, waiting for in-flight statements. The lock writer's connection closes
    /// when the store is dropped (its thread ends with the queue).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Run one `UPDATE ... RETURNING value` with `synchronous = FULL`, so it is on disk (WAL synced)
/// before the value is used, whatever an OS crash or power loss does to later commits. Every
/// other write keeps `synchronous = NORMAL`.
async fn durable_update(writer: &SqlitePool, sql: &str) -> Result<i64> {
    let mut conn = writer.acquire().await?;
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *conn)
        .await?;
    let value = sqlx::query_scalar(sql).fetch_one(&mut *conn).await;
    // Restore NORMAL even if the update failed; the connection goes back to the pool.
    let restored = sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await;
    let value = value?;
    restored?;
    Ok(value)
}

/// Move the event head forward to `position` (never back), waking subscriptions.
fn advance_head(head_tx: &watch::Sender<u64>, position: u64) {
    head_tx.send_if_modified(|head| {
        let newer = position > *head;
        if newer {
            *head = position;
        }
        newer
    });
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

fn lock_writer_gone() -> Error {
    Error::unavailable("the writer of the embedded store stopped")
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
    #[tracing::instrument(level = "debug", name = "store.locks.try_acquire", skip_all, fields(db.system = "sqlite", key = %request.key))]
    async fn try_acquire(&self, request: &LeaseRequest, now_ms: i64) -> Result<TryAcquire> {
        let (reply, answer) = oneshot::channel();
        self.queue_lock_write(LockWrite::Acquire {
            request: request.clone(),
            now_ms,
            reply,
        })?;
        answer.await.map_err(|_| lock_writer_gone())?
    }

    #[tracing::instrument(level = "debug", name = "store.locks.renew", skip_all, fields(db.system = "sqlite", lease_id = %lease_id))]
    async fn renew(&self, lease_id: &str, ttl_ms: u64, now_ms: i64) -> Result<Lease> {
        let (reply, answer) = oneshot::channel();
        self.queue_lock_write(LockWrite::Renew {
            lease_id: lease_id.to_string(),
            expires_at_ms: now_ms.saturating_add(to_i64(ttl_ms)?),
            now_ms,
            reply,
        })?;
        answer.await.map_err(|_| lock_writer_gone())?
    }

    #[tracing::instrument(level = "debug", name = "store.locks.release", skip_all, fields(db.system = "sqlite", lease_id = %lease_id))]
    async fn release(&self, lease_id: &str, now_ms: i64) -> Result<Lease> {
        let (reply, answer) = oneshot::channel();
        self.queue_lock_write(LockWrite::Release {
            lease_id: lease_id.to_string(),
            now_ms,
            reply,
        })?;
        answer.await.map_err(|_| lock_writer_gone())?
    }

    #[tracing::instrument(level = "debug", name = "store.locks.status", skip_all, fields(db.system = "sqlite", key = %key))]
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

    #[tracing::instrument(level = "debug", name = "store.locks.list", skip_all, fields(db.system = "sqlite", prefix = %prefix))]
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

    #[tracing::instrument(level = "debug", name = "store.locks.force_release", skip_all, fields(db.system = "sqlite", key = %key))]
    async fn force_release(&self, key: &str, now_ms: i64) -> Result<Option<Lease>> {
        let (reply, answer) = oneshot::channel();
        self.queue_lock_write(LockWrite::ForceRelease {
            key: key.to_string(),
            now_ms,
            reply,
        })?;
        answer.await.map_err(|_| lock_writer_gone())?
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
    #[tracing::instrument(level = "debug", name = "store.cache.get", skip_all, fields(db.system = "sqlite", key = %key))]
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

    #[tracing::instrument(level = "debug", name = "store.cache.set", skip_all, fields(db.system = "sqlite", key = %entry.key))]
    async fn set(
        &self,
        entry: &CacheEntry,
        once: Option<&CacheSetOnce>,
    ) -> Result<CacheSetOutcome> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(once) = once {
            let earlier: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT entry_expires_at_ms FROM cache_set_requests
                 WHERE request_id = ? AND forget_at_ms > ?",
            )
            .bind(&once.request_id)
            .bind(once.now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(expires_at_ms) = earlier {
                return Ok(CacheSetOutcome::Repeated { expires_at_ms });
            }
            sqlx::query(
                "INSERT OR REPLACE INTO cache_set_requests (request_id, entry_expires_at_ms, forget_at_ms)
                 VALUES (?, ?, ?)",
            )
            .bind(&once.request_id)
            .bind(entry.expires_at_ms)
            .bind(once.forget_at_ms)
            .execute(&mut *tx)
            .await?;
        }
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
        Ok(CacheSetOutcome::Stored)
    }

    #[tracing::instrument(level = "debug", name = "store.cache.delete", skip_all, fields(db.system = "sqlite", key = %key))]
    async fn delete(&self, key: &str) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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

    #[tracing::instrument(level = "debug", name = "store.cache.invalidate_tag", skip_all, fields(db.system = "sqlite", tag = %tag))]
    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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
        sqlx::query("DELETE FROM cache_set_requests WHERE forget_at_ms <= ?")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    #[tracing::instrument(level = "debug", name = "store.events.append", skip_all, fields(db.system = "sqlite", stream = %stream))]
    async fn append(
        &self,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<AppendResult> {
        let (reply, answer) = oneshot::channel();
        self.queue_lock_write(LockWrite::Append {
            stream: stream.to_string(),
            events: events.to_vec(),
            expected,
            now_ms,
            reply,
        })?;
        answer.await.map_err(|_| lock_writer_gone())?
    }

    #[tracing::instrument(level = "debug", name = "store.events.read_stream", skip_all, fields(db.system = "sqlite", stream = %query.stream))]
    async fn read_stream(&self, query: &StreamQuery) -> Result<StreamSlice> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_version FROM streams WHERE stream = ?")
                .bind(&query.stream)
                .fetch_optional(&self.reader)
                .await?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let (bound, order, from) = super::read_bounds(query.from, query.direction)?;
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

    #[tracing::instrument(level = "debug", name = "store.events.read_all", skip_all, fields(db.system = "sqlite"))]
    async fn read_all(&self, query: &AllQuery) -> Result<AllSlice> {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let (bound, order, from) = super::read_bounds(query.from, query.direction)?;
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
        self.announce.head_tx.subscribe()
    }

    fn appended(&self) -> tokio::sync::broadcast::Receiver<Appended> {
        self.announce.appended_tx.subscribe()
    }
}

#[async_trait]
impl FenceEpochs for SqliteStore {
    async fn next_epoch(&self) -> Result<u64> {
        let epoch = durable_update(
            &self.writer,
            "UPDATE meta SET value = value + 1 WHERE name = 'fence_epoch' RETURNING value",
        )
        .await?;
        Ok(to_u64(epoch))
    }

    async fn fence_state(&self) -> Result<FenceState> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, value FROM meta WHERE name IN ('fence_epoch', 'fence_verified_store')",
        )
        .fetch_all(&self.writer)
        .await?;
        let value = |name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        Ok(FenceState {
            epoch: value("fence_epoch").map(to_u64).unwrap_or(0),
            verified_store: value("fence_verified_store"),
        })
    }

    async fn record_verified(&self, fingerprint: i64) -> Result<()> {
        // An upsert, so no migration is needed for the row.
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ('fence_verified_store', ?1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(fingerprint)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

fn task_from_row(row: &SqliteRow) -> Result<SagaTask> {
    let doc: String = row.try_get("doc")?;
    let mut task: SagaTask = serde_json::from_str(&doc)
        .map_err(|e| Error::internal(format!("corrupt saga task: {e}")))?;
    task.worker_id = row.try_get("worker_id")?;
    task.deadline_ms = row.try_get("deadline_ms")?;
    task.visible_at_ms = row.try_get("visible_at_ms")?;
    Ok(task)
}

const TASK_COLUMNS: &str = "task_id, doc, worker_id, deadline_ms, visible_at_ms";

async fn insert_tasks(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tasks: &[SagaTask],
) -> Result<()> {
    for task in tasks {
        sqlx::query(
            "INSERT INTO saga_tasks (task_id, saga_id, service, visible_at_ms, doc) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&task.task_id)
        .bind(&task.saga_id)
        .bind(&task.service)
        .bind(task.visible_at_ms)
        .bind(to_doc(task)?)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl SqliteStore {
    /// Append a transition's audit events to its saga's stream inside the transition's write
    /// transaction `conn` (the event store's in-transaction append). `None`: no events.
    async fn append_audit(
        &self,
        conn: &mut SqliteConnection,
        saga_id: &str,
        events: &[NewEvent],
        now_ms: i64,
    ) -> Result<Option<AppendResult>> {
        if events.is_empty() {
            return Ok(None);
        }
        let stream = audit_stream(saga_id);
        let appended = lock_writer::on_sqlx_connection(conn, |conn| {
            lock_writer::append_on(conn, &stream, events, ExpectedVersion::Any, now_ms)
        })
        .await?;
        Ok(Some(appended))
    }

    /// After the commit of a transition's audit events: tell the stream's subscriptions.
    fn announce_audit(&self, saga_id: &str, appended: Option<AppendResult>) {
        if let Some(appended) = appended {
            self.announce.announce(&audit_stream(saga_id), &appended);
        }
    }
}

#[async_trait]
impl SagaStore for SqliteStore {
    #[tracing::instrument(level = "debug", name = "store.sagas.insert_saga", skip_all, fields(db.system = "sqlite", saga_id = %saga.saga_id))]
    async fn insert_saga(
        &self,
        saga: &Saga,
        tasks: &[SagaTask],
        audit: &[NewEvent],
    ) -> Result<Saga> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(key) = &saga.idempotency_key {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT doc FROM sagas WHERE idempotency_key = ?")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(doc) = existing {
                return saga_from_doc(&doc);
            }
        }
        sqlx::query(
            "INSERT INTO sagas (saga_id, name, state, idempotency_key, revision, doc, created_at_ms, updated_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&saga.saga_id)
        .bind(&saga.name)
        .bind(saga.state.as_str())
        .bind(&saga.idempotency_key)
        .bind(to_i64(saga.revision)?)
        .bind(to_doc(saga)?)
        .bind(saga.created_at_ms)
        .bind(saga.updated_at_ms)
        .execute(&mut *tx)
        .await?;
        insert_tasks(&mut tx, tasks).await?;
        let appended = self
            .append_audit(&mut tx, &saga.saga_id, audit, saga.created_at_ms)
            .await?;
        tx.commit().await?;
        self.announce_audit(&saga.saga_id, appended);
        Ok(saga.clone())
    }

    #[tracing::instrument(level = "debug", name = "store.sagas.get_saga", skip_all, fields(db.system = "sqlite", saga_id = %saga_id))]
    async fn get_saga(&self, saga_id: &str) -> Result<Option<Saga>> {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM sagas WHERE saga_id = ?")
            .bind(saga_id)
            .fetch_optional(&self.reader)
            .await?;
        doc.as_deref().map(saga_from_doc).transpose()
    }

    async fn list_sagas(&self, query: &SagaQuery) -> Result<Vec<Saga>> {
        let (after_ms, after_id) = match &query.after {
            Some(cursor) => (Some(cursor.created_at_ms), Some(cursor.saga_id.as_str())),
            None => (None, None),
        };
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT doc FROM sagas
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR name = ?2)
               AND (?3 IS NULL OR created_at_ms < ?3 OR (created_at_ms = ?3 AND saga_id < ?4))
             ORDER BY created_at_ms DESC, saga_id DESC LIMIT ?5",
        )
        .bind(query.state.map(|s| s.as_str()))
        .bind(&query.name)
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        docs.iter().map(|d| saga_from_doc(d)).collect()
    }

    #[tracing::instrument(level = "debug", name = "store.sagas.apply", skip_all, fields(db.system = "sqlite", saga_id = %transition.saga.saga_id))]
    async fn apply(&self, transition: &Transition) -> Result<TransitionOutcome> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(consumed) = &transition.consumed_task {
            let sql = if consumed.unclaimed_only {
                "DELETE FROM saga_tasks WHERE task_id = ? AND worker_id IS NULL"
            } else {
                "DELETE FROM saga_tasks WHERE task_id = ?"
            };
            let deleted = sqlx::query(sql)
                .bind(&consumed.task_id)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Ok(TransitionOutcome::StaleTask);
            }
        }
        let saga = &transition.saga;
        let updated = sqlx::query(
            "UPDATE sagas SET doc = ?, state = ?, revision = ?, updated_at_ms = ?
             WHERE saga_id = ? AND revision = ?",
        )
        .bind(to_doc(saga)?)
        .bind(saga.state.as_str())
        .bind(to_i64(saga.revision)?)
        .bind(saga.updated_at_ms)
        .bind(&saga.saga_id)
        .bind(to_i64(transition.expected_revision)?)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(TransitionOutcome::Conflict);
        }
        insert_tasks(&mut tx, &transition.new_tasks).await?;
        let appended = self
            .append_audit(
                &mut tx,
                &saga.saga_id,
                &transition.audit,
                saga.updated_at_ms,
            )
            .await?;
        tx.commit().await?;
        self.announce_audit(&saga.saga_id, appended);
        Ok(TransitionOutcome::Stored)
    }

    async fn claim_with_sagas(
        &self,
        service: &str,
        worker_id: &str,
        max_held: usize,
        now_ms: i64,
    ) -> Result<Vec<(SagaTask, Saga)>> {
        // One statement on the writer: the room left (max_held minus what the worker holds), the
        // claim, and each task's saga document.
        let rows = sqlx::query(&format!(
            "UPDATE saga_tasks SET worker_id = ?1,
                 deadline_ms = ?2 + CAST(json_extract(doc, '$.timeout_ms') AS INTEGER)
             WHERE task_id IN (
                 SELECT task_id FROM saga_tasks
                 WHERE service = ?3 AND worker_id IS NULL AND visible_at_ms <= ?2
                 ORDER BY visible_at_ms
                 LIMIT MAX(0, ?4 - (SELECT COUNT(*) FROM saga_tasks WHERE worker_id = ?1)))
             RETURNING {TASK_COLUMNS},
                 (SELECT doc FROM sagas WHERE sagas.saga_id = saga_tasks.saga_id) AS saga_doc"
        ))
        .bind(worker_id)
        .bind(now_ms)
        .bind(service)
        .bind(i64::try_from(max_held).unwrap_or(i64::MAX))
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|row| task_with_saga(row, task_from_row))
            .collect()
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<SagaTask>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM saga_tasks WHERE task_id = ?"
        ))
        .bind(task_id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn get_task_with_saga(&self, task_id: &str) -> Result<Option<(SagaTask, Saga)>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS},
                 (SELECT doc FROM sagas WHERE sagas.saga_id = saga_tasks.saga_id) AS saga_doc
             FROM saga_tasks WHERE task_id = ?"
        ))
        .bind(task_id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref()
            .map(|row| task_with_saga(row, task_from_row))
            .transpose()
    }

    async fn expired_tasks(&self, now_ms: i64, limit: usize) -> Result<Vec<SagaTask>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM saga_tasks
             WHERE worker_id IS NOT NULL AND deadline_ms < ? ORDER BY deadline_ms LIMIT ?"
        ))
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn next_visible(&self, service: &str) -> Result<Option<i64>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(visible_at_ms) FROM saga_tasks WHERE service = ? AND worker_id IS NULL",
        )
        .bind(service)
        .fetch_one(&self.writer)
        .await?;
        Ok(at)
    }

    async fn unclaimed_task(&self, saga_id: &str) -> Result<Option<SagaTask>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM saga_tasks WHERE saga_id = ? AND worker_id IS NULL LIMIT 1"
        ))
        .bind(saga_id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }
}
