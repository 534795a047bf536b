//! `run --http` against a small in-process HTTP/1.1 server: answers with outputs are counted,
//! a non-2xx answer is an error by status with its body shown, a server that closes the
//! connection after every answer is reconnected to, the binary request's header length is
//! what the server reads. No timing is asserted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferroserve_loadgen::{Encoding, RunConfig, Summary, TensorSpec, run};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// What the server answers, and whether it closes the connection after answering.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    body: &'static str,
    close: bool,
}

/// The first request the server saw: path, content type, header length, body.
type Seen = Arc<Mutex<Option<(String, String, Option<String>, Bytes)>>>;

/// Serves `answer` on a port of its own, on a thread of its own, for the test's lifetime.
fn serve(answer: Answer) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("bound");
    listener.set_nonblocking(true).expect("nonblocking");
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (answer, record) = (answer.clone(), Arc::clone(&record));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        respond(request, answer.clone(), Arc::clone(&record))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    (address, seen)
}

async fn respond(
    request: Request<Incoming>,
    answer: Answer,
    seen: Seen,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap_or_default().to_owned())
    };
    let first = (
        request.uri().path().to_owned(),
        header("content-type").unwrap_or_default(),
        header("inference-header-content-length"),
    );
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let mut seen = seen.lock().expect("not poisoned");
    if seen.is_none() {
        *seen = Some((first.0, first.1, first.2, body));
    }
    let mut response = Response::new(Full::new(Bytes::from_static(answer.body.as_bytes())));
    *response.status_mut() = answer.status;
    if answer.close {
        response
            .headers_mut()
            .insert("connection", http::HeaderValue::from_static("close"));
    }
    Ok(response)
}

const OUTPUTS: &str = r#"{"model_name":"mlp","outputs":[{"name":"output","shape":[2,10],"datatype":"FP32","data":[0.5]}]}"#;

fn config(address: SocketAddr, encoding: Encoding) -> RunConfig {
    RunConfig {
        target: address.to_string(),
        model: "mlp".into(),
        model_version: String::new(),
        inputs: vec![TensorSpec::parse("input:FP32:64").expect("valid")],
        parameters: Vec::new(),
        rows: 2,
        concurrency: 3,
        connections: 3,
        stream: false,
        typed: false,
        http: Some(encoding),
        warmup: Duration::from_millis(50),
        window: Duration::from_millis(250),
        timeout: Duration::from_secs(5),
        threads: 1,
    }
}

fn measure(answer: Answer, encoding: Encoding) -> (Summary, Seen) {
    let (address, seen) = serve(answer);
    let summary = run(&config(address, encoding)).expect("the run starts");
    (summary, seen)
}

fn ok(close: bool) -> Answer {
    Answer {
        status: StatusCode::OK,
        body: OUTPUTS,
        close,
    }
}

#[test]
fn json_answers_are_counted() {
    let (summary, seen) = measure(ok(false), Encoding::Json);
    assert!(summary.requests > 0);
    assert!(summary.errors.is_empty(), "{:?}", summary.first_error);
    assert_eq!(summary.latency_us.len(), summary.requests);
    let (path, content_type, header_length, body) = seen
        .lock()
        .expect("not poisoned")
        .clone()
        .expect("a request");
    assert_eq!(path, "/v2/models/mlp/infer");
    assert_eq!(content_type, "application/json");
    assert_eq!(header_length, None);
    assert_eq!(body.len(), summary.request_bytes);
    let text = std::str::from_utf8(&body).expect("JSON is text");
    assert!(
        text.starts_with(r#"{"inputs":[{"name":"input","shape":[2,64],"datatype":"FP32","data":["#)
    );
    assert_eq!(text.matches(',').count(), 2 * 64 - 1 + 4, "{text}");
}

#[test]
fn binary_requests_carry_their_header_length() {
    let (summary, seen) = measure(ok(false), Encoding::Binary);
    assert!(summary.requests > 0);
    assert!(summary.errors.is_empty(), "{:?}", summary.first_error);
    let (_, content_type, header_length, body) = seen
        .lock()
        .expect("not poisoned")
        .clone()
        .expect("a request");
    assert_eq!(content_type, "application/octet-stream");
    let header_length: usize = header_length
        .expect("the header")
        .parse()
        .expect("a number");
    assert_eq!(body.len(), header_length + 2 * 64 * 4);
    assert!(body[..header_length].ends_with(br#""binary_data_output":true}}"#));
}

#[test]
fn failed_answers_are_errors_by_status_with_their_body() {
    let answer = Answer {
        status: StatusCode::BAD_REQUEST,
        body: r#"{"error":"unknown input"}"#,
        close: false,
    };
    let (summary, _) = measure(answer, Encoding::Json);
    assert_eq!(summary.requests, 0);
    assert!(summary.errors["HTTP 400"] > 0, "{:?}", summary.errors);
    assert_eq!(summary.errors.len(), 1);
    assert_eq!(
        summary.first_error.as_deref(),
        Some(r#"HTTP 400: {"error":"unknown input"}"#)
    );
}

#[test]
fn answers_without_outputs_are_errors() {
    let answer = Answer {
        status: StatusCode::OK,
        body: "{}",
        close: false,
    };
    let (summary, _) = measure(answer, Encoding::Json);
    assert_eq!(summary.requests, 0);
    assert!(
        summary.errors["malformed answer"] > 0,
        "{:?}",
        summary.errors
    );
}

#[test]
fn a_server_that_closes_after_each_answer_is_reconnected_to() {
    let (summary, _) = measure(ok(true), Encoding::Json);
    assert!(summary.requests > 3, "{summary:?}");
    assert!(summary.errors.is_empty(), "{:?}", summary.first_error);
}

#[test]
fn grpc_only_settings_are_refused() {
    let (address, _) = serve(ok(false));
    for config in [
        RunConfig {
            stream: true,
            ..config(address, Encoding::Json)
        },
        RunConfig {
            connections: 1,
            ..config(address, Encoding::Json)
        },
    ] {
        assert!(run(&config).is_err());
    }
}
