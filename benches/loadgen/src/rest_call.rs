//! One REST worker: its own HTTP/1.1 keep-alive connection (HTTP/1.1 has one request in flight
//! per connection), the prepared request sent, its whole answer read and checked, repeat. A
//! connection the server closes is opened again (HTTP/1.1 lets a server close after any
//! answer, and says so with `Connection: close`); one that cannot be opened ends the worker
//! with the error counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::rest::{self, RestRequest};
use crate::tally::{Failure, Tally, Window};

/// The request every worker sends, built once, and where to.
pub(crate) struct PreparedRest {
    /// host:port, to connect to.
    pub(crate) target: String,
    /// The `Host` header.
    pub(crate) host: HeaderValue,
    /// The path.
    pub(crate) uri: Uri,
    /// Body and headers.
    pub(crate) request: RestRequest,
}

impl PreparedRest {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.request.body.clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        headers.insert(header::CONTENT_TYPE, self.request.content_type());
        if let Some(length) = self.request.header_length {
            headers.insert(rest::HEADER_LENGTH, HeaderValue::from(length));
        }
        request
    }
}

/// An HTTP/1.1 connection to `target` (no Nagle: requests are a few hundred bytes).
pub(crate) async fn connect(target: &str) -> std::io::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; the next request sees it.
        let _ = connection.await;
    });
    Ok(sender)
}

pub(crate) async fn rest_worker(
    sender: http1::SendRequest<Full<Bytes>>,
    prepared: Arc<PreparedRest>,
    window: Window,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::new();
    let mut sender = Some(sender);
    loop {
        let sent = Instant::now();
        if sent >= window.end {
            return tally;
        }
        let reusable = match sender.take() {
            Some(mut open) => open.ready().await.is_ok().then_some(open),
            None => None,
        };
        let mut open = match reusable {
            Some(open) => open,
            None => match connect(&prepared.target).await {
                Ok(open) => open,
                Err(error) => {
                    tally.fail(&Failure::new(14, format!("reconnect: {error}")));
                    return tally;
                }
            },
        };
        match tokio::time::timeout(timeout, rest_call(&mut open, &prepared)).await {
            Ok(Ok(keep_alive)) => {
                tally.answered(sent, window);
                sender = keep_alive.then_some(open);
            }
            Ok(Err(failure)) => {
                tally.fail(&failure);
                sender = Some(open);
            }
            // The late answer would be read as the next request's: drop the connection.
            Err(_) => tally.fail(&Failure::timeout(timeout)),
        }
    }
}

/// One request and its whole answer, checked; true when the server keeps the connection
/// open (no `Connection: close`).
async fn rest_call(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    prepared: &PreparedRest,
) -> Result<bool, Failure> {
    let response = sender
        .send_request(prepared.request())
        .await
        .map_err(|error| Failure::transport(&error))?;
    let status = response.status();
    let header_length = response.headers().get(rest::HEADER_LENGTH).cloned();
    let closing = response
        .headers()
        .get(header::CONNECTION)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| Failure::transport(&error))?
        .to_bytes();
    rest::check_answer(status, header_length.as_ref(), &body).map(|()| !closing)
}
