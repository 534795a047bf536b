//! The bucket bounds of the batcher's duration histograms (request, queue and compute times);
//! the histogram itself is `ferroserve-metrics`' fixed-bucket one.

pub use ferroserve_metrics::{Histogram, HistogramSnapshot};

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

/// A histogram over `DURATION_BOUNDS_NS`.
pub(crate) fn duration_histogram() -> Histogram {
    Histogram::new(&DURATION_BOUNDS_NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_upper_limits() {
        let histogram = duration_histogram();
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
}
