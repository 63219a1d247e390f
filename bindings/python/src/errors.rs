//! The binding API's [`ErrorRecord`] as Python exceptions, mechanically: one class per
//! [`ErrorKind`] under `syros.errors.SyrosError`, carrying `kind` (the stable code), `retryable`,
//! `message` and `details`. The classes are defined in Python (`syros/errors.py`, so they have
//! docstrings and type stubs); this module only picks the class of a kind and fills in the fields.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::PyErrArguments;
use syros_binding_api::{ErrorKind, ErrorRecord};

pyo3::import_exception!(syros.errors, SyrosError);

/// The constructor arguments of every `SyrosError`: `(message, kind, retryable, details)`.
struct Args {
    message: String,
    code: String,
    retryable: bool,
    details: BTreeMap<String, String>,
}

impl PyErrArguments for Args {
    fn arguments(self, py: Python<'_>) -> Py<PyAny> {
        let tuple = (self.message, self.code, self.retryable, self.details);
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

/// An error record as the Python exception of its kind. Needs no GIL (built lazily).
pub fn to_py(err: ErrorRecord) -> PyErr {
    new_err(
        err.kind,
        Args {
            message: err.message,
            code: err.code,
            retryable: err.retryable,
            details: err.details,
        },
    )
}

/// `syros.InvalidArgument`, for an argument the binding cannot even translate.
pub fn invalid(message: impl Into<String>) -> PyErr {
    to_py(ErrorRecord::invalid(message))
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
