//! Model execution without Python (the native engine). `Model` runs an ONNX model through
//! onnxruntime's C API (the library the onnxruntime wheel ships, loaded at run time), one session
//! per instance, with tensors of every v2 datatype (string tensors as BYTES); `Executor` starts
//! one thread per instance that takes a batch from the batcher, runs it on an `Engine` (a
//! `Model`, or a stand-in in tests), splits the outputs and hands each answer to its request's
//! `Waiter`: a channel for a request the native gRPC front end queued, or a `Completions` queue
//! whose pipe wakes the event loop for one Python queued, in queue order for a
//! `preserve_ordering` model (`InOrder`). A model version with looked-up features gathers each
//! batch's model inputs from its feature store first (`FeatureJoin`); one with a drift profile
//! counts every executed batch's inputs and outputs into its tracker (`DriftTap`). No step needs the GIL, so executor threads never make
//! the event loop wait for it.

mod accelerator;
mod completions;
mod drift;
mod error;
mod executor;
mod features;
mod in_order;
mod layout;
mod model;
mod session;
mod strings;
mod tensor_info;
mod waiter;

pub use accelerator::{Accelerator, ConvAlgoSearch, CudaOptions, Provider, TensorRtOptions};
pub use completions::{Answer, Completed, Completions, Failure, Timing};
pub use drift::DriftTap;
pub use error::RuntimeError;
pub use executor::{Engine, Executor, InputTensor, OutputTensor};
pub use features::FeatureJoin;
pub use in_order::InOrder;
pub use layout::{Layout, Reshape};
pub use model::{Model, ModelOutput};
pub use session::{OptimizationLevel, SessionSettings};
pub use tensor_info::TensorInfo;
pub use waiter::{Deliver, NativeAnswer, Routed, Waiter};
