//! The async reader: one Redis store (a URL, a per-call timeout) shared by every view and
//! request of a server, on the front end's tokio runtime. A fetch asks for all keys of a
//! request with `HMGET key field... _ts:{view}` (one per key) over a multiplexed connection
//! (`redis::aio::ConnectionManager`: one socket, replaced in the background when it breaks) and
//! decodes the answers into the join's `FetchedRows`.
//!
//! Coalescing: fetches do not each send a pipeline. They queue their keys for the store's
//! round-trip task, which sends everything queued as one pipeline and hands each fetch its
//! own answers (`coalesce` module; a key asked by several queued fetches of one view is asked
//! once). Up to `MAX_ROUND_TRIPS_IN_FLIGHT` round trips run at once, so at low load a fetch
//! goes out alone and at once (no wait behind another's round trip: with one in flight, p50
//! at 2,500 req/s doubled); only when all are busy do fetches queue and share the next free
//! one. At c=16 a round trip carries
//! the lookups of several requests, so the client's per-pipeline work, Redis's per-read work
//! and the wake-ups are paid once per round trip, and the requests whose lookups came back
//! together reach the batch queue together (docs/benchmarks.md, Feature lookup).
//!
//! Timeout and failures: a fetch never fails on the store's account. If Redis does not answer
//! within the store's timeout (counted from the fetch's start, so time queued behind a round
//! trip in flight counts), or the connection fails, every row of that call is
//! `push_unavailable()` (the view's missing policy then serves the defaults or rejects the
//! rows), and the store's `timeouts` or `errors` counter increments. The round-trip task gives
//! up on a round trip after the same timeout, so a frozen Redis holds the queue no longer than
//! that, and it skips lookups whose fetch already gave up. A broken connection is replaced in
//! the background (reconnect attempts with jittered backoff of 100 ms to 1 s), so fetches
//! succeed again on their own once Redis is back; no call waits longer than the timeout
//! meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_features::{FetchedRows, KeyValue};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::FeastError;
use crate::coalesce::{LookupKeys, RoundTripPlan};
use crate::row::{RowSink, StoredRow, push_row};
use crate::stats::{CallCounts, CallEnd, FailureKind, StoreStats, StoreStatsSnapshot};
use crate::view::FeastView;

/// The timeout of a fetch when the configuration gives none: a loopback or same-zone Redis
/// answers a 64-key pipeline in well under a millisecond, so 50 ms means the store is unwell.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest wait between reconnect attempts: the store is back in use within about this long
/// after Redis returns.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Most commands in one coalesced round trip; more queued lookups wait for the next one. Bounds
/// the size of one pipeline (a 33-field HMGET answer is about 0.5 KiB) and the time Redis
/// spends on one read (~17 µs per such HMGET on the 2-core VM: about 4 ms for 256).
const MAX_COMMANDS_PER_ROUND_TRIP: usize = 256;
/// Round trips in flight at once on the store's connection (see the module documentation).
const MAX_ROUND_TRIPS_IN_FLIGHT: usize = 4;

/// Where a Redis store is and how long a fetch may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStoreConfig {
    /// `redis://[:password@]host:port[/db]` (or `rediss://` where the client is built with TLS,
    /// `redis+unix:///path`).
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
    /// The multiplexed connection (cheap to clone: a handle), for the writer; reads go through
    /// `lookups`.
    connection: ConnectionManager,
    /// The round-trip task's queue (the task ends when the store is dropped).
    lookups: mpsc::UnboundedSender<Lookup>,
    /// Per-call timeout.
    timeout: Duration,
    /// The counters (the round-trip task counts round trips in them).
    stats: Arc<StoreStats>,
}

/// One fetch's keys, queued for the round-trip task.
#[derive(Debug)]
struct Lookup {
    /// The view's hash fields (shared by its fetches; their address identifies the view).
    fields: Arc<[Vec<u8>]>,
    /// The Redis keys to ask for, in the fetch's order (keys that cannot exist left out).
    keys: Vec<Vec<u8>>,
    /// Where the answers go: one per key, or how the round trip failed.
    reply: oneshot::Sender<Result<Vec<redis::Value>, CallEnd>>,
}

impl RedisStore {
    /// The store of `config`. Connects lazily (the first fetch connects; a Redis that is down
    /// at start only makes the first calls unavailable), so it never blocks. Must be called
    /// inside a tokio runtime: the connection's background tasks run on it.
    pub fn new(config: &RedisStoreConfig) -> Result<RedisStore, FeastError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(FeastError::NoRuntime);
        }
        let client =
            redis::Client::open(config.url.as_str()).map_err(|error| FeastError::BadUrl {
                url: redact_url(&config.url),
                reason: error.to_string(),
            })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection =
            ConnectionManager::new_lazy_with_config(client, manager_config).map_err(|error| {
                FeastError::BadUrl {
                    url: redact_url(&config.url),
                    reason: error.to_string(),
                }
            })?;
        let stats = Arc::new(StoreStats::default());
        let (lookups, queue) = mpsc::unbounded_channel();
        tokio::spawn(send_round_trips(
            connection.clone(),
            config.timeout,
            queue,
            Arc::clone(&stats),
        ));
        Ok(RedisStore {
            connection,
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

    /// The connection, for the writer.
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
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
            Ok(Vec::new())
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
    async fn ask(
        &self,
        view: &FeastView,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<redis::Value>, CallEnd> {
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

/// The store's round-trip task: once a round trip may start (fewer than
/// `MAX_ROUND_TRIPS_IN_FLIGHT` in flight), takes the lookups queued by then (up to
/// `MAX_COMMANDS_PER_ROUND_TRIP` commands), sends them as one pipeline over `connection` on a
/// task of its own, and answers each lookup with its own answers or the round trip's failure.
/// Ends when the store (the queue's sender) is dropped.
async fn send_round_trips(
    connection: ConnectionManager,
    timeout: Duration,
    mut queue: mpsc::UnboundedReceiver<Lookup>,
    stats: Arc<StoreStats>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_ROUND_TRIPS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Never closed: the semaphore lives as long as this task.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut commands = first.keys.len();
        let mut batch = vec![first];
        while commands < MAX_COMMANDS_PER_ROUND_TRIP {
            let Ok(lookup) = queue.try_recv() else {
                break;
            };
            commands += lookup.keys.len();
            batch.push(lookup);
        }
        // A fetch that timed out while queued has its answer counted already.
        batch.retain(|lookup| !lookup.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let connection = connection.clone();
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let answers = round_trip(connection, timeout, &batch).await;
            stats.record_round_trip();
            match answers {
                Ok(answers) => {
                    for (lookup, answers) in batch.into_iter().zip(answers) {
                        let _ = lookup.reply.send(Ok(answers));
                    }
                }
                Err(end) => {
                    for lookup in batch {
                        let _ = lookup.reply.send(Err(end.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Sends `batch`'s keys as one pipeline (a key shared by lookups of one view asked once) and
/// returns each lookup's answers, in its key order.
async fn round_trip(
    mut connection: ConnectionManager,
    timeout: Duration,
    batch: &[Lookup],
) -> Result<Vec<Vec<redis::Value>>, CallEnd> {
    let lookups: Vec<LookupKeys<'_>> = batch
        .iter()
        .map(|lookup| LookupKeys {
            fields: Arc::as_ptr(&lookup.fields).cast::<Vec<u8>>() as usize,
            keys: &lookup.keys,
        })
        .collect();
    let plan = RoundTripPlan::new(&lookups);
    let mut pipe = redis::pipe();
    // A key that is not a hash answers WRONGTYPE for its own command only.
    pipe.ignore_errors();
    for &(lookup, key) in &plan.commands {
        pipe.cmd("HMGET")
            .arg(batch[lookup].keys[key].as_slice())
            .arg(&*batch[lookup].fields);
    }
    let asked = plan.commands.len();
    match tokio::time::timeout(
        timeout,
        pipe.query_async::<Vec<redis::Value>>(&mut connection),
    )
    .await
    {
        Ok(Ok(answers)) => {
            let answered = answers.len();
            plan.demultiplex(answers).ok_or_else(|| {
                CallEnd::Failed(
                    FailureKind::Protocol,
                    format!("{answered} answers to {asked} commands"),
                )
            })
        }
        Ok(Err(error)) => Err(CallEnd::Failed(failure_kind(&error), error.to_string())),
        Err(_) => Err(timed_out(timeout)),
    }
}

/// Whether a failed call means Redis could not be reached (an I/O error, a refused, broken or
/// unauthenticated connection: the connection is being replaced) or that it answered wrongly.
fn failure_kind(error: &redis::RedisError) -> FailureKind {
    let connection = error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::InvalidClientConfig
        );
    if connection {
        FailureKind::Connection
    } else {
        FailureKind::Protocol
    }
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
    answers: &[redis::Value],
    out: &mut impl RowSink,
    counts: &mut CallCounts,
) {
    let mut answers = answers.iter();
    let mut row = Vec::with_capacity(view.layout().row_bytes());
    let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(view.fields().len());
    for &exists in exists {
        if !exists {
            counts.missing += 1;
            out.push_missing();
            continue;
        }
        values.clear();
        let well_formed = match answers.next() {
            Some(redis::Value::Array(items)) => items.iter().all(|item| match item {
                redis::Value::Nil => {
                    values.push(None);
                    true
                }
                redis::Value::BulkString(bytes) => {
                    values.push(Some(bytes));
                    true
                }
                _ => false,
            }),
            _ => false,
        };
        if well_formed {
            push_row(view, &values, &mut row, out, counts);
        } else {
            counts.bad_rows += 1;
            out.push_missing();
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
