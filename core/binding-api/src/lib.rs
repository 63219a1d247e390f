//! # syros-binding-api
//!
//! The one surface every language binding (PyO3, napi-rs, JNI, the C ABI, UniFFI) stands on. It
//! wraps the client core ([`syros_client`]) in the shape a foreign-function boundary wants, the
//! way Temporal's core bridge and OpenDAL's operator do:
//!
//! - **Objects are `Arc`s and every method takes `&self`.** Nothing is consumed: `release`,
//!   `close` and `stop` are idempotent, so a host's garbage collector, `finally` block and
//!   explicit call can all reach them in any order.
//! - **Records are plain data**: strings, bytes, integers, milliseconds ([`records`]). No
//!   generics, closures, `Duration`s, streams or tokio types cross it.
//! - **The runtime rule is enforced here** ([`rt`]): every future runs on the client core's one
//!   runtime and the caller only awaits its `JoinHandle`, whatever executor the host has
//!   (pyo3-async-runtimes, napi's runtime, Kotlin coroutines, a blocked thread).
//! - **Pull, not push.** The host is never called back from a Rust thread: a saga worker is
//!   [`Worker::poll_task`] / [`Worker::complete`] / [`Worker::heartbeat`]; get-or-compute is a
//!   [`ComputeTicket`] the host completes; a subscription is [`Subscription::next`] with a
//!   timeout; a lease's end is [`Lease::wait_end`]; the bearer token is set with
//!   [`Client::set_auth_token`].
//! - **One error record** ([`ErrorRecord`]): a stable code, the retryable flag, a message and
//!   details. A binding maps the code to its language's error class and nothing else.
//!
//! ```no_run
//! # async fn demo() -> Result<(), syros_binding_api::ErrorRecord> {
//! use syros_binding_api::{Client, ClientConfig, LockRequest};
//!
//! let client = Client::new(ClientConfig::new(vec!["127.0.0.1:9090".into()]))?;
//! client.connect().await?;
//! let lease = client.lock("orders:42".into(), LockRequest::new(10_000, 5_000)).await?;
//! println!("fencing token {}", lease.info().fencing_token);
//! lease.release().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod cache;
mod client;
mod error;
mod events;
mod lease;
pub mod records;
pub mod rt;
mod sagas;
pub mod trace;
#[cfg(unix)]
pub mod wake;

pub use cache::{CacheLookup, ComputeTicket};
pub use client::Client;
pub use error::{ErrorKind, ErrorRecord, Result};
pub use events::{Subscription, SubscriptionItem};
pub use lease::{Lease, LeaseEnd};
pub use records::*;
pub use sagas::Worker;
