//! What can go wrong loading or running a model.

/// An onnxruntime or model error, with the message onnxruntime gave.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The onnxruntime library could not be loaded or initialised.
    #[error("cannot load onnxruntime from {path}: {message}")]
    Library {
        /// The library file.
        path: String,
        /// Why.
        message: String,
    },
    /// onnxruntime refused the model file or the session options.
    #[error("onnxruntime cannot load {path}: {message}")]
    Load {
        /// The model file.
        path: String,
        /// onnxruntime's message.
        message: String,
    },
    /// A requested execution provider (CUDA, TensorRT) could not start: no GPU, its libraries
    /// missing, a device that does not exist.
    #[error("{provider} could not start: {message}")]
    Provider {
        /// onnxruntime's name for the provider.
        provider: &'static str,
        /// onnxruntime's message.
        message: String,
    },
    /// The graph has a tensor this engine does not run (sequences, maps, element types
    /// without a v2 datatype, ...).
    #[error("{kind} '{name}' has type {onnx_type}, which the native engine does not run")]
    Unsupported {
        /// "input" or "output".
        kind: &'static str,
        /// The tensor's name.
        name: String,
        /// Its ONNX type.
        onnx_type: String,
    },
    /// The inputs do not fit the model (count, byte size).
    #[error("{0}")]
    Input(String),
    /// onnxruntime failed while running.
    #[error("{0}")]
    Run(String),
}

impl From<ferroserve_tensor::TensorError> for RuntimeError {
    fn from(error: ferroserve_tensor::TensorError) -> Self {
        RuntimeError::Input(error.to_string())
    }
}

impl From<ort::Error> for RuntimeError {
    fn from(error: ort::Error) -> Self {
        RuntimeError::Run(error.to_string())
    }
}
