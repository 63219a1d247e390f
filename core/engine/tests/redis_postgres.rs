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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn releases_through_another_replica_are_reported() {
        let h = ProductionHarness::new().await;
        let a = h.engine();
        let b = ProductionHarness::open(&h.config).await;
        let k = unique("replicas");
        let mut on_a = a.locks.watch(&k).unwrap();
        let mut on_b = b.locks.watch(&k).unwrap();

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
}
