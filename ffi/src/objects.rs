//! The objects a client hands out: `syros_lease_*`, `syros_subscription_*`, `syros_worker_*`,
//! `syros_ticket_*`. Asynchronous entry points follow the conventions of [`crate::client`].

use std::sync::Arc;

use syros_binding_api::{self as api, ErrorRecord};

use crate::records::*;
use crate::*;

/// A held lock, renewed in the background until released or lost. Freeing the handle releases
/// the lease (in the background) if it is still held.
pub struct SyrosLease(pub(crate) Arc<api::Lease>);

/// A live event subscription. Freeing the handle closes it.
pub struct SyrosSubscription(pub(crate) Arc<api::Subscription>);

/// A saga step runner for one service. Freeing the handle stops it.
pub struct SyrosWorker(pub(crate) Arc<api::Worker>);

/// The right and duty to compute one missing cache value. Freeing it unfinished fails it.
pub struct SyrosComputeTicket(pub(crate) Arc<api::ComputeTicket>);

unsafe fn object<'a, T>(handle: *const T, what: &str) -> Result<&'a T, ErrorRecord> {
    handle_ref(handle).ok_or_else(|| ErrorRecord::invalid(format!("the {what} handle is NULL")))
}

/// Optional milliseconds: negative = no limit.
fn limit_ms(timeout_ms: i64) -> Option<u64> {
    u64::try_from(timeout_ms).ok()
}

// --- leases ----------------------------------------------------------------------------------

/// The lease record as last granted or renewed (`lease_id`, `key`, `owner`, `fencing_token`,
/// `acquired_at_ms`, `expires_at_ms`, `ttl_ms`).
#[no_mangle]
pub unsafe extern "C" fn syros_lease_info(lease: *const SyrosLease, out: *mut SyrosBuffer) -> i32 {
    sync_call(out, || {
        let lease = object(lease, "lease")?;
        let info = lease.0.info();
        Ok(to_json(&HeldLeaseJson::new(&info, lease.0.ttl_ms())))
    })
}

/// Whether the lease was lost (NULL: false).
#[no_mangle]
pub unsafe extern "C" fn syros_lease_is_lost(lease: *const SyrosLease) -> bool {
    guarded(false, || handle_ref(lease).is_some_and(|l| l.0.is_lost()))
}

/// Whether the lease is still ours: neither released nor lost (NULL: false).
#[no_mangle]
pub unsafe extern "C" fn syros_lease_is_held(lease: *const SyrosLease) -> bool {
    guarded(false, || handle_ref(lease).is_some_and(|l| l.0.is_held()))
}

/// Release it (releasing again does nothing). Result: `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_lease_release(
    lease: *const SyrosLease,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(object(lease, "lease")?.0.release()),
        |()| Ok(Reply::json(&())),
    )
}

/// Extend it now. Result: the lease record (without `ttl_ms`).
#[no_mangle]
pub unsafe extern "C" fn syros_lease_renew(
    lease: *const SyrosLease,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(object(lease, "lease")?.0.renew()),
        |info| Ok(Reply::json(&LeaseJson::from(&info))),
    )
}

/// Wait until the lease ends, at most `timeout_ms` (negative: no limit). Result: `"lost"`,
/// `"released"` or `"timed_out"`.
#[no_mangle]
pub unsafe extern "C" fn syros_lease_wait_end(
    lease: *const SyrosLease,
    timeout_ms: i64,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(object(lease, "lease")?.0.wait_end(limit_ms(timeout_ms))),
        |end| Ok(Reply::json(&lease_end(end))),
    )
}

/// Free the lease handle (a lease still held is released in the background).
#[no_mangle]
pub unsafe extern "C" fn syros_lease_free(lease: *mut SyrosLease) {
    guarded((), || free_handle(lease))
}

// --- subscriptions ---------------------------------------------------------------------------

/// The next item, waiting up to `timeout_ms` (negative: until an event comes or it is closed).
/// Result: `{"kind": "event", "event": {...}}`, `{"kind": "timed_out"}` or `{"kind": "ended"}`;
/// the error that ended the subscription is reported once, then `ended`.
#[no_mangle]
pub unsafe extern "C" fn syros_subscription_next(
    subscription: *const SyrosSubscription,
    timeout_ms: i64,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            Ok(object(subscription, "subscription")?
                .0
                .next(limit_ms(timeout_ms)))
        },
        |item| Ok(Reply::json(&SubscriptionItemJson::from(&item))),
    )
}

/// Stop following (idempotent); a pending `next` reports `ended`.
#[no_mangle]
pub unsafe extern "C" fn syros_subscription_close(subscription: *const SyrosSubscription) {
    guarded((), || {
        if let Some(subscription) = handle_ref(subscription) {
            subscription.0.close();
        }
    })
}

/// Close and free the subscription handle.
#[no_mangle]
pub unsafe extern "C" fn syros_subscription_free(subscription: *mut SyrosSubscription) {
    guarded((), || {
        if let Some(s) = handle_ref(subscription) {
            s.0.close();
        }
        free_handle(subscription)
    })
}

// --- workers ---------------------------------------------------------------------------------

/// The id the server knows this worker by (a JSON string).
#[no_mangle]
pub unsafe extern "C" fn syros_worker_id(worker: *const SyrosWorker, out: *mut SyrosBuffer) -> i32 {
    sync_call(out, || {
        Ok(to_json(&object(worker, "worker")?.0.worker_id()))
    })
}

/// The next task, waiting up to `timeout_ms` (negative: until one comes or the worker stops).
/// Result: a task record (`task_id`, `saga_id`, `step_name`, `handler`, `is_compensation`,
/// `attempt`, `idempotency_key`, `input_json`, `previous_outputs_json`, `timeout_ms`), or
/// `null` when the time passed or the worker stopped.
#[no_mangle]
pub unsafe extern "C" fn syros_worker_poll_task(
    worker: *const SyrosWorker,
    timeout_ms: i64,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(object(worker, "worker")?.0.poll_task(limit_ms(timeout_ms))),
        |task| Ok(Reply::json(&task.as_ref().map(TaskJson::from))),
    )
}

/// Report a task's outcome (JSON: `{"outcome": "completed", "output_json": ...}` or
/// `{"outcome": "failed", "error_type", "message", "non_retryable"}`). Result: whether the
/// server accepted it.
#[no_mangle]
pub unsafe extern "C" fn syros_worker_complete(
    worker: *const SyrosWorker,
    task_id: *const u8,
    task_id_len: usize,
    outcome_json: *const u8,
    outcome_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let task_id = str_arg(task_id, task_id_len, "the task id")?;
            let outcome: TaskOutcomeJson = json_arg(outcome_json, outcome_len, "the outcome")?;
            Ok(object(worker, "worker")?
                .0
                .complete(task_id, outcome.into()))
        },
        |accepted| Ok(Reply::json(&accepted)),
    )
}

/// Whether the task is still assigned to this worker. Result: `true`/`false`.
#[no_mangle]
pub unsafe extern "C" fn syros_worker_heartbeat(
    worker: *const SyrosWorker,
    task_id: *const u8,
    task_id_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let task_id = str_arg(task_id, task_id_len, "the task id")?;
            Ok(object(worker, "worker")?.0.heartbeat(task_id))
        },
        |assigned| Ok(Reply::json(&assigned)),
    )
}

/// Tasks held now (handed out or buffered, not yet completed); NULL: 0.
#[no_mangle]
pub unsafe extern "C" fn syros_worker_outstanding(worker: *const SyrosWorker) -> u64 {
    guarded(0, || handle_ref(worker).map_or(0, |w| w.0.outstanding()))
}

/// Stop taking tasks (idempotent, returns at once); pending polls report `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_worker_stop(worker: *const SyrosWorker) {
    guarded((), || {
        if let Some(worker) = handle_ref(worker) {
            worker.0.stop();
        }
    })
}

/// Stop, then wait until every task handed out was completed (or timed out). Result: `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_worker_stop_and_drain(
    worker: *const SyrosWorker,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(object(worker, "worker")?.0.stop_and_drain()),
        |()| Ok(Reply::json(&())),
    )
}

/// Stop and free the worker handle.
#[no_mangle]
pub unsafe extern "C" fn syros_worker_free(worker: *mut SyrosWorker) {
    guarded((), || {
        if let Some(w) = handle_ref(worker) {
            w.0.stop();
        }
        free_handle(worker)
    })
}

// --- compute tickets -------------------------------------------------------------------------

/// The key to compute (a JSON string).
#[no_mangle]
pub unsafe extern "C" fn syros_ticket_key(
    ticket: *const SyrosComputeTicket,
    out: *mut SyrosBuffer,
) -> i32 {
    sync_call(out, || Ok(to_json(&object(ticket, "ticket")?.0.key())))
}

/// Hand over the computed value (stored with the options of `cache_begin`, and handed to every
/// caller waiting for the same key). Result: the value (base64 string).
#[no_mangle]
pub unsafe extern "C" fn syros_ticket_complete(
    ticket: *const SyrosComputeTicket,
    value: *const u8,
    value_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let value = bytes_arg(value, value_len)?.to_vec();
            Ok(object(ticket, "ticket")?.0.complete(value))
        },
        |value| Ok(Reply::json(&value_json(&value))),
    )
}

/// The computation failed with `message`: every waiting caller gets `callback_failed`; nothing
/// is stored. Result: `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_ticket_fail(
    ticket: *const SyrosComputeTicket,
    message: *const u8,
    message_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let message = str_arg(message, message_len, "the message")?;
            Ok(object(ticket, "ticket")?.0.fail(message))
        },
        |()| Ok(Reply::json(&())),
    )
}

/// Free the ticket handle (unfinished: the computation fails for every waiting caller).
#[no_mangle]
pub unsafe extern "C" fn syros_ticket_free(ticket: *mut SyrosComputeTicket) {
    guarded((), || free_handle(ticket))
}
