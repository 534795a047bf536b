//! Model execution without Python. `Model` runs an ONNX model through onnxruntime's C API (the
//! library the onnxruntime wheel ships, loaded at run time); `serve` is an executor thread's
//! loop: take a batch from the batcher, run it, split the outputs, and hand every answer to a
//! `Completions` queue whose pipe wakes the event loop. No step needs the GIL, so executor
//! threads never make the event loop wait for it.

mod completions;
mod error;
mod executor;
mod layout;
mod model;
mod waiter;

pub use completions::{Answer, Completed, Completions, Failure};
pub use error::RuntimeError;
pub use executor::{Engine, Executor, InputTensor, OutputTensor};
pub use layout::Layout;
pub use model::{Model, OptimizationLevel, SessionSettings, TensorInfo};
pub use waiter::{Deliver, NativeAnswer, Routed, Waiter};
