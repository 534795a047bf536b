//! Executor threads of a model with looked-up features: each batch's model input is gathered
//! from the request inputs and the store's snapshot; a row a reject-policy view cannot serve
//! answers its request NOT_FOUND while the rest of the batch is served.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_batcher::{BatchQueue, BatcherConfig, Request};
use ferroserve_features::{
    ColumnValues, Declaration, Feature, FeatureStore, FeatureValue, FeatureView, JoinPlan,
    KeyColumn, MissingPolicy, ModelInput, ModelInputAssembly, ModelSignature, RequestInput,
    Segment, TableBuilder,
};
use ferroserve_runtime::{
    Completed, Completions, Deliver, Engine, Executor, Failure, FeatureJoin, InputTensor, Layout,
    OutputTensor, RuntimeError,
};
use ferroserve_tensor::DataType;

/// Answers output "y" = its input "x", as the executor built it.
struct Echo;

impl Engine for Echo {
    type Output = Vec<u8>;

    fn run(
        &self,
        _instance: usize,
        inputs: &[InputTensor<'_>],
        _outputs: &[String],
    ) -> Result<Vec<OutputTensor<Vec<u8>>>, RuntimeError> {
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].name, "x");
        let data = inputs[0].data.to_vec();
        let len = data.len();
        Ok(vec![OutputTensor::new(data, inputs[0].shape.to_vec(), len)])
    }

    fn instances(&self) -> usize {
        1
    }
}

fn view(name: &str, key: &str, feature: &str, on_missing: MissingPolicy) -> FeatureView {
    FeatureView {
        name: name.into(),
        key: vec![key.into()],
        features: vec![Feature {
            name: feature.into(),
            datatype: DataType::Fp32,
            default: FeatureValue::Fp32(-1.0),
        }],
        max_age: None,
        on_missing,
    }
}

fn input(name: &str, datatype: DataType) -> RequestInput {
    RequestInput {
        name: name.into(),
        datatype,
        columns: 1,
    }
}

/// x = [dense, user.age, card.limit]; `card` rejects unknown cards.
fn join() -> FeatureJoin {
    let declaration = Declaration {
        request_inputs: vec![
            input("user_id", DataType::Int64),
            input("card_id", DataType::Int64),
            input("dense", DataType::Fp32),
        ],
        views: vec![
            view("user", "user_id", "age", MissingPolicy::UseDefault),
            view("card", "card_id", "limit", MissingPolicy::Reject),
        ],
        assembly: vec![ModelInputAssembly {
            model_input: "x".into(),
            segments: vec![
                Segment::RequestInput("dense".into()),
                Segment::View("user".into()),
                Segment::View("card".into()),
            ],
        }],
    };
    let signature = ModelSignature {
        inputs: vec![ModelInput {
            name: "x".into(),
            datatype: DataType::Fp32,
            dims: vec![3],
        }],
    };
    let plan = Arc::new(JoinPlan::compile(&declaration, &signature).unwrap());
    let store = Arc::new(FeatureStore::new(plan.view_layouts()));
    let users = TableBuilder::new(plan.view_layout("user").unwrap())
        .key("user_id", KeyColumn::Int64(&[1, 2]))
        .unwrap()
        .feature("age", ColumnValues::Fp32(&[30.0, 40.0]))
        .unwrap()
        .build()
        .unwrap();
    let cards = TableBuilder::new(plan.view_layout("card").unwrap())
        .key("card_id", KeyColumn::Int64(&[10]))
        .unwrap()
        .feature("limit", ColumnValues::Fp32(&[500.0]))
        .unwrap()
        .build()
        .unwrap();
    store.install(vec![users, cards]).unwrap();
    FeatureJoin { plan, store }
}

fn request(token: u32, user: i64, card: i64, dense: f32) -> Request<Vec<u8>, u32> {
    Request {
        inputs: vec![
            user.to_le_bytes().to_vec(),
            card.to_le_bytes().to_vec(),
            dense.to_le_bytes().to_vec(),
        ],
        shapes: vec![vec![1, 1]; 3],
        token,
        priority: 0,
        timeout_us: 0,
        deadline: None,
    }
}

fn floats(answer: &Completed<u32, Vec<u8>>) -> Vec<f32> {
    let answer = answer.1.as_ref().unwrap();
    let (range, shape) = &answer.parts[0];
    assert_eq!(shape, &vec![1, 3]);
    answer.outputs[0].as_ref()[range.clone()]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn a_batch_is_gathered_and_a_rejected_row_fails_only_its_request() {
    let config = BatcherConfig {
        max_batch_size: 8,
        max_queue_delay: Duration::from_millis(50),
        ..BatcherConfig::default()
    };
    let queue = Arc::new(BatchQueue::new("m", config).unwrap());
    // Queued before the executor starts, so the three form one batch.
    for (token, user, card, dense) in [(0, 1, 10, 0.5), (1, 7, 10, 1.5), (2, 2, 99, 2.5)] {
        queue.submit(request(token, user, card, dense)).unwrap();
    }
    let done: Arc<Completions<u32, Vec<u8>>> = Arc::new(Completions::new().unwrap());
    let layout = Layout {
        input_names: vec!["x".into()],
        output_names: vec!["y".into()],
        batches: true,
        input_reshapes: vec![None],
        output_reshapes: vec![None],
    };
    let join = join();
    let executor = Executor::start(
        "m",
        Arc::clone(&queue),
        Arc::new(Echo),
        Arc::clone(&done) as Arc<dyn Deliver<_, _>>,
        layout,
        Some(join.clone()),
        None,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answers = Vec::new();
    while answers.len() < 3 && Instant::now() < deadline {
        answers.extend(done.take());
        std::thread::sleep(Duration::from_millis(1));
    }
    answers.sort_by_key(|(token, _)| *token);
    assert_eq!(answers.len(), 3);
    assert_eq!(floats(&answers[0]), [0.5, 30.0, 500.0]);
    // user 7 is unknown: its view serves the default
    assert_eq!(floats(&answers[1]), [1.5, -1.0, 500.0]);
    match &answers[2].1 {
        Err(Failure::NotFound(message)) => {
            assert!(message.contains("card_id=99"), "{message}");
            assert!(message.contains("'card'"), "{message}");
        }
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
    let stats = join.plan.stats().snapshot();
    assert_eq!((stats.views[0].hits, stats.views[0].misses), (2, 1));
    assert_eq!((stats.views[1].misses, stats.views[1].rejected), (1, 1));
    queue.close(true);
    assert!(executor.join(Duration::from_secs(5)));
}
