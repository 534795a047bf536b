//! The batcher's one error enum, and the protocol-level kind each variant maps to.

use thiserror::Error;

/// The protocol status a batcher error maps to (the bindings turn it into an exception class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or configuration is malformed (gRPC INVALID_ARGUMENT).
    InvalidInput,
    /// A queue limit was hit (gRPC RESOURCE_EXHAUSTED).
    ResourceExhausted,
    /// The queue no longer accepts requests (gRPC UNAVAILABLE).
    Unavailable,
    /// The caller broke an invariant of the batcher (gRPC INTERNAL).
    Internal,
}

/// Why the batcher refused a configuration, a request or an output.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// The dynamic batching configuration is inconsistent.
    #[error("model '{model}': invalid dynamic_batching configuration: {reason}")]
    InvalidConfig {
        /// The model.
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// The request's inputs and shapes do not pair up.
    #[error("model '{model}': request has {inputs} input buffers but {shapes} shapes")]
    InputCount {
        /// The model.
        model: String,
        /// Buffers given.
        inputs: usize,
        /// Shapes given.
        shapes: usize,
    },
    /// A shape has a negative dimension.
    #[error("model '{model}': input {input} has dimension {dim} at position {index}")]
    NegativeDim {
        /// The model.
        model: String,
        /// Input position.
        input: usize,
        /// Dimension position.
        index: usize,
        /// The value.
        dim: i64,
    },
    /// A batching model got an input without a batch dimension.
    #[error("model '{model}': input {input} has no batch dimension (max_batch_size > 0)")]
    MissingBatchDim {
        /// The model.
        model: String,
        /// Input position.
        input: usize,
    },
    /// The inputs of one request disagree on the batch dimension.
    #[error(
        "model '{model}': input {input} has batch dimension {dim} but input 0 has {first}; all inputs of a request share dim 0"
    )]
    BatchDimMismatch {
        /// The model.
        model: String,
        /// Input position.
        input: usize,
        /// Its dim 0.
        dim: i64,
        /// Input 0's dim 0.
        first: i64,
    },
    /// The request's batch dimension is 0 or above max_batch_size.
    #[error("model '{model}': batch size {rows} is outside 1..={max_batch_size}")]
    BatchSize {
        /// The model.
        model: String,
        /// The request's dim 0.
        rows: i64,
        /// The model's max_batch_size.
        max_batch_size: usize,
    },
    /// The priority level's queue holds max_queue_size requests already.
    #[error(
        "model '{model}': queue of priority level {level} is full ({max_queue_size} requests \
         queued); retry later, or raise its max_queue_size (config.pbtxt dynamic_batching) or \
         the server's --default-max-queue-size"
    )]
    QueueFull {
        /// The model.
        model: String,
        /// The level (1 = highest).
        level: u32,
        /// Its max_queue_size.
        max_queue_size: u32,
    },
    /// `close` was called: the model is unloading.
    #[error("model '{model}' is not accepting requests: its queue is closed")]
    Closed {
        /// The model.
        model: String,
    },
    /// An output's dim 0 is not the batch's total rows.
    #[error(
        "model '{model}': output has {actual} rows in dim 0 but the batch has {expected}; cannot split it per request"
    )]
    OutputRows {
        /// The model.
        model: String,
        /// The batch's total rows.
        expected: usize,
        /// The output's dim 0.
        actual: usize,
    },
    /// An output's byte length is not a whole number of rows.
    #[error("model '{model}': output of {bytes} bytes is not {rows} equal rows")]
    OutputNotRows {
        /// The model.
        model: String,
        /// Output length.
        bytes: usize,
        /// Rows it should hold.
        rows: usize,
    },
    /// A BYTES output does not hold its elements in equal rows of whole elements.
    #[error(
        "model '{model}': BYTES output of {bytes} bytes does not hold {elements} elements in {rows} equal rows"
    )]
    OutputElements {
        /// The model.
        model: String,
        /// Output length.
        bytes: usize,
        /// Elements its shape says it holds.
        elements: usize,
        /// Rows it should hold.
        rows: usize,
    },
}

impl BatchError {
    /// The protocol status this error maps to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BatchError::InvalidConfig { .. }
            | BatchError::InputCount { .. }
            | BatchError::NegativeDim { .. }
            | BatchError::MissingBatchDim { .. }
            | BatchError::BatchDimMismatch { .. }
            | BatchError::BatchSize { .. } => ErrorKind::InvalidInput,
            BatchError::QueueFull { .. } => ErrorKind::ResourceExhausted,
            BatchError::Closed { .. } => ErrorKind::Unavailable,
            BatchError::OutputRows { .. }
            | BatchError::OutputNotRows { .. }
            | BatchError::OutputElements { .. } => ErrorKind::Internal,
        }
    }
}
