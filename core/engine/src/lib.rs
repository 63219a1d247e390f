//! The Syros engine: locks with fencing tokens, a tagged cache and an event store (sagas follow),
//! over storage backends behind the traits in [`store`].
//!
//! Transports (gRPC, REST, ...) call exactly one engine method per operation; every rule about
//! validation, waiting and ordering lives here so that every transport and backend behaves alike.

pub mod apikeys;
pub mod backend;
pub mod cache;
pub mod error;
pub mod events;
pub mod limits;
mod lock_feed;
pub mod locks;
pub mod model;
pub mod sagas;
pub mod store;
pub mod telemetry;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use apikeys::{ApiKey, ApiKeyStore, ApiKeys};
pub use cache::{CacheManager, CacheStats};
pub use error::{Error, ErrorKind, Result, ERROR_CODE_HEADER};
pub use events::{EventInput, EventManager};
pub use limits::Limits;
pub use locks::{AcquireLock, AcquireOutcome, LockChange, LockChangeKind, LockManager, LockWatch};
pub use model::*;
pub use sagas::SagaManager;

use backend::postgres::PostgresStore;
use backend::redis::RedisStore;
use backend::sqlite::SqliteStore;
use store::{CacheStore, EventStore, FenceEpochs, LockStore, SagaStore};

/// The stores an engine runs on. One backend may fill several roles.
#[derive(Clone)]
pub struct Stores {
    pub locks: Arc<dyn LockStore>,
    pub cache: Arc<dyn CacheStore>,
    pub events: Arc<dyn EventStore>,
    /// Appends each transition's audit events to its own event tables, in the transition's
    /// transaction: the same store as `events`.
    pub sagas: Arc<dyn SagaStore>,
    /// API keys live with the durable data (PostgreSQL, else the embedded file).
    pub api_keys: Arc<dyn ApiKeyStore>,
}

/// Which storage to use. Locks and cache go to Redis when `redis_url` is set, events to
/// PostgreSQL when `postgres_url` is set; whatever is not configured lives in the embedded
/// SQLite file. Several servers can share the stores only when both URLs are set.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The embedded database file (used for whatever has no external store).
    pub embedded_path: std::path::PathBuf,
    pub postgres_url: Option<String>,
    pub redis_url: Option<String>,
    /// PostgreSQL pool size.
    pub pool_size: u32,
    /// Separates deployments sharing one Redis / PostgreSQL: Redis key prefix, PostgreSQL schema.
    pub namespace: String,
}

impl Stores {
    /// Everything in one embedded SQLite file at `path`.
    pub async fn embedded(path: &Path) -> Result<Self> {
        let sqlite = Arc::new(SqliteStore::open(path).await?);
        Ok(Stores {
            locks: sqlite.clone(),
            cache: sqlite.clone(),
            events: sqlite.clone(),
            sagas: sqlite.clone(),
            api_keys: sqlite,
        })
    }

    /// Open the stores `config` names.
    pub async fn open(config: &StoreConfig) -> Result<Self> {
        let schema = (config.namespace != "public").then_some(config.namespace.as_str());
        let postgres = match &config.postgres_url {
            Some(url) => Some(Arc::new(
                PostgresStore::connect(url, config.pool_size, schema).await?,
            )),
            None => None,
        };
        let sqlite = match (&postgres, &config.redis_url) {
            (Some(_), Some(_)) => None,
            _ => Some(Arc::new(SqliteStore::open(&config.embedded_path).await?)),
        };
        type Durable = (
            Arc<dyn EventStore>,
            Arc<dyn SagaStore>,
            Arc<dyn FenceEpochs>,
            Arc<dyn ApiKeyStore>,
        );
        let (events, sagas, epochs, api_keys): Durable = match (&postgres, &sqlite) {
            (Some(pg), _) => (pg.clone(), pg.clone(), pg.clone(), pg.clone()),
            (None, Some(sqlite)) => (
                sqlite.clone(),
                sqlite.clone(),
                sqlite.clone(),
                sqlite.clone(),
            ),
            (None, None) => unreachable!("SQLite is opened whenever PostgreSQL is not"),
        };
        let (locks, cache): (Arc<dyn LockStore>, Arc<dyn CacheStore>) =
            match (&config.redis_url, &sqlite) {
                (Some(url), _) => {
                    let redis =
                        Arc::new(RedisStore::connect(url, &config.namespace, epochs).await?);
                    (redis.clone(), redis)
                }
                (None, Some(sqlite)) => (sqlite.clone(), sqlite.clone()),
                (None, None) => unreachable!("SQLite is opened whenever Redis is not"),
            };
        Ok(Stores {
            locks,
            cache,
            events,
            sagas,
            api_keys,
        })
    }

    /// Only the API key store `config` names (PostgreSQL, else the embedded file), for the
    /// `syros apikey` commands, which need no lock or cache store.
    pub async fn open_api_keys(config: &StoreConfig) -> Result<Arc<dyn ApiKeyStore>> {
        let schema = (config.namespace != "public").then_some(config.namespace.as_str());
        Ok(match &config.postgres_url {
            Some(url) => Arc::new(PostgresStore::connect(url, 2, schema).await?),
            None => Arc::new(SqliteStore::open(&config.embedded_path).await?),
        })
    }
}

/// The engine: one instance per server process.
pub struct Engine {
    pub locks: LockManager,
    pub cache: CacheManager,
    pub events: EventManager,
    pub sagas: Arc<SagaManager>,
    shutdown: watch::Sender<bool>,
}

/// How often expired lock and cache rows are swept (expired data is never served regardless).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);

impl Engine {
    /// Build an engine over `stores` with `limits`. Starts a housekeeping task that ends when the
    /// engine is shut down or dropped.
    pub fn new(stores: Stores, limits: Limits) -> Arc<Self> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let engine = Arc::new(Engine {
            locks: LockManager::new(stores.locks, limits.clone(), shutdown_rx.clone()),
            cache: CacheManager::new(stores.cache, limits.clone()),
            sagas: Arc::new(SagaManager::new(stores.sagas, shutdown_rx.clone())),
            events: EventManager::new(stores.events, limits, shutdown_rx),
            shutdown,
        });
        // Time out saga tasks whose worker went quiet (also after a restart).
        let weak = Arc::downgrade(&engine);
        let mut stop = engine.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(sagas::TIMEOUT_SWEEP_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let Some(engine) = weak.upgrade() else { return };
                if let Err(err) = engine.sagas.sweep_timeouts().await {
                    tracing::warn!(error = %err, "timing out saga tasks failed");
                }
            }
        });
        let weak = Arc::downgrade(&engine);
        let mut stop = engine.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(HOUSEKEEPING_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let Some(engine) = weak.upgrade() else { return };
                if let Err(err) = engine.locks.purge_expired().await {
                    tracing::warn!(error = %err, "purging expired locks failed");
                }
                if let Err(err) = engine.cache.purge_expired().await {
                    tracing::warn!(error = %err, "purging expired cache entries failed");
                }
            }
        });
        engine
    }

    /// Tell long-lived operations (subscriptions) to end; used on graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}
