//! The async reader: one Redis store (a URL, a per-call timeout) shared by every view and
//! request of a server, on the front end's tokio runtime. A fetch asks for all keys of a
//! request with `HMGET key field... _ts:{view}` (one per key) over the store's one connection
//! (`connection` module: our own pipelined RESP2 client, whose parser keeps each round trip's
//! replies as spans of one buffer, `resp` module) and decodes the answers into the join's
//! `FetchedRows`, reading the values as slices of that buffer: no allocation per field. The
//! writer (`writer` module) uses the redis crate's `ConnectionManager`, created on the first
//! write, so a server that only reads opens one connection.
//!
//! Coalescing: fetches do not each send a pipeline. They queue their keys for the store's
//! round-trip task, which sends everything queued as one pipeline and hands each fetch its
//! own answers (`coalesce` module; a key asked by several queued fetches of one view is asked
//! once; the answers are shared, each fetch gets the indices of its commands). Up to
//! `MAX_ROUND_TRIPS_IN_FLIGHT` round trips run at once, so at low load a fetch goes out alone
//! and at once (no wait behind another's round trip: with one in flight, p50 at 2,500 req/s
//! doubled); only when all are busy do fetches queue and share the next free one. At c=16 a
//! round trip carries the lookups of several requests, so the client's per-pipeline work,
//! Redis's per-read work and the wake-ups are paid once per round trip, and the requests whose
//! lookups came back together reach the batch queue together (docs/benchmarks.md, Feature
//! lookup). A round trip holds its place among those in flight until its replies arrive or the
//! connection fails, even when its fetches have given up: its replies are still on their way
//! and must be read before the next round trip's.
//!
//! Timeout and failures: a fetch never fails on the store's account. If Redis does not answer
//! within the store's timeout (counted from the fetch's start, so time queued behind round
//! trips in flight counts), or the connection fails, every row of that call is
//! `push_unavailable()` (the view's missing policy then serves the defaults or rejects the
//! rows), and the store's `timeouts` or `errors` counter increments (`errors` by kind:
//! `Connection` for a refused, broken, silent or unauthenticated connection and for a Redis
//! that cannot serve reads now, such as `-LOADING`; `Protocol` for bytes that are not RESP2).
//! A key whose HMGET answers an error of its own (`-WRONGTYPE`: not a hash) or anything but an
//! array of bulk strings is a bad row; the other keys are served. The round-trip task skips
//! lookups whose fetch already gave up. The connection (module doc there) connects on the
//! first round trip, handshake (`AUTH`, `SELECT`) included, bounded by the timeout; when it
//! breaks, the round trips on it fail at once and the next one reconnects, at most every 100
//! ms doubling to 1 s (calls in between fail at once, saying why and when the next attempt
//! is), so fetches succeed again on their own once Redis is back; a round trip unanswered for
//! 10 timeouts (at least 1 s) drops the connection and the next one reconnects. No call waits
//! longer than the timeout meanwhile.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ferroserve_features::{FetchedRows, KeyValue};
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use crate::FeastError;
use crate::connection::Connection;
use crate::endpoint::Endpoint;
use crate::round_trips::{Lookup, LookupAnswers, send_round_trips};
use crate::row::{RowSink, StoredRow, push_row};
use crate::stats::{CallCounts, CallEnd, FailureKind, StoreStats, StoreStatsSnapshot};
use crate::view::FeastView;

/// The timeout of a fetch when the configuration gives none: a loopback or same-zone Redis
/// answers a 64-key pipeline in well under a millisecond, so 50 ms means the store is unwell.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Where a Redis store is and how long a fetch may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStoreConfig {
    /// `redis://[[user]:password@]host:port[/db]` or `redis+unix:///path[?db=N]` (TLS is not
    /// supported).
    pub url: String,
    /// The longest a fetch call waits for Redis (connecting included) before its rows are
    /// served as unavailable.
    pub timeout: Duration,
}

impl RedisStoreConfig {
    /// The store at `url` with the default timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisStoreConfig {
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One Redis store: the connection, its timeout and its counters; see the module doc. Share
/// it (`Arc`) between views and requests: calls run concurrently, coalesced into round trips
/// over the one connection.
#[derive(Debug)]
pub struct RedisStore {
    /// The URL's client, for the writer's connection.
    pub(crate) client: redis::Client,
    /// The writer's connection, created on the first write (`writer` module).
    pub(crate) writer: OnceLock<ConnectionManager>,
    /// The round-trip task's queue (the task ends when the store is dropped).
    lookups: mpsc::UnboundedSender<Lookup>,
    /// Per-call timeout.
    pub(crate) timeout: Duration,
    /// The counters (the round-trip task counts round trips in them).
    stats: Arc<StoreStats>,
}

impl RedisStore {
    /// The store of `config`. Connects lazily (the first fetch connects; a Redis that is down
    /// at start only makes the first calls unavailable), so it never blocks. Must be called
    /// inside a tokio runtime: the round-trip and connection tasks run on it.
    pub fn new(config: &RedisStoreConfig) -> Result<RedisStore, FeastError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(FeastError::NoRuntime);
        }
        let bad_url = |reason: String| FeastError::BadUrl {
            url: redact_url(&config.url),
            reason,
        };
        let client =
            redis::Client::open(config.url.as_str()).map_err(|error| bad_url(error.to_string()))?;
        let endpoint = Endpoint::new(&client).map_err(bad_url)?;
        let connection = Arc::new(Connection::new(endpoint, config.timeout));
        let stats = Arc::new(StoreStats::default());
        let (lookups, queue) = mpsc::unbounded_channel();
        tokio::spawn(send_round_trips(connection, queue, Arc::clone(&stats)));
        Ok(RedisStore {
            client,
            writer: OnceLock::new(),
            lookups,
            timeout: config.timeout,
            stats,
        })
    }
    /// The rows of `rows` request rows of `view`, whose key parts are the raw request buffers
    /// `key_columns` (one per key part in the view's order; see `FeastView::redis_keys`), in
    /// one pipelined round trip. Rows Redis could not give in time are unavailable (module
    /// doc). The rows carry the fetch's time (keys encoded, round trip, answers decoded), which
    /// the join records as the view's lookup latency. Errors only for key buffers that do not
    /// hold `rows` keys (a caller bug).
    pub async fn fetch(
        &self,
        view: &FeastView,
        key_columns: &[&[u8]],
        rows: usize,
    ) -> Result<FetchedRows, FeastError> {
        let started = Instant::now();
        let keys = view.redis_keys(key_columns, rows)?;
        let mut out = FetchedRows::with_capacity(view.layout(), keys.len());
        self.fetch_redis_keys(view, keys, &mut out).await;
        out.set_fetch_time(started.elapsed());
        Ok(out)
    }

    /// The rows of the entity keys `keys` (each one's parts in the view's key order), as
    /// `fetch` does for request buffers.
    pub async fn fetch_keys(&self, view: &FeastView, keys: &[&[KeyValue<'_>]]) -> FetchedRows {
        let started = Instant::now();
        let keys = redis_keys(view, keys);
        let mut out = FetchedRows::with_capacity(view.layout(), keys.len());
        self.fetch_redis_keys(view, keys, &mut out).await;
        out.set_fetch_time(started.elapsed());
        out
    }

    /// The rows of the entity keys `keys` as the reader decodes them, for tools and tests
    /// (serving uses `fetch`); counted like any fetch.
    pub async fn read(&self, view: &FeastView, keys: &[&[KeyValue<'_>]]) -> Vec<StoredRow> {
        let keys = redis_keys(view, keys);
        let mut out = Vec::with_capacity(keys.len());
        self.fetch_redis_keys(view, keys, &mut out).await;
        out
    }

    /// A copy of the store's counters.
    pub fn stats(&self) -> StoreStatsSnapshot {
        self.stats.snapshot()
    }

    /// Fetches the rows of Redis keys `keys` (`None`: a key that cannot exist, missing) into
    /// `out`, through the round-trip task.
    async fn fetch_redis_keys(
        &self,
        view: &FeastView,
        keys: Vec<Option<Vec<u8>>>,
        out: &mut impl RowSink,
    ) {
        let rows = keys.len();
        let exists: Vec<bool> = keys.iter().map(Option::is_some).collect();
        let asked: Vec<Vec<u8>> = keys.into_iter().flatten().collect();
        let asking = !asked.is_empty();
        let answers = if asking {
            self.ask(view, asked).await
        } else {
            Ok(LookupAnswers::default())
        };
        let mut counts = CallCounts::default();
        let end = match answers {
            Ok(answers) => {
                decode_answers(view, &exists, &answers, out, &mut counts);
                if asking {
                    CallEnd::Answered
                } else {
                    CallEnd::NotAsked
                }
            }
            Err(end) => {
                for _ in 0..rows {
                    out.push_unavailable();
                }
                counts.unavailable = rows as u64;
                end
            }
        };
        self.stats.record(rows, counts, end);
    }

    /// Queues `keys` of `view` for the next round trip and waits for their answers (one per
    /// key), at most the store's timeout.
    async fn ask(&self, view: &FeastView, keys: Vec<Vec<u8>>) -> Result<LookupAnswers, CallEnd> {
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup {
            fields: view.shared_fields(),
            keys,
            reply,
        };
        if self.lookups.send(lookup).is_err() {
            return Err(round_trips_stopped());
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(answers)) => answers,
            Ok(Err(_)) => Err(round_trips_stopped()),
            Err(_) => Err(timed_out(self.timeout)),
        }
    }
}

/// The failure of a lookup that the round-trip task dropped unanswered (it only stops with
/// the store or the runtime).
fn round_trips_stopped() -> CallEnd {
    CallEnd::Failed(
        FailureKind::Connection,
        "the store's round-trip task has stopped (its runtime is shutting down)".to_owned(),
    )
}

/// The failure of a call Redis did not answer within `timeout`.
fn timed_out(timeout: Duration) -> CallEnd {
    CallEnd::Failed(
        FailureKind::Timeout,
        format!("no answer within {} ms", timeout.as_millis()),
    )
}

/// The Redis keys of entity keys given as parts (`None`: cannot exist).
fn redis_keys(view: &FeastView, keys: &[&[KeyValue<'_>]]) -> Vec<Option<Vec<u8>>> {
    keys.iter()
        .map(|parts| {
            let mut key = Vec::new();
            view.redis_key(parts, &mut key).then_some(key)
        })
        .collect()
}

/// Decodes one answer per key that was asked (the rows whose `exists` is true) into `out`.
fn decode_answers(
    view: &FeastView,
    exists: &[bool],
    answers: &LookupAnswers,
    out: &mut impl RowSink,
    counts: &mut CallCounts,
) {
    let mut commands = answers.commands.iter();
    let mut row = Vec::with_capacity(view.layout().row_bytes());
    let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(view.fields().len());
    for &exists in exists {
        if !exists {
            counts.missing += 1;
            out.push_missing();
            continue;
        }
        values.clear();
        // An array of bulk strings and nils; an error reply (`-WRONGTYPE`) or anything else
        // makes a bad row.
        match commands
            .next()
            .and_then(|&command| answers.answers.items(command))
        {
            Some(items) => {
                values.extend(items);
                push_row(view, &values, &mut row, out, counts);
            }
            None => {
                counts.bad_rows += 1;
                out.push_missing();
            }
        }
    }
}

/// `url` with its password (between `:` and `@` of the authority) replaced by `***`, for
/// messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://user:secret@host/1"),
            "redis://user:***@host/1"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
