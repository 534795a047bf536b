//! Executor threads with a stand-in engine: batches form, outputs split back per request,
//! failures and queue timeouts reach every request, threads stop when the queue closes.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::wait_for;
use ferroserve_batcher::{BatchQueue, BatcherConfig, QueuePolicy, Request};
use ferroserve_runtime::{
    Answer, Completions, Deliver, Engine, Executor, Failure, InputTensor, Layout, OutputTensor,
    Reshape, Routed, RuntimeError, Waiter,
};
use proptest::prelude::*;

/// Doubles every input byte (output = input shape), or fails when the first byte is 0xFF, or
/// panics when it is 0xFE.
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
        if input.data.first() == Some(&0xFE) {
            panic!("the engine broke");
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
        None,
        None,
    )
    .unwrap();
    Setup {
        queue,
        engine,
        done,
        executor,
    }
}

/// Waits until the executor runs a batch (bounded: a test never hangs on a missed start).
fn wait_until_busy<E: Engine>(executor: &Executor<Vec<u8>, u32, E>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while executor.idle() {
        assert!(
            Instant::now() < deadline,
            "the executor never started the first batch"
        );
        std::thread::yield_now();
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
    wait_until_busy(&s.executor);
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
fn a_panicking_batch_fails_its_requests_only_and_the_executor_goes_on() {
    let s = setup(batching(8), None);
    s.queue.submit(request(1, 1, 0xFE)).unwrap();
    let failed = wait_for(&s.done, 1);
    match &failed[0].1 {
        Err(Failure::Internal(message)) => {
            assert_eq!(message, "model 'm': the batch failed: the engine broke");
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
    // Level 1 has no queue timeout, level 2 (the default) 1 ms: request 1 (level 1) must run
    // however late the executor thread is scheduled (it once timed out on a loaded machine, and
    // the test then waited forever for the executor to get busy), request 2 must time out.
    let config = BatcherConfig {
        max_batch_size: 8,
        priority_levels: 2,
        default_priority_level: 2,
        priority_policies: [(
            2,
            QueuePolicy {
                default_timeout_us: 1_000,
                ..QueuePolicy::default()
            },
        )]
        .into_iter()
        .collect(),
        ..BatcherConfig::default()
    };
    let s = setup(config, Some(Arc::clone(&gate)));
    s.queue
        .submit(Request {
            priority: 1,
            ..request(1, 1, 1)
        })
        .unwrap();
    wait_until_busy(&s.executor);
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
    unbatched.output_reshapes = vec![Some(Reshape::between(&[], &[-1]))];
    let executor = Executor::start(
        "m",
        Arc::clone(&queue),
        engine,
        Arc::clone(&done) as Arc<dyn ferroserve_runtime::Deliver<_, _>>,
        unbatched,
        None,
        None,
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

/// A gate slow calls wait at until the test opens it.
#[derive(Default)]
struct Latch {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Latch {
    fn wait(&self) {
        let open = self.open.lock().unwrap();
        drop(self.opened.wait_while(open, |open| !*open).unwrap());
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Two instances; a call whose first input byte is `SLOW_FILL` waits for `latch` first.
/// Counts the calls that returned.
#[derive(Default)]
struct TwoInstances {
    latch: Latch,
    returned: AtomicUsize,
}

const SLOW_FILL: u8 = 0xEE;

impl Engine for TwoInstances {
    type Output = Vec<u8>;

    fn run(
        &self,
        _instance: usize,
        inputs: &[InputTensor<'_>],
        _outputs: &[String],
    ) -> Result<Vec<OutputTensor<Vec<u8>>>, RuntimeError> {
        let input = inputs[0];
        if input.data.first() == Some(&SLOW_FILL) {
            self.latch.wait();
        }
        let data = input.data.to_vec();
        let len = data.len();
        self.returned.fetch_add(1, Ordering::SeqCst);
        Ok(vec![OutputTensor::new(data, input.shape.to_vec(), len)])
    }

    fn instances(&self) -> usize {
        2
    }
}

type Ordered = Routed<u32, Vec<u8>>;
type WaiterQueue = BatchQueue<Vec<u8>, Waiter<u32, Vec<u8>>>;

struct OrderedSetup {
    queue: Arc<WaiterQueue>,
    engine: Arc<TwoInstances>,
    routed: Arc<Ordered>,
    executor: Executor<Vec<u8>, Waiter<u32, Vec<u8>>, TwoInstances>,
}

/// Two instances of `TwoInstances` delivering through `Routed::in_order`.
fn ordered_setup(config: BatcherConfig) -> OrderedSetup {
    let queue = Arc::new(BatchQueue::new("m", config).unwrap());
    let engine = Arc::new(TwoInstances::default());
    let routed: Arc<Ordered> = Arc::new(Routed::in_order(Completions::new().unwrap()));
    let executor = Executor::start(
        "m",
        Arc::clone(&queue),
        Arc::clone(&engine),
        Arc::clone(&routed) as Arc<dyn Deliver<Waiter<u32, Vec<u8>>, Vec<u8>>>,
        layout(),
        None,
        None,
    )
    .unwrap();
    OrderedSetup {
        queue,
        engine,
        routed,
        executor,
    }
}

impl OrderedSetup {
    fn submit(&self, token: u32, rows: usize, fill: u8, timeout_us: u64) -> u64 {
        self.queue
            .submit(Request {
                inputs: vec![vec![fill; rows * 2]],
                shapes: vec![vec![rows as i64, 2]],
                token: Waiter::Host(token),
                priority: 0,
                timeout_us,
                deadline: None,
            })
            .unwrap()
    }

    fn stop(self) {
        self.queue.close(true);
        assert!(self.executor.join(Duration::from_secs(5)));
    }
}

/// Host answers of `routed` until `count` arrived (or 5 s passed), in the order delivered.
fn delivered(routed: &Ordered, count: usize) -> Vec<(u32, bool)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut all = Vec::new();
    while all.len() < count && Instant::now() < deadline {
        all.extend(
            routed
                .host()
                .take()
                .into_iter()
                .map(|(token, answer)| (token, answer.is_ok())),
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    all
}

#[test]
fn preserve_ordering_answers_in_queue_order_across_instances() {
    // A full batch held running on one instance; a light request the other instance answers
    // meanwhile waits for it.
    let s = ordered_setup(BatcherConfig {
        preserve_ordering: true,
        ..batching(4)
    });
    s.submit(1, 4, SLOW_FILL, 0);
    s.submit(2, 1, 1, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.engine.returned.load(Ordering::SeqCst) < 1 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(20)); // time to deliver, were it not held
    assert!(
        s.routed.host().is_empty(),
        "request 2 went before request 1"
    );
    s.engine.latch.open();
    assert_eq!(delivered(&s.routed, 2), [(1, true), (2, true)]);
    s.submit(3, 1, 1, 0);
    assert_eq!(delivered(&s.routed, 1), [(3, true)], "its turn: at once");
    s.stop();
}

#[test]
fn preserve_ordering_keeps_the_place_of_a_request_that_timed_out() {
    let s = ordered_setup(BatcherConfig {
        preserve_ordering: true,
        default_policy: QueuePolicy {
            default_timeout_us: 60_000_000,
            allow_timeout_override: true,
            ..QueuePolicy::default()
        },
        ..batching(4)
    });
    // Both instances held; request 3 times out in the queue, request 4 runs after it.
    s.submit(1, 4, SLOW_FILL, 0);
    s.submit(2, 4, SLOW_FILL, 0);
    s.submit(3, 1, 1, 1_000);
    s.submit(4, 1, 1, 0);
    std::thread::sleep(Duration::from_millis(20));
    s.engine.latch.open();
    assert_eq!(
        delivered(&s.routed, 4),
        [(1, true), (2, true), (3, false), (4, true)]
    );
    s.stop();
}

#[test]
fn a_withdrawn_request_does_not_hold_up_later_answers() {
    let s = ordered_setup(BatcherConfig {
        preserve_ordering: true,
        ..batching(4)
    });
    s.submit(1, 4, SLOW_FILL, 0);
    s.submit(2, 4, SLOW_FILL, 0);
    let gone = s.submit(3, 1, 1, 0);
    s.submit(4, 1, 1, 0);
    // Cancelled while both instances are held: it leaves the queue and the order.
    assert!(s.queue.cancel(gone));
    s.routed.withdraw(gone);
    s.engine.latch.open();
    assert_eq!(delivered(&s.routed, 3), [(1, true), (2, true), (4, true)]);
    s.stop();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the mix of request sizes, every request gets exactly its own rows back.
    #[test]
    fn every_request_gets_its_own_rows(rows in proptest::collection::vec(1usize..4, 1..12)) {
        let gate = Arc::new(Barrier::new(2));
        let s = setup(batching(64), Some(Arc::clone(&gate)));
        s.queue.submit(request(0, 1, 0)).unwrap();
        wait_until_busy(&s.executor);
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
