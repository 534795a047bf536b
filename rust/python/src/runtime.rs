//! `OrtModel` and `OrtExecutor`: the native engine (onnxruntime's C API, `ferroserve-runtime`)
//! as Python sees it. Executor threads run without the GIL; answers reach the event loop
//! through `OrtExecutor.fileno()` and `settle()`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferroserve_frontend::Sequencer;
use ferroserve_runtime::{
    Accelerator, Answer, Completions, ConvAlgoSearch, CudaOptions, Deliver, Engine, Executor,
    Failure, Layout, Model, ModelOutput, OptimizationLevel, Reshape, Routed, RuntimeError,
    SessionSettings, TensorInfo, TensorRtOptions, Timing,
};
use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::drift::PyDriftTracker;
use crate::exceptions::{
    DeadlineExceededError, FeatureNotFoundError, InternalError, InvalidInputError, UnavailableError,
};
use crate::features::PyFeatureStore;
use crate::queue::PyBatchQueue;
use crate::queued::{HeldBytes, PyWaiter, Queue};
use crate::sequence::PySequencePlan;

/// Answers of one model version: Python's on their way to the event loop, the native front
/// end's handed over directly; in queue order for a `preserve_ordering` model.
type Answers = Routed<Py<PyAny>, ModelOutput>;

/// The sequence batcher of a stateful model version.
pub(crate) type ModelSequencer = Sequencer<HeldBytes, Py<PyAny>, ModelOutput>;

/// The exception for a runtime error: NotImplementedError where the native engine cannot run
/// the model here (the caller then uses onnxruntime's Python binding).
fn raise(error: RuntimeError) -> PyErr {
    let message = error.to_string();
    match error {
        RuntimeError::Unsupported { .. } | RuntimeError::Library { .. } => {
            PyNotImplementedError::new_err(message)
        }
        RuntimeError::Input(_) => InvalidInputError::new_err(message),
        RuntimeError::Provider { .. } => UnavailableError::new_err(message),
        RuntimeError::Load { .. } | RuntimeError::Run(_) => InternalError::new_err(message),
    }
}

/// A graph tensor as (name, ONNX type, dims with None for dynamic ones).
fn describe<'py>(py: Python<'py>, tensors: &[TensorInfo]) -> PyResult<Bound<'py, PyList>> {
    let items = tensors
        .iter()
        .map(|tensor| {
            let dims = PyTuple::new(py, &tensor.shape)?;
            PyTuple::new(
                py,
                [
                    tensor.name.clone().into_pyobject(py)?.into_any(),
                    tensor.onnx_type.into_pyobject(py)?.into_any(),
                    dims.into_any(),
                ],
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// An ONNX model version loaded through onnxruntime's C API, one session per instance.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct OrtModel {
    model: Arc<Model>,
}

#[pymethods]
impl OrtModel {
    /// Loads `path` with the onnxruntime library file `library` (without the GIL): `instances`
    /// sessions on the CPU, or with `accelerator` "cuda" / "tensorrt" one session per entry of
    /// `gpus` (a GPU id per instance). UnavailableError when a requested GPU provider cannot
    /// start and `allow_cpu_fallback` is off.
    #[staticmethod]
    #[pyo3(signature = (library, path, *, instances = 1, accelerator = "cpu", gpus = None, allow_cpu_fallback = false, tensorrt_fp16 = false, tensorrt_cache_path = None, tensorrt_max_workspace_bytes = None, cudnn_conv_algo_search = "exhaustive", intra_op_threads = 1, inter_op_threads = 1, parallel_execution = false, allow_spinning = false, optimization = "all", optimized_model_path = None))]
    #[allow(clippy::too_many_arguments)]
    fn load(
        py: Python<'_>,
        library: PathBuf,
        path: PathBuf,
        instances: usize,
        accelerator: &str,
        gpus: Option<Vec<i32>>,
        allow_cpu_fallback: bool,
        tensorrt_fp16: bool,
        tensorrt_cache_path: Option<String>,
        tensorrt_max_workspace_bytes: Option<usize>,
        cudnn_conv_algo_search: &str,
        intra_op_threads: usize,
        inter_op_threads: usize,
        parallel_execution: bool,
        allow_spinning: bool,
        optimization: &str,
        optimized_model_path: Option<String>,
    ) -> PyResult<Self> {
        let optimization = match optimization {
            "disable_all" => OptimizationLevel::Disable,
            "basic" => OptimizationLevel::Basic,
            "extended" => OptimizationLevel::Extended,
            "all" => OptimizationLevel::All,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "optimization must be 'disable_all', 'basic', 'extended' or 'all', got '{other}'"
                )));
            }
        };
        let conv_algo_search = match cudnn_conv_algo_search {
            "exhaustive" => ConvAlgoSearch::Exhaustive,
            "heuristic" => ConvAlgoSearch::Heuristic,
            "default" => ConvAlgoSearch::Default,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "cudnn_conv_algo_search must be 'exhaustive', 'heuristic' or 'default', got '{other}'"
                )));
            }
        };
        let cuda = CudaOptions { conv_algo_search };
        let gpus = gpus.unwrap_or_default();
        let placements: Vec<Accelerator> = match accelerator {
            "cpu" => vec![Accelerator::Cpu; instances.max(1)],
            "cuda" => gpus
                .iter()
                .map(|&device| Accelerator::Cuda { device, cuda })
                .collect(),
            "tensorrt" => {
                let options = TensorRtOptions {
                    fp16: tensorrt_fp16,
                    engine_cache_path: tensorrt_cache_path,
                    max_workspace_bytes: tensorrt_max_workspace_bytes,
                };
                gpus.iter()
                    .map(|&device| Accelerator::TensorRt {
                        device,
                        options: options.clone(),
                        cuda,
                    })
                    .collect()
            }
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "accelerator must be 'cpu', 'cuda' or 'tensorrt', got '{other}'"
                )));
            }
        };
        if placements.is_empty() {
            return Err(InvalidInputError::new_err(format!(
                "accelerator '{accelerator}' needs a GPU id per instance in `gpus`"
            )));
        }
        let settings = SessionSettings {
            intra_op_threads,
            inter_op_threads,
            parallel_execution,
            allow_spinning,
            optimization,
            optimized_model_path,
            allow_cpu_fallback,
        };
        let model = py
            .detach(|| Model::load(&library, &path, &settings, &placements))
            .map_err(raise)?;
        Ok(OrtModel {
            model: Arc::new(model),
        })
    }

    /// The execution provider running each instance (onnxruntime's names).
    #[getter]
    fn providers(&self) -> Vec<&'static str> {
        self.model
            .providers()
            .iter()
            .map(|provider| provider.name())
            .collect()
    }

    /// Whether every GPU instance moves its batches through pinned host memory.
    #[getter]
    fn pinned_io(&self) -> bool {
        self.model.pinned_io()
    }

    /// Graph inputs: (name, ONNX type, dims).
    #[getter]
    fn inputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        describe(py, self.model.inputs())
    }

    /// Graph outputs: (name, ONNX type, dims).
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        describe(py, self.model.outputs())
    }

    /// Sessions loaded.
    #[getter]
    fn instances(&self) -> usize {
        self.model.instances()
    }
}

/// Runs one model version: executor threads fed by its `BatchQueue`, and warm-up calls.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct OrtExecutor {
    name: String,
    model: Arc<Model>,
    queue: Py<PyBatchQueue>,
    layout: Layout,
    /// The feature join of a model with looked-up features.
    features: Option<ferroserve_runtime::FeatureJoin>,
    /// The drift tracking of a model with a drift profile (`track_drift`, before `start`).
    drift: OnceLock<ferroserve_runtime::DriftTap>,
    completions: Arc<Answers>,
    /// The sequence batcher of a stateful model: its executor threads deliver to it.
    sequencer: Option<Arc<ModelSequencer>>,
    /// Set by `start`.
    executor: OnceLock<Executor<HeldBytes, PyWaiter, Model>>,
}

impl OrtExecutor {
    /// The queue its executor threads serve.
    pub(crate) fn shared_queue(&self) -> Arc<Queue> {
        self.queue.get().shared()
    }

    /// Where its executor threads deliver answers.
    pub(crate) fn answers(&self) -> Arc<Answers> {
        Arc::clone(&self.completions)
    }

    /// The sequence batcher of a stateful model.
    pub(crate) fn sequencer(&self) -> Option<Arc<ModelSequencer>> {
        self.sequencer.clone()
    }
}

/// Each tensor's `reshape` from its (source, target) dims.
fn reshapes(pairs: Vec<Option<(Vec<i64>, Vec<i64>)>>) -> Vec<Option<Reshape>> {
    pairs
        .into_iter()
        .map(|pair| pair.map(|(source, target)| Reshape::between(&source, &target)))
        .collect()
}

#[pymethods]
impl OrtExecutor {
    /// With `features` (a model with looked-up features: its FeatureStore), the queue holds
    /// the plan's request inputs and `input_names` are the plan's model inputs, which each
    /// batch gathers from the store's current snapshot.
    #[new]
    ///
    /// With `sequence` (a stateful model's plan), requests reach the queue through the
    /// version's sequencer (`sequencer`), which feeds the control and state inputs: the queue
    /// then holds `input_names`' client inputs followed by them.
    #[pyo3(signature = (name, model, queue, *, input_names, output_names, batches, input_reshapes, output_reshapes, features = None, sequence = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        model: &OrtModel,
        queue: Py<PyBatchQueue>,
        input_names: Vec<String>,
        output_names: Vec<String>,
        batches: bool,
        input_reshapes: Vec<Option<(Vec<i64>, Vec<i64>)>>,
        output_reshapes: Vec<Option<(Vec<i64>, Vec<i64>)>>,
        features: Option<PyRef<'_, PyFeatureStore>>,
        sequence: Option<PyRef<'_, PySequencePlan>>,
    ) -> PyResult<Self> {
        let completions = Completions::new()
            .map_err(|error| PyRuntimeError::new_err(format!("cannot create a pipe: {error}")))?;
        let completions = Arc::new(if queue.get().shared().config().preserve_ordering {
            Routed::in_order(completions)
        } else {
            Routed::new(completions)
        });
        let sequencer = match sequence {
            Some(plan) => Some(
                Sequencer::start(
                    plan.model.clone(),
                    queue.get().shared(),
                    Arc::clone(&completions),
                    plan.plan.clone(),
                )
                .map_err(|error| {
                    PyRuntimeError::new_err(format!("cannot start a thread: {error}"))
                })?,
            ),
            None => None,
        };
        Ok(OrtExecutor {
            name,
            model: Arc::clone(&model.model),
            queue,
            layout: Layout {
                input_names,
                output_names,
                batches,
                input_reshapes: reshapes(input_reshapes),
                output_reshapes: reshapes(output_reshapes),
            },
            features: features.map(|store| store.join()),
            drift: OnceLock::new(),
            completions,
            sequencer,
            executor: OnceLock::new(),
        })
    }

    /// Has every batch the executor threads run counted by `tracker` (a DriftTracker over the
    /// model inputs, then the outputs, in this executor's order). Once, before `start`: after
    /// warm-up, whose outputs may have built the tracker's reference.
    fn track_drift(&self, tracker: PyRef<'_, PyDriftTracker>) -> PyResult<()> {
        if self.executor.get().is_some() {
            return Err(PyRuntimeError::new_err(
                "drift tracking is set before the executor starts",
            ));
        }
        self.drift
            .set(tracker.tap())
            .map_err(|_| PyRuntimeError::new_err("drift tracking is already set"))
    }

    /// Starts one executor thread per instance (once).
    fn start(&self) -> PyResult<()> {
        if self.executor.get().is_some() {
            return Ok(());
        }
        let deliver: Arc<dyn Deliver<PyWaiter, ModelOutput>> = match &self.sequencer {
            Some(sequencer) => Arc::clone(sequencer) as _,
            None => Arc::clone(&self.completions) as _,
        };
        let executor = Executor::start(
            &self.name,
            self.queue.get().shared(),
            Arc::clone(&self.model),
            deliver,
            self.layout.clone(),
            self.features.clone(),
            self.drift.get().cloned(),
        )
        .map_err(|error| PyRuntimeError::new_err(format!("cannot start a thread: {error}")))?;
        let _ = self.executor.set(executor);
        Ok(())
    }

    /// The pipe to watch: readable while answers wait for `settle`.
    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.completions.host().reader().as_raw_fd()
    }

    /// Takes a still-queued request out of the queue (its caller gave up on it); it then
    /// leaves the answer order too, so no later answer waits for it. False if it already left
    /// the queue (it is running, or was answered): its answer then comes as usual.
    fn cancel(&self, request_id: u64) -> bool {
        let removed = self.queue.get().shared().cancel(request_id);
        if removed {
            self.completions.withdraw(request_id);
        }
        removed
    }

    /// Closes the sequence batcher of a stateful model (unload): it takes no new request and
    /// its held ones end unanswered. A no-op for other models.
    fn close_sequences(&self) {
        if let Some(sequencer) = &self.sequencer {
            sequencer.close();
        }
    }

    /// Stops holding answers back for their turn (`preserve_ordering`): after the queue was
    /// closed and its last requests handed back (unload), nothing is left to wait for.
    fn stop_ordering(&self) {
        self.completions.stop_ordering();
    }

    /// Hands every waiting answer to its future (set_result with (buffers, shapes), or
    /// set_exception); futures already done are skipped. Returns how many were waiting.
    fn settle(&self, py: Python<'_>) -> PyResult<usize> {
        let answers = self.completions.host().take();
        let count = answers.len();
        for (future, answer) in answers {
            let future = future.bind(py);
            if future.call_method0("done")?.is_truthy()? {
                continue;
            }
            match answer {
                Ok(answer) => {
                    future.call_method1("set_result", (result(py, &answer)?,))?;
                }
                Err(Failure::DeadlineExceeded(message)) => {
                    let error = DeadlineExceededError::new_err(message).into_value(py);
                    future.call_method1("set_exception", (error,))?;
                }
                Err(Failure::Internal(message)) => {
                    let error = InternalError::new_err(message).into_value(py);
                    future.call_method1("set_exception", (error,))?;
                }
                Err(Failure::NotFound(message)) => {
                    let error = FeatureNotFoundError::new_err(message).into_value(py);
                    future.call_method1("set_exception", (error,))?;
                }
            }
        }
        Ok(count)
    }

    /// Runs one call on `instance` on this thread, without the GIL (a loading thread's
    /// warm-up): (buffers, shapes) per output. `inputs`: a bytes object per input.
    #[pyo3(signature = (inputs, shapes, instance = 0))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Bound<'py, PyBytes>>,
        shapes: Vec<Vec<i64>>,
        instance: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if inputs.len() != shapes.len() {
            return Err(InvalidInputError::new_err(format!(
                "{} inputs but {} shapes",
                inputs.len(),
                shapes.len()
            )));
        }
        if instance >= self.model.instances() {
            return Err(InvalidInputError::new_err(format!(
                "no instance {instance}: the model has {}",
                self.model.instances()
            )));
        }
        let held: Vec<HeldBytes> = inputs.iter().map(HeldBytes::new).collect();
        let layout = &self.layout;
        let shapes = layout.model_input_shapes(shapes.iter().map(Vec::as_slice));
        let model = &self.model;
        let outputs = py
            .detach(|| {
                let inputs = layout.input_tensors(held.iter().map(AsRef::as_ref), &shapes);
                model.run(instance, &inputs, &layout.output_names)
            })
            .map_err(raise)?;
        let parts = outputs
            .iter()
            .enumerate()
            .map(|(index, output)| layout.whole_output(index, output))
            .collect();
        result(
            py,
            &Answer {
                outputs: Arc::new(outputs),
                parts,
                timing: Timing::default(),
            },
        )
    }

    /// Waits up to `timeout_s` (without the GIL) for the executor threads to stop; close the
    /// queue first. Whether they all stopped.
    fn join(&self, py: Python<'_>, timeout_s: f64) -> bool {
        let timeout = Duration::try_from_secs_f64(timeout_s.max(0.0)).unwrap_or(Duration::MAX);
        match self.executor.get() {
            Some(executor) => py.detach(|| executor.join(timeout)),
            None => true,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "OrtExecutor(name='{}', instances={})",
            self.name,
            self.model.instances()
        )
    }
}

/// (list of bytes per output, list of shapes) for one request's answer.
fn result<'py>(py: Python<'py>, answer: &Answer<ModelOutput>) -> PyResult<Bound<'py, PyTuple>> {
    let buffers = PyList::new(
        py,
        answer
            .parts
            .iter()
            .zip(answer.outputs.iter())
            .map(|((range, _), output)| PyBytes::new(py, &output.as_ref()[range.clone()])),
    )?;
    let shapes = PyList::new(
        py,
        answer
            .parts
            .iter()
            .map(|(_, shape)| PyList::new(py, shape))
            .collect::<PyResult<Vec<_>>>()?,
    )?;
    PyTuple::new(py, [buffers.into_any(), shapes.into_any()])
}
