//! One key's `HMGET` answer (the view's feature fields, then `_ts:{view}`) decoded into the
//! next row of a `FetchedRows`, in the view's row layout:
//! - no field at all: a missing row (the key has no hash, or none of this view's fields);
//! - every present value of an accepted type (`value` module doc): a found row, with `_ts` as
//!   its event time (none if absent: never stale), so the join applies the view's max age;
//! - an absent or null feature in a found row: the feature's default under `USE_DEFAULT`, the
//!   whole row missing under `REJECT` (counted either way);
//! - a value of another type, or bytes that are not a `Value` / `Timestamp`: the row is served as
//!   missing and counted, never served as garbage.

use ferroserve_features::{FetchedRows, MissingPolicy};

use crate::stats::CallCounts;
use crate::value::{FeastValue, decode_timestamp};
use crate::view::FeastView;

/// Where decoded rows go: the join's `FetchedRows` when serving, `StoredRow`s for tools.
pub(crate) trait RowSink {
    /// A found row in the view's layout, with its event time.
    fn push_found(&mut self, values: &[u8], event_time_us: Option<i64>);
    /// No row for the key.
    fn push_missing(&mut self);
    /// The store could not be asked.
    fn push_unavailable(&mut self);
}

impl RowSink for FetchedRows {
    fn push_found(&mut self, values: &[u8], event_time_us: Option<i64>) {
        FetchedRows::push_found(self, values, event_time_us);
    }
    fn push_missing(&mut self) {
        FetchedRows::push_missing(self);
    }
    fn push_unavailable(&mut self) {
        FetchedRows::push_unavailable(self);
    }
}

/// One key's row as the reader decoded it (`RedisStore::read`, for tools and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRow {
    /// Found: the features in the view's row layout (defaults where absent or null) and the
    /// event time from `_ts`, Unix microseconds.
    Found {
        /// The row's bytes.
        values: Vec<u8>,
        /// Its event time, if stored.
        event_time_us: Option<i64>,
    },
    /// No row, or a row that cannot be served (counted as a bad row).
    Missing,
    /// The store could not be asked.
    Unavailable,
}

impl RowSink for Vec<StoredRow> {
    fn push_found(&mut self, values: &[u8], event_time_us: Option<i64>) {
        self.push(StoredRow::Found {
            values: values.to_vec(),
            event_time_us,
        });
    }
    fn push_missing(&mut self) {
        self.push(StoredRow::Missing);
    }
    fn push_unavailable(&mut self) {
        self.push(StoredRow::Unavailable);
    }
}

/// Appends the row whose fields hold `values` (`view.fields()` order; `None` = absent) to
/// `out`. `row` is scratch space, reused across rows.
pub(crate) fn push_row(
    view: &FeastView,
    values: &[Option<&[u8]>],
    row: &mut Vec<u8>,
    out: &mut impl RowSink,
    counts: &mut CallCounts,
) {
    let features = view.features();
    if values.len() != features.len() + 1 {
        counts.bad_rows += 1;
        out.push_missing();
        return;
    }
    if values.iter().all(Option::is_none) {
        counts.missing += 1;
        out.push_missing();
        return;
    }
    let event_time_us = match values[features.len()] {
        None => None,
        Some(bytes) => match decode_timestamp(bytes) {
            Some(time) => Some(time),
            None => {
                counts.bad_rows += 1;
                out.push_missing();
                return;
            }
        },
    };
    let layout = view.layout();
    row.clear();
    row.extend_from_slice(layout.default_row());
    let mut nulls = 0;
    for (slot, value) in features.iter().zip(values) {
        let decoded = match value {
            None => FeastValue::Null,
            Some(bytes) => match FeastValue::decode(bytes) {
                Ok(decoded) => decoded,
                Err(_) => {
                    counts.bad_rows += 1;
                    out.push_missing();
                    return;
                }
            },
        };
        if decoded == FeastValue::Null {
            nulls += 1;
            continue;
        }
        let width = slot.datatype.element_size().unwrap_or(0);
        let Some(target) = row.get_mut(slot.offset..slot.offset + width) else {
            counts.bad_rows += 1;
            out.push_missing();
            return;
        };
        if !decoded.write_as(slot.datatype, target) {
            counts.bad_rows += 1;
            out.push_missing();
            return;
        }
    }
    counts.null_values += nulls;
    if nulls > 0 && layout.on_missing() == MissingPolicy::Reject {
        counts.missing += 1;
        out.push_missing();
        return;
    }
    counts.found += 1;
    out.push_found(row, event_time_us);
}
