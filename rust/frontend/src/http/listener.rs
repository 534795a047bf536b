//! The REST port's connections: HTTP/1.1 (keep-alive) or HTTP/2 (h2c, or h2 by ALPN over TLS
//! with `--http-use-ssl`), whichever the client speaks, counted in the front end's connections
//! and closed like gRPC ones (no first request within the handshake timeout, TLS handshake
//! included, idle past the idle timeout, or the front end stopping).

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::HttpService;
use crate::connections::{self, ConnectionLimits, Connections};
use crate::server::tls_handshake;
use crate::tls::{Port, ServerTls};

/// Accepts REST connections until told to stop.
pub(crate) async fn accept(
    listener: TcpListener,
    http: Arc<HttpService>,
    limits: Arc<ConnectionLimits>,
    tls: Option<Arc<ServerTls>>,
    mut stopping: watch::Receiver<Option<Duration>>,
    connections: Arc<Connections>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if !connections.make_room(limits.max_connections) {
            // Every connection has calls in flight: this one is closed at once.
            drop(stream);
            continue;
        }
        let registered = connections.register();
        let id = registered.id;
        let http = Arc::clone(&http);
        let limits = Arc::clone(&limits);
        let stopping = stopping.clone();
        let activity = Arc::clone(&registered.activity);
        let tls = tls.clone();
        let task = tokio::spawn(async move {
            serve(stream, tls.as_deref(), http, limits, stopping, activity).await;
            drop(registered);
        });
        connections.serving(id, task.abort_handle());
    }
}

/// One connection, after its TLS handshake when the port has TLS.
async fn serve(
    stream: TcpStream,
    tls: Option<&ServerTls>,
    http: Arc<HttpService>,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<Option<Duration>>,
    activity: Arc<connections::Activity>,
) {
    let Some(tls) = tls else {
        // Small answers: Nagle would hold each one back.
        let _ = stream.set_nodelay(true);
        let first_request_within = limits.handshake_timeout;
        serve_http(
            stream,
            http,
            limits,
            stopping,
            activity,
            first_request_within,
        )
        .await;
        return;
    };
    let Some((stream, first_request_within)) =
        tls_handshake(stream, tls, Port::Http, &limits, &mut stopping).await
    else {
        return;
    };
    serve_http(
        stream,
        http,
        limits,
        stopping,
        activity,
        first_request_within,
    )
    .await;
}

async fn serve_http<Io>(
    stream: Io,
    http: Arc<HttpService>,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<Option<Duration>>,
    activity: Arc<connections::Activity>,
    first_request_within: Duration,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.keepalive_time)
        .keep_alive_timeout(limits.keepalive_timeout);
    let calls = Arc::clone(&activity);
    let connection = builder.serve_connection(
        TokioIo::new(stream),
        service_fn(move |request| {
            let call = calls.call();
            let http = Arc::clone(&http);
            async move {
                let response = http.handle(request).await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| connections::tracked(body, call)),
                )
            }
        }),
    );
    tokio::pin!(connection);
    let grace = tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopping.changed() => None,
        () = activity.idle_for(first_request_within, limits.idle_timeout) => {
            Some(Duration::from_secs(1))
        }
    };
    connection.as_mut().graceful_shutdown();
    match grace {
        // Stopping: the front end's grace period bounds the wait.
        None => {
            let _ = connection.await;
        }
        // An idle connection has no call to finish: a peer that ignores the close is cut.
        Some(grace) => {
            let _ = tokio::time::timeout(grace, connection).await;
        }
    }
}
