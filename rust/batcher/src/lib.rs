//! Triton's dynamic batcher in pure Rust: a per-model queue that executor threads (one per model
//! instance) drain with `next_batch`, batch forming (size, delay, preferred sizes, priorities,
//! queue policies and deadlines), concatenation of the batch's inputs and splitting of outputs
//! (BYTES outputs by their length prefixes), Triton `ModelStatistics` counters and the latency
//! histograms the metrics sidecar exports.
//! Stateful models add `SequenceScheduler` in front of the queue (Triton's sequence batcher:
//! correlation ids, slots, backlog, idle timeout), which releases each sequence's requests
//! into it one at a time.
//! Requests are submitted by the native gRPC front end (`ferroserve-frontend`) and by Python
//! through the bindings; batches are taken by the native engine's executor threads
//! (`ferroserve-runtime`) and by Python's. It knows nothing of Python.

mod batch;
mod config;
mod error;
mod forming;
mod histogram;
mod level;
mod queue;
mod sequence;
mod stats;

pub use batch::{Batch, BatchData, BatchInput, OutputSplitter, row_ranges};
pub use config::{BatcherConfig, QueuePolicy, TimeoutAction};
pub use error::{BatchError, ErrorKind};
pub use histogram::{DURATION_BOUNDS_NS, Histogram, HistogramSnapshot};
pub use queue::{BatchQueue, NextBatch, Request};
pub use sequence::{
    Admission, Controls, CorrelationId, Released, SequenceConfig, SequenceError, SequenceScheduler,
};
pub use stats::{
    BatchSizeSnapshot, DurationSnapshot, HistogramsSnapshot, Outcome, Statistics,
    StatisticsSnapshot,
};
