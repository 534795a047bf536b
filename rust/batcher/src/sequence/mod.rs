//! `SequenceScheduler`: Triton's sequence batcher (`sequence_batching`) for stateful models,
//! the part that decides which request may run and when. A sequence (a correlation id) holds a
//! slot from its START to the answer of its END; its requests run one at a time, in arrival
//! order, so the state carried from one answer to the next request is never read before it
//! was written; a sequence that finds every slot taken waits in a backlog (arrival order) and
//! takes the first slot freed; a sequence idle longer than `max_sequence_idle` loses its slot.
//! Requests held (in the backlog or behind their sequence's running one) are bounded by
//! `max_held`, which Triton does not bound: past it a request is refused, RESOURCE_EXHAUSTED.
//! Rules and wording are Triton's (core `src/sequence_batch_scheduler/
//! sequence_batch_scheduler.cc`: `Enqueue`, `ReleaseSequenceSlot`, `ReaperThread`).
//!
//! It holds requests, never batches: a request it releases is queued by its owner into the
//! version's `BatchQueue` with its control values (START, END, READY, CORRID) and state, and
//! that queue forms batches across sequences, as Triton's `oldest` strategy does; the owner
//! reports each answer with `finished`, which releases what may run next. So the dynamic
//! batcher's own path does no new work. Not synchronised: its owner keeps it behind a lock.

mod error;
mod id;

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use error::SequenceError;
pub use id::CorrelationId;

/// The `sequence_batching` settings that bound the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceConfig {
    /// Sequences holding a slot at once: with Triton's `direct` strategy `max_batch_size` (at
    /// least 1) per model instance, with `oldest` its `max_candidate_sequences`. At least 1.
    pub slots: usize,
    /// `max_sequence_idle_microseconds` (Triton's default: 1 s): a sequence with a slot and no
    /// request for this long loses the slot.
    pub max_idle: Duration,
    /// Requests held at once, waiting for a slot or for their sequence's turn (0: no bound).
    /// One more is refused with `SequenceError::Full`, so a client opening sequence after
    /// sequence, or sending ahead without reading answers, cannot grow memory without end.
    pub max_held: usize,
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
    /// Its key in the backlog while it has no slot.
    backlog_key: u64,
    /// Whether a released request has not finished yet.
    running: bool,
    /// Requests not released yet, in arrival order (so in ticket order).
    waiting: VecDeque<Waiting<R>>,
    /// What its last answer left for the next request.
    state: Option<S>,
    /// When its last request arrived (the idle clock).
    last_request: Instant,
    /// Whether an END was accepted: the id takes no request without START any more, and the
    /// slot is freed once nothing is left to run.
    ended: bool,
}

impl<R, S> Sequence<R, S> {
    /// Whether a request arriving now would run at once (a slot, nothing running or waiting).
    fn may_run_now(&self) -> bool {
        self.slot.is_some() && !self.running && self.waiting.is_empty()
    }
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
    /// Sequences waiting for a slot, by arrival (a map, so a withdrawn one leaves in O(log n)).
    backlog: BTreeMap<u64, CorrelationId>,
    /// Requests held in every sequence's `waiting`.
    held: usize,
    /// Ticket of the next held request (also the next backlog key).
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
            backlog: BTreeMap::new(),
            held: 0,
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

    /// Requests held now (waiting for a slot or for their sequence's turn).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Accepts `request` of sequence `id` (with its START and END flags and its row count) at
    /// `now`: Run when it may run at once, Held when it waits for its turn. Triton's errors for
    /// a request without a correlation id, of more than one row, or without START for a
    /// sequence that is not running; `Full` when it would be held beyond `max_held`.
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
        let full = self.config.max_held > 0 && self.held >= self.config.max_held;
        let refuse_full = || SequenceError::Full {
            model: self.model.clone(),
            limit: self.config.max_held,
        };
        let sequence = match self.sequences.entry(id.clone()) {
            Entry::Occupied(entry) if !start && entry.get().ended => {
                return Err(SequenceError::NotStarted { model: model(), id });
            }
            Entry::Occupied(entry) => {
                let sequence = entry.into_mut();
                if full && !sequence.may_run_now() {
                    return Err(refuse_full());
                }
                sequence
            }
            Entry::Vacant(_) if !start => {
                return Err(SequenceError::NotStarted { model: model(), id });
            }
            Entry::Vacant(entry) => {
                let slot = self.free.pop().map(|Reverse(slot)| slot);
                if slot.is_none() {
                    if full {
                        return Err(refuse_full());
                    }
                    self.backlog.insert(self.next_ticket, id.clone());
                }
                entry.insert(Sequence {
                    slot,
                    backlog_key: self.next_ticket,
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
        if let (true, Some(slot)) = (sequence.may_run_now(), sequence.slot) {
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
        self.held += 1;
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
        if let Some(next) = Self::release_next(id, sequence, &mut self.held) {
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
        let index = sequence
            .waiting
            .binary_search_by_key(&ticket, |w| w.ticket)
            .ok()?;
        let withdrawn = sequence.waiting.remove(index)?;
        self.held -= 1;
        if sequence.slot.is_none() && sequence.waiting.is_empty() {
            // A backlogged sequence with nothing left: it never started.
            let key = sequence.backlog_key;
            self.sequences.remove(id);
            self.backlog.remove(&key);
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
        self.held = 0;
        self.sequences
            .drain()
            .flat_map(|(_, sequence)| sequence.waiting.into_iter().map(|w| w.request))
            .collect()
    }

    /// Gives `slot` to the first backlogged sequence (releasing its first request), or back
    /// to the free slots.
    fn give_slot(&mut self, slot: usize, released: &mut Vec<Released<R, S>>) {
        while let Some((_, id)) = self.backlog.pop_first() {
            let Some(sequence) = self.sequences.get_mut(&id) else {
                continue;
            };
            sequence.slot = Some(slot);
            if let Some(next) = Self::release_next(&id, sequence, &mut self.held) {
                released.push(next);
            }
            return;
        }
        self.free.push(Reverse(slot));
    }

    /// Releases the sequence's next waiting request, if it has a slot and one waits.
    fn release_next(
        id: &CorrelationId,
        sequence: &mut Sequence<R, S>,
        held: &mut usize,
    ) -> Option<Released<R, S>> {
        let slot = sequence.slot?;
        let next = sequence.waiting.pop_front()?;
        *held -= 1;
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
