//! Drift tracking at execution: a model version with a drift profile hands every executed batch's
//! model inputs and outputs to its `DriftTracker` (`ferroserve_drift`), through the recorder its
//! executor thread owns. Counting never fails a batch: a batch that does not fit the tracker's
//! plan is counted as an error and served as usual.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ferroserve_drift::{DriftTracker, Recorder, TensorView};
use ferroserve_tensor::DataType;
use smallvec::SmallVec;

use crate::InputTensor;

/// A model version's drift tracking: the tracker and what the executor needs to show it a batch.
#[derive(Debug, Clone)]
pub struct DriftTap {
    /// Counts and windows, shared with the exporter that reads them.
    pub tracker: Arc<DriftTracker>,
    /// The datatype of each tensor the tracker indexes: the model inputs in layout order, then
    /// the outputs in layout order.
    pub datatypes: Arc<[DataType]>,
    /// Batches the tracker refused, and executor threads left without a recorder (wiring bugs,
    /// never the client's): counted, never fatal.
    pub errors: Arc<AtomicU64>,
}

/// Tensors a batch shows the tracker without a heap allocation.
type Views<'a> = SmallVec<[TensorView<'a>; 8]>;

/// Per tensor: its bytes, its shape, and that shape as one row (`[1, n]`).
type Shaped<'a> = SmallVec<[(&'a [u8], &'a [i64], [i64; 2]); 8]>;

impl DriftTap {
    /// A tap counting into `tracker`, for tensors of `datatypes` (inputs, then outputs).
    pub fn new(tracker: Arc<DriftTracker>, datatypes: Vec<DataType>) -> Self {
        DriftTap {
            tracker,
            datatypes: datatypes.into(),
            errors: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Refusals counted so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The recorder of executor thread `instance`, or None (counted as an error) when the
    /// tracker has no such instance or it is taken.
    pub(crate) fn recorder(&self, instance: usize) -> Option<Recorder> {
        self.tracker
            .recorder(instance)
            .inspect_err(|_| {
                self.errors.fetch_add(1, Ordering::Relaxed);
            })
            .ok()
    }

    /// Counts one executed batch: its model `inputs`, then `outputs` (bytes and shapes).
    /// `batches`: whether dim 0 is the batch dim; without one, a 1-D tensor is one row.
    pub(crate) fn observe<'a>(
        &self,
        recorder: &mut Recorder,
        inputs: &[InputTensor<'a>],
        outputs: impl Iterator<Item = (&'a [u8], &'a [i64])>,
        batches: bool,
        now: Instant,
    ) {
        // An unbatched model's 1-D tensor `[n]` is one row of n columns: `[1, n]`.
        let one_row = |shape: &[i64]| [1, shape.first().copied().unwrap_or(1)];
        let tensors = inputs
            .iter()
            .map(|input| (input.data, input.shape))
            .chain(outputs);
        let rows: Shaped<'_> = tensors
            .map(|(data, shape)| (data, shape, one_row(shape)))
            .collect();
        let views: Views<'_> = rows
            .iter()
            .zip(self.datatypes.iter())
            .map(|((data, shape, row), &datatype)| TensorView {
                datatype,
                shape: if !batches && shape.len() == 1 {
                    row
                } else {
                    shape
                },
                data,
            })
            .collect();
        if recorder.observe(&views, now).is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
