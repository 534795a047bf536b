//! TLS files as Python hands them over: checked once with the front end's own rules (so every
//! listener refuses the same bad files with the same words), and loaded for the front end.

use std::path::PathBuf;
use std::sync::Arc;

use ferroserve_frontend::{ServerTls, TlsError, TlsFiles, server_config};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn to_py(error: TlsError) -> PyErr {
    PyValueError::new_err(error.to_string())
}

/// The files of `--grpc-server-cert`, `--grpc-server-key` and (mutual TLS) `--grpc-root-cert`.
pub(crate) fn files(cert: PathBuf, key: PathBuf, root_cert: Option<PathBuf>) -> TlsFiles {
    TlsFiles {
        cert,
        key,
        client_ca: root_cert,
    }
}

/// The front end's TLS, loaded from `files`; ValueError naming the flag and the file.
pub(crate) fn load(files: TlsFiles) -> PyResult<Arc<ServerTls>> {
    ServerTls::load(files).map(Arc::new).map_err(to_py)
}

/// Reads the files again into `tls`; ValueError (and the old certificates kept) when they
/// cannot be used.
pub(crate) fn reload(tls: &ServerTls) -> PyResult<()> {
    tls.reload().map_err(to_py)
}

/// Checks that `cert` (a PEM chain), `key` (its private key) and `root_cert` (the CA that
/// client certificates chain to, for mutual TLS) make a usable TLS server; ValueError naming
/// the flag and the file otherwise.
#[pyfunction]
#[pyo3(signature = (cert, key, root_cert = None))]
pub(crate) fn check_server_tls(
    cert: PathBuf,
    key: PathBuf,
    root_cert: Option<PathBuf>,
) -> PyResult<()> {
    server_config(&files(cert, key, root_cert))
        .map(drop)
        .map_err(to_py)
}
