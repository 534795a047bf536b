//! One view's embedded snapshot (`FeatureTable`): every key's features as one row-major byte
//! row in the datatypes its model input takes (so serving a key is one copy), the rows' event
//! times, and the key -> row index. Built once per load (`TableBuilder`); read-only afterwards,
//! so any number of executors gather from it at once.

use crate::index::KeyIndex;
use crate::keys::{KeyValue, encode_key};
use crate::layout::ViewLayout;

/// Bytes a table holds, by part; `FeatureTable::memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableMemory {
    /// The feature rows.
    pub values: usize,
    /// The keys (column or arena and offsets) and the hash index.
    pub keys_and_index: usize,
    /// The event times.
    pub event_times: usize,
}

impl TableMemory {
    /// Everything the table holds.
    pub fn total(&self) -> usize {
        self.values + self.keys_and_index + self.event_times
    }
}

/// A row of a table: its features' bytes and its event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRow<'a> {
    /// The features, little-endian, in the layout's order.
    pub values: &'a [u8],
    /// When the row's values were observed, Unix microseconds, if the snapshot has event times.
    pub event_time_us: Option<i64>,
}

/// One view's embedded snapshot; see the module doc.
#[derive(Debug, Clone)]
pub struct FeatureTable {
    /// What it was built for.
    layout: ViewLayout,
    /// Row `r` is `values[r * row_bytes..][..row_bytes]`.
    values: Vec<u8>,
    /// Row `r`'s event time, Unix microseconds.
    event_times_us: Option<Vec<i64>>,
    /// Key -> row.
    index: KeyIndex,
    /// Source rows dropped because a later (or newer) row had the same key.
    duplicate_keys: usize,
}

impl FeatureTable {
    /// A table of built parts (`TableBuilder::build`).
    pub(crate) fn from_parts(
        layout: ViewLayout,
        values: Vec<u8>,
        event_times_us: Option<Vec<i64>>,
        index: KeyIndex,
        duplicate_keys: usize,
    ) -> Self {
        FeatureTable {
            layout,
            values,
            event_times_us,
            index,
            duplicate_keys,
        }
    }

    /// The layout the table was built for.
    pub fn layout(&self) -> &ViewLayout {
        &self.layout
    }

    /// The number of distinct keys.
    pub fn rows(&self) -> usize {
        self.index.len()
    }

    /// Source rows dropped because another row had the same key.
    pub fn duplicate_keys(&self) -> usize {
        self.duplicate_keys
    }

    /// Bytes the table holds.
    pub fn memory(&self) -> TableMemory {
        TableMemory {
            values: self.values.capacity(),
            keys_and_index: self.index.memory_bytes(),
            event_times: self
                .event_times_us
                .as_ref()
                .map_or(0, |times| times.capacity() * size_of::<i64>()),
        }
    }

    /// The oldest and newest event times, Unix microseconds (for `features status`).
    pub fn event_time_range_us(&self) -> Option<(i64, i64)> {
        let times = self.event_times_us.as_ref()?;
        let oldest = times.iter().min()?;
        let newest = times.iter().max()?;
        Some((*oldest, *newest))
    }

    /// The row of a key given part by part, if the table has it.
    pub fn get(&self, key: &[KeyValue<'_>]) -> Option<TableRow<'_>> {
        let row = match key {
            [KeyValue::Int64(value)] if self.layout.is_single_int64() => {
                self.index.find_int64(*value)
            }
            _ => {
                let mut encoded = Vec::new();
                encode_key(key, &mut encoded);
                self.index.find_encoded(&encoded)
            }
        }?;
        Some(self.row(row))
    }

    /// Every key, encoded, with its row (tests and tools; not the serving path).
    pub fn encoded_keys(&self) -> impl Iterator<Item = (Vec<u8>, TableRow<'_>)> + '_ {
        (0..self.rows()).map(|row| {
            // Fits: a table has fewer than u32::MAX rows.
            let row = row as u32;
            let mut key = Vec::new();
            self.index.encoded_key(row, &mut key);
            (key, self.row(row))
        })
    }

    /// Row `row`, which exists.
    #[inline]
    pub(crate) fn row(&self, row: u32) -> TableRow<'_> {
        let row = row as usize;
        let row_bytes = self.layout.row_bytes();
        TableRow {
            values: &self.values[row * row_bytes..(row + 1) * row_bytes],
            event_time_us: self.event_times_us.as_ref().map(|times| times[row]),
        }
    }

    /// The index, for the gather.
    #[inline]
    pub(crate) fn index(&self) -> &KeyIndex {
        &self.index
    }

    /// Whether the table has event times.
    pub(crate) fn has_event_times(&self) -> bool {
        self.event_times_us.is_some()
    }
}
