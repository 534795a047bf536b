//! `BatchQueue`: the per-model request queue. Transport threads `submit`; executor threads (one
//! per model instance) block in `next_batch`. All queue state sits behind one mutex, held only
//! to pick requests, never while copying buffers or dropping caller tokens (dropping a token may
//! run caller code, e.g. a Python finalizer, that calls back into the queue). Every operation
//! under the lock is O(log n) in the queued requests (O(k) for a batch of k taken from the
//! front, as usual), so a deep queue slows nobody down (`Level`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::forming::{self, Decision, Entry, Rules};
use crate::level::Level;
use crate::{Batch, BatchError, BatcherConfig, Outcome, Statistics, TimeoutAction};

/// A request as the caller submits it.
#[derive(Debug)]
pub struct Request<B, T> {
    /// One buffer per model input, C-contiguous, in the model's input order.
    pub inputs: Vec<B>,
    /// The shape of each input; with max_batch_size > 0, dim 0 is the batch dim.
    pub shapes: Vec<Vec<i64>>,
    /// The caller's handle for the answer, handed back in the batch (or when rejected).
    pub token: T,
    /// The request's `priority` parameter (0: none). Level 1 is the highest; 0 or a value
    /// above the levels means the default level (`BatcherConfig::level`).
    pub priority: u64,
    /// The request's `timeout` parameter in microseconds (0: none); it may only shorten its
    /// level's default (`QueuePolicy::timeout_us`).
    pub timeout_us: u64,
    /// The caller's absolute deadline (the client's gRPC deadline), if any.
    pub deadline: Option<Instant>,
}

/// What `next_batch` found.
#[derive(Debug)]
// Returned once per batch and matched at once: boxing the batch would add an allocation per
// batch to save moving ~200 bytes.
#[allow(clippy::large_enum_variant)]
pub enum NextBatch<B, T> {
    /// A batch to execute (possibly holding only rejected tokens to fail).
    Batch(Batch<B, T>),
    /// Nothing to do before the wait ran out.
    Timeout,
    /// The queue is closed and empty: the executor should stop.
    Closed,
}

/// How the queue was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Queued requests still run.
    Drain,
    /// Queued requests were handed back.
    Now,
}

/// Everything the queue lock protects.
struct State<B, T> {
    /// One FIFO per priority level; index 0 is level 1, the highest.
    levels: Vec<Level<B, T>>,
    /// Per level, the deadlines of its requests (soonest first, with their ids), for the
    /// levels whose timeout action is REJECT; entries that left the queue another way stay
    /// until they surface or the heap is rebuilt.
    deadlines: Vec<BinaryHeap<Reverse<(Instant, u64)>>>,
    /// Id of the next request.
    next_id: u64,
    /// Set once by `close`.
    closing: Option<Closing>,
}

impl<B, T> State<B, T> {
    /// Requests queued at all levels.
    fn len(&self) -> usize {
        self.levels.iter().map(Level::len).sum()
    }
}

/// A model's dynamic-batching queue, shared by the transport and the executor threads.
pub struct BatchQueue<B, T> {
    /// Model name, for error messages.
    model: String,
    /// Validated settings.
    config: BatcherConfig,
    /// Queued requests; see `State`.
    state: Mutex<State<B, T>>,
    /// Signalled when a request arrives, a batch leaves requests behind, or the queue closes.
    ready: Condvar,
    /// ModelStatistics counters, updated without the lock.
    stats: Statistics,
}

impl<B: AsRef<[u8]>, T> BatchQueue<B, T> {
    /// A queue for `model` with `config`; InvalidConfig if Triton would refuse the config.
    pub fn new(model: impl Into<String>, config: BatcherConfig) -> Result<Self, BatchError> {
        let model = model.into();
        config.validate(&model)?;
        let levels = (0..config.levels()).map(|_| Level::default()).collect();
        let deadlines = (0..config.levels()).map(|_| BinaryHeap::new()).collect();
        Ok(BatchQueue {
            stats: Statistics::new(config.max_batch_size),
            model,
            config,
            state: Mutex::new(State {
                levels,
                deadlines,
                next_id: 1,
                closing: None,
            }),
            ready: Condvar::new(),
        })
    }

    /// The model name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The settings in effect.
    pub fn config(&self) -> &BatcherConfig {
        &self.config
    }

    /// The statistics counters.
    pub fn statistics(&self) -> &Statistics {
        &self.stats
    }

    /// Requests waiting in the queue.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Records one executed batch (see `Statistics::record_execution`).
    pub fn record_execution(
        &self,
        batch_size: usize,
        input_ns: u64,
        infer_ns: u64,
        output_ns: u64,
    ) {
        self.stats
            .record_execution(batch_size, input_ns, infer_ns, output_ns);
    }

    /// Records one finished request, end to end (see `Statistics::record_request`).
    pub fn record_request(&self, outcome: Outcome, duration_ns: u64) {
        self.stats.record_request(outcome, duration_ns);
    }

    /// The queue state. A panic while it was held cannot leave it half-updated (each critical
    /// section only moves whole entries), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State<B, T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Validates `request`'s shapes and returns its row count (1 for a model that does not batch).
    fn rows_of(&self, request: &Request<B, T>) -> Result<usize, BatchError> {
        let model = || self.model.clone();
        if request.inputs.len() != request.shapes.len() {
            return Err(BatchError::InputCount {
                model: model(),
                inputs: request.inputs.len(),
                shapes: request.shapes.len(),
            });
        }
        for (input, shape) in request.shapes.iter().enumerate() {
            if let Some((index, &dim)) = shape.iter().enumerate().find(|(_, dim)| **dim < 0) {
                return Err(BatchError::NegativeDim {
                    model: model(),
                    input,
                    index,
                    dim,
                });
            }
        }
        let max_batch_size = self.config.max_batch_size;
        if max_batch_size == 0 {
            return Ok(1);
        }
        let mut first = None;
        for (input, shape) in request.shapes.iter().enumerate() {
            let &dim = shape.first().ok_or_else(|| BatchError::MissingBatchDim {
                model: model(),
                input,
            })?;
            match first {
                None => first = Some(dim),
                Some(first) if first != dim => {
                    return Err(BatchError::BatchDimMismatch {
                        model: model(),
                        input,
                        dim,
                        first,
                    });
                }
                Some(_) => {}
            }
        }
        // A request with no inputs has nothing to batch: it counts as one row.
        let rows = first.unwrap_or(1);
        usize::try_from(rows)
            .ok()
            .filter(|&rows| (1..=max_batch_size).contains(&rows))
            .ok_or_else(|| BatchError::BatchSize {
                model: model(),
                rows,
                max_batch_size,
            })
    }

    /// Queues `request` and returns its id: ids count accepted requests from 1, so they give
    /// the order requests were queued in (`preserve_ordering` delivers answers in it).
    /// InvalidInput for a malformed request, ResourceExhausted when its level is full,
    /// Unavailable once closed.
    pub fn submit(&self, request: Request<B, T>) -> Result<u64, BatchError> {
        let rows = self.rows_of(&request)?;
        let level = self.config.level(request.priority);
        let policy = self.config.policy(level);
        let timeout_us = policy.timeout_us(request.timeout_us);
        let enqueued = Instant::now();
        let timeout_deadline = (timeout_us != 0)
            .then(|| enqueued.checked_add(Duration::from_micros(timeout_us)))
            .flatten();
        let deadline = match (timeout_deadline, request.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let index = (level - 1) as usize;
        let mut state = self.lock();
        if state.closing.is_some() {
            return Err(BatchError::Closed {
                model: self.model.clone(),
            });
        }
        let queue = &mut state.levels[index];
        if policy.max_queue_size > 0 && queue.len() >= policy.max_queue_size as usize {
            return Err(BatchError::QueueFull {
                model: self.model.clone(),
                level,
                max_queue_size: policy.max_queue_size,
            });
        }
        let id = state.next_id;
        state.next_id += 1;
        if let Some(deadline) = deadline
            && policy.timeout_action == TimeoutAction::Reject
        {
            let live = state.levels[index].len();
            let heap = &mut state.deadlines[index];
            heap.push(Reverse((deadline, id)));
            // Ids of requests that left otherwise: rebuilt when they outnumber the queued ones.
            if heap.len() > 2 * live + 64 {
                let queued = &state.levels[index];
                let rebuilt = queued
                    .iter()
                    .filter_map(|entry| Some(Reverse((entry.deadline?, entry.id))))
                    .chain(std::iter::once(Reverse((deadline, id))))
                    .collect();
                state.deadlines[index] = rebuilt;
            }
        }
        state.levels[index].push(Entry {
            id,
            inputs: request.inputs,
            shapes: request.shapes,
            token: request.token,
            rows,
            enqueued,
            deadline,
        });
        self.stats.set_pending(state.len());
        drop(state);
        self.ready.notify_one();
        Ok(id)
    }

    /// Removes a still-queued request; false if it is already in a batch or unknown.
    pub fn cancel(&self, id: u64) -> bool {
        let mut state = self.lock();
        let found = state.levels.iter_mut().find_map(|queue| queue.remove(id));
        self.stats.set_pending(state.len());
        drop(state);
        // The entry (and its token) is dropped here, outside the lock.
        found.is_some()
    }

    /// Stops accepting requests and wakes every waiting executor. With `drain`, queued requests
    /// still run and `next_batch` reports Closed once the queue is empty; without, the queued
    /// requests' tokens are returned for the caller to fail. A later `close(false)` after a
    /// `close(true)` hands back what is still queued.
    pub fn close(&self, drain: bool) -> Vec<T> {
        let mut state = self.lock();
        let removed = if drain && state.closing != Some(Closing::Now) {
            state.closing = Some(Closing::Drain);
            Vec::new()
        } else {
            state.closing = Some(Closing::Now);
            state.deadlines.iter_mut().for_each(BinaryHeap::clear);
            let levels = state.levels.iter_mut();
            levels.flat_map(Level::take_all).collect::<Vec<_>>()
        };
        self.stats.set_pending(state.len());
        drop(state);
        self.ready.notify_all();
        removed.into_iter().map(|entry| entry.token).collect()
    }

    /// Removes the requests whose deadline passed at levels with the REJECT action: those at
    /// the top of the levels' deadline heaps.
    fn reject_expired(
        &self,
        state: &mut State<B, T>,
        now: Instant,
        rejected: &mut Vec<Entry<B, T>>,
    ) {
        let State {
            levels, deadlines, ..
        } = state;
        for (queue, heap) in levels.iter_mut().zip(deadlines) {
            while let Some(&Reverse((deadline, id))) = heap.peek()
                && deadline <= now
            {
                heap.pop();
                // None: it left the queue another way (a batch, a cancel).
                if let Some(entry) = queue.remove(id) {
                    rejected.push(entry);
                }
            }
        }
    }

    /// Waits up to `wait` for the next batch. A batch is returned as soon as one is due (see
    /// `forming::decide`); requests rejected for their deadline come back in `Batch::rejected`,
    /// possibly in a batch without requests. Closed once the queue is closed and empty.
    pub fn next_batch(&self, wait: Duration) -> NextBatch<B, T> {
        let give_up = Instant::now().checked_add(wait);
        let mut rejected = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            self.reject_expired(&mut state, now, &mut rejected);
            let rules = Rules {
                max_batch_size: self.config.max_batch_size,
                preferred: &self.config.preferred_batch_sizes,
                max_queue_delay: self.config.max_queue_delay,
                draining: state.closing.is_some(),
            };
            let decision = forming::decide(&state.levels, &rules, now);
            let wake_at = match decision {
                Decision::Send(slots) => {
                    let entries = forming::take(&mut state.levels, &slots);
                    let left = state.len();
                    self.stats.set_pending(left);
                    drop(state);
                    if left > 0 {
                        // Another executor may be able to form a batch from what is left.
                        self.ready.notify_one();
                    }
                    return NextBatch::Batch(self.assemble(entries, rejected, now));
                }
                _ if !rejected.is_empty() => {
                    self.stats.set_pending(state.len());
                    drop(state);
                    return NextBatch::Batch(self.assemble(Vec::new(), rejected, now));
                }
                Decision::Empty if state.closing.is_some() => return NextBatch::Closed,
                Decision::Empty => give_up,
                Decision::Wait(send_by) => match (send_by, give_up) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            };
            if give_up.is_some_and(|give_up| give_up <= now) {
                return NextBatch::Timeout;
            }
            state = match wake_at {
                Some(wake_at) => {
                    let timeout = wake_at.saturating_duration_since(now);
                    self.ready
                        .wait_timeout(state, timeout)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    /// Builds the batch from the taken entries (outside the lock) and records queue times.
    fn assemble(
        &self,
        entries: Vec<Entry<B, T>>,
        rejected: Vec<Entry<B, T>>,
        now: Instant,
    ) -> Batch<B, T> {
        let batch = Batch::from_entries(
            &self.model,
            self.config.max_batch_size > 0,
            entries,
            rejected
                .into_iter()
                .map(|entry| (entry.id, entry.token))
                .unzip(),
            now,
        );
        for duration in &batch.queue_durations {
            self.stats.record_queue(duration);
        }
        batch
    }
}
