//! The HTTP/2 bodies the front end sends: a unary answer (one message, then trailers), frames
//! from a channel (a stream's answers, holding their stream's window until sent), and any
//! other body boxed (a forwarded call's).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::grpc::Status;

/// Errors a body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the front end sends or forwards.
pub type GrpcBody = BoxBody<Bytes, BoxError>;

/// Boxes any body with byte chunks.
pub fn boxed<B>(body: B) -> GrpcBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// One framed message, then the trailers.
struct Unary {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A frame on its way out, holding a permit of its stream's in-flight window (if it counts
/// against one) until hyper takes it: hyper takes a frame only when the peer's HTTP/2 window
/// has room, so a peer that stops reading keeps the permits held and its stream paused.
struct Outgoing {
    frame: Frame<Bytes>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Where a channel body's frames are sent.
#[derive(Clone)]
pub struct Sender(mpsc::UnboundedSender<Outgoing>);

impl Sender {
    /// Sends a frame that counts against no window (trailers); false once the body is gone.
    pub fn send(&self, frame: Frame<Bytes>) -> bool {
        self.0
            .send(Outgoing {
                frame,
                _permit: None,
            })
            .is_ok()
    }

    /// Sends a frame holding `permit` until hyper takes it; false once the body is gone.
    pub fn send_holding(&self, frame: Frame<Bytes>, permit: OwnedSemaphorePermit) -> bool {
        self.0
            .send(Outgoing {
                frame,
                _permit: Some(permit),
            })
            .is_ok()
    }

    /// Whether the body was dropped (the peer went away).
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Resolves when the body is dropped.
    pub async fn closed(&self) {
        self.0.closed().await;
    }
}

/// Frames as they are sent into a channel; the body ends when every sender is gone.
struct Channel {
    receiver: mpsc::UnboundedReceiver<Outgoing>,
}

impl Body for Channel {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.receiver
            .poll_recv(cx)
            .map(|outgoing| outgoing.map(|outgoing| Ok(outgoing.frame)))
    }
}

/// A body of frames sent into the returned channel.
pub fn channel() -> (Sender, GrpcBody) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Sender(sender), boxed(Channel { receiver }))
}

/// A whole, already framed request body (forwarded after the front end read it).
pub fn full(bytes: Bytes) -> GrpcBody {
    boxed(http_body_util::Full::new(bytes))
}

/// 200 with gRPC's content type and `body`.
pub fn grpc_response(body: GrpcBody) -> Response<GrpcBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A unary call's answer: one framed message and OK.
pub fn unary_response(framed: Bytes) -> Response<GrpcBody> {
    grpc_response(boxed(Unary {
        data: Some(framed),
        trailers: Some(Status::ok().to_headers()),
    }))
}

/// A failed call: a trailers-only response (the status in the headers, no body).
pub fn status_response(status: &Status) -> Response<GrpcBody> {
    let mut response = grpc_response(boxed(http_body_util::Empty::<Bytes>::new()));
    *response.status_mut() = StatusCode::OK;
    status.write_headers(response.headers_mut());
    response
}
