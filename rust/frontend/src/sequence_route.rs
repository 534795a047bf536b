//! `SequenceRoute`: a stateful model version served natively. A request is matched as any
//! native request, then goes through the version's `Sequencer` with its `sequence_id`,
//! `sequence_start` and `sequence_end` parameters (Triton's), which queues it when its
//! sequence's turn comes; the answer comes back on a channel as on `NativeRoute`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ferroserve_batcher::{CorrelationId, Outcome};
use ferroserve_runtime::{NativeAnswer, OutputTensor, Waiter};
use ferroserve_tensor::wire::{self, InferRequestView, MatchedContents, SequenceIdView};
use tokio::sync::oneshot;

use crate::grpc::{Code, Status};
use crate::native::{failed, refused};
use crate::routes::{InferRoute, PendingInfer};
use crate::sequencer::{Pending, Refused, Sequencer, Submitted};
use crate::{MessageInput, NativeRoute};

/// A stateful model version: its plain route (matching, encoding, statistics) and its
/// sequencer.
pub struct SequenceRoute<B, P, O> {
    route: NativeRoute<B, P, O>,
    sequencer: Arc<Sequencer<B, P, O>>,
}

impl<B, P, O> SequenceRoute<B, P, O> {
    /// `route` (for `sequencer`'s queue) with its requests sequenced by `sequencer`.
    pub fn new(route: NativeRoute<B, P, O>, sequencer: Arc<Sequencer<B, P, O>>) -> Self {
        SequenceRoute { route, sequencer }
    }
}

/// The correlation id a request names (0 when it names none: the scheduler refuses it).
fn correlation_id(message: &[u8], view: &InferRequestView) -> CorrelationId {
    match &view.sequence.id {
        Some(SequenceIdView::Number(id)) => CorrelationId::Number(*id),
        // UTF-8: checked by the parse.
        Some(SequenceIdView::Text(range)) => {
            CorrelationId::Text(String::from_utf8_lossy(&message[range.clone()]).into_owned())
        }
        None => CorrelationId::Number(0),
    }
}

impl<B, P, O> InferRoute for SequenceRoute<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    fn infer(
        self: Arc<Self>,
        message: Bytes,
        view: InferRequestView,
        deadline: Option<Instant>,
        stream: bool,
    ) -> Option<PendingInfer> {
        let matched = wire::match_request(&message, &view, self.route.signature())?;
        let started = Instant::now();
        let refuse = |code: Code, outcome: Outcome, text: String| -> Option<PendingInfer> {
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.sequencer.queue().record_request(outcome, nanos);
            let status = Status::new(code, text);
            Some(Box::pin(async move { Err(status) }))
        };
        if view.sequence.malformed {
            // Triton's grpc front end words these.
            return refuse(
                Code::InvalidArgument,
                Outcome::Invalid,
                "invalid value type for a sequence parameter: 'sequence_id' takes int64_param \
                 or string_param, 'sequence_start' and 'sequence_end' take bool_param"
                    .into(),
            );
        }
        let rows = if self.route.signature().max_batch_size > 0 {
            matched
                .shapes
                .first()
                .and_then(|shape| shape.first())
                .map_or(1, |&rows| usize::try_from(rows).unwrap_or(usize::MAX))
        } else {
            1
        };
        let inputs = match matched.contents {
            MatchedContents::Raw(ranges) => ranges
                .into_iter()
                .map(|range| B::from_message(&message, range))
                .collect(),
            MatchedContents::Converted(buffers) => buffers
                .into_iter()
                .map(|buffer| B::from_converted(Bytes::from(buffer)))
                .collect(),
        };
        let (sender, receiver) = oneshot::channel::<NativeAnswer<O>>();
        let pending = Pending {
            inputs,
            shapes: matched.shapes,
            waiter: Waiter::Native(sender),
            priority: view.priority,
            timeout_us: view.timeout_us,
            deadline,
        };
        let id = correlation_id(&message, &view);
        let flags = (view.sequence.start, view.sequence.end);
        let ticket = match self.sequencer.submit(id.clone(), flags, rows, pending) {
            Ok(Submitted::Queued) => None,
            Ok(Submitted::Held(ticket)) => Some(ticket),
            Err(Refused::Sequence(error)) => {
                let (code, outcome) = refused(error.kind());
                return refuse(code, outcome, error.to_string());
            }
            Err(Refused::Queue(error)) => {
                let (code, outcome) = refused(error.kind());
                return refuse(code, outcome, error.to_string());
            }
        };
        let wanted = matched.wanted;
        // Made before the future, so a future dropped unpolled still withdraws its request.
        let mut waiting = Waiting {
            route: Arc::clone(&self),
            id,
            ticket,
            started,
            ended: false,
        };
        Some(Box::pin(async move {
            let route = &*self;
            let received = match deadline {
                None => receiver.await,
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), receiver).await {
                    Ok(received) => received,
                    Err(_) => {
                        waiting.end(Outcome::Timeout);
                        return Err(Status::new(
                            Code::DeadlineExceeded,
                            format!("model '{}': deadline exceeded", route.route.model_name()),
                        ));
                    }
                },
            };
            match received {
                Ok(Ok(answer)) => {
                    let response = route
                        .route
                        .encode(&message, &view, &wanted, &answer, stream);
                    waiting.end(Outcome::Success);
                    Ok(response)
                }
                Ok(Err(failure)) => {
                    let (outcome, status) = failed(failure);
                    waiting.end(outcome);
                    Err(status)
                }
                Err(_) => {
                    waiting.end(Outcome::Unavailable);
                    Err(Status::new(
                        Code::Unavailable,
                        format!(
                            "model '{}' was unloaded, or its queue refused the request when its \
                             sequence's turn came",
                            route.route.model_name()
                        ),
                    ))
                }
            }
        }))
    }
}

/// Records a request's end once; a request dropped before it ended (its client went away) is
/// withdrawn if it was still held and counts as cancelled (one already queued runs, so its
/// sequence's state stays whole).
struct Waiting<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    route: Arc<SequenceRoute<B, P, O>>,
    id: CorrelationId,
    ticket: Option<u64>,
    started: Instant,
    ended: bool,
}

impl<B, P, O> Waiting<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    fn end(&mut self, outcome: Outcome) {
        if !matches!(outcome, Outcome::Success)
            && let Some(ticket) = self.ticket
        {
            self.route.sequencer.withdraw(&self.id, ticket);
        }
        self.ended = true;
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.route.sequencer.queue().record_request(outcome, nanos);
    }
}

impl<B, P, O> Drop for Waiting<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    fn drop(&mut self) {
        if !self.ended {
            self.end(Outcome::Cancelled);
        }
    }
}
