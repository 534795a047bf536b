//! `EnsembleRoute`: an ensemble answered natively. The request is matched against the
//! ensemble's signature like any native request; its inputs (parts of the message, no copy)
//! seed the request's tensors, and each step starts as soon as every tensor it reads exists,
//! so independent steps run at once. A step is looked up in the front end's route table when
//! it starts (the composing model's version as served now: reloads are followed, nothing is
//! pinned) and queued into that version's batch queue beside its direct traffic
//! (`InferRoute::step`); its outputs come back as views into the executed batch's outputs and
//! are handed on as they are. Tensors no later step reads and no client asked for are dropped
//! as soon as their readers are queued. The first failing step fails the request with its
//! code and a message naming the step; the client's deadline covers every step, and dropping
//! the request (the client went away) cancels the steps still queued.

use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use ferroserve_batcher::{BatchQueue, Outcome};
use ferroserve_runtime::Timing;
use ferroserve_tensor::wire::{self, FastSignature, InferRequestView, MatchedContents};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::plan::EnsemblePlan;
use crate::grpc::{Code, Status};
use crate::native::EndOnce;
use crate::routes::{InferRoute, PendingInfer, RouteTable, StepRequest, Table};

/// A tensor of one request: its bytes and full shape.
type Tensor = (Bytes, Vec<i64>);

/// What a step produced: (tensor index, tensor) per mapped output, and its timing.
type Produced = (Vec<(usize, Tensor)>, Timing);

/// A running step: its index and what it produced.
type RunningStep = Pin<Box<dyn Future<Output = (usize, Result<Produced, Status>)> + Send>>;

/// One ensemble version served natively.
pub struct EnsembleRoute<B, T> {
    /// `model_name` in responses.
    model_name: String,
    /// `model_version` in responses.
    model_version: String,
    /// What requests the native path takes.
    signature: FastSignature,
    /// Output datatypes, in signature order.
    output_datatypes: Vec<String>,
    /// The steps and tensors.
    plan: EnsemblePlan,
    /// Where the ensemble's own statistics are counted (a queue nothing is queued into).
    stats: Arc<BatchQueue<B, T>>,
    /// The front end's routes, where steps find their composing versions; set when the route
    /// is first put in a table (a weak reference: the table holds this route).
    table: OnceLock<Weak<RouteTable>>,
}

impl<B, T> EnsembleRoute<B, T> {
    /// The route of ensemble `model_name` version `model_version`, counting its requests
    /// into `stats`; outputs are in signature order.
    pub fn new(
        model_name: String,
        model_version: String,
        signature: FastSignature,
        output_datatypes: Vec<String>,
        plan: EnsemblePlan,
        stats: Arc<BatchQueue<B, T>>,
    ) -> Self {
        EnsembleRoute {
            model_name,
            model_version,
            signature,
            output_datatypes,
            plan,
            stats,
            table: OnceLock::new(),
        }
    }

    /// Steps find their composing versions in `table` (the front end this route serves on).
    pub fn bind(&self, table: &Arc<RouteTable>) {
        let _ = self.table.set(Arc::downgrade(table));
    }
}

/// The statistics outcome of a failed request.
fn outcome_of(code: Code) -> Outcome {
    match code {
        Code::InvalidArgument | Code::NotFound => Outcome::Invalid,
        Code::ResourceExhausted => Outcome::Rejected,
        Code::DeadlineExceeded => Outcome::Timeout,
        Code::Cancelled => Outcome::Cancelled,
        Code::Unavailable | Code::FailedPrecondition => Outcome::Unavailable,
        _ => Outcome::Internal,
    }
}

/// The request-wide parameters every step gets.
#[derive(Clone, Copy)]
struct Scheduling {
    priority: u64,
    timeout_us: u64,
    deadline: Option<Instant>,
}

impl<B, T> InferRoute for EnsembleRoute<B, T>
where
    B: AsRef<[u8]> + Send + Sync + 'static,
    T: Send + 'static,
    BatchQueue<B, T>: Send + Sync,
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
        let inputs: Vec<Bytes> = match matched.contents {
            MatchedContents::Raw(ranges) => ranges
                .into_iter()
                .map(|range| message.slice(range))
                .collect(),
            MatchedContents::Converted(buffers) => buffers.into_iter().map(Bytes::from).collect(),
        };
        // Rows, as Triton counts an ensemble's inferences: dim 0 when it batches.
        let rows = if self.signature.max_batch_size > 0 {
            matched
                .shapes
                .first()
                .and_then(|shape| shape.first())
                .map_or(1, |&rows| usize::try_from(rows).unwrap_or(1))
        } else {
            1
        };
        let seeds = inputs.into_iter().zip(matched.shapes).collect();
        let scheduling = Scheduling {
            priority: view.priority,
            timeout_us: view.timeout_us,
            deadline,
        };
        let wanted = matched.wanted;
        // Made before the future, so a request dropped before its first poll is counted too.
        let mut ending = EndOnce::new(Arc::clone(&self.stats), started);
        Some(Box::pin(async move {
            let route = &*self;
            let work = route.execute(seeds, &wanted, scheduling);
            let result = match deadline {
                None => work.await,
                Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::new(
                            Code::DeadlineExceeded,
                            format!("ensemble '{}': deadline exceeded", route.model_name),
                        ))
                    }),
            };
            match result {
                Ok((mut tensors, timing)) => {
                    let response = route.encode(&message, &view, &wanted, &mut tensors, stream);
                    route.record_steps(rows, timing);
                    ending.end(Outcome::Success);
                    Ok(response)
                }
                Err(status) => {
                    ending.end(outcome_of(status.code));
                    Err(status)
                }
            }
        }))
    }
}

impl<B, T> EnsembleRoute<B, T>
where
    B: AsRef<[u8]> + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Records one answered request's steps as Triton reports an ensemble's: one execution
    /// of `rows` whose queue and compute durations are the sums of its steps'.
    fn record_steps(&self, rows: usize, timing: Timing) {
        let stats = self.stats.statistics();
        stats.record_queue(&std::time::Duration::from_nanos(timing.queue_ns));
        stats.record_execution(rows, timing.input_ns, timing.infer_ns, timing.output_ns);
    }

    /// Runs every step; returns the request's tensors (the wanted outputs among them) and the
    /// sum of the steps' timings.
    async fn execute(
        &self,
        seeds: Vec<Tensor>,
        wanted: &[usize],
        scheduling: Scheduling,
    ) -> Result<(Vec<Option<Tensor>>, Timing), Status> {
        let table = self
            .table
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| {
                Status::new(
                    Code::Unavailable,
                    format!("ensemble '{}' is not being served", self.model_name),
                )
            })?
            .current();
        let plan = &self.plan;
        let mut tensors: Vec<Option<Tensor>> = vec![None; plan.tensor_count()];
        for (&tensor, seed) in plan.inputs().iter().zip(seeds) {
            tensors[tensor] = Some(seed);
        }
        let mut kept = vec![false; plan.tensor_count()];
        for &index in wanted {
            kept[plan.outputs()[index]] = true;
        }
        let mut unread = plan.reads().to_vec();
        let mut started = vec![false; plan.steps().len()];
        let mut running: FuturesUnordered<RunningStep> = FuturesUnordered::new();
        let mut timing = Timing::default();
        loop {
            for (index, step) in plan.steps().iter().enumerate() {
                let ready = step.inputs.iter().all(|&(_, t)| tensors[t].is_some());
                if started[index] || !ready {
                    continue;
                }
                started[index] = true;
                running.push(self.start(&table, index, &tensors, scheduling)?);
                for &(_, tensor) in &step.inputs {
                    unread[tensor] -= 1;
                    if unread[tensor] == 0 && !kept[tensor] {
                        tensors[tensor] = None;
                    }
                }
            }
            let Some((_, produced)) = running.next().await else {
                break;
            };
            let (produced, step_timing) = produced?;
            timing = timing.plus(step_timing);
            for (tensor, value) in produced {
                // Made only to be read by steps that already ran, or by no one: dropped.
                if unread[tensor] > 0 || kept[tensor] {
                    tensors[tensor] = Some(value);
                }
            }
        }
        Ok((tensors, timing))
    }

    /// Queues step `index` into its composing version (as routed now) with the tensors it
    /// reads.
    fn start(
        &self,
        table: &Table,
        index: usize,
        tensors: &[Option<Tensor>],
        scheduling: Scheduling,
    ) -> Result<RunningStep, Status> {
        let step = &self.plan.steps()[index];
        let label = if step.version.is_empty() {
            format!(
                "ensemble '{}' step {} (model '{}')",
                self.model_name,
                index + 1,
                step.model
            )
        } else {
            format!(
                "ensemble '{}' step {} (model '{}' version {})",
                self.model_name,
                index + 1,
                step.model,
                step.version
            )
        };
        let fail = |code: Code, text: &str| Status::new(code, format!("{label}: {text}"));
        let Some(routed) = table.route(&step.model, &step.version) else {
            return Err(fail(
                Code::Unavailable,
                "the model has no ready version served natively",
            ));
        };
        routed.target.count();
        let route = Arc::clone(&routed.target.route);
        let signature = route.step_signature().ok_or_else(|| {
            fail(
                Code::FailedPrecondition,
                "the model cannot run as an ensemble step (a stateful model, or one that joins \
                 features from Redis)",
            )
        })?;
        let mut inputs = Vec::with_capacity(signature.inputs.len());
        let mut shapes = Vec::with_capacity(signature.inputs.len());
        for layout in &signature.inputs {
            let tensor = step
                .inputs
                .iter()
                .find(|(name, _)| *name == layout.name)
                .and_then(|&(_, tensor)| tensors[tensor].as_ref())
                .ok_or_else(|| {
                    fail(
                        Code::FailedPrecondition,
                        &format!(
                            "the model's input '{}' is not in the step's input_map (the model \
                             changed since the ensemble loaded: reload the ensemble)",
                            layout.name
                        ),
                    )
                })?;
            inputs.push(tensor.0.clone());
            shapes.push(tensor.1.clone());
        }
        let positions = step
            .outputs
            .iter()
            .map(|(name, tensor)| {
                let position = signature.outputs.iter().position(|output| output == name);
                position.map(|position| (position, *tensor)).ok_or_else(|| {
                    fail(
                        Code::FailedPrecondition,
                        &format!(
                            "the model has no output '{name}' (it changed since the ensemble \
                             loaded: reload the ensemble)"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let request = StepRequest {
            inputs,
            shapes,
            priority: scheduling.priority,
            timeout_us: scheduling.timeout_us,
            deadline: scheduling.deadline,
        };
        let pending = Arc::clone(&route).step(request).ok_or_else(|| {
            fail(
                Code::FailedPrecondition,
                "the model cannot run as an ensemble step",
            )
        })?;
        Ok(Box::pin(async move {
            let outcome = match pending.await {
                Ok(mut answer) => positions
                    .into_iter()
                    .map(|(position, tensor)| {
                        let output = answer.outputs.get_mut(position).map(std::mem::take);
                        output.map(|output| (tensor, output)).ok_or_else(|| {
                            Status::new(
                                Code::Internal,
                                format!("{label}: output {position} missing. This is a bug."),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, Status>>()
                    .map(|outputs| (outputs, answer.timing)),
                Err(status) => Err(Status::new(
                    status.code,
                    format!("{label}: {}", status.message),
                )),
            };
            (index, outcome)
        }))
    }

    /// The serialized response with the wanted outputs.
    fn encode(
        &self,
        message: &[u8],
        view: &InferRequestView,
        wanted: &[usize],
        tensors: &mut [Option<Tensor>],
        stream: bool,
    ) -> Vec<u8> {
        let empty: Tensor = (Bytes::new(), Vec::new());
        let outputs: Vec<wire::ResponseOutput<'_>> = wanted
            .iter()
            .map(|&index| {
                let (raw, shape) = tensors[self.plan.outputs()[index]]
                    .as_ref()
                    .unwrap_or(&empty);
                wire::ResponseOutput {
                    name: &self.signature.outputs[index],
                    datatype: &self.output_datatypes[index],
                    shape,
                    raw,
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
