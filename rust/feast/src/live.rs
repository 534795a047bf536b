//! One open connection to Redis (`connection` module: when and how it opens): the write half,
//! taken in turn by the round trips that write their pipelines, the FIFO of round trips
//! awaiting replies, and the reader task that parses replies (`resp` module) and completes the
//! round trips in order, or fails them all when the stream ends, breaks, carries bytes that are
//! not RESP2, or leaves a round trip unanswered past the stall limit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};

use crate::endpoint::{ConnectionFailure, Endpoint, SocketReader, SocketWriter};
use crate::resp::{Answers, Parsed, parse_reply};
use crate::stats::FailureKind;

/// Room made in the read buffer before each read. A 33-field HMGET answer is about 0.5 KiB,
/// so one buffer serves many round trips before a new one is allocated.
const READ_CAPACITY: usize = 16 * 1024;
/// Most bytes held for one reply not yet complete (at most `MAX_ARRAY_LEN` items of
/// `MAX_BULK_LEN`, but no real answer comes near): a peer streaming more is broken.
const MAX_INCOMPLETE_REPLY: usize = 64 << 20;

/// An open connection: its write half, its queue of round trips awaiting replies.
pub(crate) struct Live {
    /// Writers take turns; a pipeline is written whole under it. `None` once the connection
    /// broke: the reader task drops the write half, closing the socket.
    writer: tokio::sync::Mutex<Option<SocketWriter>>,
    /// Round trips sent and not yet answered, in the order they were written, and whether the
    /// connection has broken.
    queue: Mutex<Queue>,
    /// Set once, when the connection breaks.
    broken: AtomicBool,
    /// Wakes the reader task and any blocked writer when it breaks.
    closed: Notify,
}

impl std::fmt::Debug for Live {
    /// The socket has no `Debug`: the state is what tells.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Live")
            .field("broken", &self.broken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// Round trips sent, oldest first.
    waiting: VecDeque<RoundTrip>,
    /// Why and when the connection broke.
    broken: Option<(ConnectionFailure, Instant)>,
}

/// A round trip on the wire.
#[derive(Debug)]
struct RoundTrip {
    /// Replies it asked for.
    replies: usize,
    /// When it was queued.
    sent_at: Instant,
    /// Where its answers go.
    answer: oneshot::Sender<Result<Answers, ConnectionFailure>>,
}

/// Locks `mutex`; a panic elsewhere while it was held leaves data that is still consistent
/// (every critical section is a push, pop or swap).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    /// The connection over a logged-in socket's halves; spawns its reader task.
    pub(crate) fn open(
        reader: SocketReader,
        writer: SocketWriter,
        stall_limit: Duration,
    ) -> Arc<Live> {
        let live = Arc::new(Live {
            writer: tokio::sync::Mutex::new(Some(writer)),
            queue: Mutex::new(Queue::default()),
            broken: AtomicBool::new(false),
            closed: Notify::new(),
        });
        tokio::spawn(read_replies(Arc::clone(&live), reader, stall_limit));
        live
    }

    /// Queues a round trip of `commands` (`replies` commands) and writes them; the receiver
    /// gets the answers. Not to be cancelled mid-write (a partial pipeline would put the stream
    /// out of step; the store's round-trip tasks never cancel it). Dropping the receiver is
    /// safe: the round trip stays queued and its replies are read all the same.
    pub(crate) async fn send(
        &self,
        commands: &[u8],
        replies: usize,
        endpoint: &Endpoint,
    ) -> Result<oneshot::Receiver<Result<Answers, ConnectionFailure>>, ConnectionFailure> {
        let (answer, answered) = oneshot::channel();
        let mut writer = self.writer.lock().await;
        // Created before the checks, so a break after them still wakes the write below.
        let closed = self.closed.notified();
        let Some(socket) = writer.as_mut() else {
            return Err(ConnectionFailure::connection(
                "the connection to Redis broke".to_owned(),
            ));
        };
        {
            let mut queue = lock(&self.queue);
            if let Some((failure, _)) = &queue.broken {
                return Err(failure.clone());
            }
            queue.waiting.push_back(RoundTrip {
                replies,
                sent_at: Instant::now(),
                answer,
            });
        }
        let written = tokio::select! {
            written = socket.write_all(commands) => written,
            () = closed => Ok(()),
        };
        if let Err(error) = written {
            self.fail(ConnectionFailure::connection(format!(
                "writing to Redis at {} failed: {error}",
                endpoint.address_text()
            )));
        }
        Ok(answered)
    }

    /// Whether the connection has broken.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Why and when the connection broke; `None` while it is up.
    pub(crate) fn failure(&self) -> Option<(ConnectionFailure, Instant)> {
        if !self.is_broken() {
            return None;
        }
        lock(&self.queue).broken.clone()
    }

    /// Marks the connection broken (once) and fails every round trip waiting on it.
    pub(crate) fn fail(&self, failure: ConnectionFailure) {
        let waiting = {
            let mut queue = lock(&self.queue);
            if queue.broken.is_some() {
                return;
            }
            queue.broken = Some((failure.clone(), Instant::now()));
            std::mem::take(&mut queue.waiting)
        };
        self.broken.store(true, Ordering::Release);
        self.closed.notify_waiters();
        for round_trip in waiting {
            let _ = round_trip.answer.send(Err(failure.clone()));
        }
    }
}

/// The connection's reader task: completes round trips with their replies until the connection
/// breaks, then fails it.
async fn read_replies(live: Arc<Live>, mut reader: SocketReader, stall_limit: Duration) {
    let failure = read_until_broken(&live, &mut reader, stall_limit).await;
    live.fail(failure);
    // Wakes any writer blocked on a full socket (`fail` notified it), then closes the socket:
    // with both halves dropped the peer sees the end of the stream.
    drop(reader);
    live.writer.lock().await.take();
}

/// Reads and parses replies; returns why the connection broke.
async fn read_until_broken(
    live: &Live,
    reader: &mut SocketReader,
    stall_limit: Duration,
) -> ConnectionFailure {
    let mut buffer = BytesMut::with_capacity(READ_CAPACITY);
    // Where the next reply starts in `buffer`, and the replies of the oldest round trip so far.
    let mut parsed = 0;
    let mut items = Vec::new();
    let mut replies = Vec::new();
    // The replies the oldest round trip asked for, once known.
    let mut expected: Option<usize> = None;
    let stall = tokio::time::sleep(stall_limit);
    tokio::pin!(stall);
    loop {
        if buffer.capacity() - buffer.len() < READ_CAPACITY / 4 {
            buffer.reserve(READ_CAPACITY);
        }
        let closed = live.closed.notified();
        if live.broken.load(Ordering::Acquire) {
            return ConnectionFailure::connection("the connection was closed".to_owned());
        }
        tokio::select! {
            read = reader.read_buf(&mut buffer) => match read {
                Ok(0) => return ConnectionFailure::connection("Redis closed the connection".to_owned()),
                Ok(_) => {}
                Err(error) => {
                    return ConnectionFailure::connection(format!("reading from Redis failed: {error}"));
                }
            },
            () = &mut stall => {
                let now = Instant::now();
                let oldest = lock(&live.queue).waiting.front().map(|round_trip| round_trip.sent_at);
                match oldest {
                    Some(sent_at) if now - sent_at >= stall_limit => {
                        return ConnectionFailure::connection(format!(
                            "Redis left a round trip unanswered for {} ms: the connection was dropped",
                            (now - sent_at).as_millis()
                        ));
                    }
                    Some(sent_at) => stall.as_mut().reset((sent_at + stall_limit).into()),
                    None => stall.as_mut().reset((now + stall_limit).into()),
                }
                continue;
            },
            () = closed => return ConnectionFailure::connection("the connection was closed".to_owned()),
        }
        while parsed < buffer.len() {
            let wanted = match expected {
                Some(wanted) => wanted,
                None => match lock(&live.queue).waiting.front() {
                    Some(round_trip) => *expected.insert(round_trip.replies),
                    None => {
                        return ConnectionFailure {
                            kind: FailureKind::Protocol,
                            message: "Redis sent a reply to no command".to_owned(),
                        };
                    }
                },
            };
            match parse_reply(&buffer, parsed, &mut items) {
                Ok(Parsed::Complete { reply, end }) => {
                    replies.push(reply);
                    parsed = end;
                }
                Ok(Parsed::Incomplete) if buffer.len() - parsed > MAX_INCOMPLETE_REPLY => {
                    return ConnectionFailure {
                        kind: FailureKind::Protocol,
                        message: format!("a reply longer than {MAX_INCOMPLETE_REPLY} bytes"),
                    };
                }
                Ok(Parsed::Incomplete) => break,
                Err(error) => {
                    return ConnectionFailure {
                        kind: FailureKind::Protocol,
                        message: error.to_string(),
                    };
                }
            }
            if replies.len() == wanted {
                let bytes = buffer.split_to(parsed).freeze();
                parsed = 0;
                expected = None;
                // The next round trip's lists start with this one's capacity: one allocation
                // each, not one per doubling.
                let (item_capacity, reply_capacity) = (items.capacity(), replies.capacity());
                let answers = Answers::new(
                    bytes,
                    std::mem::replace(&mut items, Vec::with_capacity(item_capacity)),
                    std::mem::replace(&mut replies, Vec::with_capacity(reply_capacity)),
                );
                let round_trip = lock(&live.queue).waiting.pop_front();
                if let Some(round_trip) = round_trip {
                    // The caller may have given up: the replies are consumed all the same.
                    let _ = round_trip.answer.send(Ok(answers));
                }
            }
        }
    }
}
