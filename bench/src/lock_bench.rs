//! Lock cycle benchmark: acquire (TTL 10 s) + release.
//!
//! Measured in one run, on this machine:
//! - **redis crate (direct)**: `SET key token NX PX 10000` + a Lua compare-and-delete release
//!   (`EVALSHA`), over one multiplexed connection — the peer;
//! - **syros embedded**: `syros-client` → `syros serve` on its embedded SQLite store;
//! - **syros on redis**: `syros-client` → `syros serve` with `REDIS_URL` (same Redis as the peer).
//!
//! For each: sequential latency p50/p99 and cycles/s from one task, then cycles/s with 64
//! concurrent tasks on distinct keys; then the ratios against the peer, with the targets from
//! DESIGN.md. Not a test: it only reports.
//!
//! ```text
//! cargo build --release -p syros-server -p syros-bench
//! SYROS_BIN=target/release/syros taskset -c 0 target/release/lock_bench
//! ```
//!
//! Environment: `SYROS_BIN` (required), `REDIS_URL` (default: start a private `redis-server`),
//! `BENCH_SECONDS` per measurement window (default 3), `BENCH_CONCURRENCY` (default 64).
//! Servers are pinned to CPU 1 with `taskset` when it exists; pin this process to CPU 0.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use syros_client::{Client, ClientOptions};

type Cycle =
    Arc<dyn Fn(String, u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

const RELEASE_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
else
  return 0
end
"#;

/// A child process (redis-server or syros serve) killed on drop.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether servers can be pinned to CPU 1 (this process may itself be pinned to CPU 0, so the
/// parallelism it sees says nothing).
fn has_taskset() -> bool {
    Command::new("taskset")
        .args(["-c", "1", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program args...`, pinned to CPU 1 when possible.
fn pinned(program: &Path, pin: bool) -> Command {
    if pin {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg("1").arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn wait_port(port: u16, proc: &mut Proc) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if let Some(status) = proc.child.try_wait()? {
            bail!("{} exited with {status} before listening", proc.name);
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not listen on {port} within 60 s", proc.name)
}

fn start_redis(dir: &Path, pin: bool) -> Result<(Proc, String)> {
    let port = free_port()?;
    let child = pinned(Path::new("redis-server"), pin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start redis-server (install it, or set REDIS_URL)")?;
    let mut proc = Proc {
        child,
        name: "redis-server",
    };
    wait_port(port, &mut proc)?;
    Ok((proc, format!("redis://127.0.0.1:{port}")))
}

fn start_syros(bin: &Path, dir: &Path, redis: Option<&str>, pin: bool) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let mut cmd = pinned(bin, pin);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SERVER_HOST", "127.0.0.1")
        .env("GRPC_PORT", port.to_string())
        .env("REST_PORT", free_port()?.to_string())
        .env("WS_PORT", free_port()?.to_string())
        .env("SYROS_DATA_DIR", dir)
        .env("LOG_LEVEL", "warn")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = redis {
        cmd.env("REDIS_URL", url)
            .env("SYROS_NAMESPACE", format!("bench{}", std::process::id()));
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let mut proc = Proc {
        child,
        name: "syros serve",
    };
    wait_port(port, &mut proc)?;
    Ok((proc, port))
}

struct Sequential {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

async fn sequential(window: Duration, cycle: &Cycle, label: &str) -> Result<Sequential> {
    let key = format!("bench/{label}/seq");
    for i in 0..300 {
        cycle(key.clone(), i).await?;
    }
    let mut latencies = Vec::with_capacity(100_000);
    let started = Instant::now();
    let mut i = 1_000_000u64;
    while started.elapsed() < window {
        let t = Instant::now();
        cycle(key.clone(), i).await?;
        latencies.push(t.elapsed());
        i += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    Ok(Sequential {
        p50: at(0.50),
        p99: at(0.99),
        per_sec: latencies.len() as f64 / elapsed,
    })
}

async fn concurrent(window: Duration, tasks: usize, cycle: &Cycle, label: &str) -> Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (count, stop, cycle) = (count.clone(), stop.clone(), cycle.clone());
        let key = format!("bench/{label}/c{task}");
        handles.push(tokio::spawn(async move {
            let mut i = (task as u64) << 32;
            while !stop.load(Ordering::Relaxed) {
                cycle(key.clone(), i).await?;
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // warm-up
    let (c0, t0) = (count.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, t1) = (count.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await??;
    }
    Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
}

async fn redis_cycle(url: &str) -> Result<Cycle> {
    let client = redis::Client::open(url)?;
    let conn = client.get_multiplexed_async_connection().await?;
    let script = Arc::new(redis::Script::new(RELEASE_LUA));
    Ok(Arc::new(move |key: String, token: u64| {
        let mut conn = conn.clone();
        let script = script.clone();
        Box::pin(async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query_async(&mut conn)
                .await?;
            if set.is_none() {
                bail!("{key} was not free");
            }
            let released: i64 = script.key(&key).arg(token).invoke_async(&mut conn).await?;
            if released != 1 {
                bail!("{key} was not released");
            }
            Ok(())
        })
    }))
}

async fn syros_cycle(port: u16) -> Result<Cycle> {
    let client = Client::connect(ClientOptions::new([format!("127.0.0.1:{port}")])).await?;
    Ok(Arc::new(move |key: String, _token: u64| {
        let client = client.clone();
        Box::pin(async move {
            let lease = client
                .lock(key)
                .ttl(Duration::from_secs(10))
                .wait(Duration::ZERO)
                .acquire()
                .await?;
            lease.release().await?;
            Ok(())
        })
    }))
}

/// The same cycle with the generated Volo client alone (no retries, renewal or lease handle):
/// isolates what the client core adds.
fn raw_cycle(port: u16) -> Cycle {
    raw_cycle_over(port, 1)
}

/// [`raw_cycle`] spread round-robin over `connections` separate Volo clients (one HTTP/2
/// connection each): shows whether one connection is the limit.
fn raw_cycle_over(port: u16, connections: usize) -> Cycle {
    use syros_proto::syros::v1 as pb;
    let clients: Vec<_> = (0..connections.max(1))
        .map(|_| {
            pb::LockServiceClientBuilder::new("syros")
                .address(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                .build()
        })
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move |key: String, _token: u64| {
        let turn = next.fetch_add(1, Ordering::Relaxed) as usize;
        let client = clients[turn % clients.len()].clone();
        Box::pin(async move {
            let lease = client
                .acquire(pb::AcquireLockRequest {
                    key: key.into(),
                    owner: "bench".into(),
                    ttl_ms: 10_000,
                    wait_timeout_ms: 0,
                    request_id: Default::default(),
                })
                .await?
                .into_inner()
                .lease
                .context("not acquired")?;
            client
                .release(pb::ReleaseLockRequest {
                    lease_id: lease.lease_id,
                })
                .await?;
            Ok(())
        })
    })
}

struct Row {
    name: &'static str,
    seq: Sequential,
    conc: f64,
}

async fn measure(name: &'static str, cycle: Cycle, window: Duration, tasks: usize) -> Result<Row> {
    let seq = sequential(window, &cycle, name).await?;
    let conc = concurrent(window, tasks, &cycle, name).await?;
    eprintln!("  measured {name}");
    Ok(Row { name, seq, conc })
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = PathBuf::from(
        std::env::var_os("SYROS_BIN")
            .context("set SYROS_BIN to a (release) syros binary, e.g. target/release/syros")?,
    );
    let window = Duration::from_secs_f64(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    let tasks: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let pin = has_taskset();
    let dir = tempfile::tempdir()?;

    let (_redis, redis_url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let (proc, url) = start_redis(dir.path(), pin)?;
            (Some(proc), url)
        }
    };
    let embedded_dir = dir.path().join("embedded");
    let redis_dir = dir.path().join("on-redis");
    std::fs::create_dir_all(&embedded_dir)?;
    std::fs::create_dir_all(&redis_dir)?;
    let (_embedded, embedded_port) = start_syros(&bin, &embedded_dir, None, pin)?;
    let (_on_redis, redis_port) = start_syros(&bin, &redis_dir, Some(&redis_url), pin)?;

    eprintln!(
        "lock cycle = acquire (TTL 10 s) + release; {:.1} s windows; {tasks} concurrent tasks; servers {}",
        window.as_secs_f64(),
        if pin { "pinned to CPU 1" } else { "not pinned (no taskset)" }
    );
    let peer = measure(
        "redis crate (direct)",
        redis_cycle(&redis_url).await?,
        window,
        tasks,
    )
    .await?;
    let embedded = measure(
        "syros embedded",
        syros_cycle(embedded_port).await?,
        window,
        tasks,
    )
    .await?;
    let on_redis = measure(
        "syros on redis",
        syros_cycle(redis_port).await?,
        window,
        tasks,
    )
    .await?;
    let raw = measure("volo only, on redis", raw_cycle(redis_port), window, tasks).await?;
    let raw8 = measure(
        "volo, 8 connections, on redis",
        raw_cycle_over(redis_port, 8),
        window,
        tasks,
    )
    .await?;

    println!(
        "{:<22} {:>10} {:>10} {:>14} {:>18}",
        "",
        "seq p50",
        "seq p99",
        "seq cycles/s",
        format!("{tasks} tasks cycles/s")
    );
    for row in [&peer, &embedded, &on_redis, &raw, &raw8] {
        println!(
            "{:<22} {:>10} {:>10} {:>14.0} {:>18.0}",
            row.name,
            micros(row.seq.p50),
            micros(row.seq.p99),
            row.seq.per_sec,
            row.conc
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("ratios against the redis crate, same run (DESIGN.md targets):");
    println!(
        "  p50 syros on redis / redis   = {:.2}x  (target <= 2.0)",
        ratio(on_redis.seq.p50, peer.seq.p50)
    );
    println!(
        "  {tasks} tasks syros on redis / redis = {:.2}x  (target >= 0.6)",
        on_redis.conc / peer.conc.max(1e-9)
    );
    println!(
        "  p50 syros embedded / redis   = {:.2}x  (target <= 1.0)",
        ratio(embedded.seq.p50, peer.seq.p50)
    );
    println!(
        "  {tasks} tasks syros embedded / redis = {:.2}x",
        embedded.conc / peer.conc.max(1e-9)
    );
    println!(
        "  client core overhead: p50 syros on redis / volo only = {:.2}x",
        ratio(on_redis.seq.p50, raw.seq.p50)
    );
    Ok(())
}
