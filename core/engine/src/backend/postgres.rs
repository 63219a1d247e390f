//! PostgreSQL backend for events and fencing epochs (production).
//!
//! Appends are written in groups (`append_group`): the appends queued while one group is written
//! form the next, read together, checked one by one, and written in one statement (its own
//! transaction) that moves each stream's row only if it is still at the version read, takes the
//! global position row once and inserts all the events. An append whose stream moved meanwhile
//! (another replica) is redone in a transaction holding the stream's row lock (`APPEND_WRITE`).
//! The position row, held until each write's commit, serialises the writes, so global positions
//! are gap-free and commit in order: a reader that sees position N has seen every position below
//! N. Each write also `pg_notify`s the new head and its streams; every replica LISTENs and wakes
//! the subscriptions to all streams and to those streams, which then read from the table (so a
//! lost notification costs latency, not events).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::watch;

use super::{saga_from_doc, task_with_saga, to_doc};
use crate::error::{Error, Result};
use crate::model::*;
use crate::sagas::model::*;
use crate::store::*;

mod apikeys;
mod append_group;

use append_group::{GroupWriter, Grouped, QueuedAppend};

/// Events and epochs in PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
    channel: String,
    head_tx: watch::Sender<u64>,
    appended_tx: tokio::sync::broadcast::Sender<Appended>,
    /// This store's mark in its notifications, so its LISTEN task skips the ones it announced
    /// itself already.
    origin: String,
    /// Dropped with the store, which ends the LISTEN task.
    _stop: watch::Sender<()>,
    /// Streams whose optimistic append lost a race lately, and when: their appends take the
    /// stream's row lock from the start (a hot stream would otherwise lose most races).
    contended: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Appends, written in groups by [`append_group::group_commit`].
    appends: tokio::sync::mpsc::UnboundedSender<QueuedAppend>,
}

/// How long a stream that lost a race is appended to with its row lock taken first.
const CONTENDED_FOR: Duration = Duration::from_secs(2);
/// At most this many streams are remembered as contended (the map is emptied beyond it).
const CONTENDED_MAX: usize = 4096;

const EVENT_COLUMNS: &str =
    "stream, version, position, event_id, event_type, data::text AS data, metadata::text AS metadata, created_at_ms";

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid(format!("{value} is out of range")))
}

fn event_from_row(row: &PgRow) -> Result<RecordedEvent> {
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

impl PostgresStore {
    /// Connect with a pool of `pool_size` connections and run the embedded migrations.
    /// `schema` (if given) is created and used as the search path, so several deployments or
    /// tests can share a database; the notification channel is named after it.
    pub async fn connect(url: &str, pool_size: u32, schema: Option<&str>) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid(format!("bad PostgreSQL URL: {e}")))?;
        if let Some(schema) = schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::invalid(
                    "schema names may use only letters, digits and _",
                ));
            }
            let bootstrap = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&bootstrap)
                .await?;
            bootstrap.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(2))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let head: i64 =
            sqlx::query_scalar("SELECT value FROM syros_meta WHERE name = 'event_position'")
                .fetch_one(&pool)
                .await?;
        let (head_tx, _) = watch::channel(to_u64(head));
        let channel = format!("syros_events_{}", schema.unwrap_or("public"));
        let (stop, stop_rx) = watch::channel(());
        let appended_tx = tokio::sync::broadcast::channel(APPENDED_BUFFER).0;
        let origin = uuid::Uuid::new_v4().simple().to_string();
        tokio::spawn(listen_heads(
            pool.clone(),
            channel.clone(),
            Announce {
                head_tx: head_tx.clone(),
                appended_tx: appended_tx.clone(),
                origin: origin.clone(),
            },
            stop_rx,
        ));
        let (appends, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(append_group::group_commit(
            GroupWriter {
                pool: pool.clone(),
                channel: channel.clone(),
                origin: origin.clone(),
                head_tx: head_tx.clone(),
                appended_tx: appended_tx.clone(),
            },
            queue,
        ));
        Ok(PostgresStore {
            pool,
            channel,
            head_tx,
            appended_tx,
            origin,
            _stop: stop,
            contended: Default::default(),
            appends,
        })
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// An append of this store committed: move the head and tell the stream's subscriptions.
    fn announce(&self, stream: &str, position: u64) {
        advance(&self.head_tx, position);
        let _ = self.appended_tx.send(Appended::Stream(stream.into()));
    }
}

/// How often an append that keeps racing (only possible while its stream is being created) is
/// tried again with the stream's row lock.
const LOCKED_APPEND_ATTEMPTS: usize = 8;

/// How one try of an append ended.
enum Attempt {
    /// Written; in a transaction it still needs its COMMIT.
    Done(AppendResult),
    /// An earlier attempt of this append had committed it: its result again, nothing written.
    Replayed(AppendResult),
    /// Another append to the stream committed between the read and the write: nothing written.
    Raced,
}

/// One append in one statement, guarded by the stream's version read before it. Locks are taken
/// in the same order by every append, the stream's row first (the upsert, or `FOR UPDATE`), then
/// the position row (`UPDATE ... FROM stream_row` runs only once the upsert produced its row), so
/// appends cannot deadlock; both are held only while PostgreSQL runs the statement (and its
/// COMMIT), not across a round trip. Taking the position row serialises the appends' commits, so
/// positions are gap-free and visible in order. No row back: the guard failed (raced).
const APPEND_WRITE: &str = "WITH stream_row AS (
        INSERT INTO syros_streams AS s (stream, last_version) VALUES ($1, $2)
        ON CONFLICT (stream) DO UPDATE SET last_version = EXCLUDED.last_version
        WHERE s.last_version = $3
        RETURNING 1
    ), head AS (
        UPDATE syros_meta SET value = value + $4 FROM stream_row
        WHERE name = 'event_position' RETURNING value
    ), stored AS (
        INSERT INTO syros_events (position, stream, version, event_id, event_type, data, metadata, created_at_ms)
        SELECT head.value - $4 + batch.n, $1, $5 + batch.n - 1, batch.i, batch.t, batch.d::json, batch.m::json, $10
        FROM head, UNNEST($6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS batch(i, t, d, m, n)
    )
    SELECT value, pg_notify($11, value::text || ' ' || $12 || ' ' || $1) FROM head";

/// A stream's last version, the version a repeat of the append would start at (see
/// `events::replay_start`) and the id stored there, in one round trip.
macro_rules! stream_read {
    () => {
        "SELECT s.last_version, COALESCE($2::bigint, s.last_version - $3 + 1),
            (SELECT e.event_id FROM syros_events e
              WHERE e.stream = s.stream AND e.version = COALESCE($2::bigint, s.last_version - $3 + 1))
         FROM syros_streams s WHERE s.stream = $1"
    };
}
const STREAM_READ: &str = stream_read!();
/// [`STREAM_READ`] taking the stream's row lock.
const STREAM_READ_LOCKED: &str = concat!(stream_read!(), " FOR UPDATE OF s");

impl PostgresStore {
    fn is_contended(&self, stream: &str) -> bool {
        let contended = self.contended.lock().unwrap_or_else(|e| e.into_inner());
        contended
            .get(stream)
            .is_some_and(|since| since.elapsed() < CONTENDED_FOR)
    }

    fn mark_contended(&self, stream: &str) {
        let mut contended = self.contended.lock().unwrap_or_else(|e| e.into_inner());
        if contended.len() >= CONTENDED_MAX {
            contended.clear();
        }
        contended.insert(stream.to_string(), std::time::Instant::now());
    }

    /// In a transaction: read the stream's version taking its row lock (held until the caller's
    /// COMMIT, so no other append to the stream can commit meanwhile), answer a repeat or a
    /// version conflict, else write the events with [`APPEND_WRITE`]. A stream that does not
    /// exist yet has no row to lock, and a creation racing with this one ends `Raced`.
    async fn append_attempt(
        &self,
        conn: &mut sqlx::PgConnection,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<Attempt> {
        let count = i64::try_from(events.len()).map_err(|_| Error::invalid("too many events"))?;
        let fixed_start = crate::events::replay_fixed_start(expected)
            .map(to_i64)
            .transpose()?;
        // The id stored where a repeat of this append would find its first event (see
        // `events::replay_start`), read with the version to cost no extra round trip.
        let read = |lock: bool| {
            let sql = if lock {
                STREAM_READ_LOCKED
            } else {
                STREAM_READ
            };
            sqlx::query_as::<_, (i64, i64, Option<String>)>(sql)
                .bind(stream)
                .bind(fixed_start)
                .bind(count)
        };
        let mut row = read(true).fetch_optional(&mut *conn).await?;
        if let Some((last, at, None)) = row {
            // With the lock, a wait for it (another append to the stream committing) leaves the
            // id read with the statement's older snapshot: versions 0..=last all have events, so
            // none found in that range means stale. Read again: the lock keeps it stable now.
            if (0..=last).contains(&at) {
                row = read(false).fetch_optional(&mut *conn).await?;
            }
        }
        let row = row.map(|(last, _, id)| (last, id));
        let current = row.as_ref().map(|(v, _)| to_u64(*v));
        let first_id = row.and_then(|(_, id)| id);
        if let Some(start) =
            crate::events::replay_start(expected, current, first_id.as_deref(), events)
        {
            let stored: Vec<(i64, i64, String)> = sqlx::query_as(
                "SELECT version, position, event_id FROM syros_events
                 WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3",
            )
            .bind(stream)
            .bind(to_i64(start)?)
            .bind(count)
            .fetch_all(&mut *conn)
            .await?;
            if let Some(again) = crate::events::replayed(events, &stored) {
                return Ok(Attempt::Replayed(again));
            }
        }
        crate::events::check_expected(stream, expected, current)?;
        let first_version = current.map_or(0, |v| v + 1);
        let last_version = first_version + events.len() as u64 - 1;
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        let metadata: Vec<Option<&str>> = events.iter().map(|e| e.metadata.as_deref()).collect();
        let written: Option<(i64,)> = sqlx::query_as(APPEND_WRITE)
            .bind(stream)
            .bind(to_i64(last_version)?)
            .bind(current.map(to_i64).transpose()?)
            .bind(count)
            .bind(to_i64(first_version)?)
            .bind(&ids)
            .bind(&types)
            .bind(&data)
            .bind(&metadata)
            .bind(now_ms)
            .bind(&self.channel)
            .bind(&self.origin)
            .fetch_optional(&mut *conn)
            .await?;
        let Some((last_position,)) = written else {
            return Ok(Attempt::Raced);
        };
        let result = AppendResult {
            last_version,
            first_position: to_u64(last_position - count + 1),
            last_position: to_u64(last_position),
        };
        Ok(Attempt::Done(result))
    }
}

/// Where the LISTEN task passes notifications on.
struct Announce {
    head_tx: watch::Sender<u64>,
    appended_tx: tokio::sync::broadcast::Sender<Appended>,
    /// The store's own mark: its appends were announced when they committed.
    origin: String,
}

impl Announce {
    /// Notices may have been missed: wake every subscription.
    fn everything(&self) {
        self.head_tx.send_modify(|_| {});
        let _ = self.appended_tx.send(Appended::Unknown);
    }

    /// A notification's payload: `<position> <origin> <stream>` (an older replica sends only
    /// the position, and then every stream subscription re-reads).
    fn notification(&self, payload: &str) {
        let mut parts = payload.splitn(3, ' ');
        let Some(Ok(position)) = parts.next().map(str::parse::<u64>) else {
            return self.everything();
        };
        advance(&self.head_tx, position);
        match (parts.next(), parts.next()) {
            (Some(origin), Some(_)) if origin == self.origin => {}
            (Some(_), Some(stream)) => {
                let _ = self.appended_tx.send(Appended::Stream(stream.into()));
            }
            _ => {
                let _ = self.appended_tx.send(Appended::Unknown);
            }
        }
    }
}

/// Move a head forward (never back).
fn advance(head_tx: &watch::Sender<u64>, position: u64) {
    head_tx.send_if_modified(|head| {
        let newer = position > *head;
        if newer {
            *head = position;
        }
        newer
    });
}

/// LISTEN for appends made through any replica, move the head forward and tell the stream's
/// subscriptions. After a reconnect every subscription is woken, since notifications may have
/// been missed.
async fn listen_heads(
    pool: PgPool,
    channel: String,
    announce: Announce,
    mut stop: watch::Receiver<()>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let session = async {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN for event notifications");
                    return false;
                }
            };
            if let Err(err) = listener.listen(&channel).await {
                tracing::warn!(error = %err, "cannot LISTEN for event notifications");
                return false;
            }
            // Anything appended while we were not listening is found by re-reading the store.
            announce.everything();
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => announce.notification(notification.payload()),
                    // The connection was lost; sqlx reconnects on the next call, but we may have
                    // missed notifications meanwhile.
                    Ok(None) => announce.everything(),
                    Err(err) => {
                        tracing::warn!(error = %err, "event notifications interrupted");
                        return true;
                    }
                }
            }
        };
        tokio::select! {
            was_connected = session => if was_connected { delay = Duration::from_millis(100) },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

impl PostgresStore {
    /// [`EventStore::append`]: in the next group ([`append_group`]), unless the stream lost a
    /// race lately (another replica appends to it too); then, or if it races now, in a
    /// transaction holding the stream's row lock.
    async fn append_events(
        &self,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<AppendResult> {
        if !self.is_contended(stream) {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.appends
                .send(QueuedAppend {
                    stream: stream.to_string(),
                    events: events.to_vec(),
                    expected,
                    now_ms,
                    reply,
                })
                .map_err(|_| group_commit_gone())?;
            match answer.await.map_err(|_| group_commit_gone())?? {
                Grouped::Appended(result) => return Ok(result),
                Grouped::Raced => self.mark_contended(stream),
            }
        }
        self.append_locked(stream, events, expected, now_ms).await
    }

    /// An append in its own transaction holding the stream's row lock.
    async fn append_locked(
        &self,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<AppendResult> {
        for _ in 0..LOCKED_APPEND_ATTEMPTS {
            let mut tx = self.pool.begin().await?;
            match self
                .append_attempt(&mut tx, stream, events, expected, now_ms)
                .await?
            {
                Attempt::Done(result) => {
                    // A connection lost during COMMIT leaves the outcome unknown (not
                    // `unavailable`). The head then moves with the pg_notify, if it committed.
                    tx.commit().await.map_err(Error::from_commit)?;
                    self.announce(stream, result.last_position);
                    return Ok(result);
                }
                Attempt::Replayed(result) => return Ok(result),
                Attempt::Raced => tx.rollback().await?,
            }
        }
        Err(Error::unavailable(format!(
            "stream {stream:?}: {LOCKED_APPEND_ATTEMPTS} appends in a row lost the race to create it"
        )))
    }
}

fn group_commit_gone() -> Error {
    Error::unavailable("the event writer of the PostgreSQL store stopped")
}

#[async_trait]
impl EventStore for PostgresStore {
    #[tracing::instrument(level = "debug", name = "store.events.append", skip_all, fields(db.system = "postgresql", stream = %stream))]
    async fn append(
        &self,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<AppendResult> {
        let result = self.append_events(stream, events, expected, now_ms).await;
        if result.is_err() {
            // It may have committed all the same (outcome unknown), and the LISTEN task skips
            // this store's own notifications: let the stream's subscriptions look.
            let _ = self.appended_tx.send(Appended::Stream(stream.into()));
        }
        result
    }

    #[tracing::instrument(level = "debug", name = "store.events.read_stream", skip_all, fields(db.system = "postgresql", stream = %query.stream))]
    async fn read_stream(&self, query: &StreamQuery) -> Result<StreamSlice> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_version FROM syros_streams WHERE stream = $1")
                .bind(&query.stream)
                .fetch_optional(&self.pool)
                .await?;
        let (bound, order, from) = super::read_bounds(query.from, query.direction)?;
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM syros_events WHERE stream = $1 AND version {bound} $2
             ORDER BY version {order} LIMIT $3"
        ))
        .bind(&query.stream)
        .bind(from)
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(StreamSlice {
            events: rows.iter().map(event_from_row).collect::<Result<_>>()?,
            last_version: last.map(to_u64),
        })
    }

    #[tracing::instrument(level = "debug", name = "store.events.read_all", skip_all, fields(db.system = "postgresql"))]
    async fn read_all(&self, query: &AllQuery) -> Result<AllSlice> {
        let (bound, order, from) = super::read_bounds(query.from, query.direction)?;
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM syros_events WHERE position {bound} $1 ORDER BY position {order} LIMIT $2"
        ))
        .bind(from)
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        // Committed positions only: the counter row may be ahead inside an open append.
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM syros_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(AllSlice {
            events: rows.iter().map(event_from_row).collect::<Result<_>>()?,
            last_position: to_u64(last),
        })
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    fn appended(&self) -> tokio::sync::broadcast::Receiver<Appended> {
        self.appended_tx.subscribe()
    }
}

#[async_trait]
impl FenceEpochs for PostgresStore {
    async fn next_epoch(&self) -> Result<u64> {
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE syros_meta SET value = value + 1 WHERE name = 'fence_epoch' RETURNING value",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(to_u64(epoch))
    }

    async fn fence_state(&self) -> Result<FenceState> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, value FROM syros_meta WHERE name IN ('fence_epoch', 'fence_verified_store')",
        )
        .fetch_all(&self.pool)
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
            "INSERT INTO syros_meta (name, value) VALUES ('fence_verified_store', $1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn task_from_row(row: &PgRow) -> Result<SagaTask> {
    let doc: String = row.try_get("doc")?;
    let mut task: SagaTask = serde_json::from_str(&doc)
        .map_err(|e| Error::internal(format!("corrupt saga task: {e}")))?;
    task.worker_id = row.try_get("worker_id")?;
    task.deadline_ms = row.try_get("deadline_ms")?;
    task.visible_at_ms = row.try_get("visible_at_ms")?;
    Ok(task)
}

const TASK_COLUMNS: &str = "task_id, doc::text AS doc, worker_id, deadline_ms, visible_at_ms";

/// New tasks as the columns of `UNNEST($n::text[], $n+1::text[], $n+2::bigint[], $n+3::text[])`
/// (task id, service, visible at, document), so any number of them is one statement.
type TaskColumns = (Vec<String>, Vec<String>, Vec<i64>, Vec<String>);

type PgQueryAs<'q, O> = sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>;

/// A transition's consumed task, saga and new tasks as $1–$12, in the order both
/// APPLY_TRANSITION and APPLY_CLAIMED_TRANSITION take them.
fn bind_transition<'q, O>(
    query: PgQueryAs<'q, O>,
    transition: &'q Transition,
    columns: &'q TaskColumns,
) -> Result<PgQueryAs<'q, O>> {
    let saga = &transition.saga;
    let consumed = transition.consumed_task.as_ref();
    let (ids, services, visible, docs) = columns;
    Ok(query
        .bind(consumed.map(|c| c.task_id.as_str()))
        .bind(consumed.is_some_and(|c| c.unclaimed_only))
        .bind(to_doc(saga)?)
        .bind(saga.state.as_str())
        .bind(to_i64(saga.revision)?)
        .bind(saga.updated_at_ms)
        .bind(&saga.saga_id)
        .bind(to_i64(transition.expected_revision)?)
        .bind(ids)
        .bind(services)
        .bind(visible)
        .bind(docs))
}

fn task_columns(tasks: &[SagaTask]) -> Result<TaskColumns> {
    let mut columns: TaskColumns = Default::default();
    for task in tasks {
        columns.0.push(task.task_id.clone());
        columns.1.push(task.service.clone());
        columns.2.push(task.visible_at_ms);
        columns.3.push(to_doc(task)?);
    }
    Ok(columns)
}

/// The audit append of a saga write, as CTEs after the CTE named `$guard` (one row when the
/// saga part was stored, none otherwise): the audit stream's row moves by the `$14` events
/// (created, or version + `$14`: audit events are appended with `ExpectedVersion::Any` and fresh
/// ids, so there is nothing to check or replay), then the global position row moves once, then
/// the events are inserted. Locks are taken saga row, stream row, position row, so the position
/// row is the last lock of every writer (as in the event store's own appends) and is held only
/// while PostgreSQL runs the statement and its commit, never across a round trip. Parameters:
/// `$13` stream, `$14` count, `$15`/`$16`/`$17` ids, types, data, `$18` created at.
macro_rules! audit_append_ctes {
    ($guard:literal) => {
        concat!(
            ", audit_stream AS (
        INSERT INTO syros_streams AS s (stream, last_version)
        SELECT $13, $14 - 1 FROM ",
            $guard,
            " WHERE $14 > 0
        ON CONFLICT (stream) DO UPDATE SET last_version = s.last_version + $14
        RETURNING s.last_version
    ), head AS (
        UPDATE syros_meta SET value = value + $14 FROM audit_stream
        WHERE name = 'event_position' RETURNING value, audit_stream.last_version
    ), stored AS (
        INSERT INTO syros_events (position, stream, version, event_id, event_type, data, created_at_ms)
        SELECT head.value - $14 + batch.n, $13, head.last_version - $14 + batch.n, batch.i, batch.t, batch.d::json, $18
        FROM head, UNNEST($15::text[], $16::text[], $17::text[]) WITH ORDINALITY AS batch(i, t, d, n)
    )"
        )
    };
}

/// The output columns of a saga write after its own: the audit append's last position (NULL:
/// nothing appended) and the `pg_notify` of it for the other replicas (`$19` channel, `$20`
/// this store's origin).
macro_rules! audit_append_columns {
    () => {
        "(SELECT value FROM head),
        (SELECT pg_notify($19, value::text || ' ' || $20 || ' ' || $13) FROM head)"
    };
}

/// A new saga, its first tasks and its audit events in one statement, so one round trip and one
/// (implicit) transaction; nothing when the idempotency key is taken (`ON CONFLICT`: two starts
/// with one key race safely, the loser reads the winner). Returns whether the saga was inserted
/// and the audit append's last position.
const INSERT_SAGA: &str = concat!(
    "WITH saga AS (
        INSERT INTO syros_sagas (saga_id, name, state, idempotency_key, revision, doc, created_at_ms, updated_at_ms)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING saga_id
    ), tasks AS (
        INSERT INTO syros_saga_tasks (task_id, saga_id, service, visible_at_ms, doc)
        SELECT t.id, saga.saga_id, t.service, t.visible, t.doc::jsonb
        FROM saga, UNNEST($9::text[], $10::text[], $11::bigint[], $12::text[]) AS t(id, service, visible, doc)
    )",
    audit_append_ctes!("saga"),
    "
    SELECT (SELECT COUNT(*) FROM saga), ",
    audit_append_columns!()
);

/// A transition that consumes no task or a claimed one (a report, a timeout), in one statement
/// (one round trip, one implicit transaction): the saga updated if still at the expected revision
/// and, when `$1` names a task, only if that task exists; then the task deleted, the new tasks
/// inserted and the audit events appended, each only if the saga was updated. Every other writer
/// that deletes a claimed task (another report of it, the timeout sweep) updates the saga's row in
/// the same transaction, so it either committed before this statement's snapshot (the task is
/// gone: no update) or changes the revision this update waits for and then fails (no update):
/// the delete cannot miss once the update is done. (Claims change only unclaimed tasks, so a
/// transition that consumes an unclaimed task, a cancel's withdrawal, is [`APPLY_TRANSITION`] in
/// a transaction, which checks both counts before its COMMIT.) Returns (sagas updated, tasks
/// deleted, whether the task existed in the statement's snapshot, the audit's last position).
const APPLY_CLAIMED_TRANSITION: &str = concat!(
    "WITH updated AS (
        UPDATE syros_sagas SET doc = $3::jsonb, state = $4, revision = $5, updated_at_ms = $6
        WHERE saga_id = $7 AND revision = $8
          AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM syros_saga_tasks WHERE task_id = $1))
        RETURNING 1
    ), consumed AS (
        DELETE FROM syros_saga_tasks WHERE task_id = $1 AND NOT $2 AND EXISTS (SELECT 1 FROM updated)
        RETURNING 1
    ), tasks AS (
        INSERT INTO syros_saga_tasks (task_id, saga_id, service, visible_at_ms, doc)
        SELECT t.id, $7, t.service, t.visible, t.doc::jsonb
        FROM updated, UNNEST($9::text[], $10::text[], $11::bigint[], $12::text[]) AS t(id, service, visible, doc)
    )",
    audit_append_ctes!("updated"),
    "
    SELECT (SELECT COUNT(*) FROM updated), (SELECT COUNT(*) FROM consumed),
        EXISTS (SELECT 1 FROM syros_saga_tasks WHERE task_id = $1), ",
    audit_append_columns!()
);

/// A transition's task and saga changes in one statement: the consumed task deleted (`$1`, NULL
/// for none; with `$2` only if unclaimed), the saga updated if still at the expected revision,
/// the new tasks inserted. Returns (tasks deleted, sagas updated): the caller rolls back unless
/// both are as expected, so a partial change is never committed.
const APPLY_TRANSITION: &str = "WITH consumed AS (
        DELETE FROM syros_saga_tasks WHERE task_id = $1 AND (NOT $2 OR worker_id IS NULL)
        RETURNING 1
    ), updated AS (
        UPDATE syros_sagas SET doc = $3::jsonb, state = $4, revision = $5, updated_at_ms = $6
        WHERE saga_id = $7 AND revision = $8
        RETURNING 1
    ), tasks AS (
        INSERT INTO syros_saga_tasks (task_id, saga_id, service, visible_at_ms, doc)
        SELECT t.id, $7, t.service, t.visible, t.doc::jsonb
        FROM UNNEST($9::text[], $10::text[], $11::bigint[], $12::text[]) AS t(id, service, visible, doc)
    )
    SELECT (SELECT COUNT(*) FROM consumed), (SELECT COUNT(*) FROM updated)";

/// How a transition's audit append inside its transaction ended.
enum AuditAppend {
    /// Written (`None`: there were no events), to be announced after the commit.
    Written(Option<AppendResult>),
    /// A concurrent append created the stream first (only possible for a new stream): nothing
    /// written; roll back and try again.
    Raced,
}

/// A saga write's audit events as the parameters `$13`..`$20` of [`audit_append_ctes`] and
/// [`audit_append_columns`].
struct AuditColumns<'a> {
    stream: String,
    count: i64,
    ids: Vec<&'a str>,
    types: Vec<&'a str>,
    data: Vec<&'a str>,
}

impl<'a> AuditColumns<'a> {
    fn new(saga_id: &str, events: &'a [NewEvent]) -> Result<Self> {
        Ok(Self {
            stream: audit_stream(saga_id),
            count: i64::try_from(events.len()).map_err(|_| Error::invalid("too many events"))?,
            ids: events.iter().map(|e| e.event_id.as_str()).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            data: events.iter().map(|e| e.data.as_str()).collect(),
        })
    }

    /// `query` (bound up to `$12`) with the audit parameters bound.
    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        created_at_ms: i64,
        store: &'q PostgresStore,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.stream)
            .bind(self.count)
            .bind(&self.ids)
            .bind(&self.types)
            .bind(&self.data)
            .bind(created_at_ms)
            .bind(&store.channel)
            .bind(&store.origin)
    }

    /// After the write committed: tell the stream's subscriptions (`None`: nothing appended).
    fn announce(&self, store: &PostgresStore, last_position: Option<i64>) {
        if let Some(position) = last_position {
            store.announce(&self.stream, to_u64(position));
        }
    }
}

impl PostgresStore {
    /// Append a transition's audit events to its saga's stream inside `tx`, with the event
    /// store's in-transaction append (the stream's row lock is held until the caller commits).
    async fn append_audit(
        &self,
        tx: &mut sqlx::PgConnection,
        saga_id: &str,
        events: &[NewEvent],
        now_ms: i64,
    ) -> Result<AuditAppend> {
        if events.is_empty() {
            return Ok(AuditAppend::Written(None));
        }
        let stream = audit_stream(saga_id);
        Ok(
            match self
                .append_attempt(tx, &stream, events, ExpectedVersion::Any, now_ms)
                .await?
            {
                Attempt::Done(result) => AuditAppend::Written(Some(result)),
                // Fresh event ids: a repeat cannot happen; if it did, nothing new to announce.
                Attempt::Replayed(_) => AuditAppend::Written(None),
                Attempt::Raced => AuditAppend::Raced,
            },
        )
    }

    /// A transition that consumes an unclaimed task (a cancel's withdrawal of a queued task): a
    /// claim may take the task between a statement's snapshot and its delete without touching the
    /// saga, so the task and saga changes are checked before the audit append and the COMMIT.
    async fn apply_in_transaction(&self, transition: &Transition) -> Result<TransitionOutcome> {
        let saga = &transition.saga;
        let columns = task_columns(&transition.new_tasks)?;
        let consumed = transition.consumed_task.as_ref();
        // BEGIN, the task and saga changes, the audit append (two statements), COMMIT.
        let mut tx = self.pool.begin().await?;
        let (deleted, updated): (i64, i64) =
            bind_transition(sqlx::query_as(APPLY_TRANSITION), transition, &columns)?
                .fetch_one(&mut *tx)
                .await?;
        if consumed.is_some() && deleted == 0 {
            tx.rollback().await?;
            return Ok(TransitionOutcome::StaleTask);
        }
        if updated == 0 {
            tx.rollback().await?;
            return Ok(TransitionOutcome::Conflict);
        }
        let AuditAppend::Written(appended) = self
            .append_audit(
                &mut tx,
                &saga.saga_id,
                &transition.audit,
                saga.updated_at_ms,
            )
            .await?
        else {
            tx.rollback().await?;
            return Ok(TransitionOutcome::Conflict);
        };
        tx.commit().await.map_err(Error::from_commit)?;
        self.announce_audit(&saga.saga_id, appended);
        Ok(TransitionOutcome::Stored)
    }

    /// After the commit of a transition's audit events: tell the stream's subscriptions.
    fn announce_audit(&self, saga_id: &str, appended: Option<AppendResult>) {
        if let Some(appended) = appended {
            self.announce(&audit_stream(saga_id), appended.last_position);
        }
    }
}

#[async_trait]
impl SagaStore for PostgresStore {
    #[tracing::instrument(level = "debug", name = "store.sagas.insert_saga", skip_all, fields(db.system = "postgresql", saga_id = %saga.saga_id))]
    async fn insert_saga(
        &self,
        saga: &Saga,
        tasks: &[SagaTask],
        audit: &[NewEvent],
    ) -> Result<Saga> {
        let (ids, services, visible, docs) = task_columns(tasks)?;
        let audit_columns = AuditColumns::new(&saga.saga_id, audit)?;
        let (inserted, last_position): (i64, Option<i64>) = audit_columns
            .bind(
                sqlx::query_as(INSERT_SAGA)
                    .bind(&saga.saga_id)
                    .bind(&saga.name)
                    .bind(saga.state.as_str())
                    .bind(&saga.idempotency_key)
                    .bind(to_i64(saga.revision)?)
                    .bind(to_doc(saga)?)
                    .bind(saga.created_at_ms)
                    .bind(saga.updated_at_ms)
                    .bind(&ids)
                    .bind(&services)
                    .bind(&visible)
                    .bind(&docs),
                saga.created_at_ms,
                self,
            )
            .fetch_one(&self.pool)
            .await
            .map_err(Error::from_commit)?;
        if inserted == 0 {
            let doc: String =
                sqlx::query_scalar("SELECT doc::text FROM syros_sagas WHERE idempotency_key = $1")
                    .bind(&saga.idempotency_key)
                    .fetch_one(&self.pool)
                    .await?;
            return saga_from_doc(&doc);
        }
        audit_columns.announce(self, last_position);
        Ok(saga.clone())
    }

    #[tracing::instrument(level = "debug", name = "store.sagas.get_saga", skip_all, fields(db.system = "postgresql", saga_id = %saga_id))]
    async fn get_saga(&self, saga_id: &str) -> Result<Option<Saga>> {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc::text FROM syros_sagas WHERE saga_id = $1")
                .bind(saga_id)
                .fetch_optional(&self.pool)
                .await?;
        doc.as_deref().map(saga_from_doc).transpose()
    }

    async fn list_sagas(&self, query: &SagaQuery) -> Result<Vec<Saga>> {
        let (after_ms, after_id) = match &query.after {
            Some(cursor) => (Some(cursor.created_at_ms), Some(cursor.saga_id.as_str())),
            None => (None, None),
        };
        // COLLATE "C": byte order, the same in the cursor comparison and the ORDER BY whatever
        // the database's collation.
        let docs: Vec<String> = sqlx::query_scalar(
            r#"SELECT doc::text FROM syros_sagas
             WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR name = $2)
               AND ($3::bigint IS NULL OR created_at_ms < $3
                    OR (created_at_ms = $3 AND saga_id COLLATE "C" < $4::text))
             ORDER BY created_at_ms DESC, saga_id COLLATE "C" DESC LIMIT $5"#,
        )
        .bind(query.state.map(|s| s.as_str()))
        .bind(&query.name)
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        docs.iter().map(|d| saga_from_doc(d)).collect()
    }

    #[tracing::instrument(level = "debug", name = "store.sagas.apply", skip_all, fields(db.system = "postgresql", saga_id = %transition.saga.saga_id))]
    async fn apply(&self, transition: &Transition) -> Result<TransitionOutcome> {
        if transition
            .consumed_task
            .as_ref()
            .is_some_and(|c| c.unclaimed_only)
        {
            return self.apply_in_transaction(transition).await;
        }
        let saga = &transition.saga;
        let columns = task_columns(&transition.new_tasks)?;
        let consumed = transition.consumed_task.as_ref();
        let audit = AuditColumns::new(&saga.saga_id, &transition.audit)?;
        // One round trip: the statement is its own transaction (see APPLY_CLAIMED_TRANSITION).
        // `unclaimed_only` is false here: those transitions went to `apply_in_transaction`.
        let (updated, deleted, task_existed, last_position): (i64, i64, bool, Option<i64>) = audit
            .bind(
                bind_transition(
                    sqlx::query_as(APPLY_CLAIMED_TRANSITION),
                    transition,
                    &columns,
                )?,
                saga.updated_at_ms,
                self,
            )
            .fetch_one(&self.pool)
            .await
            .map_err(Error::from_commit)?;
        if updated == 0 {
            return Ok(if consumed.is_some() && !task_existed {
                TransitionOutcome::StaleTask
            } else {
                TransitionOutcome::Conflict
            });
        }
        if consumed.is_some() && deleted == 0 {
            // Not possible while every deleter of a claimed task updates its saga (see the
            // statement); said loudly if that ever changes.
            tracing::error!(saga_id = %saga.saga_id, "a saga transition was stored but its consumed task was already gone");
        }
        audit.announce(self, last_position);
        Ok(TransitionOutcome::Stored)
    }

    async fn claim_with_sagas(
        &self,
        service: &str,
        worker_id: &str,
        max_held: usize,
        now_ms: i64,
    ) -> Result<Vec<(SagaTask, Saga)>> {
        // One round trip: the room left (max_held minus what the worker holds), the claim (SKIP
        // LOCKED: replicas claiming for the same service never block on each other) and each
        // task's saga document.
        let rows = sqlx::query(
            "WITH claimed AS (
                 UPDATE syros_saga_tasks SET worker_id = $1,
                     deadline_ms = $2 + (doc->>'timeout_ms')::bigint
                 WHERE task_id IN (
                     SELECT task_id FROM syros_saga_tasks
                     WHERE service = $3 AND worker_id IS NULL AND visible_at_ms <= $2
                     ORDER BY visible_at_ms
                     LIMIT GREATEST(0, $4 - (SELECT COUNT(*) FROM syros_saga_tasks WHERE worker_id = $1))
                     FOR UPDATE SKIP LOCKED)
                 RETURNING task_id, saga_id, doc, worker_id, deadline_ms, visible_at_ms)
             SELECT c.task_id, c.doc::text AS doc, c.worker_id, c.deadline_ms, c.visible_at_ms,
                 s.doc::text AS saga_doc
             FROM claimed c LEFT JOIN syros_sagas s ON s.saga_id = c.saga_id
             ORDER BY c.visible_at_ms",
        )
        .bind(worker_id)
        .bind(now_ms)
        .bind(service)
        .bind(i64::try_from(max_held).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| task_with_saga(row, task_from_row))
            .collect()
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<SagaTask>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM syros_saga_tasks WHERE task_id = $1"
        ))
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    async fn get_task_with_saga(&self, task_id: &str) -> Result<Option<(SagaTask, Saga)>> {
        let row = sqlx::query(
            "SELECT t.task_id, t.doc::text AS doc, t.worker_id, t.deadline_ms, t.visible_at_ms,
                 s.doc::text AS saga_doc
             FROM syros_saga_tasks t LEFT JOIN syros_sagas s ON s.saga_id = t.saga_id
             WHERE t.task_id = $1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|row| task_with_saga(row, task_from_row))
            .transpose()
    }

    async fn expired_tasks(&self, now_ms: i64, limit: usize) -> Result<Vec<SagaTask>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM syros_saga_tasks
             WHERE worker_id IS NOT NULL AND deadline_ms < $1 ORDER BY deadline_ms LIMIT $2"
        ))
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn next_visible(&self, service: &str) -> Result<Option<i64>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(visible_at_ms) FROM syros_saga_tasks WHERE service = $1 AND worker_id IS NULL",
        )
        .bind(service)
        .fetch_one(&self.pool)
        .await?;
        Ok(at)
    }

    async fn unclaimed_task(&self, saga_id: &str) -> Result<Option<SagaTask>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM syros_saga_tasks WHERE saga_id = $1 AND worker_id IS NULL LIMIT 1"
        ))
        .bind(saga_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }
}
