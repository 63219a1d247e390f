//! Saga throughput: the workload of issue 19 and of the peers harness's Temporal bench. A saga =
//! step `debit`, then step `credit`; every 5th credit fails non-retryably, so `debit` is
//! compensated by `refund`. Handlers only return. `BENCH_N` sagas (default 1000) from
//! `BENCH_CONC` starters (default 32), each starting one saga and waiting for its end before the
//! next, after `BENCH_WARMUP` (64) uncounted ones; one worker (`BENCH_WORKER_CONC`, default 64,
//! tasks at once) in this process. Against a `syros serve` on its embedded store that this bench
//! starts (pinned to CPU 0 when `taskset` works), or `SYROS_ADDR` if set. Prints sagas/s, p50/p99
//! and the server's RSS (current and peak) after the run. Not a test: it only reports.
//!
//! ```text
//! cargo build --release -p syros-server -p syros-bench
//! SYROS_BIN=target/release/syros taskset -c 1 target/release/saga_bench
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use syros_bench::{has_taskset, start_syros};
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

#[tokio::main]
async fn main() -> Result<()> {
    let (n, conc, warmup) = (
        env_u64("BENCH_N", 1000),
        env_u64("BENCH_CONC", 32),
        env_u64("BENCH_WARMUP", 64),
    );
    let dir = tempfile::tempdir()?;
    let (server, addr) = match std::env::var("SYROS_ADDR") {
        Ok(addr) => (None, addr),
        Err(_) => {
            let bin = PathBuf::from(
                std::env::var_os("SYROS_BIN")
                    .context("set SYROS_BIN to a (release) syros binary, or SYROS_ADDR")?,
            );
            let (proc, port) = start_syros(&bin, dir.path(), None, has_taskset())?;
            (Some(proc), format!("127.0.0.1:{port}"))
        }
    };
    let client = Client::connect(ClientOptions::new([addr])).await?;
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
    let rss = server
        .as_ref()
        .and_then(|s| rss_mb(s.id()))
        .map(|(now, peak)| format!(" server_rss_mb={now:.0} server_peak_rss_mb={peak:.0}"))
        .unwrap_or_default();
    println!(
        "saga2: sagas_per_s={:.1} p50_ms={:.1} p99_ms={:.1} compensated={compensated}{rss} (goal: >= 420/s, p50 <= 30 ms, RSS <= 60 MB)",
        all.len() as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99),
    );
    Ok(())
}
