//! The Python gRPC server behind the front end: every call the native path does not take is
//! forwarded to it over a Unix socket as it came (headers, body, trailers, deadline), on one
//! multiplexed HTTP/2 connection that is reopened when it breaks.

use std::path::PathBuf;

use http::{Request, Response, Uri};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

use crate::body::{GrpcBody, boxed, status_response};
use crate::grpc::{Code, Status};

/// Headers HTTP/2 forbids (connection-specific); gRPC clients do not send them, but a proxy
/// must not pass them on.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The Python server's socket and the open connection to it.
pub struct Backend {
    path: PathBuf,
    connection: Mutex<Option<SendRequest<GrpcBody>>>,
}

impl Backend {
    /// The server listening on the Unix socket `path` (connected on first use).
    pub fn new(path: PathBuf) -> Self {
        Backend {
            path,
            connection: Mutex::new(None),
        }
    }

    /// A sender on the open connection, opening one if there is none or it closed.
    async fn sender(&self) -> Result<SendRequest<GrpcBody>, Status> {
        let mut connection = self.connection.lock().await;
        if let Some(sender) = connection.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        // The socket's path is the server's business: clients get what is wrong, not where.
        let unreachable = |error: &dyn std::fmt::Display| {
            Status::new(
                Code::Unavailable,
                format!("the server's Python gRPC backend is not reachable: {error}"),
            )
        };
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|error| unreachable(&error))?;
        let (sender, driver) = http2::Builder::new(TokioExecutor::new())
            .adaptive_window(true)
            .max_frame_size(1 << 20)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unreachable(&error))?;
        tokio::spawn(async move {
            // Ends when the connection closes; the next call opens a new one.
            let _ = driver.await;
        });
        *connection = Some(sender.clone());
        Ok(sender)
    }

    /// Forwards one call and returns the backend's response (streamed through), or a status
    /// response when the backend cannot be reached.
    pub async fn forward(&self, request: Request<GrpcBody>) -> Response<GrpcBody> {
        let request = prepare(request);
        let mut sender = match self.sender().await {
            Ok(sender) => sender,
            Err(status) => return status_response(&status),
        };
        if let Err(error) = sender.ready().await {
            return status_response(&Status::new(
                Code::Unavailable,
                format!("the server's Python gRPC backend closed the connection: {error}"),
            ));
        }
        match sender.send_request(request).await {
            Ok(response) => response.map(boxed),
            Err(error) => status_response(&Status::new(
                Code::Unavailable,
                format!("forwarding the call to the server's Python gRPC backend failed: {error}"),
            )),
        }
    }
}

/// The request as sent on: an absolute URI (HTTP/2 needs scheme and authority) and no
/// connection-specific headers.
fn prepare(request: Request<GrpcBody>) -> Request<GrpcBody> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.scheme().is_none() || parts.uri.authority().is_none() {
        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        if let Ok(uri) = Uri::builder()
            .scheme("http")
            .authority("localhost")
            .path_and_query(path)
            .build()
        {
            parts.uri = uri;
        }
    }
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Request::from_parts(parts, body)
}
