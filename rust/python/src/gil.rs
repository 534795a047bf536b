//! The one way long work runs: with the caller's inputs already owned, the GIL released, and the
//! error converted on the way back. Every call that may block or touch much data goes through
//! `without_gil`, so no path can forget to let other Python threads run.

use pyo3::{PyErr, PyResult, Python};

/// Work below this many bytes runs with the GIL held: releasing and re-taking it costs a few
/// hundred nanoseconds, and re-taking it can wait a whole switch interval (5 ms) behind another
/// thread, far more than copying 256 KiB (~25 µs).
const DETACH_BYTES: usize = 256 * 1024;

/// How much work a call does, to decide whether releasing the GIL pays.
pub(crate) enum Work {
    /// It may block (waits on a condition variable): always release.
    Blocking,
    /// It touches about this many bytes: release above `DETACH_BYTES`.
    Bytes(usize),
}

/// Runs `f` (without the GIL when `work` warrants it) and converts its error to an exception.
pub(crate) fn without_gil<T, E, F>(py: Python<'_>, work: Work, f: F) -> PyResult<T>
where
    // `Send` is what pyo3's `Ungil` means on stable Rust: nothing borrowed from the GIL.
    F: Send + FnOnce() -> Result<T, E>,
    T: Send,
    E: Send,
    PyErr: From<E>,
{
    let result = match work {
        Work::Bytes(bytes) if bytes < DETACH_BYTES => f(),
        Work::Blocking | Work::Bytes(_) => py.detach(f),
    };
    result.map_err(PyErr::from)
}
