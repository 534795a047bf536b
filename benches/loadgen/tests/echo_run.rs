//! `run` against an in-process `echo`: answers are counted, failures are counted as errors by
//! code and never as answers, a dead target is an error. No timing is asserted.

use std::time::Duration;

use ferroserve_loadgen::{Canned, Echo, EchoConfig, RunConfig, Summary, TensorSpec, run};

fn echo(canned: Canned) -> Echo {
    Echo::start(EchoConfig {
        address: "127.0.0.1:0".into(),
        threads: 1,
        canned,
    })
    .expect("the echo starts")
}

fn mlp_answer(rows: u64) -> Canned {
    let output = TensorSpec::parse("output:FP32:10").expect("valid");
    Canned::answer("mlp", &output, rows).expect("sized")
}

fn config(target: String, stream: bool) -> RunConfig {
    RunConfig {
        target,
        model: "mlp".into(),
        model_version: String::new(),
        inputs: vec![TensorSpec::parse("input:FP32:64").expect("valid")],
        parameters: Vec::new(),
        rows: 4,
        concurrency: 5,
        connections: 2,
        stream,
        typed: false,
        http: None,
        warmup: Duration::from_millis(50),
        window: Duration::from_millis(250),
        timeout: Duration::from_secs(5),
        threads: 1,
    }
}

fn measure(canned: Canned, stream: bool) -> Summary {
    let server = echo(canned);
    run(&config(server.address().to_string(), stream)).expect("the run starts")
}

#[test]
fn unary_answers_are_counted() {
    let summary = measure(mlp_answer(4), false);
    assert!(summary.requests > 0);
    assert!(summary.errors.is_empty(), "{:?}", summary.first_error);
    assert!(summary.latency_us.len() == summary.requests);
    // Frame prefix; model_name; inputs[0] (name, datatype, shape [4, 64]); 4 x 64 FP32 raw.
    assert_eq!(
        summary.request_bytes,
        5 + (2 + 3) + (2 + 17) + (3 + 4 * 64 * 4)
    );
}

#[test]
fn streamed_answers_are_counted() {
    let summary = measure(mlp_answer(4), true);
    assert!(summary.requests > 0);
    assert!(summary.errors.is_empty(), "{:?}", summary.first_error);
}

#[test]
fn a_multi_threaded_run_counts_too() {
    let server = echo(mlp_answer(4));
    let summary = run(&RunConfig {
        threads: 2,
        ..config(server.address().to_string(), false)
    })
    .expect("the run starts");
    assert!(summary.requests > 0);
    assert!(summary.errors.is_empty(), "{:?}", summary.first_error);
}

#[test]
fn unary_failures_are_errors_by_code_not_answers() {
    let summary = measure(Canned::failing(5, "unknown model mlp"), false);
    assert_eq!(summary.requests, 0);
    assert!(summary.errors["NOT_FOUND"] > 0, "{:?}", summary.errors);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(
        summary.first_error.as_deref(),
        Some("NOT_FOUND: unknown model mlp")
    );
}

#[test]
fn stream_error_messages_are_errors_not_answers() {
    let summary = measure(Canned::failing(5, "unknown model mlp"), true);
    assert_eq!(summary.requests, 0);
    assert!(summary.errors["error_message"] > 0, "{:?}", summary.errors);
    assert_eq!(summary.errors.len(), 1);
}

#[test]
fn a_target_nobody_listens_on_is_an_error() {
    let port = {
        let server = echo(mlp_answer(1));
        server.address().port()
    };
    assert!(run(&config(format!("127.0.0.1:{port}"), false)).is_err());
}
