//! Engine metrics, recorded through the [`metrics`] facade where the engine acts, so that every
//! transport (gRPC, REST, GraphQL, WebSocket) is counted once and alike. Without an installed
//! recorder (the engine's own tests) every call is a no-op; the server installs a Prometheus
//! recorder, sets [`LOCK_WAIT_BUCKETS`] for [`LOCK_WAIT`] and calls [`describe`].
//!
//! All numbers are per server process: with several replicas, sum them.

/// Lock acquire calls by `outcome`: `acquired`, `not_acquired` (try-lock refused or wait timed
/// out), `error` (invalid arguments, storage failure) or `cancelled` (the caller went away while
/// waiting).
pub const LOCK_ACQUISITIONS: &str = "syros_lock_acquisitions_total";
/// Seconds an acquire spent queued behind a holder, by `outcome` (as [`LOCK_ACQUISITIONS`]);
/// only acquires that had to wait are observed.
pub const LOCK_WAIT: &str = "syros_lock_wait_seconds";
/// Leases granted through this server that it believes still held: +1 when it grants a lease,
/// -1 when that lease is released or force-released (through any replica: shared stores
/// announce releases) or when it sees it expired. Approximate and per replica; the sum over
/// replicas is the number of held locks.
pub const LOCKS_HELD: &str = "syros_locks_held";
/// Events appended, by the API and by saga audit streams.
pub const EVENTS_APPENDED: &str = "syros_events_appended_total";
/// Cache reads by `result`: `hit` or `miss`.
pub const CACHE_LOOKUPS: &str = "syros_cache_lookups_total";
/// Saga state changes stored by this server, by the `state` entered (`running` when a saga
/// starts, then `compensating`, `completed`, `compensated`, `compensation_failed`,
/// `cancelled`).
pub const SAGA_TRANSITIONS: &str = "syros_saga_transitions_total";

/// Seconds from a saga step's action or compensation being handed to a step runner to its result,
/// by `kind` (`action`, `compensation`) and `outcome` (`completed`, `failed`, or `timed_out` when
/// no result came within the step's timeout).
pub const SAGA_STEP_DURATION: &str = "syros_saga_step_duration_seconds";

/// Histogram buckets (seconds) for [`SAGA_STEP_DURATION`]: from an in-process handler to the
/// longest step timeouts.
pub const SAGA_STEP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Histogram buckets (seconds) for [`LOCK_WAIT`]: from a quick hand-off to the 300 s wait limit.
pub const LOCK_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
];

/// Describe the engine's metrics to the installed recorder (help texts and units).
pub fn describe() {
    metrics::describe_counter!(LOCK_ACQUISITIONS, "lock acquire calls by outcome");
    metrics::describe_histogram!(
        LOCK_WAIT,
        metrics::Unit::Seconds,
        "time lock acquires spent waiting for a holder, by outcome"
    );
    metrics::describe_gauge!(
        LOCKS_HELD,
        "leases granted through this server and still held, as far as it knows (per replica)"
    );
    metrics::describe_counter!(EVENTS_APPENDED, "events appended (API and saga audit)");
    metrics::describe_counter!(CACHE_LOOKUPS, "cache reads by hit or miss");
    metrics::describe_counter!(SAGA_TRANSITIONS, "saga state changes by the state entered");
    metrics::describe_histogram!(
        SAGA_STEP_DURATION,
        metrics::Unit::Seconds,
        "saga step attempts from hand-off to a step runner to their result, by kind and outcome"
    );
}

/// One lock acquire: records its outcome (and its wait, if it waited) when dropped, so an acquire
/// abandoned by its caller counts as `cancelled`.
pub(crate) struct AcquireProbe {
    started: std::time::Instant,
    waited: bool,
    outcome: Option<&'static str>,
}

impl AcquireProbe {
    pub(crate) fn start() -> Self {
        AcquireProbe {
            started: std::time::Instant::now(),
            waited: false,
            outcome: None,
        }
    }

    /// The acquire joined the queue of waiters.
    pub(crate) fn waiting(&mut self) {
        self.waited = true;
    }

    /// The acquire ended with `outcome` (see [`LOCK_ACQUISITIONS`]).
    pub(crate) fn finish(&mut self, outcome: &'static str) {
        self.outcome = Some(outcome);
    }
}

impl Drop for AcquireProbe {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or("cancelled");
        metrics::counter!(LOCK_ACQUISITIONS, "outcome" => outcome).increment(1);
        if self.waited {
            metrics::histogram!(LOCK_WAIT, "outcome" => outcome)
                .record(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Records a cache read.
pub(crate) fn cache_lookup(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE_LOOKUPS, "result" => result).increment(1);
}

/// Records `count` appended events.
pub(crate) fn events_appended(count: usize) {
    metrics::counter!(EVENTS_APPENDED).increment(count as u64);
}

/// Records a saga entering `state`.
pub(crate) fn saga_transition(state: &'static str) {
    metrics::counter!(SAGA_TRANSITIONS, "state" => state).increment(1);
}

/// Records one finished step attempt (see [`SAGA_STEP_DURATION`]).
pub(crate) fn saga_step_finished(kind: &'static str, outcome: &'static str, seconds: f64) {
    metrics::histogram!(SAGA_STEP_DURATION, "kind" => kind, "outcome" => outcome).record(seconds);
}

/// Adds `delta` to [`LOCKS_HELD`].
pub(crate) fn locks_held(delta: f64) {
    metrics::gauge!(LOCKS_HELD).increment(delta);
}
