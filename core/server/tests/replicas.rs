//! Production backends end to end: several `syros serve` replicas sharing Redis and PostgreSQL,
//! and a Redis that restarts empty. Needs `SYROS_TEST_REDIS_URL` and `SYROS_TEST_DATABASE_URL`
//! (scripts/test starts both); without them these tests fail, they never skip.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use syros_proto::syros::v1 as pb;
use volo_grpc::Code;

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through scripts/test, which starts Redis and PostgreSQL")
    })
}

fn namespace() -> String {
    format!("t{}", &uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

fn production_env(redis_url: String, namespace: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis_url),
        ("DATABASE_URL", required_env("SYROS_TEST_DATABASE_URL")),
        ("SYROS_NAMESPACE", namespace.to_string()),
        ("DATABASE_POOL_SIZE", "4".to_string()),
    ]
}

async fn acquire(
    client: &pb::LockServiceClient,
    key: &str,
    owner: &str,
    wait_ms: u64,
) -> pb::Lease {
    let resp = client
        .acquire(acquire_request(key, owner, 30_000, wait_ms))
        .await
        .expect("acquire")
        .into_inner();
    assert!(resp.acquired, "{owner} did not get {key}");
    resp.lease.expect("lease")
}

/// Release `lease_id` through `client`; the lease must be held.
async fn release(client: &pb::LockServiceClient, lease_id: &str) {
    client
        .release(pb::ReleaseLockRequest {
            lease_id: lease_id.to_string().into(),
        })
        .await
        .expect("release");
}

/// Two replicas share one Redis and one PostgreSQL: a waiter on B is woken by a release on A,
/// events appended through A reach a subscriber on B, tokens stay monotonic across replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_locks_and_events() {
    let ns = namespace();
    let env = production_env(required_env("SYROS_TEST_REDIS_URL"), &ns);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = ServerProcess::start_with(dir_a.path(), &env).await;
    let b = ServerProcess::start_with(dir_b.path(), &env).await;
    let (locks_a, locks_b) = (locks(a.addr), locks(b.addr));

    let first = acquire(&locks_a, "shared/key", "on-a", 0).await;
    let waiter = tokio::spawn(async move {
        let lease = acquire(&locks_b, "shared/key", "on-b", 20_000).await;
        (lease, Instant::now(), locks_b)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "B must wait while A holds the lock");
    let released_at = Instant::now();
    release(&locks_a, &first.lease_id).await;
    let (second, got_at, locks_b) = waiter.await.unwrap();
    let hand_over = got_at.duration_since(released_at);
    println!("cross-replica hand-over after release: {hand_over:?}");
    // Without the Redis release notification B would sleep until its 20 s wait ran out (the
    // holder's lease had 30 s left), so anything near the notification path passes, anything
    // like a timeout fails. The target is 100 ms; the printed figure shows the real one.
    assert!(
        hand_over < Duration::from_millis(1_000),
        "hand-over took {hand_over:?}"
    );
    assert!(second.fencing_token > first.fencing_token);

    // Alternate replicas: every new lease has a larger token than all before it.
    let mut last = second.fencing_token;
    release(&locks_b, &second.lease_id).await;
    for round in 0..6 {
        let client = if round % 2 == 0 { &locks_a } else { &locks_b };
        let lease = acquire(
            client,
            &format!("shared/round-{}", round % 3),
            "alternating",
            0,
        )
        .await;
        assert!(
            lease.fencing_token > last,
            "token went backwards across replicas"
        );
        last = lease.fencing_token;
        release(client, &lease.lease_id).await;
    }

    // An event appended through A reaches a live subscriber on B.
    let mut subscription = events(b.addr)
        .subscribe(pb::SubscribeRequest {
            stream: "replicated".into(),
            start_at: 0,
            from_end: false,
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(200)).await;
    events(a.addr)
        .append(pb::AppendEventsRequest {
            stream: "replicated".into(),
            events: vec![event("Crossed", "{\"from\":\"a\"}")],
            expected_version: expected(pb::expected_version::Kind::NoStream(true)),
        })
        .await
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the event reaches B's subscriber")
        .expect("stream open")
        .expect("event");
    assert_eq!(received.event_type.as_str(), "Crossed");
    assert_eq!(received.version, 0);
}

/// A waiter queued (in Redis) through a replica that is then killed -9 does not hold up the
/// queue: once the dead replica's liveness key lapsed, a release hands the key past it to the
/// next waiter at once (were it granted to the dead waiter, the next would wait for that lease's
/// 30 s TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replicas_waiter_does_not_block_the_queue() {
    let ns = namespace();
    let env = production_env(required_env("SYROS_TEST_REDIS_URL"), &ns);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = ServerProcess::start_with(dir_a.path(), &env).await;
    let mut b = ServerProcess::start_with(dir_b.path(), &env).await;
    let locks_a = locks(a.addr);

    let first = acquire(&locks_a, "queue/key", "on-a", 0).await;
    let doomed = {
        let locks_b = locks(b.addr);
        tokio::spawn(async move {
            locks_b
                .acquire(acquire_request("queue/key", "on-b", 30_000, 60_000))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!doomed.is_finished(), "B's waiter must be queued");
    b.kill9();
    let next = {
        let locks_a = locks_a.clone();
        tokio::spawn(async move {
            let lease = acquire(&locks_a, "queue/key", "next-on-a", 20_000).await;
            (lease, Instant::now())
        })
    };
    // B's liveness key (3 s TTL) lapses meanwhile.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert!(
        !next.is_finished(),
        "the next waiter must wait for the holder"
    );
    let released_at = Instant::now();
    release(&locks_a, &first.lease_id).await;
    let (lease, got_at) = tokio::time::timeout(Duration::from_secs(15), next)
        .await
        .expect("the next waiter is served")
        .unwrap();
    let hand_over = got_at.duration_since(released_at);
    assert!(
        hand_over < Duration::from_millis(1_000),
        "hand-over past the dead waiter took {hand_over:?}"
    );
    assert_eq!(lease.owner, "next-on-a");
    // Nobody else was granted the key in between: the very next token.
    assert_eq!(lease.fencing_token, first.fencing_token + 1);
    assert!(doomed.await.unwrap().is_err(), "B's call died with B");
}

/// A redis-server of this test's own, so it can be killed and restarted empty.
struct OwnRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start(port: u16, dir: tempfile::TempDir) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL and start again on the same port: all data gone.
    fn restart_empty(mut self) -> OwnRedis {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (port, dir) = (
            self.port,
            std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()),
        );
        OwnRedis::start(port, dir)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis loses everything: calls fail with UNAVAILABLE while it is down (no hang), and once it is
/// back the next fencing token is still larger than every earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_survive_an_empty_redis_restart() {
    let redis = OwnRedis::start(free_port(), tempfile::tempdir().unwrap());
    let ns = namespace();
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(dir.path(), &production_env(redis.url(), &ns)).await;
    let client = locks(server.addr);
    let mut highest = 0;
    for i in 0..5 {
        let lease = acquire(&client, &format!("epoch/{i}"), "before", 0).await;
        highest = highest.max(lease.fencing_token);
    }

    // Down: a call answers UNAVAILABLE in bounded time instead of hanging.
    let mut redis_dir_holder = redis;
    redis_dir_holder.child.kill().unwrap();
    redis_dir_holder.child.wait().unwrap();
    let started = Instant::now();
    let down = client
        .acquire(acquire_request("epoch/down", "during", 5_000, 0))
        .await;
    let err = down.expect_err("Redis is down");
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the call must not hang"
    );

    // Back, empty.
    let redis = redis_dir_holder.restart_empty();
    let deadline = Instant::now() + Duration::from_secs(20);
    let lease = loop {
        match client
            .acquire(acquire_request("epoch/0", "after", 5_000, 0))
            .await
        {
            Ok(resp) if resp.get_ref().acquired => break resp.into_inner().lease.unwrap(),
            Ok(resp) => panic!(
                "epoch/0 should be free in an empty Redis: {:?}",
                resp.into_inner()
            ),
            Err(err) => {
                assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
                assert!(
                    Instant::now() < deadline,
                    "Redis came back but Syros did not recover"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(
        lease.fencing_token > highest,
        "after an empty Redis restart the token {} must exceed {highest}",
        lease.fencing_token
    );
    drop(redis);
}
