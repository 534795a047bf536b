//! One worker's calls: unary ModelInfer (one request in flight, status from the trailers) or
//! its own ModelStreamInfer stream (send one request, await its answer, repeat; the answer's
//! `error_message` checked). Every failure is returned with its gRPC code, never counted as an
//! answer.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use tokio::sync::mpsc;

use crate::grpc::{self, Deframer};
use crate::proto;
use crate::tally::{Failure, Tally, Window};

/// The request every worker sends, built once.
pub(crate) struct Prepared {
    /// The server and the RPC's path.
    pub(crate) uri: Uri,
    /// The ModelInferRequest with its gRPC length prefix.
    pub(crate) framed: Bytes,
}

/// A request body: the whole framed message (unary), or messages sent into a channel
/// (a stream, ended when the sender is dropped).
pub(crate) enum RequestBody {
    /// A unary call's one message.
    Whole(Full<Bytes>),
    /// A stream's messages, as the worker sends them.
    Channel(mpsc::UnboundedReceiver<Bytes>),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            RequestBody::Whole(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Channel(receiver) => receiver
                .poll_recv(cx)
                .map(|message| message.map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Whole(body) => body.is_end_stream(),
            RequestBody::Channel(_) => false,
        }
    }
}

fn grpc_request(prepared: &Prepared, body: RequestBody) -> Request<RequestBody> {
    let mut request = Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = prepared.uri.clone();
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    request
}

pub(crate) async fn unary_worker(
    mut sender: http2::SendRequest<RequestBody>,
    prepared: Arc<Prepared>,
    window: Window,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::new();
    loop {
        let sent = Instant::now();
        if sent >= window.end {
            return tally;
        }
        let body = RequestBody::Whole(Full::new(prepared.framed.clone()));
        let call = unary_call(&mut sender, grpc_request(&prepared, body));
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => tally.answered(sent, window),
            Ok(Err(failure)) => tally.fail(&failure),
            Err(_) => tally.fail(&Failure::timeout(timeout)),
        }
        if sender.is_closed() {
            // The connection is gone: nothing more can be sent on it.
            tally.fail(&Failure::new(14, "connection closed"));
            return tally;
        }
    }
}

/// One unary call: OK only with HTTP 200, exactly one message and `grpc-status: 0`.
async fn unary_call(
    sender: &mut http2::SendRequest<RequestBody>,
    request: Request<RequestBody>,
) -> Result<(), Failure> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| Failure::transport(&error))?;
    check_head(&response)?;
    let mut body = response.into_body();
    let mut deframer = Deframer::default();
    let mut messages = 0;
    let mut status = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Failure::transport(&error))?;
        match frame.into_data() {
            Ok(data) => {
                deframer.push(&data);
                while deframer
                    .next_message()
                    .map_err(|error| Failure::new(13, error.to_string()))?
                    .is_some()
                {
                    messages += 1;
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    status = grpc::status(&trailers);
                }
            }
        }
    }
    match status {
        None => Err(Failure::new(2, "answer ended without grpc-status")),
        Some((0, _)) if messages == 1 && !deframer.has_partial() => Ok(()),
        Some((0, _)) => Err(Failure::new(
            13,
            format!("OK with {messages} whole messages (1 expected)"),
        )),
        Some((code, message)) => Err(Failure::new(code, message)),
    }
}

/// HTTP 200 and no status in the headers, else the failure they say (a trailers-only answer
/// carries its status in the headers).
fn check_head(response: &http::Response<Incoming>) -> Result<(), Failure> {
    if response.status() != http::StatusCode::OK {
        return Err(Failure::new(
            grpc::code_for_http_status(response.status()),
            format!("HTTP {}", response.status()),
        ));
    }
    match grpc::status(response.headers()) {
        None => Ok(()),
        Some((0, _)) => Err(Failure::new(13, "trailers-only OK: no answer")),
        Some((code, message)) => Err(Failure::new(code, message)),
    }
}

/// An open ModelStreamInfer call: where requests go and where answers come from.
pub(crate) struct OpenStream {
    pub(crate) requests: mpsc::UnboundedSender<Bytes>,
    answers: Incoming,
    deframer: Deframer,
}

pub(crate) async fn stream_worker(
    mut sender: http2::SendRequest<RequestBody>,
    prepared: Arc<Prepared>,
    window: Window,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::new();
    let mut open: Option<OpenStream> = None;
    loop {
        let sent = Instant::now();
        if sent >= window.end {
            return tally;
        }
        let exchange = stream_exchange(&mut sender, &prepared, &mut open);
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(())) => tally.answered(sent, window),
            Ok(Err(failure)) => tally.fail(&failure),
            Err(_) => {
                tally.fail(&Failure::timeout(timeout));
                // The late answer would be taken for the next request's: start over.
                open = None;
            }
        }
        if sender.is_closed() {
            tally.fail(&Failure::new(14, "connection closed"));
            return tally;
        }
    }
}

/// One request and its answer on the worker's stream, opening the stream first when there is
/// none (or the last one ended). An answer with an `error_message` fails but keeps the stream.
async fn stream_exchange(
    sender: &mut http2::SendRequest<RequestBody>,
    prepared: &Prepared,
    open: &mut Option<OpenStream>,
) -> Result<(), Failure> {
    let stream = match open {
        Some(stream) => {
            if stream.requests.send(prepared.framed.clone()).is_err() {
                *open = None;
                return Err(Failure::new(14, "stream closed"));
            }
            stream
        }
        None => {
            let (requests, receiver) = mpsc::unbounded_channel();
            // hyper queues the request when send_request is called; the first message must
            // be in the body before the answer's head is awaited, since a gRPC server may
            // hold its headers back until it has an answer.
            let response =
                sender.send_request(grpc_request(prepared, RequestBody::Channel(receiver)));
            let _ = requests.send(prepared.framed.clone());
            let response = response.await.map_err(|error| Failure::transport(&error))?;
            check_head(&response)?;
            open.insert(OpenStream {
                requests,
                answers: response.into_body(),
                deframer: Deframer::default(),
            })
        }
    };
    let answer = next_answer(stream).await;
    if answer.is_err() {
        *open = None;
    }
    let error =
        proto::stream_error(&answer?).map_err(|error| Failure::new(13, error.to_string()))?;
    if error.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            kind: "error_message".to_owned(),
            message: error,
        })
    }
}

/// The stream's next message; an error when the stream ends first (with its status).
async fn next_answer(stream: &mut OpenStream) -> Result<Bytes, Failure> {
    loop {
        if let Some(message) = stream
            .deframer
            .next_message()
            .map_err(|error| Failure::new(13, error.to_string()))?
        {
            return Ok(message);
        }
        let Some(frame) = stream.answers.frame().await else {
            return Err(Failure::new(2, "stream ended without grpc-status"));
        };
        let frame = frame.map_err(|error| Failure::transport(&error))?;
        match frame.into_data() {
            Ok(data) => stream.deframer.push(&data),
            Err(frame) => {
                let status = frame
                    .into_trailers()
                    .ok()
                    .and_then(|trailers| grpc::status(&trailers));
                return Err(match status {
                    Some((0, _)) => Failure::new(13, "stream ended (OK) before the answer"),
                    Some((code, message)) => Failure::new(code, message),
                    None => Failure::new(2, "stream ended without grpc-status"),
                });
            }
        }
    }
}
