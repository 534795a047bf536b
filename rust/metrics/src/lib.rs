//! Fixed-bucket duration histograms in the Prometheus style, shared by the crates that measure
//! serving: the batcher (request, queue and compute times over `DURATION_BOUNDS_NS`, defined
//! there) and the feature join (lookup times per view, `LOOKUP_BOUNDS_NS` in
//! `ferroserve-features`). An observation is a search over a handful of bounds and two relaxed
//! atomic adds: no lock and no allocation, so the hot path pays a few nanoseconds and a scrape
//! never waits on it. The exporter (the metrics sidecar) turns the per-bucket counts into
//! cumulative `le` buckets.

use std::sync::atomic::{AtomicU64, Ordering};

/// A duration histogram over fixed upper bounds (nanoseconds, inclusive: Prometheus `le`),
/// with a last, unbounded bucket (`+Inf`) after them.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds of the bounded buckets, strictly increasing.
    bounds_ns: &'static [u64],
    /// Events per bucket (not cumulative), one more than `bounds_ns`; the last one is `+Inf`.
    /// Allocated once, at construction.
    buckets: Box<[AtomicU64]>,
    /// Total of the recorded durations in nanoseconds.
    sum_ns: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds_ns` (strictly increasing; checked in debug builds: the
    /// bounds are constants, so a wrong set is a bug caught by any test that builds one).
    pub fn new(bounds_ns: &'static [u64]) -> Self {
        debug_assert!(
            bounds_ns.windows(2).all(|pair| pair[0] < pair[1]),
            "histogram bounds must increase strictly. This is a bug."
        );
        Histogram {
            bounds_ns,
            buckets: (0..=bounds_ns.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one event of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64) {
        let bucket = self.bounds_ns.partition_point(|&bound| bound < ns);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The upper bounds of its bounded buckets, nanoseconds.
    pub fn bounds_ns(&self) -> &'static [u64] {
        self.bounds_ns
    }

    /// The current values. Each bucket is read atomically; a concurrent record may show in
    /// the buckets and not yet in the sum, which a scrape a moment later corrects.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Events per bucket, not cumulative, one more than the histogram's bounds (the last is
    /// `+Inf`).
    pub counts: Vec<u64>,
    /// Total of the recorded durations in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// Events recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: [u64; 3] = [10, 100, 1_000];

    #[test]
    fn bounds_are_inclusive_upper_limits() {
        let histogram = Histogram::new(&BOUNDS);
        for ns in [0, 10, 11, 100, 1_000, 1_001, u64::MAX / 2] {
            histogram.record(ns);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts, [2, 2, 1, 2]);
        assert_eq!(snapshot.count(), 7);
        assert_eq!(
            snapshot.sum_ns,
            10 + 11 + 100 + 1_000 + 1_001 + u64::MAX / 2
        );
        assert_eq!(histogram.bounds_ns(), BOUNDS);
    }

    #[test]
    fn no_bounds_is_one_inf_bucket() {
        let histogram = Histogram::new(&[]);
        histogram.record(5);
        assert_eq!(histogram.snapshot().counts, [1]);
    }

    #[test]
    #[should_panic(expected = "increase strictly")]
    #[cfg(debug_assertions)]
    fn bounds_out_of_order_are_a_bug() {
        static WRONG: [u64; 2] = [100, 10];
        let _ = Histogram::new(&WRONG);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let histogram = Histogram::new(&BOUNDS);
        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let histogram = &histogram;
                scope.spawn(move || {
                    for i in 0..10_000u64 {
                        histogram.record((i + thread) % 2_000);
                    }
                });
            }
        });
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 40_000);
        // Each thread's values cycle through 0..2000 five times; 999 of each cycle are > 1000.
        assert_eq!(snapshot.counts[3], 4 * 5 * 999);
    }
}
