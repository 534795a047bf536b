//! Drift tracking on the executor: every executed batch's model inputs and outputs land in the
//! tracker's counts (batched and unbatched models), and a batch the tracker cannot count is
//! served as usual and counted as an error.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::wait_for;
use ferroserve_batcher::{BatchQueue, BatcherConfig, Request};
use ferroserve_drift::{
    ColumnProfile, DriftTracker, MonitoredColumn, NumericProfile, TrackerConfig, WindowPolicy,
    numeric_bin,
};
use ferroserve_runtime::{
    Completions, Deliver, DriftTap, Engine, Executor, InputTensor, Layout, OutputTensor,
    RuntimeError,
};
use ferroserve_tensor::DataType;

/// `y = 2 x` on FP32 tensors of any shape.
struct Doubler;

impl Engine for Doubler {
    type Output = Vec<u8>;

    fn run(
        &self,
        _instance: usize,
        inputs: &[InputTensor<'_>],
        _outputs: &[String],
    ) -> Result<Vec<OutputTensor<Vec<u8>>>, RuntimeError> {
        let data: Vec<u8> = floats(inputs[0].data)
            .iter()
            .flat_map(|value| (value * 2.0).to_le_bytes())
            .collect();
        let len = data.len();
        Ok(vec![OutputTensor::new(data, inputs[0].shape.to_vec(), len)])
    }

    fn instances(&self) -> usize {
        2
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect()
}

type Done = Completions<u32, Vec<u8>>;
type Queue = BatchQueue<Vec<u8>, u32>;
type Started = (Arc<Queue>, Arc<Done>, Executor<Vec<u8>, u32, Doubler>);

/// Columns x[0] (input 0, column 0) and y[1] (output, column 1), profiled on 0..100.
fn tracker() -> Arc<DriftTracker> {
    let reference: Vec<f64> = (0..100).map(f64::from).collect();
    let column = |name: &str, tensor, column| MonitoredColumn {
        name: name.into(),
        tensor,
        column,
        datatype: DataType::Fp32,
        profile: ColumnProfile::Numeric(NumericProfile::from_values(name, &reference, 4).unwrap()),
    };
    DriftTracker::new(TrackerConfig {
        columns: vec![column("x[0]", 0, 0), column("y[1]", 1, 1)],
        instances: 2,
        window: WindowPolicy::Rows(1_000_000),
        sample_every: 1,
    })
    .unwrap()
}

fn edges(tracker: &DriftTracker, column: usize) -> Vec<f64> {
    match &tracker.profiles()[column] {
        ColumnProfile::Numeric(profile) => profile.edges.clone(),
        ColumnProfile::Categorical(_) => unreachable!(),
    }
}

fn start(batches: bool, tap: DriftTap) -> Started {
    let config = BatcherConfig {
        max_batch_size: if batches { 16 } else { 0 },
        ..BatcherConfig::default()
    };
    let queue = Arc::new(BatchQueue::new("m", config).unwrap());
    let done = Arc::new(Completions::new().unwrap());
    let layout = Layout {
        input_names: vec!["x".into()],
        output_names: vec!["y".into()],
        batches,
        input_reshapes: vec![None],
        output_reshapes: vec![None],
    };
    let executor = Executor::start(
        "m",
        Arc::clone(&queue),
        Arc::new(Doubler),
        Arc::clone(&done) as Arc<dyn Deliver<_, _>>,
        layout,
        None,
        Some(tap),
    )
    .unwrap();
    (queue, done, executor)
}

fn request(token: u32, values: &[f32], shape: Vec<i64>) -> Request<Vec<u8>, u32> {
    Request {
        inputs: vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()],
        shapes: vec![shape],
        token,
        priority: 0,
        timeout_us: 0,
        deadline: None,
    }
}

/// The expected bins of `values` among `edges`.
fn binned(edges: &[f64], values: impl IntoIterator<Item = f32>) -> Vec<u64> {
    let mut counts = vec![0; edges.len() + 1];
    for value in values {
        counts[numeric_bin(edges, f64::from(value))] += 1;
    }
    counts
}

#[test]
fn executed_batches_count_model_inputs_and_outputs() {
    let tracker = tracker();
    let tap = DriftTap::new(Arc::clone(&tracker), vec![DataType::Fp32, DataType::Fp32]);
    let (queue, done, executor) = start(true, tap.clone());
    // Rows [a, b]: x[0] = a, y[1] = 2 b.
    let rows: Vec<[f32; 2]> = (0..40u8)
        .map(|i| [f32::from(i) * 2.5, f32::from(i)])
        .collect();
    for (token, row) in rows.iter().enumerate() {
        queue
            .submit(request(token as u32, row, vec![1, 2]))
            .unwrap();
    }
    let answers = wait_for(&done, rows.len());
    assert_eq!(answers.len(), rows.len());
    assert!(answers.iter().all(|(_, answer)| answer.is_ok()));
    queue.close(true);
    assert!(executor.join(Duration::from_secs(5)));

    let snapshot = tracker.snapshot(Instant::now());
    let counts = &snapshot.cumulative;
    assert_eq!(counts.rows, 40);
    assert_eq!(
        counts.columns[0].bins,
        binned(&edges(&tracker, 0), rows.iter().map(|row| row[0]))
    );
    assert_eq!(
        counts.columns[1].bins,
        binned(&edges(&tracker, 1), rows.iter().map(|row| row[1] * 2.0))
    );
    assert_eq!(tap.errors(), 0);
}

#[test]
fn an_unbatched_models_one_dimensional_tensor_is_one_row() {
    let tracker = tracker();
    let tap = DriftTap::new(Arc::clone(&tracker), vec![DataType::Fp32, DataType::Fp32]);
    let (queue, done, executor) = start(false, tap.clone());
    queue.submit(request(0, &[7.0, 30.0], vec![2])).unwrap();
    assert_eq!(wait_for(&done, 1).len(), 1);
    queue.close(true);
    assert!(executor.join(Duration::from_secs(5)));

    let counts = tracker.snapshot(Instant::now()).cumulative;
    assert_eq!(counts.rows, 1);
    assert_eq!(counts.columns[0].bins, binned(&edges(&tracker, 0), [7.0]));
    assert_eq!(counts.columns[1].bins, binned(&edges(&tracker, 1), [60.0]));
    assert_eq!(tap.errors(), 0);
}

#[test]
fn a_batch_the_tracker_refuses_is_served_and_counted_as_an_error() {
    let tracker = tracker();
    // Wrong datatypes (a wiring bug): the tracker refuses the batch, the request still runs.
    let tap = DriftTap::new(Arc::clone(&tracker), vec![DataType::Int32, DataType::Fp32]);
    let (queue, done, executor) = start(true, tap.clone());
    queue.submit(request(0, &[1.0, 2.0], vec![1, 2])).unwrap();
    let answers = wait_for(&done, 1);
    assert!(answers[0].1.is_ok());
    queue.close(true);
    assert!(executor.join(Duration::from_secs(5)));

    assert_eq!(tracker.snapshot(Instant::now()).cumulative.rows, 0);
    assert_eq!(tap.errors(), 1);
}
