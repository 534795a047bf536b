//! `CorrelationId`: which sequence a request belongs to.

use std::fmt;

/// A sequence's correlation id: the request's `sequence_id` parameter, an unsigned integer or a
/// string (Triton's `InferenceRequest::SequenceId`). 0 and "" mean "none".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CorrelationId {
    /// An integer id.
    Number(u64),
    /// A string id.
    Text(String),
}

impl CorrelationId {
    /// Whether the request named a sequence at all (Triton's `InSequence`).
    pub fn is_set(&self) -> bool {
        match self {
            CorrelationId::Number(id) => *id != 0,
            CorrelationId::Text(id) => !id.is_empty(),
        }
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorrelationId::Number(id) => write!(f, "{id}"),
            CorrelationId::Text(id) => f.write_str(id),
        }
    }
}
