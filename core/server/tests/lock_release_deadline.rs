//! Issue 11, item 5, end to end: a gRPC release whose deadline passes while Redis holds its
//! writes (`CLIENT PAUSE ... WRITE`) makes the server drop the handler; the release is applied
//! when Redis resumes and the waiter on the same server must still get the lock at once.
//!
//! Starts its own `redis-server` (pausing a shared one would disturb other tests); fencing epochs
//! live in the server's embedded file. Needs `redis-server` on PATH: fails without it.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use syros_proto::syros::v1 as pb;

struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed? scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        OwnRedis {
            child,
            port,
            _dir: dir,
        }
    }

    /// Send one inline command and wait for its one-line answer.
    fn command(&self, line: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        answer
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_past_its_deadline_still_wakes_the_waiter() {
    let redis = OwnRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port))];
    let server = ServerProcess::start_with(dir.path(), &env).await;
    let client = locks(server.addr);
    let holder = client
        .acquire(acquire_request("deadline/key", "holder", 30_000, 0))
        .await
        .unwrap()
        .into_inner()
        .lease
        .expect("the holder gets the free key");
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let resp = client
                .acquire(acquire_request("deadline/key", "waiter", 30_000, 25_000))
                .await
                .unwrap()
                .into_inner();
            (resp, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the waiter must wait for the holder");

    assert!(redis.command("CLIENT PAUSE 1000 WRITE").starts_with("+OK"));
    let impatient = pb::LockServiceClientBuilder::new("syros")
        .address(server.addr)
        .rpc_timeout(Some(Duration::from_millis(200)))
        .build();
    let released = impatient
        .release(pb::ReleaseLockRequest {
            lease_id: holder.lease_id.clone(),
        })
        .await;
    assert!(
        released.is_err(),
        "the release must still be held by the paused Redis at its deadline"
    );

    let (resp, waited) = tokio::time::timeout(Duration::from_secs(28), waiter)
        .await
        .expect("the waiter answers")
        .unwrap();
    assert!(
        resp.acquired,
        "the waiter was not woken by the release: {resp:?}"
    );
    assert!(resp.lease.unwrap().fencing_token > holder.fencing_token);
    // The old lease had 30 s to run; being served by its expiry would take that long.
    assert!(
        waited < Duration::from_secs(15),
        "woken only after {waited:?}"
    );
}
