//! A `NativeRoute` running one ensemble step: the step's inputs (parts of the client's message
//! or of an earlier step's output, never re-encoded) are checked against the version's
//! signature, queued into its `BatchQueue` beside its direct traffic, and its answer comes
//! back as views into the executed batch's outputs (`Bytes` that keep the batch's output
//! alive: no copy). The version's statistics count the step as one of its requests.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ferroserve_batcher::{Outcome, Request};
use ferroserve_runtime::{NativeAnswer, OutputTensor, Waiter};
use ferroserve_tensor::wire::InputLayout;
use tokio::sync::oneshot;

use crate::MessageInput;
use crate::grpc::{Code, Status};
use crate::native::{InFlight, NativeRoute, failed, refused};
use crate::routes::{PendingStep, StepAnswer, StepRequest};

/// One output of an executed batch, shared by the requests of the batch: what a step's
/// output `Bytes` keep alive.
struct BatchOutput<O> {
    outputs: Arc<Vec<OutputTensor<O>>>,
    index: usize,
}

impl<O> AsRef<[u8]> for BatchOutput<O>
where
    OutputTensor<O>: AsRef<[u8]>,
{
    fn as_ref(&self) -> &[u8] {
        self.outputs[self.index].as_ref()
    }
}

/// Why `shape` (and `bytes` bytes) do not fit `layout` of a model with `max_batch_size`, if
/// they do not: the composing model's config may be stricter than the ensemble's.
pub(crate) fn misfit(
    layout: &InputLayout,
    shape: &[i64],
    bytes: usize,
    max_batch_size: i64,
) -> Option<String> {
    let fits = shape.len() == layout.shape.len()
        && shape
            .iter()
            .zip(&layout.shape)
            .all(|(&got, &want)| got >= 0 && (want == -1 || got == want));
    if !fits {
        return Some(format!(
            "input '{}': expected shape {:?}, got {shape:?}",
            layout.name, layout.shape
        ));
    }
    if max_batch_size > 0 && !(1..=max_batch_size).contains(&shape[0]) {
        return Some(format!(
            "input '{}': batch size {} is outside 1..{max_batch_size}",
            layout.name, shape[0]
        ));
    }
    if layout.itemsize > 0 {
        let elements = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
        if elements.and_then(|n| n.checked_mul(layout.itemsize)) != Some(bytes) {
            return Some(format!(
                "input '{}': {bytes} bytes do not hold shape {shape:?} of {}",
                layout.name, layout.datatype
            ));
        }
    }
    None
}

/// The answer's outputs as views into the batch's outputs.
fn step_answer<O>(answer: &ferroserve_runtime::Answer<O>) -> StepAnswer
where
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    let outputs = answer
        .parts
        .iter()
        .enumerate()
        .map(|(index, (range, shape))| {
            let whole = Bytes::from_owner(BatchOutput {
                outputs: Arc::clone(&answer.outputs),
                index,
            });
            (whole.slice(range.clone()), shape.clone())
        })
        .collect();
    StepAnswer {
        outputs,
        timing: answer.timing,
    }
}

impl<B, P, O> NativeRoute<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    /// Queues one step and returns its answer to await (see the module documentation).
    pub(crate) fn run_step(self: Arc<Self>, request: StepRequest) -> PendingStep {
        let started = Instant::now();
        let signature = self.signature();
        let mismatch = if request.inputs.len() == signature.inputs.len() {
            signature
                .inputs
                .iter()
                .zip(request.shapes.iter().zip(&request.inputs))
                .find_map(|(layout, (shape, bytes))| {
                    misfit(layout, shape, bytes.len(), signature.max_batch_size)
                })
        } else {
            Some(format!(
                "{} inputs given, the model takes {}. This is a bug.",
                request.inputs.len(),
                signature.inputs.len()
            ))
        };
        if let Some(text) = mismatch {
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.queue().record_request(Outcome::Invalid, nanos);
            let status = Status::new(Code::InvalidArgument, text);
            return Box::pin(async move { Err(status) });
        }
        let (sender, receiver) = oneshot::channel::<NativeAnswer<O>>();
        let deadline = request.deadline;
        let submitted = self.queue().submit(Request {
            inputs: request.inputs.into_iter().map(B::from_converted).collect(),
            shapes: request.shapes,
            token: Waiter::Native(sender),
            priority: request.priority,
            timeout_us: request.timeout_us,
            deadline,
        });
        let id = match submitted {
            Ok(id) => id,
            Err(error) => {
                let (code, outcome) = refused(error.kind());
                let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.queue().record_request(outcome, nanos);
                let status = Status::new(code, error.to_string());
                return Box::pin(async move { Err(status) });
            }
        };
        let mut in_flight = InFlight::new(self, id, started);
        Box::pin(async move {
            // The ensemble awaits the whole request under its deadline; the queue drops a
            // step whose deadline passed before it ran.
            match receiver.await {
                Ok(Ok(answer)) => {
                    in_flight.end(Outcome::Success);
                    Ok(step_answer(&answer))
                }
                Ok(Err(failure)) => {
                    let (outcome, status) = failed(failure);
                    in_flight.end(outcome);
                    Err(status)
                }
                Err(_) => {
                    in_flight.end(Outcome::Unavailable);
                    Err(Status::new(
                        Code::Unavailable,
                        format!("model '{}' was unloaded", in_flight.route().model_name()),
                    ))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(shape: Vec<i64>, itemsize: usize) -> InputLayout {
        InputLayout {
            name: "x".into(),
            datatype: "FP32".into(),
            shape,
            itemsize,
        }
    }

    #[test]
    fn misfits_are_named() {
        let batched = layout(vec![-1, 4], 4);
        assert_eq!(misfit(&batched, &[2, 4], 32, 8), None);
        let wrong_dim = misfit(&batched, &[2, 5], 40, 8).expect("misfit");
        assert!(
            wrong_dim.contains("expected shape [-1, 4], got [2, 5]"),
            "{wrong_dim}"
        );
        let too_many = misfit(&batched, &[9, 4], 144, 8).expect("misfit");
        assert!(too_many.contains("outside 1..8"), "{too_many}");
        assert!(misfit(&batched, &[2, 4], 31, 8).is_some());
        assert!(misfit(&batched, &[4], 16, 8).is_some());
        // BYTES: the element lengths are in the data, nothing to count.
        assert_eq!(misfit(&layout(vec![-1, 2], 0), &[1, 2], 3, 8), None);
    }
}
