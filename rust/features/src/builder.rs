//! Building a view's `FeatureTable` from the columns a loader hands over (Parquet, CSV or NPZ
//! read by the Python side into contiguous arrays): checked by name, datatype and length, keys
//! indexed, features laid out row by row.
//!
//! Duplicate keys keep one row: the one with the latest event time when the snapshot has
//! event times (what Feast's online store keeps), else the last one; ties go to the later row.
//! `FeatureTable::duplicate_keys()` counts the rows dropped, so a loader can report them.

use ferroserve_tensor::{DataType, decode_bytes_offsets};

use crate::TableError;
use crate::index::{KeyIndex, Slot};
use crate::keys::KeyKind;
use crate::layout::{ViewLayout, names};
use crate::table::FeatureTable;

/// One feature's values, one per snapshot row, as the loader read them.
#[derive(Debug, Clone, Copy)]
pub enum ColumnValues<'a> {
    /// FP32 values.
    Fp32(&'a [f32]),
    /// FP64 values.
    Fp64(&'a [f64]),
    /// INT64 values.
    Int64(&'a [i64]),
    /// INT32 values.
    Int32(&'a [i32]),
}

impl ColumnValues<'_> {
    /// The values' datatype.
    pub fn datatype(&self) -> DataType {
        match self {
            ColumnValues::Fp32(_) => DataType::Fp32,
            ColumnValues::Fp64(_) => DataType::Fp64,
            ColumnValues::Int64(_) => DataType::Int64,
            ColumnValues::Int32(_) => DataType::Int32,
        }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Fp32(values) => values.len(),
            ColumnValues::Fp64(values) => values.len(),
            ColumnValues::Int64(values) => values.len(),
            ColumnValues::Int32(values) => values.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes value `row` little-endian into `out`. Panics unless `row < len()` and `out` is
    /// the value's size.
    pub fn write_le(&self, row: usize, out: &mut [u8]) {
        match self {
            ColumnValues::Fp32(values) => out.copy_from_slice(&values[row].to_le_bytes()),
            ColumnValues::Fp64(values) => out.copy_from_slice(&values[row].to_le_bytes()),
            ColumnValues::Int64(values) => out.copy_from_slice(&values[row].to_le_bytes()),
            ColumnValues::Int32(values) => out.copy_from_slice(&values[row].to_le_bytes()),
        }
    }
}

/// One key part's values, one per snapshot row.
#[derive(Debug, Clone, Copy)]
pub enum KeyColumn<'a> {
    /// INT64 keys.
    Int64(&'a [i64]),
    /// BYTES keys in the raw v2 layout (per element a 4-byte little-endian length, then the
    /// bytes), `count` elements.
    Bytes {
        /// The raw buffer.
        raw: &'a [u8],
        /// The number of elements.
        count: usize,
    },
}

impl KeyColumn<'_> {
    fn kind(&self) -> KeyKind {
        match self {
            KeyColumn::Int64(_) => KeyKind::Int64,
            KeyColumn::Bytes { .. } => KeyKind::Bytes,
        }
    }

    fn len(&self) -> usize {
        match self {
            KeyColumn::Int64(values) => values.len(),
            KeyColumn::Bytes { count, .. } => *count,
        }
    }
}

/// Collects a view's columns by name and builds its `FeatureTable`.
#[derive(Debug)]
pub struct TableBuilder<'a> {
    /// The layout to build for.
    layout: ViewLayout,
    /// One per key part, in the layout's order.
    keys: Vec<Option<KeyColumn<'a>>>,
    /// One per feature, in the layout's order.
    features: Vec<Option<ColumnValues<'a>>>,
    /// Each row's event time, Unix microseconds.
    event_times_us: Option<&'a [i64]>,
}

impl<'a> TableBuilder<'a> {
    /// A builder for a table of `layout` (from `JoinPlan::view_layout`).
    pub fn new(layout: &ViewLayout) -> Self {
        TableBuilder {
            layout: layout.clone(),
            keys: vec![None; layout.key().len()],
            features: vec![None; layout.features().len()],
            event_times_us: None,
        }
    }

    /// Sets the column of key part `name`.
    pub fn key(mut self, name: &str, column: KeyColumn<'a>) -> Result<Self, TableError> {
        let view = self.layout.view();
        let Some(position) = self.layout.key().iter().position(|part| part.name == name) else {
            return Err(TableError::UnknownColumn {
                view: view.to_owned(),
                column: name.to_owned(),
                what: "a key part",
                expected: names(self.layout.key().iter().map(|part| part.name.as_str())),
            });
        };
        let expected = self.layout.key()[position].kind;
        if column.kind() != expected {
            let datatype = |kind| match kind {
                KeyKind::Int64 => DataType::Int64,
                KeyKind::Bytes => DataType::Bytes,
            };
            return Err(TableError::WrongDatatype {
                view: view.to_owned(),
                column: name.to_owned(),
                expected: datatype(expected),
                actual: datatype(column.kind()),
            });
        }
        if self.keys[position].replace(column).is_some() {
            return Err(TableError::DuplicateColumn {
                view: view.to_owned(),
                column: name.to_owned(),
            });
        }
        Ok(self)
    }

    /// Sets the values of feature `name`.
    pub fn feature(mut self, name: &str, values: ColumnValues<'a>) -> Result<Self, TableError> {
        let view = self.layout.view();
        let Some(position) = self
            .layout
            .features()
            .iter()
            .position(|slot| slot.name == name)
        else {
            return Err(TableError::UnknownColumn {
                view: view.to_owned(),
                column: name.to_owned(),
                what: "a feature",
                expected: names(self.layout.features().iter().map(|slot| slot.name.as_str())),
            });
        };
        let expected = self.layout.features()[position].datatype;
        if values.datatype() != expected {
            return Err(TableError::WrongDatatype {
                view: view.to_owned(),
                column: name.to_owned(),
                expected,
                actual: values.datatype(),
            });
        }
        if self.features[position].replace(values).is_some() {
            return Err(TableError::DuplicateColumn {
                view: view.to_owned(),
                column: name.to_owned(),
            });
        }
        Ok(self)
    }

    /// Sets each row's event time, Unix microseconds (needed when the view has a max age).
    pub fn event_times_us(mut self, times: &'a [i64]) -> Self {
        self.event_times_us = Some(times);
        self
    }

    /// Builds the table: checks that every column is there with one value per row, indexes the
    /// keys (see the module doc for duplicates) and lays the features out row by row.
    pub fn build(self) -> Result<FeatureTable, TableError> {
        let layout = self.layout;
        let view = layout.view().to_owned();
        let missing = |column: &str| TableError::MissingColumn {
            view: view.clone(),
            column: column.to_owned(),
        };
        let mut keys = Vec::with_capacity(self.keys.len());
        for (part, column) in layout.key().iter().zip(self.keys) {
            keys.push(column.ok_or_else(|| missing(&part.name))?);
        }
        let mut features = Vec::with_capacity(self.features.len());
        for (slot, column) in layout.features().iter().zip(self.features) {
            features.push(column.ok_or_else(|| missing(&slot.name))?);
        }
        let rows = keys.first().map_or(0, KeyColumn::len);
        let check_length = |column: &str, actual: usize| {
            if actual == rows {
                Ok(())
            } else {
                Err(TableError::LengthMismatch {
                    view: view.clone(),
                    column: column.to_owned(),
                    expected: rows,
                    actual,
                })
            }
        };
        for (part, column) in layout.key().iter().zip(&keys) {
            check_length(&part.name, column.len())?;
        }
        for (slot, column) in layout.features().iter().zip(&features) {
            check_length(&slot.name, column.len())?;
        }
        if let Some(times) = self.event_times_us {
            check_length("event timestamp", times.len())?;
        } else if layout.max_age_us().is_some() {
            return Err(TableError::MissingEventTimes { view });
        }

        let index = build_index(&layout, &keys, rows, self.event_times_us)?;
        let IndexedKeys {
            mut index,
            source_rows,
            duplicate_keys,
        } = index;
        index.shrink_to_fit();

        let row_bytes = layout.row_bytes();
        let mut values = vec![0u8; source_rows.len() * row_bytes];
        // Feature by feature: each column is read in (nearly) sequential order.
        for (slot, column) in layout.features().iter().zip(&features) {
            let size = slot.datatype.element_size().unwrap_or(0);
            for (row, &source) in values.chunks_exact_mut(row_bytes).zip(&source_rows) {
                column.write_le(source as usize, &mut row[slot.offset..slot.offset + size]);
            }
        }
        let event_times_us = self
            .event_times_us
            .map(|times| source_rows.iter().map(|&row| times[row as usize]).collect());
        Ok(FeatureTable::from_parts(
            layout,
            values,
            event_times_us,
            index,
            duplicate_keys,
        ))
    }
}

/// The index of a table being built, with the source row each table row takes its values from.
struct IndexedKeys {
    /// Key -> table row.
    index: KeyIndex,
    /// Table row -> source row.
    source_rows: Vec<u32>,
    /// Source rows dropped for a duplicate key.
    duplicate_keys: usize,
}

/// Indexes the keys of `rows` source rows; a duplicate key's row is replaced by a later source
/// row with an event time at least as new (any later row when there are no event times).
fn build_index(
    layout: &ViewLayout,
    keys: &[KeyColumn<'_>],
    rows: usize,
    event_times_us: Option<&[i64]>,
) -> Result<IndexedKeys, TableError> {
    let view = layout.view();
    // Each BYTES column's elements, found once.
    let mut bytes_ranges = Vec::with_capacity(keys.len());
    let mut key_bytes = 0usize;
    for (part, column) in layout.key().iter().zip(keys) {
        match column {
            KeyColumn::Int64(_) => {
                bytes_ranges.push(Vec::new());
                key_bytes = key_bytes.saturating_add(rows * 8);
            }
            KeyColumn::Bytes { raw, count } => {
                let ranges = decode_bytes_offsets(raw, *count).map_err(|source| {
                    TableError::BadBytesColumn {
                        view: view.to_owned(),
                        column: part.name.clone(),
                        source,
                    }
                })?;
                key_bytes = key_bytes.saturating_add(raw.len());
                bytes_ranges.push(ranges);
            }
        }
    }
    if rows >= u32::MAX as usize || key_bytes >= u32::MAX as usize {
        return Err(TableError::TooLarge {
            view: view.to_owned(),
            rows,
            key_bytes,
        });
    }

    let single_int64 = match keys {
        [KeyColumn::Int64(values)] => Some(*values),
        _ => None,
    };
    let mut index = match single_int64 {
        Some(_) => KeyIndex::int64(rows),
        None => KeyIndex::encoded(rows, key_bytes),
    };
    let mut source_rows: Vec<u32> = Vec::with_capacity(rows);
    let mut duplicate_keys = 0;
    let mut encoded = Vec::new();
    for source in 0..rows {
        let slot = match single_int64 {
            Some(values) => index.insert_int64(values[source]),
            None => {
                encoded.clear();
                for (column, ranges) in keys.iter().zip(&bytes_ranges) {
                    match column {
                        KeyColumn::Int64(values) => {
                            encoded.extend_from_slice(&values[source].to_le_bytes());
                        }
                        // The element with its length prefix: exactly its encoding.
                        KeyColumn::Bytes { raw, .. } => {
                            let range = &ranges[source];
                            encoded.extend_from_slice(&raw[range.start - 4..range.end]);
                        }
                    }
                }
                index.insert_encoded(&encoded)
            }
        };
        // Fits: rows < u32::MAX was checked above.
        let source_row = source as u32;
        match slot {
            Slot::Added(_) => source_rows.push(source_row),
            Slot::Existing(row) => {
                duplicate_keys += 1;
                let kept = &mut source_rows[row as usize];
                let newer =
                    event_times_us.is_none_or(|times| times[source] >= times[*kept as usize]);
                if newer {
                    *kept = source_row;
                }
            }
        }
    }
    Ok(IndexedKeys {
        index,
        source_rows,
        duplicate_keys,
    })
}
