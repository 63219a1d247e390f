//! `syros._syros`: the PyO3 bridge between Python and the Syros binding API
//! (`syros-binding-api`).
//!
//! It only translates: every method maps one binding-API call, seconds become milliseconds,
//! records become read-only Python objects, an [`ErrorRecord`](syros_binding_api::ErrorRecord)
//! becomes the `syros.errors` class of its code, and every call's [`CoreTask`] is either waited
//! for with the GIL released (`blocking=True`) or returned as an asyncio awaitable
//! (`blocking=False`) — see [`rt`]. Nothing here calls Python from a Rust thread except to hand
//! an awaited result to its event loop: workers, subscriptions, lease ends and get-or-compute
//! tickets are pulled by the idiomatic layer (the `syros` package in `sdks/python`), which runs
//! step handlers and compute functions on Python's own threads and event loops.
//!
//! [`CoreTask`]: syros_binding_api::rt::CoreTask

use pyo3::prelude::*;
use syros_binding_api::rt as core_rt;

mod client;
#[cfg(unix)]
mod completions;
mod errors;
mod handles;
mod rt;
mod types;

/// Python's seconds as the binding API's milliseconds; negative, NaN or infinite is
/// `InvalidArgument` (naming the argument).
pub(crate) fn millis(name: &str, seconds: f64) -> PyResult<u64> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(errors::invalid(format!(
            "{name} must be a non-negative number of seconds, got {seconds}"
        )));
    }
    // Saturates above u64::MAX ms (half a billion years).
    Ok((seconds * 1000.0).round() as u64)
}

/// The binding API's milliseconds as Python's seconds.
pub(crate) fn seconds(millis: u64) -> f64 {
    millis as f64 / 1000.0
}

/// Stop the client core's runtime (waiting up to 5 s for its tasks): background work
/// (renewals, subscriptions, workers) ends. The next call starts a new one. The `syros` package
/// calls it at interpreter exit.
#[pyfunction]
fn shutdown(py: Python<'_>) {
    py.detach(|| core_rt::shutdown(5_000));
}

/// Whether the client core's runtime exists in this process (a forked child starts without one).
#[pyfunction]
fn runtime_running() -> bool {
    core_rt::is_running()
}

/// Call `call()` (which starts client calls on this thread) with the caller's W3C trace
/// context: the calls it starts send it to the server (docs/tracing.md). The `syros` package
/// does this when `opentelemetry` is installed.
#[pyfunction]
#[pyo3(signature = (traceparent, tracestate, call))]
fn with_trace_context(
    traceparent: Option<String>,
    tracestate: Option<String>,
    call: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    syros_binding_api::trace::with_trace_context(
        traceparent.as_deref(),
        tracestate.as_deref(),
        || call.call0().map(Bound::unbind),
    )
}

#[pymodule]
fn _syros(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_running, m)?)?;
    m.add_function(wrap_pyfunction!(with_trace_context, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_kinds, m)?)?;
    m.add_class::<client::Client>()?;
    m.add_class::<handles::Lease>()?;
    m.add_class::<handles::Subscription>()?;
    m.add_class::<handles::Worker>()?;
    m.add_class::<handles::ComputeTicket>()?;
    m.add_class::<types::LeaseInfo>()?;
    m.add_class::<types::CacheEntry>()?;
    m.add_class::<types::RecordedEvent>()?;
    m.add_class::<types::ReadResult>()?;
    m.add_class::<types::AppendResult>()?;
    m.add_class::<types::Saga>()?;
    m.add_class::<types::SagaStep>()?;
    m.add_class::<types::StepAttempt>()?;
    m.add_class::<types::Task>()?;
    Ok(())
}
