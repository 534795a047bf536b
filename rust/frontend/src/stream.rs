//! `ModelStreamInfer`: a stream's native requests are answered as they come, its other requests
//! go to the Python server on one forwarded stream, and the stream's memory stays bounded by
//! its in-flight window whatever the client does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::{Buf, Bytes};
use ferroserve_tensor::wire;
use http::{HeaderMap, Request};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::{self, Sender};
use crate::compression::Encoding;
use crate::counters::Method;
use crate::grpc::{self, Code, Deframer, Status};
use crate::routes::PendingInfer;
use crate::service::{Service, deadline, inflate};

/// A stream's shared end: sends the trailers once every answer is out (when the last holder
/// drops it), and counts the call unless the Python server took part (it counts it then).
struct StreamEnd {
    service: Arc<Service>,
    out: Sender,
    /// The stream's in-flight window: a native request holds a permit from when it is read
    /// until its answer is handed to hyper, a forwarded answer from when it arrives.
    window: Arc<Semaphore>,
    status: Mutex<Status>,
    forwarded: AtomicBool,
    /// Signalled by the first failure: the reader stops and the stream ends.
    failed: tokio::sync::Notify,
}

impl StreamEnd {
    fn send(&self, message: &[u8], permit: OwnedSemaphorePermit) {
        self.out
            .send_holding(Frame::data(grpc::frame(message)), permit);
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
///
/// Memory stays bounded whatever the client does: at most `stream_window` native requests and
/// unsent answers, and as many forwarded requests not yet taken by the backend, per stream;
/// past that the reading pauses, and HTTP/2 flow control pauses the client.
pub(crate) async fn run_stream(service: Arc<Service>, request: Request<Incoming>, out: Sender) {
    let deadline = deadline(request.headers());
    let encoding = Encoding::of(request.headers());
    let limit = service.max_message_bytes;
    let (parts, mut body) = request.into_parts();
    let window = service.stream_window;
    let end = Arc::new(StreamEnd {
        service: Arc::clone(&service),
        out,
        window: Arc::new(Semaphore::new(window)),
        status: Mutex::new(Status::ok()),
        forwarded: false.into(),
        failed: tokio::sync::Notify::new(),
    });
    let mut forward: Option<Forwarded> = None;
    // Forwarded requests the backend has not taken yet.
    let forwarding = Arc::new(Semaphore::new(window));
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
            let data = if message.compressed {
                match inflate(&encoding, message.data, limit).await {
                    Ok(data) => data,
                    Err(status) => {
                        end.fail(status);
                        return;
                    }
                }
            } else {
                message.data
            };
            let pending = service.start(&data, deadline, true, !message.compressed);
            let window = match pending {
                Some(_) => &end.window,
                None => &forwarding,
            };
            let permit = tokio::select! {
                permit = Arc::clone(window).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return, // never closed
                },
                () = end.failed.notified() => return,
                () = end.out.closed() => {
                    cancel(forward);
                    return;
                }
            };
            match pending {
                Some(pending) => {
                    tokio::spawn(answer(Arc::clone(&end), data, pending, permit));
                }
                None => {
                    let forwarded = forward.get_or_insert_with(|| {
                        end.forwarded.store(true, Ordering::Relaxed);
                        open_forwarded(&service, &parts, deadline, Arc::clone(&end))
                    });
                    // Inflated already: the Python server never inflates anything.
                    forwarded
                        .requests
                        .send_holding(Frame::data(grpc::frame(&data)), permit);
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
/// gone, which cancels it; `permit` (its place in the stream's window) goes with the answer.
async fn answer(
    end: Arc<StreamEnd>,
    message: Bytes,
    pending: PendingInfer,
    permit: OwnedSemaphorePermit,
) {
    let result = tokio::select! {
        result = pending => result,
        () = end.out.closed() => return,
    };
    match result {
        Ok(response) => end.send(&response, permit),
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
            end.send(&error, permit);
        }
    }
}

/// The part of a stream forwarded to the Python server.
struct Forwarded {
    /// Where its requests go.
    requests: Sender,
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
                        // A client that does not read its answers pauses the backend's.
                        let Ok(permit) = Arc::clone(&end.window).acquire_owned().await else {
                            break;
                        };
                        end.out.send_holding(Frame::data(data), permit);
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
        .map(|m| grpc::percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Status::new(Code::from_number(code), message))
}
