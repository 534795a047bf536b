//! The store's counters, bumped once per fetch call with that call's totals (relaxed atomics:
//! each is an independent count, read for metrics only). Missing, stale and unavailable rows are
//! also counted per view by the join (`JoinPlan::stats`); these say why, from the store's side.
//! Failed calls also leave their kind, message and time (a lock taken on failures only), and
//! answered ones their time, so the store's state ("is Redis answering?") is whichever came
//! last.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use ferroserve_features::unix_micros_now;

/// The counters of one Redis store.
#[derive(Debug, Default)]
pub(crate) struct StoreStats {
    /// Fetch calls that asked Redis.
    calls: AtomicU64,
    /// Pipelines sent: concurrent calls are coalesced, so several calls share one.
    round_trips: AtomicU64,
    /// Rows asked for (keys sent to Redis plus keys that cannot exist).
    rows: AtomicU64,
    /// Rows found.
    found: AtomicU64,
    /// Rows whose key has no hash or none of the view's fields.
    missing: AtomicU64,
    /// Rows served as unavailable (their call timed out or failed).
    unavailable: AtomicU64,
    /// Calls that timed out.
    timeouts: AtomicU64,
    /// Calls that failed with a connection or protocol error.
    errors: AtomicU64,
    /// Calls that failed because Redis could not be reached (or the connection broke).
    connection_errors: AtomicU64,
    /// Calls Redis answered with an error or with an answer that does not fit what was asked.
    protocol_errors: AtomicU64,
    /// Rows served as missing because a stored value could not be served: a type the feature
    /// does not accept, bytes that are not a Feast `Value` or `Timestamp`, a key that is not a
    /// hash.
    bad_rows: AtomicU64,
    /// Features absent or null in a found row (their default served, or the row served as
    /// missing under a reject policy).
    null_values: AtomicU64,
    /// When Redis last answered a call, Unix microseconds; 0: never.
    last_answer_us: AtomicI64,
    /// The last call that timed out or failed. Written on failures only, so serving a call
    /// Redis answers never takes this lock.
    last_failure: Mutex<Option<CallFailure>>,
}

/// What one fetch call adds to the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallCounts {
    /// Rows found.
    pub(crate) found: u64,
    /// Rows missing.
    pub(crate) missing: u64,
    /// Rows served as unavailable.
    pub(crate) unavailable: u64,
    /// Rows that could not be served.
    pub(crate) bad_rows: u64,
    /// Absent or null features of found rows.
    pub(crate) null_values: u64,
}

/// How a fetch call ended, for the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallEnd {
    /// Redis answered.
    Answered,
    /// There was nothing to ask (no key of the call can exist).
    NotAsked,
    /// It timed out or failed, and why.
    Failed(FailureKind, String),
}

/// Why a call got no usable answer from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer within the store's timeout (connecting included).
    Timeout,
    /// Redis could not be reached, or the connection broke.
    Connection,
    /// Redis answered with an error, or with an answer that does not fit what was asked.
    Protocol,
}

impl FailureKind {
    /// Every kind, in the order metrics export them.
    pub const ALL: [FailureKind; 3] = [
        FailureKind::Timeout,
        FailureKind::Connection,
        FailureKind::Protocol,
    ];

    /// The label value exported for this kind.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Connection => "connection",
            FailureKind::Protocol => "protocol",
        }
    }
}

/// A call that timed out or failed: what, why and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// Its kind.
    pub kind: FailureKind,
    /// What the client said (the Redis error, or the timeout).
    pub message: String,
    /// When it ended, Unix microseconds.
    pub at_us: i64,
}

/// A copy of a store's counters; see `RedisStore::stats`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreStatsSnapshot {
    /// Fetch calls that asked Redis.
    pub calls: u64,
    /// Pipelines sent to Redis: concurrent calls are coalesced, so several calls share one
    /// (`calls / round_trips` is the mean number of calls per round trip).
    pub round_trips: u64,
    /// Rows asked for.
    pub rows: u64,
    /// Rows found.
    pub found: u64,
    /// Rows whose key has no hash or none of the view's fields.
    pub missing: u64,
    /// Rows served as unavailable (their call timed out or failed).
    pub unavailable: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls that failed with a connection or protocol error
    /// (`connection_errors + protocol_errors`).
    pub errors: u64,
    /// Calls that failed because Redis could not be reached, or the connection broke.
    pub connection_errors: u64,
    /// Calls Redis answered with an error, or with an answer that does not fit what was asked.
    pub protocol_errors: u64,
    /// Rows served as missing because a stored value could not be served (a type the feature
    /// does not accept, bytes that are not a Feast `Value`, a key that is not a hash).
    pub bad_rows: u64,
    /// Features absent or null in found rows.
    pub null_values: u64,
    /// When Redis last answered a call, Unix microseconds.
    pub last_answer_us: Option<i64>,
    /// The last call that timed out or failed.
    pub last_failure: Option<CallFailure>,
}

impl StoreStatsSnapshot {
    /// Whether Redis answered the last call that asked it (a later failure means no); None
    /// before the first call. It says how the last call went, not whether Redis is up now.
    pub fn connected(&self) -> Option<bool> {
        match (self.last_answer_us, &self.last_failure) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(answer_us), Some(failure)) => Some(answer_us >= failure.at_us),
        }
    }

    /// Calls that failed by `kind`.
    pub fn failures(&self, kind: FailureKind) -> u64 {
        match kind {
            FailureKind::Timeout => self.timeouts,
            FailureKind::Connection => self.connection_errors,
            FailureKind::Protocol => self.protocol_errors,
        }
    }
}

impl std::ops::Add for StoreStatsSnapshot {
    type Output = StoreStatsSnapshot;

    /// The counters of two stores together (e.g. one model's connections on two runtimes).
    fn add(self, other: StoreStatsSnapshot) -> StoreStatsSnapshot {
        StoreStatsSnapshot {
            calls: self.calls + other.calls,
            round_trips: self.round_trips + other.round_trips,
            rows: self.rows + other.rows,
            found: self.found + other.found,
            missing: self.missing + other.missing,
            unavailable: self.unavailable + other.unavailable,
            timeouts: self.timeouts + other.timeouts,
            errors: self.errors + other.errors,
            connection_errors: self.connection_errors + other.connection_errors,
            protocol_errors: self.protocol_errors + other.protocol_errors,
            bad_rows: self.bad_rows + other.bad_rows,
            null_values: self.null_values + other.null_values,
            last_answer_us: self.last_answer_us.max(other.last_answer_us),
            // The later of the two (by when it ended).
            last_failure: match (self.last_failure, other.last_failure) {
                (Some(mine), Some(theirs)) if theirs.at_us > mine.at_us => Some(theirs),
                (mine, theirs) => mine.or(theirs),
            },
        }
    }
}

impl StoreStats {
    /// Adds one call's counts.
    pub(crate) fn record(&self, rows: usize, counts: CallCounts, end: CallEnd) {
        let add = |counter: &AtomicU64, value: u64| {
            if value > 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&self.calls, 1);
        add(&self.rows, rows as u64);
        add(&self.found, counts.found);
        add(&self.missing, counts.missing);
        add(&self.unavailable, counts.unavailable);
        add(&self.bad_rows, counts.bad_rows);
        add(&self.null_values, counts.null_values);
        match end {
            CallEnd::NotAsked => {}
            CallEnd::Answered => self
                .last_answer_us
                .store(unix_micros_now(), Ordering::Relaxed),
            CallEnd::Failed(kind, message) => {
                match kind {
                    FailureKind::Timeout => add(&self.timeouts, 1),
                    FailureKind::Connection => {
                        add(&self.errors, 1);
                        add(&self.connection_errors, 1);
                    }
                    FailureKind::Protocol => {
                        add(&self.errors, 1);
                        add(&self.protocol_errors, 1);
                    }
                }
                let failure = CallFailure {
                    kind,
                    message,
                    at_us: unix_micros_now(),
                };
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(failure);
            }
        }
    }

    /// Counts one pipeline sent (answered or not).
    pub(crate) fn record_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub(crate) fn snapshot(&self) -> StoreStatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreStatsSnapshot {
            calls: read(&self.calls),
            round_trips: read(&self.round_trips),
            rows: read(&self.rows),
            found: read(&self.found),
            missing: read(&self.missing),
            unavailable: read(&self.unavailable),
            timeouts: read(&self.timeouts),
            errors: read(&self.errors),
            connection_errors: read(&self.connection_errors),
            protocol_errors: read(&self.protocol_errors),
            bad_rows: read(&self.bad_rows),
            null_values: read(&self.null_values),
            last_answer_us: match self.last_answer_us.load(Ordering::Relaxed) {
                0 => None,
                at_us => Some(at_us),
            },
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: FailureKind, at_us: i64) -> CallFailure {
        CallFailure {
            kind,
            message: kind.name().to_owned(),
            at_us,
        }
    }

    #[test]
    fn failures_are_counted_by_kind_and_the_last_one_kept() {
        let stats = StoreStats::default();
        assert_eq!(stats.snapshot().connected(), None);
        stats.record(2, CallCounts::default(), CallEnd::NotAsked);
        assert_eq!(stats.snapshot().connected(), None, "nothing was asked");
        stats.record(1, CallCounts::default(), CallEnd::Answered);
        assert_eq!(stats.snapshot().connected(), Some(true));
        for (kind, message) in [
            (FailureKind::Timeout, "slow"),
            (FailureKind::Connection, "refused"),
            (FailureKind::Connection, "reset"),
            (FailureKind::Protocol, "WRONGTYPE"),
        ] {
            stats.record(
                1,
                CallCounts::default(),
                CallEnd::Failed(kind, message.into()),
            );
        }
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.calls, 6);
        let by_kind = FailureKind::ALL.map(|kind| snapshot.failures(kind));
        assert_eq!(by_kind, [1, 2, 1]);
        assert_eq!(snapshot.errors, 3, "connection + protocol");
        let last = snapshot.last_failure.clone().expect("failed");
        assert_eq!(
            (last.kind, last.message.as_str()),
            (FailureKind::Protocol, "WRONGTYPE")
        );
        assert_eq!(snapshot.connected(), Some(false));
    }

    #[test]
    fn the_state_is_whichever_came_last() {
        let at = |answer: Option<i64>, failed: Option<i64>| StoreStatsSnapshot {
            last_answer_us: answer,
            last_failure: failed.map(|at_us| failure(FailureKind::Timeout, at_us)),
            ..StoreStatsSnapshot::default()
        };
        assert_eq!(at(None, None).connected(), None);
        assert_eq!(at(Some(5), None).connected(), Some(true));
        assert_eq!(at(None, Some(5)).connected(), Some(false));
        assert_eq!(at(Some(6), Some(5)).connected(), Some(true));
        assert_eq!(at(Some(5), Some(6)).connected(), Some(false));
    }

    #[test]
    fn two_stores_add_up_and_keep_the_later_events() {
        let python = StoreStatsSnapshot {
            calls: 2,
            connection_errors: 1,
            errors: 1,
            last_answer_us: Some(10),
            last_failure: Some(failure(FailureKind::Connection, 30)),
            ..StoreStatsSnapshot::default()
        };
        let native = StoreStatsSnapshot {
            calls: 5,
            timeouts: 1,
            last_answer_us: Some(40),
            last_failure: Some(failure(FailureKind::Timeout, 20)),
            ..StoreStatsSnapshot::default()
        };
        let both = python.clone() + native.clone();
        assert_eq!(
            (both.calls, both.timeouts, both.connection_errors),
            (7, 1, 1)
        );
        assert_eq!(both.last_answer_us, Some(40));
        assert_eq!(both.last_failure.as_ref().map(|f| f.at_us), Some(30));
        assert_eq!(both.connected(), Some(true));
        let only_failures = StoreStatsSnapshot {
            last_answer_us: None,
            ..native
        } + StoreStatsSnapshot::default();
        assert_eq!(only_failures.connected(), Some(false));
    }
}
