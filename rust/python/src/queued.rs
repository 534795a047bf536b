//! What a queued request holds while it waits: its input bytes (`HeldBytes`), readable without
//! the GIL, and its waiter (`PyWaiter`); `Queue` is the Rust batch queue with both plugged in,
//! shared by the Python server (`BatchQueue.submit`), the native front end and the executors.

use ferroserve_batcher as batcher;
use ferroserve_runtime::{ModelOutput, Waiter};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// What keeps a queued input's bytes alive.
enum Owner {
    /// A Python bytes object (a request the Python server queued).
    Python(Py<PyBytes>),
    /// A received message or a buffer converted from its typed contents (the native front
    /// end); only held, `data` points into it.
    Native(#[allow(dead_code)] bytes::Bytes),
}

/// A queued request's input bytes, readable without the GIL: a Python bytes object, part of a
/// message the native front end received, or a buffer it converted from typed contents.
pub(crate) struct HeldBytes {
    /// Keeps the buffer alive.
    object: Owner,
    /// Start of the held, immutable bytes.
    data: *const u8,
    /// Their length.
    len: usize,
}

// SAFETY: `data` points into the buffer of a bytes object or of a `bytes::Bytes` that `object`
// keeps alive; both are immutable and never move their buffer, so reading it from any thread,
// with or without the GIL, is sound. `Py<PyBytes>` and `Bytes` are Send and Sync.
unsafe impl Send for HeldBytes {}
// SAFETY: see `Send`: the buffer is only ever read.
unsafe impl Sync for HeldBytes {}

impl HeldBytes {
    /// Holds `bytes` and remembers where its buffer is.
    pub(crate) fn new(bytes: &Bound<'_, PyBytes>) -> Self {
        let slice = bytes.as_bytes();
        HeldBytes {
            object: Owner::Python(bytes.clone().unbind()),
            data: slice.as_ptr(),
            len: slice.len(),
        }
    }

    /// A bytes object with exactly these bytes: the held object itself, or a copy of a
    /// message's part.
    pub(crate) fn into_object(self, py: Python<'_>) -> Py<PyBytes> {
        match self.object {
            Owner::Python(object) => object,
            Owner::Native(_) => PyBytes::new(py, self.as_ref()).unbind(),
        }
    }
}

impl ferroserve_frontend::MessageInput for HeldBytes {
    fn from_message(message: &bytes::Bytes, range: std::ops::Range<usize>) -> Self {
        Self::from_converted(message.slice(range))
    }

    /// Also how a part of a message is held: both are a `Bytes` the front end hands over.
    fn from_converted(buffer: bytes::Bytes) -> Self {
        HeldBytes {
            data: buffer.as_ptr(),
            len: buffer.len(),
            object: Owner::Native(buffer),
        }
    }
}

impl AsRef<[u8]> for HeldBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data`/`len` describe the live, immutable buffer `object` keeps (see
        // `Send`); neither CPython nor `Bytes` gives a null pointer, even for empty data.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// Who waits for a queued request: a Python future (answered through the event loop) or the
/// native front end (answered from the executor thread).
pub(crate) type PyWaiter = Waiter<Py<PyAny>, ModelOutput>;

/// The Rust queue with Python types plugged in.
pub(crate) type Queue = batcher::BatchQueue<HeldBytes, PyWaiter>;

/// The Python tokens among `waiters`; native waiters are dropped, which tells their callers the
/// request ended without an answer.
pub(crate) fn host_tokens(waiters: Vec<PyWaiter>) -> Vec<Py<PyAny>> {
    waiters
        .into_iter()
        .filter_map(|waiter| match waiter {
            Waiter::Host(token) => Some(token),
            Waiter::Native(_) => None,
        })
        .collect()
}
