//! `InOrder`: the `preserve_ordering` release gate (`ferroserve_runtime::InOrder`) for answers
//! that are Python objects: those of executors on onnxruntime's Python binding, which resolve
//! their futures on the event loop. The native engine's executor threads use the same gate in
//! Rust (`Routed`), so both keep one rule.

use std::sync::{Mutex, MutexGuard, PoisonError};

use ferroserve_runtime::InOrder;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Holds answers back until every request queued before theirs has ended.
#[pyclass(name = "InOrder", frozen, module = "ferroserve._core")]
pub(crate) struct PyInOrder {
    /// Only the event loop's thread calls it; the lock makes the class safe anyway.
    gate: Mutex<InOrder<Py<PyAny>>>,
}

impl PyInOrder {
    fn gate(&self) -> MutexGuard<'_, InOrder<Py<PyAny>>> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PyInOrder {
    #[new]
    fn new() -> Self {
        PyInOrder {
            gate: Mutex::new(InOrder::new()),
        }
    }

    /// The requests `ids` (queue ids) ended with `answers`: returns every answer that may go
    /// now, in queue order.
    fn finish(&self, ids: Vec<u64>, answers: Vec<Py<PyAny>>) -> PyResult<Vec<Py<PyAny>>> {
        if ids.len() != answers.len() {
            return Err(PyValueError::new_err(format!(
                "finish: {} ids for {} answers",
                ids.len(),
                answers.len()
            )));
        }
        let mut released = Vec::with_capacity(answers.len());
        let mut gate = self.gate();
        for (id, answer) in ids.into_iter().zip(answers) {
            gate.finish(id, answer, |answer| released.push(answer));
        }
        Ok(released)
    }

    /// The request `id` left the queue unanswered (cancelled): returns every answer that may
    /// go now.
    fn withdraw(&self, request_id: u64) -> Vec<Py<PyAny>> {
        let mut released = Vec::new();
        self.gate()
            .withdraw(request_id, |answer| released.push(answer));
        released
    }

    /// Stops holding anything back (the queue was closed): returns every held answer, in
    /// queue order; later ones go at once.
    fn open(&self) -> Vec<Py<PyAny>> {
        let mut released = Vec::new();
        self.gate().open(|answer| released.push(answer));
        released
    }

    /// Answers waiting for their turn.
    #[getter]
    fn held(&self) -> usize {
        self.gate().held()
    }
}
