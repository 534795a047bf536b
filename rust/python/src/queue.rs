//! `QueuePolicy` and `BatchQueue`: the Rust dynamic batcher with Python bytes as input buffers
//! and any Python object (an asyncio future, typically) as the request token. The same queue
//! takes the native front end's requests (`NativeRoute`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_batcher::{
    self as batcher, BatcherConfig, DurationSnapshot, HistogramSnapshot, NextBatch, Outcome,
    Request, TimeoutAction,
};
use ferroserve_runtime::Waiter;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMapping};

use crate::batch::PyBatch;
use crate::exceptions::{InvalidInputError, OrRaise, UnavailableError};
use crate::gil::{Work, without_gil};
use crate::queued::{HeldBytes, Queue, host_tokens};

/// Triton `ModelQueuePolicy` of one priority level.
#[pyclass(name = "QueuePolicy", frozen, module = "ferroserve._core")]
pub(crate) struct PyQueuePolicy {
    /// The Rust policy.
    policy: batcher::QueuePolicy,
}

#[pymethods]
impl PyQueuePolicy {
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
        Ok(PyQueuePolicy {
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
#[pyclass(name = "BatchQueue", frozen, module = "ferroserve._core")]
pub(crate) struct PyBatchQueue {
    /// The Rust queue; its lock is never held while Python code runs. Shared with native
    /// executor threads.
    queue: Arc<Queue>,
}

impl PyBatchQueue {
    /// The Rust queue, for executor threads.
    pub(crate) fn shared(&self) -> Arc<Queue> {
        Arc::clone(&self.queue)
    }
}

#[pymethods]
impl PyBatchQueue {
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
        default_policy: Option<PyRef<'_, PyQueuePolicy>>,
        priority_policies: Option<&Bound<'_, PyMapping>>,
        preserve_ordering: bool,
    ) -> PyResult<Self> {
        let mut policies = BTreeMap::new();
        if let Some(mapping) = priority_policies {
            for item in mapping.items()?.iter() {
                let (level, policy): (i64, PyRef<'_, PyQueuePolicy>) = item.extract()?;
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
        Ok(PyBatchQueue {
            queue: Arc::new(Queue::new(model, config).or_raise()?),
        })
    }

    /// Queues a request; returns its id. `inputs`: one bytes object per input (held, not
    /// copied). `priority` and `timeout_us` are the request's own parameters as sent (0: none);
    /// the queue applies Triton's rules to them.
    #[pyo3(signature = (inputs, shapes, token, priority = 0, timeout_us = 0, deadline_s = None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        inputs: Vec<Bound<'_, PyBytes>>,
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
            inputs: inputs.iter().map(HeldBytes::new).collect(),
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
    fn next_batch(&self, py: Python<'_>, timeout_s: f64) -> PyResult<Option<PyBatch>> {
        let wait = seconds("timeout_s", timeout_s)?.unwrap_or(Duration::MAX);
        let queue = &self.queue;
        let next = without_gil(py, Work::Blocking, || {
            Ok::<_, std::convert::Infallible>(queue.next_batch(wait))
        })?;
        match next {
            NextBatch::Batch(batch) => Ok(Some(PyBatch::new(py, batch)?)),
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
