//! Retries, deadlines, failover, cache single-flight and resumable subscriptions against a real
//! `syros serve`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use syros_client::{
    Client, Direction, ErrorKind, EventData, ExpectedVersion, ReadFrom, RetryPolicy, SetOptions,
    SubscribeFrom,
};
use tokio::task::block_in_place;

/// Calls made while the server is briefly down succeed once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_a_short_outage_succeed_when_the_server_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let client = connect(&server).await;
    let cache = client.cache();
    cache
        .set("outage/a", "before", SetOptions::default())
        .await
        .expect("set");

    block_in_place(|| server.kill9());
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        server.restart();
        server
    });
    let before = client.stats();
    let started = Instant::now();
    let got = cache.get("outage/a").await.expect("get after the outage");
    let events = client
        .events()
        .append(
            "outage-stream",
            vec![EventData::new("Happened", "{}")],
            ExpectedVersion::Any,
        )
        .await
        .expect("append with expected version Any is retried: it never reached the server");
    let _server = restarter.join().expect("restarter");
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(got.map(|e| e.value), Some("before".into()));
    assert_eq!(events.last_version, 0);
    let stats = client.stats();
    assert!(
        stats.retries > before.retries,
        "the calls were retried: {before:?} -> {stats:?}"
    );
}

/// A non-retryable error is returned after exactly one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_retryable_errors_are_not_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;

    let before = client.stats();
    let err = client
        .cache()
        .set("", "value", SetOptions::default())
        .await
        .expect_err("empty key");
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
    assert!(!err.retryable);
    assert_eq!(err.details.get("attempts").map(String::as_str), Some("1"));
    let after = client.stats();
    assert_eq!(after.attempts - before.attempts, 1);
    assert_eq!(after.retries, before.retries);

    let events = client.events();
    events
        .append(
            "conflict",
            vec![EventData::new("A", "{}")],
            ExpectedVersion::NoStream,
        )
        .await
        .expect("first append");
    let before = client.stats();
    let err = events
        .append(
            "conflict",
            vec![EventData::new("B", "{}")],
            ExpectedVersion::NoStream,
        )
        .await
        .expect_err("conflict");
    assert_eq!(err.kind, ErrorKind::VersionConflict, "{err}");
    assert_eq!(client.stats().attempts - before.attempts, 1);

    let before = client.stats();
    let err = client
        .lock("bad ttl")
        .ttl(Duration::from_millis(1))
        .acquire()
        .await
        .expect_err("ttl below the minimum");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert_eq!(client.stats().attempts - before.attempts, 1);
}

/// With the server gone, a call gives up at its deadline, not before and not much after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let mut options = options(&[server.address()]);
    options.retry = RetryPolicy {
        initial_interval: Duration::from_millis(20),
        multiplier: 2.0,
        max_interval: Duration::from_millis(200),
        max_attempts: u32::MAX,
        deadline: Some(Duration::from_millis(1500)),
    };
    let client = Client::connect(options).await.expect("connect");
    block_in_place(|| server.kill9());

    let started = Instant::now();
    let err = client.cache().get("gone").await.expect_err("server down");
    let took = started.elapsed();
    assert_eq!(err.kind, ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(
        err.details.get("last_error_code").map(String::as_str),
        Some("unavailable"),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_millis(2500),
        "gave up after {took:?} with a 1.5 s deadline"
    );
    assert!(client.stats().attempts > 3, "it kept retrying until then");
}

/// With several addresses, the client uses one that answers and fails over when it dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_address() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let dead = unused_address();
    let mut a = Server::start(dir_a.path());
    let b = Server::start(dir_b.path());
    let client = Client::connect(options(&[dead, a.address(), b.address()]))
        .await
        .expect("connect skips the dead address");
    assert_eq!(client.current_address(), a.addr());
    client
        .cache()
        .set("where", "a", SetOptions::default())
        .await
        .expect("set on a");

    block_in_place(|| a.kill9());
    let got = client
        .cache()
        .get("where")
        .await
        .expect("get after failover");
    assert_eq!(client.current_address(), b.addr());
    assert!(got.is_none(), "b has its own data");
    assert!(client.stats().failovers >= 2);
}

/// 20 concurrent get_or_compute callers for one key compute once and all get the value; later
/// callers hit the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_compute_is_single_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let computed = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..20 {
        let cache = client.cache();
        let computed = computed.clone();
        callers.push(tokio::spawn(async move {
            cache
                .get_or_compute(
                    "sf/key",
                    Some(Duration::from_secs(60)),
                    move || async move {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, std::io::Error>("expensive".to_string())
                    },
                )
                .await
        }));
    }
    for caller in callers {
        let value = caller.await.expect("join").expect("get_or_compute");
        assert_eq!(&value[..], b"expensive");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1, "computed exactly once");

    let again = client
        .cache()
        .get_or_compute("sf/key", None, || async {
            Err::<String, _>("must not be called on a hit")
        })
        .await
        .expect("hit");
    assert_eq!(&again[..], b"expensive");

    let err = client
        .cache()
        .get_or_compute("sf/failing", None, || async { Err::<String, _>("boom") })
        .await
        .expect_err("compute failed");
    assert_eq!(err.kind, ErrorKind::Callback);
    assert!(err.message.contains("boom"));
    assert!(client
        .cache()
        .get("sf/failing")
        .await
        .expect("get")
        .is_none());
}

/// Cache basics through the client: TTL, tags, delete, invalidate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_set_get_delete_invalidate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let cache = client.cache();
    let expiry = cache
        .set(
            "user:1",
            "ada",
            SetOptions::ttl(Duration::from_secs(60)).tag("users"),
        )
        .await
        .expect("set");
    assert!(expiry.is_some());
    cache
        .set("user:2", "bob", SetOptions::default().tag("users"))
        .await
        .expect("set");
    let entry = cache.get("user:1").await.expect("get").expect("found");
    assert_eq!(&entry.value[..], b"ada");
    assert_eq!(entry.tags, vec!["users".to_string()]);
    assert!(cache.delete("user:1").await.expect("delete"));
    assert!(!cache.delete("user:1").await.expect("delete again"));
    cache
        .set("user:3", "eve", SetOptions::default().tag("users"))
        .await
        .expect("set");
    assert_eq!(cache.invalidate_tag("users").await.expect("invalidate"), 2);
    assert!(cache.get("user:2").await.expect("get").is_none());
}

fn versions(events: &[syros_client::RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

async fn append_batch(client: &Client, stream: &str, from: u64, n: u64) {
    let events = (from..from + n)
        .map(|i| EventData::new("Numbered", format!("{{\"n\":{i}}}")))
        .collect();
    let expected = if from == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(from - 1)
    };
    let result = client
        .events()
        .append(stream, events, expected)
        .await
        .expect("append");
    assert_eq!(result.last_version, from + n - 1);
}

async fn take(sub: &mut syros_client::Subscription, n: usize) -> Vec<syros_client::RecordedEvent> {
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("an event within 20 s")
            .expect("subscription open")
            .expect("no error");
        got.push(next);
    }
    got
}

/// A subscription survives a crash and a graceful restart of the server with no gap and no
/// duplicate; so does a subscription to all streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_server_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let client = connect(&server).await;
    let events = client.events();
    append_batch(&client, "orders", 0, 3).await;

    let mut sub = events
        .subscribe("orders", SubscribeFrom::Start)
        .await
        .expect("subscribe");
    let mut all = events
        .subscribe_all(SubscribeFrom::Start)
        .await
        .expect("subscribe all");
    let mut live = events
        .subscribe("orders", SubscribeFrom::End)
        .await
        .expect("subscribe at the end");
    let mut seen = take(&mut sub, 3).await;
    let mut seen_all = take(&mut all, 3).await;
    // `End` pinned its position when subscribe returned: events appended across the restarts
    // must reach it too.

    block_in_place(|| server.kill9());
    tokio::time::sleep(Duration::from_millis(500)).await;
    block_in_place(|| server.restart());
    append_batch(&client, "orders", 3, 4).await;
    seen.extend(take(&mut sub, 4).await);
    seen_all.extend(take(&mut all, 4).await);

    block_in_place(|| server.terminate());
    block_in_place(|| server.restart());
    append_batch(&client, "orders", 7, 3).await;
    seen.extend(take(&mut sub, 3).await);
    seen_all.extend(take(&mut all, 3).await);
    let seen_live = take(&mut live, 7).await;

    assert_eq!(versions(&seen), (0..10).collect::<Vec<_>>());
    let positions: Vec<u64> = seen_all.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, (1..=10).collect::<Vec<_>>());
    assert_eq!(versions(&seen_live), (3..10).collect::<Vec<_>>());
    assert_eq!(seen[9].data_json, "{\"n\":9}");

    // Nothing extra arrives.
    let extra = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(extra.is_err(), "no duplicate after the restarts: {extra:?}");

    let read = events
        .read_stream("orders", ReadFrom::End, Direction::Backwards, 2)
        .await
        .expect("read");
    assert_eq!(versions(&read.events), vec![9, 8]);
    assert_eq!(read.last, 9);
}

/// A subscription with no events for longer than the call timeout stays open and then delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscription_outlives_the_call_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut options = options(&[server.address()]);
    options.call_timeout = Duration::from_millis(500);
    let client = Client::connect(options).await.expect("connect");
    let mut sub = client
        .events()
        .subscribe("quiet", SubscribeFrom::Start)
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    append_batch(&client, "quiet", 0, 1).await;
    let got = take(&mut sub, 1).await;
    assert_eq!(versions(&got), vec![0]);
}

/// The auth token hook is called and sent; a token that cannot be a header is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_hook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let calls = Arc::new(AtomicUsize::new(0));
    let mut options = options(&[server.address()]);
    let counter = calls.clone();
    options.auth_token = Some(Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Some("secret-token".to_string())
    }));
    let client = Client::connect(options.clone()).await.expect("connect");
    client.cache().get("k").await.expect("get");
    assert!(calls.load(Ordering::SeqCst) >= 2);

    options.auth_token = Some(Arc::new(|| Some("bad\ntoken".to_string())));
    let err = Client::connect(options).await.expect_err("bad token");
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
}
