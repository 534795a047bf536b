//! Which `HMGET`s one coalesced round trip sends, and whose answers are whose. The store's
//! round-trip task (`client` module) takes every lookup that queued while the previous pipeline
//! was in flight and sends them as one pipeline; this module is the pure part of that: the
//! distinct commands (a key asked by several lookups of the same view is asked once) and, for
//! when Redis answered, which reply answers each key of each lookup. No I/O here, so the
//! demultiplexing is tested with proptest over random interleavings of lookups and keys.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// One lookup as the plan sees it: which field list it asks for (lookups with the same
/// `fields` id ask the same fields, so their identical keys are one command) and its keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LookupKeys<'a> {
    /// Identifies the field list (the store uses the address of the view's shared fields).
    pub(crate) fields: usize,
    /// The Redis keys, in the lookup's order.
    pub(crate) keys: &'a [Vec<u8>],
}

/// The commands of one round trip and where each lookup's answers are among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoundTripPlan {
    /// One entry per command to send, in pipeline order: the (lookup, key) of its first
    /// occurrence, whose key and fields the command asks for.
    pub(crate) commands: Vec<(usize, usize)>,
    /// Per lookup, per key: the index of the command that answers it.
    slots: Vec<Vec<usize>>,
}

impl RoundTripPlan {
    /// The plan of `lookups`, in order: identical (fields, key) pairs share one command.
    pub(crate) fn new(lookups: &[LookupKeys<'_>]) -> RoundTripPlan {
        let total: usize = lookups.iter().map(|lookup| lookup.keys.len()).sum();
        let mut commands = Vec::with_capacity(total);
        let mut index: HashMap<(usize, &[u8]), usize> = HashMap::with_capacity(total);
        let slots = lookups
            .iter()
            .enumerate()
            .map(|(lookup, keys)| {
                keys.keys
                    .iter()
                    .enumerate()
                    .map(|(position, key)| match index.entry((keys.fields, key)) {
                        Entry::Occupied(command) => *command.get(),
                        Entry::Vacant(vacant) => {
                            commands.push((lookup, position));
                            *vacant.insert(commands.len() - 1)
                        }
                    })
                    .collect()
            })
            .collect();
        RoundTripPlan { commands, slots }
    }

    /// Whose answers are whose: per lookup, per key in its own order, the index of the command
    /// (and so of the reply, Redis answering in order) that answers it. The replies themselves
    /// are shared by the lookups, so nothing is copied for a key several lookups asked.
    pub(crate) fn into_slots(self) -> Vec<Vec<usize>> {
        self.slots
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lookups(raw: &[(usize, Vec<Vec<u8>>)]) -> Vec<LookupKeys<'_>> {
        raw.iter()
            .map(|(fields, keys)| LookupKeys {
                fields: *fields,
                keys,
            })
            .collect()
    }

    #[test]
    fn shared_keys_of_one_view_are_asked_once() {
        let raw = vec![
            (1, vec![b"a".to_vec(), b"b".to_vec()]),
            (1, vec![b"b".to_vec()]),
            // Another view's fields: the same key is another command.
            (2, vec![b"b".to_vec(), b"a".to_vec(), b"a".to_vec()]),
        ];
        let plan = RoundTripPlan::new(&lookups(&raw));
        assert_eq!(plan.commands, [(0, 0), (0, 1), (2, 0), (2, 1)]);
        assert_eq!(plan.into_slots(), [vec![0, 1], vec![1], vec![2, 3, 3]]);
    }

    /// Lookups with keys drawn from a small alphabet (so they repeat within and across
    /// lookups) and one of three field lists.
    fn arbitrary_lookups() -> impl Strategy<Value = Vec<(usize, Vec<Vec<u8>>)>> {
        let key = prop::collection::vec(0u8..4, 0..3);
        let lookup = (0usize..3, prop::collection::vec(key, 0..6));
        prop::collection::vec(lookup, 0..12)
    }

    proptest! {
        /// Every lookup gets, for each of its keys in order, the answer Redis gave to exactly
        /// that (fields, key); every command is distinct and every distinct pair is asked.
        #[test]
        fn each_lookup_gets_the_answers_to_its_own_keys(raw in arbitrary_lookups()) {
            let lookups = lookups(&raw);
            let plan = RoundTripPlan::new(&lookups);
            let asked: Vec<(usize, &[u8])> = plan
                .commands
                .iter()
                .map(|&(lookup, key)| (lookups[lookup].fields, lookups[lookup].keys[key].as_slice()))
                .collect();
            let distinct: std::collections::HashSet<(usize, &[u8])> = lookups
                .iter()
                .flat_map(|lookup| lookup.keys.iter().map(|key| (lookup.fields, key.as_slice())))
                .collect();
            prop_assert_eq!(asked.len(), distinct.len());
            prop_assert_eq!(
                asked.iter().copied().collect::<std::collections::HashSet<_>>(),
                distinct
            );
            // Redis's answer to a command: what it asked, so a misrouted answer shows.
            let slots = plan.into_slots();
            prop_assert_eq!(slots.len(), lookups.len());
            for (lookup, slots) in lookups.iter().zip(&slots) {
                let got: Vec<(usize, &[u8])> = slots.iter().map(|&command| asked[command]).collect();
                let expected: Vec<(usize, &[u8])> =
                    lookup.keys.iter().map(|key| (lookup.fields, key.as_slice())).collect();
                prop_assert_eq!(got, expected);
            }
        }
    }
}
