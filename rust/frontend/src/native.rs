//! `NativeRoute`: a model version run by native executor threads, answered without Python:
//! match the request against the signature, queue its raw inputs in place (no copy), or its
//! typed contents converted once into buffers of their own, with its `priority` and `timeout`
//! parameters, await the executor's answer on a channel (released in queue order for a
//! `preserve_ordering` model), write the response. A model with feature views in Redis
//! (`RemoteJoin`) has its graph inputs joined per request, before queueing.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ferroserve_batcher::{BatchQueue, ErrorKind, Outcome, Request};
use ferroserve_runtime::{Answer, Failure, NativeAnswer, OutputTensor, Routed, Waiter};
use ferroserve_tensor::wire::{self, FastSignature, InferRequestView, MatchedContents};
use tokio::sync::oneshot;

use crate::grpc::{Code, Status};
use crate::remote_join::{JoinFailure, RemoteJoin};
use crate::routes::{InferRoute, PendingInfer, PendingStep, StepRequest};

/// A queued input held from the received message.
pub trait MessageInput: AsRef<[u8]> + Send + Sync + 'static {
    /// The part `range` of `message` (a raw input), without copying it.
    fn from_message(message: &Bytes, range: Range<usize>) -> Self;

    /// An input converted from typed contents, which owns its bytes.
    fn from_converted(buffer: Bytes) -> Self;
}

impl MessageInput for Bytes {
    fn from_message(message: &Bytes, range: Range<usize>) -> Self {
        message.slice(range)
    }

    fn from_converted(buffer: Bytes) -> Self {
        buffer
    }
}

/// One model version served natively.
pub struct NativeRoute<B, P, O> {
    /// `model_name` in responses.
    model_name: String,
    /// `model_version` in responses.
    model_version: String,
    /// What requests the native path takes.
    signature: FastSignature,
    /// Output datatypes, in signature order.
    output_datatypes: Vec<String>,
    /// The version's batch queue, served by its executor threads.
    queue: Arc<BatchQueue<B, Waiter<P, O>>>,
    /// Where those threads deliver answers (in queue order with `preserve_ordering`): told when
    /// a request leaves the queue unanswered, so no later answer waits for it.
    answers: Arc<Routed<P, O>>,
    /// The per-request feature join of a model with Redis views (its queue then holds the
    /// graph inputs); None for every other model.
    remote_join: Option<Arc<RemoteJoin>>,
}

impl<B, P, O> NativeRoute<B, P, O> {
    /// A route to `queue`, whose executor threads answer `Waiter::Native` waiters through
    /// `answers`; outputs are in signature order.
    pub fn new(
        model_name: String,
        model_version: String,
        signature: FastSignature,
        output_datatypes: Vec<String>,
        queue: Arc<BatchQueue<B, Waiter<P, O>>>,
        answers: Arc<Routed<P, O>>,
    ) -> Self {
        NativeRoute {
            model_name,
            model_version,
            signature,
            output_datatypes,
            queue,
            answers,
            remote_join: None,
        }
    }

    /// What requests the route takes.
    pub(crate) fn signature(&self) -> &FastSignature {
        &self.signature
    }

    /// `model_name` in responses.
    pub(crate) fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The version's batch queue.
    pub(crate) fn queue(&self) -> &BatchQueue<B, Waiter<P, O>> {
        &self.queue
    }

    /// This route, joining each request's graph inputs with `join` before queueing them.
    #[must_use]
    pub fn with_remote_join(mut self, join: Arc<RemoteJoin>) -> Self {
        self.remote_join = Some(join);
        self
    }
}

/// The gRPC status and statistics outcome of a refused submit.
pub(crate) fn refused(kind: ErrorKind) -> (Code, Outcome) {
    match kind {
        ErrorKind::InvalidInput => (Code::InvalidArgument, Outcome::Invalid),
        ErrorKind::ResourceExhausted => (Code::ResourceExhausted, Outcome::Rejected),
        ErrorKind::Unavailable => (Code::Unavailable, Outcome::Unavailable),
        ErrorKind::Internal => (Code::Internal, Outcome::Internal),
    }
}

/// A failed answer's outcome (for the statistics) and status (for the client).
pub(crate) fn failed(failure: Failure) -> (Outcome, Status) {
    match failure {
        Failure::DeadlineExceeded(message) => (
            Outcome::Timeout,
            Status::new(Code::DeadlineExceeded, message),
        ),
        Failure::Internal(message) => (Outcome::Internal, Status::new(Code::Internal, message)),
        // An entity key a reject-policy feature view could not serve: the request's input, not
        // the server, is at fault.
        Failure::NotFound(message) => (Outcome::Invalid, Status::new(Code::NotFound, message)),
    }
}

/// Records a request's end in its model's statistics exactly once; a request dropped first
/// (its client went away: during a Redis lookup, an ensemble's steps) counts as cancelled.
pub(crate) struct EndOnce<B: AsRef<[u8]>, T> {
    stats: Arc<BatchQueue<B, T>>,
    started: Instant,
    ended: bool,
}

impl<B: AsRef<[u8]>, T> EndOnce<B, T> {
    /// A request that started at `started`, counted in `stats`.
    pub(crate) fn new(stats: Arc<BatchQueue<B, T>>, started: Instant) -> Self {
        EndOnce {
            stats,
            started,
            ended: false,
        }
    }

    /// Records its end with `outcome`.
    pub(crate) fn end(&mut self, outcome: Outcome) {
        self.ended = true;
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats.record_request(outcome, nanos);
    }
}

impl<B: AsRef<[u8]>, T> Drop for EndOnce<B, T> {
    fn drop(&mut self) {
        if !self.ended {
            self.end(Outcome::Cancelled);
        }
    }
}

/// Records a request's end exactly once; a request dropped before it ended (the client went
/// away) leaves the queue and counts as cancelled. Made as the request is queued and moved into
/// its answer's future, so a future dropped before its first poll withdraws it too.
pub(crate) struct InFlight<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
{
    route: Arc<NativeRoute<B, P, O>>,
    id: u64,
    started: Instant,
    ended: bool,
}

impl<B, P, O> InFlight<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
{
    /// Request `id`, queued into `route`'s queue at `started`.
    pub(crate) fn new(route: Arc<NativeRoute<B, P, O>>, id: u64, started: Instant) -> Self {
        InFlight {
            route,
            id,
            started,
            ended: false,
        }
    }

    /// The route the request was queued on.
    pub(crate) fn route(&self) -> &NativeRoute<B, P, O> {
        &self.route
    }

    pub(crate) fn end(&mut self, outcome: Outcome) {
        self.ended = true;
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.route.queue.record_request(outcome, nanos);
    }

    /// Takes the request out of the queue if it is still there; then it leaves the answer
    /// order too (a request already in a batch keeps its place until its answer comes).
    fn withdraw(&self) {
        if self.route.queue.cancel(self.id) {
            self.route.answers.withdraw(self.id);
        }
    }
}

impl<B, P, O> Drop for InFlight<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.ended {
            self.withdraw();
            self.end(Outcome::Cancelled);
        }
    }
}

impl<B, P, O> NativeRoute<B, P, O>
where
    OutputTensor<O>: AsRef<[u8]>,
{
    /// The serialized response for `message`'s outputs `wanted`.
    pub(crate) fn encode(
        &self,
        message: &[u8],
        view: &InferRequestView,
        wanted: &[usize],
        answer: &Answer<O>,
        stream: bool,
    ) -> Vec<u8> {
        let outputs: Vec<wire::ResponseOutput<'_>> = wanted
            .iter()
            .map(|&index| {
                let (range, shape) = &answer.parts[index];
                wire::ResponseOutput {
                    name: &self.signature.outputs[index],
                    datatype: &self.output_datatypes[index],
                    shape,
                    raw: &answer.outputs[index].as_ref()[range.clone()],
                }
            })
            .collect();
        wire::encode_infer_response(
            self.model_name.as_bytes(),
            self.model_version.as_bytes(),
            &message[view.id.clone()],
            &outputs,
            stream,
        )
    }
}

impl<B, P, O> InferRoute for NativeRoute<B, P, O>
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
        let matched = wire::match_request(&message, &view, &self.signature)?;
        let started = Instant::now();
        if let Some(join) = &self.remote_join {
            let join = Arc::clone(join);
            return Some(self.infer_joined(join, message, view, matched, deadline, stream));
        }
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
        Some(self.submit(
            message,
            view,
            inputs,
            matched.shapes,
            matched.wanted,
            deadline,
            stream,
            started,
        ))
    }

    fn step_signature(&self) -> Option<&FastSignature> {
        // A model with Redis views queues graph inputs joined per request: not a step.
        self.remote_join.is_none().then_some(&self.signature)
    }

    fn step(self: Arc<Self>, request: StepRequest) -> Option<PendingStep> {
        self.remote_join.is_none().then(|| self.run_step(request))
    }
}

impl<B, P, O> NativeRoute<B, P, O>
where
    B: MessageInput,
    P: Send + 'static,
    O: Send + Sync + 'static,
    OutputTensor<O>: AsRef<[u8]>,
{
    /// Queues `inputs` and returns the answer to await.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        self: Arc<Self>,
        message: Bytes,
        view: InferRequestView,
        inputs: Vec<B>,
        shapes: Vec<Vec<i64>>,
        wanted: Vec<usize>,
        deadline: Option<Instant>,
        stream: bool,
        started: Instant,
    ) -> PendingInfer {
        let (sender, receiver) = oneshot::channel::<NativeAnswer<O>>();
        let submitted = self.queue.submit(Request {
            inputs,
            shapes,
            token: Waiter::Native(sender),
            priority: view.priority,
            timeout_us: view.timeout_us,
            deadline,
        });
        let id = match submitted {
            Ok(id) => id,
            Err(error) => {
                let (code, outcome) = refused(error.kind());
                let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.queue.record_request(outcome, nanos);
                let status = Status::new(code, error.to_string());
                return Box::pin(async move { Err(status) });
            }
        };
        let mut in_flight = InFlight::new(self, id, started);
        Box::pin(async move {
            let received = match deadline {
                None => receiver.await,
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), receiver).await {
                    Ok(received) => received,
                    Err(_) => {
                        in_flight.withdraw();
                        in_flight.end(Outcome::Timeout);
                        return Err(Status::new(
                            Code::DeadlineExceeded,
                            format!("model '{}': deadline exceeded", in_flight.route.model_name),
                        ));
                    }
                },
            };
            match received {
                Ok(Ok(answer)) => {
                    let response = in_flight
                        .route
                        .encode(&message, &view, &wanted, &answer, stream);
                    in_flight.end(Outcome::Success);
                    Ok(response)
                }
                Ok(Err(failure)) => {
                    let (outcome, status) = failed(failure);
                    in_flight.end(outcome);
                    Err(status)
                }
                // The waiter was dropped without an answer: the queue was closed under it.
                Err(_) => {
                    in_flight.end(Outcome::Unavailable);
                    Err(Status::new(
                        Code::Unavailable,
                        format!("model '{}' was unloaded", in_flight.route.model_name),
                    ))
                }
            }
        })
    }

    /// A request of a model with Redis views: fetch and join its graph inputs on this runtime,
    /// then queue them. A row a reject-policy view cannot serve answers NOT_FOUND at once,
    /// with nothing queued.
    fn infer_joined(
        self: Arc<Self>,
        join: Arc<RemoteJoin>,
        message: Bytes,
        view: InferRequestView,
        matched: wire::Matched,
        deadline: Option<Instant>,
        stream: bool,
    ) -> PendingInfer {
        let started = Instant::now();
        // A client that goes away during the lookup (or before it starts) ends its request
        // here, as cancelled.
        let mut joining = EndOnce::new(Arc::clone(&self.queue), started);
        Box::pin(async move {
            let request: Vec<Bytes> = match matched.contents {
                MatchedContents::Raw(ranges) => ranges
                    .into_iter()
                    .map(|range| message.slice(range))
                    .collect(),
                MatchedContents::Converted(buffers) => {
                    buffers.into_iter().map(Bytes::from).collect()
                }
            };
            let request: Vec<&[u8]> = request.iter().map(Bytes::as_ref).collect();
            let batches = self.signature.max_batch_size > 0;
            let rows = if batches {
                matched
                    .shapes
                    .first()
                    .and_then(|shape| shape.first())
                    .map_or(0, |&rows| usize::try_from(rows).unwrap_or(0))
            } else {
                1
            };
            let joined = match join.join(&request, rows).await {
                Ok(joined) => joined,
                Err(failure) => {
                    let (code, outcome, text) = match failure {
                        // An entity key a reject-policy view could not serve: the request's
                        // input, not the server, is at fault.
                        JoinFailure::Rejected(text) => (Code::NotFound, Outcome::Invalid, text),
                        JoinFailure::Internal(text) => (
                            Code::Internal,
                            Outcome::Internal,
                            format!("model '{}': feature lookup failed: {text}", self.model_name),
                        ),
                    };
                    joining.end(outcome);
                    return Err(Status::new(code, text));
                }
            };
            // From here the submit (or its refusal) records the request's end.
            joining.ended = true;
            drop(joining);
            let inputs = joined
                .buffers
                .into_iter()
                .map(|buffer| B::from_converted(Bytes::from(buffer)))
                .collect();
            // An unbatched model's inputs carry no batch dim, as a client would send them.
            let shapes = if batches {
                joined.shapes
            } else {
                joined
                    .shapes
                    .into_iter()
                    .map(|shape| shape.into_iter().skip(1).collect())
                    .collect()
            };
            self.submit(
                message,
                view,
                inputs,
                shapes,
                matched.wanted,
                deadline,
                stream,
                started,
            )
            .await
        })
    }
}
