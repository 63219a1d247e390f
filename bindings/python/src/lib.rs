//! `syros._syros`: the PyO3 bridge between Python and the Syros client core (`syros-client`).
//!
//! This crate only translates. Connection, retries, failover, lease renewal and loss detection,
//! single-flight, resumable subscriptions and step runners all live in the client core; here they
//! get Python types, Python exceptions and two ways of waiting:
//!
//! - blocking (`blocking=True`): the core future runs on the core runtime while the calling thread
//!   waits with the GIL released ([`rt::block`]);
//! - asyncio (`blocking=False`): an awaitable from pyo3-async-runtimes whose future runs on the core
//!   runtime ([`rt::CoreRuntime`]).
//!
//! Python callbacks (step handlers, `get_or_compute` functions, lost-lease callbacks) are called
//! with the GIL on blocking-pool threads, never on the runtime's async workers ([`callback`]).
//! The idiomatic API (`syros.Client`, `syros.AsyncClient`, workers with decorators) is the Python
//! package in `sdks/python`.

use pyo3::prelude::*;

mod callback;
mod client;
mod errors;
mod handles;
mod rt;
mod types;

/// Stop the client core's runtime: background work (renewals, subscriptions, workers) ends.
/// The next call starts a new one. The `syros` package calls it at interpreter exit.
#[pyfunction]
fn shutdown(py: Python<'_>) {
    py.detach(syros_client::shutdown);
}

/// Whether the client core's runtime exists in this process (a forked child starts without one).
#[pyfunction]
fn runtime_running() -> bool {
    syros_client::runtime::is_running()
}

#[pymodule]
fn _syros(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_running, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_kinds, m)?)?;
    m.add_class::<client::Client>()?;
    m.add_class::<handles::Lease>()?;
    m.add_class::<handles::Subscription>()?;
    m.add_class::<handles::Worker>()?;
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
