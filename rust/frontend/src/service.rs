//! One call's way through the front end: `ModelInfer` and `ModelStreamInfer` requests for
//! natively served models are answered here; everything else is forwarded to the Python
//! server unchanged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use ferroserve_tensor::wire;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc::UnboundedSender;

use crate::body::{self, GrpcBody, boxed, grpc_response, status_response, unary_response};
use crate::counters::{CallCount, Counters, Method};
use crate::grpc::{self, Code, Deframer, Status};
use crate::proxy::Backend;
use crate::routes::{PendingInfer, RouteTable};
use crate::shadow;

/// `ModelInfer`'s path.
pub const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
/// `ModelStreamInfer`'s path.
pub const MODEL_STREAM_INFER: &str = "/inference.GRPCInferenceService/ModelStreamInfer";

/// What every call shares.
pub struct Service {
    routes: Arc<RouteTable>,
    backend: Backend,
    max_message_bytes: usize,
    counters: Counters,
}

/// The client's deadline from `grpc-timeout`.
fn deadline(headers: &HeaderMap) -> Option<Instant> {
    let timeout = grpc::parse_timeout(headers.get("grpc-timeout")?.as_bytes())?;
    Instant::now().checked_add(timeout)
}

/// A unary call's whole body; RESOURCE_EXHAUSTED (with the declared size) as soon as the
/// message prefix declares more than `limit` bytes, CANCELLED if the client goes away.
async fn read_unary(mut body: Incoming, limit: usize) -> Result<Bytes, Status> {
    // A one-row request arrives in one DATA frame: keep that chunk as it is (no copy) and
    // only gather into a buffer when the body comes in pieces.
    let mut first: Option<Bytes> = None;
    let mut gathered = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            Status::new(
                Code::Cancelled,
                format!("reading the request failed: {error}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match first.take() {
            None if gathered.is_empty() => first = Some(data),
            earlier => {
                if let Some(earlier) = earlier {
                    gathered.extend_from_slice(&earlier);
                }
                gathered.extend_from_slice(&data);
            }
        }
        let received = first.as_deref().unwrap_or(&gathered);
        if received.len() >= 5 {
            let declared =
                u32::from_be_bytes([received[1], received[2], received[3], received[4]]) as usize;
            if declared > limit {
                return Err(grpc::too_large(declared, limit));
            }
        }
        if received.len() > limit.saturating_add(5) {
            return Err(grpc::too_large(received.len() - 5, limit));
        }
    }
    Ok(first.unwrap_or_else(|| gathered.freeze()))
}

/// The one uncompressed message of a unary request body, else None.
fn single_message(body: &Bytes) -> Option<Bytes> {
    let (&flag, rest) = body.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    (rest.len() == 4 + len).then(|| body.slice(5..))
}

impl Service {
    /// Routes `routes` natively and forwards the rest to `backend`.
    pub fn new(routes: Arc<RouteTable>, backend: Backend, max_message_bytes: usize) -> Self {
        Service {
            routes,
            backend,
            max_message_bytes,
            counters: Counters::default(),
        }
    }

    /// Calls answered natively so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Answers one call.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<GrpcBody> {
        if !self.routes.is_empty() {
            match request.uri().path() {
                MODEL_INFER => return self.unary(request).await,
                MODEL_STREAM_INFER => return self.stream(request),
                _ => {}
            }
        }
        self.backend.forward(request.map(boxed)).await
    }

    /// Starts `message` natively if its model version (or alias, or policy's draw) is routed
    /// and the native path takes it; sends the copies its shadows drew.
    fn start(
        &self,
        message: &Bytes,
        deadline: Option<Instant>,
        stream: bool,
    ) -> Option<PendingInfer> {
        let view = wire::parse_infer_request(message).ok()?;
        let name = std::str::from_utf8(&message[view.model_name.clone()]).ok()?;
        let version = std::str::from_utf8(&message[view.model_version.clone()]).ok()?;
        let table = self.routes.current();
        let routed = table.route(name, version)?;
        let copied = (!routed.copies.is_empty()).then(|| view.clone());
        let route = Arc::clone(&routed.target.route);
        let mut pending = route.infer(message.clone(), view, deadline, stream)?;
        routed.target.count();
        if let Some(view) = copied {
            for shadow in routed.copies {
                pending = shadow::mirror(
                    pending,
                    Arc::clone(&shadow.route),
                    Arc::clone(&shadow.stats),
                    message.clone(),
                    view.clone(),
                    deadline,
                    stream,
                );
            }
        }
        Some(pending)
    }

    async fn unary(&self, request: Request<Incoming>) -> Response<GrpcBody> {
        let deadline = deadline(request.headers());
        let (parts, body) = request.into_parts();
        let count = CallCount::new(&self.counters, Method::ModelInfer);
        let received = match read_unary(body, self.max_message_bytes).await {
            Ok(received) => received,
            Err(status) => {
                count.finish(status.code);
                return status_response(&status);
            }
        };
        let pending = single_message(&received).and_then(|m| self.start(&m, deadline, false));
        let Some(pending) = pending else {
            count.forget();
            let request = Request::from_parts(parts, body::full(received));
            return self.backend.forward(request).await;
        };
        match pending.await {
            Ok(response) => {
                count.finish(Code::Ok);
                unary_response(grpc::frame(&response))
            }
            Err(status) => {
                count.finish(status.code);
                status_response(&status)
            }
        }
    }

    fn stream(self: Arc<Self>, request: Request<Incoming>) -> Response<GrpcBody> {
        let (sender, body) = body::channel();
        tokio::spawn(run_stream(self, request, sender));
        grpc_response(body)
    }
}

/// A stream's shared end: sends the trailers once every answer is out (when the last holder
/// drops it), and counts the call unless the Python server took part (it counts it then).
struct StreamEnd {
    service: Arc<Service>,
    out: UnboundedSender<Frame<Bytes>>,
    status: Mutex<Status>,
    forwarded: AtomicBool,
    /// Signalled by the first failure: the reader stops and the stream ends.
    failed: tokio::sync::Notify,
}

impl StreamEnd {
    fn send(&self, message: &[u8]) {
        let _ = self.out.send(Frame::data(grpc::frame(message)));
    }

    /// Ends the stream with `status` (the first failure wins).
    fn fail(&self, status: Status) {
        let mut current = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if current.code == Code::Ok {
            *current = status;
            self.failed.notify_one();
        }
    }
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        let status = self
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let gone = self.out.is_closed();
        if !self.forwarded.load(Ordering::Relaxed) {
            let code = if gone { Code::Cancelled } else { status.code };
            self.service.counters.count(Method::ModelStreamInfer, code);
        }
        let _ = self.out.send(Frame::trailers(status.to_headers()));
    }
}

/// Reads a stream's requests: native ones run as tasks that write their answers as they come;
/// the others go to the Python server on one forwarded stream opened when first needed, whose
/// answers are passed through. Ends when the client half-closes and every answer is out.
async fn run_stream(
    service: Arc<Service>,
    request: Request<Incoming>,
    out: UnboundedSender<Frame<Bytes>>,
) {
    let deadline = deadline(request.headers());
    let limit = service.max_message_bytes;
    let (parts, mut body) = request.into_parts();
    let end = Arc::new(StreamEnd {
        service: Arc::clone(&service),
        out,
        status: Mutex::new(Status::ok()),
        forwarded: false.into(),
        failed: tokio::sync::Notify::new(),
    });
    let mut forward: Option<Forwarded> = None;
    let mut deframer = Deframer::default();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = end.failed.notified() => return,
            () = end.out.closed() => {
                cancel(forward);
                return;
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => {
                // The client reset the stream: so does the forwarded part.
                cancel(forward);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // request trailers: nothing to do
            },
        };
        deframer.push(data.chunk());
        loop {
            let message = match deframer.next_message(limit) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(status) => {
                    end.fail(status);
                    return;
                }
            };
            let pending = if message.compressed {
                None
            } else {
                service.start(&message.data, deadline, true)
            };
            match pending {
                Some(pending) => {
                    tokio::spawn(answer(Arc::clone(&end), message.data, pending));
                }
                None => {
                    let forwarded = forward.get_or_insert_with(|| {
                        end.forwarded.store(true, Ordering::Relaxed);
                        open_forwarded(&service, &parts, deadline, Arc::clone(&end))
                    });
                    let mut framed = grpc::frame(&message.data).to_vec();
                    framed[0] = u8::from(message.compressed);
                    let _ = forwarded.requests.send(Frame::data(Bytes::from(framed)));
                }
            }
        }
    }
    if deframer.has_partial() {
        end.fail(Status::new(
            Code::InvalidArgument,
            "the stream ended inside a message (truncated gRPC frame)",
        ));
    }
}

/// Awaits one native answer and writes it (or its error, in the stream) unless the client is
/// gone, which cancels it.
async fn answer(end: Arc<StreamEnd>, message: Bytes, pending: PendingInfer) {
    let result = tokio::select! {
        result = pending => result,
        () = end.out.closed() => return,
    };
    match result {
        Ok(response) => end.send(&response),
        Err(status) => {
            let error = match wire::parse_infer_request(&message) {
                Ok(view) => wire::encode_stream_error(
                    &message[view.model_name],
                    &message[view.model_version],
                    &message[view.id],
                    &status.message,
                ),
                Err(_) => wire::encode_stream_error(b"", b"", b"", &status.message),
            };
            end.send(&error);
        }
    }
}

/// The part of a stream forwarded to the Python server.
struct Forwarded {
    /// Where its requests go.
    requests: UnboundedSender<Frame<Bytes>>,
    /// The task passing its answers on; aborting it drops the forwarded call, which resets
    /// that stream (the Python server sees a cancellation).
    answers: tokio::task::AbortHandle,
}

/// Resets the forwarded part of a stream the client reset.
fn cancel(forward: Option<Forwarded>) {
    if let Some(forwarded) = forward {
        forwarded.answers.abort();
    }
}

/// Opens the forwarded stream: returns where to send its requests; its answers are passed into
/// the client's stream, and a failure status of it ends the client's stream with that status.
/// The client's deadline goes with it as the time left now.
fn open_forwarded(
    service: &Arc<Service>,
    parts: &http::request::Parts,
    deadline: Option<Instant>,
    end: Arc<StreamEnd>,
) -> Forwarded {
    let (sender, body) = body::channel();
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    if let Some(deadline) = deadline {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_micros();
        // grpc-timeout allows 8 digits: microseconds up to ~100 s, milliseconds beyond.
        let value = if left < 100_000_000 {
            format!("{}u", left.max(1))
        } else {
            format!("{}m", (left / 1000).min(99_999_999))
        };
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            request.headers_mut().insert("grpc-timeout", value);
        }
    }
    let service = Arc::clone(service);
    let task = tokio::spawn(async move {
        let response = service.backend.forward(request).await;
        let (parts, mut body) = response.into_parts();
        if let Some(status) = failure(&parts.headers) {
            end.fail(status);
        }
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => {
                        let _ = end.out.send(Frame::data(data));
                    }
                    Err(frame) => {
                        if let Some(status) = frame.trailers_ref().and_then(failure) {
                            end.fail(status);
                        }
                    }
                },
                Err(error) => {
                    end.fail(Status::new(
                        Code::Unavailable,
                        format!("the server's Python gRPC backend broke the stream: {error}"),
                    ));
                    break;
                }
            }
        }
    });
    Forwarded {
        requests: sender,
        answers: task.abort_handle(),
    }
}

/// The non-OK status in headers or trailers, if any.
fn failure(headers: &HeaderMap) -> Option<Status> {
    let code: u16 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    if code == 0 {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Status::new(Code::from_number(code), message))
}

/// Undoes `grpc::percent_encode`.
fn percent_decode(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut index = 0;
    while index < value.len() {
        if value[index] == b'%'
            && index + 2 < value.len()
            && let Ok(byte) = u8::from_str_radix(
                std::str::from_utf8(&value[index + 1..index + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(value[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
