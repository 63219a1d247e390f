//! The engine suite over the production backends: locks and cache in Redis, events in PostgreSQL.
//!
//! Needs `SYROS_TEST_REDIS_URL` and `SYROS_TEST_DATABASE_URL` (scripts/test starts both servers
//! and sets them). Each test gets its own namespace: a Redis key prefix and a PostgreSQL schema.
//! Without the servers these tests fail; they never skip.

mod suite;

use std::sync::Arc;

use syros_engine::{Engine, Limits, StoreConfig, Stores};

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test, which starts Redis and PostgreSQL")
    })
}

pub struct ProductionHarness {
    engine: Arc<Engine>,
    config: StoreConfig,
    _dir: tempfile::TempDir,
}

impl ProductionHarness {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = StoreConfig {
            embedded_path: dir.path().join("unused.sqlite"),
            postgres_url: Some(required_env("SYROS_TEST_DATABASE_URL")),
            redis_url: Some(required_env("SYROS_TEST_REDIS_URL")),
            pool_size: 4,
            namespace: format!("t{}", uuid::Uuid::new_v4().simple()),
        };
        let engine = Self::open(&config).await;
        ProductionHarness {
            engine,
            config,
            _dir: dir,
        }
    }

    async fn open(config: &StoreConfig) -> Arc<Engine> {
        let stores = Stores::open(config)
            .await
            .expect("connect to Redis and PostgreSQL");
        Engine::new(stores, Limits::default())
    }
}

impl suite::Harness for ProductionHarness {
    fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    async fn restart(&mut self) -> Arc<Engine> {
        self.engine.shutdown();
        self.engine = Self::open(&self.config).await;
        self.engine.clone()
    }

    async fn refuse_audit_appends(&self, refuse: bool) {
        let url = self.config.postgres_url.as_deref().expect("PostgreSQL");
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("connect to PostgreSQL");
        let schema = &self.config.namespace;
        let sql = if refuse {
            format!(
                r#"CREATE FUNCTION "{schema}".refuse_audit() RETURNS trigger LANGUAGE plpgsql
                   AS $$ BEGIN RAISE EXCEPTION 'audit append refused'; END $$;
                   CREATE TRIGGER refuse_audit BEFORE INSERT ON "{schema}".syros_events
                   FOR EACH ROW WHEN (NEW.stream LIKE 'saga-%')
                   EXECUTE FUNCTION "{schema}".refuse_audit()"#
            )
        } else {
            format!(r#"DROP FUNCTION "{schema}".refuse_audit() CASCADE"#)
        };
        sqlx::raw_sql(&sql)
            .execute(&pool)
            .await
            .expect("change the trigger");
        pool.close().await;
    }
}

engine_suite!(ProductionHarness::new());

/// Two engines over the same Redis, as two replicas: releases made through one are reported by
/// the other's lock-change feed with the lease, and by the releasing one exactly once.
mod shared_store {
    use std::time::Duration;

    use syros_engine::{
        AcquireLock, AcquireOutcome, Engine, LockChange, LockChangeKind, LockWatch,
    };

    use super::suite::{unique, within, Harness};
    use super::ProductionHarness;

    async fn take(engine: &Engine, key: &str, owner: &str) -> syros_engine::Lease {
        let args = AcquireLock {
            key: key.to_string(),
            owner: owner.to_string(),
            ttl_ms: 10_000,
            wait_timeout_ms: 0,
            request_id: String::new(),
        };
        match engine.locks.acquire(args).await.unwrap() {
            AcquireOutcome::Acquired(lease) => lease,
            other => panic!("{other:?}"),
        }
    }

    async fn next(watch: &mut LockWatch) -> LockChange {
        within(10, "the next lock change", watch.next())
            .await
            .expect("the watch stays open")
            .expect("no error")
    }

    /// A task claimed through replica A and reported through B, then reported again through A
    /// (a worker's retry after a lost reply, through another connection): A's second report uses
    /// the task and saga A remembered from the claim, which are stale, and must store nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_report_through_the_claiming_replica_after_another_stores_nothing() {
        use syros_engine::sagas::{StartSaga, StepDefinition, TaskResult};
        let h = ProductionHarness::new().await;
        let a = h.engine();
        let b = ProductionHarness::open(&h.config).await;
        let svc = unique("replicas");
        let step = |name: &str| StepDefinition {
            name: name.into(),
            service: svc.clone(),
            action: format!("do_{name}"),
            compensation: None,
            timeout_ms: 5_000,
            retry: None,
        };
        let saga = a
            .sagas
            .start(StartSaga {
                name: unique("twice"),
                steps: vec![step("one"), step("two")],
                ..Default::default()
            })
            .await
            .unwrap();
        let claimed = a.sagas.claim(&svc, "w", 8).await.unwrap().remove(0);
        let done = || TaskResult::Completed("{}".into());
        assert!(b.sagas.report(&claimed.task.task_id, done()).await.unwrap());
        assert!(!a.sagas.report(&claimed.task.task_id, done()).await.unwrap());
        let stored = a.sagas.get(&saga.saga_id).await.unwrap();
        assert_eq!(stored.revision, saga.revision + 1, "{stored:#?}");
        assert_eq!(stored.steps[0].attempts.len(), 1, "{stored:#?}");
        let next = a.sagas.claim(&svc, "w", 8).await.unwrap();
        assert_eq!(next.len(), 1, "one next task: {next:?}");
        assert_eq!(next[0].task.step_name, "two");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn releases_through_another_replica_are_reported() {
        let h = ProductionHarness::new().await;
        let a = h.engine();
        let b = ProductionHarness::open(&h.config).await;
        let k = unique("replicas");
        let mut on_a = a.locks.watch(&k).await.unwrap();
        let mut on_b = b.locks.watch(&k).await.unwrap();

        let lease = take(&a, &k, "on-a").await;
        let change = next(&mut on_a).await;
        assert_eq!(change.kind, LockChangeKind::Acquired);
        // Released through B: B reports it at once, A when Redis announces it, with the lease.
        b.locks.release(&lease.lease_id).await.unwrap();
        for watch in [&mut on_b, &mut on_a] {
            let change = next(watch).await;
            assert_eq!(change.kind, LockChangeKind::Released, "{change:?}");
            assert_eq!(change.lease_id.as_deref(), Some(lease.lease_id.as_str()));
            assert_eq!(change.owner.as_deref(), Some("on-a"));
            assert_eq!(change.fencing_token, Some(lease.fencing_token));
        }
        // Force-released through A: B hears of it as a force-release.
        let second = take(&b, &k, "on-b").await;
        assert_eq!(next(&mut on_b).await.kind, LockChangeKind::Acquired);
        a.locks.force_release(&k).await.unwrap().expect("a holder");
        for watch in [&mut on_a, &mut on_b] {
            let change = next(watch).await;
            assert_eq!(change.kind, LockChangeKind::ForceReleased, "{change:?}");
            assert_eq!(change.lease_id.as_deref(), Some(second.lease_id.as_str()));
        }
        // Each change exactly once on each replica: no echo of a replica's own release.
        for watch in [&mut on_a, &mut on_b] {
            let extra = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
            assert!(extra.is_err(), "unexpected change: {extra:?}");
        }
        b.shutdown();
    }

    /// Releases are announced only to replicas with lock-change watches, and never back to the
    /// releasing one: with no watch anywhere a release publishes nothing; with a watch on B only,
    /// a release through A reaches B (its channel and its watch), and B's own release is
    /// published to nobody.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn releases_are_announced_only_to_replicas_that_watch() {
        use futures::StreamExt;

        let h = ProductionHarness::new().await;
        let a = h.engine();
        let b = ProductionHarness::open(&h.config).await;
        let k = unique("announce");
        let client = redis::Client::open(super::required_env("SYROS_TEST_REDIS_URL")).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        let channels = format!("{{{}}}:lock-released:*", h.config.namespace);
        pubsub.psubscribe(&channels).await.unwrap();
        let mut published = pubsub.into_on_message();

        // Nobody watches: a release publishes nothing.
        let lease = take(&a, &k, "unwatched").await;
        a.locks.release(&lease.lease_id).await.unwrap();
        let heard = tokio::time::timeout(Duration::from_millis(300), published.next()).await;
        assert!(heard.is_err(), "announced with nobody watching: {heard:?}");

        // B watches: a release through A reaches B's channel and B's watch, with the lease.
        let mut on_b = b.locks.watch(&k).await.unwrap();
        let lease = take(&a, &k, "watched").await;
        a.locks.release(&lease.lease_id).await.unwrap();
        let message = within(10, "the announcement", published.next())
            .await
            .expect("the subscription stays open");
        let payload: String = message.get_payload().unwrap();
        assert!(payload.contains(&lease.lease_id), "{payload}");
        let change = next(&mut on_b).await;
        assert_eq!(change.kind, LockChangeKind::Released, "{change:?}");
        assert_eq!(change.lease_id.as_deref(), Some(lease.lease_id.as_str()));
        assert_eq!(change.fencing_token, Some(lease.fencing_token));

        // B's own release: reported by B itself, published to nobody (A does not watch).
        let own = take(&b, &k, "own").await;
        assert_eq!(next(&mut on_b).await.kind, LockChangeKind::Acquired);
        b.locks.release(&own.lease_id).await.unwrap();
        assert_eq!(next(&mut on_b).await.kind, LockChangeKind::Released);
        let heard = tokio::time::timeout(Duration::from_millis(300), published.next()).await;
        assert!(heard.is_err(), "announced to its own origin: {heard:?}");
        b.shutdown();
    }

    fn typed(n: usize) -> syros_engine::EventInput {
        syros_engine::EventInput {
            event_id: String::new(),
            event_type: "Numbered".to_string(),
            data: format!("{{\"n\":{n}}}"),
            metadata: String::new(),
        }
    }

    /// A stream subscription on one replica follows appends made through another (the
    /// PostgreSQL notification names the stream), and appends to other streams, made through
    /// either replica, neither stall it nor reach it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_subscriptions_follow_appends_through_another_replica() {
        use syros_engine::{ExpectedVersion, SubscriptionStart, SubscriptionTarget};
        let h = ProductionHarness::new().await;
        let a = h.engine();
        let b = ProductionHarness::open(&h.config).await;
        let followed = unique("followed");
        let other = unique("other");
        let mut on_a = a
            .events
            .subscribe(
                SubscriptionTarget::Stream(followed.clone()),
                SubscriptionStart::From(0),
            )
            .await
            .unwrap();
        for round in 0..5 {
            for engine in [&b, &a] {
                engine
                    .events
                    .append(&other, vec![typed(round)], ExpectedVersion::Any)
                    .await
                    .unwrap();
            }
            b.events
                .append(&followed, vec![typed(round)], ExpectedVersion::Any)
                .await
                .unwrap();
            let got = within(10, "the followed stream's next event", on_a.recv())
                .await
                .expect("the subscription stays open")
                .expect("no error");
            assert_eq!(got.stream, followed);
            assert_eq!(got.version, round as u64);
            assert_eq!(got.data, format!("{{\"n\":{round}}}"));
        }
        let extra = tokio::time::timeout(Duration::from_millis(300), on_a.recv()).await;
        assert!(extra.is_err(), "unexpected event: {extra:?}");
        b.shutdown();
    }

    /// An acquire on `engine` that waits (up to 20 s), holds the key 20 ms, releases it, and
    /// records its owner and token in `served`.
    fn queue_up(
        engine: &std::sync::Arc<Engine>,
        key: &str,
        owner: &str,
        served: &std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>,
    ) -> tokio::task::JoinHandle<()> {
        let (engine, served) = (engine.clone(), served.clone());
        let args = AcquireLock {
            key: key.to_string(),
            owner: owner.to_string(),
            ttl_ms: 10_000,
            wait_timeout_ms: 20_000,
            request_id: String::new(),
        };
        tokio::spawn(async move {
            let lease = match engine.locks.acquire(args).await.unwrap() {
                AcquireOutcome::Acquired(lease) => lease,
                other => panic!("{other:?}"),
            };
            served
                .lock()
                .unwrap()
                .push((lease.owner.clone(), lease.fencing_token));
            tokio::time::sleep(Duration::from_millis(20)).await;
            engine.locks.release(&lease.lease_id).await.unwrap();
        })
    }

    /// One queue per key across replicas: waiters arriving A1 B1 A2 B2 on two replicas are
    /// served in that order, with strictly increasing tokens (a queue per replica would serve
    /// the releasing replica's own waiters first).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_on_two_replicas_are_served_in_arrival_order() {
        let h = ProductionHarness::new().await;
        let a = h.engine();
        let b = ProductionHarness::open(&h.config).await;
        let k = unique("global-fifo");
        let holder = take(&a, &k, "holder").await;
        let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (engine, owner) in [(&a, "a1"), (&b, "b1"), (&a, "a2"), (&b, "b2")] {
            tasks.push(queue_up(engine, &k, owner, &served));
            // Each waiter queues before the next arrives.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            served.lock().unwrap().is_empty(),
            "a waiter got a held lock"
        );
        a.locks.release(&holder.lease_id).await.unwrap();
        for task in tasks {
            within(10, "a queued waiter", task).await.unwrap();
        }
        let served = served.lock().unwrap().clone();
        let owners: Vec<&str> = served.iter().map(|(owner, _)| owner.as_str()).collect();
        assert_eq!(
            owners,
            ["a1", "b1", "a2", "b2"],
            "served out of arrival order"
        );
        let tokens: Vec<u64> = served.iter().map(|(_, token)| *token).collect();
        assert!(
            tokens.windows(2).all(|w| w[0] < w[1]) && tokens[0] > holder.fencing_token,
            "{tokens:?} after {}",
            holder.fencing_token
        );
        b.shutdown();
    }

    /// Waiters that give up (timed out, or their call dropped) take themselves out of the
    /// queue in Redis: the next waiter gets the very next token, so no grant went to them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_that_give_up_leave_the_shared_queue() {
        let h = ProductionHarness::new().await;
        let a = h.engine();
        let b = ProductionHarness::open(&h.config).await;
        let k = unique("leave-queue");
        let holder = take(&a, &k, "holder").await;
        let waiting = |wait_timeout_ms| AcquireLock {
            key: k.clone(),
            owner: "quitter".to_string(),
            ttl_ms: 10_000,
            wait_timeout_ms,
            request_id: String::new(),
        };
        let client = redis::Client::open(super::required_env("SYROS_TEST_REDIS_URL")).unwrap();
        let redis = client.get_multiplexed_async_connection().await.unwrap();
        let waiting_key = format!("{{{}}}:waiting:{k}", h.config.namespace);
        let queued = |mut redis: redis::aio::MultiplexedConnection| {
            let waiting_key = waiting_key.clone();
            async move {
                redis::cmd("HLEN")
                    .arg(&waiting_key)
                    .query_async::<u64>(&mut redis)
                    .await
                    .unwrap()
            }
        };

        // A waiter on B that times out is queued while it waits, and gone after.
        let timing_out = {
            let b = b.clone();
            let args = waiting(400);
            tokio::spawn(async move { b.locks.acquire(args).await })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            queued(redis.clone()).await,
            1,
            "the waiter is queued in Redis"
        );
        let outcome = within(5, "the timed-out waiter", timing_out).await.unwrap();
        assert!(
            matches!(outcome, Ok(AcquireOutcome::TimedOut { .. })),
            "{outcome:?}"
        );
        assert_eq!(queued(redis.clone()).await, 0, "the timed-out waiter left");

        // A waiter on A whose call is dropped (its client went away) leaves too.
        let dropped =
            tokio::time::timeout(Duration::from_millis(150), a.locks.acquire(waiting(20_000)))
                .await;
        assert!(dropped.is_err(), "it should still be waiting: {dropped:?}");
        within(5, "the dropped waiter to leave", async {
            while queued(redis.clone()).await != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;

        let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let next = queue_up(&b, &k, "next", &served);
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.locks.release(&holder.lease_id).await.unwrap();
        within(10, "the next waiter", next).await.unwrap();
        let served = served.lock().unwrap().clone();
        assert_eq!(served, [("next".to_string(), holder.fencing_token + 1)]);
        b.shutdown();
    }
}

/// The lease as Redis holds it: one string per lock key (`lua/lock_lease.lua`), with the lease's
/// TTL on it and on its lease-id pointer; hash leases written by older servers still work.
mod packed_leases {
    use redis::aio::MultiplexedConnection;
    use syros_engine::{AcquireLock, AcquireOutcome, Engine, ErrorKind};

    use super::suite::{unique, Harness};
    use super::ProductionHarness;

    fn args(key: &str, owner: &str, request_id: &str, ttl_ms: u64) -> AcquireLock {
        AcquireLock {
            key: key.to_string(),
            owner: owner.to_string(),
            ttl_ms,
            wait_timeout_ms: 0,
            request_id: request_id.to_string(),
        }
    }

    async fn redis() -> MultiplexedConnection {
        let client = redis::Client::open(super::required_env("SYROS_TEST_REDIS_URL")).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    async fn query<T: redis::FromRedisValue>(
        redis: &mut MultiplexedConnection,
        cmd: &str,
        key: &str,
    ) -> T {
        redis::cmd(cmd).arg(key).query_async(redis).await.unwrap()
    }

    async fn acquired(engine: &Engine, args: AcquireLock) -> syros_engine::Lease {
        match engine.locks.acquire(args).await.unwrap() {
            AcquireOutcome::Acquired(lease) => lease,
            other => panic!("{other:?}"),
        }
    }

    /// A grant writes one string with the lease's TTL (and the pointer with the same TTL); status,
    /// listing, renewal and release read it back exactly, and an acquire with the same request
    /// id is the same acquire while a request id and owner that only concatenate alike are not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_packed_lease_is_read_renewed_listed_and_released() {
        let h = ProductionHarness::new().await;
        let engine = h.engine();
        let ns = format!("{{{}}}:", h.config.namespace);
        let mut redis = redis().await;
        let k = unique("packed");
        let lock_key = format!("{ns}lock:{k}");

        let lease = acquired(&engine, args(&k, "ab", "q", 20_000)).await;
        let pointer = format!("{ns}lease:{}", lease.lease_id);
        let kind: String = query(&mut redis, "TYPE", &lock_key).await;
        assert_eq!(kind, "string", "one string per lease");
        for key in [&lock_key, &pointer] {
            let ttl: i64 = query(&mut redis, "PTTL", key).await;
            assert!((15_000..=20_000).contains(&ttl), "{key}: PTTL {ttl}");
        }
        let pointed: String = query(&mut redis, "GET", &pointer).await;
        assert_eq!(pointed, lock_key);

        assert_eq!(engine.locks.status(&k).await.unwrap(), Some(lease.clone()));
        assert_eq!(
            engine.locks.list(&k, 10).await.unwrap(),
            std::slice::from_ref(&lease)
        );

        // Same request id and owner: the same acquire. "qa" + "b" concatenates like "q" + "ab"
        // but is another request: held, not granted.
        assert_eq!(acquired(&engine, args(&k, "ab", "q", 20_000)).await, lease);
        match engine
            .locks
            .acquire(args(&k, "b", "qa", 20_000))
            .await
            .unwrap()
        {
            AcquireOutcome::TimedOut { holder } => assert_eq!(holder, Some(lease.clone())),
            other => panic!("a different request was granted the held key: {other:?}"),
        }

        let renewed = engine.locks.renew(&lease.lease_id, 60_000).await.unwrap();
        assert_eq!(renewed.fencing_token, lease.fencing_token);
        assert_eq!(renewed.owner, "ab");
        assert!(
            renewed.expires_at_ms >= lease.expires_at_ms + 30_000,
            "{renewed:?}"
        );
        assert_eq!(
            engine.locks.status(&k).await.unwrap(),
            Some(renewed.clone())
        );
        for key in [&lock_key, &pointer] {
            let ttl: i64 = query(&mut redis, "PTTL", key).await;
            assert!(ttl > 50_000, "{key}: PTTL {ttl} after the renewal");
        }

        assert_eq!(
            engine.locks.release(&lease.lease_id).await.unwrap(),
            renewed
        );
        for key in [&lock_key, &pointer] {
            let exists: bool = query(&mut redis, "EXISTS", key).await;
            assert!(!exists, "{key} left after the release");
        }
        assert_eq!(engine.locks.status(&k).await.unwrap(), None);
        let again = engine.locks.release(&lease.lease_id).await.unwrap_err();
        assert_eq!(again.kind, ErrorKind::LockNotHeld);
        let next = acquired(&engine, args(&k, "next", "", 20_000)).await;
        assert!(next.fencing_token > lease.fencing_token);
    }

    /// A lease written as a hash by a server before the packed lease (a rolling upgrade with
    /// leases held) still holds its key, and is listed, renewed, released and force-released.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_of_older_servers_stay_held_and_releasable() {
        let h = ProductionHarness::new().await;
        let engine = h.engine();
        let ns = format!("{{{}}}:", h.config.namespace);
        let mut redis = redis().await;
        // What the previous grant script wrote: a hash with the lease's fields and a pointer.
        let write_old_lease = |key: String, lease_id: &str, token: u64| {
            let lock_key = format!("{ns}lock:{key}");
            let mut pipe = redis::pipe();
            pipe.cmd("HSET")
                .arg(&lock_key)
                .arg(&[
                    ("lease_id", lease_id),
                    ("owner", "old-owner"),
                    ("token", &token.to_string()),
                    ("acquired_at", "1000"),
                    ("expires_at", "9999999999999"),
                    ("request_id", ""),
                    ("key", &key),
                ])
                .ignore()
                .cmd("PEXPIRE")
                .arg(&lock_key)
                .arg(30_000)
                .ignore()
                .cmd("SET")
                .arg(format!("{ns}lease:{lease_id}"))
                .arg(&lock_key)
                .arg("PX")
                .arg(30_000)
                .ignore();
            pipe
        };
        let k = unique("old-lease");
        let pipe = write_old_lease(k.clone(), "0123456789abcdef0123456789abcdef", 7);
        let _: () = pipe.query_async(&mut redis).await.unwrap();

        let old = engine
            .locks
            .status(&k)
            .await
            .unwrap()
            .expect("the old lease");
        assert_eq!(
            (old.owner.as_str(), old.fencing_token, old.acquired_at_ms),
            ("old-owner", 7, 1000)
        );
        assert_eq!(
            engine.locks.list(&k, 10).await.unwrap(),
            std::slice::from_ref(&old)
        );
        match engine
            .locks
            .acquire(args(&k, "new", "", 10_000))
            .await
            .unwrap()
        {
            AcquireOutcome::TimedOut { holder } => assert_eq!(holder, Some(old.clone())),
            other => panic!("granted over an old lease: {other:?}"),
        }
        let renewed = engine.locks.renew(&old.lease_id, 40_000).await.unwrap();
        assert_eq!(
            (renewed.fencing_token, renewed.owner.as_str()),
            (7, "old-owner")
        );
        assert_eq!(
            engine.locks.status(&k).await.unwrap(),
            Some(renewed.clone())
        );
        assert_eq!(engine.locks.release(&old.lease_id).await.unwrap(), renewed);
        acquired(&engine, args(&k, "new", "", 10_000)).await;

        // An old lease is force-released too, pointer and all.
        let k = unique("old-lease-forced");
        let old_id = "fedcba9876543210fedcba9876543210";
        let pipe = write_old_lease(k.clone(), old_id, 8);
        let _: () = pipe.query_async(&mut redis).await.unwrap();
        let dropped = engine
            .locks
            .force_release(&k)
            .await
            .unwrap()
            .expect("dropped");
        assert_eq!(
            (dropped.lease_id.as_str(), dropped.fencing_token),
            (old_id, 8)
        );
        let pointer: bool = query(&mut redis, "EXISTS", &format!("{ns}lease:{old_id}")).await;
        assert!(!pointer, "the old lease's pointer is left");
        acquired(&engine, args(&k, "new", "", 10_000)).await;
    }
}

/// Group commit of appends on PostgreSQL (`backend/postgres/append_group.rs`): the shared
/// group tests (`suite::append_groups`), and two replicas racing on one stream.
mod append_groups {
    use std::sync::Arc;

    use syros_engine::backend::postgres::PostgresStore;
    use syros_engine::store::EventStore;
    use syros_engine::ExpectedVersion;

    use super::required_env;
    use super::suite::append_groups::{events, everything};
    use super::suite::{append_groups, unique};

    async fn store(schema: &str) -> PostgresStore {
        PostgresStore::connect(&required_env("SYROS_TEST_DATABASE_URL"), 4, Some(schema))
            .await
            .expect("connect to PostgreSQL")
    }

    async fn fresh_store() -> PostgresStore {
        store(&format!("g{}", uuid::Uuid::new_v4().simple())).await
    }

    #[tokio::test]
    async fn a_failed_check_fails_only_its_append() {
        append_groups::a_failed_check_fails_only_its_append(&fresh_store().await).await;
    }

    #[tokio::test]
    async fn a_repeat_of_a_grouped_append_is_acknowledged_once() {
        append_groups::a_repeat_of_a_grouped_append_is_acknowledged_once(&fresh_store().await)
            .await;
    }

    /// Two replicas appending to one stream at once: their groups race on the stream's row
    /// (the guard leaves a moved stream out), the losers are redone with the row lock, and every
    /// append lands once, with versions and positions gap-free and in the same order, each
    /// answered with where its events are.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_on_one_stream_store_every_append_once() {
        let schema = format!("g{}", uuid::Uuid::new_v4().simple());
        let replicas = [
            Arc::new(store(&schema).await),
            Arc::new(store(&schema).await),
        ];
        let s = unique("hot");
        let mut tasks = Vec::new();
        for n in 0..60 {
            let store = replicas[n % 2].clone();
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("e{n}");
                let answer = store
                    .append(&s, &events(&[&id]), ExpectedVersion::Any, 1)
                    .await
                    .expect("append");
                (id, answer)
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let stored = everything(replicas[0].as_ref()).await;
        assert_eq!(stored.len(), 60);
        for (k, event) in stored.iter().enumerate() {
            assert_eq!(event.global_position, k as u64 + 1, "gap-free positions");
            assert_eq!(event.version, k as u64, "versions follow positions");
        }
        for (id, answer) in answers {
            let event = stored.iter().find(|e| e.event_id == id).expect("stored");
            assert_eq!(
                (
                    answer.last_version,
                    answer.first_position,
                    answer.last_position
                ),
                (event.version, event.global_position, event.global_position),
                "{id} answered with where it is"
            );
        }
    }
}
