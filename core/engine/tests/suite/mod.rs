//! The engine's behavioural test suite, written once and run against every storage backend.
//!
//! A backend's test file (`tests/sqlite.rs`, later `tests/redis_postgres.rs`, ...) declares
//! `mod suite;`, implements [`Harness`] and invokes [`engine_suite!`] with an expression that
//! builds a fresh harness. Every test gets its own harness.
//!
//! The tests never assume an empty store: every key, tag and stream name is made unique per test
//! with [`unique`], and reads across all streams only look at the test's own streams. So a backend
//! whose harnesses share one server (one Redis, one PostgreSQL) can run the suite in parallel.
//! Harnesses must build engines with `Limits::default()`.

#![allow(dead_code)]

pub mod append_groups;
pub mod cache;
pub mod events;
pub mod locks;
pub mod sagas;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use syros_engine::{Engine, Error, ErrorKind};

/// One engine over one backend's storage, able to "restart": a new engine on the same data.
pub trait Harness: Send + 'static {
    /// The current engine.
    fn engine(&self) -> Arc<Engine>;

    /// Shut the current engine down, release its storage handles, and open a new engine on the
    /// same data, as a server restart would. The caller must drop its clones of the old engine;
    /// the old engine is not expected to keep working.
    fn restart(&mut self) -> impl Future<Output = Arc<Engine>> + Send;

    /// Make the store refuse (`true`) or accept again (`false`) appends to saga audit streams
    /// (`saga-*`), as a failure between a saga transition and its audit events would.
    fn refuse_audit_appends(&self, refuse: bool) -> impl Future<Output = ()> + Send;
}

/// A name unique to this test run: `<what>-<uuid>`.
pub fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

/// Assert that `result` failed with `kind`, and return the error.
#[track_caller]
pub fn expect_kind<T: std::fmt::Debug>(result: Result<T, Error>, kind: ErrorKind) -> Error {
    match result {
        Ok(value) => panic!("expected a {kind:?} error, got Ok({value:?})"),
        Err(err) => {
            assert_eq!(err.kind, kind, "wrong error kind: {err}");
            err
        }
    }
}

/// Await `fut` for at most `secs` seconds; a hang is a test failure, not a stuck test run.
pub async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: did not finish within {secs} s"),
    }
}

/// Expands to one `#[tokio::test]` per behaviour, each building its own harness with `$make`
/// (an expression, evaluated in a child module of the invoking one, whose value is a future of a
/// [`Harness`]). Tests are grouped as `locks::*`, `cache::*` and `events::*`.
#[macro_export]
macro_rules! engine_suite {
    ($make:expr) => {
        $crate::engine_suite!(@group $make; locks {
            acquire_status_and_list,
            list_prefix_is_literal,
            contention_renew_release,
            fencing_tokens_increase,
            waiter_gets_lock_after_release,
            waiter_times_out_with_holder,
            expired_lease_goes_to_waiter,
            waiters_are_served_fifo,
            mutual_exclusion_under_contention,
            force_release_hands_over,
            cancelled_waiter_gets_nothing,
            waiter_dropped_after_delivery_releases_the_lease,
            request_id_makes_acquire_idempotent,
            invalid_arguments_change_nothing,
            leases_survive_restart,
            try_lock_does_not_jump_the_queue,
            lock_change_feed_reports_in_order,
            lock_change_feed_reports_expiry,
        });
        $crate::engine_suite!(@group $make; cache {
            set_get_overwrite_delete,
            ttl_expires_entries,
            invalidate_tag_removes_tagged_keys,
            size_and_tag_limits,
            entries_survive_restart,
            repeated_set_request_changes_nothing,
        });
        $crate::engine_suite!(@group $make; events {
            append_checks_expected_version,
            rejected_batches_store_nothing,
            read_stream_pages_both_ways,
            read_all_in_global_order,
            concurrent_appends_any_have_no_gaps,
            concurrent_batches_stay_contiguous,
            concurrent_streams_share_gap_free_positions,
            optimistic_concurrency_one_winner_per_version,
            subscribe_stream_catches_up_then_follows,
            subscribe_all_in_global_order,
            subscribe_from_end_gets_only_new_events,
            subscription_under_concurrent_writer_has_no_gaps,
            events_survive_restart,
            shutdown_ends_subscriptions,
            repeated_appends_are_acknowledged_not_duplicated,
            cancelled_appends_still_wake_subscribers,
        });
        $crate::engine_suite!(@group $make; sagas {
            happy_path_passes_outputs_and_audits,
            failure_compensates_completed_steps_in_reverse,
            failure_at_step_two_compensates_step_one_only,
            retries_follow_the_policy,
            non_retryable_errors_skip_retries,
            timed_out_task_is_redelivered,
            idempotency_key_returns_the_same_saga,
            cancel_compensates_what_completed,
            failed_compensation_is_visible,
            sagas_continue_after_restart,
            invalid_sagas_are_refused,
            paging_returns_every_saga_once,
            nul_in_reported_text_is_stored,
            timed_out_step_is_compensated,
            cancel_racing_a_report_stops_the_next_step,
            waiting_feed_gets_tasks_without_a_recheck,
            transition_and_audit_events_commit_together,
            racing_reports_of_one_task_store_one_transition,
        });
    };
    (@group $make:expr; $module:ident { $($name:ident),* $(,)? }) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = $make.await;
                    $crate::suite::$module::$name(harness).await;
                }
            )*
        }
    };
}
