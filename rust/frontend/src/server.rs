//! The listening sockets: accepts HTTP/2 (gRPC) connections, over TLS when configured, on a
//! tokio runtime of its own and serves each with `Service`, and, when asked, REST connections
//! on a second port (`http::listener`, over TLS too when configured), all within one
//! `ConnectionLimits`; stops with a GOAWAY and a grace period.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::connections::{self, ConnectionLimits, Connections};
use crate::counters::Counters;
use crate::http::{HttpService, listener as http_listener};
use crate::proxy::Backend;
use crate::restrict::Restrictions;
use crate::routes::RouteTable;
use crate::service::Service;
use crate::tls::{Port, ServerTls};

/// How to run the front end.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// host:port to listen on (port 0: any free port).
    pub address: String,
    /// host:port to serve the v2 REST protocol on (port 0: any free port); None: no HTTP.
    pub http_address: Option<String>,
    /// The Python gRPC server's Unix socket.
    pub backend: PathBuf,
    /// Largest request message accepted (RESOURCE_EXHAUSTED above it).
    pub max_message_bytes: usize,
    /// tokio worker threads.
    pub threads: usize,
    /// What bounds connections.
    pub limits: ConnectionLimits,
    /// Protocols whose calls must carry a header (Triton's `--grpc-restricted-protocol`).
    pub restrictions: Restrictions,
    /// TLS on the port (None: plain HTTP/2); `ServerTls::reload` swaps its certificates.
    pub tls: Option<Arc<ServerTls>>,
    /// REST endpoints whose requests must carry a header (Triton's `--http-restricted-api`).
    pub http_restrictions: Restrictions,
    /// TLS on the REST port (`--http-use-ssl`; None: plain HTTP). The same `ServerTls` as
    /// `tls` in practice: one certificate, one reload.
    pub http_tls: Option<Arc<ServerTls>>,
}

/// A running front end.
pub struct Frontend {
    address: SocketAddr,
    /// Where REST is served, if it is.
    http_address: Option<SocketAddr>,
    service: Arc<Service>,
    connections: Arc<Connections>,
    /// Carries the grace period when stopping.
    shutdown: watch::Sender<Option<Duration>>,
    /// The thread that runs the runtime (and drops it when done).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Frontend {
    /// Binds `config.address` and starts serving; routes are read from `routes` on every call.
    ///
    /// One thread (the default) runs tokio's current-thread scheduler: tasks run in the order
    /// they were woken, so requests reach the batch queue in the order they arrived (the
    /// multi-thread scheduler runs the newest task first, which reorders a burst). More
    /// threads use the multi-thread scheduler.
    pub fn start(config: FrontendConfig, routes: Arc<RouteTable>) -> std::io::Result<Self> {
        let runtime = if config.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.threads)
                .thread_name("ferroserve-grpc")
                .enable_all()
                .build()?
        };
        let listener = runtime.block_on(TcpListener::bind(&config.address))?;
        let address = listener.local_addr()?;
        let rest_listener = match &config.http_address {
            Some(http_address) => Some(runtime.block_on(TcpListener::bind(http_address))?),
            None => None,
        };
        let http_address = match &rest_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let service = Arc::new(Service::new(
            routes,
            Backend::new(config.backend),
            config.max_message_bytes,
            config.limits.stream_window,
            config.restrictions,
        ));
        let (shutdown, stopping) = watch::channel(None);
        let accepting = Arc::clone(&service);
        let limits = Arc::new(config.limits);
        let connections = Arc::new(Connections::default());
        let serving = Arc::clone(&connections);
        let tls = config.tls;
        let http_restrictions = config.http_restrictions;
        let http_tls = config.http_tls;
        let rest = rest_listener.map(|listener| {
            let http = HttpService::new(Arc::clone(&service), http_restrictions);
            (listener, Arc::new(http), http_tls)
        });
        let thread = std::thread::Builder::new()
            .name("ferroserve-grpc".into())
            .spawn(move || {
                runtime.block_on(run(
                    listener, rest, accepting, limits, tls, serving, stopping,
                ));
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Frontend {
            address,
            http_address,
            service,
            connections,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address REST is served on, if it is.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http_address
    }

    /// Calls answered natively.
    pub fn counters(&self) -> &Counters {
        self.service.counters()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Stops accepting, asks every connection to finish (GOAWAY), waits up to `grace` for them,
    /// then stops the runtime.
    pub fn stop(&mut self, grace: Duration) {
        let _ = self.shutdown.send(Some(grace));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// Accepts on both ports until told to stop, then gives open connections the grace period to
/// finish.
async fn run(
    listener: TcpListener,
    rest: Option<(TcpListener, Arc<HttpService>, Option<Arc<ServerTls>>)>,
    service: Arc<Service>,
    limits: Arc<ConnectionLimits>,
    tls: Option<Arc<ServerTls>>,
    connections: Arc<Connections>,
    mut stopping: watch::Receiver<Option<Duration>>,
) {
    let grpc = accept(
        listener,
        service,
        Arc::clone(&limits),
        tls,
        stopping.clone(),
        Arc::clone(&connections),
    );
    let http = async {
        if let Some((listener, http, tls)) = rest {
            http_listener::accept(
                listener,
                http,
                Arc::clone(&limits),
                tls,
                stopping.clone(),
                Arc::clone(&connections),
            )
            .await;
        }
    };
    tokio::join!(grpc, http);
    let grace = stopping.borrow_and_update().unwrap_or(Duration::ZERO);
    let _ = tokio::time::timeout(grace, connections.all_closed()).await;
}

async fn accept(
    listener: TcpListener,
    service: Arc<Service>,
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
        let service = Arc::clone(&service);
        let limits = Arc::clone(&limits);
        let stopping = stopping.clone();
        let activity = Arc::clone(&registered.activity);
        let task = match &tls {
            None => tokio::spawn(async move {
                serve(stream, service, limits, stopping, activity).await;
                drop(registered);
            }),
            Some(tls) => {
                let tls = Arc::clone(tls);
                tokio::spawn(async move {
                    serve_tls(stream, &tls, service, limits, stopping, activity).await;
                    drop(registered);
                })
            }
        };
        connections.serving(id, task.abort_handle());
    }
}

async fn serve(
    stream: TcpStream,
    service: Arc<Service>,
    limits: Arc<ConnectionLimits>,
    stopping: watch::Receiver<Option<Duration>>,
    activity: Arc<connections::Activity>,
) {
    // One-row requests are a few hundred bytes: Nagle would hold each answer back.
    let _ = stream.set_nodelay(true);
    let first_request_within = limits.handshake_timeout;
    serve_http2(
        stream,
        service,
        limits,
        stopping,
        activity,
        first_request_within,
    )
    .await;
}

/// `serve` after a TLS handshake.
async fn serve_tls(
    stream: TcpStream,
    tls: &ServerTls,
    service: Arc<Service>,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<Option<Duration>>,
    activity: Arc<connections::Activity>,
) {
    let Some((stream, first_request_within)) =
        tls_handshake(stream, tls, Port::Grpc, &limits, &mut stopping).await
    else {
        return;
    };
    serve_http2(
        stream,
        service,
        limits,
        stopping,
        activity,
        first_request_within,
    )
    .await;
}

/// The TLS handshake of a connection on `port`, which counts against the handshake timeout: a
/// client that opens TCP and never finishes the handshake is cut as one that never sends a
/// request. The stream and the time left for the first request; None when the handshake
/// failed, the client spoke plaintext (and was told to use TLS), or the front end is stopping.
pub(crate) async fn tls_handshake(
    stream: TcpStream,
    tls: &ServerTls,
    port: Port,
    limits: &ConnectionLimits,
    stopping: &mut watch::Receiver<Option<Duration>>,
) -> Option<(TlsStream<TcpStream>, Duration)> {
    let opened = Instant::now();
    let _ = stream.set_nodelay(true);
    let stream = tokio::select! {
        handshake = tokio::time::timeout(
            limits.handshake_timeout,
            tls.accept(stream, port, limits.handshake_timeout),
        ) => {
            // A failed handshake (no client certificate under mutual TLS, an untrusted one)
            // already told the client why in a TLS alert; a plaintext client was answered.
            let Ok(Ok(Some(stream))) = handshake else { return None };
            stream
        }
        _ = stopping.changed() => return None,
    };
    let first_request_within = limits
        .handshake_timeout
        .saturating_sub(opened.elapsed())
        .max(Duration::from_millis(1));
    Some((stream, first_request_within))
}

async fn serve_http2<Io>(
    stream: Io,
    service: Arc<Service>,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<Option<Duration>>,
    activity: Arc<connections::Activity>,
    first_request_within: Duration,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .max_frame_size(1 << 20)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.keepalive_time)
        .keep_alive_timeout(limits.keepalive_timeout);
    let calls = Arc::clone(&activity);
    let connection = builder.serve_connection(
        TokioIo::new(stream),
        service_fn(move |request| {
            let call = calls.call();
            let service = Arc::clone(&service);
            async move {
                let response = service.handle(request).await;
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
        // An idle connection has no call to finish: a peer that ignores the GOAWAY is cut.
        Some(grace) => {
            let _ = tokio::time::timeout(grace, connection).await;
        }
    }
}
