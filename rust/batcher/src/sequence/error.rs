//! `SequenceError`: why the sequence batcher refused a request, in Triton's words where Triton
//! has them.

use crate::ErrorKind;
use crate::sequence::CorrelationId;

/// Why a request was refused, in Triton's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// No `sequence_id`, or 0 or "".
    #[error(
        "inference request to model '{model}' must specify a non-zero or non-empty correlation ID"
    )]
    NoCorrelationId {
        /// Model name.
        model: String,
    },
    /// A request without START for a sequence that is not running (never started, ended, or
    /// released after being idle).
    #[error(
        "inference request for sequence {id} to model '{model}' must specify the START flag on the first request of the sequence"
    )]
    NotStarted {
        /// Model name.
        model: String,
        /// The request's correlation id.
        id: CorrelationId,
    },
    /// A request of more than one row (Triton's sequence batcher takes batch-size 1 only).
    #[error(
        "inference request to model '{model}' must specify batch-size 1 due to requirements of sequence batcher"
    )]
    BatchSize {
        /// Model name.
        model: String,
    },
    /// The scheduler holds `limit` requests already, waiting for a slot or for their
    /// sequence's turn (Triton has no such bound; ours keeps memory bounded).
    #[error(
        "model '{model}': its sequence batcher holds {limit} requests already, waiting for a \
         slot or for their sequence's turn; retry later, end idle sequences, or raise the \
         server's --default-max-queue-size"
    )]
    Full {
        /// Model name.
        model: String,
        /// The bound (`SequenceConfig::max_held`).
        limit: usize,
    },
    /// The model is unloading.
    #[error("model '{model}' is unloading: its sequence batcher takes no new requests")]
    Closed {
        /// Model name.
        model: String,
    },
}

impl SequenceError {
    /// The category a transport maps to its status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SequenceError::Closed { .. } => ErrorKind::Unavailable,
            SequenceError::Full { .. } => ErrorKind::ResourceExhausted,
            _ => ErrorKind::InvalidInput,
        }
    }
}
