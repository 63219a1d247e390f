//! The Syros engine: locks with fencing tokens, a tagged cache and an event store (sagas follow),
//! over storage backends behind the traits in [`store`].
//!
//! Transports (gRPC, REST, ...) call exactly one engine method per operation; every rule about
//! validation, waiting and ordering lives here so that every transport and backend behaves alike.

pub mod backend;
pub mod cache;
pub mod error;
pub mod events;
pub mod limits;
pub mod locks;
pub mod model;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use cache::CacheManager;
pub use error::{Error, ErrorKind, Result};
pub use events::{EventInput, EventManager};
pub use limits::Limits;
pub use locks::{AcquireLock, AcquireOutcome, LockManager};
pub use model::*;

use backend::sqlite::SqliteStore;
use store::{CacheStore, EventStore, LockStore};

/// The stores an engine runs on. One backend may fill several roles.
#[derive(Clone)]
pub struct Stores {
    pub locks: Arc<dyn LockStore>,
    pub cache: Arc<dyn CacheStore>,
    pub events: Arc<dyn EventStore>,
}

impl Stores {
    /// Everything in one embedded SQLite file at `path`.
    pub async fn embedded(path: &Path) -> Result<Self> {
        let sqlite = Arc::new(SqliteStore::open(path).await?);
        Ok(Stores {
            locks: sqlite.clone(),
            cache: sqlite.clone(),
            events: sqlite,
        })
    }
}

/// The engine: one instance per server process.
pub struct Engine {
    pub locks: LockManager,
    pub cache: CacheManager,
    pub events: EventManager,
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
            locks: LockManager::new(stores.locks, limits.clone()),
            cache: CacheManager::new(stores.cache, limits.clone()),
            events: EventManager::new(stores.events, limits, shutdown_rx),
            shutdown,
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
