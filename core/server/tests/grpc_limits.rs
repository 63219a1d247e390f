//! Per-connection limits of the gRPC server against a real `syros serve`: the advertised
//! SETTINGS_MAX_CONCURRENT_STREAMS, and the bound on lock waiters per connection.

mod common;

use std::time::{Duration, Instant};

use common::*;

async fn start(env: &[(&str, &str)]) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let server = ServerProcess::start_with(dir.path(), &env).await;
    (server, dir)
}

/// A gRPC request head (the body is sent, or not, by the caller).
fn grpc_head(server: &ServerProcess) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/syros.v1.LockService/Status",
            server.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_limit_is_advertised_and_enforced() {
    let (server, _dir) = start(&[("GRPC_MAX_CONCURRENT_STREAMS", "8")]).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    // The server's SETTINGS frame arrives after the handshake.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.current_max_send_streams() != 8 {
        assert!(
            Instant::now() < deadline,
            "the server advertised {} streams, not 8",
            client.current_max_send_streams()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Eight calls whose request bodies stay open occupy every stream the server allows ...
    let mut open = Vec::new();
    for _ in 0..8 {
        client = client.ready().await.unwrap();
        let (response, body) = client.send_request(grpc_head(&server), false).unwrap();
        open.push((response, body));
    }
    // ... so a ninth call is held back (a client that sent it anyway would get REFUSED_STREAM)
    // and only answered once one of them ends.
    client = client.ready().await.unwrap();
    let (ninth, _) = client.send_request(grpc_head(&server), true).unwrap();
    tokio::pin!(ninth);
    let early = tokio::time::timeout(Duration::from_millis(500), &mut ninth).await;
    assert!(
        early.is_err(),
        "a ninth stream was answered while eight were open"
    );
    let (_, mut body) = open.pop().unwrap();
    body.send_reset(h2::Reason::CANCEL);
    let answer = tokio::time::timeout(Duration::from_secs(10), ninth)
        .await
        .expect("the ninth call is answered once a stream is free")
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_lock_waiters_on_one_connection_are_refused() {
    let (server, _dir) = start(&[("GRPC_MAX_LOCK_WAITERS_PER_CONNECTION", "4")]).await;
    let client = locks(server.addr);
    let held = client
        .acquire(acquire_request("busy", "holder", 30_000, 0))
        .await
        .unwrap()
        .into_inner();
    assert!(held.acquired);
    // Four waiters on the same connection wait; the fifth is refused at once.
    let mut waiters = Vec::new();
    for n in 0..4 {
        let client = client.clone();
        waiters.push(tokio::spawn(async move {
            client
                .acquire(acquire_request("busy", &format!("w{n}"), 30_000, 20_000))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let refused = client
        .acquire(acquire_request("busy", "w5", 30_000, 20_000))
        .await
        .expect_err("a fifth waiter is refused");
    assert_eq!(
        refused.code(),
        volo_grpc::Code::ResourceExhausted,
        "{refused}"
    );
    assert!(
        refused
            .message()
            .contains("GRPC_MAX_LOCK_WAITERS_PER_CONNECTION"),
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused without waiting"
    );
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "the first four still wait"
    );
    // Other calls on the connection are not affected, and a waiter that ends frees its place.
    let status = client
        .status(syros_proto::syros::v1::LockStatusRequest { key: "busy".into() })
        .await
        .unwrap();
    assert!(status.into_inner().held);
    let release = client
        .release(syros_proto::syros::v1::ReleaseLockRequest {
            lease_id: held.lease.unwrap().lease_id,
        })
        .await;
    release.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(done) = waiters.iter_mut().position(|w| w.is_finished()) {
                return waiters.remove(done).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a waiter got the lock after the release")
    .unwrap()
    .into_inner();
    assert!(first.acquired);
    let next = client
        .acquire(acquire_request("other", "w6", 30_000, 1_000))
        .await
        .unwrap();
    assert!(next.into_inner().acquired, "a freed place is usable again");
    for waiter in waiters {
        waiter.abort();
    }
}
