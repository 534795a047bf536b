//! `InOrder`: the release gate of a `preserve_ordering` model version. Answers come out of the
//! executors in the order batches finish (two instances, priority levels, shapes and queue
//! timeouts all reorder them); the gate lets each one go only once every request queued before
//! it has gone (Triton's `preserve_ordering`: responses in the order the requests were queued).
//!
//! The numbering is the queue's: `BatchQueue::submit` gives accepted requests the ids 1, 2, 3,
//! ... in the order they were queued, so every id from 1 up is one request, and each must end
//! here exactly once: with its answer, an error included (`finish`), or withdrawn without one
//! when it left the queue unanswered (`withdraw`: its caller cancelled it). A request that
//! failed or timed out therefore keeps its place; one withdrawn lets the next go at once.

use std::collections::VecDeque;

/// How a request at or after the gate's turn has ended so far.
enum Slot<X> {
    /// Not yet: it is queued or running.
    Pending,
    /// Its answer, waiting for its turn.
    Answered(X),
    /// It left the queue without an answer.
    Withdrawn,
}

/// Holds answers back until their turn; see the module doc.
pub struct InOrder<X> {
    /// Id of the next request to let go.
    next: u64,
    /// Requests `next`, `next + 1`, ... in order, as far as one has ended. Its capacity is
    /// kept, so once it has held the largest gap there is, nothing is allocated.
    slots: VecDeque<Slot<X>>,
    /// Set by `open`: every answer goes at once.
    open: bool,
}

impl<X> Default for InOrder<X> {
    fn default() -> Self {
        InOrder::new()
    }
}

impl<X> InOrder<X> {
    /// A gate whose first request is id 1 (a new queue's first id).
    pub fn new() -> Self {
        InOrder {
            next: 1,
            slots: VecDeque::new(),
            open: false,
        }
    }

    /// Request `id` ended with `answer`: calls `release` with every answer that may go now,
    /// in queue order (this one, if it was its turn, and those it held up).
    pub fn finish(&mut self, id: u64, answer: X, release: impl FnMut(X)) {
        self.end(id, Slot::Answered(answer), release);
    }

    /// Request `id` left the queue without an answer (cancelled): nobody waits for it; calls
    /// `release` with every answer that may go now.
    pub fn withdraw(&mut self, id: u64, release: impl FnMut(X)) {
        self.end(id, Slot::Withdrawn, release);
    }

    /// Answers waiting for their turn.
    pub fn held(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| matches!(slot, Slot::Answered(_)))
            .count()
    }

    /// Stops holding anything back: `release` gets every held answer now, in queue order, and
    /// later answers go as they come. For a closed queue whose last requests were handed back
    /// unanswered (unload), so nothing is left for the held answers to wait for.
    pub fn open(&mut self, mut release: impl FnMut(X)) {
        self.open = true;
        for slot in self.slots.drain(..) {
            if let Slot::Answered(answer) = slot {
                release(answer);
            }
        }
    }

    fn end(&mut self, id: u64, slot: Slot<X>, mut release: impl FnMut(X)) {
        let Some(offset) = id
            .checked_sub(self.next)
            .and_then(|offset| usize::try_from(offset).ok())
            .filter(|_| !self.open)
        else {
            // Open, or an id whose turn has passed (it ended twice: a bug in the caller). Never
            // hold an answer nobody would let go.
            if let Slot::Answered(answer) = slot {
                release(answer);
            }
            return;
        };
        if offset >= self.slots.len() {
            self.slots.resize_with(offset + 1, || Slot::Pending);
        }
        self.slots[offset] = slot;
        while let Some(Slot::Answered(_) | Slot::Withdrawn) = self.slots.front() {
            self.next += 1;
            if let Some(Slot::Answered(answer)) = self.slots.pop_front() {
                release(answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn released(gate: &mut InOrder<u64>, events: &[(u64, bool)]) -> Vec<u64> {
        let mut out = Vec::new();
        for &(id, answered) in events {
            if answered {
                gate.finish(id, id, |answer| out.push(answer));
            } else {
                gate.withdraw(id, |answer| out.push(answer));
            }
        }
        out
    }

    #[test]
    fn an_answer_waits_for_every_earlier_request() {
        let mut gate = InOrder::new();
        let mut out = Vec::new();
        gate.finish(2, 2, |a| out.push(a));
        gate.finish(3, 3, |a| out.push(a));
        assert!(out.is_empty());
        assert_eq!(gate.held(), 2);
        gate.finish(1, 1, |a| out.push(a));
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(gate.held(), 0);
        gate.finish(4, 4, |a| out.push(a));
        assert_eq!(out, [1, 2, 3, 4], "its turn: goes at once");
    }

    #[test]
    fn a_withdrawn_request_lets_the_next_go() {
        let mut gate = InOrder::new();
        assert_eq!(released(&mut gate, &[(2, true), (1, false)]), [2]);
        assert_eq!(released(&mut gate, &[(4, true), (3, false)]), [4]);
    }

    #[test]
    fn open_lets_everything_go() {
        let mut gate = InOrder::new();
        assert!(released(&mut gate, &[(3, true), (2, true)]).is_empty());
        let mut out = Vec::new();
        gate.open(|a| out.push(a));
        assert_eq!(out, [2, 3]);
        assert_eq!(released(&mut gate, &[(5, true), (1, true)]), [5, 1]);
    }

    #[test]
    fn an_id_that_ended_twice_is_not_held() {
        let mut gate = InOrder::new();
        assert_eq!(released(&mut gate, &[(1, true), (1, true)]), [1, 1]);
    }

    proptest! {
        /// Whatever order requests end in, and whichever are withdrawn, the answers go in
        /// queue order, each exactly once, and nothing is held once all have ended.
        #[test]
        fn any_completion_order_releases_in_queue_order(
            ends in (1usize..40).prop_flat_map(|n| {
                (Just((1..=n as u64).collect::<Vec<_>>()).prop_shuffle(),
                 proptest::collection::vec(any::<bool>(), n))
            })
        ) {
            let (order, answered) = ends;
            let mut gate = InOrder::new();
            let events: Vec<(u64, bool)> = order
                .iter()
                .map(|&id| (id, answered[(id - 1) as usize]))
                .collect();
            let out = released(&mut gate, &events);
            let expected: Vec<u64> = (1..=order.len() as u64)
                .filter(|&id| answered[(id - 1) as usize])
                .collect();
            prop_assert_eq!(out, expected);
            prop_assert_eq!(gate.held(), 0);
        }

        /// An answer goes as soon as every earlier request has ended, not later.
        #[test]
        fn an_answer_goes_as_soon_as_its_turn_comes(
            order in Just((1..=12u64).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let mut gate = InOrder::new();
            let mut ended = std::collections::BTreeSet::new();
            let mut gone = 0u64;
            for id in order {
                ended.insert(id);
                let mut out = Vec::new();
                gate.finish(id, id, |a| out.push(a));
                // Free now: every id up to the first one still running, less those gone before.
                let prefix = (1..).take_while(|i| ended.contains(i)).count() as u64;
                let expected: Vec<u64> = (gone + 1..=prefix).collect();
                prop_assert_eq!(out, expected);
                gone = prefix;
            }
        }
    }
}
