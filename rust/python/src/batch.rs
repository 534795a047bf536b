//! `Batch`: what an executor thread gets from `BatchQueue.next_batch`: the requests' tokens,
//! their inputs as buffers numpy can wrap without copying, and the split of outputs per request.

use ferroserve_batcher::{self as batcher, BatchData, OutputSplitter};
use numpy::{PyArray1, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::exceptions::{InternalError, OrRaise};
use crate::queued::{HeldBytes, PyWaiter, host_tokens};

/// Requests to execute together.
#[pyclass(name = "Batch", frozen, module = "ferroserve._core")]
pub(crate) struct PyBatch {
    /// Each request's token.
    #[pyo3(get)]
    tokens: Py<PyList>,
    /// Each request's id.
    #[pyo3(get)]
    request_ids: Py<PyList>,
    /// Each request's rows in dim 0.
    #[pyo3(get)]
    request_rows: Py<PyList>,
    /// Tokens of requests whose deadline passed in the queue.
    #[pyo3(get)]
    rejected: Py<PyList>,
    /// Each rejected request's id.
    #[pyo3(get)]
    rejected_ids: Py<PyList>,
    /// Nanoseconds each request waited in the queue.
    #[pyo3(get)]
    queue_ns: Py<PyList>,
    /// Total rows.
    #[pyo3(get)]
    size: usize,
    /// Per input: a buffer object and its shape.
    inputs: Vec<(Py<PyAny>, Py<PyTuple>)>,
    /// Divides outputs per request.
    splitter: OutputSplitter,
}

impl PyBatch {
    /// Wraps a Rust batch: a single request's input is its own bytes object; concatenated
    /// inputs become uint8 arrays that own the Rust vectors (no copy).
    pub(crate) fn new(
        py: Python<'_>,
        batch: batcher::Batch<HeldBytes, PyWaiter>,
    ) -> PyResult<Self> {
        let inputs = batch
            .inputs
            .into_iter()
            .map(|input| {
                let buffer = match input.data {
                    BatchData::Single(bytes) => bytes.into_object(py).into_any(),
                    BatchData::Owned(bytes) => PyArray1::from_vec(py, bytes).into_any().unbind(),
                };
                Ok((buffer, PyTuple::new(py, input.shape)?.unbind()))
            })
            .collect::<PyResult<_>>()?;
        let queue_ns = batch
            .queue_durations
            .iter()
            .map(|duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        Ok(PyBatch {
            size: batch.splitter.size(),
            tokens: PyList::new(py, host_tokens(batch.tokens))?.unbind(),
            request_ids: PyList::new(py, batch.ids)?.unbind(),
            request_rows: PyList::new(py, batch.splitter.rows())?.unbind(),
            rejected: PyList::new(py, host_tokens(batch.rejected))?.unbind(),
            rejected_ids: PyList::new(py, batch.rejected_ids)?.unbind(),
            queue_ns: PyList::new(py, queue_ns)?.unbind(),
            inputs,
            splitter: batch.splitter,
        })
    }
}

#[pymethods]
impl PyBatch {
    /// Input `index`: (buffer for numpy.frombuffer, shape with dim 0 = total rows).
    fn input<'py>(
        &self,
        py: Python<'py>,
        index: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let (buffer, shape) = self.inputs.get(index).ok_or_else(|| {
            pyo3::exceptions::PyIndexError::new_err(format!(
                "input index {index} out of range: the batch has {} inputs",
                self.inputs.len()
            ))
        })?;
        Ok((buffer.bind(py).clone(), shape.bind(py).clone()))
    }

    /// Splits a numeric, C-contiguous output into one bytes object per request.
    fn split<'py>(
        &self,
        py: Python<'py>,
        output: &Bound<'py, PyUntypedArray>,
    ) -> PyResult<Bound<'py, PyList>> {
        let dtype = output.dtype();
        if dtype.has_object() {
            return Err(InternalError::new_err(
                "cannot split an object (BYTES) output by bytes: split it element-wise",
            ));
        }
        if !output.is_c_contiguous() {
            return Err(InternalError::new_err(
                "cannot split an output that is not C-contiguous",
            ));
        }
        let shape = output.shape();
        let nbytes = shape
            .iter()
            .try_fold(dtype.itemsize(), |total, &dim| total.checked_mul(dim))
            .ok_or_else(|| InternalError::new_err("output byte size overflows"))?;
        let dim0 = match shape.first() {
            Some(&dim0) => dim0,
            None if self.splitter.is_batching() => {
                return Err(InternalError::new_err(
                    "output is a scalar but the model batches: it needs a batch dim",
                ));
            }
            None => 1,
        };
        let ranges = self.splitter.split_ranges(nbytes, dim0).or_raise()?;
        let data: &[u8] = if nbytes == 0 {
            &[]
        } else {
            // SAFETY: the array is C-contiguous with `nbytes` bytes at `data`; we hold the GIL
            // and run no Python code while the slice lives, so nothing can resize or free it.
            unsafe {
                std::slice::from_raw_parts(
                    (*output.as_array_ptr()).fields.data.cast::<u8>(),
                    nbytes,
                )
            }
        };
        PyList::new(
            py,
            ranges
                .into_iter()
                .map(|range| PyBytes::new(py, &data[range])),
        )
    }

    fn __len__(&self) -> usize {
        self.splitter.rows().len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Batch(requests={}, size={}, rejected={})",
            self.splitter.rows().len(),
            self.size,
            self.rejected.bind(py).len()
        )
    }
}
