//! Event append throughput (issue 19's goal: Syros's batched appends on PostgreSQL ≥ 0.7× raw
//! PostgreSQL INSERTs of the same rows, measured in the same run).
//!
//! Starts a private `redis-server` and PostgreSQL (`DATABASE_URL` / `REDIS_URL` use existing ones
//! instead) and two `syros serve` (events on that PostgreSQL; everything embedded), all pinned to
//! CPU 0 when `taskset` works, then for each batch size N measures events/s of:
//! - `raw_pg`: sqlx, one transaction per batch holding one multi-row `INSERT ... SELECT FROM
//!   UNNEST` of N rows into `raw_events`, a table created `LIKE` the event store's
//!   `syros_events` (same columns, keys and indexes), with positions and versions counted here;
//! - `syros_pg`: appends of N events through the client core (`Client::events().append`) to the
//!   server on PostgreSQL, and the statements PostgreSQL ran per append (`pg_stat_statements`);
//! - `syros_embedded`: the same against the embedded store, for reference;
//!
//! in two shapes: `streams` (`BENCH_CONC` tasks, each appending to its own stream with an exact
//! expected version) and `hot` (all of them on one stream, expected version any). Prints one line
//! per shape and N with the ratio syros_pg / raw_pg. Not a test: it only reports.
//!
//! ```text
//! cargo build --release -p syros-server -p syros-bench
//! SYROS_BIN=target/release/syros taskset -c 1 target/release/events_bench
//! ```
//!
//! Knobs: `BENCH_SECONDS` (2 per measurement), `BENCH_CONC` (16, the server's default PostgreSQL
//! pool size), `BENCH_BATCHES` (`1,10,100`), `BENCH_STATEMENTS=1` (print each statement's calls
//! per append). `events_bench load ADDR APPENDS BATCH CONC` sends a fixed number of appends to a
//! running server (for callgrind).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::postgres::{PgPool, PgPoolOptions};
use syros_bench::{has_taskset, start_postgres, start_redis, start_syros_on, Proc};
use syros_client::{Client, ClientOptions, EventData, ExpectedVersion};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One event of the bench: an id (as the client core would make), a type and ~90 bytes of JSON.
struct Row {
    id: String,
    event_type: &'static str,
    data: String,
}

fn rows(n: usize, seq: u64) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: "Deposited",
            data: format!(
                r#"{{"account":"acc-{seq}","amount":{i},"note":"an event of the events bench"}}"#
            ),
        })
        .collect()
}

/// How a workload spreads its appends.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Each task appends to its own stream.
    Streams,
    /// Every task appends to one stream.
    Hot,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Streams => "streams",
            Shape::Hot => "hot",
        }
    }
}

/// What one measurement ends on.
#[derive(Clone, Copy)]
enum Until {
    Elapsed(Duration),
    /// This many batches over all tasks.
    Batches(u64),
}

/// Runs `conc` tasks, each calling `append(task, seq)` (which returns the events it stored)
/// until `until`; returns events/s and the number of batches.
async fn run<F, Fut>(conc: usize, until: Until, append: F) -> Result<(f64, u64)>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<usize>> + Send,
{
    let append = Arc::new(append);
    let (events, batches) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..conc {
        let (append, events, batches) = (append.clone(), events.clone(), batches.clone());
        tasks.push(tokio::spawn(async move {
            for seq in 0.. {
                match until {
                    Until::Elapsed(window) if began.elapsed() >= window => break,
                    Until::Batches(total) if batches.fetch_add(1, Ordering::SeqCst) >= total => {
                        break
                    }
                    _ => {}
                }
                let stored = append(task, seq).await?;
                events.fetch_add(stored as u64, Ordering::SeqCst);
                if let Until::Elapsed(_) = until {
                    batches.fetch_add(1, Ordering::SeqCst);
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let batches = match until {
        Until::Elapsed(_) => batches.load(Ordering::SeqCst),
        Until::Batches(total) => total,
    };
    Ok((events.load(Ordering::SeqCst) as f64 / elapsed, batches))
}

/// Appends through the client core; `tag` keeps stream names apart between measurements.
async fn syros_appends(
    client: &Client,
    shape: Shape,
    batch: usize,
    conc: usize,
    until: Until,
    tag: &str,
) -> Result<(f64, u64)> {
    let events = client.events();
    let tag = tag.to_string();
    let versions: Arc<Vec<AtomicI64>> = Arc::new((0..conc).map(|_| AtomicI64::new(-1)).collect());
    run(conc, until, move |task, seq| {
        let (events, versions) = (events.clone(), versions.clone());
        let stream = match shape {
            Shape::Streams => format!("{tag}-{task}"),
            Shape::Hot => format!("{tag}-hot"),
        };
        async move {
            let expected = match shape {
                Shape::Hot => ExpectedVersion::Any,
                Shape::Streams => match versions[task].load(Ordering::SeqCst) {
                    -1 => ExpectedVersion::NoStream,
                    v => ExpectedVersion::Exact(v as u64),
                },
            };
            let batch: Vec<EventData> = rows(batch, seq)
                .into_iter()
                .map(|r| EventData::new(r.event_type, r.data).with_id(r.id))
                .collect();
            let n = batch.len();
            let result = events.append(&stream, batch, expected).await?;
            versions[task].store(result.last_version as i64, Ordering::SeqCst);
            Ok(n)
        }
    })
    .await
}

/// Raw sqlx: one transaction per batch with one multi-row INSERT, positions and versions counted
/// here (no version check, no position row, no notification).
async fn raw_inserts(
    pool: &PgPool,
    shape: Shape,
    batch: usize,
    conc: usize,
    until: Until,
    tag: &str,
    positions: Arc<AtomicI64>,
) -> Result<(f64, u64)> {
    let (pool, tag) = (pool.clone(), tag.to_string());
    let versions: Arc<Vec<AtomicI64>> = Arc::new((0..conc).map(|_| AtomicI64::new(0)).collect());
    run(conc, until, move |task, seq| {
        let (pool, positions, versions) = (pool.clone(), positions.clone(), versions.clone());
        let (stream, version_slot) = match shape {
            Shape::Streams => (format!("{tag}-{task}"), task),
            Shape::Hot => (format!("{tag}-hot"), 0),
        };
        async move {
            let rows = rows(batch, seq);
            let n = rows.len() as i64;
            let first = positions.fetch_add(n, Ordering::SeqCst) + 1;
            let first_version = versions[version_slot].fetch_add(n, Ordering::SeqCst);
            let position: Vec<i64> = (first..first + n).collect();
            let version: Vec<i64> = (first_version..first_version + n).collect();
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            let types: Vec<&str> = rows.iter().map(|r| r.event_type).collect();
            let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
            let metadata: Vec<Option<&str>> = vec![None; rows.len()];
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO raw_events (position, stream, version, event_id, event_type, data, metadata, created_at_ms)
                 SELECT p, $2, v, i, t, d::json, m::json, $8
                 FROM UNNEST($1::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
                   AS batch(p, v, i, t, d, m)",
            )
            .bind(&position)
            .bind(&stream)
            .bind(&version)
            .bind(&ids)
            .bind(&types)
            .bind(&data)
            .bind(&metadata)
            .bind(0i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(rows.len())
        }
    })
    .await
}

/// Statements PostgreSQL ran since the last reset (ours excluded): query text, calls and total
/// execution time in ms.
async fn statements(pool: &PgPool) -> Result<Vec<(String, i64, f64)>> {
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT query, calls, total_exec_time FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%pg_stat_statements%'
         ORDER BY calls DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

async fn load(args: &[String]) -> Result<()> {
    let [addr, appends, batch, conc] = args else {
        bail!("usage: events_bench load ADDR APPENDS BATCH CONC");
    };
    let (appends, batch, conc): (u64, usize, usize) =
        (appends.parse()?, batch.parse()?, conc.parse()?);
    let client = Client::connect(ClientOptions::new([addr.clone()])).await?;
    let tag = format!("load-{:x}-{}", std::process::id(), uuid::Uuid::new_v4());
    let (rate, batches) = syros_appends(
        &client,
        Shape::Streams,
        batch,
        conc,
        Until::Batches(appends),
        &tag,
    )
    .await?;
    println!("load: {batches} appends of {batch} events, {rate:.0} events/s");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("load") {
        return load(&args[1..]).await;
    }
    let window = Duration::from_secs(env_u64("BENCH_SECONDS", 2));
    let conc = env_u64("BENCH_CONC", 16) as usize;
    let batches: Vec<usize> = std::env::var("BENCH_BATCHES")
        .unwrap_or_else(|_| "1,10,100".into())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .context("BENCH_BATCHES: sizes separated by commas")
        })
        .collect::<Result<_>>()?;
    let show_statements = std::env::var("BENCH_STATEMENTS").is_ok_and(|v| v == "1");
    let bin = PathBuf::from(
        std::env::var_os("SYROS_BIN").context("set SYROS_BIN to a (release) syros binary")?,
    );
    let pin = has_taskset();
    let dir = tempfile::tempdir()?;
    let mut servers: Vec<Proc> = Vec::new();
    let redis = match std::env::var("REDIS_URL") {
        Ok(url) => url,
        Err(_) => {
            let (proc, url) = start_redis(dir.path(), pin)?;
            servers.push(proc);
            url
        }
    };
    let pg_dir = tempfile::tempdir()?;
    let postgres = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let (proc, url) = start_postgres(pg_dir.path(), pin)?;
            servers.push(proc);
            url
        }
    };
    let pg_data = tempfile::tempdir()?;
    let (pg_server, pg_port) =
        start_syros_on(&bin, pg_data.path(), Some(&redis), Some(&postgres), pin)?;
    let embedded_data = tempfile::tempdir()?;
    let (embedded_server, embedded_port) =
        start_syros_on(&bin, embedded_data.path(), None, None, pin)?;
    let pg_client = Client::connect(ClientOptions::new([format!("127.0.0.1:{pg_port}")])).await?;
    let embedded_client =
        Client::connect(ClientOptions::new([format!("127.0.0.1:{embedded_port}")])).await?;

    let pool = PgPoolOptions::new()
        .max_connections(conc as u32 + 1)
        .connect(&postgres)
        .await?;
    // The server names its schema after its namespace (`start_syros_on`).
    let schema = format!("bench{}", std::process::id());
    sqlx::query("DROP TABLE IF EXISTS raw_events")
        .execute(&pool)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE raw_events (LIKE {schema}.syros_events INCLUDING ALL)"
    ))
    .execute(&pool)
    .await?;
    let counting = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&pool)
        .await
        .is_ok();
    let positions = Arc::new(AtomicI64::new(0));

    println!(
        "events_bench: {conc} tasks, {} s per measurement, servers {}",
        window.as_secs(),
        if pin { "on CPU 0" } else { "unpinned" }
    );
    let until = Until::Elapsed(window);
    for shape in [Shape::Streams, Shape::Hot] {
        for &batch in &batches {
            let tag = format!("{}-{batch}-{:x}", shape.name(), std::process::id());
            let (raw, _) =
                raw_inserts(&pool, shape, batch, conc, until, &tag, positions.clone()).await?;
            if counting {
                sqlx::query("SELECT pg_stat_statements_reset()")
                    .execute(&pool)
                    .await?;
            }
            let (pg, appends) = syros_appends(&pg_client, shape, batch, conc, until, &tag).await?;
            let counted = if counting {
                statements(&pool).await?
            } else {
                Vec::new()
            };
            let (embedded, _) =
                syros_appends(&embedded_client, shape, batch, conc, until, &tag).await?;
            let per_append = counted.iter().map(|(_, calls, _)| *calls).sum::<i64>() as f64
                / appends.max(1) as f64;
            println!(
                "{:<7} batch={batch:<3} raw_pg={raw:>8.0} ev/s  syros_pg={pg:>8.0} ev/s  syros_pg/raw_pg={:.2} (goal >= 0.7)  syros_embedded={embedded:>8.0} ev/s  pg_statements_per_append={}",
                shape.name(),
                pg / raw,
                if counting { format!("{per_append:.1}") } else { "n/a".into() },
            );
            if show_statements {
                for (query, calls, ms) in &counted {
                    let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
                    println!(
                        "    {:>6.2} per append, {:>7.1} µs each: {}",
                        *calls as f64 / appends.max(1) as f64,
                        ms * 1000.0 / (*calls).max(1) as f64,
                        query.chars().take(110).collect::<String>()
                    );
                }
            }
        }
    }
    pool.close().await;
    drop((pg_client, embedded_client));
    drop((pg_server, embedded_server));
    drop(servers);
    Ok(())
}
