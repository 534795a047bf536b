//! One call's way through the front end: `ModelInfer` and `ModelStreamInfer` requests for
//! natively served models are answered here; everything else is forwarded to the Python
//! server unchanged.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use ferroserve_tensor::wire;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{self, GrpcBody, boxed, grpc_response, status_response, unary_response};
use crate::compression::Encoding;
use crate::counters::{CallCount, Counters, Method};
use crate::grpc::{self, Code, Status};
use crate::proxy::Backend;
use crate::restrict::Restrictions;
use crate::routes::{PendingInfer, RouteTable};
use crate::shadow;
use crate::stream;

/// `ModelInfer`'s path.
pub const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
/// `ModelStreamInfer`'s path.
pub const MODEL_STREAM_INFER: &str = "/inference.GRPCInferenceService/ModelStreamInfer";

/// What every call shares.
pub struct Service {
    pub(crate) routes: Arc<RouteTable>,
    pub(crate) backend: Backend,
    pub(crate) max_message_bytes: usize,
    /// Messages of one stream in flight at once (see `run_stream`).
    pub(crate) stream_window: usize,
    pub(crate) counters: Counters,
    /// Checked before anything else, whichever path answers the call.
    restrictions: Restrictions,
}

/// The client's deadline from `grpc-timeout`.
pub(crate) fn deadline(headers: &HeaderMap) -> Option<Instant> {
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

/// The one message of a unary request body and whether it is flagged compressed, else None.
fn single_message(body: &Bytes) -> Option<(bool, Bytes)> {
    let (&flag, rest) = body.split_first()?;
    if flag > 1 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    (rest.len() == 4 + len).then(|| (flag == 1, body.slice(5..)))
}

/// A compressed message inflated on a blocking thread (it may take a while; the front end's
/// thread serves every connection meanwhile).
pub(crate) async fn inflate(
    encoding: &Encoding,
    data: Bytes,
    limit: usize,
) -> Result<Bytes, Status> {
    let encoding = encoding.clone();
    tokio::task::spawn_blocking(move || encoding.inflate(&data, limit))
        .await
        .unwrap_or_else(|error| {
            Err(Status::new(
                Code::Internal,
                format!("inflating the message failed: {error}"),
            ))
        })
}

impl Service {
    /// Routes `routes` natively and forwards the rest to `backend`.
    pub fn new(
        routes: Arc<RouteTable>,
        backend: Backend,
        max_message_bytes: usize,
        stream_window: usize,
        restrictions: Restrictions,
    ) -> Self {
        Service {
            routes,
            backend,
            max_message_bytes,
            stream_window: stream_window.max(1),
            counters: Counters::default(),
            restrictions,
        }
    }

    /// Calls answered natively so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Answers one call. Inference calls are read here also when no model is routed natively,
    /// so that every request the Python server gets was checked against the limits first.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<GrpcBody> {
        if !self.restrictions.is_empty()
            && let Err(status) = self
                .restrictions
                .check(request.uri().path(), request.headers())
        {
            return status_response(&status);
        }
        match request.uri().path() {
            MODEL_INFER => self.unary(request).await,
            MODEL_STREAM_INFER => self.stream(request),
            _ => self.backend.forward(request.map(boxed)).await,
        }
    }

    /// Starts `message` natively if its model version (or alias, or policy's draw) is routed
    /// and the native path takes it; sends the copies its shadows drew. A request that came
    /// compressed (`native` false) is only checked against the limits here, then answered by
    /// the Python server, as it always was.
    pub(crate) fn start(
        &self,
        message: &Bytes,
        deadline: Option<Instant>,
        stream: bool,
        native: bool,
    ) -> Option<PendingInfer> {
        let view = wire::parse_infer_request(message).ok()?;
        if let Some((field, count)) = view.excess() {
            // A protobuf parser would build every entry: refused before any does.
            let status = Status::new(
                Code::InvalidArgument,
                format!(
                    "the request has {count} '{field}' entries; a request may have at most {}",
                    wire::MAX_REQUEST_TENSORS
                ),
            );
            return Some(Box::pin(std::future::ready(Err(status))));
        }
        if !native {
            return None;
        }
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
        let encoding = Encoding::of(request.headers());
        let (parts, body) = request.into_parts();
        let count = CallCount::new(&self.counters, Method::ModelInfer);
        let received = match read_unary(body, self.max_message_bytes).await {
            Ok(received) => received,
            Err(status) => {
                count.finish(status.code);
                return status_response(&status);
            }
        };
        let (message, native, forwarded) = match single_message(&received) {
            Some((false, message)) => (Some(message), true, received),
            Some((true, compressed)) => {
                match inflate(&encoding, compressed, self.max_message_bytes).await {
                    // Forwarded inflated: the Python server never inflates anything.
                    Ok(message) => (Some(message.clone()), false, grpc::frame(&message)),
                    Err(status) => {
                        count.finish(status.code);
                        return status_response(&status);
                    }
                }
            }
            // Not one whole message: the Python server words what is wrong with it.
            None => (None, false, received),
        };
        let pending = message.and_then(|m| self.start(&m, deadline, false, native));
        let Some(pending) = pending else {
            count.forget();
            let mut parts = parts;
            if !native {
                // The body sent on is not the one received (inflated, or not one message).
                parts.headers.remove(http::header::CONTENT_LENGTH);
            }
            let request = Request::from_parts(parts, body::full(forwarded));
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
        tokio::spawn(stream::run_stream(self, request, sender));
        grpc_response(body)
    }
}
