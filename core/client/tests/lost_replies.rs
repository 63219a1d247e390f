//! Lost answers between the client and `syros serve`: a `FaultProxy` forwards a request, the
//! server applies it, and the answer never comes back. The client must neither believe more than
//! the server granted nor repeat what is not safe to repeat.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use syros_client::{Client, ErrorKind};
use syros_faults::FaultProxy;

fn wall_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit in i64")
}

async fn connect_to(address: String) -> Client {
    Client::connect(options(&[address])).await.expect("connect")
}

/// Issue 11 item 2: the first acquire's answer is lost and the retry (same request id) gets
/// the lease the first attempt was granted, with that grant's expiry. The client's own idea of
/// the lease's end must not be later than the server's, though the retry got through a second
/// later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deduplicated_acquire_never_outlives_the_servers_lease() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let proxy = FaultProxy::start(server.addr()).await;
    let client = connect_to(proxy.address()).await;
    let direct = connect(&server).await;
    let key = "lost-reply/acquire-expiry";

    // The server finishes the request whose answer is lost (see `reply_cut_grace`).
    proxy.reply_cut_grace(Duration::from_millis(300));
    proxy.partition_after_fault(Duration::from_secs(1));
    proxy.cut_reply_after(key.as_bytes());
    let lease = client
        .lock(key)
        .ttl(Duration::from_secs(5))
        .wait(Duration::ZERO)
        .auto_renew(false)
        .acquire()
        .await
        .expect("the retry gets the lease the lost answer carried");
    let remaining = lease.remaining();
    let local_expiry_ms = wall_ms() + i64::try_from(remaining.as_millis()).expect("ms");
    assert_eq!(proxy.fired(), 1, "the first answer was lost");
    assert!(client.stats().retries >= 1, "the acquire was retried");

    let held = direct
        .lock_status(key)
        .await
        .expect("status")
        .expect("the key is held");
    assert_eq!(
        held.lease_id,
        lease.lease_id(),
        "the retry was de-duplicated"
    );
    assert_eq!(held.expires_at_ms, lease.info().expires_at_ms);
    // 2 ms of slack: the server truncates its clock to whole milliseconds.
    assert!(
        local_expiry_ms <= held.expires_at_ms + 2,
        "the client believes the lease lasts {} ms longer than the server's expiry \
         (remaining {remaining:?})",
        local_expiry_ms - held.expires_at_ms
    );
    assert!(
        remaining > Duration::from_secs(2),
        "and not absurdly less either: {remaining:?}"
    );
    lease.release().await.expect("release");
}

/// An acquire dropped by its caller while the server's grant is on its way back (a cancelled
/// task, an abandoned wait in an SDK) must not leave the lock held until its TTL: nobody would
/// ever release it, and every other client would wait out the whole TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_dropped_while_its_grant_is_in_flight_does_not_keep_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let proxy = FaultProxy::start(server.addr()).await;
    let client = connect_to(proxy.address()).await;
    let direct = connect(&server).await;
    let key = "lost-reply/dropped-acquire";

    proxy.delay_replies_to(key.as_bytes(), Duration::from_secs(1));
    let mut acquire = Box::pin(
        client
            .lock(key)
            .ttl(Duration::from_secs(60))
            .wait(Duration::ZERO)
            .acquire(),
    );
    let pending = tokio::time::timeout(Duration::from_millis(400), &mut acquire).await;
    assert!(
        pending.is_err(),
        "the answer is still held back by the proxy"
    );
    let granted = direct.lock_status(key).await.expect("status");
    assert!(
        granted.is_some(),
        "the server granted the acquire whose answer is held back"
    );
    drop(acquire);
    proxy.delay_replies_to(key.as_bytes(), Duration::ZERO);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while direct.lock_status(key).await.expect("status").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned grant is still held 10 s later (TTL 60 s): nobody released it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let next = direct
        .lock(key)
        .ttl(Duration::from_secs(5))
        .wait(Duration::ZERO)
        .acquire()
        .await
        .expect("the key is free for the next client");
    next.release().await.expect("release");
}

/// Issue 11 item 3: the first force-release's answer is lost after the server dropped the
/// lease and handed the key to the queued client. Repeating it would drop the queued client's
/// new lease; the client must report the unknown outcome instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_force_release_answer_does_not_drop_the_next_holders_lease() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let proxy = FaultProxy::start(server.addr()).await;
    let admin = connect_to(proxy.address()).await;
    let holder = connect(&server).await;
    let queued = connect(&server).await;
    let key = "lost-reply/force-release";

    let first = holder
        .lock(key)
        .ttl(Duration::from_secs(30))
        .acquire()
        .await
        .expect("first holder");
    let waiter = {
        let queued = queued.clone();
        tokio::spawn(async move {
            queued
                .lock(key)
                .ttl(Duration::from_secs(30))
                .wait(Duration::from_secs(20))
                .acquire()
                .await
        })
    };
    // Let the waiter queue up on the server.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Any repeat of the force-release reaches the server well after the hand-over.
    proxy.reply_cut_grace(Duration::from_millis(300));
    proxy.partition_after_fault(Duration::from_millis(500));
    proxy.cut_reply_after(key.as_bytes());
    let forced = admin.force_release(key).await;
    assert_eq!(proxy.fired(), 1, "the first answer was lost");
    let err = forced.expect_err("the outcome of the force-release is unknown to the admin");
    assert_eq!(err.kind, ErrorKind::OutcomeUnknown, "{err}");
    assert!(!err.retryable);

    let second = waiter
        .await
        .expect("waiter task")
        .expect("the queued client got the lock once the first lease was dropped");
    assert!(second.fencing_token() > first.fencing_token());
    assert!(first.renew().await.is_err(), "the first lease was dropped");
    // Past the partition: a repeat, had there been one, would have happened by now.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let held = holder
        .lock_status(key)
        .await
        .expect("status")
        .expect("the key is still held by the queued client");
    assert_eq!(held.lease_id, second.lease_id());
    second
        .renew()
        .await
        .expect("the queued client's lease survived");
    assert!(!second.is_lost());
    second.release().await.expect("release");
}

/// The PostgreSQL URL of the test database (scripts/test starts one); required, never skipped.
fn database_url() -> String {
    std::env::var("SYROS_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "SYROS_TEST_DATABASE_URL is not set: start PostgreSQL (scripts/lib/services.sh \
             start_postgres) before running this test"
        )
    })
}

/// `url` with its host:port replaced by `addr`.
fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (auth, rest) = match rest.split_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{scheme}://{auth}{addr}{path}")
}

fn postgres_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split('/').next().expect("host:port");
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().expect("host:port of the test database")
}

/// `syros serve` with its events in PostgreSQL, reached through a proxy that can lose
/// PostgreSQL's answers. Backend-specific whatever `SYROS_TEST_BACKEND` says: locks and cache
/// embedded, events in PostgreSQL behind the proxy.
async fn server_over_postgres_proxy(dir: &std::path::Path) -> (Server, FaultProxy) {
    let url = database_url();
    let proxy = FaultProxy::start(postgres_addr(&url)).await;
    let server = Server::start_on(
        dir,
        Backend::Embedded,
        &[("DATABASE_URL", via(&url, proxy.addr()).as_str())],
    );
    (server, proxy)
}

/// Bytes only the statement that writes an append sends: the notification channel it binds
/// (`syros_events_<schema>`, the default namespace here). That statement is its own transaction,
/// so its answer is the answer to its COMMIT.
const APPEND_WRITE: &[u8] = b"syros_events_syros";

/// Issue 11 item 6: the server's connection to PostgreSQL is lost right after COMMIT (the
/// append is stored, the server never hears so). The client must end up with success, the
/// events stored exactly once: no duplicate under ANY, no false conflict under NO_STREAM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_committed_before_a_lost_connection_is_stored_once() {
    use syros_client::{Direction, EventData, ExpectedVersion, ReadFrom};

    let dir = tempfile::tempdir().expect("tempdir");
    let (server, proxy) = server_over_postgres_proxy(dir.path()).await;
    let client = connect(&server).await;
    let events = client.events();

    for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream] {
        let stream = format!("lost-commit-{}", uuid::Uuid::new_v4().simple());
        let fired = proxy.fired();
        let retries = client.stats().retries;
        proxy.cut_reply_after(APPEND_WRITE);
        let appended = events
            .append(
                &stream,
                vec![
                    EventData::new("Happened", r#"{"n":0}"#),
                    EventData::new("Happened", r#"{"n":1}"#),
                ],
                expected,
            )
            .await
            .unwrap_or_else(|err| panic!("{expected:?}: the retry is acknowledged: {err}"));
        assert_eq!(
            proxy.fired(),
            fired + 1,
            "{expected:?}: the COMMIT answer was lost"
        );
        assert!(
            client.stats().retries > retries,
            "{expected:?}: the append was retried"
        );
        let stored = events
            .read_stream(&stream, ReadFrom::At(0), Direction::Forwards, 100)
            .await
            .expect("read");
        assert_eq!(
            stored.events.len(),
            2,
            "{expected:?}: stored exactly once: {:?}",
            stored.events
        );
        assert_eq!(appended.last_version, 1);
        assert_eq!(appended.first_position, stored.events[0].global_position);
        assert_eq!(appended.last_position, stored.events[1].global_position);
    }
}

/// Without retries the client reports the ambiguous outcome as such, never as `unavailable`,
/// and a repeat by the application with the same event ids is acknowledged, not duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_without_retry_is_outcome_unknown() {
    use syros_client::{Direction, EventData, ExpectedVersion, ReadFrom, RetryPolicy};

    let dir = tempfile::tempdir().expect("tempdir");
    let (server, proxy) = server_over_postgres_proxy(dir.path()).await;
    let mut options = options(&[server.address()]);
    options.retry = RetryPolicy::no_retry();
    let client = Client::connect(options).await.expect("connect");
    let events = client.events();
    let stream = format!("lost-commit-once-{}", uuid::Uuid::new_v4().simple());
    let batch = vec![EventData::new("Happened", "{}").with_id(format!("{stream}-0"))];

    proxy.cut_reply_after(APPEND_WRITE);
    let err = events
        .append(&stream, batch.clone(), ExpectedVersion::NoStream)
        .await
        .expect_err("the outcome is unknown");
    assert_eq!(err.kind, ErrorKind::OutcomeUnknown, "{err}");
    assert_eq!(proxy.fired(), 1);
    let again = events
        .append(&stream, batch, ExpectedVersion::NoStream)
        .await
        .expect("the application's repeat is acknowledged");
    assert_eq!(again.last_version, 0);
    let stored = events
        .read_stream(&stream, ReadFrom::At(0), Direction::Forwards, 100)
        .await
        .expect("read");
    assert_eq!(stored.events.len(), 1, "stored once");
}
