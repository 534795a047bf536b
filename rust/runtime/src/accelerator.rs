//! Where a session runs: onnxruntime's CPU provider, or CUDA / TensorRT on one GPU. Requested
//! providers are registered one by one so that one that cannot start (no GPU, CUDA or cuDNN
//! missing, TensorRT absent) is an error with onnxruntime's reason, never a quiet run on the
//! CPU, unless the model allows that fallback; and GPU sessions move batches through pinned
//! host memory, which the GPU copies from and to directly.

use ort::ep::{self, ExecutionProvider};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::session::builder::SessionBuilder;

/// TensorRT settings (Triton's `gpu_execution_accelerator` parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TensorRtOptions {
    /// Build FP16 engines (`precision_mode: FP16`).
    pub fp16: bool,
    /// Folder for built engines, reused by later loads (a build takes seconds to minutes); `None`
    /// builds them at every load.
    pub engine_cache_path: Option<String>,
    /// Workspace TensorRT may use while building, in bytes; `None`: onnxruntime's default.
    pub max_workspace_bytes: Option<usize>,
}

/// How cuDNN picks a convolution algorithm for each new input shape (Triton's
/// `cudnn_conv_algo_search` parameter; onnxruntime's `OrtCudnnConvAlgoSearch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConvAlgoSearch {
    /// Benchmark every algorithm the first time a shape is seen (onnxruntime's and Triton's
    /// default): the fastest kernels, at a cost per new shape, which a dynamic batcher meets
    /// with every new batch size.
    #[default]
    Exhaustive,
    /// cuDNN's heuristics: no benchmark per shape.
    Heuristic,
    /// One fixed algorithm (implicit precomputed GEMM).
    Default,
}

/// CUDA provider settings (also for the nodes a TensorRT session leaves to CUDA).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CudaOptions {
    /// Convolution algorithm search.
    pub conv_algo_search: ConvAlgoSearch,
}

/// The execution provider one instance asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accelerator {
    /// onnxruntime's CPU provider.
    Cpu,
    /// CUDA on GPU `device`.
    Cuda {
        /// The GPU's CUDA ordinal.
        device: i32,
        /// Provider settings.
        cuda: CudaOptions,
    },
    /// TensorRT on GPU `device`, with CUDA for the nodes TensorRT does not take.
    TensorRt {
        /// The GPU's CUDA ordinal.
        device: i32,
        /// Engine settings.
        options: TensorRtOptions,
        /// Settings of the CUDA provider beside it.
        cuda: CudaOptions,
    },
}

/// An execution provider, named as onnxruntime names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// CPUExecutionProvider.
    Cpu,
    /// CUDAExecutionProvider.
    Cuda,
    /// TensorrtExecutionProvider.
    TensorRt,
}

impl Provider {
    /// onnxruntime's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::TensorRt => "TensorrtExecutionProvider",
        }
    }
}

/// A requested provider that could not start, with onnxruntime's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderFailure {
    /// The provider.
    pub provider: Provider,
    /// onnxruntime's message.
    pub message: String,
}

/// Registers what `accelerator` asks for on `builder` and returns the provider that will run
/// the session's nodes first. A provider that fails to register is an error, unless
/// `allow_cpu_fallback`: then the next one is tried and, at the end, the CPU.
pub(crate) fn register(
    builder: &mut SessionBuilder,
    accelerator: &Accelerator,
    allow_cpu_fallback: bool,
) -> Result<Provider, ProviderFailure> {
    let (device, wanted, tensorrt_options, cuda_options) = match accelerator {
        Accelerator::Cpu => return Ok(Provider::Cpu),
        Accelerator::Cuda { device, cuda } => (*device, &[Provider::Cuda][..], None, *cuda),
        Accelerator::TensorRt {
            device,
            options,
            cuda,
        } => (
            *device,
            &[Provider::TensorRt, Provider::Cuda][..],
            Some(options),
            *cuda,
        ),
    };
    let mut active = None;
    for &provider in wanted {
        let registered = match (provider, tensorrt_options) {
            (Provider::TensorRt, Some(options)) => tensorrt(device, options).register(builder),
            _ => cuda(device, cuda_options).register(builder),
        };
        match registered {
            Ok(()) => {
                active.get_or_insert(provider);
            }
            Err(error) if !allow_cpu_fallback => {
                return Err(ProviderFailure {
                    provider,
                    message: error.to_string(),
                });
            }
            Err(_) => {}
        }
    }
    Ok(active.unwrap_or(Provider::Cpu))
}

/// The CUDA provider for `device` with `options`.
fn cuda(device: i32, options: CudaOptions) -> ep::CUDA {
    let search = match options.conv_algo_search {
        ConvAlgoSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
        ConvAlgoSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
        ConvAlgoSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
    };
    ep::CUDA::default()
        .with_device_id(device)
        .with_conv_algorithm_search(search)
}

/// The TensorRT provider for `device` with `options`; the timing cache shares the engine
/// cache's folder.
fn tensorrt(device: i32, options: &TensorRtOptions) -> ep::TensorRT {
    let mut provider = ep::TensorRT::default()
        .with_device_id(device)
        .with_fp16(options.fp16);
    if let Some(path) = &options.engine_cache_path {
        provider = provider
            .with_engine_cache(true)
            .with_engine_cache_path(path)
            .with_timing_cache(true)
            .with_timing_cache_path(path);
    }
    if let Some(bytes) = options.max_workspace_bytes {
        provider = provider.with_max_workspace_size(bytes);
    }
    provider
}

/// Pinned host memory for one GPU session: inputs are written into it and outputs land in it,
/// so each copy between host and GPU is one DMA transfer rather than a staged copy from
/// pageable memory.
pub(crate) struct PinnedIo {
    /// Allocates the input tensors.
    pub allocator: Allocator,
    /// Where onnxruntime puts the outputs (bound per run).
    pub outputs: MemoryInfo<'static>,
}

impl PinnedIo {
    /// The session's CUDA pinned allocator (the CUDA provider registers one).
    pub fn new(session: &Session) -> ort::Result<PinnedIo> {
        // onnxruntime keys its pinned allocator by device 0 whatever GPU the session uses.
        let pinned = |kind| {
            MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                0,
                AllocatorType::Device,
                kind,
            )
        };
        Ok(PinnedIo {
            allocator: Allocator::new(session, pinned(MemoryType::CPUInput)?)?,
            outputs: pinned(MemoryType::CPUOutput)?,
        })
    }
}

/// Whether memory of `device` can be read by the CPU: onnxruntime's CPU allocator or CUDA's
/// pinned host memory (the only two the engine asks outputs to be put in).
pub(crate) fn host_readable(device: &AllocationDevice<'_>) -> bool {
    let name = device.as_str();
    name == AllocationDevice::CPU.as_str() || name == AllocationDevice::CUDA_PINNED.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cpu_and_pinned_memory_are_read_by_the_host() {
        assert!(host_readable(&AllocationDevice::CPU));
        assert!(host_readable(&AllocationDevice::CUDA_PINNED));
        assert!(!host_readable(&AllocationDevice::CUDA));
    }

    #[test]
    fn providers_are_named_as_onnxruntime_names_them() {
        let names = [Provider::Cpu, Provider::Cuda, Provider::TensorRt].map(Provider::name);
        assert_eq!(
            names,
            [
                "CPUExecutionProvider",
                "CUDAExecutionProvider",
                "TensorrtExecutionProvider"
            ]
        );
    }
}
