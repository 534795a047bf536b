//! The join: from a batch's (or one request's) request buffers and each view's rows, write the
//! model's input buffers, row-major, batch dimension first: request-time columns copied, each
//! view's segment filled with the key's stored row, or the view's defaults when the key is
//! missing, stale or its store unavailable (counted), and rejected rows reported. Nothing is
//! allocated per key: a single INT64 key is read and hashed in place, a single BYTES key is its
//! request element as is, and a composite key is encoded into one buffer reused for all rows.

use std::time::Instant;

use crate::JoinError;
use crate::declaration::MissingPolicy;
use crate::fetched::{FetchedRow, FetchedRows};
use crate::keys::{PartColumn, check_bytes_rows, int64_at, render_key};
use crate::layout::ViewLayout;
use crate::plan::{JoinPlan, SegmentSource};
use crate::rejection::{RejectReason, Rejection};
use crate::stats::ViewTally;
use crate::store::Snapshot;
use crate::table::FeatureTable;

/// Where one view's rows come from for one gather call.
#[derive(Debug, Clone, Copy)]
pub enum ViewSource<'a> {
    /// An embedded table (from the one `Snapshot` the batch took).
    Embedded(&'a FeatureTable),
    /// Rows fetched for exactly these rows (the front end's Redis lookups).
    Fetched(&'a FetchedRows),
}

/// One key's row as found in its source.
#[derive(Debug, Clone, Copy)]
enum Lookup<'a> {
    /// Found: its values and event time.
    Found(&'a [u8], Option<i64>),
    /// Not there.
    Missing,
    /// Its store could not be asked.
    Unavailable,
}

impl<'a> From<FetchedRow<'a>> for Lookup<'a> {
    fn from(row: FetchedRow<'a>) -> Self {
        match row {
            FetchedRow::Found(values, time) => Lookup::Found(values, time),
            FetchedRow::Missing => Lookup::Missing,
            FetchedRow::Unavailable => Lookup::Unavailable,
        }
    }
}

/// Writes the row `lookup` gives, or the defaults, into `out`, counts it, and says why the row
/// is rejected under a reject policy. A row without an event time is never stale.
#[inline]
fn serve(
    layout: &ViewLayout,
    lookup: Lookup<'_>,
    now_us: i64,
    out: &mut [u8],
    tally: &mut ViewTally,
) -> Option<RejectReason> {
    let reason = match lookup {
        Lookup::Found(values, event_time_us) => match (layout.max_age_us(), event_time_us) {
            (Some(max_age_us), Some(time)) if now_us.saturating_sub(time) > max_age_us => {
                tally.stale += 1;
                RejectReason::Stale {
                    age_us: now_us.saturating_sub(time),
                    max_age_us,
                }
            }
            _ => {
                out.copy_from_slice(values);
                tally.hits += 1;
                return None;
            }
        },
        Lookup::Missing => {
            tally.misses += 1;
            RejectReason::Missing
        }
        Lookup::Unavailable => {
            tally.unavailable += 1;
            RejectReason::Unavailable
        }
    };
    out.copy_from_slice(layout.default_row());
    match layout.on_missing() {
        MissingPolicy::UseDefault => None,
        MissingPolicy::Reject => {
            tally.rejected += 1;
            Some(reason)
        }
    }
}

impl JoinPlan {
    /// Gathers a batch whose views are all embedded, from the one snapshot the batch took
    /// (`FeatureStore::load`). See `gather_from` for the buffers and the result.
    pub fn gather(
        &self,
        snapshot: &Snapshot,
        request: &[&[u8]],
        rows: usize,
        now_us: i64,
        out: &mut [&mut [u8]],
    ) -> Result<Vec<Rejection>, JoinError> {
        self.gather_with(
            |view| {
                snapshot
                    .table(view)
                    .map(ViewSource::Embedded)
                    .ok_or_else(|| JoinError::ViewNotLoaded {
                        view: self.view_layouts()[view].view().to_owned(),
                    })
            },
            request,
            rows,
            now_us,
            out,
        )
    }

    /// Writes the model inputs of `rows` rows.
    ///
    /// - `sources`: one per view, in plan order (`view_position`).
    /// - `request`: the request inputs' raw little-endian bytes, in `request_inputs` order,
    ///   `rows` rows each (a BYTES key input: `rows` length-prefixed elements).
    /// - `now_us`: the time rows' ages are measured at, Unix microseconds.
    /// - `out`: one buffer per model input in signature order, each exactly
    ///   `rows * model_inputs()[i].row_bytes()` bytes (the executor's batch buffers; every byte
    ///   is written).
    ///
    /// Returns the rows rejected under a reject policy (usually none; nothing is allocated
    /// then): answer their requests NOT_FOUND with the rejection's message and the rest as
    /// usual. An error means buffers that do not fit the plan, or a view not loaded; the
    /// outputs are then incomplete.
    pub fn gather_from(
        &self,
        sources: &[ViewSource<'_>],
        request: &[&[u8]],
        rows: usize,
        now_us: i64,
        out: &mut [&mut [u8]],
    ) -> Result<Vec<Rejection>, JoinError> {
        if sources.len() != self.view_layouts().len() {
            return Err(JoinError::SourceCount {
                expected: self.view_layouts().len(),
                actual: sources.len(),
            });
        }
        self.gather_with(|view| Ok(sources[view]), request, rows, now_us, out)
    }

    /// The gather, with each view's source from `source_of`.
    fn gather_with<'s>(
        &self,
        source_of: impl Fn(usize) -> Result<ViewSource<'s>, JoinError>,
        request: &[&[u8]],
        rows: usize,
        now_us: i64,
        out: &mut [&mut [u8]],
    ) -> Result<Vec<Rejection>, JoinError> {
        let started = Instant::now();
        self.check_buffers(request, rows, out)?;
        let mut rejections = Vec::new();
        // An embedded view's lookup latency is the time from the previous embedded view's end
        // (or the gather's start: the buffer checks, and request columns copied before it,
        // count) to its own end, so a clock read at each view's end is all it costs; with one
        // view it is the gather time. `ended` is that last read while nothing ran after it:
        // the gather's end then. A clock read costs ~40 ns on our VMs, a 1-key gather ~140.
        let mut mark = started;
        let mut ended = None;
        for (input, buffer) in self.model_inputs().iter().zip(out.iter_mut()) {
            let row_bytes = input.row_bytes();
            for segment in input.segments() {
                let range = segment.offset..segment.offset + segment.bytes;
                match segment.source {
                    SegmentSource::Request(position) if segment.bytes == row_bytes => {
                        ended = None;
                        buffer.copy_from_slice(request[position]);
                    }
                    SegmentSource::Request(position) => {
                        ended = None;
                        let rows_in = request[position].chunks_exact(segment.bytes);
                        for (row_out, row_in) in buffer.chunks_exact_mut(row_bytes).zip(rows_in) {
                            row_out[range.clone()].copy_from_slice(row_in);
                        }
                    }
                    SegmentSource::View(view) => {
                        let source = source_of(view)?;
                        let rows_out = buffer
                            .chunks_exact_mut(row_bytes)
                            .map(|row| &mut row[range.clone()]);
                        self.gather_view(
                            view,
                            source,
                            request,
                            rows,
                            now_us,
                            rows_out,
                            &mut rejections,
                        )?;
                        ended = None;
                        match source {
                            ViewSource::Embedded(_) => {
                                let now = Instant::now();
                                self.stats().record_latency(view, now.duration_since(mark));
                                mark = now;
                                ended = Some(now);
                            }
                            // A fetched view's latency is its fetch (the join's part is a copy).
                            ViewSource::Fetched(fetched) => {
                                if let Some(took) = fetched.fetch_time() {
                                    self.stats().record_latency(view, took);
                                }
                            }
                        }
                    }
                }
            }
        }
        let took = ended.unwrap_or_else(Instant::now).duration_since(started);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.stats().add_gather(rows, nanos);
        Ok(rejections)
    }

    /// Checks every buffer's size (and every BYTES key input's elements) before anything is
    /// written, so the gather itself cannot fail halfway on a malformed buffer.
    fn check_buffers(
        &self,
        request: &[&[u8]],
        rows: usize,
        out: &[&mut [u8]],
    ) -> Result<(), JoinError> {
        let declared = self.request_inputs();
        if request.len() != declared.len() {
            return Err(JoinError::RequestInputCount {
                expected: declared.len(),
                actual: request.len(),
            });
        }
        for (position, (input, buffer)) in declared.iter().zip(request).enumerate() {
            match self.request_row_bytes(position) {
                Some(row_bytes) if buffer.len() != rows * row_bytes => {
                    return Err(JoinError::RequestInputSize {
                        input: input.name.clone(),
                        rows,
                        expected: rows * row_bytes,
                        actual: buffer.len(),
                    });
                }
                Some(_) => {}
                None => check_bytes_rows(&input.name, buffer, rows)?,
            }
        }
        let inputs = self.model_inputs();
        if out.len() != inputs.len() {
            return Err(JoinError::OutputCount {
                expected: inputs.len(),
                actual: out.len(),
            });
        }
        for (input, buffer) in inputs.iter().zip(out) {
            if buffer.len() != rows * input.row_bytes() {
                return Err(JoinError::OutputSize {
                    model_input: input.name().to_owned(),
                    expected: rows * input.row_bytes(),
                    actual: buffer.len(),
                });
            }
        }
        Ok(())
    }

    /// Fills view `view`'s segment of every row (`rows_out`, in row order) from `source`.
    #[allow(clippy::too_many_arguments)]
    fn gather_view<'o>(
        &self,
        view: usize,
        source: ViewSource<'_>,
        request: &[&[u8]],
        rows: usize,
        now_us: i64,
        rows_out: impl Iterator<Item = &'o mut [u8]>,
        rejections: &mut Vec<Rejection>,
    ) -> Result<(), JoinError> {
        let layout = &self.view_layouts()[view];
        let source_row_bytes = match source {
            ViewSource::Embedded(table) => table.layout().row_bytes(),
            ViewSource::Fetched(fetched) => {
                if fetched.len() != rows {
                    return Err(JoinError::FetchedRowCount {
                        view: layout.view().to_owned(),
                        expected: rows,
                        actual: fetched.len(),
                    });
                }
                fetched.row_bytes()
            }
        };
        if source_row_bytes != layout.row_bytes() {
            return Err(JoinError::RowSize {
                view: layout.view().to_owned(),
                expected: layout.row_bytes(),
                actual: source_row_bytes,
            });
        }
        let key_inputs = self.view_key_inputs(view);
        let mut tally = ViewTally {
            lookups: rows as u64,
            ..ViewTally::default()
        };
        let mut reject = |row: usize, reason: RejectReason| {
            rejections.push(Rejection {
                row,
                view: layout.view().to_owned(),
                key: self.render_request_key(view, request, row),
                reason,
            });
        };
        match source {
            ViewSource::Fetched(fetched) => {
                for (row, out) in rows_out.enumerate() {
                    let lookup = fetched.row(row).into();
                    if let Some(reason) = serve(layout, lookup, now_us, out, &mut tally) {
                        reject(row, reason);
                    }
                }
            }
            // The common case: one INT64 key, read and hashed in place.
            ViewSource::Embedded(table) if layout.is_single_int64() => {
                let keys = request[key_inputs[0]].chunks_exact(8);
                let index = table.index();
                for (row, (key, out)) in keys.zip(rows_out).enumerate() {
                    let key = int64_at(key, 0);
                    let lookup = match index.find_int64(key) {
                        Some(found) => {
                            let found = table.row(found);
                            Lookup::Found(found.values, found.event_time_us)
                        }
                        None => Lookup::Missing,
                    };
                    if let Some(reason) = serve(layout, lookup, now_us, out, &mut tally) {
                        reject(row, reason);
                    }
                }
            }
            ViewSource::Embedded(table) => {
                let mut columns: Vec<PartColumn<'_>> = key_inputs
                    .iter()
                    .zip(layout.key())
                    .map(|(&input, part)| PartColumn::new(part.kind, request[input]))
                    .collect();
                let mut encoded = Vec::new();
                let index = table.index();
                for (row, out) in rows_out.enumerate() {
                    let key = match columns.as_mut_slice() {
                        // A single part is its own encoding: no copy.
                        [column] => column.next_encoded(row).unwrap_or(&[]),
                        columns => {
                            encoded.clear();
                            for column in columns.iter_mut() {
                                encoded.extend_from_slice(column.next_encoded(row).unwrap_or(&[]));
                            }
                            encoded.as_slice()
                        }
                    };
                    let lookup = match index.find_encoded(key) {
                        Some(found) => {
                            let found = table.row(found);
                            Lookup::Found(found.values, found.event_time_us)
                        }
                        None => Lookup::Missing,
                    };
                    if let Some(reason) = serve(layout, lookup, now_us, out, &mut tally) {
                        reject(row, reason);
                    }
                }
            }
        }
        self.stats().add_view(view, &tally);
        Ok(())
    }

    /// Row `row`'s key of view `view`, rendered from the request (rejections only: it walks
    /// BYTES inputs from their start).
    fn render_request_key(&self, view: usize, request: &[&[u8]], row: usize) -> String {
        let layout = &self.view_layouts()[view];
        let mut encoded = Vec::new();
        for (&input, part) in self.view_key_inputs(view).iter().zip(layout.key()) {
            let mut column = PartColumn::new(part.kind, request[input]);
            let mut element = None;
            for at in 0..=row {
                element = column.next_encoded(at);
            }
            encoded.extend_from_slice(element.unwrap_or(&[]));
        }
        render_key(layout.key(), &encoded)
    }
}
