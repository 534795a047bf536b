//! `QueuePolicy` and `BatchQueue`: the Rust dynamic batcher with Python bytes as input buffers
//! and any Python object (an asyncio future, typically) as the request token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_batcher::{
    self as batcher, BatcherConfig, DurationSnapshot, HistogramSnapshot, NextBatch, Outcome,
    Request, TimeoutAction,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMapping};

use crate::batch::Batch;
use crate::exceptions::{InvalidInputError, OrRaise, UnavailableError};
use crate::gil::{Work, without_gil};
use crate::wire::InferRequestView;
use ferroserve_runtime::{ModelOutput, Waiter};

/// What `submit` accepts as a request's inputs.
#[derive(FromPyObject)]
pub(crate) enum SubmittedInputs<'py> {
    /// A bytes object per input.
    Buffers(Vec<Bound<'py, PyBytes>>),
    /// A parsed request message: its raw input contents, in place.
    Message(PyRef<'py, InferRequestView>),
}

impl SubmittedInputs<'_> {
    /// The inputs, held for use without the GIL.
    pub(crate) fn hold(&self, py: Python<'_>) -> Vec<HeldBytes> {
        match self {
            SubmittedInputs::Buffers(buffers) => buffers.iter().map(HeldBytes::new).collect(),
            SubmittedInputs::Message(view) => view.raw_inputs(py),
        }
    }
}

/// What keeps a queued input's bytes alive.
enum Owner {
    /// A Python bytes object (the Python path).
    Python(Py<PyBytes>),
    /// A received message (the native front end); only held, `data` points into it.
    Native(#[allow(dead_code)] bytes::Bytes),
}

/// A queued request's input bytes, readable without the GIL: part of a Python bytes object or
/// of a message the native front end received.
pub(crate) struct HeldBytes {
    /// Keeps the buffer alive.
    object: Owner,
    /// Start of the held, immutable bytes.
    data: *const u8,
    /// Their length.
    len: usize,
}

// SAFETY: `data` points into the buffer of a bytes object or of a `bytes::Bytes` that `object`
// keeps alive; both are immutable and never move their buffer, so reading it from any thread,
// with or without the GIL, is sound. `Py<PyBytes>` and `Bytes` are Send and Sync.
unsafe impl Send for HeldBytes {}
// SAFETY: see `Send`: the buffer is only ever read.
unsafe impl Sync for HeldBytes {}

impl HeldBytes {
    /// Holds `bytes` and remembers where its buffer is.
    fn new(bytes: &Bound<'_, PyBytes>) -> Self {
        let slice = bytes.as_bytes();
        HeldBytes {
            object: Owner::Python(bytes.clone().unbind()),
            data: slice.as_ptr(),
            len: slice.len(),
        }
    }

    /// Holds the part `range` of `bytes` (a raw input inside a whole request message).
    pub(crate) fn slice(bytes: &Bound<'_, PyBytes>, range: std::ops::Range<usize>) -> Self {
        let slice = &bytes.as_bytes()[range];
        HeldBytes {
            object: Owner::Python(bytes.clone().unbind()),
            data: slice.as_ptr(),
            len: slice.len(),
        }
    }

    /// A bytes object with exactly these bytes: the held object itself, or a copy of the part
    /// of it that is held.
    pub(crate) fn into_object(self, py: Python<'_>) -> Py<PyBytes> {
        match self.object {
            Owner::Python(object) if object.bind(py).as_bytes().len() == self.len => object,
            _ => PyBytes::new(py, self.as_ref()).unbind(),
        }
    }
}

impl ferroserve_frontend::MessageInput for HeldBytes {
    fn from_message(message: &bytes::Bytes, range: std::ops::Range<usize>) -> Self {
        let part = message.slice(range);
        HeldBytes {
            data: part.as_ptr(),
            len: part.len(),
            object: Owner::Native(part),
        }
    }
}

impl AsRef<[u8]> for HeldBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data`/`len` describe the live, immutable buffer `object` keeps (see
        // `Send`); neither CPython nor `Bytes` gives a null pointer, even for empty data.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// Who waits for a queued request: a Python future (answered through the event loop's pipe)
/// or the native front end (answered from the executor thread).
pub(crate) type PyWaiter = Waiter<Py<PyAny>, ModelOutput>;

/// The Rust queue with Python types plugged in.
pub(crate) type Queue = batcher::BatchQueue<HeldBytes, PyWaiter>;

/// Triton `ModelQueuePolicy` of one priority level.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct QueuePolicy {
    /// The Rust policy.
    policy: batcher::QueuePolicy,
}

#[pymethods]
impl QueuePolicy {
    #[new]
    #[pyo3(signature = (timeout_action = "REJECT", default_timeout_us = 0, allow_timeout_override = false, max_queue_size = 0))]
    fn new(
        timeout_action: &str,
        default_timeout_us: u64,
        allow_timeout_override: bool,
        max_queue_size: u32,
    ) -> PyResult<Self> {
        let timeout_action = match timeout_action {
            "REJECT" => TimeoutAction::Reject,
            "DELAY" => TimeoutAction::Delay,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "timeout_action must be 'REJECT' or 'DELAY', got '{other}'"
                )));
            }
        };
        Ok(QueuePolicy {
            policy: batcher::QueuePolicy {
                timeout_action,
                default_timeout_us,
                allow_timeout_override,
                max_queue_size,
            },
        })
    }

    /// "REJECT" or "DELAY".
    #[getter]
    fn timeout_action(&self) -> &'static str {
        match self.policy.timeout_action {
            TimeoutAction::Reject => "REJECT",
            TimeoutAction::Delay => "DELAY",
        }
    }

    /// Queue timeout in microseconds (0: none).
    #[getter]
    fn default_timeout_us(&self) -> u64 {
        self.policy.default_timeout_us
    }

    /// Whether a request's own timeout replaces the default.
    #[getter]
    fn allow_timeout_override(&self) -> bool {
        self.policy.allow_timeout_override
    }

    /// Most requests queued at the level (0: unbounded).
    #[getter]
    fn max_queue_size(&self) -> u32 {
        self.policy.max_queue_size
    }

    fn __repr__(&self) -> String {
        format!(
            "QueuePolicy(timeout_action='{}', default_timeout_us={}, allow_timeout_override={}, max_queue_size={})",
            self.timeout_action(),
            self.policy.default_timeout_us,
            if self.policy.allow_timeout_override {
                "True"
            } else {
                "False"
            },
            self.policy.max_queue_size
        )
    }
}

/// A non-negative integer argument, or InvalidInputError naming it.
fn non_negative<T: TryFrom<i64>>(name: &str, value: i64) -> PyResult<T> {
    T::try_from(value).map_err(|_| {
        InvalidInputError::new_err(format!(
            "{name} must be a non-negative integer that fits, got {value}"
        ))
    })
}

/// Seconds as a Duration: negative means zero, infinite or huge means `None` (no limit).
fn seconds(name: &str, value: f64) -> PyResult<Option<Duration>> {
    if value.is_nan() {
        return Err(InvalidInputError::new_err(format!(
            "{name} must be a number, got NaN"
        )));
    }
    Ok(Duration::try_from_secs_f64(value.max(0.0)).ok())
}

/// One model's dynamic-batching queue (Triton `dynamic_batching`).
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct BatchQueue {
    /// The Rust queue; its lock is never held while Python code runs. Shared with native
    /// executor threads.
    queue: Arc<Queue>,
}

impl BatchQueue {
    /// The Rust queue, for executor threads.
    pub(crate) fn shared(&self) -> Arc<Queue> {
        Arc::clone(&self.queue)
    }
}

#[pymethods]
impl BatchQueue {
    #[new]
    #[pyo3(signature = (model, max_batch_size, *, preferred_batch_sizes = Vec::new(), max_queue_delay_us = 0, priority_levels = 0, default_priority_level = 0, default_policy = None, priority_policies = None, preserve_ordering = false))]
    #[pyo3(
        text_signature = "(model, max_batch_size, *, preferred_batch_sizes=(), max_queue_delay_us=0, priority_levels=0, default_priority_level=0, default_policy=None, priority_policies=None, preserve_ordering=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        model: String,
        max_batch_size: i64,
        preferred_batch_sizes: Vec<i64>,
        max_queue_delay_us: i64,
        priority_levels: i64,
        default_priority_level: i64,
        default_policy: Option<PyRef<'_, QueuePolicy>>,
        priority_policies: Option<&Bound<'_, PyMapping>>,
        preserve_ordering: bool,
    ) -> PyResult<Self> {
        let mut policies = BTreeMap::new();
        if let Some(mapping) = priority_policies {
            for item in mapping.items()?.iter() {
                let (level, policy): (i64, PyRef<'_, QueuePolicy>) = item.extract()?;
                policies.insert(
                    non_negative("priority_policies level", level)?,
                    policy.policy,
                );
            }
        }
        let config = BatcherConfig {
            max_batch_size: non_negative("max_batch_size", max_batch_size)?,
            preferred_batch_sizes: preferred_batch_sizes
                .into_iter()
                .map(|size| non_negative("preferred_batch_sizes", size))
                .collect::<PyResult<_>>()?,
            max_queue_delay: Duration::from_micros(non_negative(
                "max_queue_delay_us",
                max_queue_delay_us,
            )?),
            priority_levels: non_negative("priority_levels", priority_levels)?,
            default_priority_level: non_negative("default_priority_level", default_priority_level)?,
            default_policy: default_policy
                .map(|policy| policy.policy)
                .unwrap_or_default(),
            priority_policies: policies,
            preserve_ordering,
        };
        Ok(BatchQueue {
            queue: Arc::new(Queue::new(model, config).or_raise()?),
        })
    }

    /// Queues a request; returns its id. `priority` and `timeout_us` are the request's own
    /// parameters as sent (0: none); the queue applies Triton's rules to them.
    /// `inputs`: one bytes object per input, or the request message whose raw input contents
    /// they are (the fast path: held in place, no copy).
    #[pyo3(signature = (inputs, shapes, token, priority = 0, timeout_us = 0, deadline_s = None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        inputs: SubmittedInputs<'_>,
        shapes: Vec<Vec<i64>>,
        token: Py<PyAny>,
        priority: u64,
        timeout_us: u64,
        deadline_s: Option<f64>,
    ) -> PyResult<u64> {
        let now = Instant::now();
        let deadline = match deadline_s {
            Some(remaining) => seconds("deadline_s", remaining)?.and_then(|d| now.checked_add(d)),
            None => None,
        };
        let request = Request {
            inputs: inputs.hold(py),
            shapes,
            token: Waiter::Host(token),
            priority,
            timeout_us,
            deadline,
        };
        // Not detached: it only takes the queue lock, which no holder keeps while waiting.
        self.queue.submit(request).or_raise()
    }

    /// Waits up to `timeout_s` for a batch, without the GIL.
    fn next_batch(&self, py: Python<'_>, timeout_s: f64) -> PyResult<Option<Batch>> {
        let wait = seconds("timeout_s", timeout_s)?.unwrap_or(Duration::MAX);
        let queue = &self.queue;
        let next = without_gil(py, Work::Blocking, || {
            Ok::<_, std::convert::Infallible>(queue.next_batch(wait))
        })?;
        match next {
            NextBatch::Batch(batch) => Ok(Some(Batch::new(py, batch)?)),
            NextBatch::Timeout => Ok(None),
            NextBatch::Closed => Err(UnavailableError::new_err(format!(
                "model '{}' is not accepting requests: its queue is closed",
                self.queue.model()
            ))),
        }
    }

    /// Removes a queued request; False if it already left the queue or is unknown. Callers go
    /// through their executor's `cancel`, which also withdraws the request from a
    /// `preserve_ordering` model's answer order (else later answers would wait for it).
    fn cancel(&self, request_id: u64) -> bool {
        self.queue.cancel(request_id)
    }

    /// Stops accepting requests; returns the tokens of requests removed without running
    /// (native front-end requests among them learn it from their dropped channel).
    fn close(&self, drain: bool) -> Vec<Py<PyAny>> {
        host_tokens(self.queue.close(drain))
    }

    /// Records one executed batch.
    fn record_execution(
        &self,
        batch_size: usize,
        compute_input_ns: u64,
        compute_infer_ns: u64,
        compute_output_ns: u64,
    ) {
        self.queue.record_execution(
            batch_size,
            compute_input_ns,
            compute_infer_ns,
            compute_output_ns,
        );
    }

    /// Records one request that ran at once on the caller's thread without queueing: it
    /// counts as queued for 0 ns, so queue counts still match request counts (Triton).
    fn record_unqueued(&self) {
        self.queue
            .statistics()
            .record_queue(&std::time::Duration::ZERO);
    }

    /// Records one finished request, end to end; `outcome` indexes `REQUEST_OUTCOMES`.
    fn record_request(&self, outcome: usize, duration_ns: u64) -> PyResult<()> {
        let outcome = Outcome::ALL.get(outcome).copied().ok_or_else(|| {
            PyValueError::new_err(format!(
                "outcome {outcome} is not an index of REQUEST_OUTCOMES (0..{})",
                Outcome::ALL.len()
            ))
        })?;
        self.queue.record_request(outcome, duration_ns);
        Ok(())
    }

    /// Triton ModelStatistics counters (keys documented in _core.pyi).
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.queue.statistics().snapshot();
        let pair = |d: DurationSnapshot| (d.count, d.ns);
        let dict = PyDict::new(py);
        dict.set_item("model", self.queue.model())?;
        dict.set_item("inference_count", stats.inference_count)?;
        dict.set_item("execution_count", stats.execution_count)?;
        dict.set_item("last_inference_ms", stats.last_inference_ms)?;
        dict.set_item("pending", stats.pending)?;
        dict.set_item("success", pair(stats.success))?;
        dict.set_item("fail", pair(stats.fail))?;
        dict.set_item("queue", pair(stats.queue))?;
        dict.set_item("compute_input", pair(stats.compute_input))?;
        dict.set_item("compute_infer", pair(stats.compute_infer))?;
        dict.set_item("compute_output", pair(stats.compute_output))?;
        let batches = PyDict::new(py);
        for (size, entry) in stats.batch_stats {
            let per_size = PyDict::new(py);
            per_size.set_item("compute_input", pair(entry.compute_input))?;
            per_size.set_item("compute_infer", pair(entry.compute_infer))?;
            per_size.set_item("compute_output", pair(entry.compute_output))?;
            batches.set_item(size, per_size)?;
        }
        dict.set_item("batch_stats", batches)?;
        let outcomes = PyDict::new(py);
        for (outcome, count) in Outcome::ALL.iter().zip(stats.outcomes) {
            outcomes.set_item(outcome.name(), count)?;
        }
        dict.set_item("outcomes", outcomes)?;
        let histogram = |h: HistogramSnapshot| (h.counts, h.sum_ns);
        let histograms = PyDict::new(py);
        let all = stats.histograms;
        histograms.set_item("request", histogram(all.request))?;
        histograms.set_item("queue", histogram(all.queue))?;
        histograms.set_item("compute_input", histogram(all.compute_input))?;
        histograms.set_item("compute_infer", histogram(all.compute_infer))?;
        histograms.set_item("compute_output", histogram(all.compute_output))?;
        dict.set_item("histograms", histograms)?;
        Ok(dict)
    }

    /// Requests waiting in the queue.
    #[getter]
    fn pending(&self) -> usize {
        self.queue.pending()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Whether answers must go back in the order requests were queued (`preserve_ordering`;
    /// the executor delivering them keeps it).
    #[getter]
    fn preserve_ordering(&self) -> bool {
        self.queue.config().preserve_ordering
    }

    /// The model name.
    #[getter]
    fn model(&self) -> &str {
        self.queue.model()
    }

    fn __repr__(&self) -> String {
        let config = self.queue.config();
        format!(
            "BatchQueue(model='{}', max_batch_size={}, pending={})",
            self.queue.model(),
            config.max_batch_size,
            self.queue.pending()
        )
    }
}

/// The Python tokens among `waiters`; native waiters are dropped, which tells their callers the
/// request ended without an answer.
pub(crate) fn host_tokens(waiters: Vec<PyWaiter>) -> Vec<Py<PyAny>> {
    waiters
        .into_iter()
        .filter_map(|waiter| match waiter {
            Waiter::Host(token) => Some(token),
            Waiter::Native(_) => None,
        })
        .collect()
}
