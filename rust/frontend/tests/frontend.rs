//! The front end end to end: a real HTTP/2 client on TCP, a stand-in engine behind a batch queue
//! and executor thread for the natively routed model "m", and a stand-in Python backend (an
//! HTTP/2 server on a Unix socket) for everything else. Covers native unary and stream answers,
//! forwarding, the message size limit, client deadlines, a missing backend and stopping.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferroserve_batcher::{BatchQueue, BatcherConfig};
use ferroserve_frontend::{
    Code, Frontend, FrontendConfig, InferRoute, Method, ModelSpec, NativeRoute, RouteTable,
    TargetSpec,
};
use ferroserve_runtime::{
    Completions, Deliver, Engine, Executor, InputTensor, Layout, OutputTensor, Routed,
    RuntimeError, Waiter,
};
use ferroserve_tensor::wire::{self, FastSignature, InputLayout};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::mpsc;

const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
const MODEL_STREAM_INFER: &str = "/inference.GRPCInferenceService/ModelStreamInfer";
const SERVER_LIVE: &str = "/inference.GRPCInferenceService/ServerLive";

/// A first input byte that makes the engine take `SLOW` to run.
const SLOW_MARKER: u8 = 0xEE;
const SLOW: Duration = Duration::from_millis(300);

/// Doubles every input byte (output "y" has the input's shape); sleeps `SLOW` first when the
/// first byte is `SLOW_MARKER`. Counts its calls as they start.
#[derive(Default)]
struct Doubler {
    calls: AtomicUsize,
}

impl Engine for Doubler {
    type Output = Vec<u8>;

    fn run(
        &self,
        _instance: usize,
        inputs: &[InputTensor<'_>],
        outputs: &[String],
    ) -> Result<Vec<OutputTensor<Vec<u8>>>, RuntimeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let input = inputs[0];
        assert_eq!(input.name, "x");
        assert_eq!(outputs, ["y".to_owned()]);
        if input.data.first() == Some(&SLOW_MARKER) {
            std::thread::sleep(SLOW);
        }
        let data: Vec<u8> = input.data.iter().map(|b| b.wrapping_mul(2)).collect();
        let len = data.len();
        Ok(vec![OutputTensor::new(data, input.shape.to_vec(), len)])
    }

    fn instances(&self) -> usize {
        1
    }
}

// ---------------------------------------------------------------------------------------------
// Protobuf and gRPC framing helpers.

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field.
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, (u64::from(number) << 3) | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// A string field as proto3 writes it (absent when empty).
fn string(number: u32, text: &str) -> Vec<u8> {
    if text.is_empty() {
        Vec::new()
    } else {
        field(number, text.as_bytes())
    }
}

/// A `ModelInferRequest` with one raw input "x" (FP32) of `shape`.
fn infer_request(model: &str, version: &str, id: &str, shape: &[i64], raw: &[u8]) -> Vec<u8> {
    let mut dims = Vec::new();
    for &dim in shape {
        put_varint(&mut dims, dim as u64);
    }
    let tensor = [field(1, b"x"), field(2, b"FP32"), field(3, &dims)].concat();
    [
        string(1, model),
        string(2, version),
        string(3, id),
        field(5, &tensor),
        field(7, raw),
    ]
    .concat()
}

/// `infer_request` with the input in typed contents instead (`fp32_contents`, packed: the same
/// little-endian bytes as `raw`), plus the raw entries in `also_raw`.
fn typed_request(id: &str, shape: &[i64], raw: &[u8], also_raw: &[&[u8]]) -> Vec<u8> {
    let mut dims = Vec::new();
    for &dim in shape {
        put_varint(&mut dims, dim as u64);
    }
    let contents = field(6, raw);
    let tensor = [
        field(1, b"x"),
        field(2, b"FP32"),
        field(3, &dims),
        field(5, &contents),
    ]
    .concat();
    let mut message = [string(1, "m"), string(3, id), field(5, &tensor)].concat();
    for extra in also_raw {
        message.extend(field(7, extra));
    }
    message
}

/// `rows` rows of input starting at byte value `first` (each row 4 FP32 = 16 bytes).
fn rows_of(rows: usize, first: u8) -> Vec<u8> {
    (0..rows * 16)
        .map(|i| first.wrapping_add(i as u8))
        .collect()
}

/// The native answer to `infer_request("m", _, id, [rows, 4], raw)`: the route's name and
/// version, the request's id, output "y" with every byte doubled.
fn doubled_response(id: &str, raw: &[u8], stream: bool) -> Vec<u8> {
    let doubled: Vec<u8> = raw.iter().map(|b| b.wrapping_mul(2)).collect();
    let shape = [(raw.len() / 16) as i64, 4];
    let output = wire::ResponseOutput {
        name: "y",
        datatype: "FP32",
        shape: &shape,
        raw: &doubled,
    };
    wire::encode_infer_response(b"m", b"1", id.as_bytes(), &[output], stream)
}

/// One message with its 5-byte gRPC prefix.
fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// Takes the next whole message off the front of `buffer`.
fn take_message(buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    if buffer.len() < 5 {
        return None;
    }
    assert_eq!(buffer[0], 0, "compressed message");
    let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if buffer.len() < 5 + len {
        return None;
    }
    let message = buffer[5..5 + len].to_vec();
    buffer.drain(..5 + len);
    Some(message)
}

fn percent_decode(value: &[u8]) -> String {
    let mut out = Vec::new();
    let mut index = 0;
    while index < value.len() {
        let hex = value
            .get(index + 1..index + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (value[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// grpc-status and the decoded grpc-message in `headers`, if it has a status.
fn status_in(headers: &HeaderMap) -> Option<(u16, String)> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some((code, message))
}

fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}

// ---------------------------------------------------------------------------------------------
// Bodies: frames sent into a channel (request bodies, the backend's answers).

type TestBody = BoxBody<Bytes, Infallible>;

struct ChannelBody {
    receiver: mpsc::UnboundedReceiver<Frame<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.receiver.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

fn channel_body() -> (mpsc::UnboundedSender<Frame<Bytes>>, TestBody) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (sender, ChannelBody { receiver }.boxed())
}

// ---------------------------------------------------------------------------------------------
// The stand-in Python backend.

/// Answers a unary call with one message, `backend:<path>|<the request's messages>`, and a
/// stream with `backend:<message>` for every message as it arrives; OK at the end.
async fn backend_call(request: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let path = request.uri().path().to_owned();
    let streaming = path == MODEL_STREAM_INFER;
    let mut incoming = request.into_body();
    let (sender, body) = channel_body();
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        let mut received = Vec::new();
        while let Some(received_frame) = incoming.frame().await {
            let Ok(received_frame) = received_frame else {
                return;
            };
            let Ok(data) = received_frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(message) = take_message(&mut buffer) {
                if streaming {
                    let answer = [&b"backend:"[..], &message].concat();
                    let _ = sender.send(Frame::data(frame(&answer)));
                } else {
                    received.extend_from_slice(&message);
                }
            }
        }
        if !streaming {
            let answer = [b"backend:", path.as_bytes(), b"|", &received].concat();
            let _ = sender.send(Frame::data(frame(&answer)));
        }
        let _ = sender.send(Frame::trailers(ok_trailers()));
    });
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    Ok(response)
}

async fn serve_backend(listener: UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(backend_call))
                .await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The set-up: model "m" served natively, a backend, the front end, and a client runtime.

type Queue = BatchQueue<Bytes, Waiter<(), Vec<u8>>>;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

struct Harness {
    /// Runs the client and the backend.
    runtime: tokio::runtime::Runtime,
    frontend: Frontend,
    engine: Arc<Doubler>,
    queue: Arc<Queue>,
    executor: Executor<Bytes, Waiter<(), Vec<u8>>, Doubler>,
    dir: PathBuf,
    socket: PathBuf,
}

impl Harness {
    fn start(backend: bool, max_message_bytes: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "ferroserve-frontend-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("backend.sock");
        if backend {
            let listener = runtime
                .block_on(async { UnixListener::bind(&socket) })
                .unwrap();
            runtime.spawn(serve_backend(listener));
        }

        let queue = Arc::new(
            BatchQueue::new(
                "m",
                BatcherConfig {
                    max_batch_size: 8,
                    ..BatcherConfig::default()
                },
            )
            .unwrap(),
        );
        let engine = Arc::new(Doubler::default());
        let routed: Arc<Routed<(), Vec<u8>>> = Arc::new(Routed::new(Completions::new().unwrap()));
        let executor = Executor::start(
            "m",
            Arc::clone(&queue),
            Arc::clone(&engine),
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
        let signature = FastSignature {
            inputs: vec![InputLayout {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 4],
                itemsize: 4,
            }],
            max_batch_size: 8,
            outputs: vec!["y".into()],
        };
        let route: Arc<dyn InferRoute> = Arc::new(NativeRoute::new(
            "m".into(),
            "1".into(),
            signature,
            vec!["FP32".into()],
            Arc::clone(&queue),
            routed,
        ));
        let routes = Arc::new(RouteTable::new());
        let target = |route: &Arc<dyn InferRoute>| TargetSpec {
            alias: String::new(),
            version: "1".into(),
            route: Arc::clone(route),
        };
        routes.replace(vec![ModelSpec {
            model: "m".into(),
            named: vec![("1".into(), target(&route))],
            split: vec![(100, target(&route))],
            shadows: Vec::new(),
        }]);
        let frontend = Frontend::start(
            FrontendConfig {
                address: "127.0.0.1:0".into(),
                backend: socket.clone(),
                max_message_bytes,
                threads: 1,
            },
            routes,
        )
        .unwrap();
        Harness {
            runtime,
            frontend,
            engine,
            queue,
            executor,
            dir,
            socket,
        }
    }

    /// Runs `test` on the client runtime, failing it after 5 s.
    fn run<F: Future>(&self, test: F) -> F::Output {
        self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), test)
                .await
                .expect("the test timed out")
        })
    }

    fn calls(&self) -> usize {
        self.engine.calls.load(Ordering::SeqCst)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.frontend.stop(Duration::ZERO);
        self.queue.close(false);
        assert!(self.executor.join(Duration::from_secs(2)));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// The client.

async fn connect(frontend: &Frontend) -> SendRequest<TestBody> {
    let stream = TcpStream::connect(frontend.address()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

fn grpc_request(
    address: std::net::SocketAddr,
    path: &str,
    timeout: Option<&str>,
    body: TestBody,
) -> Request<TestBody> {
    let mut builder = Request::post(format!("http://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = timeout {
        builder = builder.header("grpc-timeout", timeout);
    }
    builder.body(body).unwrap()
}

/// A whole response.
#[derive(Debug)]
struct Reply {
    headers: HeaderMap,
    messages: Vec<Vec<u8>>,
    trailers: Option<HeaderMap>,
}

impl Reply {
    /// The call's status: from the trailers, or from the headers of a trailers-only response.
    fn status(&self) -> (u16, String) {
        self.trailers
            .as_ref()
            .and_then(status_in)
            .or_else(|| status_in(&self.headers))
            .expect("no grpc-status")
    }
}

/// One unary call carrying `message`.
async fn unary(
    client: &mut SendRequest<TestBody>,
    address: std::net::SocketAddr,
    path: &str,
    message: &[u8],
    timeout: Option<&str>,
) -> Reply {
    let body = http_body_util::Full::new(frame(message)).boxed();
    client.ready().await.unwrap();
    let response = client
        .send_request(grpc_request(address, path, timeout, body))
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    assert_eq!(parts.status, http::StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "application/grpc");
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let mut buffer = collected.to_bytes().to_vec();
    let mut messages = Vec::new();
    while let Some(message) = take_message(&mut buffer) {
        messages.push(message);
    }
    assert!(buffer.is_empty(), "a partial message is left");
    Reply {
        headers: parts.headers,
        messages,
        trailers,
    }
}

/// An open `ModelStreamInfer` call.
struct Stream {
    sender: Option<mpsc::UnboundedSender<Frame<Bytes>>>,
    headers: HeaderMap,
    body: Incoming,
    buffer: Vec<u8>,
}

impl Stream {
    async fn open(
        client: &mut SendRequest<TestBody>,
        address: std::net::SocketAddr,
        timeout: Option<&str>,
    ) -> Self {
        let (sender, body) = channel_body();
        client.ready().await.unwrap();
        let response = client
            .send_request(grpc_request(address, MODEL_STREAM_INFER, timeout, body))
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        assert_eq!(parts.status, http::StatusCode::OK);
        Stream {
            sender: Some(sender),
            headers: parts.headers,
            body,
            buffer: Vec::new(),
        }
    }

    fn send(&self, message: &[u8]) {
        let sender = self.sender.as_ref().unwrap();
        sender.send(Frame::data(frame(message))).unwrap();
    }

    /// The next message, or the trailers when the stream ends instead.
    async fn next(&mut self) -> Result<Vec<u8>, Option<HeaderMap>> {
        loop {
            if let Some(message) = take_message(&mut self.buffer) {
                return Ok(message);
            }
            match self.body.frame().await {
                None => return Err(None),
                Some(frame) => match frame.unwrap().into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        assert!(self.buffer.is_empty(), "trailers inside a message");
                        return Err(frame.into_trailers().ok());
                    }
                },
            }
        }
    }

    async fn next_message(&mut self) -> Vec<u8> {
        match self.next().await {
            Ok(message) => message,
            Err(trailers) => panic!("the stream ended early: {trailers:?}"),
        }
    }

    /// Half-closes the request and returns the status the stream ends with (no more messages).
    async fn finish(mut self) -> (u16, String) {
        self.sender = None;
        self.end().await
    }

    /// The status the stream ends with, expecting no more messages.
    async fn end(&mut self) -> (u16, String) {
        match self.next().await {
            Ok(message) => panic!("unexpected message {message:?}"),
            Err(Some(trailers)) => status_in(&trailers).expect("no grpc-status in the trailers"),
            Err(None) => status_in(&self.headers).expect("no trailers and no status"),
        }
    }
}

fn backend_answer(path: &str, message: &[u8]) -> Vec<u8> {
    [b"backend:", path.as_bytes(), b"|", message].concat()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_routed_unary_request_is_answered_natively() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let raw = rows_of(2, 1);
        let message = infer_request("m", "1", "req-1", &[2, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![doubled_response("req-1", &raw, false)]);

        // The default version ("") is routed too; the answer names the route's version.
        let raw = rows_of(1, 40);
        let message = infer_request("m", "", "", &[1, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![doubled_response("", &raw, false)]);
    });
    assert_eq!(h.calls(), 2);
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![(Method::ModelInfer, Code::Ok, 2)]
    );
}

#[test]
fn a_typed_request_is_answered_natively_as_its_raw_twin() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let raw = rows_of(2, 1);
        let message = typed_request("typed", &[2, 4], &raw, &[]);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![doubled_response("typed", &raw, false)]);
        // What the native path does not take goes to the backend, which words the error:
        // a count that does not match the shape, typed and raw contents for one input.
        let cases = [
            typed_request("short", &[2, 4], &raw[..28], &[]),
            typed_request("both", &[2, 4], &raw, &[&raw]),
        ];
        for message in cases {
            let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
            assert_eq!(reply.messages, vec![backend_answer(MODEL_INFER, &message)]);
        }
    });
    assert_eq!(h.calls(), 1);
}

#[test]
fn other_calls_are_forwarded_to_the_backend() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let cases = [
            // A model that is not routed.
            infer_request("other", "1", "a", &[1, 4], &rows_of(1, 0)),
            // A routed model version that is not.
            infer_request("m", "2", "b", &[1, 4], &rows_of(1, 0)),
            // A request the native path does not take (wrong shape): the backend words errors.
            infer_request("m", "1", "c", &[1, 5], &[0; 20]),
            // Too many rows for max_batch_size.
            infer_request("m", "1", "d", &[9, 4], &rows_of(9, 0)),
        ];
        for message in cases {
            let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
            assert_eq!(reply.status(), (0, String::new()));
            assert_eq!(reply.messages, vec![backend_answer(MODEL_INFER, &message)]);
        }
        let reply = unary(&mut client, address, SERVER_LIVE, b"", None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![backend_answer(SERVER_LIVE, b"")]);
    });
    assert_eq!(h.calls(), 0);
    assert_eq!(h.frontend.counters().snapshot(), vec![]);
}

#[test]
fn a_stream_mixes_native_and_forwarded_answers() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let mut stream = Stream::open(&mut client, address, None).await;
        for round in 0..3u8 {
            let raw = rows_of(usize::from(round) + 1, round * 10);
            let id = format!("native-{round}");
            stream.send(&infer_request(
                "m",
                "1",
                &id,
                &[i64::from(round) + 1, 4],
                &raw,
            ));
            assert_eq!(
                stream.next_message().await,
                doubled_response(&id, &raw, true)
            );

            let other = infer_request("other", "", &format!("fwd-{round}"), &[1, 4], &raw);
            stream.send(&other);
            assert_eq!(
                stream.next_message().await,
                [&b"backend:"[..], &other].concat()
            );
        }
        assert_eq!(stream.finish().await, (0, String::new()));
    });
    assert_eq!(h.calls(), 3);
    // The Python server took part, so it counts the call.
    assert_eq!(h.frontend.counters().snapshot(), vec![]);
}

#[test]
fn a_native_only_stream_is_counted_here() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let mut stream = Stream::open(&mut client, address, None).await;
        // Sent at once, before any answer is read: every one is answered.
        let mut expected = Vec::new();
        for index in 0..4u8 {
            let raw = rows_of(1, index);
            let id = format!("s{index}");
            stream.send(&infer_request("m", "", &id, &[1, 4], &raw));
            expected.push(doubled_response(&id, &raw, true));
        }
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(stream.next_message().await);
        }
        answers.sort();
        expected.sort();
        assert_eq!(answers, expected);
        assert_eq!(stream.finish().await, (0, String::new()));
    });
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![(Method::ModelStreamInfer, Code::Ok, 1)]
    );
}

#[test]
fn a_message_over_the_limit_is_resource_exhausted() {
    let limit = 4096;
    let h = Harness::start(true, limit);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        // Exactly at the limit: read, and forwarded (it is no ModelInferRequest).
        let at_limit = vec![7u8; limit];
        let reply = unary(&mut client, address, MODEL_INFER, &at_limit, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![backend_answer(MODEL_INFER, &at_limit)]);
        let over = vec![7u8; limit + 1];
        let reply = unary(&mut client, address, MODEL_INFER, &over, None).await;
        assert_eq!(reply.status().0, 8, "{:?}", reply.status());

        let raw = vec![1u8; limit];
        let message = infer_request("m", "1", "big", &[256, 4], &raw);
        assert!(message.len() > limit);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert!(reply.messages.is_empty());
        let (code, text) = reply.status();
        assert_eq!(code, 8, "{text}");
        assert!(
            text.contains(&format!("({} vs. {limit})", message.len())),
            "{text}"
        );

        // In a stream the declared length alone ends the call.
        let mut stream = Stream::open(&mut client, address, None).await;
        stream.send(&message);
        let (code, text) = stream.end().await;
        assert_eq!(code, 8, "{text}");
        assert!(
            text.contains(&format!("({} vs. {limit})", message.len())),
            "{text}"
        );

        // The connection still serves calls.
        let raw = rows_of(1, 3);
        let ok = infer_request("m", "1", "", &[1, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &ok, None).await;
        assert_eq!(reply.messages, vec![doubled_response("", &raw, false)]);
    });
    assert_eq!(h.calls(), 1);
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![
            (Method::ModelInfer, Code::Ok, 1),
            (Method::ModelInfer, Code::ResourceExhausted, 2),
            (Method::ModelStreamInfer, Code::ResourceExhausted, 1),
        ]
    );
}

#[test]
fn a_request_that_cannot_run_in_time_is_deadline_exceeded_and_never_runs() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        // The slow request holds the only executor thread.
        let slow_raw = [vec![SLOW_MARKER], vec![1; 15]].concat();
        let slow = infer_request("m", "1", "slow", &[1, 4], &slow_raw);
        let mut slow_client = client.clone();
        let slow_call = tokio::spawn(async move {
            unary(&mut slow_client, address, MODEL_INFER, &slow, None).await
        });
        while h.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let started = Instant::now();
        let raw = rows_of(1, 5);
        let late = infer_request("m", "1", "late", &[1, 4], &raw);
        let mut stream_client = client.clone();
        let stream_call = async move {
            let mut stream = Stream::open(&mut stream_client, address, Some("50m")).await;
            let late = infer_request("m", "1", "late-stream", &[1, 4], &raw);
            stream.send(&late);
            let answer = stream.next_message().await;
            (answer, stream.finish().await)
        };
        let (reply, (stream_answer, stream_status)) = tokio::join!(
            unary(&mut client, address, MODEL_INFER, &late, Some("50m")),
            stream_call
        );
        let elapsed = started.elapsed();
        assert!(
            !slow_call.is_finished(),
            "answered only after the slow request"
        );

        let (code, text) = reply.status();
        assert_eq!(code, 4, "{text}");
        assert!(text.contains("deadline exceeded"), "{text}");
        assert!(reply.messages.is_empty());
        // In a stream, the failed request gets an error message and the stream goes on.
        assert_eq!(
            stream_answer,
            wire::encode_stream_error(b"m", b"1", b"late-stream", "model 'm': deadline exceeded")
        );
        assert_eq!(stream_status, (0, String::new()));
        assert!(elapsed < SLOW, "answered after {elapsed:?}");
        assert_eq!(h.queue.pending(), 0, "the late requests left the queue");

        let reply = slow_call.await.unwrap();
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(
            reply.messages,
            vec![doubled_response("slow", &slow_raw, false)]
        );
        // Time for the executor to pick up anything left behind.
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    assert_eq!(h.calls(), 1, "the late requests ran");
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![
            (Method::ModelInfer, Code::Ok, 1),
            (Method::ModelInfer, Code::DeadlineExceeded, 1),
            (Method::ModelStreamInfer, Code::Ok, 1),
        ]
    );
}

#[test]
fn a_missing_backend_is_unavailable() {
    let h = Harness::start(false, 1 << 20);
    let address = h.frontend.address();
    let socket = h.socket.display().to_string();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let reply = unary(&mut client, address, SERVER_LIVE, b"", None).await;
        let (code, text) = reply.status();
        assert_eq!(code, 14, "{text}");
        assert!(text.contains(&socket), "{text}");
        assert!(reply.trailers.is_none(), "a trailers-only response");

        // In a stream, native messages are answered; a forwarded one fails the stream with the
        // same status.
        let mut stream = Stream::open(&mut client, address, None).await;
        let raw = rows_of(1, 9);
        stream.send(&infer_request("m", "1", "n", &[1, 4], &raw));
        assert_eq!(
            stream.next_message().await,
            doubled_response("n", &raw, true)
        );
        stream.send(&infer_request("other", "", "", &[1, 4], &rows_of(1, 0)));
        let (code, text) = stream.finish().await;
        assert_eq!(code, 14, "{text}");
        assert!(text.contains(&socket), "{text}");

        // The native path does not need the backend.
        let message = infer_request("m", "1", "n", &[1, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.messages, vec![doubled_response("n", &raw, false)]);
    });
}

#[test]
fn a_failed_forwarded_stream_ends_without_waiting_for_the_client() {
    let h = Harness::start(false, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let mut stream = Stream::open(&mut client, address, None).await;
        stream.send(&infer_request("other", "", "", &[1, 4], &rows_of(1, 0)));
        // The request stays open, as a client waiting for its answer leaves it.
        let ended = tokio::time::timeout(Duration::from_secs(1), stream.end()).await;
        let (code, text) = ended.expect("the stream did not end when its forwarded part failed");
        assert_eq!(code, 14, "{text}");
    });
}

#[test]
fn stop_lets_calls_in_flight_finish_then_refuses_connections() {
    let mut h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    let slow_raw = [vec![SLOW_MARKER], vec![2; 15]].concat();
    let slow = infer_request("m", "1", "slow", &[1, 4], &slow_raw);
    let (slow_call, idle) = h.run(async {
        let mut client = connect(&h.frontend).await;
        // A second connection left idle must not hold stop up for the grace period.
        let idle = connect(&h.frontend).await;
        let reply = unary(&mut client, address, SERVER_LIVE, b"", None).await;
        assert_eq!(reply.status(), (0, String::new()));
        let call =
            tokio::spawn(
                async move { unary(&mut client, address, MODEL_INFER, &slow, None).await },
            );
        while h.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (call, idle)
    });

    let started = Instant::now();
    h.frontend.stop(Duration::from_secs(3));
    let stopped = started.elapsed();
    // It waited for the running call, not for the whole grace period.
    assert!(stopped < Duration::from_secs(2), "stop took {stopped:?}");

    let reply = h.run(slow_call).unwrap();
    assert_eq!(reply.status(), (0, String::new()));
    assert_eq!(
        reply.messages,
        vec![doubled_response("slow", &slow_raw, false)]
    );
    let refused = h.run(TcpStream::connect(address));
    assert!(refused.is_err(), "still accepting after stop");
    // The server closed both connections.
    assert!(idle.is_closed());
    // Stopping again does nothing.
    h.frontend.stop(Duration::ZERO);
}
