//! Fixed-bucket duration histograms in the Prometheus style, recorded with two relaxed atomic
//! adds and no lock, so the hot path pays a few nanoseconds and a scrape never waits on it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (inclusive, Prometheus `le`) of the duration buckets in nanoseconds: fine below
/// a few milliseconds, where a serving path spends its time, up to 10 s. A last, unbounded
/// bucket (`+Inf`) follows them.
pub const DURATION_BOUNDS_NS: [u64; 27] = [
    50_000,
    75_000,
    100_000,
    150_000,
    200_000,
    300_000,
    400_000,
    500_000,
    750_000,
    1_000_000,
    1_500_000,
    2_000_000,
    3_000_000,
    5_000_000,
    7_500_000,
    10_000_000,
    15_000_000,
    25_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Number of buckets, `+Inf` included.
const BUCKETS: usize = DURATION_BOUNDS_NS.len() + 1;

/// A duration histogram over `DURATION_BOUNDS_NS`.
#[derive(Debug)]
pub struct Histogram {
    /// Events per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS],
    /// Total of the recorded durations in nanoseconds.
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one event of `ns` nanoseconds.
    pub fn record(&self, ns: u64) {
        let bucket = DURATION_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
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
    /// Events per bucket, not cumulative, one more than `DURATION_BOUNDS_NS` (the last is
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

    #[test]
    fn bounds_are_inclusive_upper_limits() {
        let histogram = Histogram::default();
        histogram.record(0);
        histogram.record(50_000); // exactly the first bound: first bucket
        histogram.record(50_001);
        histogram.record(10_000_000_000);
        histogram.record(10_000_000_001); // +Inf
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts.len(), DURATION_BOUNDS_NS.len() + 1);
        assert_eq!(snapshot.counts[0], 2);
        assert_eq!(snapshot.counts[1], 1);
        assert_eq!(snapshot.counts[DURATION_BOUNDS_NS.len() - 1], 1);
        assert_eq!(snapshot.counts[DURATION_BOUNDS_NS.len()], 1);
        assert_eq!(snapshot.count(), 5);
        assert_eq!(
            snapshot.sum_ns,
            50_000 + 50_001 + 10_000_000_000 + 10_000_000_001
        );
    }

    #[test]
    fn bounds_increase_strictly() {
        assert!(DURATION_BOUNDS_NS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let histogram = Histogram::default();
        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let histogram = &histogram;
                scope.spawn(move || {
                    for i in 0..10_000u64 {
                        histogram.record((i * 1_000 + thread) % 20_000_000);
                    }
                });
            }
        });
        assert_eq!(histogram.snapshot().count(), 40_000);
    }
}
