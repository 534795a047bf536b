//! Executor threads: one per model instance, each blocking in the batcher's `next_batch`,
//! running the batch on its own engine instance, splitting the outputs per request, and
//! pushing every answer to `Completions`. Nothing here touches Python.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferroserve_batcher::{Batch, BatchQueue, NextBatch};
use ferroserve_drift::Recorder;

use crate::completions::Completed;
use crate::features::Gathered;
use crate::{Answer, Deliver, DriftTap, Failure, FeatureJoin, Layout, RuntimeError, Timing};

/// One input of a call: C-contiguous bytes and the shape to run with.
#[derive(Debug, Clone, Copy)]
pub struct InputTensor<'a> {
    /// The graph input's name.
    pub name: &'a str,
    /// The bytes.
    pub data: &'a [u8],
    /// The shape.
    pub shape: &'a [i64],
}

/// One output of a call: the engine's value, its shape and byte length.
#[derive(Debug)]
pub struct OutputTensor<V> {
    /// Owns the bytes.
    value: V,
    /// The shape the model produced.
    shape: Vec<i64>,
    /// Byte length.
    len: usize,
    /// Whether the bytes are a BYTES tensor in the v2 raw format (each element its u32 length,
    /// then its bytes): rows of no fixed size, split by walking the prefixes.
    bytes: bool,
}

impl<V> OutputTensor<V> {
    /// An output of a fixed-size datatype: `len` bytes held by `value`.
    pub fn new(value: V, shape: Vec<i64>, len: usize) -> Self {
        OutputTensor {
            value,
            shape,
            len,
            bytes: false,
        }
    }

    /// A BYTES output: `len` bytes of length-prefixed elements held by `value`.
    pub fn bytes(value: V, shape: Vec<i64>, len: usize) -> Self {
        OutputTensor {
            value,
            shape,
            len,
            bytes: true,
        }
    }

    /// Whether it is a BYTES output (length-prefixed elements).
    pub fn is_bytes(&self) -> bool {
        self.bytes
    }

    /// The engine's value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The shape the model produced.
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for OutputTensor<Vec<u8>> {
    fn as_ref(&self) -> &[u8] {
        &self.value[..self.len]
    }
}

/// Something that runs a model: onnxruntime (`Model`), or a stand-in in tests.
pub trait Engine: Send + Sync + 'static {
    /// What holds an output's bytes.
    type Output: Send + Sync + 'static;

    /// Runs the model once on instance `instance` (< `instances()`); returns the outputs
    /// named in `outputs`, in that order.
    fn run(
        &self,
        instance: usize,
        inputs: &[InputTensor<'_>],
        outputs: &[String],
    ) -> Result<Vec<OutputTensor<Self::Output>>, RuntimeError>;

    /// Instances that can run at the same time.
    fn instances(&self) -> usize;
}

/// What every executor thread of a model shares.
struct Shared<B, T, E: Engine> {
    /// Model name, for messages.
    model: String,
    queue: Arc<BatchQueue<B, T>>,
    engine: Arc<E>,
    completions: Arc<dyn Deliver<T, E::Output>>,
    layout: Layout,
    /// The feature join of a model with looked-up features: the queue then holds the request
    /// inputs, and `layout.input_names` are the model inputs the join writes.
    features: Option<FeatureJoin>,
    /// The drift tracking of a model with a drift profile: every executed batch's model
    /// inputs and outputs are counted.
    drift: Option<DriftTap>,
    /// Batches running now.
    busy: AtomicUsize,
    /// Threads still running, and its condition for `join`.
    running: Mutex<usize>,
    stopped: Condvar,
}

/// The executor threads of one model version.
pub struct Executor<B, T, E: Engine> {
    shared: Arc<Shared<B, T, E>>,
}

impl<B, T, E> Executor<B, T, E>
where
    B: AsRef<[u8]> + Send + Sync + 'static,
    T: Send + 'static,
    E: Engine,
    OutputTensor<E::Output>: AsRef<[u8]>,
{
    /// Starts one thread per engine instance, named `ferroserve-<model>-<i>`. They stop when
    /// the queue is closed and empty. With `features`, each batch's model inputs are gathered
    /// from the request inputs the queue holds; with `drift`, each executed batch is counted.
    pub fn start(
        model: &str,
        queue: Arc<BatchQueue<B, T>>,
        engine: Arc<E>,
        completions: Arc<dyn Deliver<T, E::Output>>,
        layout: Layout,
        features: Option<FeatureJoin>,
        drift: Option<DriftTap>,
    ) -> std::io::Result<Self> {
        let instances = engine.instances();
        let shared = Arc::new(Shared {
            model: model.to_owned(),
            queue,
            engine,
            completions,
            layout,
            features,
            drift,
            busy: AtomicUsize::new(0),
            running: Mutex::new(instances),
            stopped: Condvar::new(),
        });
        for instance in 0..instances {
            let thread_shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("ferroserve-{model}-{instance}"))
                .spawn(move || {
                    serve(&thread_shared, instance);
                    let mut running = thread_shared
                        .running
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    *running -= 1;
                    thread_shared.stopped.notify_all();
                });
            if let Err(error) = spawned {
                *shared
                    .running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) -= 1;
                return Err(error);
            }
        }
        Ok(Executor { shared })
    }
}

impl<B, T, E: Engine> Executor<B, T, E> {
    /// Whether no batch is running now.
    pub fn idle(&self) -> bool {
        self.shared.busy.load(Ordering::Acquire) == 0
    }

    /// Waits up to `timeout` for every thread to stop (close the queue first); whether they
    /// all did.
    pub fn join(&self, timeout: Duration) -> bool {
        let running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (running, _) = self
            .shared
            .stopped
            .wait_timeout_while(running, timeout, |running| *running > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *running == 0
    }
}

/// One thread's loop.
fn serve<B, T: 'static, E>(shared: &Shared<B, T, E>, instance: usize)
where
    B: AsRef<[u8]>,
    E: Engine,
    OutputTensor<E::Output>: AsRef<[u8]>,
{
    // This thread's drift counters: it is their only writer.
    let mut recorder = shared.drift.as_ref().and_then(|tap| tap.recorder(instance));
    loop {
        match shared.queue.next_batch(Duration::MAX) {
            NextBatch::Closed => return,
            NextBatch::Timeout => {}
            NextBatch::Batch(mut batch) => {
                let timed_out = format!("model '{}': request timed out in the queue", shared.model);
                let rejected = std::mem::take(&mut batch.rejected)
                    .into_iter()
                    .map(|token| (token, Err(Failure::DeadlineExceeded(timed_out.clone()))));
                shared
                    .completions
                    .deliver(&batch.rejected_ids, rejected.collect());
                if !batch.tokens.is_empty() {
                    let ids = std::mem::take(&mut batch.ids);
                    shared.busy.fetch_add(1, Ordering::AcqRel);
                    let answers = execute(shared, instance, &mut recorder, batch);
                    shared.busy.fetch_sub(1, Ordering::AcqRel);
                    shared.completions.deliver(&ids, answers);
                }
            }
        }
    }
}

/// Runs one batch and answers each of its requests. A panic while it runs (in onnxruntime's
/// binding, a feature join, a split) fails this batch's requests only: the thread goes on.
fn execute<B, T, E>(
    shared: &Shared<B, T, E>,
    instance: usize,
    recorder: &mut Option<Recorder>,
    batch: Batch<B, T>,
) -> Vec<Completed<T, E::Output>>
where
    B: AsRef<[u8]>,
    E: Engine,
    OutputTensor<E::Output>: AsRef<[u8]>,
{
    let ran =
        std::panic::catch_unwind(AssertUnwindSafe(|| run(shared, instance, recorder, &batch)));
    let (parts, rejected) = match ran {
        Ok(Ok(ran)) => ran,
        Ok(Err(failure)) => return fail_all(batch, &failure),
        Err(panic) => {
            let failure = Failure::Internal(format!(
                "model '{}': the batch failed: {}",
                shared.model,
                panic_message(panic.as_ref())
            ));
            return fail_all(batch, &failure);
        }
    };
    batch
        .tokens
        .into_iter()
        .zip(parts)
        .enumerate()
        .map(|(index, (token, part))| match rejected.get(index) {
            Some(Some(message)) => (
                token,
                Err(Failure::NotFound(format!(
                    "model '{}': {message}",
                    shared.model
                ))),
            ),
            _ => (token, Ok(part)),
        })
        .collect()
}

/// What a panic said, if it said it in text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// Each request's answer of one batch run, and per request the reason a reject-policy
/// feature view refused it (if any).
type Ran<O> = (Vec<Answer<O>>, Vec<Option<String>>);

/// Runs `batch`: gathers features, runs the engine, records drift and timings, splits the
/// outputs per request.
fn run<B, T, E>(
    shared: &Shared<B, T, E>,
    instance: usize,
    recorder: &mut Option<Recorder>,
    batch: &Batch<B, T>,
) -> Result<Ran<E::Output>, Failure>
where
    B: AsRef<[u8]>,
    E: Engine,
    OutputTensor<E::Output>: AsRef<[u8]>,
{
    let started = Instant::now();
    let layout = &shared.layout;
    let gathered = match &shared.features {
        Some(join) => Some(gather(join, batch).map_err(|message| {
            Failure::Internal(format!(
                "model '{}': feature lookup failed: {message}",
                shared.model
            ))
        })?),
        None => None,
    };
    // Without features the batch's inputs are the model's (reshaped as the config says).
    let shapes;
    let inputs = match &gathered {
        Some(gathered) => {
            layout.input_tensors(gathered.buffers.iter().map(Vec::as_slice), &gathered.shapes)
        }
        None => {
            shapes = layout.model_input_shapes(batch.inputs.iter().map(|input| &input.shape[..]));
            layout.input_tensors(
                batch.inputs.iter().map(|input| input.data.as_ref()),
                &shapes,
            )
        }
    };
    let prepared = Instant::now();
    let result = shared
        .engine
        .run(instance, &inputs, &shared.layout.output_names);
    let ran = Instant::now();
    if let (Ok(outputs), Some(tap), Some(recorder)) = (&result, &shared.drift, recorder.as_mut()) {
        let outputs = outputs
            .iter()
            .map(|output| (output.as_ref(), output.shape()));
        tap.observe(recorder, &inputs, outputs, layout.batches, ran);
    }
    let mut answers = result
        .map_err(|error| error.to_string())
        .and_then(|outputs| {
            split(&shared.layout, batch, outputs).map_err(|error| error.to_string())
        })
        .map_err(|message| {
            Failure::Internal(format!(
                "model '{}': onnxruntime failed: {message}",
                shared.model
            ))
        })?;
    let rows = executed_rows(&shared.layout, batch);
    let finished = Instant::now();
    let (input_ns, infer_ns, output_ns) = (
        nanos(prepared - started),
        nanos(ran - prepared),
        nanos(finished - ran),
    );
    shared
        .queue
        .record_execution(rows, input_ns, infer_ns, output_ns);
    for (answer, queued) in answers.iter_mut().zip(&batch.queue_durations) {
        answer.timing = Timing {
            queue_ns: nanos(*queued),
            input_ns,
            infer_ns,
            output_ns,
        };
    }
    let rejected = gathered
        .map(|gathered| gathered.rejected)
        .unwrap_or_default();
    Ok((answers, rejected))
}

/// Every request of `batch` answered with `failure`.
fn fail_all<B, T, O>(batch: Batch<B, T>, failure: &Failure) -> Vec<Completed<T, O>> {
    batch
        .tokens
        .into_iter()
        .map(|token| (token, Err(failure.clone())))
        .collect()
}

/// The model inputs of a batch of request inputs (a model with looked-up features).
fn gather<B: AsRef<[u8]>, T>(join: &FeatureJoin, batch: &Batch<B, T>) -> Result<Gathered, String> {
    let request: Vec<&[u8]> = batch
        .inputs
        .iter()
        .map(|input| input.data.as_ref())
        .collect();
    // Dim 0 of the request inputs: the batch's rows, also for one request queued unbatched.
    let rows = batch
        .inputs
        .first()
        .and_then(|input| input.shape.first())
        .map_or(0, |&rows| usize::try_from(rows).unwrap_or(0));
    join.gather(&request, rows, batch.rows())
}

/// Rows executed, as Triton counts inferences: dim 0 of a batching model's input also when
/// its queue sees the request as one (no dynamic_batching).
fn executed_rows<B: AsRef<[u8]>, T>(layout: &Layout, batch: &Batch<B, T>) -> usize {
    if layout.batches
        && batch.tokens.len() == 1
        && let Some(&rows) = batch.inputs.first().and_then(|input| input.shape.first())
    {
        return usize::try_from(rows).unwrap_or(0);
    }
    batch.size()
}

/// Each request's part of every output.
fn split<B, T, O>(
    layout: &Layout,
    batch: &Batch<B, T>,
    outputs: Vec<OutputTensor<O>>,
) -> Result<Vec<Answer<O>>, ferroserve_batcher::BatchError>
where
    B: AsRef<[u8]>,
    OutputTensor<O>: AsRef<[u8]>,
{
    let requests = batch.tokens.len();
    let mut parts: Vec<Vec<_>> = (0..requests)
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for (index, output) in outputs.iter().enumerate() {
        if requests == 1 {
            // Nothing to split (the common case at low load): the request gets all of it.
            parts[0].push(layout.whole_output(index, output));
            continue;
        }
        let dim0 = usize::try_from(output.shape().first().copied().unwrap_or(1)).unwrap_or(0);
        let ranges = if output.is_bytes() {
            let elements = output.shape().iter().try_fold(1usize, |count, &dim| {
                count.checked_mul(usize::try_from(dim).ok()?)
            });
            batch.splitter.split_bytes_ranges(
                output.as_ref(),
                dim0,
                elements.unwrap_or(usize::MAX),
            )?
        } else {
            batch.splitter.split_ranges(output.len(), dim0)?
        };
        for ((part, range), &rows) in parts.iter_mut().zip(ranges).zip(batch.rows()) {
            let rows = i64::try_from(rows).unwrap_or(i64::MAX);
            part.push((
                range,
                layout.client_output_shape(index, output.shape(), rows),
            ));
        }
    }
    let outputs = Arc::new(outputs);
    Ok(parts
        .into_iter()
        .map(|parts| Answer {
            outputs: Arc::clone(&outputs),
            parts,
            timing: Timing::default(),
        })
        .collect())
}

/// Nanoseconds, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
