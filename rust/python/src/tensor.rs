//! KServe v2 tensor helpers for the codec: BYTES tensors to and from numpy object arrays, and
//! the byte size a fixed-size tensor must have.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ops::Range;

use ferroserve_tensor::{
    DataType, TensorError, check_utf8, decode_bytes_offsets, encode_bytes, expected_raw_size,
};
use numpy::{PyArray1, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

use crate::exceptions::{InvalidInputError, OrRaise, RustError};
use crate::gil::{Work, without_gil};

/// Parses (and with `utf8`, checks the text of) a BYTES tensor without the GIL for large
/// buffers; errors name input `name`.
fn parse_bytes_tensor(
    py: Python<'_>,
    data: &[u8],
    count: i64,
    name: &str,
    utf8: bool,
) -> PyResult<Vec<Range<usize>>> {
    let count = usize::try_from(count).map_err(|_| {
        InvalidInputError::new_err(format!("input '{name}': element count {count} is negative"))
    })?;
    without_gil(py, Work::Bytes(data.len()), || {
        Ok::<_, Infallible>(decode_bytes_offsets(data, count).and_then(|ranges| {
            if utf8 {
                check_utf8(data, &ranges)?;
            }
            Ok(ranges)
        }))
    })?
    .map_err(|error: TensorError| {
        InvalidInputError::new_err(format!("input '{name}': BYTES contents: {error}"))
    })
}

/// Decodes a BYTES tensor's raw contents into a 1-D object array of `count` bytes objects, or
/// of str objects with `utf8` (what onnxruntime string tensors take).
#[pyfunction]
#[pyo3(signature = (raw, count, name, utf8 = false))]
pub(crate) fn decode_bytes_tensor<'py>(
    py: Python<'py>,
    raw: &Bound<'py, PyBytes>,
    count: i64,
    name: &str,
    utf8: bool,
) -> PyResult<Bound<'py, PyArray1<Py<PyAny>>>> {
    // `data` stays valid without the GIL: bytes are immutable and `raw` holds a reference.
    let data = raw.as_bytes();
    let ranges = parse_bytes_tensor(py, data, count, name, utf8)?;
    let elements = ranges
        .into_iter()
        .map(|range| {
            let element = &data[range];
            Ok(if utf8 {
                // Checked above by `check_utf8`; from_utf8 again keeps this free of `unsafe`.
                let text = std::str::from_utf8(element).map_err(|error| {
                    InvalidInputError::new_err(format!("input '{name}': {error}"))
                })?;
                PyString::new(py, text).into_any().unbind()
            } else {
                PyBytes::new(py, element).into_any().unbind()
            })
        })
        .collect::<PyResult<Vec<Py<PyAny>>>>()?;
    Ok(PyArray1::from_vec(py, elements))
}

/// Checks a BYTES tensor's framing (and with `utf8`, its text) without building objects.
#[pyfunction]
#[pyo3(signature = (raw, count, name, utf8 = false))]
pub(crate) fn validate_bytes_tensor(
    py: Python<'_>,
    raw: &Bound<'_, PyBytes>,
    count: i64,
    name: &str,
    utf8: bool,
) -> PyResult<()> {
    parse_bytes_tensor(py, raw.as_bytes(), count, name, utf8).map(drop)
}

/// The bytes of one element of a BYTES tensor: bytes and str are borrowed, bytearray copied.
fn element_bytes<'a>(index: usize, element: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(bytes) = element.cast::<PyBytes>() {
        Ok(Cow::Borrowed(bytes.as_bytes()))
    } else if let Ok(text) = element.cast::<PyString>() {
        Ok(Cow::Borrowed(text.to_str()?.as_bytes()))
    } else if let Ok(array) = element.cast::<PyByteArray>() {
        // Copied: a bytearray can change size under us once another thread runs.
        Ok(Cow::Owned(array.to_vec()))
    } else {
        let kind = element.get_type().name()?;
        Err(InvalidInputError::new_err(format!(
            "BYTES element {index} is a '{kind}', expected bytes, bytearray or str"
        )))
    }
}

/// Encodes an object, bytes_ or str_ array (any shape, row-major) in the BYTES wire format.
#[pyfunction]
pub(crate) fn encode_bytes_tensor<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyUntypedArray>,
) -> PyResult<Bound<'py, PyBytes>> {
    let kind = values.dtype().kind();
    if !matches!(kind, b'O' | b'S' | b'U') {
        return Err(InvalidInputError::new_err(format!(
            "a BYTES tensor must be an object, bytes_ or str_ array, got dtype {}",
            values.dtype()
        )));
    }
    // `tolist` of the C-order ravel gives Python bytes/str objects (numpy strips the padding of
    // fixed-width strings) in a fresh list that only we hold.
    let list = values
        .call_method1("ravel", ("C",))?
        .call_method0("tolist")?
        .cast_into::<PyList>()?;
    let items: Vec<Bound<'py, PyAny>> = list.iter().collect();
    let elements = items
        .iter()
        .enumerate()
        .map(|(index, item)| element_bytes(index, item))
        .collect::<PyResult<Vec<_>>>()?;
    let total: usize = elements.iter().map(|element| element.len() + 4).sum();
    // The borrowed slices stay valid without the GIL: `items` holds each object, and bytes and
    // the UTF-8 form of str are immutable.
    let encoded = without_gil(py, Work::Bytes(total), || {
        encode_bytes(elements.iter().map(AsRef::as_ref)).map_err(RustError::from)
    })?;
    Ok(PyBytes::new(py, &encoded))
}

/// The byte size of a fixed-size tensor; InvalidInputError for BYTES, bad names and dims.
#[pyfunction]
pub(crate) fn expected_byte_size(datatype: &str, shape: Vec<i64>) -> PyResult<usize> {
    let datatype: DataType = datatype.parse().or_raise()?;
    expected_raw_size(datatype, &shape).or_raise()
}
