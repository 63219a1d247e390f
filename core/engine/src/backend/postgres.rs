//! PostgreSQL backend for events and fencing epochs (production).
//!
//! Appends are serialised by updating one counter row first in each append transaction, so global
//! positions are gap-free and commit in order: a reader that sees position N has seen every
//! position below N. Each append also `pg_notify`s the new head; every replica LISTENs and wakes
//! its subscriptions, which then read from the table (so a lost notification costs latency, not
//! events).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::*;
use crate::store::*;

/// Events and epochs in PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
    channel: String,
    head_tx: watch::Sender<u64>,
    /// Dropped with the store, which ends the LISTEN task.
    _stop: watch::Sender<()>,
}

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
        tokio::spawn(listen_heads(
            pool.clone(),
            channel.clone(),
            head_tx.clone(),
            stop_rx,
        ));
        Ok(PostgresStore {
            pool,
            channel,
            head_tx,
            _stop: stop,
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

    fn advance_head(&self, position: u64) {
        self.head_tx.send_if_modified(|head| {
            let newer = position > *head;
            if newer {
                *head = position;
            }
            newer
        });
    }
}

/// LISTEN for appends made through any replica and move the head forward. After a reconnect the
/// head is re-read and every subscription woken, since notifications may have been missed.
async fn listen_heads(
    pool: PgPool,
    channel: String,
    head_tx: watch::Sender<u64>,
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
            head_tx.send_modify(|_| {});
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        if let Ok(position) = notification.payload().parse::<u64>() {
                            head_tx.send_if_modified(|head| {
                                let newer = position > *head;
                                if newer {
                                    *head = position;
                                }
                                newer
                            });
                        }
                    }
                    // The connection was lost; sqlx reconnects on the next call, but we may have
                    // missed notifications meanwhile.
                    Ok(None) => head_tx.send_modify(|_| {}),
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

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &str,
        events: &[NewEvent],
        expected: ExpectedVersion,
        now_ms: i64,
    ) -> Result<AppendResult> {
        let count = i64::try_from(events.len()).map_err(|_| Error::invalid("too many events"))?;
        let mut tx = self.pool.begin().await?;
        // Taking the position row first serialises appends (see the module docs).
        let last_position: i64 = sqlx::query_scalar(
            "UPDATE syros_meta SET value = value + $1 WHERE name = 'event_position' RETURNING value",
        )
        .bind(count)
        .fetch_one(&mut *tx)
        .await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT last_version FROM syros_streams WHERE stream = $1")
                .bind(stream)
                .fetch_optional(&mut *tx)
                .await?;
        let current = current.map(to_u64);
        crate::events::check_expected(stream, expected, current)?;
        let first_version = current.map_or(0, |v| v + 1);
        let first_position = last_position - count + 1;
        let positions: Vec<i64> = (first_position..=last_position).collect();
        let versions: Vec<i64> = (0..count)
            .map(|i| to_i64(first_version).map(|v| v + i))
            .collect::<Result<_>>()?;
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        let metadata: Vec<Option<&str>> = events.iter().map(|e| e.metadata.as_deref()).collect();
        sqlx::query(
            "INSERT INTO syros_events (position, stream, version, event_id, event_type, data, metadata, created_at_ms)
             SELECT p, $2, v, i, t, d::json, m::json, $8
             FROM UNNEST($1::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
               AS batch(p, v, i, t, d, m)",
        )
        .bind(&positions)
        .bind(stream)
        .bind(&versions)
        .bind(&ids)
        .bind(&types)
        .bind(&data)
        .bind(&metadata)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let last_version = first_version + events.len() as u64 - 1;
        sqlx::query(
            "INSERT INTO syros_streams (stream, last_version) VALUES ($1, $2)
             ON CONFLICT (stream) DO UPDATE SET last_version = EXCLUDED.last_version",
        )
        .bind(stream)
        .bind(to_i64(last_version)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(last_position.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.advance_head(to_u64(last_position));
        Ok(AppendResult {
            last_version,
            first_position: to_u64(first_position),
            last_position: to_u64(last_position),
        })
    }

    async fn read_stream(&self, query: &StreamQuery) -> Result<StreamSlice> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_version FROM syros_streams WHERE stream = $1")
                .bind(&query.stream)
                .fetch_optional(&self.pool)
                .await?;
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

    async fn read_all(&self, query: &AllQuery) -> Result<AllSlice> {
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
}
