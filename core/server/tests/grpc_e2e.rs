//! End-to-end tests over gRPC against a real `syros serve` process.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use syros_proto::syros::v1 as pb;
use volo_grpc::Code;

/// 32 clients, each with its own connection, contend for one key and increment a shared
/// counter only while holding the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contended_lock_gives_exclusive_access_and_increasing_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 5;
    let counter = Arc::new(Mutex::new(0u64));
    let inside = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for client_index in 0..CLIENTS {
        let (counter, inside, tokens) = (counter.clone(), inside.clone(), tokens.clone());
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let client = locks(addr);
            for _ in 0..ROUNDS {
                let owner = format!("client-{client_index}");
                let resp = client
                    .acquire(acquire_request("e2e/shared", &owner, 10_000, 60_000))
                    .await
                    .expect("acquire")
                    .into_inner();
                assert!(resp.acquired, "a 60 s wait must get the lock");
                let lease = resp.lease.expect("lease");
                assert!(
                    !inside.swap(true, Ordering::SeqCst),
                    "two holders overlapped"
                );
                tokens.lock().unwrap().push(lease.fencing_token);
                let seen = *counter.lock().unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                *counter.lock().unwrap() = seen + 1;
                inside.store(false, Ordering::SeqCst);
                client
                    .release(pb::ReleaseLockRequest {
                        lease_id: lease.lease_id,
                    })
                    .await
                    .expect("release");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*counter.lock().unwrap(), (CLIENTS * ROUNDS) as u64);
    let tokens = tokens.lock().unwrap();
    assert_eq!(tokens.len(), CLIENTS * ROUNDS);
    for pair in tokens.windows(2) {
        assert!(
            pair[0] < pair[1],
            "fencing tokens must strictly increase: {pair:?}"
        );
    }
}

/// A held lock and appended events survive kill -9; the next lease gets a larger token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path()).await;
    let lease = locks(server.addr)
        .acquire(acquire_request("restart/key", "before", 60_000, 0))
        .await
        .unwrap()
        .into_inner()
        .lease
        .expect("acquired");
    let appended = events(server.addr)
        .append(pb::AppendEventsRequest {
            stream: "restart-stream".into(),
            events: (0..3)
                .map(|i| event("Happened", &format!("{{\"n\":{i}}}")))
                .collect(),
            expected_version: expected(pb::expected_version::Kind::NoStream(true)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(appended.last_version, 2);

    server.kill9();
    let server = ServerProcess::start(dir.path()).await;

    let client = locks(server.addr);
    let status = client
        .status(pb::LockStatusRequest {
            key: "restart/key".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(status.held, "the lease is still held after the restart");
    assert_eq!(status.lease.unwrap().lease_id, lease.lease_id);
    client
        .release(pb::ReleaseLockRequest {
            lease_id: lease.lease_id.clone(),
        })
        .await
        .unwrap();
    let next = client
        .acquire(acquire_request("restart/key", "after", 5_000, 0))
        .await
        .unwrap()
        .into_inner()
        .lease
        .expect("acquired after restart");
    assert!(
        next.fencing_token > lease.fencing_token,
        "token {} after restart must exceed {}",
        next.fencing_token,
        lease.fencing_token
    );

    let read = events(server.addr)
        .read_stream(pb::ReadStreamRequest {
            stream: "restart-stream".into(),
            from_version: 0,
            direction: pb::ReadDirection::FORWARDS,
            limit: 0,
            from_end: false,
        })
        .await
        .unwrap()
        .into_inner();
    let versions: Vec<u64> = read.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![0, 1, 2]);
    assert_eq!(read.events[1].data_json.as_str(), "{\"n\":1}");
    assert_eq!(read.events[2].global_position, appended.last_position);
}

/// kill -9 while lock grants and appends of 4 events are committed in groups (the embedded
/// store's lock writer): after the restart every answered append and lease is there, and no
/// append is there in part (a group is one transaction; a grouped append its own savepoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_group_leaves_only_whole_writes() {
    const WRITERS: usize = 16;
    const EVENTS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path()).await;
    let addr = server.addr;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(async move {
                let (events, locks) = (events(addr), locks(addr));
                let (mut appended, mut leases) = (0usize, Vec::new());
                loop {
                    let append = events.append(pb::AppendEventsRequest {
                        stream: format!("crash-{w}").into(),
                        events: (0..EVENTS)
                            .map(|e| event("E", &format!("{{\"n\":{appended},\"e\":{e}}}")))
                            .collect(),
                        expected_version: None,
                    });
                    let key = format!("crash/{w}/{}", leases.len());
                    let acquire = locks.acquire(acquire_request(&key, "o", 600_000, 0));
                    let (append, acquire) = tokio::join!(append, acquire);
                    if append.is_ok() {
                        appended += 1;
                    }
                    if let Ok(granted) = &acquire {
                        leases.push(granted.get_ref().lease.clone().expect("a lease"));
                    }
                    if append.is_err() || acquire.is_err() {
                        return (appended, leases);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill9();
    let mut answered = Vec::new();
    for writer in writers {
        answered.push(writer.await.unwrap());
    }
    let server = ServerProcess::start(dir.path()).await;
    let (events, locks) = (events(server.addr), locks(server.addr));
    for (w, (appended, leases)) in answered.into_iter().enumerate() {
        assert!(
            appended > 0 && !leases.is_empty(),
            "writer {w} wrote nothing"
        );
        // Page through the stream (a read returns at most the default page).
        let mut read = Vec::new();
        loop {
            let page = events
                .read_stream(pb::ReadStreamRequest {
                    stream: format!("crash-{w}").into(),
                    from_version: read.len() as u64,
                    direction: pb::ReadDirection::FORWARDS,
                    limit: 0,
                    from_end: false,
                })
                .await
                .unwrap()
                .into_inner();
            if page.events.is_empty() {
                break;
            }
            read.extend(page.events);
        }
        let stored = read.len();
        assert_eq!(
            stored % EVENTS,
            0,
            "writer {w}: an append stored in part ({stored} events)"
        );
        assert!(
            stored / EVENTS == appended || stored / EVENTS == appended + 1,
            "writer {w}: {appended} appends answered, {} stored",
            stored / EVENTS
        );
        for (version, stored) in read.iter().enumerate() {
            assert_eq!(stored.version, version as u64);
            let data = format!("{{\"n\":{},\"e\":{}}}", version / EVENTS, version % EVENTS);
            assert_eq!(stored.data_json.as_str(), data);
        }
        for lease in leases {
            let status = locks
                .status(pb::LockStatusRequest {
                    key: lease.key.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(status.lease.map(|l| l.lease_id), Some(lease.lease_id));
        }
    }
}

/// Bad input gets a clear status, the server stays up and stored data is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path()).await;
    let lock_client = locks(server.addr);
    let event_client = events(server.addr);
    let cache_client = cache(server.addr);
    let held = lock_client
        .acquire(acquire_request("bad/held", "owner", 60_000, 0))
        .await
        .unwrap()
        .into_inner()
        .lease
        .unwrap();
    event_client
        .append(pb::AppendEventsRequest {
            stream: "bad-stream".into(),
            events: vec![event("Created", "{}")],
            expected_version: None,
        })
        .await
        .unwrap();

    let invalid_acquires = [
        acquire_request("", "owner", 1_000, 0),
        acquire_request(&"k".repeat(10_000), "owner", 1_000, 0),
        acquire_request("bad/key", "owner", 0, 0),
        acquire_request("bad/key", "owner", 86_400_001, 0),
        acquire_request("bad/key", "", 1_000, 0),
        acquire_request("bad/held", "owner", 1_000, 300_001),
    ];
    for request in invalid_acquires {
        let err = lock_client.acquire(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert_eq!(error_code(&err), "invalid_argument");
        assert!(!err.message().is_empty());
    }
    let err = lock_client
        .renew(pb::RenewLockRequest {
            lease_id: "no-such-lease".into(),
            ttl_ms: 1_000,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(error_code(&err), "lock_not_held");

    let malformed = event_client
        .append(pb::AppendEventsRequest {
            stream: "bad-stream".into(),
            events: vec![event("Fine", "{}"), event("Broken", "{not json")],
            expected_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(
        malformed.message().contains("JSON"),
        "{}",
        malformed.message()
    );
    let conflict = event_client
        .append(pb::AppendEventsRequest {
            stream: "bad-stream".into(),
            events: vec![event("Late", "{}")],
            expected_version: expected(pb::expected_version::Kind::Exact(5)),
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition);
    assert_eq!(error_code(&conflict), "version_conflict");

    let too_big = cache_client
        .set(pb::CacheSetRequest {
            key: "bad/cache".into(),
            value: vec![0u8; 1024 * 1024 + 1].into(),
            ttl_ms: 0,
            tags: vec![],
            request_id: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::ResourceExhausted);
    assert_eq!(error_code(&too_big), "payload_too_large");
    let huge_request = cache_client
        .set(pb::CacheSetRequest {
            key: "bad/cache".into(),
            value: vec![0u8; 20 * 1024 * 1024].into(),
            ttl_ms: 0,
            tags: vec![],
            request_id: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        huge_request.code(),
        Code::ResourceExhausted,
        "{}",
        huge_request.message()
    );

    // Still serving, nothing changed.
    assert!(server.is_running(), "server died:\n{}", server.log_text());
    let status = lock_client
        .status(pb::LockStatusRequest {
            key: "bad/held".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.lease.unwrap().lease_id, held.lease_id);
    let read = event_client
        .read_stream(pb::ReadStreamRequest {
            stream: "bad-stream".into(),
            from_version: 0,
            direction: pb::ReadDirection::FORWARDS,
            limit: 0,
            from_end: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.events.len(), 1, "no partial batch was stored");
    assert_eq!(read.last, 0);
    let cached = cache_client
        .get(pb::CacheGetRequest {
            key: "bad/cache".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!cached.found);
}

/// SIGTERM ends the process cleanly even while a subscription stream is open, and the
/// subscriber is told (UNAVAILABLE) rather than left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_with_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path()).await;
    let client = events(server.addr);
    let mut subscription = client
        .subscribe(pb::SubscribeRequest {
            stream: "".into(),
            start_at: 0,
            from_end: true,
        })
        .await
        .unwrap()
        .into_inner();
    client
        .append(pb::AppendEventsRequest {
            stream: "live".into(),
            events: vec![event("Ping", "{}")],
            expected_version: None,
        })
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("live event in time")
        .expect("stream open")
        .expect("event");
    assert_eq!(first.stream.as_str(), "live");

    let status = server
        .terminate(Duration::from_secs(20))
        .expect("exited within 20 s");
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        server.log_text()
    );
    let end = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("the stream ends");
    if let Some(Err(status)) = end {
        assert_eq!(status.code(), Code::Unavailable);
    }
}
