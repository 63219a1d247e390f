//! Locks: leases, fencing tokens, waiting, fairness, expiry, validation and restarts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syros_engine::limits::now_ms;
use syros_engine::{
    AcquireLock, AcquireOutcome, Engine, ErrorKind, Lease, LockChange, LockChangeKind,
};
use tokio::sync::broadcast;

use super::{expect_kind, unique, within, Harness};

fn args(key: &str, owner: &str, ttl_ms: u64, wait_timeout_ms: u64) -> AcquireLock {
    AcquireLock {
        key: key.to_string(),
        owner: owner.to_string(),
        ttl_ms,
        wait_timeout_ms,
        request_id: String::new(),
    }
}

/// Acquire that must succeed.
async fn take(engine: &Engine, key: &str, owner: &str, ttl_ms: u64, wait_ms: u64) -> Lease {
    match engine
        .locks
        .acquire(args(key, owner, ttl_ms, wait_ms))
        .await
        .expect("acquire")
    {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("expected to acquire {key:?}, got {other:?}"),
    }
}

/// Acquire that must time out; returns the holder reported.
async fn refused(engine: &Engine, key: &str, owner: &str, wait_ms: u64) -> Option<Lease> {
    match engine
        .locks
        .acquire(args(key, owner, 10_000, wait_ms))
        .await
        .expect("acquire")
    {
        AcquireOutcome::TimedOut { holder } => holder,
        other => panic!("expected {key:?} to be refused, got {other:?}"),
    }
}

fn keys(leases: &[Lease]) -> Vec<&str> {
    leases.iter().map(|l| l.key.as_str()).collect()
}

pub async fn acquire_status_and_list<H: Harness>(h: H) {
    let e = h.engine();
    let p = unique("list");
    let (a1, a2, b1) = (format!("{p}/a/1"), format!("{p}/a/2"), format!("{p}/b/1"));

    let before = now_ms();
    let lease = take(&e, &a1, "owner-1", 10_000, 0).await;
    let after = now_ms();
    assert!(lease.fencing_token > 0, "{lease:?}");
    assert_eq!(lease.key, a1);
    assert_eq!(lease.owner, "owner-1");
    assert!(!lease.lease_id.is_empty());
    // The clock may be the backend's: allow a second of skew, far less than the TTL.
    assert!(
        lease.acquired_at_ms >= before - 1_000 && lease.acquired_at_ms <= after + 1_000,
        "acquired_at_ms {} not within [{before}, {after}]",
        lease.acquired_at_ms
    );
    assert_eq!(
        lease.expires_at_ms - lease.acquired_at_ms,
        10_000,
        "{lease:?}"
    );

    assert_eq!(e.locks.status(&a1).await.unwrap(), Some(lease.clone()));
    assert_eq!(e.locks.status(&a2).await.unwrap(), None);

    // Acquire out of key order; listing is by key.
    let lease_b1 = take(&e, &b1, "owner-2", 10_000, 0).await;
    let lease_a2 = take(&e, &a2, "owner-3", 10_000, 0).await;

    let listed = e.locks.list(&format!("{p}/a/"), 0).await.unwrap();
    assert_eq!(keys(&listed), vec![a1.as_str(), a2.as_str()]);
    assert_eq!(listed, vec![lease.clone(), lease_a2.clone()]);

    let all = e.locks.list(&format!("{p}/"), 0).await.unwrap();
    assert_eq!(all, vec![lease.clone(), lease_a2, lease_b1]);

    let limited = e.locks.list(&format!("{p}/"), 1).await.unwrap();
    assert_eq!(limited, vec![lease.clone()]);

    assert!(e
        .locks
        .list(&format!("{p}/c/"), 0)
        .await
        .unwrap()
        .is_empty());
    // A prefix is not a substring match.
    assert!(e
        .locks
        .list("a/", 0)
        .await
        .unwrap()
        .iter()
        .all(|l| l.key.starts_with("a/")));

    // Released leases leave status and list.
    e.locks.release(&lease.lease_id).await.unwrap();
    assert_eq!(e.locks.status(&a1).await.unwrap(), None);
    assert_eq!(
        keys(&e.locks.list(&format!("{p}/a/"), 0).await.unwrap()),
        vec![a2.as_str()]
    );
}

pub async fn list_prefix_is_literal<H: Harness>(h: H) {
    let e = h.engine();
    let p = unique("literal");
    let names = ["x%1", "x_1", "xa1", "xab", "X%1"];
    for name in names {
        take(&e, &format!("{p}/{name}"), "o", 10_000, 0).await;
    }
    let listed = |prefix: String| {
        let e = e.clone();
        async move {
            e.locks
                .list(&prefix, 0)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(format!("{p}/x%")).await, vec![format!("{p}/x%1")]);
    assert_eq!(listed(format!("{p}/x_")).await, vec![format!("{p}/x_1")]);
    assert_eq!(listed(format!("{p}/x%1")).await, vec![format!("{p}/x%1")]);
    assert!(listed(format!("{p}/%")).await.is_empty());
    assert!(listed(format!("{p}/_")).await.is_empty());
    // Case-sensitive, and ordered by key.
    assert_eq!(listed(format!("{p}/X")).await, vec![format!("{p}/X%1")]);
    let mut expected: Vec<String> = names.iter().map(|n| format!("{p}/{n}")).collect();
    expected.sort();
    assert_eq!(listed(format!("{p}/")).await, expected);
}

pub async fn contention_renew_release<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("contended");
    let first = take(&e, &k, "first", 5_000, 0).await;

    let holder = refused(&e, &k, "second", 0).await;
    assert_eq!(holder, Some(first.clone()));
    // The same owner without a request id does not get the lock twice either.
    assert_eq!(refused(&e, &k, "first", 0).await, Some(first.clone()));

    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = now_ms();
    let renewed = e.locks.renew(&first.lease_id, 20_000).await.unwrap();
    let after = now_ms();
    assert_eq!(renewed.lease_id, first.lease_id);
    assert_eq!(renewed.fencing_token, first.fencing_token);
    assert_eq!(renewed.owner, first.owner);
    assert!(
        renewed.expires_at_ms > first.expires_at_ms + 10_000,
        "{renewed:?}"
    );
    assert!(
        renewed.expires_at_ms >= before + 20_000 - 1_000
            && renewed.expires_at_ms <= after + 20_000 + 1_000,
        "{renewed:?}"
    );
    assert_eq!(e.locks.status(&k).await.unwrap(), Some(renewed.clone()));

    let released = e.locks.release(&first.lease_id).await.unwrap();
    assert_eq!(released.lease_id, first.lease_id);
    assert_eq!(released.key, k);
    assert_eq!(e.locks.status(&k).await.unwrap(), None);

    let err = expect_kind(
        e.locks.release(&first.lease_id).await,
        ErrorKind::LockNotHeld,
    );
    assert!(!err.retryable());
    expect_kind(
        e.locks.renew(&first.lease_id, 5_000).await,
        ErrorKind::LockNotHeld,
    );
    expect_kind(
        e.locks.renew("no-such-lease", 5_000).await,
        ErrorKind::LockNotHeld,
    );

    // Free again: the second owner gets it at once.
    let second = take(&e, &k, "second", 5_000, 0).await;
    assert_ne!(second.lease_id, first.lease_id);
    // The old lease id does not release the new lease.
    expect_kind(
        e.locks.release(&first.lease_id).await,
        ErrorKind::LockNotHeld,
    );
    assert_eq!(e.locks.status(&k).await.unwrap(), Some(second));
}

pub async fn fencing_tokens_increase<H: Harness>(h: H) {
    let e = h.engine();
    let k1 = unique("fence-1");
    let k2 = unique("fence-2");
    let mut tokens = Vec::new();
    for round in 0..6 {
        let key = if round % 3 == 2 { &k2 } else { &k1 };
        let lease = take(&e, key, "o", 5_000, 0).await;
        tokens.push(lease.fencing_token);
        e.locks.release(&lease.lease_id).await.unwrap();
    }
    // Two keys held at once.
    let x = take(&e, &k1, "o", 5_000, 0).await;
    let y = take(&e, &k2, "o", 5_000, 0).await;
    tokens.push(x.fencing_token);
    tokens.push(y.fencing_token);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens must strictly increase: {tokens:?}"
    );
    // A refused attempt and a renew do not change the token.
    refused(&e, &k1, "other", 0).await;
    assert_eq!(
        e.locks
            .renew(&x.lease_id, 5_000)
            .await
            .unwrap()
            .fencing_token,
        x.fencing_token
    );
    e.locks.release(&x.lease_id).await.unwrap();
    let z = take(&e, &k1, "o", 5_000, 0).await;
    assert!(z.fencing_token > y.fencing_token);
}

pub async fn waiter_gets_lock_after_release<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("wait-release");
    let holder = take(&e, &k, "holder", 30_000, 0).await;

    let waiter = {
        let e = e.clone();
        let k = k.clone();
        tokio::spawn(async move {
            let outcome = e.locks.acquire(args(&k, "waiter", 5_000, 5_000)).await;
            (outcome, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter returned while the lock was held"
    );
    let release_started = Instant::now();
    e.locks.release(&holder.lease_id).await.unwrap();

    let (outcome, got_at) = within(10, "waiter", waiter).await.unwrap();
    let lease = match outcome.unwrap() {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("waiter did not get the lock: {other:?}"),
    };
    assert!(
        got_at >= release_started,
        "waiter got the lock before the release"
    );
    let delay = got_at - release_started;
    assert!(delay < Duration::from_secs(2), "hand-off took {delay:?}");
    assert_eq!(lease.owner, "waiter");
    assert!(lease.fencing_token > holder.fencing_token);
    assert_eq!(e.locks.status(&k).await.unwrap(), Some(lease));
}

pub async fn waiter_times_out_with_holder<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("wait-timeout");
    let holder = take(&e, &k, "holder", 30_000, 0).await;

    let started = Instant::now();
    let reported = refused(&e, &k, "waiter", 300).await;
    let waited = started.elapsed();
    assert_eq!(reported, Some(holder.clone()));
    assert!(
        waited >= Duration::from_millis(295),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "gave up after {waited:?}");

    // Nothing changed for the holder, and a later waiter is not blocked by the one that left.
    assert_eq!(e.locks.status(&k).await.unwrap(), Some(holder.clone()));
    e.locks.release(&holder.lease_id).await.unwrap();
    let next = take(&e, &k, "next", 5_000, 1_000).await;
    assert!(next.fencing_token > holder.fencing_token);
}

pub async fn expired_lease_goes_to_waiter<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("expiry");
    let started = Instant::now();
    let holder = take(&e, &k, "holder", 300, 0).await;

    let lease = take(&e, &k, "waiter", 5_000, 3_000).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290),
        "got the lock after {waited:?}, before the 300 ms lease expired"
    );
    assert!(
        waited < Duration::from_millis(2_500),
        "got the lock after {waited:?}"
    );
    assert!(now_ms() >= holder.expires_at_ms);
    assert_eq!(lease.owner, "waiter");
    assert!(lease.fencing_token > holder.fencing_token);

    // The expired lease is gone for good.
    expect_kind(
        e.locks.renew(&holder.lease_id, 5_000).await,
        ErrorKind::LockNotHeld,
    );
    expect_kind(
        e.locks.release(&holder.lease_id).await,
        ErrorKind::LockNotHeld,
    );
    assert_eq!(e.locks.status(&k).await.unwrap(), Some(lease));

    // A lease nobody waits for lapses too: no status, not listed, free for the next owner.
    let lone = format!("{k}/lone");
    let lapsed = take(&e, &lone, "holder", 100, 0).await;
    assert_eq!(e.locks.list(&lone, 0).await.unwrap(), vec![lapsed.clone()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        e.locks.status(&lone).await.unwrap(),
        None,
        "expired lease reported"
    );
    assert!(
        e.locks.list(&lone, 0).await.unwrap().is_empty(),
        "expired lease listed"
    );
    expect_kind(
        e.locks.renew(&lapsed.lease_id, 5_000).await,
        ErrorKind::LockNotHeld,
    );
    let next = take(&e, &lone, "next", 5_000, 0).await;
    assert!(next.fencing_token > lapsed.fencing_token);
}

pub async fn waiters_are_served_fifo<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("fifo");
    let holder = take(&e, &k, "holder", 30_000, 0).await;
    let order = Arc::new(Mutex::new(Vec::<(usize, u64)>::new()));

    let mut tasks = Vec::new();
    for i in 0..5 {
        let (e, k, order) = (e.clone(), k.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let lease = take(&e, &k, &format!("w{i}"), 10_000, 10_000).await;
            order.lock().unwrap().push((i, lease.fencing_token));
            tokio::time::sleep(Duration::from_millis(5)).await;
            e.locks.release(&lease.lease_id).await.unwrap();
        }));
        // Let waiter i queue before waiter i + 1 arrives.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(order.lock().unwrap().is_empty(), "a waiter got a held lock");
    e.locks.release(&holder.lease_id).await.unwrap();
    for task in tasks {
        within(15, "fifo waiter", task).await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    let indexes: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, vec![0, 1, 2, 3, 4], "served out of order");
    assert!(order.windows(2).all(|w| w[0].1 < w[1].1), "{order:?}");
    assert!(order[0].1 > holder.fencing_token);
}

pub async fn mutual_exclusion_under_contention<H: Harness>(h: H) {
    const TASKS: usize = 32;
    const ROUNDS: usize = 5;
    let e = h.engine();
    let k = unique("mutex");
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (e, k) = (e.clone(), k.clone());
        let (counter, inside, tokens) = (counter.clone(), inside.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let lease = take(&e, &k, &format!("task-{t}"), 5_000, 10_000).await;
                assert!(
                    !inside.swap(true, Ordering::SeqCst),
                    "two holders in the critical section"
                );
                tokens.lock().unwrap().push(lease.fencing_token);
                let seen = counter.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                counter.store(seen + 1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                e.locks.release(&lease.lease_id).await.unwrap();
            }
        }));
    }
    for task in tasks {
        within(60, "mutex task", task).await.unwrap();
    }
    let total = (TASKS * ROUNDS) as u64;
    assert_eq!(counter.load(Ordering::SeqCst), total, "lost updates");
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len() as u64, total);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens not increasing in critical-section order: {tokens:?}"
    );
    assert_eq!(e.locks.status(&k).await.unwrap(), None);
}

pub async fn force_release_hands_over<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("force");
    let first = take(&e, &k, "first", 30_000, 0).await;

    let waiter = {
        let (e, k) = (e.clone(), k.clone());
        tokio::spawn(async move { take(&e, &k, "waiter", 5_000, 5_000).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());

    let dropped = e.locks.force_release(&k).await.unwrap();
    assert_eq!(dropped, Some(first.clone()));
    expect_kind(
        e.locks.renew(&first.lease_id, 5_000).await,
        ErrorKind::LockNotHeld,
    );
    expect_kind(
        e.locks.release(&first.lease_id).await,
        ErrorKind::LockNotHeld,
    );

    let handed = within(5, "waiter after force_release", waiter)
        .await
        .unwrap();
    assert_eq!(handed.owner, "waiter");
    assert!(handed.fencing_token > first.fencing_token);
    assert_eq!(e.locks.status(&k).await.unwrap(), Some(handed.clone()));

    // Force-releasing a free key drops nothing.
    assert_eq!(e.locks.force_release(&unique("free")).await.unwrap(), None);
    e.locks.release(&handed.lease_id).await.unwrap();
    assert_eq!(e.locks.force_release(&k).await.unwrap(), None);
}

pub async fn cancelled_waiter_gets_nothing<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("cancel");
    let holder = take(&e, &k, "holder", 30_000, 0).await;

    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        e.locks.acquire(args(&k, "quitter", 10_000, 5_000)),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the acquire should still be waiting: {cancelled:?}"
    );

    e.locks.release(&holder.lease_id).await.unwrap();
    // Give a (wrong) hand-off to the cancelled waiter time to happen.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        e.locks.status(&k).await.unwrap(),
        None,
        "the lock went to a cancelled waiter"
    );
    let next = take(&e, &k, "next", 5_000, 0).await;
    assert_eq!(next.owner, "next");
}

/// A waiter whose call is dropped after the hand-off delivered it the lease, before it looked
/// (its client cancelled at that moment): the lease must not stay held by nobody until its TTL.
pub async fn waiter_dropped_after_delivery_releases_the_lease<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("dropped-after-delivery");
    let holder = take(&e, &k, "holder", 30_000, 0).await;

    let mut waiting = Box::pin(e.locks.acquire(args(&k, "quitter", 60_000, 10_000)));
    let still = tokio::time::timeout(Duration::from_millis(100), &mut waiting).await;
    assert!(still.is_err(), "the acquire should be queued: {still:?}");

    e.locks.release(&holder.lease_id).await.unwrap();
    // The hand-off runs in the background and delivers to the queued waiter, which is not
    // polled meanwhile: the lease now sits undelivered in its slot.
    within(5, "the hand-off to the queued waiter", async {
        while e.locks.status(&k).await.unwrap().map(|l| l.owner) != Some("quitter".into()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drop(waiting);
    within(5, "the undelivered lease to be released", async {
        while e.locks.status(&k).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let next = take(&e, &k, "next", 5_000, 0).await;
    assert_eq!(next.owner, "next");
}

pub async fn request_id_makes_acquire_idempotent<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("idempotent");
    let with_id = |owner: &str, request_id: &str| AcquireLock {
        request_id: request_id.to_string(),
        ..args(&k, owner, 10_000, 0)
    };
    let first = match e.locks.acquire(with_id("o", "req-1")).await.unwrap() {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("{other:?}"),
    };
    let retried = match e.locks.acquire(with_id("o", "req-1")).await.unwrap() {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("a retried acquire must return the same lease: {other:?}"),
    };
    assert_eq!(retried.lease_id, first.lease_id);
    assert_eq!(retried.fencing_token, first.fencing_token);

    match e.locks.acquire(with_id("o", "req-2")).await.unwrap() {
        AcquireOutcome::TimedOut { holder } => assert_eq!(holder, Some(first.clone())),
        other => panic!("another request id must not get the lease: {other:?}"),
    }
    match e
        .locks
        .acquire(with_id("other-owner", "req-1"))
        .await
        .unwrap()
    {
        AcquireOutcome::TimedOut { holder } => assert_eq!(holder, Some(first.clone())),
        other => panic!("another owner must not get the lease: {other:?}"),
    }

    // Once released, the same request id makes a new grant (a new fencing token). Its lease id
    // is derived from key and request id, so a client that never saw its answer can release it.
    e.locks.release(&first.lease_id).await.unwrap();
    let again = match e.locks.acquire(with_id("o", "req-1")).await.unwrap() {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("{other:?}"),
    };
    assert!(again.fencing_token > first.fencing_token);
    assert_eq!(
        again.lease_id,
        syros_vocab::lease_id_for_request(&k, "req-1")
    );
    assert_eq!(first.lease_id, again.lease_id);
    let other_key = unique("idempotent");
    let elsewhere = match e
        .locks
        .acquire(AcquireLock {
            request_id: "req-1".into(),
            ..args(&other_key, "o", 10_000, 0)
        })
        .await
        .unwrap()
    {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("{other:?}"),
    };
    assert_ne!(
        elsewhere.lease_id, again.lease_id,
        "lease ids of two keys never meet"
    );
}

pub async fn invalid_arguments_change_nothing<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("valid");
    let existing = take(&e, &k, "holder", 30_000, 0).await;

    let long_key = format!("{k}{}", "x".repeat(513 - k.len()));
    assert_eq!(long_key.len(), 513);
    let bad = [
        ("empty key", args("", "o", 1_000, 0)),
        ("513-byte key", args(&long_key, "o", 1_000, 0)),
        ("newline in key", args(&format!("{k}\nx"), "o", 1_000, 0)),
        ("empty owner", args(&k, "", 1_000, 0)),
        ("ttl 0", args(&k, "o", 0, 0)),
        ("ttl 99", args(&k, "o", 99, 0)),
        ("ttl over a day", args(&k, "o", 86_400_001, 0)),
        ("wait over 5 min", args(&k, "o", 1_000, 300_001)),
        ("empty key, waiting", args("", "o", 1_000, 1_000)),
    ];
    for (what, request) in bad {
        let err = expect_kind(e.locks.acquire(request).await, ErrorKind::InvalidArgument);
        assert!(!err.message.is_empty(), "{what}");
    }
    expect_kind(
        e.locks.renew(&existing.lease_id, 0).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        e.locks.renew(&existing.lease_id, 86_400_001).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(e.locks.renew("", 1_000).await, ErrorKind::InvalidArgument);
    expect_kind(e.locks.release("").await, ErrorKind::InvalidArgument);
    expect_kind(e.locks.status("").await, ErrorKind::InvalidArgument);
    expect_kind(e.locks.status(&long_key).await, ErrorKind::InvalidArgument);
    expect_kind(e.locks.force_release("").await, ErrorKind::InvalidArgument);
    expect_kind(
        e.locks.force_release("a\tb").await,
        ErrorKind::InvalidArgument,
    );

    // Nothing changed: the lease is as it was, and no lease exists under a rejected key.
    assert_eq!(e.locks.status(&k).await.unwrap(), Some(existing.clone()));
    assert_eq!(e.locks.list(&k, 0).await.unwrap(), vec![existing.clone()]);

    // The limits themselves are accepted.
    let max_key = &long_key[..512];
    take(&e, max_key, "o", 100, 0).await;
    let free = unique("valid-free");
    let lease = take(&e, &free, &"o".repeat(256), 86_400_000, 300_000).await;
    assert_eq!(lease.expires_at_ms - lease.acquired_at_ms, 86_400_000);
}

pub async fn leases_survive_restart<H: Harness>(mut h: H) {
    let k = unique("restart");
    let lease = {
        let e = h.engine();
        take(&e, &k, "holder", 30_000, 0).await
    };
    let e = h.restart().await;

    assert_eq!(e.locks.status(&k).await.unwrap(), Some(lease.clone()));
    assert_eq!(refused(&e, &k, "other", 0).await, Some(lease.clone()));
    let renewed = e.locks.renew(&lease.lease_id, 30_000).await.unwrap();
    assert_eq!(renewed.fencing_token, lease.fencing_token);

    let released = e.locks.release(&lease.lease_id).await.unwrap();
    assert_eq!(released.lease_id, lease.lease_id);
    assert_eq!(e.locks.status(&k).await.unwrap(), None);

    let next = take(&e, &k, "next", 5_000, 0).await;
    assert!(
        next.fencing_token > lease.fencing_token,
        "{next:?} vs {lease:?}"
    );
    let fresh = take(&e, &unique("restart-fresh"), "o", 5_000, 0).await;
    assert!(
        fresh.fencing_token > lease.fencing_token,
        "{fresh:?} vs {lease:?}"
    );
    assert!(fresh.fencing_token > next.fencing_token);
}

/// A try-lock (wait 0) right after a release does not take the key from the queued waiter.
pub async fn try_lock_does_not_jump_the_queue<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("no-barging");
    let holder = take(&e, &k, "holder", 30_000, 0).await;
    let waiter = {
        let (e, k) = (e.clone(), k.clone());
        tokio::spawn(async move { e.locks.acquire(args(&k, "waiter", 5_000, 5_000)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    e.locks.release(&holder.lease_id).await.unwrap();
    let barger = e.locks.acquire(args(&k, "barger", 5_000, 0)).await.unwrap();
    assert!(
        matches!(barger, AcquireOutcome::TimedOut { .. }),
        "a try-lock took the key from the queued waiter: {barger:?}"
    );
    match within(10, "waiter", waiter).await.unwrap().unwrap() {
        AcquireOutcome::Acquired(lease) => assert_eq!(lease.owner, "waiter"),
        other => panic!("the queued waiter did not get the lock: {other:?}"),
    }
}

/// The next change of `key` from the raw feed (changes of other keys, e.g. other tests' releases
/// announced by a shared store, are skipped).
async fn next_change(feed: &mut broadcast::Receiver<LockChange>, key: &str) -> LockChange {
    within(10, "the next lock change", async {
        loop {
            let change = feed.recv().await.expect("the feed stays open");
            if change.key == key {
                return change;
            }
        }
    })
    .await
}

/// Asserts that `change` is `kind` of `lease`.
#[track_caller]
fn assert_change(change: &LockChange, kind: LockChangeKind, lease: &Lease) {
    assert_eq!(change.kind, kind, "{change:?}");
    assert_eq!(change.key, lease.key, "{change:?}");
    assert_eq!(
        change.owner.as_deref(),
        Some(lease.owner.as_str()),
        "{change:?}"
    );
    assert_eq!(change.lease_id.as_deref(), Some(lease.lease_id.as_str()));
    assert_eq!(
        change.fencing_token,
        Some(lease.fencing_token),
        "{change:?}"
    );
    let expires = matches!(
        kind,
        LockChangeKind::Acquired | LockChangeKind::Renewed | LockChangeKind::Expired
    )
    .then_some(lease.expires_at_ms);
    assert_eq!(change.expires_at_ms, expires, "{change:?}");
    assert!(change.at_ms > 0, "{change:?}");
}

/// The lock-change feed reports acquisitions (direct and handed to a waiter), renewals, releases
/// and force-releases in order, each once; a watch sees only its prefix.
pub async fn lock_change_feed_reports_in_order<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("feed");
    let other = unique("elsewhere");
    let mut feed = e.locks.changes();
    let mut watch = e.locks.watch(&k).await.unwrap();

    let first = take(&e, &k, "first", 10_000, 0).await;
    let unrelated = take(&e, &other, "other", 10_000, 0).await;
    let renewed = e.locks.renew(&first.lease_id, 20_000).await.unwrap();
    let released = e.locks.release(&first.lease_id).await.unwrap();
    let second = take(&e, &k, "second", 10_000, 0).await;
    let waiter = {
        let (e, k) = (e.clone(), k.clone());
        tokio::spawn(async move { take(&e, &k, "waiter", 10_000, 10_000).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dropped = e.locks.force_release(&k).await.unwrap().expect("a holder");
    let third = within(10, "the waiter", waiter).await.unwrap();
    let last = e.locks.release(&third.lease_id).await.unwrap();
    e.locks.release(&unrelated.lease_id).await.unwrap();

    let expected = [
        (LockChangeKind::Acquired, &first),
        (LockChangeKind::Renewed, &renewed),
        (LockChangeKind::Released, &released),
        (LockChangeKind::Acquired, &second),
        (LockChangeKind::ForceReleased, &dropped),
        (LockChangeKind::Acquired, &third),
        (LockChangeKind::Released, &last),
    ];
    for (kind, lease) in expected {
        assert_change(&next_change(&mut feed, &k).await, kind, lease);
        let watched = within(10, "the next watched change", watch.next())
            .await
            .expect("the watch stays open")
            .expect("no error");
        assert_change(&watched, kind, lease);
    }
    assert_eq!(dropped.lease_id, second.lease_id);
    // Nothing more: no change of another key through the watch, no echo of a release through a
    // shared store's announcements.
    let extra = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
    assert!(extra.is_err(), "unexpected change: {extra:?}");
    let extra = tokio::time::timeout(Duration::from_millis(100), next_change(&mut feed, &k)).await;
    assert!(extra.is_err(), "unexpected change: {extra:?}");
    // Invalid prefixes are refused.
    expect_kind(
        e.locks.watch(&"x".repeat(513)).await.map(|_| ()),
        ErrorKind::InvalidArgument,
    );
}

/// A lease granted here that nobody releases is reported expired, once, soon after its expiry.
pub async fn lock_change_feed_reports_expiry<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("expiry");
    let mut watch = e.locks.watch(&k).await.unwrap();
    let lease = take(&e, &k, "sleepy", 200, 0).await;
    let change = within(5, "acquired", watch.next()).await.unwrap().unwrap();
    assert_change(&change, LockChangeKind::Acquired, &lease);
    let change = within(5, "expired", watch.next()).await.unwrap().unwrap();
    assert_change(&change, LockChangeKind::Expired, &lease);
    assert!(change.at_ms >= lease.expires_at_ms, "{change:?}");
    // The next holder's acquisition follows; the old lease is not reported again.
    let next = take(&e, &k, "next", 10_000, 0).await;
    let change = within(5, "acquired", watch.next()).await.unwrap().unwrap();
    assert_change(&change, LockChangeKind::Acquired, &next);
    e.locks.release(&next.lease_id).await.unwrap();
    let change = within(5, "released", watch.next()).await.unwrap().unwrap();
    assert_change(&change, LockChangeKind::Released, &next);
    let extra = tokio::time::timeout(Duration::from_millis(1_500), watch.next()).await;
    assert!(extra.is_err(), "unexpected change: {extra:?}");
}
