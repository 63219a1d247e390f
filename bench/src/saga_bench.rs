//! Saga throughput: the workload of issue 19 and of the peers harness's Temporal bench. A saga =
//! step `debit`, then step `credit`; every 5th credit fails non-retryably, so `debit` is
//! compensated by `refund`. Handlers only return. `BENCH_N` sagas (default 1000) from
//! `BENCH_CONC` starters (default 32), each starting one saga and waiting for its end before the
//! next, after `BENCH_WARMUP` (64) uncounted ones; one worker (`BENCH_WORKER_CONC`, default 64,
//! tasks at once) in this process. Prints sagas/s, p50/p99 and the server's RSS (current and
//! peak) after the run, with the ratios to issue 19's goals. Not a test: it only reports.
//!
//! Modes, each against a `syros serve` this bench starts (pinned to CPU 0 when `taskset` works):
//! - `embedded`: the embedded SQLite store (always);
//! - `postgres`: sagas and events in PostgreSQL, locks and cache in Redis, when `DATABASE_URL` (or
//!   `SYROS_TEST_DATABASE_URL`, as `scripts/lib/services.sh`'s `start_postgres` exports) names a
//!   PostgreSQL database; Redis from `REDIS_URL` / `SYROS_TEST_REDIS_URL`, else a private
//!   `redis-server`.
//!
//! `SYROS_ADDR` instead measures one server that is already running.
//!
//! ```text
//! cargo build --release -p syros-server -p syros-bench
//! source scripts/lib/services.sh; start_postgres
//! SYROS_BIN=target/release/syros taskset -c 1 target/release/saga_bench
//! stop_services
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use syros_bench::{has_taskset, start_redis, start_syros_on, Proc};
use syros_client::{Client, ClientOptions, SagaState, StartSaga, StepDefinition, TaskFailure};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MB.
fn rss_mb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Where the measured server's storage is.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Embedded,
    Postgres,
}

/// The goals of issue 19 for a mode: (sagas/s, p50 ms); RSS <= 60 MB for both.
fn goals(mode: Mode) -> (f64, Option<f64>) {
    match mode {
        Mode::Embedded => (420.0, Some(30.0)),
        Mode::Postgres => (1000.0, None),
    }
}

fn env_url(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

#[tokio::main]
async fn main() -> Result<()> {
    if let Ok(addr) = std::env::var("SYROS_ADDR") {
        return measure("server", Mode::Embedded, &addr, None).await;
    }
    let bin = PathBuf::from(
        std::env::var_os("SYROS_BIN")
            .context("set SYROS_BIN to a (release) syros binary, or SYROS_ADDR")?,
    );
    let pin = has_taskset();
    {
        let dir = tempfile::tempdir()?;
        let (server, port) = start_syros_on(&bin, dir.path(), None, None, pin)?;
        measure(
            "embedded",
            Mode::Embedded,
            &format!("127.0.0.1:{port}"),
            Some(&server),
        )
        .await?;
    }
    match env_url(&["DATABASE_URL", "SYROS_TEST_DATABASE_URL"]) {
        Some(database_url) => {
            let dir = tempfile::tempdir()?;
            let (_redis, redis_url) = match env_url(&["REDIS_URL", "SYROS_TEST_REDIS_URL"]) {
                Some(url) => (None, url),
                None => {
                    let (proc, url) = start_redis(dir.path(), pin)?;
                    (Some(proc), url)
                }
            };
            let (server, port) =
                start_syros_on(&bin, dir.path(), Some(&redis_url), Some(&database_url), pin)?;
            measure(
                "postgres",
                Mode::Postgres,
                &format!("127.0.0.1:{port}"),
                Some(&server),
            )
            .await?;
        }
        None => println!(
            "postgres: skipped (set DATABASE_URL or SYROS_TEST_DATABASE_URL to a PostgreSQL database)"
        ),
    }
    Ok(())
}

/// Run the workload against `addr` and print one line for `label`.
async fn measure(label: &str, mode: Mode, addr: &str, server: Option<&Proc>) -> Result<()> {
    let (n, conc, warmup) = (
        env_u64("BENCH_N", 1000),
        env_u64("BENCH_CONC", 32),
        env_u64("BENCH_WARMUP", 64),
    );
    let client = Client::connect(ClientOptions::new([addr.to_string()])).await?;
    let service = format!("bank-{:x}", std::process::id());
    let credits = Arc::new(AtomicU64::new(0));
    let counted = credits.clone();
    let worker = client
        .worker(service.clone())
        .max_concurrent(env_u64("BENCH_WORKER_CONC", 64) as usize)
        .handler("debit", |_task| async { Ok("{}".to_string()) })
        .handler("credit", move |_task| {
            let k = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if k % 5 == 4 {
                    Err(TaskFailure::fatal("declined", "every 5th credit fails"))
                } else {
                    Ok("{}".to_string())
                }
            }
        })
        .handler("refund", |_task| async { Ok("{}".to_string()) })
        .start()?;
    let started = Arc::new(AtomicU64::new(0));
    let measured_from = Arc::new(Mutex::new(None::<Instant>));
    let mut starters = Vec::new();
    for _ in 0..conc {
        let (client, service) = (client.clone(), service.clone());
        let (started, measured_from) = (started.clone(), measured_from.clone());
        starters.push(tokio::spawn(async move {
            let sagas = client.sagas();
            let (mut latencies, mut compensated) = (Vec::new(), 0u64);
            loop {
                let i = started.fetch_add(1, Ordering::SeqCst);
                if i >= warmup + n {
                    break;
                }
                if i == warmup {
                    *measured_from.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                }
                let began = Instant::now();
                let saga = sagas
                    .start(StartSaga {
                        name: "transfer".into(),
                        steps: vec![
                            StepDefinition::new("debit", service.clone(), "debit")
                                .compensation("refund"),
                            StepDefinition::new("credit", service.clone(), "credit"),
                        ],
                        input_json: "{\"amount\":1}".into(),
                        idempotency_key: None,
                        retry: None,
                    })
                    .await?;
                let done = sagas.wait(&saga.saga_id, Duration::from_secs(60)).await?;
                if i >= warmup {
                    latencies.push(began.elapsed());
                    match done.state {
                        SagaState::Compensated => compensated += 1,
                        SagaState::Completed => {}
                        other => bail!("saga ended {other:?}"),
                    }
                }
            }
            anyhow::Ok((latencies, compensated))
        }));
    }
    let (mut all, mut compensated) = (Vec::new(), 0);
    for starter in starters {
        let (latencies, c) = starter.await??;
        all.extend(latencies);
        compensated += c;
    }
    let elapsed = measured_from
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .context("nothing measured")?
        .elapsed();
    worker.stop().await;
    all.sort();
    let at =
        |q: f64| all[((q * all.len() as f64) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    let rss = server.and_then(|s| rss_mb(s.id()));
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    let (p50, p99) = (at(0.5), at(0.99));
    let (rate_goal, p50_goal) = goals(mode);
    let mut line = format!(
        "saga2 {label}: sagas_per_s={rate:.1} p50_ms={p50:.1} p99_ms={p99:.1} compensated={compensated}"
    );
    if let Some((now, peak)) = rss {
        line += &format!(" server_rss_mb={now:.0} server_peak_rss_mb={peak:.0}");
    }
    line += &format!(
        " | rate/goal={:.2} (goal >= {rate_goal}/s)",
        rate / rate_goal
    );
    if let Some(goal) = p50_goal {
        line += &format!(" p50/goal={:.2} (goal <= {goal} ms)", p50 / goal);
    }
    if let Some((_, peak)) = rss {
        line += &format!(" peak_rss/goal={:.2} (goal <= 60 MB)", peak / 60.0);
    }
    println!("{line}");
    Ok(())
}
