//! Calling Python from the core: `get_or_compute` functions and step handlers.
//!
//! A callable is called with the GIL on a blocking-pool thread of the core runtime. If it returns
//! an awaitable (an `async def` function), the awaitable runs on the asyncio loop it belongs to
//! (through pyo3-async-runtimes) and the core waits for it without holding the GIL.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use pyo3_async_runtimes::TaskLocals;
use syros_client::{Bytes, Handler, HandlerResult, TaskFailure};

use crate::rt;
use crate::types::Task;

/// Call `callable()` or `callable(task)`; await the result if it is awaitable.
async fn call(
    callable: Arc<Py<PyAny>>,
    task: Option<Task>,
    locals: Option<TaskLocals>,
) -> PyResult<Py<PyAny>> {
    let first = rt::with_gil(move |py| {
        let callable = callable.bind(py);
        let value = match task {
            Some(task) => callable.call1((task,))?,
            None => callable.call0()?,
        };
        if !rt::is_awaitable(&value)? {
            return Ok(Ok(value.unbind()));
        }
        let Some(locals) = locals else {
            return Err(PyTypeError::new_err(
                "an async function needs an asyncio event loop: use it with syros.AsyncClient \
                 (or Worker.run_async), or pass a plain function",
            ));
        };
        let awaited: BoxFuture<'static, PyResult<Py<PyAny>>> =
            pyo3_async_runtimes::into_future_with_locals(&locals, value)?.boxed();
        Ok(Err(awaited))
    })
    .await?;
    match first {
        Ok(value) => Ok(value),
        Err(awaited) => awaited.await,
    }
}

/// The failure of a Python callback as text (`TypeName: message`), keeping the exception itself.
pub struct CallbackError(String);

impl std::fmt::Display for CallbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn describe(py: Python<'_>, err: &PyErr) -> String {
    let name = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_string());
    match err.value(py).str() {
        Ok(text) if !text.to_string().is_empty() => format!("{name}: {text}"),
        _ => name,
    }
}

/// A `get_or_compute` function: `compute()` (sync or async) returning `bytes` or `str`. The
/// exception it raised, if any, is left in `raised` so the caller can chain it.
pub async fn compute(
    callable: Arc<Py<PyAny>>,
    locals: Option<TaskLocals>,
    raised: Arc<Mutex<Option<Py<PyAny>>>>,
) -> Result<Bytes, CallbackError> {
    let result = call(callable, None, locals).await;
    let converted = rt::with_gil(move |py| {
        let value = result.and_then(|value| {
            let value = value.bind(py);
            if let Ok(bytes) = value.cast::<PyBytes>() {
                Ok(Bytes::copy_from_slice(bytes.as_bytes()))
            } else if let Ok(text) = value.cast::<PyString>() {
                Ok(Bytes::from(text.to_str()?.to_string()))
            } else {
                Err(PyTypeError::new_err(format!(
                    "get_or_compute's function must return bytes or str, not {}",
                    value.get_type().name()?
                )))
            }
        });
        Ok(value.map_err(|err| {
            let text = describe(py, &err);
            *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.into_value(py).into_any());
            CallbackError(text)
        }))
    })
    .await;
    match converted {
        Ok(result) => result,
        Err(err) => Err(CallbackError(format!("the callback could not run: {err}"))),
    }
}

/// A step handler: `handler(task)` (sync or async) returning the output as JSON text (the Python
/// package encodes the handler's return value). An exception becomes a [`TaskFailure`]: its
/// `type` attribute (or class name) is the error type, its `non_retryable` attribute says
/// whether the server may retry.
pub fn handler(callable: Py<PyAny>, locals: Option<TaskLocals>) -> Handler {
    let callable = Arc::new(callable);
    Arc::new(move |task: syros_client::Task| {
        let callable = callable.clone();
        let locals = locals.clone();
        async move {
            let result = call(callable, Some(Task::from(task)), locals).await;
            let reported = rt::with_gil(move |py| {
                Ok(match result {
                    Ok(output) => output
                        .bind(py)
                        .extract::<String>()
                        .map_err(|err| failure(py, err)),
                    Err(err) => Err(failure(py, err)),
                })
            })
            .await;
            reported.unwrap_or_else(|err| -> HandlerResult {
                Err(TaskFailure::retryable(
                    "internal",
                    format!("the handler could not run: {err}"),
                ))
            })
        }
        .boxed()
    })
}

fn failure(py: Python<'_>, err: PyErr) -> TaskFailure {
    let value = err.value(py);
    let error_type = value
        .getattr(pyo3::intern!(py, "type"))
        .ok()
        .and_then(|t| t.extract::<String>().ok())
        .filter(|t| !t.is_empty())
        .or_else(|| err.get_type(py).name().ok().map(|n| n.to_string()))
        .unwrap_or_else(|| "Exception".to_string());
    let non_retryable = value
        .getattr(pyo3::intern!(py, "non_retryable"))
        .and_then(|v| v.is_truthy())
        .unwrap_or(false);
    let message = value
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| describe(py, &err));
    TaskFailure {
        error_type,
        message,
        non_retryable,
    }
}
