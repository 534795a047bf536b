//! The native route's own accounting, with no executor draining its queue: a request queued by
//! `infer` whose answer future is dropped, polled or not, leaves the queue and is counted once,
//! as cancelled (a client that went away before its answer was ever awaited included); so is a
//! request of a model with Redis views dropped before its lookup started.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use ferroserve_batcher::{BatchQueue, BatcherConfig, Outcome};
use ferroserve_frontend::{InferRoute, NativeRoute};
use ferroserve_runtime::{Completions, Routed, Waiter};
use ferroserve_tensor::wire::{self, FastSignature, InputLayout};

mod common;
use common::infer_request;

type Queue = BatchQueue<Bytes, Waiter<(), Vec<u8>>>;

/// Model `model`'s route (one input of `datatype` and `shape`, one FP32 output "y") over a
/// queue nothing takes batches from, and the queue.
fn unserved_route(
    model: &str,
    input: &str,
    datatype: &str,
    shape: Vec<i64>,
) -> (NativeRoute<Bytes, (), Vec<u8>>, Arc<Queue>) {
    let config = BatcherConfig {
        max_batch_size: 8,
        ..BatcherConfig::default()
    };
    let queue = Arc::new(BatchQueue::new(model, config).unwrap());
    let routed: Arc<Routed<(), Vec<u8>>> = Arc::new(Routed::new(Completions::new().unwrap()));
    let signature = FastSignature {
        inputs: vec![InputLayout {
            name: input.into(),
            datatype: datatype.into(),
            shape,
            itemsize: if datatype == "INT64" { 8 } else { 4 },
        }],
        max_batch_size: 8,
        outputs: vec!["y".into()],
    };
    let route = NativeRoute::new(
        model.into(),
        "1".into(),
        signature,
        vec!["FP32".into()],
        Arc::clone(&queue),
        routed,
    );
    (route, queue)
}

/// A doubling model's route over a queue nothing takes batches from.
fn unserved() -> (Arc<dyn InferRoute>, Arc<Queue>) {
    let (route, queue) = unserved_route("m", "x", "FP32", vec![-1, 4]);
    (Arc::new(route), queue)
}

fn cancelled(queue: &Queue) -> u64 {
    queue.statistics().snapshot().outcomes[Outcome::Cancelled.index()]
}

fn infer(route: &Arc<dyn InferRoute>, id: &str) -> ferroserve_frontend::PendingInfer {
    let raw: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    let message = Bytes::from(infer_request("m", "1", id, &[1, 4], &raw));
    let view = wire::parse_infer_request(&message).unwrap();
    Arc::clone(route)
        .infer(message, view, None, false)
        .expect("the native route takes it")
}

#[test]
fn an_answer_dropped_before_its_first_poll_withdraws_the_request() {
    let (route, queue) = unserved();
    let pending = infer(&route, "never-awaited");
    assert_eq!(queue.pending(), 1, "infer queues the request at once");
    drop(pending);
    assert_eq!(queue.pending(), 0, "the dropped request left the queue");
    assert_eq!(cancelled(&queue), 1);
}

#[test]
fn an_answer_dropped_while_awaited_withdraws_the_request() {
    let (route, queue) = unserved();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut pending = infer(&route, "given-up");
    // One poll: the answer is not there, the request waits in the queue.
    let polled = runtime.block_on(std::future::poll_fn(|context| {
        std::task::Poll::Ready(pending.as_mut().poll(context))
    }));
    assert!(polled.is_pending());
    assert_eq!(queue.pending(), 1);
    drop(pending);
    assert_eq!(queue.pending(), 0, "the dropped request left the queue");
    assert_eq!(cancelled(&queue), 1);
}

/// A route whose one request input `user_id` (INT64) keys a Redis view `user` of one FP32
/// feature that fills graph input "x"; the store (a port nothing listens on) is never asked
/// unless the request's future runs.
fn joined() -> (Arc<dyn InferRoute>, Arc<Queue>) {
    use ferroserve_feast::{FeastNames, FeastProject, RedisStoreConfig};
    use ferroserve_features::{
        Declaration, Feature, FeatureStore, FeatureValue, FeatureView, JoinPlan, MissingPolicy,
        ModelInput, ModelInputAssembly, ModelSignature, RequestInput, Segment,
    };
    use ferroserve_frontend::RemoteJoin;
    use ferroserve_tensor::DataType;

    let declaration = Declaration {
        request_inputs: vec![RequestInput {
            name: "user_id".into(),
            datatype: DataType::Int64,
            columns: 1,
        }],
        views: vec![FeatureView {
            name: "user".into(),
            key: vec!["user_id".into()],
            features: vec![Feature {
                name: "age".into(),
                datatype: DataType::Fp32,
                default: FeatureValue::Fp32(-1.0),
            }],
            max_age: None,
            on_missing: MissingPolicy::UseDefault,
        }],
        assembly: vec![ModelInputAssembly {
            model_input: "x".into(),
            segments: vec![Segment::View("user".into())],
        }],
    };
    let signature = ModelSignature {
        inputs: vec![ModelInput {
            name: "x".into(),
            datatype: DataType::Fp32,
            dims: vec![1],
        }],
    };
    let plan = Arc::new(JoinPlan::compile(&declaration, &signature).unwrap());
    let store = Arc::new(FeatureStore::new(plan.view_layouts()));
    let join = RemoteJoin::new(
        plan,
        store,
        RedisStoreConfig::new("redis://127.0.0.1:1/0"),
        &FeastProject::new("p"),
        &[("user".to_owned(), FeastNames::default())],
    )
    .unwrap();
    let (route, queue) = unserved_route("j", "user_id", "INT64", vec![-1, 1]);
    (Arc::new(route.with_remote_join(Arc::new(join))), queue)
}

#[test]
fn a_joined_request_dropped_before_its_first_poll_counts_as_cancelled() {
    let (route, queue) = joined();
    let mut dims = Vec::new();
    for dim in [1u64, 1] {
        common::put_varint(&mut dims, dim);
    }
    let tensor = [
        common::field(1, b"user_id"),
        common::field(2, b"INT64"),
        common::field(3, &dims),
    ]
    .concat();
    let message = Bytes::from(
        [
            common::string(1, "j"),
            common::string(3, "gone"),
            common::field(5, &tensor),
            common::field(7, &7i64.to_le_bytes()),
        ]
        .concat(),
    );
    let view = wire::parse_infer_request(&message).unwrap();
    let pending = Arc::clone(&route)
        .infer(message, view, None, false)
        .expect("the native route takes it");
    drop(pending);
    assert_eq!(queue.pending(), 0, "nothing was queued");
    assert_eq!(cancelled(&queue), 1);
}
