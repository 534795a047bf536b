//! `Model`: one ONNX model version loaded into onnxruntime sessions through its C API, one
//! session per instance (as Triton's onnxruntime backend does), each behind its own lock and
//! each on the provider and device its instance asks for (CPU, or CUDA / TensorRT on a GPU).
//! Every v2 datatype runs: fixed-size tensors are copied in and read in place, string tensors
//! (BYTES) are converted by `strings`.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;
use ort::memory::{Allocator, MemoryInfo};
use ort::session::{Session, SessionOutputs};
use ort::value::{DynTensor, DynTensorValueType};

use crate::RuntimeError;
use crate::accelerator::{self, Accelerator, PinnedIo, Provider};
use crate::executor::{Engine, InputTensor, OutputTensor};
use crate::session::{SessionSettings, builder, environment};
use crate::strings::{bytes_of_strings, string_tensor};
use crate::tensor_info::{TensorInfo, describe, element_type, find, tensor_bytes};
use ferroserve_tensor::DataType;

/// One instance: its session and, on a GPU, the pinned memory its batches go through.
struct Instance {
    /// The session (`Run` is not safe to call concurrently on one session).
    session: Session,
    /// Pinned host buffers for a GPU session; `None` on the CPU.
    pinned: Option<PinnedIo>,
}

/// What holds one output of a `Model` call.
#[derive(Debug)]
pub enum ModelOutput {
    /// A fixed-size tensor, read in place in host memory.
    Tensor(DynTensor),
    /// A string tensor's elements, read out in the v2 raw BYTES format.
    Bytes(Vec<u8>),
}

/// A loaded model version.
pub struct Model {
    /// One session per instance.
    instances: Vec<Mutex<Instance>>,
    /// The provider that runs each instance's nodes first.
    providers: Vec<Provider>,
    /// Graph inputs, in graph order.
    inputs: Vec<TensorInfo>,
    /// Graph outputs, in graph order.
    outputs: Vec<TensorInfo>,
}

impl Model {
    /// Loads `path` into one session per entry of `placements` (at least one), each on the
    /// provider and device it names, with `settings`, using the onnxruntime library `library`.
    /// `Unsupported` when a graph input or output is not a tensor of a v2 datatype (a sequence,
    /// a map, a complex number): the caller runs such models another way. `Provider` when a requested GPU provider cannot start and
    /// `settings.allow_cpu_fallback` is off.
    pub fn load(
        library: &Path,
        path: &Path,
        settings: &SessionSettings,
        placements: &[Accelerator],
    ) -> Result<Model, RuntimeError> {
        let environment = environment(library)?;
        let (first_placement, others) =
            placements.split_first().unwrap_or((&Accelerator::Cpu, &[]));
        let (first, first_provider) = open(environment, path, settings, first_placement)?;
        let inputs = first
            .session
            .inputs()
            .iter()
            .map(|input| describe("input", input.name(), input.dtype()))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = first
            .session
            .outputs()
            .iter()
            .map(|output| describe("output", output.name(), output.dtype()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut instances = vec![Mutex::new(first)];
        let mut providers = vec![first_provider];
        for placement in others {
            let (instance, provider) = open(environment, path, settings, placement)?;
            instances.push(Mutex::new(instance));
            providers.push(provider);
        }
        Ok(Model {
            instances,
            providers,
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

    /// The provider that runs each instance's nodes first (CPU for a GPU instance only where
    /// `allow_cpu_fallback` let it fall back).
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Whether every GPU instance moves its batches through pinned host memory (false if one
    /// could not get the CUDA provider's pinned allocator and uses pageable memory).
    pub fn pinned_io(&self) -> bool {
        self.instances
            .iter()
            .zip(&self.providers)
            .all(|(instance, provider)| {
                *provider == Provider::Cpu
                    || instance
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .pinned
                        .is_some()
            })
    }
}

/// One session on `placement` with `settings`, and the provider that runs it.
fn open(
    environment: &Environment,
    path: &Path,
    settings: &SessionSettings,
    placement: &Accelerator,
) -> Result<(Instance, Provider), RuntimeError> {
    let load_error = |message: String| RuntimeError::Load {
        path: path.display().to_string(),
        message,
    };
    let mut builder = builder(environment, settings).map_err(load_error)?;
    let provider = accelerator::register(&mut builder, placement, settings.allow_cpu_fallback)
        .map_err(|failure| RuntimeError::Provider {
            provider: failure.provider.name(),
            message: failure.message.trim_end().to_owned(),
        })?;
    let session = builder
        .commit_from_file(path)
        .map_err(|error| load_error(error.to_string()))?;
    // Without the pinned allocator a GPU session still works, copying from pageable memory.
    let pinned = (provider != Provider::Cpu)
        .then(|| PinnedIo::new(&session).ok())
        .flatten();
    Ok((Instance { session, pinned }, provider))
}

impl Engine for Model {
    type Output = ModelOutput;

    fn instances(&self) -> usize {
        self.instances.len()
    }

    fn run(
        &self,
        instance: usize,
        inputs: &[InputTensor<'_>],
        outputs: &[String],
    ) -> Result<Vec<OutputTensor<ModelOutput>>, RuntimeError> {
        if inputs.len() != self.inputs.len() {
            return Err(RuntimeError::Input(format!(
                "the model has {} inputs, got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        let slot = self
            .instances
            .get(instance)
            .ok_or_else(|| RuntimeError::Input(format!("no instance {instance}")))?;
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let Instance { session, pinned } = &mut *slot;
        match pinned {
            None => {
                let values = self.input_values(&Allocator::default(), inputs)?;
                let results = session.run(values)?;
                self.take_outputs(results, outputs)
            }
            Some(pinned) => {
                // One copy to the GPU per input and one back per output, both from and to pinned
                // host memory; a new binding per batch, so no output buffer is shared between
                // batches still being answered.
                let values = self.input_values(&pinned.allocator, inputs)?;
                let mut binding = session.create_binding()?;
                for (name, value) in &values {
                    binding.bind_input(*name, value)?;
                }
                // String tensors live in host memory on every provider: their outputs stay there.
                let mut host = None;
                for name in outputs {
                    if find(&self.outputs, name)?.datatype == DataType::Bytes {
                        let host = match &mut host {
                            Some(host) => host,
                            None => host.insert(MemoryInfo::default()),
                        };
                        binding.bind_output_to_device(name.as_str(), host)?;
                    } else {
                        binding.bind_output_to_device(name.as_str(), &pinned.outputs)?;
                    }
                }
                let results = session.run_binding(&binding)?;
                binding.synchronize_outputs()?;
                self.take_outputs(results, outputs)
            }
        }
    }
}

impl Model {
    /// The inputs copied into tensors `allocator` allocates: aligned whatever the request's
    /// bytes are (a batch is a few KiB where the call costs microseconds), and pinned for a GPU.
    /// BYTES inputs become string tensors in host memory.
    fn input_values<'a>(
        &'a self,
        allocator: &Allocator,
        inputs: &[InputTensor<'_>],
    ) -> Result<Vec<(&'a str, DynTensor)>, RuntimeError> {
        let mut values = Vec::with_capacity(inputs.len());
        for input in inputs {
            let info = find(&self.inputs, input.name)?;
            if info.datatype == DataType::Bytes {
                values.push((
                    info.name.as_str(),
                    string_tensor(&info.name, input.data, input.shape)?,
                ));
                continue;
            }
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
            let mut tensor = DynTensor::new(allocator, element, input.shape.to_vec())?;
            if !input.data.is_empty() {
                // SAFETY: `allocator` allocated exactly `input.data.len()` bytes of host memory
                // (onnxruntime's CPU allocator or CUDA pinned memory) for this tensor (checked
                // above against its element type and shape); nothing else references it yet.
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
        Ok(values)
    }

    /// The outputs named in `names`, in that order, checked to be host memory of the size
    /// their shape says; string outputs read out in the v2 raw BYTES format.
    fn take_outputs(
        &self,
        mut results: SessionOutputs<'_>,
        names: &[String],
    ) -> Result<Vec<OutputTensor<ModelOutput>>, RuntimeError> {
        names
            .iter()
            .map(|name| {
                let info = find(&self.outputs, name)?;
                let value = results.remove(name).ok_or_else(|| {
                    RuntimeError::Run(format!("onnxruntime returned no output '{name}'"))
                })?;
                let tensor = value.downcast::<DynTensorValueType>()?;
                let device = tensor.memory_info().allocation_device();
                if !accelerator::host_readable(&device) {
                    return Err(RuntimeError::Run(format!(
                        "output '{name}' is in {} memory, not host memory. This is a bug.",
                        device.as_str()
                    )));
                }
                let shape = tensor.shape().to_vec();
                if info.datatype == DataType::Bytes {
                    let bytes = bytes_of_strings(name, &tensor)?;
                    let len = bytes.len();
                    return Ok(OutputTensor::bytes(ModelOutput::Bytes(bytes), shape, len));
                }
                let len = tensor_bytes(info.datatype, &shape).ok_or_else(|| {
                    RuntimeError::Run(format!("output '{name}' has shape {shape:?}"))
                })?;
                Ok(OutputTensor::new(ModelOutput::Tensor(tensor), shape, len))
            })
            .collect()
    }
}

/// Reads the bytes of an output: a tensor onnxruntime put in host memory, or a string tensor's
/// elements already read out.
impl AsRef<[u8]> for OutputTensor<ModelOutput> {
    fn as_ref(&self) -> &[u8] {
        let tensor = match self.value() {
            ModelOutput::Bytes(bytes) => return bytes,
            ModelOutput::Tensor(tensor) => tensor,
        };
        if self.is_empty() {
            return &[];
        }
        // SAFETY: `take_outputs` checked that the tensor is in host memory (onnxruntime's CPU
        // allocator, or CUDA pinned memory already synchronised after the run) of `len` bytes,
        // computed from its element type and shape; the value owns the buffer and lives as
        // long as `self`.
        unsafe { std::slice::from_raw_parts(tensor.data_ptr().cast::<u8>(), self.len()) }
    }
}
