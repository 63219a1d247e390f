//! The napi-rs bridge between Node.js and the Syros binding API (`syros-binding-api`).
//!
//! It only translates: every method maps one binding-API call, records become plain JS objects
//! (durations in milliseconds, fencing tokens as `bigint`, values as `Buffer`), and every method
//! that returns a `Promise` starts a [`rt::CoreTask`] on the client core's runtime (the runtime
//! rule) and settles its promise from there when it ends ([`promise`], through one thread-safe
//! function per environment: [`settle`]): napi's own tokio runtime is not used at all, so a call
//! costs no thread hand-off through it. No JS code runs on a Rust thread (a promise is settled
//! through the thread-safe function's queue, on Node's thread):
//! workers, subscriptions, lease ends and get-or-compute tickets are pulled by the idiomatic layer (`sdks/node`), which runs handlers on Node's event loop.
//!
//! Errors cross as a JS `Error` whose message is [`ERROR_MARKER`] followed by the JSON of the
//! [`ErrorRecord`]; `sdks/node/lib/errors.js` turns it into the `SyrosError` class of its code.
//! Waits that JS may abort take a [`CancelToken`] (wired to an `AbortSignal` in JS).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use syros_binding_api::{rt, ErrorKind, ErrorRecord};

mod client;
mod handles;
mod records;
mod settle;

/// The prefix of the message of every error that carries an [`ErrorRecord`].
pub const ERROR_MARKER: &str = "SYROS_ERROR_RECORD:";

/// A binding-API error as a JS error the SDK can decode.
pub(crate) fn to_js_error(err: ErrorRecord) -> Error {
    let details: serde_json::Map<String, serde_json::Value> = err
        .details
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    let record = serde_json::json!({
        "code": err.code,
        "retryable": err.retryable,
        "message": err.message,
        "details": details,
    });
    Error::new(Status::GenericFailure, format!("{ERROR_MARKER}{record}"))
}

/// `Result` with the binding-API error converted.
pub(crate) fn js<T>(result: syros_binding_api::Result<T>) -> Result<T> {
    result.map_err(to_js_error)
}

/// A JS number of milliseconds (or a count) as the `u64` the binding API takes.
pub(crate) fn non_negative(name: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        to_js_error(ErrorRecord::invalid(format!(
            "{name} must not be negative, got {value}"
        )))
    })
}

/// A `u64` count or position as a JS number (exact below 2^53).
pub(crate) fn number(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A JS promise of `task`'s result (through `convert`, run on Node's thread), rejected with the
/// binding-API error, or `cancelled` once `cancel` is cancelled. The core runtime settles it the
/// moment the work ends (`CoreTask::settle`) through the environment's one settle queue
/// ([`settle`]): no task on napi's own runtime sits between the core and Node.
pub(crate) fn promise<'env, T, V>(
    env: &'env Env,
    task: rt::CoreTask<T>,
    cancel: Option<rt::CancelToken>,
    convert: impl FnOnce(T) -> Result<V> + Send + 'static,
) -> Result<Object<'env>>
where
    T: Send + 'static,
    V: ToNapiValue + 'static,
{
    let (deferred, promise) = settle::Deferred::new(env)?;
    task.settle(cancel.as_ref(), move |result| {
        deferred.settle(move |_| match result {
            Ok(value) => convert(value),
            Err(err) => Err(to_js_error(err)),
        })
    });
    Ok(promise)
}

/// The stable codes of every error kind, in the core's order.
#[napi]
pub fn error_codes() -> Vec<String> {
    ErrorKind::ALL
        .iter()
        .map(|kind| kind.code().to_string())
        .collect()
}

/// The client core's version.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Stop the client core's runtime, waiting up to `timeout_ms` for its tasks; the next call
/// starts a new one.
#[napi]
pub fn shutdown(timeout_ms: Option<u32>) {
    rt::shutdown(u64::from(timeout_ms.unwrap_or(100)));
}

/// Cancels the waits it is passed to (the SDK cancels it when an `AbortSignal` aborts).
#[napi]
pub struct CancelToken {
    pub(crate) token: rt::CancelToken,
}

#[napi]
impl CancelToken {
    /// A token not cancelled yet.
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken {
            token: rt::CancelToken::new(),
        }
    }

    /// Cancel every wait given this token.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether `cancel` was called.
    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

pub(crate) fn token(cancel: Option<&CancelToken>) -> Option<rt::CancelToken> {
    cancel.map(|c| c.token.clone())
}
