//! Lock cycle benchmark: acquire (TTL 10 s) + release, the table of issue 19 in one command.
//!
//! Measured in one run, on this machine:
//! - **redis crate (direct)**: `SET key token NX PX 10000` + a Lua compare-and-delete release
//!   (`EVALSHA`), over one multiplexed connection — the peer;
//! - **syros embedded**: `syros-client` → `syros serve` on its embedded SQLite store;
//! - **syros on redis**: `syros-client` → `syros serve` with `REDIS_URL` (same Redis as the peer);
//! - **volo only, on redis** (`BENCH_VOLO=1`): the generated Volo client alone, to isolate what
//!   the client core adds.
//!
//! Modes for each: `seq` (one task, one key: p50/p99 and cycles/s), `c32` (32 workers on distinct
//! keys: cycles/s) and, for Syros, `hot32` (32 workers on ONE key, each holding it 1 ms and waiting
//! as long as needed: cycles/s, min/max turns per worker, failed acquisitions, whether fencing
//! tokens were strictly increasing, overlapping holds). Then, for each row on Redis, what Redis
//! spent per cycle in each mode (`INFO cpu` and `INFO commandstats` deltas), and the ratios
//! against the redis crate measured in the same run. Not a test: it only reports.
//!
//! ```text
//! cargo build --release -p syros-server -p syros-bench
//! SYROS_BIN=target/release/syros taskset -c 1 target/release/lock_bench
//! ```
//!
//! `lock_bench ratios <peers results file>` prints the issue's goal ratios from one run of
//! `../shared/peers/run.sh` (whose syros peers come from this checkout): against redsync and the
//! redis-rs peer measured in that same run.
//!
//! `lock_bench load <addr> <cycles> <workers>` runs a fixed number of lock cycles against a
//! running server and exits: a bounded load for `valgrind --tool=callgrind` (docs/performance.md).
//!
//! Environment: `SYROS_BIN` (required), `REDIS_URL` (default: start a private `redis-server`),
//! `BENCH_SECONDS` per measurement window (default 3), `BENCH_CONCURRENCY` (default 32),
//! `BENCH_HOLD_MS` (hot hold, default 1), `BENCH_VOLO` (1: add the Volo-only row),
//! `BENCH_REPLICAS` (0: skip the `hot32` row across two replicas sharing the Redis),
//! `BENCH_WAIT_MS` (how long a `seq`/`c32` acquire may wait; default 10 000 as in the peers
//! harness, 0 = try once: a different server path).
//! Servers (and Redis) are pinned to CPU 0 with `taskset` when it exists, as in the peers
//! harness; pin this process to CPU 1.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use syros_bench::{has_taskset, start_redis, start_syros};
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

struct Sequential {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
    /// Cycles run, warm-up included (what the Redis probe divides by).
    cycles: u64,
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
    Ok(Sequential {
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        per_sec: latencies.len() as f64 / elapsed,
        cycles: 300 + latencies.len() as u64,
    })
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Cycles per second over the window, and cycles run in all (warm-up and drain included).
async fn concurrent(
    window: Duration,
    tasks: usize,
    cycle: &Cycle,
    label: &str,
) -> Result<(f64, u64)> {
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
    let rate = (c1 - c0) as f64 / (t1 - t0).as_secs_f64();
    Ok((rate, count.load(Ordering::Relaxed)))
}

/// hot32: `workers` tasks contend for one key through the Syros client, each holding it `hold`.
struct Hot {
    per_sec: f64,
    p50: Duration,
    turns_min: usize,
    turns_max: usize,
    failed: u64,
    /// Holds whose fencing token was not greater than the previous holder's (expect 0).
    token_violations: u64,
    /// Holds that began while another was in progress (expect 0).
    overlaps: u64,
    /// Cycles run, warm-up included (what the Redis probe divides by).
    cycles: u64,
}

#[derive(Default)]
struct Tokens {
    seen: u64,
    last: u64,
    violations: u64,
}

async fn hot(
    clients: &[Client],
    window: Duration,
    workers: usize,
    hold: Duration,
    label: &str,
) -> Result<Hot> {
    let warmup = Duration::from_millis(500);
    let start = Instant::now();
    let (measure_at, stop_at) = (start + warmup, start + warmup + window);
    let holders = Arc::new(AtomicU64::new(0));
    let overlaps = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(std::sync::Mutex::new(Tokens::default()));
    let key = format!("bench/{label}/hot");
    let mut handles = Vec::new();
    for worker in 0..workers {
        let (client, key) = (clients[worker % clients.len()].clone(), key.clone());
        let (holders, overlaps, tokens) = (holders.clone(), overlaps.clone(), tokens.clone());
        handles.push(tokio::spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0u64);
            loop {
                let began = Instant::now();
                if began >= stop_at {
                    break;
                }
                let wait = (stop_at + Duration::from_millis(300)).saturating_duration_since(began);
                let lease = match client
                    .lock(key.clone())
                    .ttl(Duration::from_secs(10))
                    .wait(wait)
                    .acquire()
                    .await
                {
                    Ok(lease) => lease,
                    Err(_) if Instant::now() >= stop_at => break,
                    Err(_) => {
                        if began >= measure_at {
                            failed += 1;
                        }
                        continue;
                    }
                };
                if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                {
                    let token = lease.fencing_token();
                    let mut t = tokens.lock().unwrap_or_else(|e| e.into_inner());
                    if t.seen > 0 && token <= t.last {
                        t.violations += 1;
                    }
                    t.last = token;
                    t.seen += 1;
                }
                // tokio's timer rounds a 1 ms sleep up to ~2 ms: hold with a thread sleep, off
                // the runtime's workers (as the peers harness does).
                tokio::task::spawn_blocking(move || std::thread::sleep(hold)).await?;
                holders.fetch_sub(1, Ordering::SeqCst);
                lease.release().await?;
                let ended = Instant::now();
                if began >= measure_at && ended <= stop_at {
                    latencies.push(ended - began);
                }
            }
            anyhow::Ok((latencies, failed))
        }));
    }
    let (mut all, mut turns_min, mut turns_max, mut failed) = (Vec::new(), usize::MAX, 0, 0);
    for handle in handles {
        let (latencies, worker_failed) = handle.await??;
        turns_min = turns_min.min(latencies.len());
        turns_max = turns_max.max(latencies.len());
        failed += worker_failed;
        all.extend(latencies);
    }
    all.sort();
    let tokens = tokens.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Hot {
        per_sec: all.len() as f64 / window.as_secs_f64(),
        p50: quantile(&all, 0.5),
        turns_min,
        turns_max,
        failed,
        token_violations: tokens.violations,
        overlaps: overlaps.load(Ordering::SeqCst),
        cycles: tokens.seen,
    })
}

/// Redis' own counters at one moment: its CPU time (`INFO cpu`, user + system) and how often it
/// ran each command (`INFO commandstats`, which counts the commands Lua scripts call too).
struct RedisCounters {
    cpu_seconds: f64,
    /// Calls and µs per command.
    calls: HashMap<String, (u64, u64)>,
}

/// What Redis spent per lock cycle over one measurement: CPU µs, and calls of each command
/// (most first) with the µs Redis timed in them (a script's time includes its commands'). The
/// counters are read before and after; warm-up cycles count on both sides.
struct RedisCost {
    cpu_us: f64,
    calls: Vec<(String, f64, f64)>,
}

/// Reads the Redis a row runs on, so the row can say what Redis did per cycle.
#[derive(Clone)]
struct RedisProbe {
    conn: redis::aio::MultiplexedConnection,
}

impl RedisProbe {
    async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        Ok(RedisProbe {
            conn: client.get_multiplexed_async_connection().await?,
        })
    }

    async fn counters(&self) -> Result<RedisCounters> {
        let mut conn = self.conn.clone();
        let (cpu, stats): (String, String) = redis::pipe()
            .cmd("INFO")
            .arg("cpu")
            .cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await?;
        let field = |name: &str| -> f64 {
            cpu.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0.0)
        };
        // `cmdstat_<name>:calls=<n>,usec=<µs>,...`
        let calls = stats
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let mut fields = rest.split(',');
                let calls = fields.next()?.strip_prefix("calls=")?.parse().ok()?;
                let usec = fields.next()?.strip_prefix("usec=")?.parse().ok()?;
                Some((name.to_string(), (calls, usec)))
            })
            .collect();
        Ok(RedisCounters {
            cpu_seconds: field("used_cpu_user") + field("used_cpu_sys"),
            calls,
        })
    }

    /// Run `work` (which reports how many cycles it ran) and what Redis spent per cycle on it.
    async fn around<T>(
        probe: Option<&RedisProbe>,
        work: impl Future<Output = Result<T>>,
        cycles: impl Fn(&T) -> u64,
    ) -> Result<(T, Option<RedisCost>)> {
        let Some(probe) = probe else {
            return Ok((work.await?, None));
        };
        let before = probe.counters().await?;
        let result = work.await?;
        let after = probe.counters().await?;
        let per_cycle = 1.0 / cycles(&result).max(1) as f64;
        let mut calls: Vec<(String, f64, f64)> = after
            .calls
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(name, (n, usec))| {
                let (n0, usec0) = before.calls.get(name).copied().unwrap_or((0, 0));
                let per = |a: u64, b: u64| a.saturating_sub(b) as f64 * per_cycle;
                (name.clone(), per(*n, n0), per(*usec, usec0))
            })
            .filter(|(_, n, _)| *n >= 0.005)
            .collect();
        calls.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let cost = RedisCost {
            cpu_us: (after.cpu_seconds - before.cpu_seconds) * 1e6 * per_cycle,
            calls,
        };
        Ok((result, Some(cost)))
    }
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

async fn syros_client(port: u16) -> Result<Client> {
    Ok(Client::connect(ClientOptions::new([format!("127.0.0.1:{port}")])).await?)
}

/// How long a `seq`/`c32` acquire may wait (`BENCH_WAIT_MS`, default 10 000 ms as in the peers
/// harness; 0 = try once). The keys are distinct, so nobody waits, but an acquire that may wait
/// takes the server's waiting path.
fn acquire_wait() -> Duration {
    Duration::from_secs_f64(env_f64("BENCH_WAIT_MS", 10_000.0) / 1000.0)
}

fn syros_cycle(client: Client) -> Cycle {
    let wait = acquire_wait();
    Arc::new(move |key: String, _token: u64| {
        let client = client.clone();
        Box::pin(async move {
            let lease = client
                .lock(key)
                .ttl(Duration::from_secs(10))
                .wait(wait)
                .acquire()
                .await?;
            lease.release().await?;
            Ok(())
        })
    })
}

/// The same cycle with the generated Volo client alone (no retries, renewal or lease handle):
/// isolates what the client core adds.
fn raw_cycle(port: u16) -> Cycle {
    use syros_proto::syros::v1 as pb;
    let client = pb::LockServiceClientBuilder::new("syros")
        .address(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build();
    Arc::new(move |key: String, _token: u64| {
        let client = client.clone();
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
    hot: Option<Hot>,
    /// What Redis spent per cycle in each mode, for rows on Redis.
    redis: Vec<(&'static str, RedisCost)>,
}

struct Settings {
    window: Duration,
    workers: usize,
    hold: Duration,
}

async fn measure(
    name: &'static str,
    cycle: Cycle,
    hot_client: Option<&Client>,
    probe: Option<&RedisProbe>,
    settings: &Settings,
) -> Result<Row> {
    let mut redis = Vec::new();
    let (seq, cost) = RedisProbe::around(probe, sequential(settings.window, &cycle, name), |seq| {
        seq.cycles
    })
    .await?;
    redis.extend(cost.map(|cost| ("seq", cost)));
    let ((conc, _), cost) = RedisProbe::around(
        probe,
        concurrent(settings.window, settings.workers, &cycle, name),
        |(_, cycles)| *cycles,
    )
    .await?;
    redis.extend(cost.map(|cost| ("conc", cost)));
    let hot = match hot_client {
        Some(client) => {
            let (hot, cost) = RedisProbe::around(
                probe,
                self::hot(
                    std::slice::from_ref(client),
                    settings.window,
                    settings.workers,
                    settings.hold,
                    name,
                ),
                |hot| hot.cycles,
            )
            .await?;
            redis.extend(cost.map(|cost| ("hot", cost)));
            Some(hot)
        }
        None => None,
    };
    eprintln!("  measured {name}");
    Ok(Row {
        name,
        seq,
        conc,
        hot,
        redis,
    })
}

/// `hot32` across two replicas sharing the Redis (`BENCH_REPLICAS=1`, the default; `0` skips
/// it): a second `syros serve` on the same namespace, half the workers calling each replica, all
/// on one key. The queue kept in Redis serves them in arrival order whichever replica they
/// called; turns min/max, failed, tokens and overlaps are counted over both halves together.
async fn two_replicas_row(
    bin: &std::path::Path,
    dir: &std::path::Path,
    redis_url: &str,
    pin: bool,
    settings: &Settings,
) -> Result<Option<Row>> {
    if std::env::var("BENCH_REPLICAS").is_ok_and(|v| v == "0") {
        return Ok(None);
    }
    let (first_dir, second_dir) = (dir.join("replica-a"), dir.join("replica-b"));
    std::fs::create_dir_all(&first_dir)?;
    std::fs::create_dir_all(&second_dir)?;
    let (_first, first_port) = start_syros(bin, &first_dir, Some(redis_url), pin)?;
    let (_second, second_port) = start_syros(bin, &second_dir, Some(redis_url), pin)?;
    let clients = [
        syros_client(first_port).await?,
        syros_client(second_port).await?,
    ];
    let name = "2 replicas, hot only";
    let probe = RedisProbe::connect(redis_url).await?;
    let (hot, cost) = RedisProbe::around(
        Some(&probe),
        hot(
            &clients,
            settings.window,
            settings.workers,
            settings.hold,
            "two-replicas",
        ),
        |hot| hot.cycles,
    )
    .await?;
    eprintln!("  measured {name}");
    // Only the hot row is measured here; seq and c32 are the one-replica row's.
    Ok(Some(Row {
        name,
        seq: Sequential {
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            per_sec: 0.0,
            cycles: 0,
        },
        conc: 0.0,
        hot: Some(hot),
        redis: cost.map(|cost| ("hot", cost)).into_iter().collect(),
    }))
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `lock_bench load <addr> <cycles> <workers>`: a fixed number of cycles (acquire + release
/// through the client core), split over `workers` tasks on distinct keys, then exit.
async fn load(args: &[String]) -> Result<()> {
    let [addr, cycles, workers] = args else {
        bail!("usage: lock_bench load <addr> <cycles> <workers>");
    };
    let (cycles, workers): (u64, u64) = (cycles.parse()?, workers.parse()?);
    let client = Client::connect(ClientOptions::new([addr.clone()])).await?;
    let cycle = syros_cycle(client);
    let started = Instant::now();
    let mut handles = Vec::new();
    for worker in 0..workers.max(1) {
        let cycle = cycle.clone();
        let share = cycles / workers.max(1);
        handles.push(tokio::spawn(async move {
            let key = format!("bench/load/{}/{worker}", std::process::id());
            for i in 0..share {
                cycle(key.clone(), i).await?;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    eprintln!(
        "{cycles} cycles, {workers} workers: {:.0} cycles/s",
        cycles as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One `peer=<name> mode=<mode> cycles_per_s=<n> ...` line of the peers harness, as fields.
fn peers_line(line: &str) -> Option<std::collections::HashMap<&str, &str>> {
    let fields: std::collections::HashMap<_, _> = line
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .collect();
    (fields.contains_key("peer") && fields.contains_key("mode")).then_some(fields)
}

/// `lock_bench ratios <file>`: the issue's lock goals from one peers-harness run (cpu=idle lines).
fn ratios(args: &[String]) -> Result<()> {
    let [file] = args else {
        bail!("usage: lock_bench ratios <peers results file>");
    };
    let text = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.contains("cpu=awake") {
            continue;
        }
        if let Some(fields) = peers_line(line) {
            lines.push(fields);
        }
    }
    let get = |peer: &str, mode: &str, field: &str| -> Option<f64> {
        lines
            .iter()
            .find(|f| f["peer"] == peer && f["mode"].starts_with(mode))
            .and_then(|f| f.get(field))
            .and_then(|v| v.parse().ok())
    };
    let show = |what: &str, value: Option<f64>, target: &str| match value {
        Some(value) => println!("  {what:<52} {value:>6.2}x  (goal {target})"),
        None => println!("  {what:<52}    n/a  (goal {target}; not in this run)"),
    };
    // `peer`'s `field` in `mode` over `over`'s `over_field` in the same mode.
    let ratio = |(peer, mode, field): (&str, &str, &str), (over, over_field): (&str, &str)| {
        Some(get(peer, mode, field)? / get(over, mode, over_field)?)
    };
    println!("goals of issue 19 from {file} (same run):");
    for (syros, seq_goal) in [("syros-redis", "<= 2.0"), ("syros-embedded", "<= 1.5")] {
        for (what, numerator, denominator, target) in [
            (
                "seq p50 {} / redis-rs",
                (syros, "seq", "p50_us"),
                ("redis-rs", "p50_us"),
                seq_goal,
            ),
            (
                "c32 cycles/s {} / redsync",
                (syros, "c32", "cycles_per_s"),
                ("redsync", "cycles_per_s"),
                ">= 1.0",
            ),
            (
                "hot32 cycles/s {} / redsync",
                (syros, "hot", "cycles_per_s"),
                ("redsync", "cycles_per_s"),
                ">= 1.1",
            ),
            (
                "hot32 turns min/max {}",
                (syros, "hot", "worker_min"),
                (syros, "worker_max"),
                ">= 0.9",
            ),
        ] {
            show(
                &what.replace("{}", syros),
                ratio(numerator, denominator),
                target,
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("load") => return load(&args[1..]).await,
        Some("ratios") => return ratios(&args[1..]),
        Some(other) => bail!("unknown mode {other}: none, `load` or `ratios`"),
        None => {}
    }
    let bin = PathBuf::from(
        std::env::var_os("SYROS_BIN")
            .context("set SYROS_BIN to a (release) syros binary, e.g. target/release/syros")?,
    );
    let settings = Settings {
        window: Duration::from_secs_f64(env_f64("BENCH_SECONDS", 3.0)),
        workers: env_f64("BENCH_CONCURRENCY", 32.0) as usize,
        hold: Duration::from_secs_f64(env_f64("BENCH_HOLD_MS", 1.0) / 1000.0),
    };
    let workers = settings.workers;
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
        "lock cycle = acquire (TTL 10 s) + release; {:.1} s windows; {workers} workers; hot hold {} ms; servers {}",
        settings.window.as_secs_f64(),
        settings.hold.as_millis(),
        if pin { "pinned to CPU 0" } else { "not pinned (no taskset)" }
    );
    let probe = RedisProbe::connect(&redis_url).await?;
    let mut rows = vec![
        measure(
            "redis crate (direct)",
            redis_cycle(&redis_url).await?,
            None,
            Some(&probe),
            &settings,
        )
        .await?,
    ];
    for (name, port, probe) in [
        ("syros embedded", embedded_port, None),
        ("syros on redis", redis_port, Some(&probe)),
    ] {
        let client = syros_client(port).await?;
        let cycle = syros_cycle(client.clone());
        rows.push(measure(name, cycle, Some(&client), probe, &settings).await?);
    }
    if std::env::var("BENCH_VOLO").is_ok_and(|v| v == "1") {
        rows.push(
            measure(
                "volo only, on redis",
                raw_cycle(redis_port),
                None,
                Some(&probe),
                &settings,
            )
            .await?,
        );
    }

    if let Some(row) = two_replicas_row(&bin, dir.path(), &redis_url, pin, &settings).await? {
        rows.push(row);
    }

    let (conc_header, hot_header) = (format!("c{workers} c/s"), format!("hot{workers} c/s"));
    println!(
        "{:<22} {:>9} {:>9} {:>9} {conc_header:>9} {hot_header:>9} {:>9} {:>6} {:>6} {:>7}",
        "", "seq p50", "seq p99", "seq c/s", "hot p50", "turns", "failed", "tokens"
    );
    for row in &rows {
        let hot = match &row.hot {
            Some(h) => {
                let turns = format!("{}/{}", h.turns_min, h.turns_max);
                let tokens = if h.token_violations == 0 && h.overlaps == 0 {
                    "ok".to_string()
                } else {
                    format!("{}v{}o", h.token_violations, h.overlaps)
                };
                let p50 = micros(h.p50);
                format!(
                    "{:>9.0} {p50:>9} {turns:>6} {:>6} {tokens:>7}",
                    h.per_sec, h.failed
                )
            }
            None => format!("{:>9} {:>9} {:>6} {:>6} {:>7}", "—", "—", "—", "—", "—"),
        };
        println!(
            "{:<22} {:>9} {:>9} {:>9.0} {:>9.0} {hot}",
            row.name,
            micros(row.seq.p50),
            micros(row.seq.p99),
            row.seq.per_sec,
            row.conc,
        );
    }
    println!(
        "Redis per cycle (INFO cpu and commandstats deltas over each mode, warm-up included):"
    );
    for row in &rows {
        for (mode, cost) in &row.redis {
            let calls: Vec<String> = cost
                .calls
                .iter()
                .map(|(name, n, us)| format!("{name} {n:.2} ({us:.1} µs)"))
                .collect();
            println!(
                "  {:<22} {mode:<5} {:>6.1} µs CPU  {}",
                row.name,
                cost.cpu_us,
                calls.join(", ")
            );
        }
    }
    let peer = &rows[0];
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("ratios against the redis crate, same run (issue 19 goals):");
    for (row, goal) in [(&rows[1], "<= 1.5"), (&rows[2], "<= 2.0")] {
        println!(
            "  seq p50 {} / redis crate = {:.2}x  (goal {goal})",
            row.name,
            ratio(row.seq.p50, peer.seq.p50)
        );
        println!(
            "  c{workers} {} / redis crate = {:.2}x  (no goal: redsync is the c32 peer, see `lock_bench ratios`)",
            row.name,
            row.conc / peer.conc.max(1e-9)
        );
    }
    Ok(())
}
