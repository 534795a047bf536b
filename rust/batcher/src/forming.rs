//! Batch forming: which queued requests make the next batch, and whether it is time to send it.
//! Triton's dynamic batcher rules (model_configuration.md, "Dynamic Batcher"): a full batch or a
//! preferred size goes at once; otherwise the batch waits until the oldest queued request has
//! waited `max_queue_delay`, then goes with whatever fits. Only called with the queue lock held,
//! so each decision looks at a bounded number of requests, never the whole queue.

use std::time::{Duration, Instant};

use crate::level::Level;

/// Requests batch forming looks at past the head for ones that fit its batch (requests of
/// other shapes are skipped): a queue of many differently shaped requests costs each decision
/// at most this many looks.
const LOOK_AHEAD: usize = 1024;

/// One queued request.
pub(crate) struct Entry<B, T> {
    /// Id handed back by `submit`.
    pub id: u64,
    /// One buffer per model input.
    pub inputs: Vec<B>,
    /// Shape of each input.
    pub shapes: Vec<Vec<i64>>,
    /// The caller's handle for the answer.
    pub token: T,
    /// Rows in dim 0 (1 for a model that does not batch).
    pub rows: usize,
    /// When it was queued.
    pub enqueued: Instant,
    /// Earliest of its queue timeout and the caller's deadline.
    pub deadline: Option<Instant>,
}

impl<B, T> Entry<B, T> {
    /// Whether its deadline has passed at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    /// Whether it may share a batch with `other`: same inputs with the same non-batch dims.
    fn compatible(&self, other: &Self) -> bool {
        self.shapes.len() == other.shapes.len()
            && self
                .shapes
                .iter()
                .zip(&other.shapes)
                .all(|(a, b)| a.get(1..) == b.get(1..))
    }
}

/// Position of a request: (priority level index, its id).
pub(crate) type Slot = (usize, u64);

/// What batch forming decided.
pub(crate) enum Decision {
    /// Nothing is queued.
    Empty,
    /// Send these requests now, in this order.
    Send(Vec<Slot>),
    /// A batch is building; look again at this instant (the oldest request's delay ends), or
    /// only when woken if the delay is too long to represent.
    Wait(Option<Instant>),
}

/// The settings batch forming needs.
pub(crate) struct Rules<'a> {
    /// 0: every request is its own batch.
    pub max_batch_size: usize,
    /// Sizes sent as soon as reached.
    pub preferred: &'a [usize],
    /// How long the oldest queued request may wait for a batch to fill.
    pub max_queue_delay: Duration,
    /// Closing with drain: send whatever is queued without waiting.
    pub draining: bool,
}

/// Queued requests in scheduling order: by priority level, FIFO within a level, and requests
/// past their deadline (only DELAY levels still hold any) after all the others.
fn scheduling_order<B, T>(
    levels: &[Level<B, T>],
    now: Instant,
) -> impl Iterator<Item = (Slot, &Entry<B, T>)> {
    let pass = move |expired: bool| {
        levels.iter().enumerate().flat_map(move |(level, queue)| {
            queue
                .iter()
                .filter(move |entry| entry.expired(now) == expired)
                .map(move |entry| ((level, entry.id), entry))
        })
    };
    pass(false).chain(pass(true))
}

/// Decides the next batch from `levels` at `now`.
pub(crate) fn decide<B, T>(levels: &[Level<B, T>], rules: &Rules<'_>, now: Instant) -> Decision {
    let mut order = scheduling_order(levels, now);
    let Some((head_slot, head)) = order.next() else {
        return Decision::Empty;
    };
    if rules.max_batch_size == 0 {
        return Decision::Send(vec![head_slot]);
    }
    let mut picks = vec![head_slot];
    let mut rows = head.rows;
    // Picks that make up the largest preferred size reached so far.
    let mut preferred_prefix = rules.preferred.contains(&rows).then_some(1);
    let mut full = rows == rules.max_batch_size;
    if !full {
        for (slot, entry) in order.take(LOOK_AHEAD) {
            // Incompatible shapes never share a batch; they keep their place for a later one.
            if !entry.compatible(head) {
                continue;
            }
            // Keep FIFO order: the batch ends at the first request that does not fit.
            if rows + entry.rows > rules.max_batch_size {
                full = true;
                break;
            }
            picks.push(slot);
            rows += entry.rows;
            if rules.preferred.contains(&rows) {
                preferred_prefix = Some(picks.len());
            }
            if rows == rules.max_batch_size {
                full = true;
                break;
            }
        }
    }
    // The delay runs from the oldest queued request (the front of some level), as in Triton, so
    // that requests held back behind this batch (other shapes, lower levels) wait at most about
    // one delay for it to go.
    let oldest = levels
        .iter()
        .filter_map(Level::first)
        .map(|entry| entry.enqueued)
        .min()
        .unwrap_or(head.enqueued);
    let send_by = oldest.checked_add(rules.max_queue_delay);
    let delay_over = send_by.is_some_and(|send_by| send_by <= now);
    if full || delay_over || rules.draining {
        return Decision::Send(picks);
    }
    if let Some(prefix) = preferred_prefix {
        picks.truncate(prefix);
        return Decision::Send(picks);
    }
    Decision::Wait(send_by)
}

/// Removes the entries at `slots` from `levels` and returns them in the order of `slots`.
pub(crate) fn take<B, T>(levels: &mut [Level<B, T>], slots: &[Slot]) -> Vec<Entry<B, T>> {
    // Common case: requests of one level, oldest first (a drain of its front).
    if let Some(&(level, _)) = slots.first()
        && slots.iter().all(|&(other, _)| other == level)
    {
        let ids: Vec<u64> = slots.iter().map(|&(_, id)| id).collect();
        return levels[level].take(&ids);
    }
    slots
        .iter()
        .filter_map(|&(level, id)| levels[level].remove(id))
        .collect()
}
