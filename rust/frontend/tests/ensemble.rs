//! Ensembles on the native path, in Rust: an `EnsembleRoute` whose steps run on two stand-in
//! doubling engines behind real batch queues and executor threads, found through the route
//! table as the front end serves them; its answers, statistics and errors.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ferroserve_batcher::{BatchQueue, BatcherConfig, Outcome};
use ferroserve_frontend::{
    Code, EnsemblePlan, EnsembleRoute, EnsembleStep, InferRoute, ModelSpec, NativeRoute,
    RouteTable, TargetSpec,
};
use ferroserve_runtime::{Completions, Deliver, Executor, Layout, Routed, Waiter};
use ferroserve_tensor::wire::{self, FastSignature, InputLayout};

mod common;
use common::{Doubler, infer_request};

type Queue = BatchQueue<Bytes, Waiter<(), Vec<u8>>>;

fn signature(input: &str, output: &str) -> FastSignature {
    FastSignature {
        inputs: vec![InputLayout {
            name: input.into(),
            datatype: "FP32".into(),
            shape: vec![-1, 4],
            itemsize: 4,
        }],
        max_batch_size: 8,
        outputs: vec![output.into()],
    }
}

/// A doubling model: its route, queue and executor thread.
struct Model {
    route: Arc<dyn InferRoute>,
    queue: Arc<Queue>,
    _executor: Executor<Bytes, Waiter<(), Vec<u8>>, Doubler>,
}

fn doubling(name: &str) -> Model {
    let config = BatcherConfig {
        max_batch_size: 8,
        ..BatcherConfig::default()
    };
    let queue: Arc<Queue> = Arc::new(BatchQueue::new(name, config).unwrap());
    let routed: Arc<Routed<(), Vec<u8>>> = Arc::new(Routed::new(Completions::new().unwrap()));
    let executor = Executor::start(
        name,
        Arc::clone(&queue),
        Arc::new(Doubler::default()),
        Arc::clone(&routed) as Arc<dyn Deliver<Waiter<(), Vec<u8>>, Vec<u8>>>,
        Layout {
            input_names: vec!["x".into()],
            output_names: vec!["y".into()],
            batches: true,
            input_reshapes: vec![None],
            output_reshapes: vec![None],
        },
        None,
        None,
    )
    .unwrap();
    let route = NativeRoute::new(
        name.into(),
        "1".into(),
        signature("x", "y"),
        vec!["FP32".into()],
        Arc::clone(&queue),
        routed,
    );
    Model {
        route: Arc::new(route),
        queue,
        _executor: executor,
    }
}

fn spec(model: &str, route: &Arc<dyn InferRoute>) -> ModelSpec {
    let target = || TargetSpec {
        alias: String::new(),
        version: "1".into(),
        route: Arc::clone(route),
    };
    ModelSpec {
        model: model.into(),
        named: vec![("1".into(), target())],
        split: vec![(100, target())],
        shadows: Vec::new(),
    }
}

/// x -> a -> t -> b -> out: four times each byte.
fn chain(stats: &Arc<Queue>) -> Arc<EnsembleRoute<Bytes, Waiter<(), Vec<u8>>>> {
    let step = |model: &str, input: usize, output: usize| EnsembleStep {
        model: model.into(),
        version: String::new(),
        inputs: vec![("x".into(), input)],
        outputs: vec![("y".into(), output)],
    };
    let plan = EnsemblePlan::new(
        vec!["x".into(), "t".into(), "out".into()],
        vec![0],
        vec![2],
        vec![step("a", 0, 1), step("b", 1, 2)],
    )
    .unwrap();
    Arc::new(EnsembleRoute::new(
        "e".into(),
        "1".into(),
        signature("x", "out"),
        vec!["FP32".into()],
        plan,
        Arc::clone(stats),
    ))
}

async fn ask(
    route: &Arc<dyn InferRoute>,
    raw: &[u8],
) -> Result<Vec<u8>, ferroserve_frontend::Status> {
    let message = Bytes::from(infer_request("e", "", "req-1", &[2, 4], raw));
    let view = wire::parse_infer_request(&message).unwrap();
    let deadline = Some(Instant::now() + std::time::Duration::from_secs(5));
    let pending = Arc::clone(route)
        .infer(message, view, deadline, false)
        .unwrap();
    pending.await
}

#[test]
fn a_chain_runs_its_steps_through_the_routed_versions() {
    let (a, b) = (doubling("a"), doubling("b"));
    let stats: Arc<Queue> = Arc::new(BatchQueue::new("e", BatcherConfig::default()).unwrap());
    let ensemble = chain(&stats);
    let routes = Arc::new(RouteTable::new());
    ensemble.bind(&routes);
    let ensemble: Arc<dyn InferRoute> = ensemble;
    routes.replace(vec![
        spec("a", &a.route),
        spec("b", &b.route),
        spec("e", &ensemble),
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw: Vec<u8> = (0..32).collect();
    let response = runtime.block_on(ask(&ensemble, &raw)).unwrap();
    let quadrupled: Vec<u8> = raw.iter().map(|b| b.wrapping_mul(4)).collect();
    let expected = wire::encode_infer_response(
        b"e",
        b"1",
        b"req-1",
        &[wire::ResponseOutput {
            name: "out",
            datatype: "FP32",
            shape: &[2, 4],
            raw: &quadrupled,
        }],
        false,
    );
    assert_eq!(response, expected);
    // The ensemble counts its request, with its steps' queue and compute times summed as one
    // execution of its 2 rows; each composing model counts its step.
    let own = stats.statistics().snapshot();
    assert_eq!(own.success.count, 1);
    assert_eq!((own.execution_count, own.inference_count), (1, 2));
    assert_eq!((own.queue.count, own.compute_infer.count), (1, 1));
    let steps = [&a, &b].map(|m| m.queue.statistics().snapshot().compute_infer.ns);
    assert!(
        own.compute_infer.ns >= steps[0] + steps[1],
        "{own:?} {steps:?}"
    );
    assert_eq!(a.queue.statistics().snapshot().success.count, 1);
    assert_eq!(b.queue.statistics().snapshot().success.count, 1);

    // A step whose model is not routed any more fails the request, naming the step.
    routes.replace(vec![spec("a", &a.route), spec("e", &ensemble)]);
    let error = runtime.block_on(ask(&ensemble, &raw)).unwrap_err();
    assert_eq!(error.code, Code::Unavailable);
    assert!(
        error.message.contains("ensemble 'e' step 2 (model 'b')"),
        "{}",
        error.message
    );
    assert_eq!(stats.statistics().snapshot().fail.count, 1);
}

#[test]
fn an_ensemble_request_dropped_before_its_first_poll_counts_as_cancelled() {
    let stats: Arc<Queue> = Arc::new(BatchQueue::new("e", BatcherConfig::default()).unwrap());
    let ensemble: Arc<dyn InferRoute> = chain(&stats);
    let raw: Vec<u8> = (0..32).collect();
    let message = Bytes::from(infer_request("e", "", "gone", &[2, 4], &raw));
    let view = wire::parse_infer_request(&message).unwrap();
    let pending = Arc::clone(&ensemble)
        .infer(message, view, None, false)
        .unwrap();
    drop(pending);
    let own = stats.statistics().snapshot();
    assert_eq!(own.outcomes[Outcome::Cancelled.index()], 1, "{own:?}");
    // Counted once: as Triton counts a cancelled request, among the failures.
    assert_eq!((own.success.count, own.fail.count), (0, 1));
}
