//! Rows of one view fetched outside the embedded store (the front end's Redis lookups), one per
//! row of a request, in the request's row order. The front end decodes each fetched row into the
//! view's row layout (`ViewLayout::features`: datatype and byte offset per feature) and the
//! join serves it exactly as it serves an embedded table's row: missing, unavailable and stale
//! rows get the same defaults, counters and rejections. The fetcher also says how long the rows
//! took to get here (`set_fetch_time`), which the join records as the view's lookup latency.

use std::time::Duration;

use crate::layout::ViewLayout;

/// What was fetched for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetched {
    /// The key's row, at this position in `values`, with its event time.
    Found {
        /// The row's index into the values.
        position: u32,
        /// Unix microseconds, if the store keeps event times.
        event_time_us: Option<i64>,
    },
    /// The store has no row for the key.
    Missing,
    /// The store could not be asked (down, timed out); served like a missing key, counted apart.
    Unavailable,
}

/// One view's fetched rows for the rows of a request; see the module doc.
#[derive(Debug, Clone)]
pub struct FetchedRows {
    /// Bytes of one row (the view's).
    row_bytes: usize,
    /// The found rows' values, back to back.
    values: Vec<u8>,
    /// Per request row, in order.
    rows: Vec<Fetched>,
    /// How long fetching them took, if the fetcher said (`set_fetch_time`).
    fetch_time: Option<Duration>,
}

/// One fetched row as the join sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchedRow<'a> {
    /// Found, with its values and event time.
    Found(&'a [u8], Option<i64>),
    /// No row for the key.
    Missing,
    /// The store could not be asked.
    Unavailable,
}

impl FetchedRows {
    /// Empty, with room for `rows` rows of `layout`'s view.
    pub fn with_capacity(layout: &ViewLayout, rows: usize) -> Self {
        FetchedRows {
            row_bytes: layout.row_bytes(),
            values: Vec::with_capacity(rows * layout.row_bytes()),
            rows: Vec::with_capacity(rows),
            fetch_time: None,
        }
    }

    /// Records how long fetching the rows took (a Redis round trip, with the keys' encoding and
    /// the answers' decoding): the join records it as the view's lookup latency.
    pub fn set_fetch_time(&mut self, took: Duration) {
        self.fetch_time = Some(took);
    }

    /// How long fetching the rows took; None if the fetcher did not say (no latency is then
    /// recorded for them).
    pub fn fetch_time(&self) -> Option<Duration> {
        self.fetch_time
    }

    /// Adds the next row: found, with its features in the view's layout (`values` must be
    /// `row_bytes` long; a short row is padded with zeros, a long one cut, so a decoder bug
    /// cannot shift later rows) and its event time in Unix microseconds if known.
    pub fn push_found(&mut self, values: &[u8], event_time_us: Option<i64>) {
        // Fits: a request has far fewer rows than u32::MAX.
        let position = self.found_count() as u32;
        let start = self.values.len();
        let take = values.len().min(self.row_bytes);
        self.values.extend_from_slice(&values[..take]);
        self.values.resize(start + self.row_bytes, 0);
        self.rows.push(Fetched::Found {
            position,
            event_time_us,
        });
    }

    /// Adds the next row: the store has none for its key.
    pub fn push_missing(&mut self) {
        self.rows.push(Fetched::Missing);
    }

    /// Adds the next row: the store could not be asked for it.
    pub fn push_unavailable(&mut self) {
        self.rows.push(Fetched::Unavailable);
    }

    /// The number of rows added.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes of one row.
    pub(crate) fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Rows found so far.
    fn found_count(&self) -> usize {
        self.values.len().checked_div(self.row_bytes).unwrap_or(0)
    }

    /// Row `row` of the request.
    #[inline]
    pub(crate) fn row(&self, row: usize) -> FetchedRow<'_> {
        match self.rows[row] {
            Fetched::Found {
                position,
                event_time_us,
            } => {
                let start = position as usize * self.row_bytes;
                FetchedRow::Found(&self.values[start..start + self.row_bytes], event_time_us)
            }
            Fetched::Missing => FetchedRow::Missing,
            Fetched::Unavailable => FetchedRow::Unavailable,
        }
    }
}
