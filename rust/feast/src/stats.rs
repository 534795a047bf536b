//! The store's counters, bumped once per fetch call with that call's totals (relaxed atomics:
//! each is an independent count, read for metrics only). Missing, stale and unavailable rows are
//! also counted per view by the join (`JoinPlan::stats`); these say why, from the store's side.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters of one Redis store.
#[derive(Debug, Default)]
pub(crate) struct StoreStats {
    /// Fetch calls that asked Redis.
    calls: AtomicU64,
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
    /// Rows served as missing because a stored value could not be served: a type the feature
    /// does not accept, bytes that are not a Feast `Value` or `Timestamp`, a key that is not a
    /// hash.
    bad_rows: AtomicU64,
    /// Features absent or null in a found row (their default served, or the row served as
    /// missing under a reject policy).
    null_values: AtomicU64,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallEnd {
    /// Redis answered (or there was nothing to ask).
    Answered,
    /// The per-store timeout passed.
    TimedOut,
    /// A connection or protocol error.
    Failed,
}

/// A copy of a store's counters; see `RedisStore::stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatsSnapshot {
    /// Fetch calls that asked Redis.
    pub calls: u64,
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
    /// Calls that failed with a connection or protocol error.
    pub errors: u64,
    /// Rows served as missing because a stored value could not be served (a type the feature
    /// does not accept, bytes that are not a Feast `Value`, a key that is not a hash).
    pub bad_rows: u64,
    /// Features absent or null in found rows.
    pub null_values: u64,
}

impl std::ops::Add for StoreStatsSnapshot {
    type Output = StoreStatsSnapshot;

    /// The counters of two stores together (e.g. one model's connections on two runtimes).
    fn add(self, other: StoreStatsSnapshot) -> StoreStatsSnapshot {
        StoreStatsSnapshot {
            calls: self.calls + other.calls,
            rows: self.rows + other.rows,
            found: self.found + other.found,
            missing: self.missing + other.missing,
            unavailable: self.unavailable + other.unavailable,
            timeouts: self.timeouts + other.timeouts,
            errors: self.errors + other.errors,
            bad_rows: self.bad_rows + other.bad_rows,
            null_values: self.null_values + other.null_values,
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
            CallEnd::Answered => {}
            CallEnd::TimedOut => add(&self.timeouts, 1),
            CallEnd::Failed => add(&self.errors, 1),
        }
    }

    /// A copy of the counters.
    pub(crate) fn snapshot(&self) -> StoreStatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreStatsSnapshot {
            calls: read(&self.calls),
            rows: read(&self.rows),
            found: read(&self.found),
            missing: read(&self.missing),
            unavailable: read(&self.unavailable),
            timeouts: read(&self.timeouts),
            errors: read(&self.errors),
            bad_rows: read(&self.bad_rows),
            null_values: read(&self.null_values),
        }
    }
}
