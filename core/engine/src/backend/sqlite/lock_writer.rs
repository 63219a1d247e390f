//! The embedded store's lock writer: one OS thread owning its own connection to the database
//! file (rusqlite) that commits lock writes (acquire, release, renew, force release) and event
//! appends in groups.
//!
//! Why a thread of its own rather than sqlx: sqlx hands every statement to its connection's
//! worker thread and the answer back (futex wake-ups and context switches per statement, the
//! server's kernel time at c32; docs/performance.md). Here a whole group runs on the thread
//! that owns the connection: one wake-up to start a group, one per answer, whatever the number
//! of statements. The lock statements are prepared once for the thread's life
//! ([`LockStatements`]); a grant and a release run without RETURNING, and the fencing counter
//! is read and stored once per transaction ([`FencingCounter`]).
//!
//! The store's other writes (sagas, cache, API keys) stay on the sqlx writer connection; SQLite
//! lets one connection write at a time and the busy timeout on both makes the other wait.

use std::path::Path;

use rusqlite::{params, Connection, ErrorCode, Row, Statement};
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::{not_held, to_i64, to_u64, EventAnnounce, BUSY_TIMEOUT};
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::*;

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 64;

/// A write waiting for the lock writer (a lock write or an event append), with where its
/// answer goes.
pub(super) enum LockWrite {
    Acquire {
        request: LeaseRequest,
        now_ms: i64,
        reply: oneshot::Sender<Result<TryAcquire>>,
    },
    Release {
        lease_id: String,
        now_ms: i64,
        reply: oneshot::Sender<Result<Lease>>,
    },
    Renew {
        lease_id: String,
        expires_at_ms: i64,
        now_ms: i64,
        reply: oneshot::Sender<Result<Lease>>,
    },
    ForceRelease {
        key: String,
        now_ms: i64,
        reply: oneshot::Sender<Result<Option<Lease>>>,
    },
    Append {
        stream: String,
        events: Vec<NewEvent>,
        expected: ExpectedVersion,
        now_ms: i64,
        reply: oneshot::Sender<Result<AppendResult>>,
    },
}

/// A write done inside the group's transaction, answered once the commit is known.
enum LockWritten {
    Acquire(Result<TryAcquire>, oneshot::Sender<Result<TryAcquire>>),
    Lease(Result<Lease>, oneshot::Sender<Result<Lease>>),
    ForceRelease(
        Result<Option<Lease>>,
        oneshot::Sender<Result<Option<Lease>>>,
    ),
    Append(
        Result<AppendResult>,
        String,
        oneshot::Sender<Result<AppendResult>>,
    ),
}

impl LockWrite {
    /// Whether the write is one statement, so alone it needs no transaction. A grant reads and
    /// moves the fencing counter and a release reads the lease before deleting it: both need
    /// the transaction's write lock.
    fn is_one_statement(&self) -> bool {
        matches!(
            self,
            LockWrite::Renew { .. } | LockWrite::ForceRelease { .. }
        )
    }

    /// Run the write inside the group's transaction (or alone, when
    /// [`is_one_statement`](Self::is_one_statement)); `grouped`: with other writes, so an
    /// append is wrapped in a savepoint (all or nothing whatever happens to the others).
    fn run(
        self,
        statements: &mut LockStatements<'_>,
        grouped: bool,
        fencing: &mut FencingCounter,
    ) -> LockWritten {
        let conn = statements.conn;
        match self {
            LockWrite::Acquire {
                request,
                now_ms,
                reply,
            } => LockWritten::Acquire(acquire_on(statements, &request, now_ms, fencing), reply),
            LockWrite::Release {
                lease_id,
                now_ms,
                reply,
            } => LockWritten::Lease(release_on(statements, &lease_id, now_ms), reply),
            LockWrite::Renew {
                lease_id,
                expires_at_ms,
                now_ms,
                reply,
            } => LockWritten::Lease(renew_on(conn, &lease_id, expires_at_ms, now_ms), reply),
            LockWrite::ForceRelease { key, now_ms, reply } => {
                LockWritten::ForceRelease(force_release_on(conn, &key, now_ms), reply)
            }
            LockWrite::Append {
                stream,
                events,
                expected,
                now_ms,
                reply,
            } => {
                let result = if grouped {
                    append_in_savepoint(conn, &stream, &events, expected, now_ms)
                } else {
                    append_on(conn, &stream, &events, expected, now_ms)
                };
                LockWritten::Append(result, stream, reply)
            }
        }
    }

    fn fail(self, err: Error) {
        match self {
            LockWrite::Acquire { reply, .. } => drop(reply.send(Err(err))),
            LockWrite::Release { reply, .. } | LockWrite::Renew { reply, .. } => {
                drop(reply.send(Err(err)))
            }
            LockWrite::ForceRelease { reply, .. } => drop(reply.send(Err(err))),
            LockWrite::Append { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

impl LockWritten {
    /// Answer with the write's own result (the transaction committed) or with `failed`; a
    /// committed append moves the event head and tells its stream's subscriptions first.
    fn answer(self, failed: Option<&Error>, events: &EventAnnounce) {
        match self {
            LockWritten::Acquire(result, reply) => {
                drop(reply.send(failed.map_or(result, |err| Err(err.clone()))))
            }
            LockWritten::Lease(result, reply) => {
                drop(reply.send(failed.map_or(result, |err| Err(err.clone()))))
            }
            LockWritten::ForceRelease(result, reply) => {
                drop(reply.send(failed.map_or(result, |err| Err(err.clone()))))
            }
            LockWritten::Append(result, stream, reply) => {
                let result = failed.map_or(result, |err| Err(err.clone()));
                if let Ok(appended) = &result {
                    events.announce(&stream, appended);
                }
                drop(reply.send(result))
            }
        }
    }
}

/// Open the lock writer's connection to the database at `path` (already created and migrated
/// by the sqlx writer, in WAL mode) and start its thread. The thread ends when every sender of
/// the returned queue is dropped (the store is dropped).
pub(super) fn start(
    path: &Path,
    events: EventAnnounce,
) -> Result<mpsc::UnboundedSender<LockWrite>> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The same durability as the sqlx connections (see the module docs of `sqlite`).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(32);
    // Prepared here once to report a bad schema at open; the thread prepares its own.
    drop(LockStatements::prepare(&conn)?);
    let (queue_tx, mut queue) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("syros-sqlite-lock-writer".into())
        .spawn(move || match LockStatements::prepare(&conn) {
            Ok(mut statements) => commit_groups(&mut statements, queue, &events),
            Err(err) => {
                while let Some(write) = queue.blocking_recv() {
                    write.fail(err.clone());
                }
            }
        })
        .map_err(|err| Error::internal(format!("cannot start the SQLite lock writer: {err}")))?;
    Ok(queue_tx)
}

/// Group commit: every write queued while the previous group was being written goes into the
/// next transaction (up to [`MAX_GROUP`]), so under concurrency one commit (WAL frames,
/// checksums, index) serves many writes instead of one each. A lone one-statement write runs
/// as its own statement (no BEGIN/COMMIT). Answers are sent only after the commit.
fn commit_groups(
    statements: &mut LockStatements<'_>,
    mut queue: mpsc::UnboundedReceiver<LockWrite>,
    events: &EventAnnounce,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = queue.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(write) => group.push(write),
                Err(_) => break,
            }
        }
        commit_group(statements, &mut group, events);
    }
}

/// Write and commit `group` (left empty), then answer each write.
fn commit_group(
    statements: &mut LockStatements<'_>,
    group: &mut Vec<LockWrite>,
    events: &EventAnnounce,
) {
    let mut fencing = FencingCounter::default();
    if group.len() == 1 && group[0].is_one_statement() {
        if let Some(write) = group.pop() {
            write
                .run(statements, false, &mut fencing)
                .answer(None, events);
        }
        return;
    }
    let grouped = group.len() > 1;
    if let Err(err) = run_statement(&mut statements.begin) {
        group.drain(..).for_each(|write| write.fail(err.clone()));
        return;
    }
    let written: Vec<LockWritten> = group
        .drain(..)
        .map(|write| write.run(statements, grouped, &mut fencing))
        .collect();
    let failed = fencing
        .store(&mut statements.store_fencing)
        .and_then(|()| run_statement(&mut statements.commit))
        .err()
        .inspect(|_| {
            let _ = execute(statements.conn, "ROLLBACK");
        });
    written
        .into_iter()
        .for_each(|write| write.answer(failed.as_ref(), events));
}

/// Run one statement that returns no rows, prepared once per connection.
fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Run a prepared statement without parameters that returns no rows.
fn run_statement(statement: &mut Statement<'_>) -> Result<()> {
    statement.execute([])?;
    Ok(())
}

/// The statements of the lock writes and of the group's transaction, prepared once for the
/// thread's life: used through `prepare_cached`, each use looked its SQL text up in rusqlite's
/// statement cache and handed the statement back to it (~8k instructions per c32 cycle,
/// callgrind). A statement is reset after each use, so none keeps a read transaction open.
struct LockStatements<'c> {
    conn: &'c Connection,
    begin: Statement<'c>,
    commit: Statement<'c>,
    read_fencing: Statement<'c>,
    store_fencing: Statement<'c>,
    grant: Statement<'c>,
    holder: Statement<'c>,
    lease_by_id: Statement<'c>,
    delete_by_key: Statement<'c>,
}

impl<'c> LockStatements<'c> {
    fn prepare(conn: &'c Connection) -> Result<Self> {
        Ok(LockStatements {
            conn,
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            read_fencing: conn.prepare(READ_FENCING)?,
            store_fencing: conn.prepare(STORE_FENCING)?,
            grant: conn.prepare(GRANT)?,
            holder: conn.prepare(HOLDER)?,
            lease_by_id: conn.prepare(LEASE_BY_ID)?,
            delete_by_key: conn.prepare(DELETE_BY_KEY)?,
        })
    }
}

/// The first row of a statement (prepared once per connection) read with `read`, if any.
///
/// The statement is stepped to its end rather than reset after the first row: only a
/// statement that ends (`SQLITE_DONE`) runs SQLite's WAL hook after an autocommit write, the
/// automatic checkpoint; a lone `INSERT ... RETURNING` reset after its row commits without it,
/// and the WAL then grows without bound (its index slower at every frame).
fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    first_row(&mut statement, params, read)
}

/// [`query_one`] on a statement prepared by the caller.
fn first_row<T>(
    statement: &mut Statement<'_>,
    params: impl rusqlite::Params,
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    let mut rows = statement.query(params)?;
    let first = rows.next()?.map(read).transpose()?;
    while rows.next()?.is_some() {}
    Ok(first)
}

/// Run `write` on the connection of a sqlx transaction (a saga transition's, which appends its
/// audit events with [`append_on`]), on this thread: while the handle is locked, sqlx's worker
/// thread makes no call on it.
pub(super) async fn on_sqlx_connection<T>(
    conn: &mut SqliteConnection,
    write: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let mut locked = conn.lock_handle().await?;
    // SAFETY: `locked` keeps sqlx's worker off the handle until it drops; the rusqlite wrapper
    // does not close a handle it did not open, and it is dropped (finalizing the statements it
    // prepared) before `locked` is.
    let borrowed = unsafe { Connection::from_handle(locked.as_raw_handle().as_ptr()) }?;
    let result = write(&borrowed);
    drop(borrowed);
    drop(locked);
    result
}

/// The fencing counter of one write transaction: read from `meta` at the transaction's first
/// grant, handed out in memory, written back once before the COMMIT ([`store`](Self::store)).
/// The transaction holds SQLite's write lock from the read to the commit, so no other
/// connection (the sqlx writer, another process on the same file) moves the counter meanwhile,
/// and tokens stay strictly increasing across groups, restarts (the boot epoch raises the
/// stored counter) and processes. One counter write per group instead of one per grant (the
/// trigger of migration 0004, dropped by 0011).
#[derive(Default)]
struct FencingCounter {
    /// (the value read from `meta`, the last token handed out), once read.
    read_and_last: Option<(i64, i64)>,
}

impl FencingCounter {
    /// The token the next grant gets (not yet taken: see [`taken`](Self::taken)).
    fn next(&mut self, read_fencing: &mut Statement<'_>) -> Result<i64> {
        let (_, last) = match self.read_and_last {
            Some(counter) => counter,
            None => {
                let stored: i64 = first_row(read_fencing, [], |row| row.get(0))?
                    .ok_or_else(|| Error::internal("the fencing counter is missing from meta"))?;
                *self.read_and_last.insert((stored, stored))
            }
        };
        last.checked_add(1)
            .ok_or_else(|| Error::internal("the fencing counter overflowed"))
    }

    /// `token` (from [`next`](Self::next)) was handed out.
    fn taken(&mut self, token: i64) {
        if let Some((_, last)) = &mut self.read_and_last {
            *last = token;
        }
    }

    /// Write the last token handed out back to `meta`, if any was (inside the transaction).
    fn store(&self, store_fencing: &mut Statement<'_>) -> Result<()> {
        match self.read_and_last {
            Some((read, last)) if last != read => {
                store_fencing.execute([last])?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

const READ_FENCING: &str = "SELECT value FROM meta WHERE name = 'fencing_token'";
const STORE_FENCING: &str = "UPDATE meta SET value = ?1 WHERE name = 'fencing_token'";
/// No RETURNING (SQLite buffers RETURNING rows in an ephemeral table, a b-tree and pager
/// opened and closed per statement): the token is known beforehand and the change count says
/// whether the key was granted.
const GRANT: &str =
    "INSERT INTO locks (key, lease_id, owner, fencing_token, acquired_at_ms, expires_at_ms, request_id)
     VALUES (?1, ?2, ?3, ?7, ?4, ?5, ?6)
     ON CONFLICT (key) DO UPDATE SET lease_id = excluded.lease_id, owner = excluded.owner,
       fencing_token = excluded.fencing_token, acquired_at_ms = excluded.acquired_at_ms,
       expires_at_ms = excluded.expires_at_ms, request_id = excluded.request_id
     WHERE locks.expires_at_ms <= ?4";
const HOLDER: &str = concat!(
    "SELECT ",
    lease_columns!(),
    ", request_id FROM locks WHERE key = ? AND expires_at_ms > ?"
);
/// A release reads the lease ([`LEASE_BY_ID`]) and deletes it by key, in the transaction,
/// rather than `DELETE ... RETURNING` (an ephemeral table per statement).
const LEASE_BY_ID: &str = concat!(
    "SELECT ",
    lease_columns!(),
    " FROM locks WHERE lease_id = ? AND expires_at_ms > ?"
);
const DELETE_BY_KEY: &str = "DELETE FROM locks WHERE key = ?";
const RENEW: &str = concat!(
    "UPDATE locks SET expires_at_ms = ? WHERE lease_id = ? AND expires_at_ms > ? RETURNING ",
    lease_columns!()
);
const FORCE_RELEASE: &str = concat!(
    "DELETE FROM locks WHERE key = ? AND expires_at_ms > ? RETURNING ",
    lease_columns!()
);

/// Grant `request.key` if it has no unexpired holder, inside the group's transaction. Usually
/// one statement: a single upsert that only replaces an expired lease, with the next token of
/// `fencing`. Only when the key is held does a second statement read the holder; if that holder
/// is gone by then, try again.
fn acquire_on(
    statements: &mut LockStatements<'_>,
    request: &LeaseRequest,
    now_ms: i64,
    fencing: &mut FencingCounter,
) -> Result<TryAcquire> {
    let expires_at_ms = now_ms.saturating_add(to_i64(request.ttl_ms)?);
    for _ in 0..5 {
        let lease_id = crate::backend::new_lease_id(request);
        let token = fencing.next(&mut statements.read_fencing)?;
        let granted = statements.grant.execute(params![
            request.key,
            lease_id,
            request.owner,
            now_ms,
            expires_at_ms,
            request.request_id,
            token
        ])? == 1;
        if granted {
            fencing.taken(token);
            return Ok(TryAcquire::Acquired(Lease {
                lease_id,
                key: request.key.clone(),
                owner: request.owner.clone(),
                fencing_token: to_u64(token),
                acquired_at_ms: now_ms,
                expires_at_ms,
            }));
        }
        let current = first_row(
            &mut statements.holder,
            params![request.key, now_ms],
            |row| {
                Ok((
                    lease_from(row)?,
                    row.get::<_, Option<String>>(6)?, // request_id, after the lease's columns
                ))
            },
        )?;
        if let Some((lease, holder_request)) = current {
            let same_request = request.request_id.is_some()
                && holder_request == request.request_id
                && lease.owner == request.owner;
            return Ok(if same_request {
                TryAcquire::Acquired(lease)
            } else {
                TryAcquire::Held(lease)
            });
        }
    }
    Err(Error::unavailable(format!(
        "lock {} kept changing hands; retry",
        request.key
    )))
}

/// Delete the lease if it is held and unexpired, inside the group's transaction; the deleted
/// lease.
fn release_on(statements: &mut LockStatements<'_>, lease_id: &str, now_ms: i64) -> Result<Lease> {
    let lease = first_row(
        &mut statements.lease_by_id,
        params![lease_id, now_ms],
        lease_from,
    )?
    .ok_or_else(|| not_held(lease_id))?;
    statements.delete_by_key.execute([&lease.key])?;
    Ok(lease)
}

/// Move an unexpired lease's expiry to `expires_at_ms`; the renewed lease.
fn renew_on(conn: &Connection, lease_id: &str, expires_at_ms: i64, now_ms: i64) -> Result<Lease> {
    query_one(
        conn,
        RENEW,
        params![expires_at_ms, lease_id, now_ms],
        lease_from,
    )?
    .ok_or_else(|| not_held(lease_id))
}

/// Delete the unexpired lease of `key`, whoever holds it; the deleted lease, if any.
fn force_release_on(conn: &Connection, key: &str, now_ms: i64) -> Result<Option<Lease>> {
    query_one(conn, FORCE_RELEASE, params![key, now_ms], lease_from)
}

/// [`append_on`] inside a savepoint, rolled back to if the append fails, so a failed append
/// leaves nothing in the group's transaction.
fn append_in_savepoint(
    conn: &Connection,
    stream: &str,
    events: &[NewEvent],
    expected: ExpectedVersion,
    now_ms: i64,
) -> Result<AppendResult> {
    execute(conn, "SAVEPOINT grouped_append")?;
    let result = append_on(conn, stream, events, expected, now_ms);
    if result.is_err() {
        execute(conn, "ROLLBACK TO grouped_append")?;
    }
    execute(conn, "RELEASE grouped_append")?;
    result
}

/// Append `events` to `stream` on `conn`, inside the caller's transaction (the group's, or a
/// saga transition's through [`on_sqlx_connection`]): read the stream's version, answer a repeat
/// or a version conflict, else insert the events and move the stream's row. The caller
/// announces the append once committed.
pub(super) fn append_on(
    conn: &Connection,
    stream: &str,
    events: &[NewEvent],
    expected: ExpectedVersion,
    now_ms: i64,
) -> Result<AppendResult> {
    let fixed_start = crate::events::replay_fixed_start(expected)
        .map(to_i64)
        .transpose()?;
    let count = i64::try_from(events.len()).map_err(|_| Error::invalid("too many events"))?;
    // The id stored where a repeat of this append would find its first event (see
    // `events::replay_start`), read with the version to cost no extra statement.
    let row: Option<(i64, Option<String>)> = query_one(conn, "SELECT s.last_version,
                    (SELECT e.event_id FROM events e
                      WHERE e.stream = s.stream AND e.version = COALESCE(?2, s.last_version - ?3 + 1))
             FROM streams s WHERE s.stream = ?1", params![stream, fixed_start, count], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let current = row.as_ref().map(|(v, _)| to_u64(*v));
    let first_id = row.and_then(|(_, id)| id);
    if let Some(start) = crate::events::replay_start(expected, current, first_id.as_deref(), events)
    {
        let stored: Vec<(i64, i64, String)> = conn
            .prepare_cached(
                "SELECT version, position, event_id FROM events
                 WHERE stream = ? AND version >= ? ORDER BY version LIMIT ?",
            )?
            .query_map(params![stream, to_i64(start)?, count], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if let Some(again) = crate::events::replayed(events, &stored) {
            return Ok(again);
        }
    }
    crate::events::check_expected(stream, expected, current)?;
    let mut version = current.map_or(0, |v| v + 1);
    let mut first_position = 0u64;
    let mut last_position = 0u64;
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (stream, version, event_id, event_type, data, metadata, created_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?;
    for event in events {
        insert.execute(params![
            stream,
            to_i64(version)?,
            event.event_id,
            event.event_type,
            event.data,
            event.metadata,
            now_ms
        ])?;
        let position = to_u64(conn.last_insert_rowid());
        if first_position == 0 {
            first_position = position;
        }
        last_position = position;
        version += 1;
    }
    let last_version = version - 1;
    conn.prepare_cached(
        "INSERT INTO streams (stream, last_version) VALUES (?, ?)
         ON CONFLICT (stream) DO UPDATE SET last_version = excluded.last_version",
    )?
    .execute(params![stream, to_i64(last_version)?])?;
    Ok(AppendResult {
        last_version,
        first_position,
        last_position,
    })
}

/// A lease from a row whose first columns are [`lease_columns!`], read by position (a name
/// lookup per column compared every column name of the statement).
fn lease_from(row: &Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        lease_id: row.get(0)?,
        key: row.get(1)?,
        owner: row.get(2)?,
        fencing_token: to_u64(row.get(3)?),
        acquired_at_ms: row.get(4)?,
        expires_at_ms: row.get(5)?,
    })
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        // Like sqlx's errors (`Error::from(sqlx::Error)`): a database that stayed locked past
        // the busy timeout is unavailable (retry), anything else is internal.
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Error::unavailable(format!("storage busy: {err}"))
            }
            _ => Error::internal(format!("storage error: {err}")),
        }
    }
}
