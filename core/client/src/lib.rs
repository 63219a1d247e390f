//! # syros-client
//!
//! The client core of Syros: the one place where client behaviour lives. Every language SDK is a
//! thin layer over this crate (see the `Bindings` section of the design), so its API is small,
//! async, and made of handles and plain data.
//!
//! - [`Client::connect`] with one or more addresses (failover), connect and per-call timeouts,
//!   an auth token hook, and retries with exponential backoff and full jitter ([`RetryPolicy`]).
//! - Locks: [`Client::lock`] → [`Lease`] with a fencing token, background renewal, a
//!   [`Lease::lost`] signal, release (explicit or on drop), and [`Client::with_lock`].
//! - Cache: [`Client::cache`] → [`Cache`] with get/set/delete/invalidate-tag and single-flight
//!   [`Cache::get_or_compute`].
//! - Events: [`Client::events`] → [`Events`] with append/read and [`Subscription`]s that resume
//!   after reconnecting without gaps or duplicates.
//! - Sagas: [`Client::sagas`] → [`Sagas`] (start, get, list, cancel, wait) and step runners:
//!   [`Client::worker`] → [`WorkerBuilder`] → [`Worker`], running handlers for a service.
//! - Errors: one [`Error`] with an [`ErrorKind`] every binding maps mechanically.
//! - [`runtime`]: the process-wide tokio runtime for bindings (lazy, shut down on request,
//!   fork-aware).
//!
//! ```no_run
//! # async fn demo() -> syros_client::Result<()> {
//! use std::time::Duration;
//! use syros_client::{Client, ClientOptions};
//!
//! let client = Client::connect(ClientOptions::new(["127.0.0.1:9090"])).await?;
//! let lease = client
//!     .lock("orders/42")
//!     .ttl(Duration::from_secs(10))
//!     .wait(Duration::from_secs(5))
//!     .acquire()
//!     .await?;
//! println!("fencing token {}", lease.fencing_token());
//! lease.release().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod cache;
mod client;
mod error;
mod events;
mod locks;
mod retry;
pub mod runtime;
mod sagas;
mod session;
mod tls;
pub mod trace;

pub use bytes::Bytes;
pub use cache::{Cache, CacheEntry, SetOptions};
pub use client::{Client, ClientOptions, ClientStats, TokenProvider};
pub use error::{Error, ErrorKind, Result, ERROR_CODE_HEADER};
pub use events::{
    AppendResult, Direction, EventData, Events, ExpectedVersion, ReadFrom, ReadResult,
    RecordedEvent, SubscribeFrom, Subscription,
};
pub use locks::{Lease, LeaseEnd, LeaseInfo, LockBuilder, LockContext, LockOptions, LostSignal};
pub use retry::RetryPolicy;
pub use runtime::{runtime, shutdown};
pub use sagas::{
    AttemptInfo, Handler, HandlerResult, SagaInfo, SagaPage, SagaState, Sagas, StartSaga,
    StepDefinition, StepInfo, StepRetryPolicy, Task, TaskFailure, TaskPoller, Worker,
    WorkerBuilder, WAIT_FIRST_EVENT, WAIT_RECHECK,
};
pub use tls::TlsOptions;
