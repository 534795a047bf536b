//! `SequenceScheduler`: Triton's sequence batcher (`sequence_batching`) for stateful models,
//! the part that decides which request may run and when. A sequence (a correlation id) holds a
//! slot from its START to the answer of its END; its requests run one at a time, in arrival
//! order, so the state carried from one answer to the next request is never read before it
//! was written; a sequence that finds every slot taken waits in a backlog (arrival order) and
//! takes the first slot freed; a sequence idle longer than `max_sequence_idle` loses its slot.
//! Rules and wording are Triton's (core `src/sequence_batch_scheduler/
//! sequence_batch_scheduler.cc`: `Enqueue`, `ReleaseSequenceSlot`, `ReaperThread`).
//!
//! It holds requests, never batches: a request it releases is queued by its owner into the
//! version's `BatchQueue` with its control values (START, END, READY, CORRID) and state, and
//! that queue forms batches across sequences, as Triton's `oldest` strategy does; the owner
//! reports each answer with `finished`, which releases what may run next. So the dynamic
//! batcher's own path does no new work. Not synchronised: its owner keeps it behind a lock.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::ErrorKind;

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

/// The `sequence_batching` settings that bound the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceConfig {
    /// Sequences holding a slot at once: with Triton's `direct` strategy `max_batch_size` (at
    /// least 1) per model instance, with `oldest` its `max_candidate_sequences`. At least 1.
    pub slots: usize,
    /// `max_sequence_idle_microseconds` (Triton's default: 1 s): a sequence with a slot and no
    /// request for this long loses the slot.
    pub max_idle: Duration,
}

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
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// The control values a released request is run with (Triton's `control_input` kinds).
/// READY is true for every request the scheduler releases (batches hold no empty rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controls {
    /// CONTROL_SEQUENCE_START: the request starts its sequence (the state starts afresh).
    pub start: bool,
    /// CONTROL_SEQUENCE_END: the request ends its sequence.
    pub end: bool,
    /// CONTROL_SEQUENCE_CORRID.
    pub correlation_id: CorrelationId,
    /// The sequence's slot (0-based, below `SequenceConfig::slots`).
    pub slot: usize,
}

/// A request that may run now.
#[derive(Debug)]
pub struct Released<R, S> {
    /// The request as submitted.
    pub request: R,
    /// Its control values.
    pub controls: Controls,
    /// The state the sequence's previous answer left (`finished`); None at a START or before
    /// any answer left one: the owner feeds the initial state.
    pub state: Option<S>,
}

/// What `submit` did with a request.
#[derive(Debug)]
pub enum Admission<R, S> {
    /// It may run now.
    Run(Released<R, S>),
    /// It waits behind its sequence's running request, or in the backlog; `ticket` withdraws it.
    Held {
        /// Its ticket for `withdraw`.
        ticket: u64,
    },
}

/// A request waiting to be released.
#[derive(Debug)]
struct Waiting<R> {
    request: R,
    start: bool,
    end: bool,
    ticket: u64,
}

/// One correlation id's requests and state.
#[derive(Debug)]
struct Sequence<R, S> {
    /// Its slot; None while in the backlog.
    slot: Option<usize>,
    /// Whether a released request has not finished yet.
    running: bool,
    /// Requests not released yet, in arrival order.
    waiting: VecDeque<Waiting<R>>,
    /// What its last answer left for the next request.
    state: Option<S>,
    /// When its last request arrived (the idle clock).
    last_request: Instant,
    /// Whether an END was accepted: the id takes no request without START any more, and the
    /// slot is freed once nothing is left to run.
    ended: bool,
}

/// The sequence batcher of one model version; see the module documentation.
#[derive(Debug)]
pub struct SequenceScheduler<R, S> {
    /// Model name, for messages.
    model: String,
    config: SequenceConfig,
    sequences: HashMap<CorrelationId, Sequence<R, S>>,
    /// Free slots, lowest first (Triton hands out the ready slots of a priority queue).
    free: BinaryHeap<Reverse<usize>>,
    /// Sequences waiting for a slot, in arrival order.
    backlog: VecDeque<CorrelationId>,
    /// Ticket of the next held request.
    next_ticket: u64,
    /// Set by `close`.
    closed: bool,
}

impl<R, S: Clone> SequenceScheduler<R, S> {
    /// A scheduler for `model` with `config` (`slots` taken as at least 1).
    pub fn new(model: impl Into<String>, config: SequenceConfig) -> Self {
        let slots = config.slots.max(1);
        SequenceScheduler {
            model: model.into(),
            config: SequenceConfig { slots, ..config },
            sequences: HashMap::new(),
            free: (0..slots).map(Reverse).collect(),
            backlog: VecDeque::new(),
            next_ticket: 1,
            closed: false,
        }
    }

    /// The settings in effect.
    pub fn config(&self) -> &SequenceConfig {
        &self.config
    }

    /// Sequences holding a slot now.
    pub fn active(&self) -> usize {
        self.config.slots - self.free.len()
    }

    /// Sequences waiting for a slot.
    pub fn backlogged(&self) -> usize {
        self.backlog.len()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Accepts `request` of sequence `id` (with its START and END flags and its row count) at
    /// `now`: Run when it may run at once, Held when it waits for its turn. Triton's errors for
    /// a request without a correlation id, of more than one row, or without START for a
    /// sequence that is not running.
    pub fn submit(
        &mut self,
        id: CorrelationId,
        start: bool,
        end: bool,
        rows: usize,
        request: R,
        now: Instant,
    ) -> Result<Admission<R, S>, SequenceError> {
        let model = || self.model.clone();
        if self.closed {
            return Err(SequenceError::Closed { model: model() });
        }
        if rows > 1 {
            return Err(SequenceError::BatchSize { model: model() });
        }
        if !id.is_set() {
            return Err(SequenceError::NoCorrelationId { model: model() });
        }
        let sequence = match self.sequences.entry(id.clone()) {
            Entry::Occupied(entry) if start || !entry.get().ended => entry.into_mut(),
            Entry::Occupied(_) => return Err(SequenceError::NotStarted { model: model(), id }),
            Entry::Vacant(_) if !start => {
                return Err(SequenceError::NotStarted { model: model(), id });
            }
            Entry::Vacant(entry) => {
                let slot = self.free.pop().map(|Reverse(slot)| slot);
                if slot.is_none() {
                    self.backlog.push_back(id.clone());
                }
                entry.insert(Sequence {
                    slot,
                    running: false,
                    waiting: VecDeque::new(),
                    state: None,
                    last_request: now,
                    ended: false,
                })
            }
        };
        // A START on a sequence that never ended continues in its slot (Triton logs the
        // conflict and does the same); the START itself starts the state afresh.
        sequence.last_request = now;
        sequence.ended = end;
        if let Some(slot) = sequence.slot
            && !sequence.running
            && sequence.waiting.is_empty()
        {
            sequence.running = true;
            let state = if start { None } else { sequence.state.clone() };
            return Ok(Admission::Run(Released {
                request,
                controls: Controls {
                    start,
                    end,
                    correlation_id: id,
                    slot,
                },
                state,
            }));
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        sequence.waiting.push_back(Waiting {
            request,
            start,
            end,
            ticket,
        });
        Ok(Admission::Held { ticket })
    }

    /// The running request of sequence `id` was answered (or failed: `state` None keeps the
    /// state it had). Returns what may run now: the sequence's next request, or, when the
    /// answered one ended it, the first request of the backlogged sequence that takes its slot.
    pub fn finished(&mut self, id: &CorrelationId, state: Option<S>) -> Vec<Released<R, S>> {
        let mut released = Vec::new();
        let Some(sequence) = self.sequences.get_mut(id) else {
            return released;
        };
        sequence.running = false;
        if state.is_some() {
            sequence.state = state;
        }
        if let Some(next) = Self::release_next(id, sequence) {
            released.push(next);
        } else if sequence.ended {
            let slot = sequence.slot;
            self.sequences.remove(id);
            if let Some(slot) = slot {
                self.give_slot(slot, &mut released);
            }
        }
        released
    }

    /// Takes a held request back (its client went away); None if it was released already.
    pub fn withdraw(&mut self, id: &CorrelationId, ticket: u64) -> Option<R> {
        let sequence = self.sequences.get_mut(id)?;
        let index = sequence.waiting.iter().position(|w| w.ticket == ticket)?;
        let withdrawn = sequence.waiting.remove(index)?;
        if sequence.slot.is_none() && sequence.waiting.is_empty() {
            // A backlogged sequence with nothing left: it never started.
            self.sequences.remove(id);
            self.backlog.retain(|queued| queued != id);
        }
        Some(withdrawn.request)
    }

    /// Frees the slots of sequences idle longer than `max_idle` at `now` (no request running or
    /// waiting, the last one older than that), giving them to backlogged sequences; returns
    /// what those may run. A later request of a freed sequence needs START again.
    pub fn reap(&mut self, now: Instant) -> Vec<Released<R, S>> {
        let max_idle = self.config.max_idle;
        let idle: Vec<CorrelationId> = self
            .sequences
            .iter()
            .filter(|(_, s)| {
                s.slot.is_some()
                    && !s.running
                    && s.waiting.is_empty()
                    && now.saturating_duration_since(s.last_request) >= max_idle
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut released = Vec::new();
        for id in idle {
            if let Some(Sequence {
                slot: Some(slot), ..
            }) = self.sequences.remove(&id)
            {
                self.give_slot(slot, &mut released);
            }
        }
        released
    }

    /// When the next idle sequence would be reaped, if any holds a slot idle now.
    pub fn next_reap(&self) -> Option<Instant> {
        self.sequences
            .values()
            .filter(|s| s.slot.is_some() && !s.running && s.waiting.is_empty())
            .map(|s| s.last_request + self.config.max_idle)
            .min()
    }

    /// Takes no new request; hands back every held one for its owner to fail.
    pub fn close(&mut self) -> Vec<R> {
        self.closed = true;
        self.backlog.clear();
        self.sequences
            .drain()
            .flat_map(|(_, sequence)| sequence.waiting.into_iter().map(|w| w.request))
            .collect()
    }

    /// Gives `slot` to the first backlogged sequence (releasing its first request), or back
    /// to the free slots.
    fn give_slot(&mut self, slot: usize, released: &mut Vec<Released<R, S>>) {
        while let Some(id) = self.backlog.pop_front() {
            let Some(sequence) = self.sequences.get_mut(&id) else {
                continue;
            };
            sequence.slot = Some(slot);
            if let Some(next) = Self::release_next(&id, sequence) {
                released.push(next);
            }
            return;
        }
        self.free.push(Reverse(slot));
    }

    /// Releases the sequence's next waiting request, if it has a slot and one waits.
    fn release_next(id: &CorrelationId, sequence: &mut Sequence<R, S>) -> Option<Released<R, S>> {
        let slot = sequence.slot?;
        let next = sequence.waiting.pop_front()?;
        sequence.running = true;
        Some(Released {
            request: next.request,
            controls: Controls {
                start: next.start,
                end: next.end,
                correlation_id: id.clone(),
                slot,
            },
            state: if next.start {
                None
            } else {
                sequence.state.clone()
            },
        })
    }
}
