//! `syros_client_*`: the connection and every operation on it.
//!
//! Asynchronous entry points all end with `(cancel, callback, user_data)`: `cancel` may be NULL;
//! the callback is called exactly once (see [`crate::SyrosCallback`]); they return
//! [`crate::SYROS_OK`], or [`crate::SYROS_NO_CALLBACK`] when `callback` is NULL.

use std::sync::Arc;

use syros_binding_api::{self as api, CacheLookup, ErrorRecord};

use crate::records::{self, *};
use crate::*;

/// A connection to Syros ([`syros_client_new`]); free it with [`syros_client_free`].
pub struct SyrosClient(Arc<api::Client>);

unsafe fn client_of<'a>(client: *const SyrosClient) -> Result<&'a api::Client, ErrorRecord> {
    handle_ref(client)
        .map(|c| &*c.0)
        .ok_or_else(|| ErrorRecord::invalid("the client handle is NULL"))
}

/// Create a client from a JSON `ClientConfig` (ffi/README.md) and start connecting in the
/// background. On [`SYROS_OK`] `*out_client` is the new handle; on [`SYROS_ERROR`] `*out_error`
/// (if not NULL) holds the error record (free it with [`syros_buffer_free`]).
#[no_mangle]
pub unsafe extern "C" fn syros_client_new(
    config_json: *const u8,
    config_len: usize,
    out_client: *mut *mut SyrosClient,
    out_error: *mut SyrosBuffer,
) -> i32 {
    if !out_client.is_null() {
        out_client.write(std::ptr::null_mut());
    }
    sync_call(out_error, || {
        if out_client.is_null() {
            return Err(ErrorRecord::invalid("out_client is NULL"));
        }
        let config: ClientConfigJson = json_arg(config_json, config_len, "the client config")?;
        let client = api::Client::new(config.into())?;
        out_client.write(into_handle(SyrosClient(client)));
        Ok(Vec::new())
    })
}

/// Refuse every later call on this client (idempotent). Leases, subscriptions and workers it
/// handed out keep working until released, closed or stopped.
#[no_mangle]
pub unsafe extern "C" fn syros_client_close(client: *const SyrosClient) {
    guarded((), || {
        if let Some(client) = handle_ref(client) {
            client.0.close();
        }
    })
}

/// Free the client handle (closing it is separate: [`syros_client_close`]).
#[no_mangle]
pub unsafe extern "C" fn syros_client_free(client: *mut SyrosClient) {
    guarded((), || free_handle(client))
}

/// Replace the bearer token sent with later calls; `token` NULL = send none.
#[no_mangle]
pub unsafe extern "C" fn syros_client_set_auth_token(
    client: *const SyrosClient,
    token: *const u8,
    token_len: usize,
    out_error: *mut SyrosBuffer,
) -> i32 {
    sync_call(out_error, || {
        let token = opt_str_arg(token, token_len, "the token")?;
        client_of(client)?.set_auth_token(token);
        Ok(Vec::new())
    })
}

/// The client's default lock owner (a JSON string), once connected.
#[no_mangle]
pub unsafe extern "C" fn syros_client_owner(
    client: *const SyrosClient,
    out: *mut SyrosBuffer,
) -> i32 {
    sync_call(out, || Ok(to_json(&client_of(client)?.owner()?)))
}

/// `{calls, attempts, retries, failovers}`, once connected.
#[no_mangle]
pub unsafe extern "C" fn syros_client_stats(
    client: *const SyrosClient,
    out: *mut SyrosBuffer,
) -> i32 {
    sync_call(out, || {
        Ok(to_json(&StatsJson::from(client_of(client)?.stats()?)))
    })
}

/// Wait until connected. Result: `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_connect(
    client: *const SyrosClient,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.connect()),
        |()| Ok(Reply::json(&())),
    )
}

/// Ask the server whether it is serving. Result: `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_check_health(
    client: *const SyrosClient,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.check_health()),
        |()| Ok(Reply::json(&())),
    )
}

// --- locks -----------------------------------------------------------------------------------

/// Acquire `key` with a JSON `LockRequest` (`ttl_ms`, `wait_ms`, `owner`, `auto_renew`).
/// Result: the lease record, and `outcome.lease`; `lock_timeout` when still held after the wait.
#[no_mangle]
pub unsafe extern "C" fn syros_client_lock(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    request_json: *const u8,
    request_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let (key, request) = lock_args(key, key_len, request_json, request_len)?;
            Ok(client_of(client)?.lock(key, request))
        },
        |lease| Ok(lease_reply(lease)),
    )
}

unsafe fn lock_args(
    key: *const u8,
    key_len: usize,
    request_json: *const u8,
    request_len: usize,
) -> Result<(String, api::LockRequest), ErrorRecord> {
    let key = str_arg(key, key_len, "the key")?;
    let request: LockRequestJson = json_arg(request_json, request_len, "the lock request")?;
    Ok((key, request.into()))
}

pub(crate) fn lease_reply(lease: Arc<api::Lease>) -> Reply {
    let info = lease.info();
    Reply::json(&HeldLeaseJson::new(&info, lease.ttl_ms())).with_handle(NewHandle::Lease(lease))
}

/// Try once. Result: the lease record and `outcome.lease`, or `null` (and no lease) when
/// someone else holds `key`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_try_lock(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    request_json: *const u8,
    request_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let (key, request) = lock_args(key, key_len, request_json, request_len)?;
            Ok(client_of(client)?.try_lock(key, request))
        },
        |lease| Ok(lease.map_or_else(|| Reply::json(&()), lease_reply)),
    )
}

/// The holder of `key`. Result: a lease record, or `null` when free.
#[no_mangle]
pub unsafe extern "C" fn syros_client_lock_status(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.lock_status(str_arg(key, key_len, "the key")?)),
        |info| Ok(Reply::json(&info.as_ref().map(LeaseJson::from))),
    )
}

/// Held locks whose key starts with `prefix` (`limit` 0 = the server's default). Result: an
/// array of lease records.
#[no_mangle]
pub unsafe extern "C" fn syros_client_list_locks(
    client: *const SyrosClient,
    prefix: *const u8,
    prefix_len: usize,
    limit: u32,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let prefix = str_arg(prefix, prefix_len, "the prefix")?;
            Ok(client_of(client)?.list_locks(prefix, limit))
        },
        |infos| Ok(Reply::json(&records::leases(&infos))),
    )
}

/// Administrative: drop whatever lease holds `key`. Result: the lease dropped, or `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_force_release(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.force_release(str_arg(key, key_len, "the key")?)),
        |info| Ok(Reply::json(&info.as_ref().map(LeaseJson::from))),
    )
}

// --- cache -----------------------------------------------------------------------------------

/// Result: `{value (base64), expires_at_ms, tags}`, or `null` when missing.
#[no_mangle]
pub unsafe extern "C" fn syros_client_cache_get(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.cache_get(str_arg(key, key_len, "the key")?)),
        |entry| Ok(Reply::json(&entry.as_ref().map(CacheEntryJson::from))),
    )
}

/// Store `value` with a JSON `CacheSet` (`ttl_ms`, `tags`; empty = `{}`). Result: the expiry
/// (ms since the epoch) or `null`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_cache_set(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    set_json: *const u8,
    set_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let key = str_arg(key, key_len, "the key")?;
            let value = bytes_arg(value, value_len)?.to_vec();
            let set = cache_set_arg(set_json, set_len)?;
            Ok(client_of(client)?.cache_set(key, value, set))
        },
        |expiry| Ok(Reply::json(&expiry)),
    )
}

unsafe fn cache_set_arg(json: *const u8, len: usize) -> Result<api::CacheSet, ErrorRecord> {
    if len == 0 {
        return Ok(api::CacheSet::default());
    }
    let set: CacheSetJson = json_arg(json, len, "the cache options")?;
    Ok(set.into())
}

/// Remove `key`. Result: whether it existed (`true`/`false`).
#[no_mangle]
pub unsafe extern "C" fn syros_client_cache_delete(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.cache_delete(str_arg(key, key_len, "the key")?)),
        |existed| Ok(Reply::json(&existed)),
    )
}

/// Remove every key tagged `tag`. Result: how many (a number).
#[no_mangle]
pub unsafe extern "C" fn syros_client_cache_invalidate_tag(
    client: *const SyrosClient,
    tag: *const u8,
    tag_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.cache_invalidate_tag(str_arg(tag, tag_len, "the tag")?)),
        |removed| Ok(Reply::json(&removed)),
    )
}

/// Get-or-compute, pulled (single-flight in this process). Result: `{"hit": base64}` with the
/// value, or `{"hit": null}` with `outcome.ticket`: compute the value and complete the ticket.
#[no_mangle]
pub unsafe extern "C" fn syros_client_cache_begin(
    client: *const SyrosClient,
    key: *const u8,
    key_len: usize,
    set_json: *const u8,
    set_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let key = str_arg(key, key_len, "the key")?;
            let set = cache_set_arg(set_json, set_len)?;
            Ok(client_of(client)?.cache_begin(key, set))
        },
        |lookup| {
            Ok(match lookup {
                CacheLookup::Hit(value) => Reply::json(&CacheLookupJson {
                    hit: Some(records::value_json(&value)),
                }),
                CacheLookup::Compute(ticket) => Reply::json(&CacheLookupJson { hit: None })
                    .with_handle(NewHandle::Ticket(ticket)),
            })
        },
    )
}

// --- events ----------------------------------------------------------------------------------

/// Append a JSON array of `NewEvent`s (`event_type`, `data_json`, `event_id`, `metadata_json`)
/// if `stream` is at `expected_json` (`"any"`, `"no_stream"` or a version number). Result:
/// `{last_version, first_position, last_position}`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_append(
    client: *const SyrosClient,
    stream: *const u8,
    stream_len: usize,
    events_json: *const u8,
    events_len: usize,
    expected_json: *const u8,
    expected_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let stream = str_arg(stream, stream_len, "the stream")?;
            let events: Vec<NewEventJson> = json_arg(events_json, events_len, "the events")?;
            let expected: PositionJson =
                json_arg(expected_json, expected_len, "the expected version")?;
            let events = events.into_iter().map(Into::into).collect();
            Ok(client_of(client)?.append(stream, events, expected.expected_version()?))
        },
        |result| Ok(Reply::json(&AppendJson::from(&result))),
    )
}

/// Read with a JSON `ReadRequest` (`stream` (null = all), `start`, `backwards`, `limit`).
/// Result: `{events: [...], last, exists}`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_read(
    client: *const SyrosClient,
    request_json: *const u8,
    request_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let request: ReadRequestJson = json_arg(request_json, request_len, "the read request")?;
            Ok(client_of(client)?.read(request.into()))
        },
        |result| Ok(Reply::json(&ReadJson::from(&result))),
    )
}

/// Follow `stream` (NULL = all streams) from `start_json` (`"start"`, `"end"` or a number).
/// Result: `null` and `outcome.subscription`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_subscribe(
    client: *const SyrosClient,
    stream: *const u8,
    stream_len: usize,
    start_json: *const u8,
    start_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let stream = opt_str_arg(stream, stream_len, "the stream")?;
            let start: PositionJson = json_arg(start_json, start_len, "the start")?;
            Ok(client_of(client)?.subscribe(stream, start.subscribe_start()?))
        },
        |subscription| Ok(Reply::json(&()).with_handle(NewHandle::Subscription(subscription))),
    )
}

// --- sagas -----------------------------------------------------------------------------------

/// Start a saga from a JSON `StartSaga` (`name`, `steps`, `input_json`, `idempotency_key`,
/// `retry`). Result: the saga record.
#[no_mangle]
pub unsafe extern "C" fn syros_client_start_saga(
    client: *const SyrosClient,
    saga_json: *const u8,
    saga_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let saga: StartSagaJson = json_arg(saga_json, saga_len, "the saga")?;
            Ok(client_of(client)?.start_saga(saga.into()))
        },
        |saga| Ok(Reply::json(&SagaJson::from(&saga))),
    )
}

/// One saga. Result: the saga record.
#[no_mangle]
pub unsafe extern "C" fn syros_client_get_saga(
    client: *const SyrosClient,
    saga_id: *const u8,
    saga_id_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.get_saga(str_arg(saga_id, saga_id_len, "the saga id")?)),
        |saga| Ok(Reply::json(&SagaJson::from(&saga))),
    )
}

/// Sagas, newest first, filtered by a JSON `{state, name, limit}` (empty = all). Result: an
/// array of saga records.
#[no_mangle]
pub unsafe extern "C" fn syros_client_list_sagas(
    client: *const SyrosClient,
    filter_json: *const u8,
    filter_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let filter: ListSagasJson = if filter_len == 0 {
                ListSagasJson::default()
            } else {
                json_arg(filter_json, filter_len, "the saga filter")?
            };
            let state = filter
                .state
                .as_deref()
                .map(api::parse_saga_state)
                .transpose()?;
            Ok(client_of(client)?.list_sagas(state, filter.name, filter.limit))
        },
        |sagas| Ok(Reply::json(&records::sagas(&sagas))),
    )
}

/// Cancel a saga (what completed is compensated). Result: the saga record.
#[no_mangle]
pub unsafe extern "C" fn syros_client_cancel_saga(
    client: *const SyrosClient,
    saga_id: *const u8,
    saga_id_len: usize,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || Ok(client_of(client)?.cancel_saga(str_arg(saga_id, saga_id_len, "the saga id")?)),
        |saga| Ok(Reply::json(&SagaJson::from(&saga))),
    )
}

/// Wait until the saga is final, at most `timeout_ms` (then `deadline_exceeded`). Result: the
/// saga record.
#[no_mangle]
pub unsafe extern "C" fn syros_client_wait_saga(
    client: *const SyrosClient,
    saga_id: *const u8,
    saga_id_len: usize,
    timeout_ms: u64,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let saga_id = str_arg(saga_id, saga_id_len, "the saga id")?;
            Ok(client_of(client)?.wait_saga(saga_id, timeout_ms))
        },
        |saga| Ok(Reply::json(&SagaJson::from(&saga))),
    )
}

/// Start a step runner for `service` holding at most `max_concurrent` tasks. Result: `null`
/// and `outcome.worker`.
#[no_mangle]
pub unsafe extern "C" fn syros_client_worker(
    client: *const SyrosClient,
    service: *const u8,
    service_len: usize,
    max_concurrent: u32,
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
) -> i32 {
    async_call(
        cancel,
        callback,
        user_data,
        || {
            let service = str_arg(service, service_len, "the service")?;
            Ok(client_of(client)?.worker(service, max_concurrent))
        },
        |worker| Ok(Reply::json(&()).with_handle(NewHandle::Worker(worker))),
    )
}
