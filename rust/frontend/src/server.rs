//! The listening socket: accepts HTTP/2 (gRPC) connections on a tokio runtime of its own and
//! serves each with `Service`; stops with a GOAWAY and a grace period.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::counters::Counters;
use crate::proxy::Backend;
use crate::routes::RouteTable;
use crate::service::Service;

/// How to run the front end.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// host:port to listen on (port 0: any free port).
    pub address: String,
    /// The Python gRPC server's Unix socket.
    pub backend: PathBuf,
    /// Largest request message accepted (RESOURCE_EXHAUSTED above it).
    pub max_message_bytes: usize,
    /// tokio worker threads.
    pub threads: usize,
}

/// Open connections, and a signal when the last one closes.
#[derive(Default)]
struct Connections {
    open: AtomicUsize,
    closed: Notify,
}

/// A running front end.
pub struct Frontend {
    address: SocketAddr,
    service: Arc<Service>,
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
        let service = Arc::new(Service::new(
            routes,
            Backend::new(config.backend),
            config.max_message_bytes,
        ));
        let (shutdown, stopping) = watch::channel(None);
        let accepting = Arc::clone(&service);
        let thread = std::thread::Builder::new()
            .name("ferroserve-grpc".into())
            .spawn(move || {
                runtime.block_on(run(listener, accepting, stopping));
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Frontend {
            address,
            service,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Calls answered natively.
    pub fn counters(&self) -> &Counters {
        self.service.counters()
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

/// Accepts until told to stop, then gives open connections the grace period to finish.
async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    mut stopping: watch::Receiver<Option<Duration>>,
) {
    let connections = Arc::new(Connections::default());
    accept(
        listener,
        service,
        stopping.clone(),
        Arc::clone(&connections),
    )
    .await;
    let grace = stopping.borrow_and_update().unwrap_or(Duration::ZERO);
    let _ = tokio::time::timeout(grace, async {
        loop {
            let closed = connections.closed.notified();
            if connections.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    })
    .await;
}

async fn accept(
    listener: TcpListener,
    service: Arc<Service>,
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
        connections.open.fetch_add(1, Ordering::AcqRel);
        let connection = serve(stream, Arc::clone(&service), stopping.clone());
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            connection.await;
            connections.open.fetch_sub(1, Ordering::AcqRel);
            connections.closed.notify_waiters();
        });
    }
}

async fn serve(
    stream: TcpStream,
    service: Arc<Service>,
    mut stopping: watch::Receiver<Option<Duration>>,
) {
    // One-row requests are a few hundred bytes: Nagle would hold each answer back.
    let _ = stream.set_nodelay(true);
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.adaptive_window(true).max_frame_size(1 << 20);
    let connection = builder.serve_connection(
        TokioIo::new(stream),
        service_fn(move |request| {
            let service = Arc::clone(&service);
            async move { Ok::<_, std::convert::Infallible>(service.handle(request).await) }
        }),
    );
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stopping.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
