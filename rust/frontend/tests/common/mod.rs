//! The front end's test harness: a real HTTP/2 client on TCP, a stand-in engine behind a batch
//! queue and executor thread for the natively routed model "m", and a stand-in Python backend
//! (an HTTP/2 server on a Unix socket) for everything else; protobuf and gRPC framing helpers.
// Each test binary uses a part of it.
#![allow(dead_code, unreachable_pub)]

pub mod certs;
pub mod raw;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferroserve_batcher::{BatchQueue, BatcherConfig};
use ferroserve_frontend::{
    ConnectionLimits, Frontend, FrontendConfig, InferRoute, ModelSpec, NativeRoute, Restrictions,
    RouteTable, ServerTls, TargetSpec,
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

pub const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
pub const MODEL_STREAM_INFER: &str = "/inference.GRPCInferenceService/ModelStreamInfer";
pub const SERVER_LIVE: &str = "/inference.GRPCInferenceService/ServerLive";

/// A first input byte that makes the engine take `SLOW` to run.
pub const SLOW_MARKER: u8 = 0xEE;
pub const SLOW: Duration = Duration::from_millis(300);

/// Doubles every input byte (output "y" has the input's shape); sleeps `SLOW` first when the
/// first byte is `SLOW_MARKER`. Counts its calls as they start.
#[derive(Default)]
pub struct Doubler {
    pub calls: AtomicUsize,
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

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field.
pub fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, (u64::from(number) << 3) | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// A string field as proto3 writes it (absent when empty).
pub fn string(number: u32, text: &str) -> Vec<u8> {
    if text.is_empty() {
        Vec::new()
    } else {
        field(number, text.as_bytes())
    }
}

/// A `ModelInferRequest` with one raw input "x" (FP32) of `shape`.
pub fn infer_request(model: &str, version: &str, id: &str, shape: &[i64], raw: &[u8]) -> Vec<u8> {
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
pub fn typed_request(id: &str, shape: &[i64], raw: &[u8], also_raw: &[&[u8]]) -> Vec<u8> {
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
pub fn rows_of(rows: usize, first: u8) -> Vec<u8> {
    (0..rows * 16)
        .map(|i| first.wrapping_add(i as u8))
        .collect()
}

/// The native answer to `infer_request("m", _, id, [rows, 4], raw)`: the route's name and
/// version, the request's id, output "y" with every byte doubled.
pub fn doubled_response(id: &str, raw: &[u8], stream: bool) -> Vec<u8> {
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
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// Takes the next whole message off the front of `buffer`.
pub fn take_message(buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
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

pub fn percent_decode(value: &[u8]) -> String {
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
pub fn status_in(headers: &HeaderMap) -> Option<(u16, String)> {
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

pub fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}

// ---------------------------------------------------------------------------------------------
// Bodies: frames sent into a channel (request bodies, the backend's answers).

pub type TestBody = BoxBody<Bytes, Infallible>;

pub struct ChannelBody {
    pub receiver: mpsc::UnboundedReceiver<Frame<Bytes>>,
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

pub fn channel_body() -> (mpsc::UnboundedSender<Frame<Bytes>>, TestBody) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (sender, ChannelBody { receiver }.boxed())
}

// ---------------------------------------------------------------------------------------------
// The stand-in Python backend.

/// Answers a unary call with one message, `backend:<path>|<the request's messages>`, and a
/// stream with `backend:<message>` for every message as it arrives; OK at the end.
pub async fn backend_call(request: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
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

pub async fn serve_backend(listener: UnixListener) {
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

pub type Queue = BatchQueue<Bytes, Waiter<(), Vec<u8>>>;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

pub struct Harness {
    /// Runs the client and the backend.
    pub runtime: tokio::runtime::Runtime,
    pub frontend: Frontend,
    pub engine: Arc<Doubler>,
    pub queue: Arc<Queue>,
    pub executor: Executor<Bytes, Waiter<(), Vec<u8>>, Doubler>,
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl Harness {
    pub fn start(backend: bool, max_message_bytes: usize) -> Self {
        Harness::with_limits(backend, max_message_bytes, ConnectionLimits::default())
    }

    /// `start` with connections bounded by `limits`.
    pub fn with_limits(backend: bool, max_message_bytes: usize, limits: ConnectionLimits) -> Self {
        Harness::build(
            backend,
            max_message_bytes,
            limits,
            Restrictions::default(),
            None,
            false,
        )
    }

    /// `start` with connections bounded by `limits` and protocols restricted by `restrictions`.
    pub fn with_config(
        backend: bool,
        max_message_bytes: usize,
        limits: ConnectionLimits,
        restrictions: Restrictions,
    ) -> Self {
        Harness::build(
            backend,
            max_message_bytes,
            limits,
            restrictions,
            None,
            false,
        )
    }

    /// `with_limits` speaking TLS with `tls` (None: plain HTTP/2).
    pub fn with_tls(
        backend: bool,
        max_message_bytes: usize,
        limits: ConnectionLimits,
        tls: Option<Arc<ServerTls>>,
    ) -> Self {
        Harness::build(
            backend,
            max_message_bytes,
            limits,
            Restrictions::default(),
            tls,
            false,
        )
    }

    /// `with_limits` with both ports speaking TLS with `tls` (`--http-use-ssl`).
    pub fn with_http_tls(
        max_message_bytes: usize,
        limits: ConnectionLimits,
        tls: Arc<ServerTls>,
    ) -> Self {
        Harness::build(
            true,
            max_message_bytes,
            limits,
            Restrictions::default(),
            Some(tls),
            true,
        )
    }

    fn build(
        backend: bool,
        max_message_bytes: usize,
        limits: ConnectionLimits,
        restrictions: Restrictions,
        tls: Option<Arc<ServerTls>>,
        http_tls: bool,
    ) -> Self {
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
                http_address: Some("127.0.0.1:0".into()),
                backend: socket.clone(),
                max_message_bytes,
                threads: 1,
                limits,
                restrictions,
                http_tls: if http_tls { tls.clone() } else { None },
                tls,
                http_restrictions: Restrictions::default(),
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
    pub fn run<F: Future>(&self, test: F) -> F::Output {
        self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), test)
                .await
                .expect("the test timed out")
        })
    }

    pub fn calls(&self) -> usize {
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

pub async fn connect(frontend: &Frontend) -> SendRequest<TestBody> {
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

pub fn grpc_request(
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
pub struct Reply {
    pub headers: HeaderMap,
    pub messages: Vec<Vec<u8>>,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// The call's status: from the trailers, or from the headers of a trailers-only response.
    pub fn status(&self) -> (u16, String) {
        self.trailers
            .as_ref()
            .and_then(status_in)
            .or_else(|| status_in(&self.headers))
            .expect("no grpc-status")
    }
}

/// One unary call carrying `message`.
pub async fn unary(
    client: &mut SendRequest<TestBody>,
    address: std::net::SocketAddr,
    path: &str,
    message: &[u8],
    timeout: Option<&str>,
) -> Reply {
    unary_with_headers(client, address, path, message, timeout, &[]).await
}

/// `unary` with `headers` added to the request.
pub async fn unary_with_headers(
    client: &mut SendRequest<TestBody>,
    address: std::net::SocketAddr,
    path: &str,
    message: &[u8],
    timeout: Option<&str>,
    headers: &[(&'static str, &'static str)],
) -> Reply {
    let body = http_body_util::Full::new(frame(message)).boxed();
    client.ready().await.unwrap();
    let mut request = grpc_request(address, path, timeout, body);
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    let response = client.send_request(request).await.unwrap();
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
pub struct Stream {
    pub sender: Option<mpsc::UnboundedSender<Frame<Bytes>>>,
    pub headers: HeaderMap,
    pub body: Incoming,
    pub buffer: Vec<u8>,
}

impl Stream {
    pub async fn open(
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

    pub fn send(&self, message: &[u8]) {
        let sender = self.sender.as_ref().unwrap();
        sender.send(Frame::data(frame(message))).unwrap();
    }

    /// The next message, or the trailers when the stream ends instead.
    pub async fn next(&mut self) -> Result<Vec<u8>, Option<HeaderMap>> {
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

    pub async fn next_message(&mut self) -> Vec<u8> {
        match self.next().await {
            Ok(message) => message,
            Err(trailers) => panic!("the stream ended early: {trailers:?}"),
        }
    }

    /// Half-closes the request and returns the status the stream ends with (no more messages).
    pub async fn finish(mut self) -> (u16, String) {
        self.sender = None;
        self.end().await
    }

    /// The status the stream ends with, expecting no more messages.
    pub async fn end(&mut self) -> (u16, String) {
        match self.next().await {
            Ok(message) => panic!("unexpected message {message:?}"),
            Err(Some(trailers)) => status_in(&trailers).expect("no grpc-status in the trailers"),
            Err(None) => status_in(&self.headers).expect("no trailers and no status"),
        }
    }
}

pub fn backend_answer(path: &str, message: &[u8]) -> Vec<u8> {
    [b"backend:", path.as_bytes(), b"|", message].concat()
}
