//! Lock safety under real faults (issue 11): a promoted Redis replica, a release racing a
//! hand-off, a cancelled release, the per-key waiter bound, and Redis forgetting the lock
//! scripts.
//!
//! The Redis tests start their own `redis-server` processes on free loopback ports (a master and
//! a replica that can be detached and promoted), so they need the `redis-server` binary on PATH
//! (scripts/test installs it); without it they fail, they never skip. Fencing epochs are kept in
//! an embedded SQLite file, as when only `REDIS_URL` is configured.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use syros_engine::{
    AcquireLock, AcquireOutcome, Engine, ErrorKind, Lease, Limits, StoreConfig, Stores,
};
use syros_faults::FaultProxy;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A `redis-server` this test started (no persistence); killed when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    async fn start(extra: &[String]) -> OwnRedis {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temporary directory");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed? scripts/test installs it)");
        let redis = OwnRedis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut conn) = redis.try_conn().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return redis;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn try_conn(&self) -> redis::RedisResult<MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn conn(&self) -> MultiplexedConnection {
        self.try_conn().await.expect("connect to own redis-server")
    }

    async fn run(&self, args: &[&str]) -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async(&mut self.conn().await)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An engine with locks in the Redis at `redis_url` and fencing epochs in `dir`'s SQLite file.
async fn engine_on(redis_url: &str, dir: &std::path::Path, limits: Limits) -> Arc<Engine> {
    let config = StoreConfig {
        embedded_path: dir.join("epochs.sqlite"),
        postgres_url: None,
        redis_url: Some(redis_url.to_string()),
        pool_size: 4,
        namespace: "syros".to_string(),
    };
    let stores = Stores::open(&config).await.expect("open the stores");
    Engine::new(stores, limits)
}

fn args(key: &str, owner: &str, ttl_ms: u64, wait_timeout_ms: u64) -> AcquireLock {
    AcquireLock {
        key: key.to_string(),
        owner: owner.to_string(),
        ttl_ms,
        wait_timeout_ms,
        request_id: String::new(),
    }
}

/// A try-lock, retried while Redis is unavailable (a connection just cut): the outcome.
async fn try_lock(engine: &Engine, key: &str, owner: &str) -> AcquireOutcome {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match engine.locks.acquire(args(key, owner, 60_000, 0)).await {
            Ok(outcome) => return outcome,
            Err(err) if err.kind == ErrorKind::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("acquire {key}: {err}"),
        }
    }
}

async fn take(engine: &Engine, key: &str, owner: &str) -> Lease {
    match try_lock(engine, key, owner).await {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("{owner} did not get {key}: {other:?}"),
    }
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_string())
    })
}

async fn info(redis: &OwnRedis, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut redis.conn().await)
        .await
        .expect("INFO")
}

/// Item 1. A replica is detached while the master keeps granting, then promoted, and the server
/// is pointed at it (the same address through a proxy that fails over, then a restarted engine
/// at its own address): every later token is larger than every earlier one, a lease the replica
/// knows is not granted again, and a lease it never heard of is granted only with a larger token
/// (so a fenced resource rejects the old holder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_never_reissues_tokens() {
    let master = OwnRedis::start(&[]).await;
    let replica = OwnRedis::start(&[
        "--replicaof".to_string(),
        "127.0.0.1".to_string(),
        master.port.to_string(),
    ])
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&info(&replica, "replication").await, "master_link_status").as_deref()
        != Some("up")
    {
        assert!(Instant::now() < deadline, "the replica did not sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let proxy = FaultProxy::start(master.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(
        &format!("redis://{}", proxy.address()),
        dir.path(),
        Limits::default(),
    )
    .await;

    // Replicated: leases still held at the failover, and keys taken and released.
    let mut earlier: Vec<Lease> = Vec::new();
    for i in 0..5 {
        earlier.push(take(&engine, &format!("held/{i}"), "before").await);
        let cycled = take(&engine, &format!("cycled/{i}"), "before").await;
        engine.locks.release(&cycled.lease_id).await.unwrap();
        earlier.push(cycled);
    }
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut master.conn().await)
        .await
        .unwrap();
    assert_eq!(synced, 1, "the replica must have the first leases");

    // The replica falls behind: it follows a master that does not exist, keeping its data.
    let dead = free_port().to_string();
    replica.run(&["REPLICAOF", "127.0.0.1", &dead]).await;
    for round in 0..10 {
        for i in 0..5 {
            let cycled = take(&engine, &format!("cycled/{i}"), &format!("lagged-{round}")).await;
            engine.locks.release(&cycled.lease_id).await.unwrap();
            earlier.push(cycled);
        }
    }
    let mut unreplicated = Vec::new();
    for i in 0..5 {
        let lease = take(&engine, &format!("late/{i}"), "unreplicated").await;
        earlier.push(lease.clone());
        unreplicated.push(lease);
    }
    let highest = earlier.iter().map(|l| l.fencing_token).max().unwrap();

    // Failover: the replica is promoted; the proxy's address now leads to it.
    replica.run(&["REPLICAOF", "NO", "ONE"]).await;
    proxy.retarget(replica.addr());
    proxy.cut_all();

    let mut later: Vec<Lease> = Vec::new();
    for (i, unreplicated) in unreplicated.iter().enumerate() {
        // Known to the replica and unexpired: still held, by the same lease.
        match try_lock(&engine, &format!("held/{i}"), "after").await {
            AcquireOutcome::TimedOut {
                holder: Some(holder),
            } => assert_eq!(holder.owner, "before"),
            other => panic!("held/{i} was granted again on the promoted replica: {other:?}"),
        }
        later.push(take(&engine, &format!("cycled/{i}"), "after").await);
        later.push(take(&engine, &format!("fresh/{i}"), "after").await);
        // Never replicated: the promoted replica does not know it is held and grants it again,
        // but with a larger token, so fencing rejects the unreplicated holder.
        let regranted = take(&engine, &format!("late/{i}"), "after").await;
        assert!(regranted.fencing_token > unreplicated.fencing_token);
        later.push(regranted);
    }
    // A restarted server, straight at the promoted replica's own address.
    drop(engine);
    let restarted = engine_on(&replica.url(), dir.path(), Limits::default()).await;
    for i in 0..5 {
        later.push(take(&restarted, &format!("restarted/{i}"), "after").await);
    }
    for lease in &later {
        assert!(
            lease.fencing_token > highest,
            "{} got token {} after the failover, not above {highest} issued before",
            lease.key,
            lease.fencing_token
        );
    }
    let mut tokens: Vec<u64> = later.iter().map(|l| l.fencing_token).collect();
    let count = tokens.len();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        count,
        "a token was issued twice after the failover"
    );
}

/// Two replicas on one Redis: `waiting_side` reaches it through `proxy` (so its traffic can be
/// slowed or cut), `other_replica` directly.
struct ProxiedReplicas {
    waiting_side: Arc<Engine>,
    other_replica: Arc<Engine>,
    proxy: FaultProxy,
    _redis: OwnRedis,
    _dir: tempfile::TempDir,
}

impl ProxiedReplicas {
    async fn start() -> ProxiedReplicas {
        let redis = OwnRedis::start(&[]).await;
        let proxy = FaultProxy::start(redis.addr()).await;
        let dir = tempfile::tempdir().unwrap();
        let waiting_side = engine_on(
            &format!("redis://{}", proxy.address()),
            dir.path(),
            Limits::default(),
        )
        .await;
        let other_replica = engine_on(&redis.url(), dir.path(), Limits::default()).await;
        ProxiedReplicas {
            waiting_side,
            other_replica,
            proxy,
            _redis: redis,
            _dir: dir,
        }
    }
}

/// Item 4. A release lands while the only waiter's queueing is under way (its store call is
/// slowed by a proxy between the engine and Redis; before the queue moved into Redis this was
/// the window where a hand-off held the waiter off the queue): the waiter still gets the lock at
/// once, not when the old lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_during_a_hand_off_wakes_the_waiter() {
    let replicas = ProxiedReplicas::start().await;
    let (proxy, waiting_side, other_replica) = (
        &replicas.proxy,
        &replicas.waiting_side,
        &replicas.other_replica,
    );
    let key = "hand-off-window-key";
    let holder = match other_replica
        .locks
        .acquire(args(key, "holder", 30_000, 0))
        .await
        .unwrap()
    {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("{other:?}"),
    };

    // Every acquire attempt for the key answers a second late: the waiter's own attempt, which
    // queues it in Redis.
    proxy.delay_replies_to(key.as_bytes(), Duration::from_secs(1));
    let started = Instant::now();
    let waiter = {
        let engine = waiting_side.clone();
        tokio::spawn(async move {
            engine
                .locks
                .acquire(args(key, "waiter", 30_000, 25_000))
                .await
        })
    };
    assert!(
        proxy.wait_fired(1, Duration::from_secs(10)).await,
        "the waiter never tried the key"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Released through another replica while the hand-off's attempt is still unanswered.
    other_replica.locks.release(&holder.lease_id).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter answers")
        .unwrap()
        .unwrap();
    let waited = started.elapsed();
    match outcome {
        AcquireOutcome::Acquired(lease) => assert!(lease.fencing_token > holder.fencing_token),
        other => panic!("the waiter was not woken by the release: {other:?} after {waited:?}"),
    }
    // The old lease had 30 s to run; being served by expiry would take that long.
    assert!(
        waited < Duration::from_secs(15),
        "woken only after {waited:?}"
    );
}

/// A hand-off whose announcement to the waiter's replica is lost (its Redis connections cut
/// while the grant was in flight): once that replica's subscription is back, the waiter asks
/// Redis again, learns the key was handed to it, and takes the lease — not only when that
/// lease's TTL would have freed the key again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hand_off_announcement_still_serves_the_waiter() {
    let replicas = ProxiedReplicas::start().await;
    let (proxy, waiting_side, other_replica) = (
        &replicas.proxy,
        &replicas.waiting_side,
        &replicas.other_replica,
    );
    let key = "lost-announcement-key";
    let holder = take(other_replica, key, "holder").await;
    let waiter = {
        let engine = waiting_side.clone();
        tokio::spawn(async move {
            let outcome = engine
                .locks
                .acquire(args(key, "waiter", 30_000, 25_000))
                .await;
            (outcome, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the waiter must be queued");

    // The waiting side hears nothing now; the release hands it the key meanwhile, and the
    // announcement dies with the connections cut under it.
    proxy.blackhole(true);
    other_replica.locks.release(&holder.lease_id).await.unwrap();
    let handed = other_replica.locks.status(key).await.unwrap();
    assert_eq!(handed.as_ref().map(|l| l.owner.as_str()), Some("waiter"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.cut_all();
    proxy.blackhole(false);
    let back_at = Instant::now();

    let (outcome, got_at) = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter answers")
        .unwrap();
    match outcome.unwrap() {
        AcquireOutcome::Acquired(lease) => assert_eq!(Some(lease), handed),
        other => panic!("the waiter did not get the key handed to it: {other:?}"),
    }
    // The handed lease had 30 s to run.
    let waited = got_at.duration_since(back_at);
    assert!(waited < Duration::from_secs(5), "served after {waited:?}");
}

/// Item 5. A release whose caller is cancelled while Redis holds its writes (`CLIENT PAUSE`) is
/// applied once Redis resumes, and the waiter on the same server is still woken (the server
/// ignores its own release announcements, so only the release call itself can wake it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_release_still_wakes_the_waiter() {
    let redis = OwnRedis::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(&redis.url(), dir.path(), Limits::default()).await;
    let key = "cancelled-release";
    let holder = take(&engine, key, "holder").await;
    let waiter = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .locks
                .acquire(args(key, "waiter", 30_000, 25_000))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the waiter must wait for the holder");

    redis.run(&["CLIENT", "PAUSE", "1000", "WRITE"]).await;
    let started = Instant::now();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        engine.locks.release(&holder.lease_id),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the release must still be held by the paused Redis when its caller gives up"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the waiter answers")
        .unwrap()
        .unwrap();
    let waited = started.elapsed();
    match outcome {
        AcquireOutcome::Acquired(lease) => assert!(lease.fencing_token > holder.fencing_token),
        other => panic!("the waiter was not woken: {other:?} after {waited:?}"),
    }
    assert!(
        waited < Duration::from_secs(15),
        "woken only after {waited:?}"
    );
    let status = engine.locks.status(key).await.unwrap().expect("a holder");
    assert_eq!(status.owner, "waiter");
}

/// Item 14 (engine part). One server lets at most `max_waiters_per_key` callers wait for a key;
/// one more is refused at once with a clear error, and the queued ones are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_per_key_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_waiters_per_key: 2,
        ..Limits::default()
    };
    let engine = Engine::new(
        Stores::embedded(&dir.path().join("db.sqlite"))
            .await
            .unwrap(),
        limits,
    );
    let key = "bounded";
    let holder = match engine
        .locks
        .acquire(args(key, "holder", 30_000, 0))
        .await
        .unwrap()
    {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("{other:?}"),
    };
    let mut waiters = Vec::new();
    for i in 0..2 {
        let engine = engine.clone();
        waiters.push(tokio::spawn(async move {
            engine
                .locks
                .acquire(args(key, &format!("waiter-{i}"), 30_000, 20_000))
                .await
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = engine
        .locks
        .acquire(args(key, "one-too-many", 30_000, 20_000))
        .await
        .expect_err("a third waiter must be refused");
    assert_eq!(refused.kind, ErrorKind::PayloadTooLarge, "{refused:?}");
    assert_eq!(
        refused
            .details
            .get("max_waiters_per_key")
            .map(String::as_str),
        Some("2")
    );
    // Another key is not affected, and the queued waiters are served in order.
    assert!(matches!(
        engine
            .locks
            .acquire(args("other", "x", 30_000, 0))
            .await
            .unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    engine.locks.release(&holder.lease_id).await.unwrap();
    for (i, waiter) in waiters.into_iter().enumerate() {
        match waiter.await.unwrap().unwrap() {
            AcquireOutcome::Acquired(lease) => {
                assert_eq!(lease.owner, format!("waiter-{i}"));
                engine.locks.release(&lease.lease_id).await.unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The lock scripts are called by SHA: after Redis forgets them (`SCRIPT FLUSH`, as after a
/// restart) each is loaded again and the call goes through. On its own Redis: a flush of the
/// shared test Redis could race other tests' script loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_lock_scripts_are_loaded_again() {
    let redis = OwnRedis::start(&[]).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let engine = engine_on(&redis.url(), dir.path(), Limits::default()).await;
    let flush = || redis.run(&["SCRIPT", "FLUSH"]);
    flush().await;
    let lease = take(&engine, "flushed", "owner").await;
    flush().await;
    let renewed = engine.locks.renew(&lease.lease_id, 20_000).await.unwrap();
    flush().await;
    assert_eq!(
        engine.locks.release(&lease.lease_id).await.unwrap(),
        renewed
    );
    flush().await;
    take(&engine, "flushed", "owner").await;
    flush().await;
    let dropped = engine.locks.force_release("flushed").await.unwrap();
    assert_eq!(dropped.map(|l| l.owner), Some("owner".to_string()));
    engine.shutdown();
}
