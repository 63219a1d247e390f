//! Group commit of event appends on PostgreSQL.
//!
//! Every append of a store goes through one task. The appends that queue while a group is being
//! written form the next group: one statement reads the versions of all their streams (and the
//! ids an idempotent repeat would find), the checks run here, and one statement (its own
//! transaction) writes every append that passed: it moves each stream's row from the version
//! read to its new one, takes the global position row once for the whole group, inserts all the
//! events with consecutive positions in queue order and notifies once per stream. So under
//! concurrency one position-row update and one commit serve many appends, instead of every
//! append queueing on that row, and appends to one hot stream follow each other in the group
//! (their versions chained here) instead of queueing on the stream's row lock.
//!
//! Each append stays all-or-nothing with its own expected-version check and idempotency: a
//! failed check or a repeat is answered alone and takes no part in the write; a stream whose row
//! changed since the read (another replica appended to it) is left out of the write by its guard
//! and its appends are answered [`Grouped::Raced`], for the caller to redo with the stream's row
//! lock (`PostgresStore::append_locked`). A connection lost during the write is
//! `outcome_unknown` for every append of the group, as a lost COMMIT is.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{advance, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::events::{check_expected, replay_fixed_start, replay_start, replayed};
use crate::model::*;
use crate::store::Appended;

/// Most appends written in one group.
pub(super) const MAX_GROUP: usize = 64;

/// An append waiting for the group-commit task, with where its answer goes.
pub(super) struct QueuedAppend {
    pub stream: String,
    pub events: Vec<NewEvent>,
    pub expected: ExpectedVersion,
    pub now_ms: i64,
    pub reply: oneshot::Sender<Result<Grouped>>,
}

/// How a grouped append ended.
pub(super) enum Grouped {
    /// Committed (or an earlier attempt of it had been: its result again).
    Appended(AppendResult),
    /// Another writer changed the stream between the group's read and its write: nothing of this
    /// append was written.
    Raced,
}

/// What the group task needs of its store.
pub(super) struct GroupWriter {
    pub pool: PgPool,
    pub channel: String,
    pub origin: String,
    pub head_tx: watch::Sender<u64>,
    pub appended_tx: broadcast::Sender<Appended>,
}

/// The versions of the group's streams and, per append, the id stored where a repeat of it
/// would start (see `events::replay_start`): one row per append whose stream exists.
const GROUP_READ: &str = "SELECT q.ord, s.last_version,
        (SELECT e.event_id FROM syros_events e
          WHERE e.stream = s.stream AND e.version = COALESCE(q.fixed, s.last_version - q.count + 1))
    FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS q(stream, fixed, count, ord)
    JOIN syros_streams s ON s.stream = q.stream";

/// The group's write, one statement and so one transaction. `planned` has one row per stream
/// (sorted, so every group takes stream row locks in one order), moved from `prior` (`NULL`: the
/// stream must not exist yet) to its new last version; a stream whose row is not at `prior` any
/// more is left unchanged (the guard) and its events are not inserted. Locks are taken stream
/// rows first, then the position row (its update needs the count of the guarded events), as the
/// single-append write does, so the two cannot deadlock. Returns each written stream with the
/// group's last position.
const GROUP_WRITE: &str = "WITH planned AS (
        SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS p(stream, last_version, prior)
    ), stream_rows AS (
        INSERT INTO syros_streams AS s (stream, last_version)
        SELECT stream, last_version FROM planned ORDER BY stream
        ON CONFLICT (stream) DO UPDATE SET last_version = EXCLUDED.last_version
        WHERE s.last_version = (SELECT p.prior FROM planned p WHERE p.stream = s.stream)
        RETURNING s.stream
    ), written AS (
        SELECT b.*, row_number() OVER (ORDER BY b.n) AS k
        FROM UNNEST($4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[])
            WITH ORDINALITY AS b(stream, version, i, t, d, m, at, n)
        WHERE b.stream IN (SELECT stream FROM stream_rows)
    ), head AS (
        UPDATE syros_meta SET value = value + (SELECT count(*) FROM written)
        WHERE name = 'event_position' AND EXISTS (SELECT 1 FROM stream_rows)
        RETURNING value, value - (SELECT count(*) FROM written) AS base
    ), stored AS (
        INSERT INTO syros_events (position, stream, version, event_id, event_type, data, metadata, created_at_ms)
        SELECT head.base + w.k, w.stream, w.version, w.i, w.t, w.d::json, w.m::json, w.at
        FROM head, written w
    )
    SELECT r.stream, head.value, pg_notify($11, head.value::text || ' ' || $12 || ' ' || r.stream)
    FROM stream_rows r, head";

/// Group commit of appends: every append queued while the previous group was written goes into
/// the next one (up to [`MAX_GROUP`]). Ends when the store (the queue's sender) is dropped.
pub(super) async fn group_commit(
    writer: GroupWriter,
    mut queue: mpsc::UnboundedReceiver<QueuedAppend>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut deferred = Vec::new();
    loop {
        // Appends put off by the last group go first, so a stream's appends keep their order.
        group.append(&mut deferred);
        if group.is_empty() {
            if queue.recv_many(&mut group, MAX_GROUP).await == 0 {
                return;
            }
        } else {
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(append) => group.push(append),
                    Err(_) => break,
                }
            }
        }
        deferred = writer.commit(std::mem::take(&mut group)).await;
    }
}

/// An append that passed its checks, placed in the group's write.
struct Planned {
    append: QueuedAppend,
    first_version: u64,
    last_version: u64,
}

/// One stream of a group: its version as read, the version its planned appends reach, and the
/// ids they carry.
struct StreamPlan {
    read: Option<u64>,
    current: Option<u64>,
    ids: HashSet<String>,
}

impl GroupWriter {
    /// Write one group; the appends to put off to the next one.
    async fn commit(&self, group: Vec<QueuedAppend>) -> Vec<QueuedAppend> {
        match self.try_commit(group).await {
            Ok(deferred) => deferred,
            Err((err, unanswered)) => {
                for append in unanswered {
                    let _ = append.reply.send(Err(err.clone()));
                }
                Vec::new()
            }
        }
    }

    /// [`Self::commit`]; on an error, the appends not answered yet, to answer with it.
    async fn try_commit(
        &self,
        group: Vec<QueuedAppend>,
    ) -> std::result::Result<Vec<QueuedAppend>, (Error, Vec<QueuedAppend>)> {
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(err) => return Err((err.into(), group)),
        };
        let reads = match read_group(&mut conn, &group).await {
            Ok(reads) => reads,
            Err(err) => return Err((err, group)),
        };
        let mut streams: HashMap<String, StreamPlan> = HashMap::new();
        let mut planned: Vec<Planned> = Vec::with_capacity(group.len());
        let mut deferred = Vec::new();
        let mut group = group.into_iter().enumerate();
        while let Some((index, append)) = group.next() {
            let (read, first_id) = reads[index].clone();
            let plan = streams
                .entry(append.stream.clone())
                .or_insert_with(|| StreamPlan {
                    read,
                    current: read,
                    ids: HashSet::new(),
                });
            // The same append queued twice (a retry while the first attempt still waits): the
            // repeat is recognised by the next group, which reads the first one's events.
            if append.events.iter().any(|e| plan.ids.contains(&e.event_id)) {
                deferred.push(append);
                continue;
            }
            // Repeats are recognised against the stream as read (an earlier attempt committed
            // before this group), as a lone append would.
            let replay = match replay_start(
                append.expected,
                plan.read,
                first_id.as_deref(),
                &append.events,
            ) {
                Some(start) => match stored_from(&mut conn, &append, start).await {
                    Ok(stored) => replayed(&append.events, &stored),
                    Err(err) => {
                        let mut unanswered = vec![append];
                        unanswered.extend(planned.into_iter().map(|p| p.append));
                        unanswered.extend(group.map(|(_, a)| a));
                        unanswered.extend(deferred);
                        return Err((err, unanswered));
                    }
                },
                None => None,
            };
            if let Some(again) = replay {
                let _ = append.reply.send(Ok(Grouped::Appended(again)));
                continue;
            }
            if let Err(err) = check_expected(&append.stream, append.expected, plan.current) {
                let _ = append.reply.send(Err(err));
                continue;
            }
            let first_version = plan.current.map_or(0, |v| v + 1);
            let last_version = first_version + append.events.len() as u64 - 1;
            plan.current = Some(last_version);
            plan.ids
                .extend(append.events.iter().map(|e| e.event_id.clone()));
            planned.push(Planned {
                append,
                first_version,
                last_version,
            });
        }
        if planned.is_empty() {
            return Ok(deferred);
        }
        match self.write(&mut conn, &streams, &planned).await {
            Ok(written) => self.answer(planned, &written),
            Err(err) => {
                for p in planned {
                    let _ = p.append.reply.send(Err(err.clone()));
                }
            }
        }
        Ok(deferred)
    }

    /// Run [`GROUP_WRITE`]: the written streams and the group's last position.
    async fn write(
        &self,
        conn: &mut sqlx::PgConnection,
        streams: &HashMap<String, StreamPlan>,
        planned: &[Planned],
    ) -> Result<Option<(HashSet<String>, u64)>> {
        let mut moved: Vec<(&str, i64, Option<i64>)> = Vec::new();
        for (stream, plan) in streams {
            if let Some(last) = plan.current.filter(|&last| Some(last) != plan.read) {
                moved.push((stream, to_i64(last)?, plan.read.map(to_i64).transpose()?));
            }
        }
        moved.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let rows: usize = planned.iter().map(|p| p.append.events.len()).sum();
        let mut stream = Vec::with_capacity(rows);
        let mut version = Vec::with_capacity(rows);
        let mut ids = Vec::with_capacity(rows);
        let mut types = Vec::with_capacity(rows);
        let mut data = Vec::with_capacity(rows);
        let mut metadata = Vec::with_capacity(rows);
        let mut created = Vec::with_capacity(rows);
        for p in planned {
            for (offset, event) in (0..).zip(&p.append.events) {
                stream.push(p.append.stream.as_str());
                version.push(to_i64(p.first_version + offset)?);
                ids.push(event.event_id.as_str());
                types.push(event.event_type.as_str());
                data.push(event.data.as_str());
                metadata.push(event.metadata.as_deref());
                created.push(p.append.now_ms);
            }
        }
        let written: Vec<(String, i64)> = sqlx::query_as(GROUP_WRITE)
            .bind(moved.iter().map(|m| m.0).collect::<Vec<_>>())
            .bind(moved.iter().map(|m| m.1).collect::<Vec<_>>())
            .bind(moved.iter().map(|m| m.2).collect::<Vec<_>>())
            .bind(&stream)
            .bind(&version)
            .bind(&ids)
            .bind(&types)
            .bind(&data)
            .bind(&metadata)
            .bind(&created)
            .bind(&self.channel)
            .bind(&self.origin)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::from_commit)?;
        let head = written.first().map(|(_, head)| to_u64(*head));
        Ok(head.map(|head| (written.into_iter().map(|(s, _)| s).collect(), head)))
    }

    /// Answer the planned appends once the write committed: positions in queue order, ending at
    /// the group's last position; the appends of a stream the guard left out raced.
    fn answer(&self, planned: Vec<Planned>, written: &Option<(HashSet<String>, u64)>) {
        let Some((streams, head)) = written else {
            for p in planned {
                let _ = p.append.reply.send(Ok(Grouped::Raced));
            }
            return;
        };
        let count: u64 = planned
            .iter()
            .filter(|p| streams.contains(&p.append.stream))
            .map(|p| p.append.events.len() as u64)
            .sum();
        advance(&self.head_tx, *head);
        for stream in streams {
            let _ = self
                .appended_tx
                .send(Appended::Stream(stream.as_str().into()));
        }
        let mut next = head + 1 - count;
        for p in planned {
            if !streams.contains(&p.append.stream) {
                let _ = p.append.reply.send(Ok(Grouped::Raced));
                continue;
            }
            let len = p.append.events.len() as u64;
            let result = AppendResult {
                last_version: p.last_version,
                first_position: next,
                last_position: next + len - 1,
            };
            next += len;
            let _ = p.append.reply.send(Ok(Grouped::Appended(result)));
        }
    }
}

/// Run [`GROUP_READ`]: per append of the group, its stream's version and the id a repeat of it
/// would find.
async fn read_group(
    conn: &mut sqlx::PgConnection,
    group: &[QueuedAppend],
) -> Result<Vec<(Option<u64>, Option<String>)>> {
    let mut streams = Vec::with_capacity(group.len());
    let mut fixed = Vec::with_capacity(group.len());
    let mut counts = Vec::with_capacity(group.len());
    for append in group {
        streams.push(append.stream.as_str());
        fixed.push(
            replay_fixed_start(append.expected)
                .map(to_i64)
                .transpose()?,
        );
        counts.push(
            i64::try_from(append.events.len()).map_err(|_| Error::invalid("too many events"))?,
        );
    }
    let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(GROUP_READ)
        .bind(&streams)
        .bind(&fixed)
        .bind(&counts)
        .fetch_all(&mut *conn)
        .await?;
    let mut reads = vec![(None, None); group.len()];
    for (ord, last, id) in rows {
        if let Some(read) = usize::try_from(ord - 1).ok().and_then(|i| reads.get_mut(i)) {
            *read = (Some(to_u64(last)), id);
        }
    }
    Ok(reads)
}

/// The stored `(version, position, event_id)` rows from `start` where a repeat of `append` would
/// find its events.
async fn stored_from(
    conn: &mut sqlx::PgConnection,
    append: &QueuedAppend,
    start: u64,
) -> Result<Vec<(i64, i64, String)>> {
    let count =
        i64::try_from(append.events.len()).map_err(|_| Error::invalid("too many events"))?;
    Ok(sqlx::query_as(
        "SELECT version, position, event_id FROM syros_events
         WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3",
    )
    .bind(&append.stream)
    .bind(to_i64(start)?)
    .bind(count)
    .fetch_all(&mut *conn)
    .await?)
}
