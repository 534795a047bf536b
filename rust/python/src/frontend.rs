//! `NativeRoute` and `Frontend`: the native gRPC front end (`ferroserve-frontend`) as Python
//! sees it. Python decides which model versions are routed natively and swaps the whole table
//! on every registry change; requests never enter Python on that path.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferroserve_frontend::{
    self as frontend, ConnectionLimits, FrontendConfig, InferRoute, ModelSpec, RouteTable,
    ServerTls, TargetSpec,
};
use ferroserve_tensor::wire::{FastSignature, InputLayout};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::features::PyFeatureStore;
use crate::queue::PyBatchQueue;
use crate::queued::{HeldBytes, PyWaiter};
use crate::restrict::PyRestrictions;
use crate::runtime::OrtExecutor;
use crate::tls;

/// A model version answered natively: the signature its fast path matches requests against
/// and the queue its native executor threads serve.
#[pyclass(name = "NativeRoute", frozen, module = "ferroserve._core")]
pub(crate) struct PyNativeRoute {
    route: Arc<dyn InferRoute>,
    /// The same route when it is an ensemble's: bound to the route table it is put in.
    ensemble: Option<Arc<Ensemble>>,
}

/// An ensemble's route with the extension's types plugged in.
type Ensemble = frontend::EnsembleRoute<HeldBytes, PyWaiter>;

/// One ensemble step as Python describes it: (model, version or "", input_map as (model
/// input, tensor index), output_map as (model output, tensor index)).
type PyStep = (String, String, Vec<(String, usize)>, Vec<(String, usize)>);

/// The signature of a natively routed version: (name, datatype, client shape with -1 for
/// any size, bytes per element or 0 for BYTES) per input, the max batch size, output names.
fn fast_signature(
    inputs: Vec<(String, String, Vec<i64>, usize)>,
    max_batch_size: i64,
    outputs: Vec<String>,
) -> FastSignature {
    FastSignature {
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
        outputs,
    }
}

#[pymethods]
impl PyNativeRoute {
    /// Routes the requests of model `model_name` version `model_version` that match the
    /// signature to `executor`'s queue. `inputs`: (name, datatype, client shape with -1 for
    /// any size, bytes per element or 0 for BYTES), in signature order; `outputs`: (name,
    /// datatype). Only a native executor qualifies: its threads answer the front end's waiters
    /// directly. With `features` whose store has Redis views, the route joins each request's
    /// graph inputs (fetching from Redis) before queueing them: `inputs` are then the plan's
    /// request inputs and the executor runs without features.
    #[new]
    #[pyo3(signature = (executor, model_name, model_version, *, inputs, max_batch_size, outputs, features = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        executor: &OrtExecutor,
        model_name: String,
        model_version: String,
        inputs: Vec<(String, String, Vec<i64>, usize)>,
        max_batch_size: i64,
        outputs: Vec<(String, String)>,
        features: Option<PyRef<'_, PyFeatureStore>>,
    ) -> Self {
        let (output_names, output_datatypes) = outputs.into_iter().unzip();
        let signature = fast_signature(inputs, max_batch_size, output_names);
        let route = frontend::NativeRoute::new(
            model_name,
            model_version,
            signature,
            output_datatypes,
            executor.shared_queue(),
            executor.answers(),
        );
        let route = match features.and_then(|store| store.remote_join()) {
            Some(join) => route.with_remote_join(join),
            None => route,
        };
        // A stateful model's requests go through its sequence batcher.
        let route: Arc<dyn InferRoute> = match executor.sequencer() {
            Some(sequencer) => Arc::new(frontend::SequenceRoute::new(route, sequencer)),
            None => Arc::new(route),
        };
        PyNativeRoute {
            route,
            ensemble: None,
        }
    }

    /// The route of ensemble `model_name` version `model_version`: requests matching its
    /// signature (`inputs`, `max_batch_size`, `outputs` as for a model) run `steps` in the
    /// front end, each queued into its composing model's version as routed at that moment;
    /// the ensemble's requests are counted in `stats` (a queue nothing is queued into).
    /// `tensors`: every ensemble tensor's name; `input_tensors`, `output_tensors`: the tensor
    /// of each input and output; `steps`: (model, version or "", input_map, output_map) with
    /// tensor indices, each after the steps whose outputs it reads. ValueError for a plan
    /// that breaks those rules.
    #[staticmethod]
    #[pyo3(signature = (stats, model_name, model_version, *, inputs, max_batch_size, outputs, tensors, input_tensors, output_tensors, steps))]
    #[allow(clippy::too_many_arguments)]
    fn ensemble(
        stats: &PyBatchQueue,
        model_name: String,
        model_version: String,
        inputs: Vec<(String, String, Vec<i64>, usize)>,
        max_batch_size: i64,
        outputs: Vec<(String, String)>,
        tensors: Vec<String>,
        input_tensors: Vec<usize>,
        output_tensors: Vec<usize>,
        steps: Vec<PyStep>,
    ) -> PyResult<Self> {
        let steps = steps
            .into_iter()
            .map(|(model, version, inputs, outputs)| frontend::EnsembleStep {
                model,
                version,
                inputs,
                outputs,
            })
            .collect();
        let plan = frontend::EnsemblePlan::new(tensors, input_tensors, output_tensors, steps)
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let (output_names, output_datatypes) = outputs.into_iter().unzip();
        let ensemble = Arc::new(frontend::EnsembleRoute::new(
            model_name,
            model_version,
            fast_signature(inputs, max_batch_size, output_names),
            output_datatypes,
            plan,
            stats.shared(),
        ));
        Ok(PyNativeRoute {
            route: Arc::clone(&ensemble) as Arc<dyn InferRoute>,
            ensemble: Some(ensemble),
        })
    }

    /// Holders of the route besides this object: the front end's route table while the route
    /// is in it, and each request from its route lookup until its answer. Zero once the route
    /// left the table and those requests are answered: its queue can then close without
    /// turning away a request the front end already sent there.
    fn holders(&self) -> usize {
        // An ensemble's route is held twice here (as a route and as an ensemble to bind).
        Arc::strong_count(&self.route) - 1 - usize::from(self.ensemble.is_some())
    }
}

/// One model's routes as Python describes them (see `PyFrontend::set_routes`).
type PyModelRoutes<'py> = (
    String,
    Vec<(String, String, String, PyRef<'py, PyNativeRoute>)>,
    Vec<(u32, String, String, PyRef<'py, PyNativeRoute>)>,
    Vec<(u32, String, PyRef<'py, PyNativeRoute>)>,
);

/// One shadow version's counts as Python gets them (see `PyFrontend::shadow_counts`).
type PyShadowCounts = (String, String, u64, u64, u64, Vec<u64>, u64);

/// The running front end.
#[pyclass(name = "Frontend", frozen, module = "ferroserve._core")]
pub(crate) struct PyFrontend {
    inner: Mutex<Option<frontend::Frontend>>,
    routes: Arc<RouteTable>,
    /// The port's TLS (None: plain HTTP/2).
    tls: Option<Arc<ServerTls>>,
    /// The port it listens on.
    #[pyo3(get)]
    port: u16,
    /// The port REST is served on (0: none).
    #[pyo3(get)]
    http_port: u16,
}

#[pymethods]
impl PyFrontend {
    /// Listens on `address` (host:port; port 0 picks a free one) and forwards what it does not
    /// answer itself to the gRPC server on the Unix socket `backend` (and serves the v2 REST
    /// protocol on `http_address` when given), with connections bounded
    /// as `ConnectionOptions` says (times in ms; 0 turns the idle timeout and keep-alive off).
    /// OSError if it cannot bind. With `tls_cert` and `tls_key` (PEM files) it speaks TLS
    /// only, and with `tls_root_cert` it asks every client for a certificate that chains to
    /// it (mutual TLS); ValueError naming the flag and the file when they cannot be used.
    /// `http_tls`: the REST port speaks TLS too, with the same certificates.
    #[staticmethod]
    #[pyo3(signature = (
        address, backend, *, http_address = None, max_message_bytes, threads = 1, max_connections,
        max_concurrent_streams, handshake_timeout_ms, idle_timeout_ms, keepalive_time_ms,
        keepalive_timeout_ms, stream_window, restrictions = None, http_restrictions = None,
        tls_cert = None, tls_key = None, tls_root_cert = None, http_tls = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        py: Python<'_>,
        address: String,
        backend: PathBuf,
        http_address: Option<String>,
        max_message_bytes: usize,
        threads: usize,
        max_connections: usize,
        max_concurrent_streams: u32,
        handshake_timeout_ms: u64,
        idle_timeout_ms: u64,
        keepalive_time_ms: u64,
        keepalive_timeout_ms: u64,
        stream_window: usize,
        restrictions: Option<PyRef<'_, PyRestrictions>>,
        http_restrictions: Option<PyRef<'_, PyRestrictions>>,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        tls_root_cert: Option<PathBuf>,
        http_tls: bool,
    ) -> PyResult<Self> {
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(tls::load(tls::files(cert, key, tls_root_cert))?),
            (None, None) if tls_root_cert.is_none() => None,
            _ => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "TLS needs both --grpc-server-cert and --grpc-server-key",
                ));
            }
        };
        if http_tls && tls.is_none() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "--http-use-ssl serves HTTPS with the gRPC port's certificate: it needs \
                 --grpc-server-cert and --grpc-server-key",
            ));
        }
        let routes = Arc::new(RouteTable::new());
        let optional = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        let config = FrontendConfig {
            address: address.clone(),
            http_address: http_address.clone(),
            backend,
            max_message_bytes,
            threads,
            limits: ConnectionLimits {
                max_connections: max_connections.max(1),
                max_concurrent_streams: max_concurrent_streams.max(1),
                handshake_timeout: Duration::from_millis(handshake_timeout_ms.max(1)),
                idle_timeout: optional(idle_timeout_ms),
                keepalive_time: optional(keepalive_time_ms),
                keepalive_timeout: Duration::from_millis(keepalive_timeout_ms),
                stream_window: stream_window.max(1),
            },
            restrictions: restrictions.map(|r| r.inner.clone()).unwrap_or_default(),
            http_tls: if http_tls { tls.clone() } else { None },
            tls: tls.clone(),
            http_restrictions: http_restrictions
                .map(|r| r.inner.clone())
                .unwrap_or_default(),
        };
        let started = py
            .detach(|| frontend::Frontend::start(config, Arc::clone(&routes)))
            .map_err(|error| {
                let http = http_address
                    .map(|http| format!(" and HTTP to {http}"))
                    .unwrap_or_default();
                PyOSError::new_err(format!("cannot bind gRPC to {address}{http}: {error}"))
            })?;
        Ok(PyFrontend {
            port: started.address().port(),
            http_port: started.http_address().map_or(0, |address| address.port()),
            inner: Mutex::new(Some(started)),
            routes,
            tls,
        })
    }

    /// Reads the TLS files again: new connections get the new certificates, open ones keep
    /// theirs. False without TLS; ValueError (the old certificates kept) when the files cannot
    /// be used.
    fn reload_tls(&self, py: Python<'_>) -> PyResult<bool> {
        let Some(tls) = &self.tls else {
            return Ok(false);
        };
        py.detach(|| tls::reload(tls))?;
        Ok(true)
    }

    /// Replaces the routing table with `models`: (name, named, split, shadows) per model,
    /// where `named` lists (version number or alias, alias counted or "", version, route),
    /// `split` the targets of requests without a version as (weight, alias or "", version,
    /// route), and `shadows` (percent, version, route).
    fn set_routes(&self, models: Vec<PyModelRoutes<'_>>) {
        let target = |alias: String, version: String, route: &PyNativeRoute| {
            if let Some(ensemble) = &route.ensemble {
                ensemble.bind(&self.routes);
            }
            TargetSpec {
                alias,
                version,
                route: Arc::clone(&route.route),
            }
        };
        let specs = models
            .into_iter()
            .map(|(model, named, split, shadows)| ModelSpec {
                model,
                named: named
                    .into_iter()
                    .map(|(label, alias, version, route)| (label, target(alias, version, &route)))
                    .collect(),
                split: split
                    .into_iter()
                    .map(|(weight, alias, version, route)| (weight, target(alias, version, &route)))
                    .collect(),
                shadows: shadows
                    .into_iter()
                    .map(|(percent, version, route)| {
                        (percent, target(String::new(), version, &route))
                    })
                    .collect(),
            })
            .collect();
        self.routes.replace(specs);
    }

    /// Requests taken natively per (model, alias or "", version): (model, alias, version,
    /// requests), counted since the front end started.
    fn routed_counts(&self) -> Vec<(String, String, String, u64)> {
        self.routes.served_counts()
    }

    /// Each shadow version's copies: (model, version, sent, failed, mismatched, compared per
    /// SHADOW_DIFFERENCE_BOUNDS bucket with a last unbounded one, sum of the largest
    /// differences in millionths).
    fn shadow_counts(&self) -> Vec<PyShadowCounts> {
        self.routes
            .shadow_counts()
            .into_iter()
            .map(|(model, version, c)| {
                (
                    model,
                    version,
                    c.sent,
                    c.failed,
                    c.mismatched,
                    c.buckets,
                    c.sum_micros,
                )
            })
            .collect()
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

/// The largest absolute difference between two serialized `ModelInferResponse`s' outputs (a
/// shadow's answer against the served one): 0 when identical, infinite when they cannot be
/// compared value by value. The Python server's shadows compare with the front end's rule.
#[pyfunction]
pub(crate) fn shadow_difference(served: &[u8], copy: &[u8]) -> f64 {
    frontend::largest_difference(served, false, copy)
}
