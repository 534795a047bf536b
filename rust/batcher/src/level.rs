//! `Level`: one priority level's FIFO of queued requests. A contiguous ring in arrival (id)
//! order, as cheap as a plain queue for what serving does all the time (push at the back, take
//! the first few), where a request that leaves from the middle (a cancel, a batch that skipped
//! other shapes) leaves a hole found by binary search on the ids: O(log n), never a scan or a
//! shift. Holes at the front are dropped as they surface; the ring is compacted when holes
//! outnumber the requests, so they cost O(1) amortized.

use std::collections::VecDeque;

use crate::forming::Entry;

/// One position of the ring: a queued request, or the hole it left (its id stays for the
/// binary search).
struct Slot<B, T> {
    id: u64,
    entry: Option<Entry<B, T>>,
}

/// One priority level's queue; see the module docs.
pub(crate) struct Level<B, T> {
    slots: VecDeque<Slot<B, T>>,
    /// Requests in `slots` (the rest are holes).
    queued: usize,
}

impl<B, T> Default for Level<B, T> {
    fn default() -> Self {
        Level {
            slots: VecDeque::new(),
            queued: 0,
        }
    }
}

impl<B, T> Level<B, T> {
    /// Requests queued.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// Queues `entry`, whose id is above every id queued so far.
    pub fn push(&mut self, entry: Entry<B, T>) {
        debug_assert!(self.slots.back().is_none_or(|last| last.id < entry.id));
        self.slots.push_back(Slot {
            id: entry.id,
            entry: Some(entry),
        });
        self.queued += 1;
    }

    /// The queued requests, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<B, T>> {
        self.slots.iter().filter_map(|slot| slot.entry.as_ref())
    }

    /// The oldest queued request.
    pub fn first(&self) -> Option<&Entry<B, T>> {
        // Holes never stay at the front.
        self.slots.front().and_then(|slot| slot.entry.as_ref())
    }

    /// Takes request `id` out, wherever it is.
    pub fn remove(&mut self, id: u64) -> Option<Entry<B, T>> {
        let index = self.slots.binary_search_by_key(&id, |slot| slot.id).ok()?;
        let entry = self.slots[index].entry.take()?;
        self.queued -= 1;
        self.tidy();
        Some(entry)
    }

    /// Takes the requests `ids` out (ids of queued requests, oldest first), returning them in
    /// that order. The usual case, the first `ids.len()` requests, is a plain drain.
    pub fn take(&mut self, ids: &[u64]) -> Vec<Entry<B, T>> {
        let at_front = ids.len() <= self.slots.len()
            && self
                .slots
                .iter()
                .zip(ids)
                .all(|(slot, &id)| slot.id == id && slot.entry.is_some());
        if at_front {
            self.queued -= ids.len();
            let taken = self.slots.drain(..ids.len()).filter_map(|slot| slot.entry);
            let taken = taken.collect();
            self.tidy();
            return taken;
        }
        ids.iter().filter_map(|&id| self.remove(id)).collect()
    }

    /// Takes every queued request out, oldest first.
    pub fn take_all(&mut self) -> Vec<Entry<B, T>> {
        self.queued = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|slot| slot.entry)
            .collect()
    }

    /// Drops the holes at the front, and all holes once they outnumber the requests.
    fn tidy(&mut self) {
        while self.slots.front().is_some_and(|slot| slot.entry.is_none()) {
            self.slots.pop_front();
        }
        let holes = self.slots.len() - self.queued;
        if holes > self.queued + 32 {
            self.slots.retain(|slot| slot.entry.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn entry(id: u64) -> Entry<Vec<u8>, u64> {
        Entry {
            id,
            inputs: Vec::new(),
            shapes: Vec::new(),
            token: id,
            rows: 1,
            enqueued: Instant::now(),
            deadline: None,
        }
    }

    fn ids(level: &Level<Vec<u8>, u64>) -> Vec<u64> {
        level.iter().map(|entry| entry.id).collect()
    }

    #[test]
    fn requests_leave_from_anywhere_and_the_order_holds() {
        let mut level = Level::default();
        for id in 1..=10 {
            level.push(entry(id));
        }
        assert_eq!(level.remove(5).map(|e| e.id), Some(5));
        assert_eq!(level.remove(5).map(|e| e.id), None);
        assert_eq!(level.remove(1).map(|e| e.id), Some(1));
        assert_eq!(level.first().map(|e| e.id), Some(2));
        let taken: Vec<u64> = level.take(&[2, 3, 4]).iter().map(|e| e.id).collect();
        assert_eq!(taken, vec![2, 3, 4]);
        // A batch that skipped other shapes: not the front.
        let taken: Vec<u64> = level.take(&[7, 9]).iter().map(|e| e.id).collect();
        assert_eq!(taken, vec![7, 9]);
        assert_eq!(ids(&level), vec![6, 8, 10]);
        assert_eq!(level.len(), 3);
        assert_eq!(level.first().map(|e| e.id), Some(6));
        level.push(entry(11));
        assert_eq!(level.take_all().len(), 4);
        assert_eq!(level.len(), 0);
        assert!(level.first().is_none());
    }

    #[test]
    fn holes_never_outnumber_the_requests_for_long() {
        let mut level = Level::default();
        for id in 1..=1000 {
            level.push(entry(id));
        }
        // Every other request leaves: holes in the middle, compacted as they pile up.
        for id in (2..=1000).step_by(2) {
            assert!(level.remove(id).is_some());
        }
        assert_eq!(level.len(), 500);
        assert!(level.slots.len() <= 2 * level.len() + 33);
        assert_eq!(ids(&level), (1..=1000).step_by(2).collect::<Vec<_>>());
    }

    /// One operation on a level, for the model-based property below.
    #[derive(Debug, Clone)]
    enum Op {
        Push,
        Remove(usize),
        TakeFront(usize),
        TakeSome(Vec<usize>),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => Just(Op::Push),
            2 => (0usize..64).prop_map(Op::Remove),
            1 => (0usize..8).prop_map(Op::TakeFront),
            1 => proptest::collection::vec(0usize..64, 0..6).prop_map(Op::TakeSome),
        ]
    }

    proptest::proptest! {
        /// Whatever serving does to a level, it holds what an ordered map by id would.
        #[test]
        fn behaves_like_an_ordered_map(ops in proptest::collection::vec(op(), 0..300)) {
            let mut level = Level::default();
            let mut model = std::collections::BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                let queued: Vec<u64> = model.keys().copied().collect();
                match op {
                    Op::Push => {
                        level.push(entry(next));
                        model.insert(next, ());
                        next += 1;
                    }
                    Op::Remove(pick) => {
                        // Mostly queued ids, sometimes ones already gone.
                        let id = queued.get(pick).copied().unwrap_or(pick as u64);
                        let expected = model.remove(&id).map(|()| id);
                        proptest::prop_assert_eq!(level.remove(id).map(|e| e.id), expected);
                    }
                    Op::TakeFront(k) => {
                        let ids: Vec<u64> = queued.iter().copied().take(k).collect();
                        ids.iter().for_each(|id| { model.remove(id); });
                        let taken: Vec<u64> = level.take(&ids).iter().map(|e| e.id).collect();
                        proptest::prop_assert_eq!(taken, ids);
                    }
                    Op::TakeSome(picks) => {
                        let mut ids: Vec<u64> =
                            picks.iter().filter_map(|&p| queued.get(p).copied()).collect();
                        ids.sort_unstable();
                        ids.dedup();
                        ids.iter().for_each(|id| { model.remove(id); });
                        let taken: Vec<u64> = level.take(&ids).iter().map(|e| e.id).collect();
                        proptest::prop_assert_eq!(taken, ids);
                    }
                }
                proptest::prop_assert_eq!(level.len(), model.len());
                proptest::prop_assert_eq!(ids(&level), model.keys().copied().collect::<Vec<_>>());
                proptest::prop_assert_eq!(level.first().map(|e| e.id), model.keys().next().copied());
                proptest::prop_assert!(level.slots.len() <= 2 * level.len() + 33);
            }
        }
    }
}
