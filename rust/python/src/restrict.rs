//! Triton's restricted protocols (`ferroserve_frontend::Restrictions`) for the listeners Python
//! serves itself (the admin port): the same parsing, header names and words as the front end's.

use ferroserve_frontend::Restrictions;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The `--grpc-restricted-protocol` (or, with `http`, `--http-restricted-api`) values in force.
#[pyclass(name = "Restrictions", frozen, module = "ferroserve._core")]
pub(crate) struct PyRestrictions {
    pub(crate) inner: Restrictions,
}

#[pymethods]
impl PyRestrictions {
    /// Parses Triton's flag values (`http`: `--http-restricted-api`'s, whose header is the key
    /// itself); ValueError naming the value and what is wrong.
    #[new]
    #[pyo3(signature = (specs, *, http = false))]
    fn new(specs: Vec<String>, http: bool) -> PyResult<Self> {
        let (parsed, flag) = if http {
            (Restrictions::parse_http(&specs), "--http-restricted-api")
        } else {
            (Restrictions::parse(&specs), "--grpc-restricted-protocol")
        };
        parsed
            .map(|inner| PyRestrictions { inner })
            .map_err(|error| PyValueError::new_err(format!("{flag} {error}")))
    }

    /// Why a call of `path` ("/package.Service/Method") with this metadata is refused (Triton's
    /// UNAVAILABLE message), or None when it may go on.
    fn refusal(&self, path: &str, metadata: Vec<(String, String)>) -> Option<String> {
        let pairs = metadata
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()));
        self.inner
            .check_pairs(path, pairs)
            .err()
            .map(|status| status.message)
    }

    /// Whether nothing is restricted.
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}
