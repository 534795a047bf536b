//! Triton `ModelStatistics` counters (grpc_service.proto: InferStatistics, InferBatchStatistics),
//! plus the histograms and failure reasons the metrics sidecar exports; plain atomics so that
//! executors and the transport record without taking the queue lock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::histogram::{Histogram, HistogramSnapshot, duration_histogram};

/// Batch sizes up to this get lock-free per-size slots; larger ones share a mutex-guarded map.
const SLOTS: usize = 1024;

/// How a request ended; the metrics sidecar exports failures by this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Success,
    /// Refused at once: the queue was full.
    Rejected,
    /// Its queue timeout or client deadline passed before it ran.
    Timeout,
    /// The client went away first.
    Cancelled,
    /// Its inputs did not match the model.
    Invalid,
    /// The model was unloading or unavailable.
    Unavailable,
    /// onnxruntime or the server failed.
    Internal,
}

impl Outcome {
    /// Every outcome, in the order of `Outcome::index`.
    pub const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::Rejected,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Invalid,
        Outcome::Unavailable,
        Outcome::Internal,
    ];

    /// The label value exported for this outcome.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Invalid => "invalid",
            Outcome::Unavailable => "unavailable",
            Outcome::Internal => "internal",
        }
    }

    /// The position of this outcome in `Outcome::ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Latency histograms of one model queue, read at one moment (the metrics sidecar's data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramsSnapshot {
    /// Every finished request, end to end (failures included).
    pub request: HistogramSnapshot,
    /// Time queued, per request that left the queue to run.
    pub queue: HistogramSnapshot,
    /// Input preparation, per execution.
    pub compute_input: HistogramSnapshot,
    /// Model execution, per execution.
    pub compute_infer: HistogramSnapshot,
    /// Output extraction, per execution.
    pub compute_output: HistogramSnapshot,
}

/// The live histograms behind `HistogramsSnapshot`, each over `DURATION_BOUNDS_NS`.
#[derive(Debug)]
struct Histograms {
    /// See `HistogramsSnapshot::request`.
    request: Histogram,
    /// See `HistogramsSnapshot::queue`.
    queue: Histogram,
    /// See `HistogramsSnapshot::compute_input`.
    compute_input: Histogram,
    /// See `HistogramsSnapshot::compute_infer`.
    compute_infer: Histogram,
    /// See `HistogramsSnapshot::compute_output`.
    compute_output: Histogram,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            request: duration_histogram(),
            queue: duration_histogram(),
            compute_input: duration_histogram(),
            compute_infer: duration_histogram(),
            compute_output: duration_histogram(),
        }
    }
}

impl Histograms {
    /// The current values.
    fn snapshot(&self) -> HistogramsSnapshot {
        HistogramsSnapshot {
            request: self.request.snapshot(),
            queue: self.queue.snapshot(),
            compute_input: self.compute_input.snapshot(),
            compute_infer: self.compute_infer.snapshot(),
            compute_output: self.compute_output.snapshot(),
        }
    }
}

/// A count and a total duration (Triton `StatisticDuration`).
#[derive(Debug, Default)]
struct DurationStat {
    /// Events recorded.
    count: AtomicU64,
    /// Their total duration in nanoseconds.
    ns: AtomicU64,
}

impl DurationStat {
    /// Adds `count` events totalling `ns` nanoseconds.
    fn add(&self, count: u64, ns: u64) {
        self.count.fetch_add(count, Ordering::Relaxed);
        self.ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The current values.
    fn snapshot(&self) -> DurationSnapshot {
        DurationSnapshot {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

/// A count and a total duration, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationSnapshot {
    /// Events recorded.
    pub count: u64,
    /// Their total duration in nanoseconds.
    pub ns: u64,
}

impl DurationSnapshot {
    /// Adds one event of `ns` nanoseconds.
    fn add(&mut self, ns: u64) {
        self.count += 1;
        self.ns = self.ns.saturating_add(ns);
    }
}

/// Per-batch-size counters (Triton `InferBatchStatistics`); each count is executions.
#[derive(Debug, Default)]
struct BatchSizeStat {
    /// Input preparation.
    compute_input: DurationStat,
    /// Model execution.
    compute_infer: DurationStat,
    /// Output extraction.
    compute_output: DurationStat,
}

/// Per-batch-size statistics, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSizeSnapshot {
    /// Input preparation of batches of this size.
    pub compute_input: DurationSnapshot,
    /// Model execution of batches of this size.
    pub compute_infer: DurationSnapshot,
    /// Output extraction of batches of this size.
    pub compute_output: DurationSnapshot,
}

/// Statistics of one model queue, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatisticsSnapshot {
    /// Rows inferred (sum of executed batch sizes).
    pub inference_count: u64,
    /// Batches executed.
    pub execution_count: u64,
    /// Requests that succeeded, and their end-to-end time.
    pub success: DurationSnapshot,
    /// Requests that failed, and their end-to-end time.
    pub fail: DurationSnapshot,
    /// Requests that left the queue in a batch, and their time queued.
    pub queue: DurationSnapshot,
    /// Executions and their input preparation time.
    pub compute_input: DurationSnapshot,
    /// Executions and their model execution time.
    pub compute_infer: DurationSnapshot,
    /// Executions and their output extraction time.
    pub compute_output: DurationSnapshot,
    /// Per executed batch size.
    pub batch_stats: BTreeMap<usize, BatchSizeSnapshot>,
    /// Requests waiting in the queue.
    pub pending: u64,
    /// When a batch last finished executing, in milliseconds since the Unix epoch (0: never).
    pub last_inference_ms: u64,
    /// Finished requests per `Outcome`, in the order of `Outcome::ALL`.
    pub outcomes: [u64; 7],
    /// Latency histograms.
    pub histograms: HistogramsSnapshot,
}

/// The counters of one model queue.
#[derive(Debug)]
pub struct Statistics {
    /// See `StatisticsSnapshot::inference_count`.
    inference_count: AtomicU64,
    /// See `StatisticsSnapshot::execution_count`.
    execution_count: AtomicU64,
    /// See `StatisticsSnapshot::success`.
    success: DurationStat,
    /// See `StatisticsSnapshot::fail`.
    fail: DurationStat,
    /// See `StatisticsSnapshot::queue`.
    queue: DurationStat,
    /// See `StatisticsSnapshot::compute_input`.
    compute_input: DurationStat,
    /// See `StatisticsSnapshot::compute_infer`.
    compute_infer: DurationStat,
    /// See `StatisticsSnapshot::compute_output`.
    compute_output: DurationStat,
    /// Slot `n` holds batch size `n` for sizes up to `SLOTS` (slot 0 is unused).
    batch_slots: Vec<BatchSizeStat>,
    /// Batch sizes above `SLOTS`.
    batch_large: Mutex<BTreeMap<usize, BatchSizeSnapshot>>,
    /// See `StatisticsSnapshot::pending`.
    pending: AtomicU64,
    /// See `StatisticsSnapshot::last_inference_ms`.
    last_inference_ms: AtomicU64,
    /// See `StatisticsSnapshot::outcomes`.
    outcomes: [AtomicU64; 7],
    /// See `StatisticsSnapshot::histograms`.
    histograms: Histograms,
}

/// Nanoseconds in `duration`, saturating.
fn nanos(duration: &Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Statistics {
    /// Counters for a model batching up to `max_batch_size` rows.
    pub fn new(max_batch_size: usize) -> Self {
        let slots = max_batch_size.clamp(1, SLOTS) + 1;
        Statistics {
            inference_count: AtomicU64::new(0),
            execution_count: AtomicU64::new(0),
            success: DurationStat::default(),
            fail: DurationStat::default(),
            queue: DurationStat::default(),
            compute_input: DurationStat::default(),
            compute_infer: DurationStat::default(),
            compute_output: DurationStat::default(),
            batch_slots: (0..slots).map(|_| BatchSizeStat::default()).collect(),
            batch_large: Mutex::new(BTreeMap::new()),
            pending: AtomicU64::new(0),
            last_inference_ms: AtomicU64::new(0),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            histograms: Histograms::default(),
        }
    }

    /// Records one executed batch of `batch_size` rows and its three phases in nanoseconds.
    pub fn record_execution(
        &self,
        batch_size: usize,
        input_ns: u64,
        infer_ns: u64,
        output_ns: u64,
    ) {
        self.inference_count
            .fetch_add(batch_size as u64, Ordering::Relaxed);
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.compute_input.add(1, input_ns);
        self.compute_infer.add(1, infer_ns);
        self.compute_output.add(1, output_ns);
        self.histograms.compute_input.record(input_ns);
        self.histograms.compute_infer.record(infer_ns);
        self.histograms.compute_output.record(output_ns);
        if let Some(slot) = self.batch_slots.get(batch_size) {
            slot.compute_input.add(1, input_ns);
            slot.compute_infer.add(1, infer_ns);
            slot.compute_output.add(1, output_ns);
        } else {
            let mut large = self
                .batch_large
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = large.entry(batch_size).or_default();
            entry.compute_input.add(input_ns);
            entry.compute_infer.add(infer_ns);
            entry.compute_output.add(output_ns);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        self.last_inference_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Records one finished request, how it ended and its end-to-end duration.
    pub fn record_request(&self, outcome: Outcome, duration_ns: u64) {
        let stat = if outcome == Outcome::Success {
            &self.success
        } else {
            &self.fail
        };
        stat.add(1, duration_ns);
        self.outcomes[outcome.index()].fetch_add(1, Ordering::Relaxed);
        self.histograms.request.record(duration_ns);
    }

    /// Records the time one request spent queued before joining a batch (zero for a request
    /// the caller ran at once without queueing it).
    pub fn record_queue(&self, duration: &Duration) {
        let ns = nanos(duration);
        self.queue.add(1, ns);
        self.histograms.queue.record(ns);
    }

    /// Sets the queued-requests gauge.
    pub(crate) fn set_pending(&self, pending: usize) {
        self.pending.store(pending as u64, Ordering::Relaxed);
    }

    /// All counters. Each is read atomically; together they are a near-consistent view.
    pub fn snapshot(&self) -> StatisticsSnapshot {
        let mut batch_stats: BTreeMap<usize, BatchSizeSnapshot> = self
            .batch_slots
            .iter()
            .enumerate()
            .filter_map(|(size, slot)| {
                let snapshot = BatchSizeSnapshot {
                    compute_input: slot.compute_input.snapshot(),
                    compute_infer: slot.compute_infer.snapshot(),
                    compute_output: slot.compute_output.snapshot(),
                };
                (snapshot.compute_infer.count > 0).then_some((size, snapshot))
            })
            .collect();
        batch_stats.extend(
            self.batch_large
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(&size, &snapshot)| (size, snapshot)),
        );
        StatisticsSnapshot {
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            success: self.success.snapshot(),
            fail: self.fail.snapshot(),
            queue: self.queue.snapshot(),
            compute_input: self.compute_input.snapshot(),
            compute_infer: self.compute_infer.snapshot(),
            compute_output: self.compute_output.snapshot(),
            batch_stats,
            pending: self.pending.load(Ordering::Relaxed),
            last_inference_ms: self.last_inference_ms.load(Ordering::Relaxed),
            outcomes: std::array::from_fn(|i| self.outcomes[i].load(Ordering::Relaxed)),
            histograms: self.histograms.snapshot(),
        }
    }
}
