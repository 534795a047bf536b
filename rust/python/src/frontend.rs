//! `NativeRoute` and `Frontend`: the native gRPC front end (`ferroserve-frontend`) as Python
//! sees it. Python decides which model versions are routed natively and swaps the whole table
//! on every registry change; requests never enter Python on that path.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferroserve_frontend::{self as frontend, FrontendConfig, InferRoute, RouteTable};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::runtime::OrtExecutor;
use crate::wire::InferCodec;

/// A model version answered natively: its fast-path codec and the queue its native executor
/// threads serve.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct NativeRoute {
    route: Arc<dyn InferRoute>,
}

#[pymethods]
impl NativeRoute {
    /// Routes requests `codec` takes to `executor`'s queue. Only a native executor qualifies:
    /// its threads answer the front end's waiters directly.
    #[new]
    fn new(codec: &InferCodec, executor: &OrtExecutor) -> Self {
        let (model_name, model_version, signature, output_datatypes) = codec.parts();
        NativeRoute {
            route: Arc::new(frontend::NativeRoute::new(
                model_name,
                model_version,
                signature,
                output_datatypes,
                executor.shared_queue(),
                executor.answers(),
            )),
        }
    }
}

/// The running front end.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct Frontend {
    inner: Mutex<Option<frontend::Frontend>>,
    routes: Arc<RouteTable>,
    /// The port it listens on.
    #[pyo3(get)]
    port: u16,
}

#[pymethods]
impl Frontend {
    /// Listens on `address` (host:port; port 0 picks a free one) and forwards what it does not
    /// answer itself to the gRPC server on the Unix socket `backend`. OSError if it cannot
    /// bind.
    #[staticmethod]
    #[pyo3(signature = (address, backend, *, max_message_bytes, threads = 1))]
    fn start(
        py: Python<'_>,
        address: String,
        backend: PathBuf,
        max_message_bytes: usize,
        threads: usize,
    ) -> PyResult<Self> {
        let routes = Arc::new(RouteTable::new());
        let config = FrontendConfig {
            address: address.clone(),
            backend,
            max_message_bytes,
            threads,
        };
        let started = py
            .detach(|| frontend::Frontend::start(config, Arc::clone(&routes)))
            .map_err(|error| {
                PyOSError::new_err(format!("cannot bind gRPC to {address}: {error}"))
            })?;
        Ok(Frontend {
            port: started.address().port(),
            inner: Mutex::new(Some(started)),
            routes,
        })
    }

    /// Replaces the routing table: (model name, version label or "" for the default version,
    /// route) for every version answered natively.
    fn set_routes(&self, routes: Vec<(String, String, PyRef<'_, NativeRoute>)>) {
        self.routes.replace(
            routes
                .into_iter()
                .map(|(name, version, route)| (name, version, Arc::clone(&route.route)))
                .collect(),
        );
    }

    /// Calls it answered itself: (method, rpc type, status code name, calls).
    fn rpc_counts(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(running) = inner.as_ref() else {
            return Vec::new();
        };
        running
            .counters()
            .snapshot()
            .into_iter()
            .map(|(method, code, calls)| (method.name(), method.rpc_type(), code.name(), calls))
            .collect()
    }

    /// Stops accepting calls and waits up to `grace_s` (without the GIL) for open connections
    /// to finish.
    fn stop(&self, py: Python<'_>, grace_s: f64) {
        let grace = Duration::try_from_secs_f64(grace_s.max(0.0)).unwrap_or(Duration::ZERO);
        let taken = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut running) = taken {
            py.detach(move || running.stop(grace));
        }
    }
}
