//! The exception hierarchy, declared once, and the one mapping from each Rust error enum to it.
//! `ferroserve.errors` re-exports these classes and maps them to gRPC status codes.

use ferroserve_batcher::{BatchError, ErrorKind};
use ferroserve_frontend::JoinFailure;
use ferroserve_tensor::TensorError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::{PyErr, PyResult};

use crate::feast::WriteError;

create_exception!(
    ferroserve._core,
    FerroserveError,
    PyException,
    "Base class of every ferroserve error."
);
create_exception!(
    ferroserve._core,
    InvalidInputError,
    FerroserveError,
    "The request or configuration is malformed (gRPC INVALID_ARGUMENT)."
);
create_exception!(
    ferroserve._core,
    ModelNotFoundError,
    FerroserveError,
    "No such model or version (gRPC NOT_FOUND)."
);
create_exception!(
    ferroserve._core,
    FeatureNotFoundError,
    FerroserveError,
    "An entity key has no usable row in a feature view that rejects misses (gRPC NOT_FOUND)."
);
create_exception!(
    ferroserve._core,
    UnavailableError,
    FerroserveError,
    "The model is not accepting requests, e.g. it is unloading (gRPC UNAVAILABLE)."
);
create_exception!(
    ferroserve._core,
    ResourceExhaustedError,
    FerroserveError,
    "A queue limit was hit (gRPC RESOURCE_EXHAUSTED)."
);
create_exception!(
    ferroserve._core,
    DeadlineExceededError,
    FerroserveError,
    "The request timed out before it ran (gRPC DEADLINE_EXCEEDED)."
);
create_exception!(
    ferroserve._core,
    RequestCancelledError,
    FerroserveError,
    "The client cancelled the request (gRPC CANCELLED)."
);
create_exception!(
    ferroserve._core,
    InternalError,
    FerroserveError,
    "A server-side invariant was broken (gRPC INTERNAL)."
);

/// An error from one of the pure crates, on its way to becoming an exception. (The orphan rule
/// forbids `From<TensorError> for PyErr` here, so each enum converts into this one first.)
#[derive(Debug, thiserror::Error)]
pub(crate) enum RustError {
    /// From ferroserve-tensor.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// From ferroserve-batcher.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// From the Redis join (ferroserve-frontend's `RemoteJoin`).
    #[error(transparent)]
    Join(#[from] JoinFailure),
    /// From writing rows into Redis (`feast_write`).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The runtime of the Redis calls made from Python could not start.
    #[error("cannot start the runtime of Redis calls: {0}")]
    Runtime(String),
}

impl From<RustError> for PyErr {
    fn from(error: RustError) -> Self {
        let message = error.to_string();
        match error {
            // Every tensor error is about the caller's data.
            RustError::Tensor(_) => InvalidInputError::new_err(message),
            RustError::Batch(error) => match error.kind() {
                ErrorKind::InvalidInput => InvalidInputError::new_err(message),
                ErrorKind::ResourceExhausted => ResourceExhaustedError::new_err(message),
                ErrorKind::Unavailable => UnavailableError::new_err(message),
                ErrorKind::Internal => InternalError::new_err(message),
            },
            // A key a reject-policy view cannot serve: NOT_FOUND, as on the native path.
            RustError::Join(JoinFailure::Rejected(_)) => FeatureNotFoundError::new_err(message),
            RustError::Join(JoinFailure::Internal(_)) | RustError::Runtime(_) => {
                InternalError::new_err(message)
            }
            RustError::Write(WriteError::Failed { .. }) => UnavailableError::new_err(message),
            RustError::Write(WriteError::TimedOut { .. }) => {
                DeadlineExceededError::new_err(message)
            }
            RustError::Write(WriteError::Refused(_)) => InvalidInputError::new_err(message),
        }
    }
}

/// Raises a pure crate's error as its exception: `result.or_raise()?`.
pub(crate) trait OrRaise<T> {
    /// The value, or the error converted to its exception class.
    fn or_raise(self) -> PyResult<T>;
}

impl<T, E: Into<RustError>> OrRaise<T> for Result<T, E> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(|error| PyErr::from(error.into()))
    }
}
