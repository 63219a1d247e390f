//! # syros-ffi
//!
//! The C ABI over the Syros binding API ([`syros_binding_api`]), designed once for the Go SDK
//! (cgo against the staticlib) and the C# SDK (`DllImport` of the cdylib). It only translates;
//! every behaviour is the binding API's. The conventions (see `ffi/README.md`):
//!
//! - **Opaque handles** (`SyrosClient`, `SyrosLease`, `SyrosSubscription`, `SyrosWorker`,
//!   `SyrosComputeTicket`, `SyrosCancel`), each freed by its `*_free`; freeing is always safe
//!   while calls started on the handle are pending (they hold their own reference).
//! - **Strings and bytes cross with explicit lengths** (`ptr`, `len`; UTF-8 for strings).
//! - **Records cross as JSON text** (UTF-8, snake_case field names, bytes as standard base64,
//!   64-bit integers as plain JSON numbers): Go's `encoding/json` and .NET/Mono's
//!   `System.Runtime.Serialization.Json` read it without third-party packages.
//! - **Asynchronous calls** take a [`SyrosCallback`] and a `user_data` word and call the callback
//!   exactly once, with a [`SyrosOutcome`] (from a runtime thread, or from the calling thread for
//!   a call refused at once). An optional `SyrosCancel` ends the call early with `cancelled`.
//! - **Or a completion queue** ([`syros_completions_callback`]): outcomes are queued and a pipe
//!   wakes the host's event loop, which drains them ([`syros_completions_drain`]); for hosts
//!   that pay much for being entered from a foreign thread (Go).
//! - **No panic unwinds into the host**: every entry point catches it and reports an `internal`
//!   error instead.
#![warn(missing_docs)]
#![allow(clippy::missing_safety_doc)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use syros_binding_api::rt::{self, CancelToken, CoreTask};
use syros_binding_api::{ErrorKind, ErrorRecord};

mod client;
mod objects;
mod queue;
mod records;

pub use client::*;
pub use objects::*;
pub use queue::*;

/// The call succeeded (`SyrosOutcome::status`, and the return value of synchronous calls).
pub const SYROS_OK: i32 = 0;
/// The call failed: the JSON is an error record `{code, retryable, message, details}`.
pub const SYROS_ERROR: i32 = 1;
/// An asynchronous call was not started because its callback was NULL (nothing is reported).
pub const SYROS_NO_CALLBACK: i32 = -1;

/// The version of this ABI: bumped whenever an entry point or a record changes incompatibly.
pub const SYROS_ABI_VERSION: u32 = 1;

/// Handles handed out and not freed yet, over every kind.
static LIVE_HANDLES: AtomicI64 = AtomicI64::new(0);
/// Asynchronous calls whose callback has not run yet.
static PENDING_CALLS: AtomicI64 = AtomicI64::new(0);

/// Bytes owned by the library (a JSON document for synchronous calls), freed with
/// [`syros_buffer_free`].
#[repr(C)]
pub struct SyrosBuffer {
    /// The bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

impl SyrosBuffer {
    const EMPTY: SyrosBuffer = SyrosBuffer {
        data: std::ptr::null_mut(),
        len: 0,
    };

    fn from_vec(bytes: Vec<u8>) -> SyrosBuffer {
        if bytes.is_empty() {
            return SyrosBuffer::EMPTY;
        }
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        SyrosBuffer {
            data: Box::into_raw(boxed) as *mut u8,
            len,
        }
    }
}

/// What an asynchronous call produced, handed to its [`SyrosCallback`]. Valid only while the
/// callback runs: copy `json` out; a handle in it is the host's from then on (free it).
#[repr(C)]
pub struct SyrosOutcome {
    /// [`SYROS_OK`] or [`SYROS_ERROR`].
    pub status: i32,
    /// The result record (on `SYROS_OK`; `null` for calls without one) or the error record.
    pub json: *const u8,
    /// Length of `json` in bytes.
    pub json_len: usize,
    /// The new lease of `lock` / `try_lock` (NULL otherwise, or when not acquired).
    pub lease: *mut SyrosLease,
    /// The new subscription of `subscribe`.
    pub subscription: *mut SyrosSubscription,
    /// The new worker of `worker`.
    pub worker: *mut SyrosWorker,
    /// The compute ticket of `cache_begin` on a miss this caller computes.
    pub ticket: *mut SyrosComputeTicket,
}

/// Called exactly once per asynchronous call with its outcome and the call's `user_data`.
/// It runs on a runtime thread (or on the calling thread, for a call refused at once) and must
/// not block for long: hand the outcome to the host's own executor.
pub type SyrosCallback =
    Option<unsafe extern "C" fn(user_data: usize, outcome: *const SyrosOutcome)>;

/// A "stop waiting" switch a host ties to any number of calls ([`syros_cancel_new`]).
pub struct SyrosCancel(CancelToken);

/// A handle the library hands out: counted in [`syros_live_handles`] until freed.
fn into_handle<T>(value: T) -> *mut T {
    LIVE_HANDLES.fetch_add(1, Ordering::Relaxed);
    Box::into_raw(Box::new(value))
}

/// Free a handle made by [`into_handle`] (NULL: nothing).
unsafe fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        LIVE_HANDLES.fetch_sub(1, Ordering::Relaxed);
        drop(Box::from_raw(handle));
    }
}

/// Borrow a handle; `None` for NULL.
unsafe fn handle_ref<'a, T>(handle: *const T) -> Option<&'a T> {
    handle.as_ref()
}

/// Borrow `len` bytes at `data` (NULL with 0 is the empty slice).
unsafe fn bytes_arg<'a>(data: *const u8, len: usize) -> Result<&'a [u8], ErrorRecord> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(ErrorRecord::invalid(
            "a NULL pointer was passed with a non-zero length",
        ));
    }
    Ok(std::slice::from_raw_parts(data, len))
}

/// A UTF-8 string argument.
unsafe fn str_arg(data: *const u8, len: usize, what: &str) -> Result<String, ErrorRecord> {
    let bytes = bytes_arg(data, len)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ErrorRecord::invalid(format!("{what} is not valid UTF-8")))
}

/// An optional UTF-8 string argument: NULL = none.
unsafe fn opt_str_arg(
    data: *const u8,
    len: usize,
    what: &str,
) -> Result<Option<String>, ErrorRecord> {
    if data.is_null() {
        return Ok(None);
    }
    str_arg(data, len, what).map(Some)
}

/// A JSON record argument.
unsafe fn json_arg<T: serde::de::DeserializeOwned>(
    data: *const u8,
    len: usize,
    what: &str,
) -> Result<T, ErrorRecord> {
    let bytes = bytes_arg(data, len)?;
    serde_json::from_slice(bytes)
        .map_err(|err| ErrorRecord::invalid(format!("{what} is not a valid JSON record: {err}")))
}

fn panic_error() -> ErrorRecord {
    ErrorRecord::internal("the syros library panicked (a bug): the call was not completed")
}

fn error_json(err: &ErrorRecord) -> Vec<u8> {
    serde_json::to_vec(&records::ErrorJson::from(err)).unwrap_or_default()
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

/// Run a synchronous entry point: its JSON result (or error record) goes to `out`.
fn sync_call(out: *mut SyrosBuffer, body: impl FnOnce() -> Result<Vec<u8>, ErrorRecord>) -> i32 {
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(json)) => (SYROS_OK, json),
        Ok(Err(err)) => (SYROS_ERROR, error_json(&err)),
        Err(_) => (SYROS_ERROR, error_json(&panic_error())),
    };
    if !out.is_null() {
        // SAFETY: the caller passes a writable SyrosBuffer (documented).
        unsafe { out.write(SyrosBuffer::from_vec(bytes)) };
    }
    status
}

/// Run an entry point that returns a plain value, `fallback` if it panicked.
fn guarded<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A new object a call hands to the host.
pub(crate) enum NewHandle {
    Lease(Arc<syros_binding_api::Lease>),
    Subscription(Arc<syros_binding_api::Subscription>),
    Worker(Arc<syros_binding_api::Worker>),
    Ticket(Arc<syros_binding_api::ComputeTicket>),
}

/// What a successful asynchronous call reports: a JSON record and maybe a new handle.
pub(crate) struct Reply {
    json: Vec<u8>,
    handle: Option<NewHandle>,
}

impl Reply {
    pub(crate) fn json<T: serde::Serialize>(value: &T) -> Reply {
        Reply {
            json: to_json(value),
            handle: None,
        }
    }

    pub(crate) fn with_handle(mut self, handle: NewHandle) -> Reply {
        self.handle = Some(handle);
        self
    }
}

/// The duty to call a host's callback exactly once: delivered explicitly, or on drop (a call
/// dropped by a runtime shutdown reports `cancelled`, a panic `internal`).
struct Completion {
    callback: unsafe extern "C" fn(usize, *const SyrosOutcome),
    user_data: usize,
    delivered: bool,
}

impl Completion {
    fn new(callback: unsafe extern "C" fn(usize, *const SyrosOutcome), user_data: usize) -> Self {
        PENDING_CALLS.fetch_add(1, Ordering::Relaxed);
        Completion {
            callback,
            user_data,
            delivered: false,
        }
    }

    fn deliver(mut self, result: Result<Reply, ErrorRecord>) {
        self.send(result);
    }

    fn send(&mut self, result: Result<Reply, ErrorRecord>) {
        if self.delivered {
            return;
        }
        self.delivered = true;
        let mut outcome = SyrosOutcome {
            status: SYROS_OK,
            json: std::ptr::null(),
            json_len: 0,
            lease: std::ptr::null_mut(),
            subscription: std::ptr::null_mut(),
            worker: std::ptr::null_mut(),
            ticket: std::ptr::null_mut(),
        };
        let json = match result {
            Ok(reply) => {
                match reply.handle {
                    Some(NewHandle::Lease(lease)) => outcome.lease = into_handle(SyrosLease(lease)),
                    Some(NewHandle::Subscription(sub)) => {
                        outcome.subscription = into_handle(SyrosSubscription(sub))
                    }
                    Some(NewHandle::Worker(worker)) => {
                        outcome.worker = into_handle(SyrosWorker(worker))
                    }
                    Some(NewHandle::Ticket(ticket)) => {
                        outcome.ticket = into_handle(SyrosComputeTicket(ticket))
                    }
                    None => {}
                }
                reply.json
            }
            Err(err) => {
                outcome.status = SYROS_ERROR;
                error_json(&err)
            }
        };
        outcome.json = json.as_ptr();
        outcome.json_len = json.len();
        PENDING_CALLS.fetch_sub(1, Ordering::Relaxed);
        // A panic cannot cross back out of host code here: the callback is `extern "C"`.
        // SAFETY: the host gave us this function pointer for exactly this call.
        unsafe { (self.callback)(self.user_data, &outcome) };
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.delivered {
            let err = if std::thread::panicking() {
                panic_error()
            } else {
                ErrorRecord::new(
                    ErrorKind::Cancelled,
                    "the call ended without a result (the syros runtime was shut down)",
                )
            };
            self.send(Err(err));
        }
    }
}

/// Start an asynchronous entry point: `begin` checks the arguments and starts the core task,
/// `finish` turns its value into the reply; the callback gets the outcome exactly once.
unsafe fn async_call<T, B, F>(
    cancel: *const SyrosCancel,
    callback: SyrosCallback,
    user_data: usize,
    begin: B,
    finish: F,
) -> i32
where
    T: Send + 'static,
    B: FnOnce() -> Result<CoreTask<T>, ErrorRecord>,
    F: FnOnce(T) -> Result<Reply, ErrorRecord> + Send + 'static,
{
    let Some(callback) = callback else {
        return SYROS_NO_CALLBACK;
    };
    let completion = Completion::new(callback, user_data);
    let token = handle_ref(cancel).map(|cancel| cancel.0.clone());
    let started = catch_unwind(AssertUnwindSafe(begin));
    let task = match started {
        Ok(Ok(task)) => task,
        Ok(Err(err)) => {
            completion.deliver(Err(err));
            return SYROS_OK;
        }
        Err(_) => {
            completion.deliver(Err(panic_error()));
            return SYROS_OK;
        }
    };
    task.settle(token.as_ref(), move |result| {
        let reply = catch_unwind(AssertUnwindSafe(|| result.and_then(finish)))
            .unwrap_or_else(|_| Err(panic_error()));
        completion.deliver(reply);
    });
    SYROS_OK
}

// --- general entry points --------------------------------------------------------------------

/// The ABI version ([`SYROS_ABI_VERSION`]); a host checks it once at load.
#[no_mangle]
pub extern "C" fn syros_abi_version() -> u32 {
    SYROS_ABI_VERSION
}

/// Free a buffer returned by a synchronous call (a zeroed buffer is fine).
#[no_mangle]
pub unsafe extern "C" fn syros_buffer_free(buffer: SyrosBuffer) {
    guarded((), || {
        if !buffer.data.is_null() && buffer.len > 0 {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                buffer.data,
                buffer.len,
            )));
        }
    })
}

/// Handles handed out and not yet freed, over every kind (for leak tests).
#[no_mangle]
pub extern "C" fn syros_live_handles() -> i64 {
    LIVE_HANDLES.load(Ordering::Relaxed)
}

/// Asynchronous calls whose callback has not run yet (for leak tests).
#[no_mangle]
pub extern "C" fn syros_pending_calls() -> i64 {
    PENDING_CALLS.load(Ordering::Relaxed)
}

/// Stop the core runtime, waiting up to `timeout_ms` for its tasks: background renewals,
/// subscriptions and workers end, pending calls complete with `cancelled`. The next call starts
/// a new runtime. Hosts whose exit would wait for runtime threads (Mono) call it at exit.
#[no_mangle]
pub extern "C" fn syros_shutdown(timeout_ms: u64) {
    guarded((), || rt::shutdown(timeout_ms))
}

/// A new cancel switch (free it with [`syros_cancel_free`]).
#[no_mangle]
pub extern "C" fn syros_cancel_new() -> *mut SyrosCancel {
    guarded(std::ptr::null_mut(), || {
        into_handle(SyrosCancel(CancelToken::new()))
    })
}

/// End every call tied to `cancel` (now and later) with `cancelled`; idempotent.
#[no_mangle]
pub unsafe extern "C" fn syros_cancel_cancel(cancel: *const SyrosCancel) {
    guarded((), || {
        if let Some(cancel) = handle_ref(cancel) {
            cancel.0.cancel();
        }
    })
}

/// Free a cancel switch; calls tied to it go on (uncancellable from then on).
#[no_mangle]
pub unsafe extern "C" fn syros_cancel_free(cancel: *mut SyrosCancel) {
    guarded((), || free_handle(cancel))
}
