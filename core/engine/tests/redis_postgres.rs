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
