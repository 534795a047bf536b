//! The open connections and what bounds them (`ConnectionLimits`, with the per-stream window): a cap on their number (the oldest idle one is
//! cut to make room for a new one), a time limit for a new connection to send its first
//! request, and one for a connection to stay without any open call. Each connection counts its
//! open calls through a guard its calls' response bodies hold.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::body::{BoxError, GrpcBody};

/// What bounds connections (see docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; at the cap a new one closes the oldest idle one, or is
    /// closed itself when every open one has calls in flight.
    pub max_connections: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls open at once on one connection.
    pub max_concurrent_streams: u32,
    /// How long a new connection may take to send its first request.
    pub handshake_timeout: Duration,
    /// How long a connection may stay without an open call (None: forever). It is closed
    /// (GOAWAY) between one and two of these after its last call ended.
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 PING interval (None: no pings); a connection whose peer does not answer one
    /// within `keepalive_timeout` is closed.
    pub keepalive_time: Option<Duration>,
    /// How long a PING may go unanswered.
    pub keepalive_timeout: Duration,
    /// Messages of one `ModelStreamInfer` stream in flight at once (read and not yet answered,
    /// or answered and not yet sent); past it the stream's reading pauses.
    pub stream_window: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            max_concurrent_streams: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            // Triton's defaults (--grpc-keepalive-time, --grpc-keepalive-timeout).
            keepalive_time: Some(Duration::from_secs(7200)),
            keepalive_timeout: Duration::from_secs(20),
            stream_window: 64,
        }
    }
}

/// One connection's activity.
#[derive(Default)]
pub(crate) struct Activity {
    /// Calls whose response has not ended.
    open_calls: AtomicUsize,
    /// Calls started so far.
    started: AtomicU64,
}

impl Activity {
    /// A call starts; the guard ends it when dropped.
    pub(crate) fn call(self: &Arc<Self>) -> CallGuard {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.open_calls.fetch_add(1, Ordering::AcqRel);
        CallGuard(Arc::clone(self))
    }

    fn idle(&self) -> bool {
        self.open_calls.load(Ordering::Acquire) == 0
    }

    /// Resolves once the connection has stayed idle long enough to close: no first request
    /// within `handshake`, or no open call for `idle` after that.
    pub(crate) async fn idle_for(&self, handshake: Duration, idle: Option<Duration>) {
        let mut seen = 0;
        let mut wait = handshake;
        loop {
            tokio::time::sleep(wait).await;
            let started = self.started.load(Ordering::Relaxed);
            if self.idle() && started == seen {
                return;
            }
            seen = started;
            match idle {
                Some(idle) => wait = idle,
                None if started > 0 => return std::future::pending().await,
                None => {}
            }
        }
    }
}

/// Holds one call open on its connection.
pub(crate) struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.open_calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its call counted as open until it ends or is dropped.
struct Tracked {
    inner: GrpcBody,
    _call: CallGuard,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `body` counted as an open call until it ends.
pub(crate) fn tracked(body: GrpcBody, call: CallGuard) -> GrpcBody {
    GrpcBody::new(Tracked {
        inner: body,
        _call: call,
    })
}

/// An open connection: its activity, and its task (aborting it drops the connection).
struct Open {
    activity: Arc<Activity>,
    task: Option<AbortHandle>,
}

/// Every open connection, oldest first, and a signal when one closes.
#[derive(Default)]
pub(crate) struct Connections {
    open: Mutex<BTreeMap<u64, Open>>,
    next_id: AtomicU64,
    closed: Notify,
}

/// A registered connection; unregisters it when dropped.
pub(crate) struct Registered {
    connections: Arc<Connections>,
    /// Its number, in accept order.
    pub id: u64,
    /// Its activity.
    pub activity: Arc<Activity>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
        self.connections.closed.notify_waiters();
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Makes room for one more connection under `cap`: when at the cap, cuts the oldest idle
    /// connection (it has no call to lose). False when every open connection has calls in
    /// flight (the new one should be refused).
    pub(crate) fn make_room(&self, cap: usize) -> bool {
        let mut open = self.lock();
        if open.len() < cap {
            return true;
        }
        let oldest_idle = open
            .iter()
            .find(|(_, connection)| connection.activity.idle())
            .map(|(&id, _)| id);
        let Some(cut) = oldest_idle.and_then(|id| open.remove(&id)) else {
            return false;
        };
        drop(open);
        if let Some(task) = cut.task {
            task.abort();
        }
        true
    }

    /// Records the task serving connection `id`: it is aborted to cut the connection.
    pub(crate) fn serving(&self, id: u64, task: AbortHandle) {
        if let Some(open) = self.lock().get_mut(&id) {
            open.task = Some(task);
        }
    }

    /// Registers a new connection.
    pub(crate) fn register(self: &Arc<Self>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::default());
        let connection = Open {
            activity: Arc::clone(&activity),
            task: None,
        };
        self.lock().insert(id, connection);
        Registered {
            connections: Arc::clone(self),
            id,
            activity,
        }
    }

    /// Waits until no connection is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.len() == 0 {
                return;
            }
            closed.await;
        }
    }
}
