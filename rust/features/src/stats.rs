//! Counters of a plan's lookups, per view, for the metrics exporter: relaxed atomics, added once
//! per view per gather call (the gather counts in locals while it walks the rows), so the hot
//! path takes no lock and touches each counter's cache line once per batch.
//!
//! A row is whole or missing, so a view's misses are every one of its features' misses; there
//! is no separate per-feature counter.
//!
//! Each view also has a lookup latency histogram (`ferroserve-metrics`, over
//! `LOOKUP_BOUNDS_NS`): one observation per gather call per view, of the time that view's rows
//! took to get here: for an embedded view the time the join spent finding and copying them, for
//! a fetched (Redis) view the fetch's round trip (`FetchedRows::fetch_time`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferroserve_metrics::{Histogram, HistogramSnapshot};

/// Upper bounds (inclusive, Prometheus `le`) of the lookup latency buckets in nanoseconds. An
/// embedded view's batch takes ~0.1-2 µs (1-64 keys, docs/features.md), a large batch of BYTES
/// keys tens of µs; a Redis round trip ~0.1-4 ms on loopback, up to its timeout (50 ms by
/// default) when Redis is unwell. 1-2.5-5 steps from 1 µs to 1 s cover both with 2.5x
/// resolution; a last, unbounded bucket (`+Inf`) follows.
pub const LOOKUP_BOUNDS_NS: [u64; 19] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// What one gather call counted for one view; added to the view's counters at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ViewTally {
    /// Keys looked up.
    pub(crate) lookups: u64,
    /// Keys found and fresh.
    pub(crate) hits: u64,
    /// Keys not found.
    pub(crate) misses: u64,
    /// Keys found but older than the max age.
    pub(crate) stale: u64,
    /// Keys whose store could not be asked.
    pub(crate) unavailable: u64,
    /// Rows rejected (missing, stale or unavailable under the reject policy).
    pub(crate) rejected: u64,
}

/// The live counters of one view.
#[derive(Debug)]
struct ViewCounters {
    lookups: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    unavailable: AtomicU64,
    rejected: AtomicU64,
    /// Lookup latency per gather call (module doc).
    latency: Histogram,
}

impl Default for ViewCounters {
    fn default() -> Self {
        ViewCounters {
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            latency: Histogram::new(&LOOKUP_BOUNDS_NS),
        }
    }
}

/// One view's counters, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewStatsSnapshot {
    /// The view's name.
    pub view: String,
    /// Keys looked up (one per row per view).
    pub lookups: u64,
    /// Keys found with a fresh row.
    pub hits: u64,
    /// Keys with no row: served the defaults, or rejected.
    pub misses: u64,
    /// Keys whose row was older than the view's max age: served the defaults, or rejected.
    pub stale: u64,
    /// Keys whose store could not be asked (fetched views): served the defaults, or rejected.
    pub unavailable: u64,
    /// Rows rejected under the view's reject policy (counted in misses, stale or unavailable too).
    pub rejected: u64,
    /// Lookup latency per gather call, over `LOOKUP_BOUNDS_NS` (module doc).
    pub latency: HistogramSnapshot,
}

/// All counters of a plan, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinStatsSnapshot {
    /// Per view, in plan order.
    pub views: Vec<ViewStatsSnapshot>,
    /// Gather calls that completed.
    pub gathers: u64,
    /// Rows gathered by them.
    pub rows: u64,
    /// Time spent in them, nanoseconds.
    pub gather_ns: u64,
}

/// The live counters of a plan; see the module doc.
#[derive(Debug)]
pub struct JoinStats {
    /// View names, in plan order.
    names: Vec<String>,
    /// Per view, in plan order.
    views: Vec<ViewCounters>,
    gathers: AtomicU64,
    rows: AtomicU64,
    gather_ns: AtomicU64,
}

impl JoinStats {
    /// Zeroed counters for views `names`.
    pub(crate) fn new(names: Vec<String>) -> Self {
        JoinStats {
            views: names.iter().map(|_| ViewCounters::default()).collect(),
            names,
            gathers: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            gather_ns: AtomicU64::new(0),
        }
    }

    /// Adds one gather call's tally of view `view`.
    pub(crate) fn add_view(&self, view: usize, tally: &ViewTally) {
        let Some(counters) = self.views.get(view) else {
            return;
        };
        let add = |counter: &AtomicU64, value: u64| {
            if value > 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&counters.lookups, tally.lookups);
        add(&counters.hits, tally.hits);
        add(&counters.misses, tally.misses);
        add(&counters.stale, tally.stale);
        add(&counters.unavailable, tally.unavailable);
        add(&counters.rejected, tally.rejected);
    }

    /// Records one gather call's lookup latency of view `view` (module doc).
    #[inline]
    pub(crate) fn record_latency(&self, view: usize, latency: Duration) {
        if let Some(counters) = self.views.get(view) {
            let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            counters.latency.record(nanos);
        }
    }

    /// Adds one completed gather call.
    pub(crate) fn add_gather(&self, rows: usize, nanos: u64) {
        self.gathers.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.gather_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Every counter, read now (each is exact; they are not read at one instant together).
    pub fn snapshot(&self) -> JoinStatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        JoinStatsSnapshot {
            views: self
                .names
                .iter()
                .zip(&self.views)
                .map(|(name, counters)| ViewStatsSnapshot {
                    view: name.clone(),
                    lookups: read(&counters.lookups),
                    hits: read(&counters.hits),
                    misses: read(&counters.misses),
                    stale: read(&counters.stale),
                    unavailable: read(&counters.unavailable),
                    rejected: read(&counters.rejected),
                    latency: counters.latency.snapshot(),
                })
                .collect(),
            gathers: read(&self.gathers),
            rows: read(&self.rows),
            gather_ns: read(&self.gather_ns),
        }
    }
}
