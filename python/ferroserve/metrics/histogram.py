"""Histogram arithmetic on the snapshot's fixed-bucket histograms (per-bucket counts over
upper bounds in ns, a last +Inf bucket): Prometheus' cumulative `le` buckets for the sidecar's
exposition, and quantiles interpolated within a bucket as Prometheus' histogram_quantile does,
for the dashboard and `ferroserve features status`. Imports nothing heavy: the sidecar uses it
too."""

from __future__ import annotations

from collections.abc import Sequence


def duration_buckets(bounds_ns: Sequence[int], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets (`le` in seconds) from per-bucket counts (the last one is
    +Inf)."""
    buckets = []
    total = 0
    for bound_ns, count in zip(bounds_ns, counts, strict=False):
        total += count
        buckets.append((repr(bound_ns / 1e9), float(total)))
    total += sum(counts[len(bounds_ns) :])
    buckets.append(("+Inf", float(total)))
    return buckets


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float | None:
    """The q-quantile of events in per-bucket `counts` (the last bucket is +Inf), linearly
    interpolated inside its bucket; None without events. In the +Inf bucket: the last bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0
    for index, count in enumerate(counts):
        if count > 0 and cumulative + count >= rank:
            if index >= len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index > 0 else 0.0
            return lower + (bounds[index] - lower) * (rank - cumulative) / count
        cumulative += count
    return bounds[-1]
