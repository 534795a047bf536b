//! The native transport ceiling: an HTTP/2 gRPC server that answers ModelInfer and every
//! ModelStreamInfer message with one canned, framed answer built at start-up, reading the
//! request no further than gRPC's framing. No model, no parsing: what a native transport
//! allows at a given answer size, for the benchmark to compare servers with. Also answers
//! ServerLive / ServerReady / ModelReady (true), so a harness can wait for it; anything else
//! is UNIMPLEMENTED.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::grpc::{self, Deframer};
use crate::proto::{self, TensorSpec};

/// The answers, framed once.
#[derive(Debug, Clone)]
pub struct Canned {
    /// ModelInfer's answer (a framed ModelInferResponse), or None to fail every call.
    unary: Option<Bytes>,
    /// One framed ModelStreamInferResponse, sent for every stream message.
    stream: Bytes,
    /// The failure ModelInfer answers with when `unary` is None: (code, message).
    failure: (u32, String),
}

impl Canned {
    /// A successful answer from `model` (version 1): one output of `rows` rows of `output`,
    /// zeros, in raw_output_contents.
    pub fn answer(model: &str, output: &TensorSpec, rows: u64) -> Result<Self, proto::WireError> {
        let contents = vec![0; output.byte_size(rows)?];
        let response = proto::infer_response(model, "1", output, &output.shape(rows), &contents);
        Ok(Canned {
            stream: grpc::frame(&proto::stream_response("", Some(&response))),
            unary: Some(grpc::frame(&response)),
            failure: (0, String::new()),
        })
    }

    /// Every call fails: ModelInfer with `code` and `message` (a trailers-only answer, as
    /// gRPC servers send errors), each stream message with `message` as its error_message.
    pub fn failing(code: u32, message: &str) -> Self {
        Canned {
            unary: None,
            stream: grpc::frame(&proto::stream_response(message, None)),
            failure: (code, message.to_owned()),
        }
    }
}

/// How to run the echo.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// host:port to listen on (port 0: any free port).
    pub address: String,
    /// tokio threads: 1 (the default) runs the current-thread scheduler, as ferroserve's
    /// front end does by default, so the two are compared on the same footing.
    pub threads: usize,
    /// What to answer.
    pub canned: Canned,
}

/// A running echo server; stops when dropped.
pub struct Echo {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    /// Binds and starts serving on a thread of its own.
    pub fn start(config: EchoConfig) -> std::io::Result<Self> {
        let runtime = if config.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.threads)
                .enable_all()
                .build()?
        };
        let listener = runtime.block_on(TcpListener::bind(&config.address))?;
        let address = listener.local_addr()?;
        let (shutdown, stopping) = watch::channel(false);
        let canned = Arc::new(config.canned);
        let thread = std::thread::Builder::new()
            .name("ferroserve-echo".into())
            .spawn(move || runtime.block_on(accept(listener, canned, stopping)))?;
        Ok(Echo {
            address,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, canned: Arc<Canned>, mut stopping: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.changed() => return,
        };
        if let Ok((stream, _)) = accepted {
            tokio::spawn(serve(stream, Arc::clone(&canned)));
        }
    }
}

async fn serve(stream: TcpStream, canned: Arc<Canned>) {
    // The same connection settings as ferroserve's front end (rust/frontend/src/server.rs).
    let _ = stream.set_nodelay(true);
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.adaptive_window(true).max_frame_size(1 << 20);
    let _ = builder
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| {
                let canned = Arc::clone(&canned);
                async move { Ok::<_, Infallible>(handle(request, &canned).await) }
            }),
        )
        .await;
}

async fn handle(request: Request<Incoming>, canned: &Canned) -> Response<Answer> {
    match request.uri().path() {
        grpc::MODEL_INFER => {
            // Read the whole request (a unary answer follows the request), deframing only.
            let mut deframer = Deframer::default();
            let mut body = request.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    deframer.push(data);
                    while let Ok(Some(_)) = deframer.next_message() {}
                }
            }
            match &canned.unary {
                Some(answer) => grpc_response(Answer::Unary {
                    data: Some(answer.clone()),
                    trailers: Some(status_headers(0, "")),
                }),
                None => trailers_only(canned.failure.0, &canned.failure.1),
            }
        }
        grpc::MODEL_STREAM_INFER => grpc_response(Answer::Stream {
            requests: request.into_body(),
            deframer: Deframer::default(),
            pending: 0,
            answer: canned.stream.clone(),
            finished: false,
        }),
        // ServerLiveResponse.live / ServerReadyResponse.ready / ModelReadyResponse.ready = 1:
        // field 1, varint, true.
        grpc::SERVER_LIVE | grpc::SERVER_READY | grpc::MODEL_READY => {
            grpc_response(Answer::Unary {
                data: Some(grpc::frame(&[0x08, 0x01])),
                trailers: Some(status_headers(0, "")),
            })
        }
        other => trailers_only(12, &format!("the echo serves no {other}")),
    }
}

fn grpc_response(body: Answer) -> Response<Answer> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A failed call: the status in the response headers, no body.
fn trailers_only(code: u32, message: &str) -> Response<Answer> {
    let mut response = grpc_response(Answer::Unary {
        data: None,
        trailers: None,
    });
    response.headers_mut().extend(status_headers(code, message));
    response
}

fn status_headers(code: u32, message: &str) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert("grpc-status", HeaderValue::from(code));
    // Messages here are the echo's own ASCII text, so no percent-encoding is needed.
    if let Ok(value) = HeaderValue::from_str(message)
        && !message.is_empty()
    {
        headers.insert("grpc-message", value);
    }
    headers
}

/// The echo's answer bodies: one message then trailers, or one canned message per request
/// message of a stream (then OK when the client ends its side) with no task or channel.
enum Answer {
    Unary {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    Stream {
        requests: Incoming,
        deframer: Deframer,
        /// Request messages not answered yet.
        pending: usize,
        answer: Bytes,
        finished: bool,
    },
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Answer::Unary { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            Answer::Stream {
                requests,
                deframer,
                pending,
                answer,
                finished,
            } => loop {
                if *pending > 0 {
                    *pending -= 1;
                    return Poll::Ready(Some(Ok(Frame::data(answer.clone()))));
                }
                if *finished {
                    return Poll::Ready(None);
                }
                match Pin::new(&mut *requests).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            deframer.push(data);
                            while let Ok(Some(_)) = deframer.next_message() {
                                *pending += 1;
                            }
                        }
                    }
                    // The client ended its side (or reset it): end ours with OK.
                    Poll::Ready(None | Some(Err(_))) => {
                        *finished = true;
                        return Poll::Ready(Some(Ok(Frame::trailers(status_headers(0, "")))));
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Unary { data, trailers } => data.is_none() && trailers.is_none(),
            Answer::Stream { .. } => false,
        }
    }
}
