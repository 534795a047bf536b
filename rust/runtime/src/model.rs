//! `Model`: one ONNX model version loaded into onnxruntime sessions through its C API, one
//! session per instance (as Triton's onnxruntime backend does), each behind its own lock.

use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use ferroserve_tensor::DataType;
use ort::environment::Environment;
use ort::memory::Allocator;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{DynTensor, DynTensorValueType, TensorElementType, ValueType};

use crate::RuntimeError;
use crate::executor::{Engine, InputTensor, OutputTensor};

/// The process's one onnxruntime environment, created from the first library asked for.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The environment, loading `library` the first time.
fn environment(library: &Path) -> Result<&'static Environment, RuntimeError> {
    ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(library)
                .map_err(|error| error.to_string())?
                .with_name("ferroserve")
                .with_telemetry(false)
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|message| RuntimeError::Library {
            path: library.display().to_string(),
            message: message.clone(),
        })
}

/// Graph optimisation level (onnxruntime's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizationLevel {
    /// No graph optimisation.
    Disable,
    /// Semantics-preserving rewrites.
    Basic,
    /// Plus complex node fusions.
    Extended,
    /// Everything, including layout optimisations.
    All,
}

/// Session options (see docs/configuration.md for the config parameters behind them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Threads of one operator (onnxruntime's intra-op pool; 1 = the calling thread only).
    pub intra_op_threads: usize,
    /// Threads running independent operators in parallel execution mode.
    pub inter_op_threads: usize,
    /// Run independent operators in parallel (ORT_PARALLEL).
    pub parallel_execution: bool,
    /// Let pool threads spin while waiting for work.
    pub allow_spinning: bool,
    /// Graph optimisation level.
    pub optimization: OptimizationLevel,
    /// Where to save the optimised graph, if anywhere.
    pub optimized_model_path: Option<String>,
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its datatype.
    pub datatype: DataType,
    /// Its ONNX type name, e.g. "tensor(float)".
    pub onnx_type: &'static str,
    /// Its dims; `None` for a symbolic or unknown dim.
    pub shape: Vec<Option<i64>>,
}

/// The v2 datatype and ONNX type name of an onnxruntime element type this engine runs.
fn datatype(element: TensorElementType) -> Option<(DataType, &'static str)> {
    Some(match element {
        TensorElementType::Bool => (DataType::Bool, "tensor(bool)"),
        TensorElementType::Uint8 => (DataType::Uint8, "tensor(uint8)"),
        TensorElementType::Uint16 => (DataType::Uint16, "tensor(uint16)"),
        TensorElementType::Uint32 => (DataType::Uint32, "tensor(uint32)"),
        TensorElementType::Uint64 => (DataType::Uint64, "tensor(uint64)"),
        TensorElementType::Int8 => (DataType::Int8, "tensor(int8)"),
        TensorElementType::Int16 => (DataType::Int16, "tensor(int16)"),
        TensorElementType::Int32 => (DataType::Int32, "tensor(int32)"),
        TensorElementType::Int64 => (DataType::Int64, "tensor(int64)"),
        TensorElementType::Float16 => (DataType::Fp16, "tensor(float16)"),
        TensorElementType::Bfloat16 => (DataType::Bf16, "tensor(bfloat16)"),
        TensorElementType::Float32 => (DataType::Fp32, "tensor(float)"),
        TensorElementType::Float64 => (DataType::Fp64, "tensor(double)"),
        _ => return None,
    })
}

/// The onnxruntime element type of a fixed-size v2 datatype.
fn element_type(datatype: DataType) -> Option<TensorElementType> {
    Some(match datatype {
        DataType::Bool => TensorElementType::Bool,
        DataType::Uint8 => TensorElementType::Uint8,
        DataType::Uint16 => TensorElementType::Uint16,
        DataType::Uint32 => TensorElementType::Uint32,
        DataType::Uint64 => TensorElementType::Uint64,
        DataType::Int8 => TensorElementType::Int8,
        DataType::Int16 => TensorElementType::Int16,
        DataType::Int32 => TensorElementType::Int32,
        DataType::Int64 => TensorElementType::Int64,
        DataType::Fp16 => TensorElementType::Float16,
        DataType::Bf16 => TensorElementType::Bfloat16,
        DataType::Fp32 => TensorElementType::Float32,
        DataType::Fp64 => TensorElementType::Float64,
        DataType::Bytes => return None,
    })
}

/// Describes one graph tensor, or says why this engine cannot run it.
fn describe(kind: &'static str, name: &str, value: &ValueType) -> Result<TensorInfo, RuntimeError> {
    let unsupported = || RuntimeError::Unsupported {
        kind,
        name: name.to_owned(),
        onnx_type: value.to_string(),
    };
    let ValueType::Tensor { ty, shape, .. } = value else {
        return Err(unsupported());
    };
    let (datatype, onnx_type) = datatype(*ty).ok_or_else(unsupported)?;
    Ok(TensorInfo {
        name: name.to_owned(),
        datatype,
        onnx_type,
        shape: shape.iter().map(|&dim| (dim >= 0).then_some(dim)).collect(),
    })
}

/// A loaded model version.
pub struct Model {
    /// One session per instance.
    sessions: Vec<Mutex<Session>>,
    /// Graph inputs, in graph order.
    inputs: Vec<TensorInfo>,
    /// Graph outputs, in graph order.
    outputs: Vec<TensorInfo>,
}

impl Model {
    /// Loads `path` into `instances` sessions (at least one) with `settings`, using the
    /// onnxruntime library `library`. `Unsupported` when a graph tensor is not a fixed-size
    /// tensor: the caller runs such models another way.
    pub fn load(
        library: &Path,
        path: &Path,
        settings: &SessionSettings,
        instances: usize,
    ) -> Result<Model, RuntimeError> {
        let environment = environment(library)?;
        let load_error = |message: String| RuntimeError::Load {
            path: path.display().to_string(),
            message,
        };
        let first = open(environment, path, settings).map_err(load_error)?;
        let inputs = first
            .inputs()
            .iter()
            .map(|input| describe("input", input.name(), input.dtype()))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = first
            .outputs()
            .iter()
            .map(|output| describe("output", output.name(), output.dtype()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sessions = vec![Mutex::new(first)];
        for _ in 1..instances {
            sessions.push(Mutex::new(
                open(environment, path, settings).map_err(load_error)?,
            ));
        }
        Ok(Model {
            sessions,
            inputs,
            outputs,
        })
    }

    /// Graph inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// Graph outputs.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }
}

/// One session with `settings`; the error as onnxruntime words it.
fn open(
    environment: &Environment,
    path: &Path,
    settings: &SessionSettings,
) -> Result<Session, String> {
    let text = |error: ort::Error<SessionBuilder>| error.to_string();
    let level = match settings.optimization {
        OptimizationLevel::Disable => GraphOptimizationLevel::Disable,
        OptimizationLevel::Basic => GraphOptimizationLevel::Level1,
        OptimizationLevel::Extended => GraphOptimizationLevel::Level2,
        OptimizationLevel::All => GraphOptimizationLevel::All,
    };
    let mut builder = Session::builder(environment)
        .map_err(|error| error.to_string())?
        .with_intra_threads(settings.intra_op_threads)
        .map_err(text)?
        .with_inter_threads(settings.inter_op_threads)
        .map_err(text)?
        .with_parallel_execution(settings.parallel_execution)
        .map_err(text)?
        .with_intra_op_spinning(settings.allow_spinning)
        .map_err(text)?
        .with_inter_op_spinning(settings.allow_spinning)
        .map_err(text)?
        .with_optimization_level(level)
        .map_err(text)?;
    if let Some(cache) = &settings.optimized_model_path {
        builder = builder.with_optimized_model_path(cache).map_err(text)?;
    }
    builder
        .commit_from_file(path)
        .map_err(|error| error.to_string())
}

impl Engine for Model {
    type Output = DynTensor;

    fn instances(&self) -> usize {
        self.sessions.len()
    }

    fn run(
        &self,
        instance: usize,
        inputs: &[InputTensor<'_>],
        outputs: &[String],
    ) -> Result<Vec<OutputTensor<DynTensor>>, RuntimeError> {
        if inputs.len() != self.inputs.len() {
            return Err(RuntimeError::Input(format!(
                "the model has {} inputs, got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        // Inputs are copied into tensors onnxruntime allocates: aligned whatever the request's
        // bytes are, and a batch is a few KiB where the call costs microseconds.
        let allocator = Allocator::default();
        let mut values = Vec::with_capacity(inputs.len());
        for input in inputs {
            let info = find(&self.inputs, input.name)?;
            let size = tensor_bytes(info.datatype, input.shape);
            if size != Some(input.data.len()) {
                return Err(RuntimeError::Input(format!(
                    "input '{}' has {} bytes, which does not fit its shape {:?}",
                    info.name,
                    input.data.len(),
                    input.shape,
                )));
            }
            let element = element_type(info.datatype).ok_or_else(|| {
                RuntimeError::Input(format!("input '{}' is not a fixed-size tensor", info.name))
            })?;
            let mut tensor = DynTensor::new(&allocator, element, input.shape.to_vec())?;
            if !input.data.is_empty() {
                // SAFETY: onnxruntime allocated exactly `input.data.len()` bytes on the CPU for
                // this tensor (checked above against its element type and shape); nothing
                // else references the new tensor yet.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        input.data.as_ptr(),
                        tensor.data_ptr_mut().cast::<u8>(),
                        input.data.len(),
                    );
                }
            }
            values.push((info.name.as_str(), tensor));
        }
        let session = self
            .sessions
            .get(instance)
            .ok_or_else(|| RuntimeError::Input(format!("no instance {instance}")))?;
        let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
        let mut results = session.run(values)?;
        outputs
            .iter()
            .map(|name| {
                let info = find(&self.outputs, name)?;
                let value = results.remove(name).ok_or_else(|| {
                    RuntimeError::Run(format!("onnxruntime returned no output '{name}'"))
                })?;
                let tensor = value.downcast::<DynTensorValueType>()?;
                let shape = tensor.shape().to_vec();
                let len = tensor_bytes(info.datatype, &shape).ok_or_else(|| {
                    RuntimeError::Run(format!("output '{name}' has shape {shape:?}"))
                })?;
                Ok(OutputTensor::new(tensor, shape, len))
            })
            .collect()
    }
}

/// The graph tensor called `name`.
fn find<'a>(tensors: &'a [TensorInfo], name: &str) -> Result<&'a TensorInfo, RuntimeError> {
    tensors
        .iter()
        .find(|tensor| tensor.name == name)
        .ok_or_else(|| RuntimeError::Input(format!("the model has no tensor '{name}'")))
}

/// Bytes of a fixed-size tensor of `datatype` and `shape`, if the shape is valid.
fn tensor_bytes(datatype: DataType, shape: &[i64]) -> Option<usize> {
    ferroserve_tensor::expected_raw_size(datatype, shape).ok()
}

/// Reads the bytes of an output tensor onnxruntime allocated on the CPU.
impl AsRef<[u8]> for OutputTensor<DynTensor> {
    fn as_ref(&self) -> &[u8] {
        if self.is_empty() {
            return &[];
        }
        // SAFETY: the tensor is a CPU tensor (the native engine only runs the CPU provider)
        // of `len` bytes, computed from its element type and shape; the value owns the buffer
        // and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.value().data_ptr().cast::<u8>(), self.len()) }
    }
}
