//! A formed batch: the requests' tokens, their inputs concatenated along dim 0, and the
//! splitting of the model's outputs back into per-request rows. BYTES inputs concatenate like
//! any other (the raw format is self-delimiting: a batch's elements are its requests' elements
//! back to back); BYTES outputs are cut by walking their length prefixes.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::BatchError;
use crate::forming::Entry;

/// The bytes of one batched input.
#[derive(Debug)]
pub enum BatchData<B> {
    /// The requests' buffers concatenated along dim 0.
    Owned(Vec<u8>),
    /// The only request's own buffer, passed through without a copy.
    Single(B),
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for BatchData<B> {
    fn as_ref(&self) -> &[u8] {
        match self {
            BatchData::Owned(bytes) => bytes,
            BatchData::Single(buffer) => buffer.as_ref(),
        }
    }
}

/// One input of a batch: its bytes and its combined shape.
#[derive(Debug)]
pub struct BatchInput<B> {
    /// C-contiguous bytes of the whole batch.
    pub data: BatchData<B>,
    /// Shape with dim 0 = the batch's total rows (or the request's own shape without batching).
    pub shape: Vec<i64>,
}

/// How a batch's outputs divide into its requests' rows; outlives the batch's buffers.
#[derive(Debug, Clone)]
pub struct OutputSplitter {
    /// Model name, for error messages.
    model: String,
    /// Whether dim 0 is a batch dim (max_batch_size > 0).
    batching: bool,
    /// Each request's rows in dim 0 (1 each without batching).
    rows: Vec<usize>,
    /// Total rows.
    size: usize,
}

/// Requests to execute together, in scheduling order.
#[derive(Debug)]
pub struct Batch<B, T> {
    /// Each request's token.
    pub tokens: Vec<T>,
    /// Each request's id.
    pub ids: Vec<u64>,
    /// How long each request waited in the queue.
    pub queue_durations: Vec<Duration>,
    /// One entry per model input.
    pub inputs: Vec<BatchInput<B>>,
    /// Tokens of requests removed because their deadline passed (answer DEADLINE_EXCEEDED).
    pub rejected: Vec<T>,
    /// Each rejected request's id.
    pub rejected_ids: Vec<u64>,
    /// Splits the outputs per request.
    pub splitter: OutputSplitter,
}

impl<B: AsRef<[u8]>, T> Batch<B, T> {
    /// Assembles the batch from entries taken off the queue; copies only if there are several.
    pub(crate) fn from_entries(
        model: &str,
        batching: bool,
        entries: Vec<Entry<B, T>>,
        (rejected_ids, rejected): (Vec<u64>, Vec<T>),
        now: Instant,
    ) -> Self {
        let count = entries.len();
        let mut batch = Batch {
            tokens: Vec::with_capacity(count),
            ids: Vec::with_capacity(count),
            queue_durations: Vec::with_capacity(count),
            inputs: Vec::new(),
            rejected,
            rejected_ids,
            splitter: OutputSplitter {
                model: model.to_owned(),
                batching,
                rows: Vec::with_capacity(count),
                size: entries.iter().map(|entry| entry.rows).sum(),
            },
        };
        let Some(first) = entries.first() else {
            return batch;
        };
        let mut shapes = first.shapes.clone();
        if batching {
            for shape in &mut shapes {
                if let Some(dim0) = shape.first_mut() {
                    // Fits: at most max_batch_size rows, which is a usize from an i64 config field.
                    *dim0 = i64::try_from(batch.splitter.size).unwrap_or(i64::MAX);
                }
            }
        }
        let inputs = shapes.len();
        let mut concatenated: Vec<Vec<u8>> = if count > 1 {
            (0..inputs)
                .map(|input| {
                    let total = entries
                        .iter()
                        .map(|entry| entry.inputs.get(input).map_or(0, |b| b.as_ref().len()))
                        .sum();
                    Vec::with_capacity(total)
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut single = None;
        for entry in entries {
            batch.tokens.push(entry.token);
            batch.ids.push(entry.id);
            batch.splitter.rows.push(entry.rows);
            batch
                .queue_durations
                .push(now.saturating_duration_since(entry.enqueued));
            if count == 1 {
                single = Some(entry.inputs);
            } else {
                for (out, buffer) in concatenated.iter_mut().zip(&entry.inputs) {
                    out.extend_from_slice(buffer.as_ref());
                }
            }
        }
        batch.inputs = match single {
            Some(buffers) => buffers
                .into_iter()
                .zip(shapes)
                .map(|(buffer, shape)| BatchInput {
                    data: BatchData::Single(buffer),
                    shape,
                })
                .collect(),
            None => concatenated
                .into_iter()
                .zip(shapes)
                .map(|(bytes, shape)| BatchInput {
                    data: BatchData::Owned(bytes),
                    shape,
                })
                .collect(),
        };
        batch
    }

    /// Each request's rows in dim 0 (1 each without batching).
    pub fn rows(&self) -> &[usize] {
        &self.splitter.rows
    }

    /// Total rows (1 without batching, 0 for a batch of only rejected requests).
    pub fn size(&self) -> usize {
        self.splitter.size
    }

    /// Each request's slice of `output` (see `OutputSplitter::split_ranges`).
    pub fn split<'a>(&self, output: &'a [u8], dim0: usize) -> Result<Vec<&'a [u8]>, BatchError> {
        self.splitter.split(output, dim0)
    }

    /// Each request's slice of a BYTES `output` of `elements` elements (see
    /// `OutputSplitter::split_bytes_ranges`).
    pub fn split_bytes<'a>(
        &self,
        output: &'a [u8],
        dim0: usize,
        elements: usize,
    ) -> Result<Vec<&'a [u8]>, BatchError> {
        self.splitter.split_bytes(output, dim0, elements)
    }
}

impl OutputSplitter {
    /// Whether dim 0 is the batch dim (max_batch_size > 0).
    pub fn is_batching(&self) -> bool {
        self.batching
    }

    /// Each request's rows in dim 0.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// Total rows.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Byte ranges of each request's rows in an output of `output_len` bytes whose dim 0 is
    /// `dim0`. Without batching the one request gets everything. Only for fixed-size datatypes:
    /// BYTES outputs go through `split_bytes_ranges`.
    pub fn split_ranges(
        &self,
        output_len: usize,
        dim0: usize,
    ) -> Result<Vec<Range<usize>>, BatchError> {
        if !self.batching {
            return Ok(vec![0..output_len; self.rows.len().min(1)]);
        }
        if dim0 != self.size {
            return Err(BatchError::OutputRows {
                model: self.model.clone(),
                expected: self.size,
                actual: dim0,
            });
        }
        if self.size == 0 || output_len % self.size != 0 {
            return Err(BatchError::OutputNotRows {
                model: self.model.clone(),
                bytes: output_len,
                rows: self.size,
            });
        }
        Ok(row_ranges(&self.rows, output_len / self.size))
    }

    /// Each request's slice of `output` (see `split_ranges`).
    pub fn split<'a>(&self, output: &'a [u8], dim0: usize) -> Result<Vec<&'a [u8]>, BatchError> {
        let ranges = self.split_ranges(output.len(), dim0)?;
        Ok(ranges.into_iter().map(|range| &output[range]).collect())
    }

    /// Byte ranges of each request's rows in a BYTES `output` (the v2 raw format: each element
    /// its u32 length, then its bytes) whose dim 0 is `dim0` and which holds `elements`
    /// elements. Its rows have no fixed size, so the length prefixes are walked: work in the
    /// number of elements, nothing copied. Without batching the one request gets everything.
    pub fn split_bytes_ranges(
        &self,
        output: &[u8],
        dim0: usize,
        elements: usize,
    ) -> Result<Vec<Range<usize>>, BatchError> {
        if !self.batching {
            return Ok(vec![0..output.len(); self.rows.len().min(1)]);
        }
        if dim0 != self.size {
            return Err(BatchError::OutputRows {
                model: self.model.clone(),
                expected: self.size,
                actual: dim0,
            });
        }
        let malformed = || BatchError::OutputElements {
            model: self.model.clone(),
            bytes: output.len(),
            elements,
            rows: self.size,
        };
        if self.size == 0 || elements % self.size != 0 {
            return Err(malformed());
        }
        let per_row = elements / self.size;
        let mut start = 0;
        let ranges = self
            .rows
            .iter()
            .map(|&rows| {
                let end = ferroserve_tensor::skip_bytes_elements(output, start, rows * per_row)
                    .ok_or_else(malformed)?;
                let range = start..end;
                start = end;
                Ok(range)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if start != output.len() {
            return Err(malformed());
        }
        Ok(ranges)
    }

    /// Each request's slice of a BYTES `output` (see `split_bytes_ranges`).
    pub fn split_bytes<'a>(
        &self,
        output: &'a [u8],
        dim0: usize,
        elements: usize,
    ) -> Result<Vec<&'a [u8]>, BatchError> {
        let ranges = self.split_bytes_ranges(output, dim0, elements)?;
        Ok(ranges.into_iter().map(|range| &output[range]).collect())
    }
}

/// Consecutive byte ranges of `rows[i]` rows of `row_bytes` bytes each.
pub fn row_ranges(rows: &[usize], row_bytes: usize) -> Vec<Range<usize>> {
    let mut start = 0;
    rows.iter()
        .map(|&rows| {
            let end = start + rows * row_bytes;
            let range = start..end;
            start = end;
            range
        })
        .collect()
}
