//! The async reader: one Redis store (a URL, a per-call timeout) shared by every view and
//! request of a server, on the front end's tokio runtime. A fetch sends one pipeline of `HMGET
//! key field... _ts:{view}` for all keys of a request (one round trip) over a multiplexed
//! connection (`redis::aio::ConnectionManager`: one socket for every concurrent call, replaced
//! in the background when it breaks) and decodes the answers into the join's `FetchedRows`.
//!
//! Timeout and failures: a fetch never fails on the store's account. If Redis does not answer
//! within the store's timeout, or the connection fails, every row of that call is
//! `push_unavailable()` (the view's missing policy then serves the defaults or rejects the
//! rows), and the store's `timeouts` or `errors` counter increments. A broken connection is
//! replaced in the background (reconnect attempts with jittered backoff of 100 ms to 1 s), so
//! fetches succeed again on their own once Redis is back; no call waits longer than the timeout
//! meanwhile.

use std::time::{Duration, Instant};

use ferroserve_features::{FetchedRows, KeyValue};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::FeastError;
use crate::row::{RowSink, StoredRow, push_row};
use crate::stats::{CallCounts, CallEnd, FailureKind, StoreStats, StoreStatsSnapshot};
use crate::view::FeastView;

/// The timeout of a fetch when the configuration gives none: a loopback or same-zone Redis
/// answers a 64-key pipeline in well under a millisecond, so 50 ms means the store is unwell.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest wait between reconnect attempts: the store is back in use within about this long
/// after Redis returns.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

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
/// it (`Arc`) between views and requests: calls run concurrently over the one connection.
#[derive(Debug)]
pub struct RedisStore {
    /// The multiplexed connection (cheap to clone: a handle).
    connection: ConnectionManager,
    /// Per-call timeout.
    timeout: Duration,
    /// The counters.
    stats: StoreStats,
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
        Ok(RedisStore {
            connection,
            timeout: config.timeout,
            stats: StoreStats::default(),
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
        self.fetch_redis_keys(view, &keys, &mut out).await;
        out.set_fetch_time(started.elapsed());
        Ok(out)
    }

    /// The rows of the entity keys `keys` (each one's parts in the view's key order), as
    /// `fetch` does for request buffers.
    pub async fn fetch_keys(&self, view: &FeastView, keys: &[&[KeyValue<'_>]]) -> FetchedRows {
        let started = Instant::now();
        let keys = redis_keys(view, keys);
        let mut out = FetchedRows::with_capacity(view.layout(), keys.len());
        self.fetch_redis_keys(view, &keys, &mut out).await;
        out.set_fetch_time(started.elapsed());
        out
    }

    /// The rows of the entity keys `keys` as the reader decodes them, for tools and tests
    /// (serving uses `fetch`); counted like any fetch.
    pub async fn read(&self, view: &FeastView, keys: &[&[KeyValue<'_>]]) -> Vec<StoredRow> {
        let keys = redis_keys(view, keys);
        let mut out = Vec::with_capacity(keys.len());
        self.fetch_redis_keys(view, &keys, &mut out).await;
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
    /// `out`.
    async fn fetch_redis_keys(
        &self,
        view: &FeastView,
        keys: &[Option<Vec<u8>>],
        out: &mut impl RowSink,
    ) {
        let mut counts = CallCounts::default();
        let mut pipe = redis::pipe();
        // A key that is not a hash answers WRONGTYPE for its own command only.
        pipe.ignore_errors();
        for key in keys.iter().flatten() {
            pipe.cmd("HMGET").arg(key.as_slice()).arg(view.fields());
        }
        let asked = keys.iter().flatten().count();
        let answers = if asked == 0 {
            Ok(Vec::new())
        } else {
            let mut connection = self.connection.clone();
            match tokio::time::timeout(
                self.timeout,
                pipe.query_async::<Vec<redis::Value>>(&mut connection),
            )
            .await
            {
                Ok(Ok(answers)) if answers.len() == asked => Ok(answers),
                Ok(Ok(answers)) => Err(CallEnd::Failed(
                    FailureKind::Protocol,
                    format!("{} answers to {asked} commands", answers.len()),
                )),
                Ok(Err(error)) => Err(CallEnd::Failed(failure_kind(&error), error.to_string())),
                Err(_) => Err(CallEnd::Failed(
                    FailureKind::Timeout,
                    format!("no answer within {} ms", self.timeout.as_millis()),
                )),
            }
        };
        let end = match answers {
            Ok(answers) => {
                decode_answers(view, keys, &answers, out, &mut counts);
                if asked == 0 {
                    CallEnd::NotAsked
                } else {
                    CallEnd::Answered
                }
            }
            Err(end) => {
                for _ in keys {
                    out.push_unavailable();
                }
                counts.unavailable = keys.len() as u64;
                end
            }
        };
        self.stats.record(keys.len(), counts, end);
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

/// Decodes one answer per key that was asked (`keys` without the `None`s) into `out`.
fn decode_answers(
    view: &FeastView,
    keys: &[Option<Vec<u8>>],
    answers: &[redis::Value],
    out: &mut impl RowSink,
    counts: &mut CallCounts,
) {
    let mut answers = answers.iter();
    let mut row = Vec::with_capacity(view.layout().row_bytes());
    let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(view.fields().len());
    for key in keys {
        if key.is_none() {
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
