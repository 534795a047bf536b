//! The one error type of this crate; every variant says which element or dimension is wrong.

use thiserror::Error;

/// Why a tensor's datatype, shape or raw bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TensorError {
    /// The datatype string is not one of the KServe v2 names.
    #[error(
        "unknown datatype '{0}' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES)"
    )]
    UnknownDatatype(String),
    /// BYTES tensors have no size implied by their shape.
    #[error("BYTES tensors are variable size: their byte size does not follow from the shape")]
    VariableSize,
    /// A dimension is negative (wildcards must be resolved before sizing a tensor).
    #[error("dimension {index} is {dim}: dimensions must be >= 0")]
    NegativeDim {
        /// Position of the dimension in the shape.
        index: usize,
        /// The offending value.
        dim: i64,
    },
    /// The element count or byte size does not fit in memory addresses.
    #[error("shape {shape:?} is too large: its byte size overflows")]
    SizeOverflow {
        /// The shape that overflowed.
        shape: Vec<i64>,
    },
    /// Fewer than 4 bytes are left where element `index`'s length prefix should start.
    #[error("truncated length prefix at element {index}: {remaining} bytes left, 4 needed")]
    TruncatedLengthPrefix {
        /// Element whose prefix is cut short.
        index: usize,
        /// Bytes left in the buffer.
        remaining: usize,
    },
    /// Element `index` claims more bytes than the buffer has left.
    #[error("element {index} claims {claimed} bytes but only {remaining} remain")]
    ElementOverrun {
        /// Element whose length is too large.
        index: usize,
        /// Length from its prefix.
        claimed: usize,
        /// Bytes left after its prefix.
        remaining: usize,
    },
    /// Bytes left over after the last expected element that do not form whole elements.
    #[error("{trailing} trailing bytes after the last element ({count} elements)")]
    TrailingBytes {
        /// Elements decoded.
        count: usize,
        /// Bytes left after them.
        trailing: usize,
    },
    /// The buffer holds whole elements, but not as many as the shape says.
    #[error("count mismatch: expected {expected} elements, got {actual}")]
    CountMismatch {
        /// Elements the shape implies.
        expected: usize,
        /// Elements the buffer holds.
        actual: usize,
    },
    /// An element too long for the u32 length prefix (4 GiB or more).
    #[error("element {index} is {length} bytes: BYTES elements must be shorter than 4 GiB")]
    ElementTooLarge {
        /// Element that is too long.
        index: usize,
        /// Its length.
        length: usize,
    },
    /// Element `index` is not UTF-8 text (onnxruntime string tensors hold UTF-8).
    #[error("element {index} is not valid UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Element that is not text.
        index: usize,
        /// Bytes of the element that are valid UTF-8 before the first invalid one.
        valid_up_to: usize,
    },
}
