//! The inference fast path's wire codec: a received `ModelInferRequest` parsed in place
//! (`InferRequestView`), matched against a model version's signature, and its response
//! written straight to bytes (`InferCodec`). Logic lives in `ferroserve_tensor::wire`.

use ferroserve_tensor::wire::{
    self, FastSignature, InferRequestView as RequestRanges, InputLayout, ResponseOutput,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::gil::{Work, without_gil};
use crate::queue::HeldBytes;

/// A serialized `ModelInferRequest` and where its fields are in it.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct InferRequestView {
    /// The message as received.
    #[pyo3(get)]
    data: Py<PyBytes>,
    /// `model_name`.
    #[pyo3(get)]
    model_name: Py<PyString>,
    /// `model_version`.
    #[pyo3(get)]
    model_version: Py<PyString>,
    ranges: RequestRanges,
}

impl InferRequestView {
    /// Each raw input content, held for the batcher (no copy).
    pub(crate) fn raw_inputs(&self, py: Python<'_>) -> Vec<HeldBytes> {
        let data = self.data.bind(py);
        self.ranges
            .raw_input_contents
            .iter()
            .map(|range| HeldBytes::slice(data, range.clone()))
            .collect()
    }
}

#[pymethods]
impl InferRequestView {
    /// Parses `data`; None when it is not a well-formed message (the caller then parses it with
    /// protobuf, which words the error).
    #[staticmethod]
    fn parse(py: Python<'_>, data: Bound<'_, PyBytes>) -> PyResult<Option<Self>> {
        let message = data.as_bytes();
        let parsed = without_gil(py, Work::Bytes(message.len()), || {
            Ok::<_, std::convert::Infallible>(wire::parse_infer_request(message))
        })?;
        let Ok(ranges) = parsed else {
            return Ok(None);
        };
        let text = |range: &std::ops::Range<usize>| {
            // Checked as UTF-8 by the parser.
            PyString::new(
                py,
                std::str::from_utf8(&message[range.clone()]).unwrap_or_default(),
            )
            .unbind()
        };
        Ok(Some(InferRequestView {
            model_name: text(&ranges.model_name),
            model_version: text(&ranges.model_version),
            data: data.unbind(),
            ranges,
        }))
    }

    /// The `priority` parameter the fast path read (0: none). Only meaningful when the codec
    /// matches the request; otherwise the general path reads the parameters itself.
    #[getter]
    fn priority(&self) -> u64 {
        self.ranges.priority
    }

    /// The `timeout` parameter (µs) the fast path read (0: none); see `priority`.
    #[getter]
    fn timeout_us(&self) -> u64 {
        self.ranges.timeout_us
    }
}

/// One model version's fast path: which requests it takes and how it writes responses.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct InferCodec {
    model_name: String,
    model_version: String,
    signature: FastSignature,
    /// Output datatypes, in signature order.
    output_datatypes: Vec<String>,
}

impl InferCodec {
    /// (model name, version label, signature, output datatypes), for a native route.
    pub(crate) fn parts(&self) -> (String, String, FastSignature, Vec<String>) {
        (
            self.model_name.clone(),
            self.model_version.clone(),
            self.signature.clone(),
            self.output_datatypes.clone(),
        )
    }
}

/// A request the fast path takes: per input (signature order) its byte offset and length in
/// the message and its shape; the rows in dim 0; the requested outputs' indices.
type MatchedRequest = (Vec<(usize, usize)>, Vec<Vec<i64>>, i64, Vec<usize>);

#[pymethods]
impl InferCodec {
    /// `inputs`: (name, datatype, client shape with -1 for any size, bytes per element or 0
    /// for BYTES); `outputs`: (name, datatype).
    #[new]
    fn new(
        model_name: String,
        model_version: String,
        inputs: Vec<(String, String, Vec<i64>, usize)>,
        max_batch_size: i64,
        outputs: Vec<(String, String)>,
    ) -> Self {
        let (output_names, output_datatypes) = outputs.into_iter().unzip();
        InferCodec {
            model_name,
            model_version,
            signature: FastSignature {
                inputs: inputs
                    .into_iter()
                    .map(|(name, datatype, shape, itemsize)| InputLayout {
                        name,
                        datatype,
                        shape,
                        itemsize,
                    })
                    .collect(),
                max_batch_size,
                outputs: output_names,
            },
            output_datatypes,
        }
    }

    /// The request's inputs if the fast path takes it, else None (general path).
    #[pyo3(name = "match")]
    fn match_request(&self, py: Python<'_>, request: &InferRequestView) -> Option<MatchedRequest> {
        let data = request.data.bind(py).as_bytes();
        let matched = wire::match_request(data, &request.ranges, &self.signature)?;
        let offsets = request
            .ranges
            .raw_input_contents
            .iter()
            .map(|range| (range.start, range.len()))
            .collect();
        Some((offsets, matched.shapes, matched.rows, matched.wanted))
    }

    /// The serialized `ModelInferResponse` (with `stream`, `ModelStreamInferResponse`) for
    /// `request`: outputs `wanted` of `buffers`/`shapes` (one per signature output).
    #[pyo3(signature = (request, wanted, buffers, shapes, stream = false))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        request: &InferRequestView,
        wanted: Vec<usize>,
        buffers: Vec<Bound<'py, PyBytes>>,
        shapes: Vec<Vec<i64>>,
        stream: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let names = &self.signature.outputs;
        if buffers.len() != names.len() || shapes.len() != names.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "encode: {} outputs, got {} buffers and {} shapes",
                names.len(),
                buffers.len(),
                shapes.len()
            )));
        }
        if let Some(&bad) = wanted.iter().find(|&&index| index >= names.len()) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "encode: output index {bad} out of range"
            )));
        }
        let raws: Vec<&[u8]> = buffers.iter().map(|b| b.as_bytes()).collect();
        let outputs: Vec<ResponseOutput<'_>> = wanted
            .iter()
            .map(|&index| ResponseOutput {
                name: &names[index],
                datatype: &self.output_datatypes[index],
                shape: &shapes[index],
                raw: raws[index],
            })
            .collect();
        let data = request.data.bind(py).as_bytes();
        let id = &data[request.ranges.id.clone()];
        let bytes: usize = outputs.iter().map(|o| o.raw.len()).sum();
        let message = without_gil(py, Work::Bytes(bytes), || {
            Ok::<_, std::convert::Infallible>(wire::encode_infer_response(
                self.model_name.as_bytes(),
                self.model_version.as_bytes(),
                id,
                &outputs,
                stream,
            ))
        })?;
        Ok(PyBytes::new(py, &message))
    }
}
