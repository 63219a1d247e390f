//! The completion queue: an alternative to being called back on a runtime thread. A host passes
//! [`syros_completions_callback`] as a call's callback; the outcome is queued (its JSON copied)
//! and a wake-up byte is written to a socket whose other end ([`syros_completions_fd`]) the host
//! watches with its own event loop, then takes the queued outcomes with
//! [`syros_completions_drain`].
//!
//! Why: entering a host runtime from a foreign thread is expensive for some hosts. For Go, each
//! callback from a runtime thread is a cgo callback that must get an M and a P (with one P, it
//! waits for the goroutine-running thread) and then wake the waiting goroutine on another
//! thread: ~3.7 context switches per lock cycle. A socket read by Go's netpoller wakes the Go
//! scheduler once per batch instead, and the drain is one ordinary cgo call.
//!
//! The queue itself is the binding API's [`WakeQueue`] (shared with the Python binding's asyncio
//! path); this module only lends the drained JSON to the host until its next drain.

#[cfg(unix)]
use std::sync::Mutex;
use std::sync::OnceLock;

#[cfg(unix)]
use syros_binding_api::wake::WakeQueue;

use crate::{guarded, SyrosCallback, SyrosOutcome};

/// A queued outcome with its call's `user_data`, as [`syros_completions_drain`] hands it out.
#[repr(C)]
pub struct SyrosCompletion {
    /// The `user_data` the call was started with.
    pub user_data: usize,
    /// The outcome: `json` stays valid until the next [`syros_completions_drain`]; a handle in
    /// it is the host's.
    pub outcome: SyrosOutcome,
}

/// An outcome waiting in the queue (its JSON owned here).
struct Queued {
    user_data: usize,
    json: Vec<u8>,
    outcome: SyrosOutcome,
}

// SAFETY: the raw handle pointers in `outcome` are owned boxes handed over to the host; the
// queue only moves them between threads.
unsafe impl Send for Queued {}

#[cfg(unix)]
struct Queue {
    outcomes: WakeQueue<Queued>,
    /// The JSON of the last drain, kept alive until the next one.
    lent: Mutex<Vec<Vec<u8>>>,
}

#[cfg(not(unix))]
struct Queue;

#[cfg(not(unix))]
impl Queue {
    fn push(&self, _item: Queued) {}
}

#[cfg(unix)]
impl Queue {
    fn push(&self, item: Queued) {
        self.outcomes.push(item);
    }
}

fn queue() -> Option<&'static Queue> {
    static QUEUE: OnceLock<Option<Queue>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            #[cfg(unix)]
            {
                Some(Queue {
                    outcomes: WakeQueue::new().ok()?,
                    lent: Mutex::new(Vec::new()),
                })
            }
            #[cfg(not(unix))]
            {
                None
            }
        })
        .as_ref()
}

/// The callback that queues: copies the outcome's JSON and queues it with `user_data`.
unsafe extern "C" fn queue_outcome(user_data: usize, outcome: *const SyrosOutcome) {
    guarded((), || {
        let (Some(queue), Some(outcome)) = (queue(), outcome.as_ref()) else {
            return;
        };
        let json = match crate::bytes_arg(outcome.json, outcome.json_len) {
            Ok(json) => json.to_vec(),
            Err(_) => Vec::new(),
        };
        queue.push(Queued {
            user_data,
            json,
            outcome: SyrosOutcome {
                json: std::ptr::null(),
                json_len: 0,
                ..*outcome
            },
        });
    })
}

/// The end of the queue's wake-up socket pair that the host watches (created on the first call; -1 when it cannot be,
/// or off Unix): readable when outcomes wait. Read and discard its bytes (make it non-blocking
/// first if the event loop needs that), then call [`syros_completions_drain`] until it returns
/// fewer than asked for. The descriptor lives as long as the process: do not close it.
#[no_mangle]
pub extern "C" fn syros_completions_fd() -> i32 {
    guarded(-1, || {
        #[cfg(unix)]
        {
            queue().map_or(-1, |queue| queue.outcomes.fd())
        }
        #[cfg(not(unix))]
        {
            -1
        }
    })
}

/// The callback to pass to an asynchronous call to have its outcome queued instead of delivered
/// on a runtime thread: [`syros_completions_drain`] hands it out with the call's `user_data`.
/// NULL when the queue cannot be created (then use a callback of your own).
#[no_mangle]
pub extern "C" fn syros_completions_callback() -> SyrosCallback {
    guarded(None, || {
        let outcome_queued: unsafe extern "C" fn(usize, *const SyrosOutcome) = queue_outcome;
        queue().map(|_| outcome_queued)
    })
}

/// Move up to `capacity` queued outcomes, oldest first, into `out`; returns how many. Their JSON
/// stays valid until the next call (copy it out); their handles are the host's. One thread
/// drains at a time. Call it again while it fills `out`: outcomes past `capacity` raise no new
/// wake-up.
#[no_mangle]
pub unsafe extern "C" fn syros_completions_drain(
    out: *mut SyrosCompletion,
    capacity: usize,
) -> usize {
    guarded(0, || {
        let Some(queue) = queue() else {
            return 0;
        };
        if out.is_null() {
            return 0;
        }
        #[cfg(not(unix))]
        {
            let _ = (queue, capacity);
            0
        }
        #[cfg(unix)]
        {
            let mut lent = queue.lent.lock().unwrap_or_else(|p| p.into_inner());
            lent.clear();
            let taken = queue.outcomes.take(capacity);
            let count = taken.len();
            for (index, mut item) in taken.into_iter().enumerate() {
                item.outcome.json = if item.json.is_empty() {
                    std::ptr::null()
                } else {
                    item.json.as_ptr()
                };
                item.outcome.json_len = item.json.len();
                // SAFETY: the host passes room for `capacity` completions (documented).
                out.add(index).write(SyrosCompletion {
                    user_data: item.user_data,
                    outcome: item.outcome,
                });
                lent.push(item.json);
            }
            count
        }
    })
}
