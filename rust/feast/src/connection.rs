//! The reader's one connection to Redis: pipelined round trips over one socket, their replies
//! parsed (`resp` module) into one buffer per round trip. Used by the store's round-trip tasks
//! (`client` module); the client module's doc says how it behaves for the store's callers.
//!
//! A round trip is the pipeline's bytes, how many replies they ask for and a one-shot for the
//! answers. Callers write in turn (an async lock over the write half), queueing the round trip
//! on the connection's FIFO under the same lock, so the queue's order is the stream's order; a
//! reader task parses replies as they arrive and completes round trips in order. A round trip
//! whose caller gave up stays queued and consumes its replies when they come, so the stream
//! stays in step.
//!
//! Failures: end of stream, an I/O error or bytes that are not RESP2 (`Protocol`) break the
//! connection (`live` module: the open socket and its reader task): every queued round trip
//! fails with that failure, the socket is dropped, and the next round trip reconnects (handshake included, bounded by the store's timeout). Between
//! attempts it waits a jittered 100 ms, doubling up to 1 s; round trips during the wait fail at
//! once, saying when the next attempt is and why the last one failed. A round trip unanswered
//! for `STALL_FACTOR` times the timeout (at least `MIN_STALL`) means a peer that has gone
//! silent: the connection is dropped and replaced, as for a broken one.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::endpoint::{ConnectionFailure, Endpoint};
use crate::live::{Live, lock};
use crate::resp::Answers;

/// The first wait before reconnecting, doubled per failed attempt.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between reconnect attempts: the store is back in use within about this long
/// after Redis returns.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// A round trip unanswered for this many timeouts means the peer is gone (a frozen or
/// black-holed host); far past any caller's wait, so a merely slow Redis is never cut off.
const STALL_FACTOR: u32 = 10;
/// The least time before a silent connection is dropped, for very short timeouts.
const MIN_STALL: Duration = Duration::from_secs(1);
/// One Redis connection, (re)opened on demand; see the module doc.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Where Redis is.
    endpoint: Endpoint,
    /// The longest a connection attempt (handshake included) may take.
    timeout: Duration,
    /// How long a round trip may go unanswered before the connection is dropped.
    stall_limit: Duration,
    /// Up or down. A std lock: held only to read or swap the state, never across an await.
    state: Mutex<State>,
    /// Held while connecting, so concurrent round trips wait for one attempt.
    connecting: tokio::sync::Mutex<()>,
}

/// Whether a socket is open.
#[derive(Debug)]
enum State {
    /// No socket: when the next attempt may start, and why the last one failed.
    Down {
        /// Attempts that failed in a row (a connection that broke counts as one).
        failures: u32,
        /// Not before; `None`: now.
        retry_at: Option<Instant>,
        /// The last failure, for the message of calls during the wait.
        last_failure: Option<ConnectionFailure>,
    },
    /// A socket, which may have broken since (its reader task then marked it).
    Up(Arc<Live>),
}

impl Connection {
    /// A connection to `endpoint`, opened by the first round trip.
    pub(crate) fn new(endpoint: Endpoint, timeout: Duration) -> Connection {
        Connection {
            endpoint,
            timeout,
            stall_limit: (timeout * STALL_FACTOR).max(MIN_STALL),
            state: Mutex::new(State::Down {
                failures: 0,
                retry_at: None,
                last_failure: None,
            }),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// Sends `commands` (`replies` commands, pipelined) and waits for their replies, or for the
    /// connection to fail. Not to be cancelled while it writes (`Live::send`); once written,
    /// cancelling leaves the stream in step (module doc).
    pub(crate) async fn round_trip(
        &self,
        commands: &[u8],
        replies: usize,
    ) -> Result<Answers, ConnectionFailure> {
        if replies == 0 {
            return Ok(Answers::default());
        }
        let live = self.live().await?;
        let answered = live.send(commands, replies, &self.endpoint).await?;
        answered.await.unwrap_or_else(|_| {
            Err(ConnectionFailure::connection(
                "the connection's reader stopped. This is a bug.".to_owned(),
            ))
        })
    }

    /// The open connection, opening one if there is none and the backoff allows.
    async fn live(&self) -> Result<Arc<Live>, ConnectionFailure> {
        if let State::Up(live) = &*lock(&self.state)
            && !live.is_broken()
        {
            return Ok(Arc::clone(live));
        }
        let _connecting = self.connecting.lock().await;
        let failures = {
            let mut state = lock(&self.state);
            if let State::Up(live) = &*state {
                let Some((failure, at)) = live.failure() else {
                    return Ok(Arc::clone(live));
                };
                *state = State::Down {
                    failures: 1,
                    retry_at: Some(at + backoff(1)),
                    last_failure: Some(failure),
                };
            }
            let State::Down {
                failures,
                retry_at,
                last_failure,
            } = &*state
            else {
                return Err(ConnectionFailure::connection(
                    "the connection is up after being marked down. This is a bug.".to_owned(),
                ));
            };
            let now = Instant::now();
            if let Some(retry_at) = retry_at.filter(|&retry_at| retry_at > now) {
                let why = last_failure
                    .as_ref()
                    .map_or("", |failure| failure.message.as_str());
                return Err(ConnectionFailure::connection(format!(
                    "not connected to Redis ({why}); next attempt in {} ms",
                    (retry_at - now).as_millis()
                )));
            }
            *failures
        };
        let attempt = tokio::time::timeout(self.timeout, self.endpoint.connect()).await;
        let failure = match attempt {
            Ok(Ok((reader, writer))) => {
                let live = Live::open(reader, writer, self.stall_limit);
                *lock(&self.state) = State::Up(Arc::clone(&live));
                return Ok(live);
            }
            Ok(Err(failure)) => failure,
            Err(_) => ConnectionFailure::connection(format!(
                "cannot connect to Redis at {} within {} ms",
                self.endpoint.address_text(),
                self.timeout.as_millis()
            )),
        };
        *lock(&self.state) = State::Down {
            failures: failures + 1,
            retry_at: Some(Instant::now() + backoff(failures + 1)),
            last_failure: Some(failure.clone()),
        };
        Err(failure)
    }
}

impl Drop for Connection {
    /// Closes the socket: its reader task ends.
    fn drop(&mut self) {
        if let State::Up(live) = &*lock(&self.state) {
            live.fail(ConnectionFailure::connection(
                "the store was dropped".to_owned(),
            ));
        }
    }
}

/// The wait after `failures` failures in a row: 100 ms doubled per failure up to 1 s, plus up
/// to a quarter more (jitter, so the servers of a fleet do not reconnect in step), capped at 1 s.
fn backoff(failures: u32) -> Duration {
    let doubled = MIN_RECONNECT_DELAY.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let base = doubled.min(MAX_RECONNECT_DELAY);
    // A fresh RandomState is randomly keyed: random enough for jitter, without a dependency.
    let random = RandomState::new().hash_one(Instant::now());
    let jitter = base.mul_f64((random % 1024) as f64 / 4096.0);
    (base + jitter).min(MAX_RECONNECT_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_to_1_s_with_jitter() {
        for (failures, low, high) in [(1, 100, 125), (2, 200, 250), (3, 400, 500), (4, 800, 1000)] {
            let delay = backoff(failures).as_millis();
            assert!((low..=high).contains(&delay), "{failures}: {delay}");
        }
        for failures in [5, 10, 40, u32::MAX] {
            assert_eq!(backoff(failures), MAX_RECONNECT_DELAY);
        }
    }
}
