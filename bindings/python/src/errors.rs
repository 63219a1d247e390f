//! The core's error taxonomy as Python exceptions, mechanically: one class per
//! [`ErrorKind`] under `syros.errors.SyrosError`, carrying `kind` (the stable code), `retryable`,
//! `message` and `details`. The classes are defined in Python (`syros/errors.py`, so they have
//! docstrings and type stubs); this module only picks the class of a kind and fills in the fields.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::PyErrArguments;
use syros_client::{Error, ErrorKind};

pyo3::import_exception!(syros.errors, SyrosError);

/// The constructor arguments of every `SyrosError`:
/// `(message, kind, retryable, details, cause)`.
struct Args {
    message: String,
    code: &'static str,
    retryable: bool,
    details: BTreeMap<String, String>,
    cause: Option<Py<PyAny>>,
}

impl PyErrArguments for Args {
    fn arguments(self, py: Python<'_>) -> Py<PyAny> {
        let tuple = (
            self.message,
            self.code,
            self.retryable,
            self.details,
            self.cause,
        );
        match tuple.into_pyobject(py) {
            Ok(args) => args.into_any().unbind(),
            Err(_) => py.None(),
        }
    }
}

macro_rules! kinds {
    ($($kind:ident => $class:ident),* $(,)?) => {
        $(pyo3::import_exception!(syros.errors, $class);)*

        /// The Python class name of a kind.
        pub fn class_name(kind: ErrorKind) -> &'static str {
            match kind {
                $(ErrorKind::$kind => stringify!($class),)*
                _ => "SyrosError",
            }
        }

        fn new_err(kind: ErrorKind, args: Args) -> PyErr {
            match kind {
                $(ErrorKind::$kind => PyErr::new::<$class, _>(args),)*
                _ => PyErr::new::<SyrosError, _>(args),
            }
        }
    };
}

kinds! {
    InvalidArgument => InvalidArgument,
    NotFound => NotFound,
    LockNotHeld => LockNotHeld,
    VersionConflict => VersionConflict,
    PayloadTooLarge => PayloadTooLarge,
    Unimplemented => Unimplemented,
    Unavailable => Unavailable,
    Internal => Internal,
    OutcomeUnknown => OutcomeUnknown,
    LockTimeout => LockTimeout,
    DeadlineExceeded => DeadlineExceeded,
    Cancelled => Cancelled,
    Unauthenticated => Unauthenticated,
    PermissionDenied => PermissionDenied,
    Callback => CallbackFailed,
}

/// A core error as the Python exception of its kind. Needs no GIL (built lazily).
pub fn to_py(err: Error) -> PyErr {
    with_cause(err, None)
}

/// Like [`to_py`], with `__cause__` set to a Python exception (the one a callback raised).
pub fn with_cause(err: Error, cause: Option<Py<PyAny>>) -> PyErr {
    let kind = err.kind;
    new_err(
        kind,
        Args {
            message: err.message,
            code: kind.code(),
            retryable: err.retryable,
            details: err.details,
            cause,
        },
    )
}

/// An error the binding itself detected, as the class of `kind`.
pub fn of_kind(kind: ErrorKind, message: impl Into<String>) -> PyErr {
    to_py(Error::new(kind, message))
}

/// `syros.Internal`.
pub fn internal(message: impl Into<String>) -> PyErr {
    of_kind(ErrorKind::Internal, message)
}

/// `syros.Cancelled`.
pub fn cancelled(message: impl Into<String>) -> PyErr {
    of_kind(ErrorKind::Cancelled, message)
}

/// Every kind as `(code, class name, retryable)`, so the Python package can check that it has a
/// class for each.
#[pyfunction]
pub fn error_kinds() -> Vec<(&'static str, &'static str, bool)> {
    ErrorKind::ALL
        .iter()
        .map(|kind| (kind.code(), class_name(*kind), kind.retryable()))
        .collect()
}
