//! `ferroserve._core`, the Python extension: the only crate that knows Python. It converts
//! types, maps the Rust error enums to one exception hierarchy, and releases the GIL for
//! anything long (see `gil::without_gil`). The whole Python-facing surface is listed below.

mod batch;
mod drift;
mod exceptions;
mod feast;
mod features;
mod frontend;
mod gil;
mod order;
mod queue;
mod queued;
mod restrict;
mod runtime;
mod sequence;
mod tensor;
mod tls;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// The extension module: every class, function and exception Python sees.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Not in `__all__`: a dunder, not an export.
    m.setattr("__version__", env!("CARGO_PKG_VERSION"))?;

    m.add(
        "FerroserveError",
        py.get_type::<exceptions::FerroserveError>(),
    )?;
    m.add(
        "InvalidInputError",
        py.get_type::<exceptions::InvalidInputError>(),
    )?;
    m.add(
        "ModelNotFoundError",
        py.get_type::<exceptions::ModelNotFoundError>(),
    )?;
    m.add(
        "FeatureNotFoundError",
        py.get_type::<exceptions::FeatureNotFoundError>(),
    )?;
    m.add(
        "UnavailableError",
        py.get_type::<exceptions::UnavailableError>(),
    )?;
    m.add(
        "ResourceExhaustedError",
        py.get_type::<exceptions::ResourceExhaustedError>(),
    )?;
    m.add(
        "DeadlineExceededError",
        py.get_type::<exceptions::DeadlineExceededError>(),
    )?;
    m.add(
        "RequestCancelledError",
        py.get_type::<exceptions::RequestCancelledError>(),
    )?;
    m.add("InternalError", py.get_type::<exceptions::InternalError>())?;

    m.add_function(wrap_pyfunction!(tensor::decode_bytes_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::encode_bytes_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::validate_bytes_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::expected_byte_size, m)?)?;
    m.add_function(wrap_pyfunction!(frontend::shadow_difference, m)?)?;
    m.add_function(wrap_pyfunction!(tls::check_server_tls, m)?)?;

    let outcomes = ferroserve_batcher::Outcome::ALL.map(ferroserve_batcher::Outcome::name);
    m.add("REQUEST_OUTCOMES", PyTuple::new(py, outcomes)?)?;
    let bounds = ferroserve_batcher::DURATION_BOUNDS_NS;
    m.add("DURATION_BUCKETS_NS", PyTuple::new(py, bounds)?)?;
    let lookup_bounds = ferroserve_features::LOOKUP_BOUNDS_NS;
    m.add("LOOKUP_BUCKETS_NS", PyTuple::new(py, lookup_bounds)?)?;
    let difference_bounds = ferroserve_frontend::DIFFERENCE_BOUNDS;
    m.add(
        "SHADOW_DIFFERENCE_BOUNDS",
        PyTuple::new(py, difference_bounds)?,
    )?;
    m.add_class::<queue::PyQueuePolicy>()?;
    m.add_class::<queue::PyBatchQueue>()?;
    m.add_class::<batch::PyBatch>()?;
    m.add_class::<order::PyInOrder>()?;
    m.add_class::<runtime::OrtModel>()?;
    m.add_class::<runtime::OrtExecutor>()?;
    m.add_class::<sequence::PySequencePlan>()?;
    m.add_class::<features::FeaturePlan>()?;
    m.add_class::<features::PyFeatureStore>()?;
    m.add_class::<features::PyFeatureTable>()?;
    m.add_function(wrap_pyfunction!(feast::feast_write, m)?)?;
    m.add_class::<drift::PyDriftTracker>()?;
    m.add_function(wrap_pyfunction!(drift::drift_numeric_profile, m)?)?;
    m.add_function(wrap_pyfunction!(drift::drift_categorical_profile, m)?)?;
    m.add_class::<frontend::PyNativeRoute>()?;
    m.add_class::<frontend::PyFrontend>()?;
    m.add_class::<restrict::PyRestrictions>()?;
    Ok(())
}
