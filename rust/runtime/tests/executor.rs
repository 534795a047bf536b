//! Executor threads with a stand-in engine: batches form, outputs split back per request,
//! failures and queue timeouts reach every request, threads stop when the queue closes.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ferroserve_batcher::{BatchQueue, BatcherConfig, QueuePolicy, Request};
use ferroserve_runtime::{
    Answer, Completed, Completions, Engine, Executor, Failure, InputTensor, Layout, OutputTensor,
    RuntimeError,
};
use proptest::prelude::*;

/// Doubles every input byte (output = input shape), or fails when the first byte is 0xFF.
/// With `gate`, each call waits at the barrier first, so a test can hold a batch running.
struct Doubler {
    calls: AtomicUsize,
    rows_seen: Mutex<Vec<i64>>,
    gate: Option<Arc<Barrier>>,
}

impl Doubler {
    fn new(gate: Option<Arc<Barrier>>) -> Self {
        Doubler {
            calls: AtomicUsize::new(0),
            rows_seen: Mutex::new(Vec::new()),
            gate,
        }
    }
}

impl Engine for Doubler {
    type Output = Vec<u8>;

    fn run(
        &self,
        _instance: usize,
        inputs: &[InputTensor<'_>],
        outputs: &[String],
    ) -> Result<Vec<OutputTensor<Vec<u8>>>, RuntimeError> {
        if let Some(gate) = &self.gate {
            gate.wait();
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let input = inputs[0];
        assert_eq!(input.name, "x");
        assert_eq!(outputs, ["y".to_owned()]);
        self.rows_seen.lock().unwrap().push(input.shape[0]);
        if input.data.first() == Some(&0xFF) {
            return Err(RuntimeError::Run("boom".into()));
        }
        let data: Vec<u8> = input.data.iter().map(|b| b.wrapping_mul(2)).collect();
        let len = data.len();
        Ok(vec![OutputTensor::new(data, input.shape.to_vec(), len)])
    }

    fn instances(&self) -> usize {
        1
    }
}

type Queue = BatchQueue<Vec<u8>, u32>;
type Done = Completions<u32, Vec<u8>>;

fn layout() -> Layout {
    Layout {
        input_names: vec!["x".into()],
        output_names: vec!["y".into()],
        batches: true,
        input_reshapes: vec![None],
        output_reshapes: vec![None],
    }
}

fn request(token: u32, rows: usize, fill: u8) -> Request<Vec<u8>, u32> {
    Request {
        inputs: vec![vec![fill; rows * 2]],
        shapes: vec![vec![rows as i64, 2]],
        token,
        priority: 0,
        timeout_us: 0,
        deadline: None,
    }
}

/// Answers until `count` arrived (or 5 s passed), sorted by token.
fn wait_for(done: &Done, count: usize) -> Vec<Completed<u32, Vec<u8>>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut all = Vec::new();
    while all.len() < count && Instant::now() < deadline {
        all.extend(done.take());
        std::thread::sleep(Duration::from_millis(1));
    }
    all.sort_by_key(|(token, _)| *token);
    all
}

fn bytes(answer: &Answer<Vec<u8>>) -> Vec<u8> {
    let (range, _) = &answer.parts[0];
    answer.outputs[0].as_ref()[range.clone()].to_vec()
}

struct Setup {
    queue: Arc<Queue>,
    engine: Arc<Doubler>,
    done: Arc<Done>,
    executor: Executor<Vec<u8>, u32, Doubler>,
}

fn setup(config: BatcherConfig, gate: Option<Arc<Barrier>>) -> Setup {
    let queue = Arc::new(BatchQueue::new("m", config).unwrap());
    let engine = Arc::new(Doubler::new(gate));
    let done = Arc::new(Completions::new().unwrap());
    let executor = Executor::start(
        "m",
        Arc::clone(&queue),
        Arc::clone(&engine),
        Arc::clone(&done) as Arc<dyn ferroserve_runtime::Deliver<_, _>>,
        layout(),
    )
    .unwrap();
    Setup {
        queue,
        engine,
        done,
        executor,
    }
}

fn batching(max_batch_size: usize) -> BatcherConfig {
    BatcherConfig {
        max_batch_size,
        ..BatcherConfig::default()
    }
}

#[test]
fn queued_requests_share_a_batch_and_get_their_own_rows() {
    let gate = Arc::new(Barrier::new(2));
    let s = setup(batching(16), Some(Arc::clone(&gate)));
    // The first request occupies the executor (held at the gate) while three more queue.
    s.queue.submit(request(0, 1, 1)).unwrap();
    while s.executor.idle() {
        std::thread::yield_now();
    }
    for (token, rows) in [(1, 1), (2, 3), (3, 2)] {
        s.queue
            .submit(request(token, rows, token as u8 + 10))
            .unwrap();
    }
    gate.wait(); // the first batch runs
    gate.wait(); // the second batch: the three queued requests together
    let answers = wait_for(&s.done, 4);
    assert_eq!(answers.len(), 4);
    assert_eq!(s.engine.calls.load(Ordering::SeqCst), 2);
    assert_eq!(*s.engine.rows_seen.lock().unwrap(), vec![1, 6]);
    for (token, answer) in &answers {
        let answer = answer.as_ref().expect("answered");
        let rows = [1, 1, 3, 2][*token as usize];
        let fill = if *token == 0 { 1u8 } else { *token as u8 + 10 };
        assert_eq!(bytes(answer), vec![fill * 2; rows * 2], "token {token}");
        assert_eq!(answer.parts[0].1, vec![rows as i64, 2]);
    }
    let stats = s.queue.statistics().snapshot();
    assert_eq!((stats.inference_count, stats.execution_count), (7, 2));
    s.queue.close(true);
    assert!(s.executor.join(Duration::from_secs(5)));
}

#[test]
fn a_failing_batch_fails_each_of_its_requests_and_the_executor_goes_on() {
    let s = setup(batching(8), None);
    s.queue.submit(request(1, 1, 0xFF)).unwrap();
    let failed = wait_for(&s.done, 1);
    match &failed[0].1 {
        Err(Failure::Internal(message)) => {
            assert_eq!(message, "model 'm': onnxruntime failed: boom");
        }
        other => panic!("expected an internal failure, got {other:?}"),
    }
    s.queue.submit(request(2, 1, 3)).unwrap();
    let answered = wait_for(&s.done, 1);
    assert_eq!(bytes(answered[0].1.as_ref().unwrap()), vec![6, 6]);
    s.queue.close(true);
    assert!(s.executor.join(Duration::from_secs(5)));
}

#[test]
fn a_request_that_times_out_in_the_queue_never_runs() {
    let gate = Arc::new(Barrier::new(2));
    let config = BatcherConfig {
        max_batch_size: 8,
        default_policy: QueuePolicy {
            default_timeout_us: 1_000,
            ..QueuePolicy::default()
        },
        ..BatcherConfig::default()
    };
    let s = setup(config, Some(Arc::clone(&gate)));
    s.queue.submit(request(1, 1, 1)).unwrap();
    while s.executor.idle() {
        std::thread::yield_now();
    }
    s.queue.submit(request(2, 1, 2)).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // request 2 outlives its 1 ms timeout
    gate.wait();
    let answers = wait_for(&s.done, 2);
    assert!(answers[0].1.is_ok());
    assert_eq!(
        answers[1].1.as_ref().err(),
        Some(&Failure::DeadlineExceeded(
            "model 'm': request timed out in the queue".into()
        ))
    );
    assert_eq!(s.engine.calls.load(Ordering::SeqCst), 1);
    s.queue.close(true);
    assert!(s.executor.join(Duration::from_secs(5)));
}

#[test]
fn closing_the_queue_stops_the_threads_after_draining() {
    let s = setup(batching(4), None);
    for token in 0..10 {
        s.queue.submit(request(token, 1, 1)).unwrap();
    }
    s.queue.close(true);
    assert!(s.executor.join(Duration::from_secs(5)));
    assert_eq!(wait_for(&s.done, 10).len(), 10);
    assert!(s.executor.idle());
}

#[test]
fn an_unbatched_model_gets_its_whole_output() {
    let queue: Arc<Queue> = Arc::new(BatchQueue::new("m", batching(0)).unwrap());
    let engine = Arc::new(Doubler::new(None));
    let done: Arc<Done> = Arc::new(Completions::new().unwrap());
    let mut unbatched = layout();
    unbatched.batches = false;
    unbatched.output_reshapes = vec![Some(vec![-1])];
    let executor = Executor::start(
        "m",
        Arc::clone(&queue),
        engine,
        Arc::clone(&done) as Arc<dyn ferroserve_runtime::Deliver<_, _>>,
        unbatched,
    )
    .unwrap();
    queue.submit(request(1, 3, 4)).unwrap();
    let answers = wait_for(&done, 1);
    let answer = answers[0].1.as_ref().unwrap();
    assert_eq!(bytes(answer), vec![8; 6]);
    assert_eq!(answer.parts[0].1, vec![6]); // reshaped to the client's dims: [-1] -> [6]
    queue.close(true);
    assert!(executor.join(Duration::from_secs(5)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the mix of request sizes, every request gets exactly its own rows back.
    #[test]
    fn every_request_gets_its_own_rows(rows in proptest::collection::vec(1usize..4, 1..12)) {
        let gate = Arc::new(Barrier::new(2));
        let s = setup(batching(64), Some(Arc::clone(&gate)));
        s.queue.submit(request(0, 1, 0)).unwrap();
        while s.executor.idle() {
            std::thread::yield_now();
        }
        for (index, &count) in rows.iter().enumerate() {
            let token = index as u32 + 1;
            s.queue.submit(request(token, count, token as u8)).unwrap();
        }
        gate.wait();
        gate.wait();
        let answers = wait_for(&s.done, rows.len() + 1);
        prop_assert_eq!(answers.len(), rows.len() + 1);
        for (token, answer) in answers.iter().skip(1) {
            let count = rows[*token as usize - 1];
            prop_assert_eq!(bytes(answer.as_ref().unwrap()), vec![*token as u8 * 2; count * 2]);
        }
        s.queue.close(true);
        prop_assert!(s.executor.join(Duration::from_secs(5)));
    }
}
