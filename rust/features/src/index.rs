//! The key -> row index of one snapshot table: a bare hash table of 32-bit row numbers over a
//! key column, so the index costs about 5 bytes per slot (row number + control byte) beyond the
//! keys themselves. A single INT64 key is kept as an `i64` column (hash and compare one word);
//! every other key (BYTES, composite) as its encoding in one arena with end offsets.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// Where a key's row is, or that it is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The key was already there, at this row.
    Existing(u32),
    /// The key was added at this row (the next one).
    Added(u32),
}

/// The keys of a table, in row order, with their hash index.
#[derive(Debug, Clone)]
pub(crate) enum KeyIndex {
    /// A single INT64 key part.
    Int64 {
        /// Row `r`'s key.
        keys: Vec<i64>,
        /// Row numbers, hashed by their key.
        rows: HashTable<u32>,
        /// The hasher (seeded per table).
        hasher: RandomState,
    },
    /// Any other key, encoded (`keys::encode_key`).
    Encoded {
        /// Every row's encoded key, back to back.
        arena: Vec<u8>,
        /// Row `r`'s key is `arena[ends[r-1]..ends[r]]` (from 0 for row 0).
        ends: Vec<u32>,
        /// Row numbers, hashed by their key.
        rows: HashTable<u32>,
        /// The hasher (seeded per table).
        hasher: RandomState,
    },
}

/// Row `row`'s encoded key in an arena with end offsets.
fn arena_key<'a>(arena: &'a [u8], ends: &[u32], row: u32) -> &'a [u8] {
    let row = row as usize;
    let start = if row == 0 { 0 } else { ends[row - 1] as usize };
    &arena[start..ends[row] as usize]
}

impl KeyIndex {
    /// An empty index of INT64 keys with room for `rows` keys.
    pub(crate) fn int64(rows: usize) -> Self {
        KeyIndex::Int64 {
            keys: Vec::with_capacity(rows),
            rows: HashTable::with_capacity(rows),
            hasher: RandomState::default(),
        }
    }

    /// An empty index of encoded keys with room for `rows` keys of `key_bytes` in all.
    pub(crate) fn encoded(rows: usize, key_bytes: usize) -> Self {
        KeyIndex::Encoded {
            arena: Vec::with_capacity(key_bytes),
            ends: Vec::with_capacity(rows),
            rows: HashTable::with_capacity(rows),
            hasher: RandomState::default(),
        }
    }

    /// The number of distinct keys.
    pub(crate) fn len(&self) -> usize {
        match self {
            KeyIndex::Int64 { keys, .. } => keys.len(),
            KeyIndex::Encoded { ends, .. } => ends.len(),
        }
    }

    /// Bytes held: keys, offsets and hash table (allocated capacity, not only what is used).
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            KeyIndex::Int64 { keys, rows, .. } => {
                keys.capacity() * size_of::<i64>() + rows.allocation_size()
            }
            KeyIndex::Encoded {
                arena, ends, rows, ..
            } => arena.capacity() + ends.capacity() * size_of::<u32>() + rows.allocation_size(),
        }
    }

    /// Drops spare capacity once the table is built.
    pub(crate) fn shrink_to_fit(&mut self) {
        match self {
            KeyIndex::Int64 { keys, .. } => keys.shrink_to_fit(),
            KeyIndex::Encoded { arena, ends, .. } => {
                arena.shrink_to_fit();
                ends.shrink_to_fit();
            }
        }
    }

    /// The row of an INT64 key (an index of INT64 keys only; `None` otherwise).
    #[inline]
    pub(crate) fn find_int64(&self, key: i64) -> Option<u32> {
        match self {
            KeyIndex::Int64 {
                keys, rows, hasher, ..
            } => rows
                .find(hasher.hash_one(key), |&row| keys[row as usize] == key)
                .copied(),
            KeyIndex::Encoded { .. } => None,
        }
    }

    /// The row of an encoded key (for an INT64 index, its 8 little-endian bytes).
    #[inline]
    pub(crate) fn find_encoded(&self, key: &[u8]) -> Option<u32> {
        match self {
            KeyIndex::Int64 { .. } => {
                let bytes: [u8; 8] = key.try_into().ok()?;
                self.find_int64(i64::from_le_bytes(bytes))
            }
            KeyIndex::Encoded {
                arena,
                ends,
                rows,
                hasher,
            } => rows
                .find(hasher.hash_one(key), |&row| {
                    arena_key(arena, ends, row) == key
                })
                .copied(),
        }
    }

    /// Row `row`'s encoded key, appended to `out`.
    pub(crate) fn encoded_key(&self, row: u32, out: &mut Vec<u8>) {
        match self {
            KeyIndex::Int64 { keys, .. } => {
                out.extend_from_slice(&keys[row as usize].to_le_bytes())
            }
            KeyIndex::Encoded { arena, ends, .. } => {
                out.extend_from_slice(arena_key(arena, ends, row));
            }
        }
    }

    /// Finds or adds an INT64 key. The caller keeps rows below `u32::MAX`.
    pub(crate) fn insert_int64(&mut self, key: i64) -> Slot {
        let KeyIndex::Int64 { keys, rows, hasher } = self else {
            unreachable!("insert_int64 on an index of encoded keys. This is a bug.");
        };
        let hash = hasher.hash_one(key);
        if let Some(&row) = rows.find(hash, |&row| keys[row as usize] == key) {
            return Slot::Existing(row);
        }
        // Fits: the builder refuses tables of u32::MAX rows or more.
        let row = keys.len() as u32;
        keys.push(key);
        rows.insert_unique(hash, row, |&row| hasher.hash_one(keys[row as usize]));
        Slot::Added(row)
    }

    /// Finds or adds an encoded key. The caller keeps rows and arena bytes below `u32::MAX`.
    pub(crate) fn insert_encoded(&mut self, key: &[u8]) -> Slot {
        let KeyIndex::Encoded {
            arena,
            ends,
            rows,
            hasher,
        } = self
        else {
            unreachable!("insert_encoded on an index of INT64 keys. This is a bug.");
        };
        let hash = hasher.hash_one(key);
        if let Some(&row) = rows.find(hash, |&row| arena_key(arena, ends, row) == key) {
            return Slot::Existing(row);
        }
        // Fits: the builder refuses tables of u32::MAX rows or key bytes or more.
        let row = ends.len() as u32;
        arena.extend_from_slice(key);
        ends.push(arena.len() as u32);
        rows.insert_unique(hash, row, |&row| {
            hasher.hash_one(arena_key(arena, ends, row))
        });
        Slot::Added(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_keys_find_their_rows() {
        let mut index = KeyIndex::int64(4);
        assert_eq!(index.insert_int64(7), Slot::Added(0));
        assert_eq!(index.insert_int64(-1), Slot::Added(1));
        assert_eq!(index.insert_int64(7), Slot::Existing(0));
        assert_eq!(index.find_int64(-1), Some(1));
        assert_eq!(index.find_int64(8), None);
        assert_eq!(index.find_encoded(&7i64.to_le_bytes()), Some(0));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn encoded_keys_find_their_rows_past_growth() {
        let mut index = KeyIndex::encoded(1, 1);
        for n in 0..1000u32 {
            assert_eq!(index.insert_encoded(&n.to_le_bytes()), Slot::Added(n));
        }
        assert_eq!(index.insert_encoded(&5u32.to_le_bytes()), Slot::Existing(5));
        for n in 0..1000u32 {
            assert_eq!(index.find_encoded(&n.to_le_bytes()), Some(n));
        }
        assert_eq!(index.find_encoded(b"abc"), None);
        let mut key = Vec::new();
        index.encoded_key(999, &mut key);
        assert_eq!(key, 999u32.to_le_bytes());
    }
}
