//! `Sequencer`: a stateful model's sequence batcher on the native path. It owns the version's
//! `SequenceScheduler` (which request of which sequence may run), queues each released request
//! into the version's `BatchQueue` with the inputs Triton's scheduler feeds (the
//! `control_input`s START, END, READY, CORRID in their configured datatypes, and the implicit
//! `state` the sequence's previous answer left), and, as the executor threads' `Deliver`,
//! keeps each answer's state outputs and releases what may run next before the answer goes
//! on. A reaper thread frees the slots of idle sequences. Requests of other models never
//! reach it, so the dynamic batcher's path does no new work.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferroserve_batcher::{
    Admission, BatchQueue, CorrelationId, Released, Request, SequenceConfig, SequenceError,
    SequenceScheduler,
};
use ferroserve_runtime::{Answer, Completed, Deliver, OutputTensor, Routed, Waiter};

use crate::MessageInput;

/// The datatype of a CONTROL_SEQUENCE_CORRID input (Triton allows these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    /// TYPE_UINT64.
    U64,
    /// TYPE_INT64.
    I64,
    /// TYPE_UINT32.
    U32,
    /// TYPE_INT32.
    I32,
    /// TYPE_STRING (one BYTES element).
    Text,
}

/// What a control input carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlKind {
    /// CONTROL_SEQUENCE_START, with its false and true values (one element's bytes).
    Start([Vec<u8>; 2]),
    /// CONTROL_SEQUENCE_END.
    End([Vec<u8>; 2]),
    /// CONTROL_SEQUENCE_READY (true for every request run: batches have no empty rows).
    Ready([Vec<u8>; 2]),
    /// CONTROL_SEQUENCE_CORRID in this datatype.
    CorrelationId(CorrelationType),
}

/// One implicit state tensor (`sequence_batching.state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTensor {
    /// The executor output (index into its outputs) that holds the next state.
    pub output: usize,
    /// One row's bytes at the sequence's START (`initial_state`, zeros by default).
    pub initial: Bytes,
    /// Its dims, without the batch dim.
    pub dims: Vec<i64>,
}

/// What a sequence model's requests are given besides their own inputs, in the executor's
/// input order after the client's: the control inputs, then the states.
#[derive(Debug, Clone)]
pub struct SequencePlan {
    /// Slots and idle timeout.
    pub config: SequenceConfig,
    /// Control inputs, in the executor's order.
    pub controls: Vec<ControlKind>,
    /// States, in the executor's order.
    pub states: Vec<StateTensor>,
    /// Whether the model batches (control and state tensors then get a batch dim of 1).
    pub batches: bool,
}

/// A request held until its sequence's turn: everything its `Request` needs but the control
/// and state inputs.
pub(crate) struct Pending<B, P, O> {
    pub(crate) inputs: Vec<B>,
    pub(crate) shapes: Vec<Vec<i64>>,
    pub(crate) waiter: Waiter<P, O>,
    pub(crate) priority: u64,
    pub(crate) timeout_us: u64,
    pub(crate) deadline: Option<Instant>,
}

/// The state a sequence carries: one buffer per `StateTensor`.
type State = Vec<Bytes>;

/// What the lock protects.
struct Tracking<B, P, O> {
    scheduler: SequenceScheduler<Pending<B, P, O>, State>,
    /// The sequence of each queued request it released, by queue id.
    running: HashMap<u64, CorrelationId>,
}

/// Where a submitted request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// Into the batch queue.
    Queued,
    /// Held for its turn, with this ticket.
    Held(u64),
}

/// Why a submit was refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Triton's sequence batcher rules.
    Sequence(SequenceError),
    /// The batch queue's (full, closed).
    Queue(ferroserve_batcher::BatchError),
}

/// A stateful model version's sequence batcher; see the module documentation.
pub struct Sequencer<B, P, O> {
    model: String,
    queue: Arc<BatchQueue<B, Waiter<P, O>>>,
    answers: Arc<Routed<P, O>>,
    plan: SequencePlan,
    /// The scheduler and the running requests. Lock order: this, then the batch queue's
    /// (requests are queued under it, so an answer never arrives before its id is known).
    tracking: Mutex<Tracking<B, P, O>>,
    /// Wakes the reaper when the sequencer closes.
    closed: Condvar,
}

impl<B, P, O> Sequencer<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    /// The sequencer of `model`, queueing into `queue` (whose executor threads must deliver
    /// to it) and answering through `answers`; starts its reaper thread.
    pub fn start(
        model: impl Into<String>,
        queue: Arc<BatchQueue<B, Waiter<P, O>>>,
        answers: Arc<Routed<P, O>>,
        plan: SequencePlan,
    ) -> std::io::Result<Arc<Self>> {
        let model = model.into();
        let sequencer = Arc::new(Sequencer {
            tracking: Mutex::new(Tracking {
                scheduler: SequenceScheduler::new(model.clone(), plan.config),
                running: HashMap::new(),
            }),
            model,
            queue,
            answers,
            plan,
            closed: Condvar::new(),
        });
        let weak = Arc::downgrade(&sequencer);
        std::thread::Builder::new()
            .name(format!("ferroserve-{}-reaper", sequencer.model))
            .spawn(move || reap_until_closed(&weak))?;
        Ok(sequencer)
    }

    /// The version's batch queue.
    pub fn queue(&self) -> &Arc<BatchQueue<B, Waiter<P, O>>> {
        &self.queue
    }

    /// Takes no new request; the held ones are dropped (their callers see the model go).
    pub fn close(&self) {
        let held = self.lock().scheduler.close();
        drop(held);
        self.closed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Tracking<B, P, O>> {
        self.tracking.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Submits one request of sequence `id`.
    pub(crate) fn submit(
        &self,
        id: CorrelationId,
        (start, end): (bool, bool),
        rows: usize,
        pending: Pending<B, P, O>,
    ) -> Result<Submitted, Refused> {
        let mut tracking = self.lock();
        let admission = tracking
            .scheduler
            .submit(id, start, end, rows, pending, Instant::now())
            .map_err(Refused::Sequence)?;
        match admission {
            Admission::Held { ticket } => Ok(Submitted::Held(ticket)),
            Admission::Run(released) => {
                let id = released.controls.correlation_id.clone();
                match self.enqueue(&mut tracking, released) {
                    Ok(()) => Ok(Submitted::Queued),
                    Err(error) => {
                        // It never ran: its sequence goes on with the next request.
                        let next = tracking.scheduler.finished(&id, None);
                        self.enqueue_all(&mut tracking, next);
                        Err(Refused::Queue(error))
                    }
                }
            }
        }
    }

    /// Takes a held request back (its caller went away); whether it was still held. A request
    /// already queued runs anyway, so its sequence's state stays whole.
    pub(crate) fn withdraw(&self, id: &CorrelationId, ticket: u64) -> bool {
        let withdrawn = self.lock().scheduler.withdraw(id, ticket);
        withdrawn.is_some()
    }

    /// Queues `released` with its control and state inputs. When the queue refuses it (full,
    /// closed), its waiter is dropped with it: its caller sees the request end unanswered.
    fn enqueue(
        &self,
        tracking: &mut Tracking<B, P, O>,
        released: Released<Pending<B, P, O>, State>,
    ) -> Result<(), ferroserve_batcher::BatchError> {
        let Released {
            request: mut pending,
            controls,
            state,
        } = released;
        let row: Vec<i64> = if self.plan.batches {
            vec![1]
        } else {
            Vec::new()
        };
        for control in &self.plan.controls {
            let (value, shape) = control_value(control, &controls);
            pending.inputs.push(B::from_converted(value));
            pending
                .shapes
                .push(row.iter().copied().chain(shape).collect());
        }
        for (index, tensor) in self.plan.states.iter().enumerate() {
            let value = state
                .as_ref()
                .and_then(|state| state.get(index).cloned())
                .unwrap_or_else(|| tensor.initial.clone());
            pending.inputs.push(B::from_converted(value));
            pending
                .shapes
                .push(row.iter().chain(&tensor.dims).copied().collect());
        }
        let submitted = self.queue.submit(Request {
            inputs: pending.inputs,
            shapes: pending.shapes,
            token: pending.waiter,
            priority: pending.priority,
            timeout_us: pending.timeout_us,
            deadline: pending.deadline,
        });
        let queue_id = submitted?;
        tracking.running.insert(queue_id, controls.correlation_id);
        Ok(())
    }

    /// Queues every released request; one the queue refuses fails (its sequence goes on).
    fn enqueue_all(
        &self,
        tracking: &mut Tracking<B, P, O>,
        mut released: Vec<Released<Pending<B, P, O>, State>>,
    ) {
        while let Some(next) = released.pop() {
            let id = next.controls.correlation_id.clone();
            if self.enqueue(tracking, next).is_err() {
                released.extend(tracking.scheduler.finished(&id, None));
            }
        }
    }

    /// Each state tensor's next value from `answer`.
    fn states_of(&self, answer: &Answer<O>) -> State {
        self.plan
            .states
            .iter()
            .map(|tensor| {
                let (range, _) = &answer.parts[tensor.output];
                Bytes::copy_from_slice(&answer.outputs[tensor.output].as_ref()[range.clone()])
            })
            .collect()
    }

    /// Frees idle sequences' slots at `now` and queues what the backlog may run; when to look
    /// again.
    fn reap(&self, now: Instant) -> Option<Instant> {
        let mut tracking = self.lock();
        let released = tracking.scheduler.reap(now);
        self.enqueue_all(&mut tracking, released);
        tracking.scheduler.next_reap()
    }
}

impl<B, P, O> Deliver<Waiter<P, O>, O> for Sequencer<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    fn deliver(&self, ids: &[u64], answers: Vec<Completed<Waiter<P, O>, O>>) {
        {
            let mut tracking = self.lock();
            for (id, (_, answer)) in ids.iter().zip(&answers) {
                let Some(sequence) = tracking.running.remove(id) else {
                    continue;
                };
                let state = answer.as_ref().ok().map(|answer| self.states_of(answer));
                let next = tracking.scheduler.finished(&sequence, state);
                self.enqueue_all(&mut tracking, next);
            }
        }
        self.answers.deliver(ids, answers);
    }
}

/// The bytes and shape (after the batch dim) of one control input for a request with
/// `controls`.
fn control_value(kind: &ControlKind, controls: &ferroserve_batcher::Controls) -> (Bytes, Vec<i64>) {
    let flag = |values: &[Vec<u8>; 2], on: bool| Bytes::copy_from_slice(&values[usize::from(on)]);
    match kind {
        ControlKind::Start(values) => (flag(values, controls.start), vec![1]),
        ControlKind::End(values) => (flag(values, controls.end), vec![1]),
        ControlKind::Ready(values) => (flag(values, true), vec![1]),
        ControlKind::CorrelationId(datatype) => (
            correlation_bytes(&controls.correlation_id, *datatype),
            vec![1],
        ),
    }
}

/// A correlation id as one element of `datatype`: a number in its width (as C++ casts it), a
/// string as one length-prefixed BYTES element (a number written out in decimal).
fn correlation_bytes(id: &CorrelationId, datatype: CorrelationType) -> Bytes {
    let number = match id {
        CorrelationId::Number(number) => *number,
        CorrelationId::Text(_) => 0,
    };
    match datatype {
        CorrelationType::U64 | CorrelationType::I64 => {
            Bytes::copy_from_slice(&number.to_le_bytes())
        }
        // The low 32 bits, as Triton's cast keeps.
        CorrelationType::U32 | CorrelationType::I32 => {
            Bytes::copy_from_slice(&number.to_le_bytes()[..4])
        }
        CorrelationType::Text => {
            let text = id.to_string();
            let length = u32::try_from(text.len()).unwrap_or(u32::MAX);
            let mut element = length.to_le_bytes().to_vec();
            element.extend_from_slice(text.as_bytes());
            Bytes::from(element)
        }
    }
}

/// The reaper thread: reaps when the next idle sequence is due (or every idle timeout when
/// none is), until the sequencer closes or goes.
fn reap_until_closed<B, P, O>(sequencer: &Weak<Sequencer<B, P, O>>)
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    loop {
        let Some(strong) = sequencer.upgrade() else {
            return;
        };
        let now = Instant::now();
        let idle = strong.plan.config.max_idle.max(Duration::from_millis(1));
        let due = strong.reap(now).unwrap_or(now + idle);
        let tracking = strong.lock();
        let wait = due.saturating_duration_since(Instant::now());
        let (tracking, _) = strong
            .closed
            .wait_timeout(tracking, wait)
            .unwrap_or_else(PoisonError::into_inner);
        let closed = tracking.scheduler.is_closed();
        drop(tracking);
        if closed {
            return;
        }
    }
}
