//! Get-or-compute, pulled: [`CacheLookup`] and the [`ComputeTicket`] a host completes.
//!
//! The single-flight logic is the core's ([`syros_client::Cache::get_or_compute_with`]); the
//! "compute" function it is given here just hands the host a ticket and waits for the host to
//! complete it, so the host is never called back from a Rust thread.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{ErrorRecord, Result};
use crate::records::CacheSet;
use crate::rt::{self, CoreTask};

/// The outcome of [`crate::Client::cache_begin`].
#[derive(Debug)]
pub enum CacheLookup {
    /// The value: cached, or computed by another caller of the same flight.
    Hit(Bytes),
    /// A miss, and this caller computes: complete (or fail) the ticket.
    Compute(Arc<ComputeTicket>),
}

type Computed = std::result::Result<Bytes, String>;

/// The right and duty to compute one missing cache value. Complete it with the value (stored
/// with the options given to `cache_begin` and handed to every caller waiting for the same key),
/// or fail it (every waiting caller gets a `callback_failed` error and nothing is stored).
/// Dropping it unfinished fails it.
pub struct ComputeTicket {
    key: String,
    answer: Mutex<Option<oneshot::Sender<Computed>>>,
    flight: Mutex<Option<JoinHandle<syros_client::Result<Bytes>>>>,
}

impl std::fmt::Debug for ComputeTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeTicket")
            .field("key", &self.key)
            .finish()
    }
}

impl ComputeTicket {
    /// The key to compute.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn finish(&self, computed: Computed) -> CoreTask<Bytes> {
        let answer = self.answer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let flight = self.flight.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (Some(answer), Some(flight)) = (answer, flight) else {
            return CoreTask::failed(ErrorRecord::invalid(
                "this compute ticket was already completed or failed",
            ));
        };
        let _ = answer.send(computed);
        rt::spawn(async move {
            match flight.await {
                Ok(result) => Ok(result?),
                Err(_) => Err(ErrorRecord::cancelled("the computation was cancelled")),
            }
        })
    }

    /// Hand over the computed value; resolves to it once stored (a failure to store is logged,
    /// not returned: the value is still right).
    pub fn complete(&self, value: Vec<u8>) -> CoreTask<Bytes> {
        self.finish(Ok(Bytes::from(value)))
    }

    /// The computation failed with `message`: every caller waiting for this key gets a
    /// `callback_failed` error with it; nothing is stored.
    pub fn fail(&self, message: String) -> CoreTask<()> {
        let finished = self.finish(Err(message));
        rt::spawn(async move {
            match finished.await {
                Ok(_) => Ok(()),
                // The expected outcome: the flight failed with our message.
                Err(err) if err.kind == syros_client::ErrorKind::Callback => Ok(()),
                Err(err) => Err(err),
            }
        })
    }
}

impl Drop for ComputeTicket {
    fn drop(&mut self) {
        let answer = self.answer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(answer) = answer {
            let _ = answer.send(Err(
                "the computation was abandoned (its ticket was dropped unfinished)".to_string(),
            ));
        }
    }
}

pub(crate) async fn begin(
    client: syros_client::Client,
    key: String,
    set: CacheSet,
) -> Result<CacheLookup> {
    let (ask_tx, ask_rx) = oneshot::channel::<oneshot::Sender<Computed>>();
    let compute = move || async move {
        let (answer_tx, answer_rx) = oneshot::channel();
        if ask_tx.send(answer_tx).is_err() {
            return Err("the caller went away before computing".to_string());
        }
        match answer_rx.await {
            Ok(computed) => computed,
            Err(_) => Err("the computation was abandoned".to_string()),
        }
    };
    let cache = client.cache();
    let flight_key = key.clone();
    let mut flight = tokio::spawn(async move {
        cache
            .get_or_compute_with(&flight_key, set.options(), compute)
            .await
    });
    tokio::select! {
        biased;
        asked = ask_rx => match asked {
            Ok(answer) => Ok(CacheLookup::Compute(Arc::new(ComputeTicket {
                key,
                answer: Mutex::new(Some(answer)),
                flight: Mutex::new(Some(flight)),
            }))),
            // Our compute function was never called: the flight's value came from the cache
            // or from another caller's computation.
            Err(_) => joined(flight.await),
        },
        done = &mut flight => joined(done),
    }
}

fn joined(
    done: std::result::Result<syros_client::Result<Bytes>, tokio::task::JoinError>,
) -> Result<CacheLookup> {
    match done {
        Ok(result) => Ok(CacheLookup::Hit(result?)),
        Err(_) => Err(ErrorRecord::cancelled("the lookup was cancelled")),
    }
}
