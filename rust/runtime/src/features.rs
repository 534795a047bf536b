//! Feature lookup at batch forming: a model version with a feature declaration queues what
//! clients send (entity keys, request-time features), and its executor threads turn each batch
//! into the model's inputs by gathering the looked-up rows from the embedded store's current
//! snapshot (`ferroserve_features`), one snapshot per batch.

use std::sync::Arc;

use ferroserve_features::{FeatureStore, JoinPlan, unix_micros_now};

/// A model version's feature join: the compiled plan and the store it gathers from.
#[derive(Debug, Clone)]
pub struct FeatureJoin {
    /// The declaration checked against the model.
    pub plan: Arc<JoinPlan>,
    /// The embedded store (snapshots swapped atomically on reload).
    pub store: Arc<FeatureStore>,
}

/// A batch's model inputs, gathered.
#[derive(Debug)]
pub(crate) struct Gathered {
    /// One buffer per model input, in the plan's order.
    pub buffers: Vec<Vec<u8>>,
    /// Their shapes: the batch's rows, then the input's dims.
    pub shapes: Vec<Vec<i64>>,
    /// Per request of the batch: the message of the first of its rows a reject-policy view
    /// could not serve (its request is answered NOT_FOUND; the others run as usual).
    pub rejected: Vec<Option<String>>,
}

impl FeatureJoin {
    /// Gathers `rows` rows whose request inputs are `request` (in the plan's request-input
    /// order); `request_rows` is each request's row count, in batch order. Err: a message for
    /// every request of the batch (a buffer that does not fit the plan, a view not loaded).
    pub(crate) fn gather(
        &self,
        request: &[&[u8]],
        rows: usize,
        request_rows: &[usize],
    ) -> Result<Gathered, String> {
        let plan = &self.plan;
        let mut buffers: Vec<Vec<u8>> = plan
            .model_inputs()
            .iter()
            .map(|input| vec![0u8; rows * input.row_bytes()])
            .collect();
        let snapshot = self.store.load();
        let rejections = {
            let mut out: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
            plan.gather(&snapshot, request, rows, unix_micros_now(), &mut out)
                .map_err(|error| error.to_string())?
        };
        let shapes = plan.model_input_shapes(rows);
        let mut rejected = vec![None; request_rows.len().max(1)];
        for rejection in rejections {
            let index = request_of(request_rows, rejection.row);
            if let Some(slot @ None) = rejected.get_mut(index) {
                *slot = Some(rejection.to_string());
            }
        }
        Ok(Gathered {
            buffers,
            shapes,
            rejected,
        })
    }
}

/// The request (index in batch order) that batch row `row` belongs to, given each request's
/// row count; the last request for a row past the end (one unbatched request has every row).
fn request_of(request_rows: &[usize], row: usize) -> usize {
    let mut end = 0;
    for (index, &rows) in request_rows.iter().enumerate() {
        end += rows;
        if row < end {
            return index;
        }
    }
    request_rows.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_map_to_their_requests() {
        let rows = [2, 1, 3];
        let owners: Vec<usize> = (0..7).map(|row| request_of(&rows, row)).collect();
        assert_eq!(owners, [0, 0, 1, 2, 2, 2, 2]);
        assert_eq!(request_of(&[], 5), 0);
    }
}
