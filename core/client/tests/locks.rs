//! Leases against a real `syros serve`: renewal, loss, restarts, release.

mod common;

use std::time::{Duration, Instant};

use common::*;
use syros_client::{ErrorKind, LeaseEnd, LockOptions};
use tokio::task::block_in_place;

/// The server is killed while a lease is held and comes back (same data, same port) before the
/// TTL runs out: the lease survives and renewal goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_survives_a_restart_within_its_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let client = connect(&server).await;
    let ttl = Duration::from_secs(4);
    let lease = client
        .lock("restart/held")
        .ttl(ttl)
        .acquire()
        .await
        .expect("acquire");
    let first = lease.info();

    block_in_place(|| server.kill9());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    block_in_place(|| server.restart());

    // Hold on for three more TTLs: renewal must carry on against the restarted server.
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        assert!(!lease.is_lost(), "the lease was declared lost");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let held = client
        .lock_status("restart/held")
        .await
        .expect("status")
        .expect("still held");
    assert_eq!(held.lease_id, first.lease_id);
    assert_eq!(held.fencing_token, first.fencing_token);
    assert!(
        held.expires_at_ms > first.expires_at_ms + 4_000,
        "renewed after the restart: {} vs {}",
        held.expires_at_ms,
        first.expires_at_ms
    );
    lease.release().await.expect("release");
    assert!(client
        .lock_status("restart/held")
        .await
        .expect("status")
        .is_none());
}

/// The server stays down past the TTL: `lost()` fires, no later than the lease's expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_lost_when_the_server_is_down_past_its_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let client = connect(&server).await;
    let ttl = Duration::from_millis(1500);
    let started = Instant::now();
    let lease = client
        .lock("down/held")
        .ttl(ttl)
        .acquire()
        .await
        .expect("acquire");
    let signal = lease.lost_signal();
    assert!(!signal.is_lost());

    block_in_place(|| server.kill9());
    tokio::time::timeout(ttl * 3, lease.lost())
        .await
        .expect("lost() fired");
    let lost_after = started.elapsed();
    assert!(lease.is_lost());
    assert!(signal.is_lost());
    assert_eq!(signal.wait().await, LeaseEnd::Lost);
    // Declared lost by the last successful renewal + TTL at the latest, which is before the
    // server's own expiry of the lease.
    assert!(
        lost_after >= ttl && lost_after <= ttl * 2,
        "lost after {lost_after:?} with a TTL of {ttl:?}"
    );

    block_in_place(|| server.restart());
    let err = lease.release().await.expect_err("a lost lease");
    assert_eq!(err.kind, ErrorKind::LockNotHeld);
}

/// Renewal keeps a lease with a TTL of 1 s alive through 10 s of holding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_a_one_second_lease_for_ten_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let other = connect(&server).await;
    let lease = client
        .lock("renew/short")
        .ttl(Duration::from_secs(1))
        .acquire()
        .await
        .expect("acquire");
    let until = Instant::now() + Duration::from_secs(10);
    let mut checks = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!lease.is_lost());
        let holder = other
            .lock_status("renew/short")
            .await
            .expect("status")
            .expect("held by the renewed lease");
        assert_eq!(holder.lease_id, lease.lease_id());
        // Nobody else gets it meanwhile.
        let stolen = other
            .lock("renew/short")
            .owner("thief")
            .try_acquire()
            .await
            .expect("try");
        assert!(stolen.is_none(), "someone else acquired a held lock");
        checks += 1;
    }
    assert!(checks >= 20);
    lease.release().await.expect("release");
}

/// The server saying the lease is gone (an admin force-release) fires `lost()` at the next
/// renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_is_lost_when_the_server_drops_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let lease = client
        .lock("admin/dropped")
        .ttl(Duration::from_secs(3))
        .acquire()
        .await
        .expect("acquire");
    let dropped = client
        .force_release("admin/dropped")
        .await
        .expect("force release")
        .expect("was held");
    assert_eq!(dropped.lease_id, lease.lease_id());
    tokio::time::timeout(Duration::from_secs(3), lease.lost())
        .await
        .expect("lost() fired after the next renewal");
    assert_eq!(
        lease.release().await.expect_err("lost").kind,
        ErrorKind::LockNotHeld
    );
}

/// Acquire returns strictly increasing fencing tokens; a held lock times out as LockTimeout with
/// the holder's details; dropping a lease releases it for the next waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_tokens_and_release_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let first = client
        .lock("drop/key")
        .owner("first")
        .ttl(Duration::from_secs(30))
        .acquire()
        .await
        .expect("acquire");

    let started = Instant::now();
    let err = client
        .lock("drop/key")
        .owner("second")
        .wait(Duration::from_millis(400))
        .acquire()
        .await
        .expect_err("held");
    assert_eq!(err.kind, ErrorKind::LockTimeout, "{err}");
    assert!(!err.retryable);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        err.details.get("holder_owner").map(String::as_str),
        Some("first")
    );

    let token = first.fencing_token();
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .lock("drop/key")
                .owner("second")
                .wait(Duration::from_secs(10))
                .acquire()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dropped_at = Instant::now();
    drop(first);
    let second = waiter
        .await
        .expect("join")
        .expect("acquired after the drop");
    assert!(
        dropped_at.elapsed() < Duration::from_secs(5),
        "release on drop woke the waiter long before the 30 s TTL"
    );
    assert!(second.fencing_token() > token);
    second.release().await.expect("release");
}

/// `with_lock` runs the closure under the lease and releases it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lock_runs_under_the_lease() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let options = LockOptions {
        ttl: Duration::from_secs(5),
        ..LockOptions::default()
    };
    let probe = client.clone();
    let (token, holder) = client
        .with_lock("with/key", options.clone(), |ctx| async move {
            let holder = probe.lock_status("with/key").await.expect("status");
            (ctx.lease.fencing_token, holder)
        })
        .await
        .expect("with_lock");
    assert_eq!(holder.map(|h| h.fencing_token), Some(token));
    assert!(client
        .lock_status("with/key")
        .await
        .expect("status")
        .is_none());

    // Lost while the closure runs (force-released) -> LockNotHeld, not the closure's result.
    let admin = client.clone();
    let err = client
        .with_lock(
            "with/key",
            LockOptions {
                ttl: Duration::from_millis(600),
                ..options
            },
            |ctx| async move {
                admin.force_release("with/key").await.expect("force");
                ctx.lost.wait().await
            },
        )
        .await
        .expect_err("lost inside");
    assert_eq!(err.kind, ErrorKind::LockNotHeld);
}
