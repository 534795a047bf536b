"""The online features on the built-in dashboard: from two samples of a model version's
`features` snapshot entry (metrics/features.py), lookups per second by result, the hit ratio,
the mean gather time per batch, each view's lookup latency p99 (from its histogram's
difference) and, for a version with Redis views, the store's calls and errors per second; from
the latest one, a row per view (store, snapshot rows, bytes, age of the newest event,
generation, totals, lookup p50/p99 since load) and the Redis store's state. history.py keeps
the samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ferroserve.metrics.histogram import histogram_quantile

RESULTS = ("hit", "miss", "stale", "unavailable")
# What a dashboard point holds for a model version with features (history.SERIES has the rest);
# each view adds LATENCY_SERIES + its name. The Redis figures are None without Redis views.
FEATURE_SERIES = (
    "feature_lookups_per_s",
    "feature_hits_per_s",
    "feature_misses_per_s",
    "feature_stale_per_s",
    "feature_unavailable_per_s",
    "feature_hit_ratio",
    "feature_gather_us",
    "feature_redis_calls_per_s",
    "feature_redis_errors_per_s",
)
LATENCY_SERIES = "feature_lookup_p99_ms:"
# The Redis store's failed calls, by the snapshot's counter of each kind.
REDIS_ERRORS = ("timeouts", "connection_errors", "protocol_errors")


@dataclass(slots=True, frozen=True)
class FeatureSample:
    """A model version's cumulative feature counters at one moment, every view together, and
    each view's lookup latency histogram."""

    lookups: tuple[int, ...]
    """Rows by result, in RESULTS order."""
    rejected: int
    gathers: int
    gather_ns: int
    latency: tuple[tuple[str, tuple[int, ...]], ...]
    """Per view: its name and lookup latency counts per bucket of `lookup_bounds_s`."""
    lookup_bounds_s: tuple[float, ...]
    redis: tuple[int, int] | None
    """The Redis store's (calls, failed calls); None without Redis views."""

    @staticmethod
    def of(features: dict[str, Any], lookup_bounds_s: Sequence[float]) -> FeatureSample:
        views = features["views"]
        redis = features.get("redis")
        return FeatureSample(
            tuple(sum(int(view["lookups"][r]) for view in views) for r in RESULTS),
            sum(int(view["rejected"]) for view in views),
            int(features["gathers"]),
            int(features["gather_ns"]),
            tuple((view["view"], tuple(view["latency"]["counts"])) for view in views),
            tuple(lookup_bounds_s),
            None
            if redis is None
            else (int(redis["calls"]), sum(int(redis[key]) for key in REDIS_ERRORS)),
        )

    def series_names(self) -> tuple[str, ...]:
        """FEATURE_SERIES and each view's latency series."""
        return FEATURE_SERIES + tuple(f"{LATENCY_SERIES}{view}" for view, _ in self.latency)


def _delta(now: int, before: int) -> int:
    """Counter increase; a decrease means the serving process (or the version) restarted."""
    return now - before if now >= before else now


def feature_figures(
    before: FeatureSample | None, after: FeatureSample | None, seconds: float
) -> dict[str, float | None]:
    """The series_names() figures between two samples; empty without features in both."""
    if before is None or after is None or seconds <= 0:
        return {}
    rows = [_delta(a, b) for a, b in zip(after.lookups, before.lookups, strict=True)]
    gathers = _delta(after.gathers, before.gathers)
    gather_ns = _delta(after.gather_ns, before.gather_ns)
    figures: dict[str, float | None] = {
        f"feature_{name}_per_s": count / seconds
        for name, count in zip(("hits", "misses", "stale", "unavailable"), rows, strict=True)
    }
    figures["feature_lookups_per_s"] = sum(rows) / seconds
    figures["feature_hit_ratio"] = rows[0] / sum(rows) if sum(rows) else None
    figures["feature_gather_us"] = gather_ns / gathers / 1e3 if gathers else None
    if before.redis is not None and after.redis is not None:
        calls, errors = (_delta(a, b) for a, b in zip(after.redis, before.redis, strict=True))
        figures["feature_redis_calls_per_s"] = calls / seconds
        figures["feature_redis_errors_per_s"] = errors / seconds
    else:
        figures["feature_redis_calls_per_s"] = figures["feature_redis_errors_per_s"] = None
    earlier = dict(before.latency)
    for view, counts in after.latency:
        old = earlier.get(view, ())
        restarted = sum(counts) < sum(old)
        recent = [
            now if restarted else _delta(now, was)
            for now, was in zip(counts, old or [0] * len(counts), strict=True)
        ]
        p99 = histogram_quantile(0.99, after.lookup_bounds_s, recent)
        figures[f"{LATENCY_SERIES}{view}"] = None if p99 is None else p99 * 1e3
    return figures


def _ms(q: float, bounds_s: Sequence[float], counts: Sequence[int]) -> float | None:
    value = histogram_quantile(q, bounds_s, counts)
    return None if value is None else value * 1e3


def _redis_panel(redis: dict[str, Any], now_unix: float) -> dict[str, Any]:
    failure = redis["last_failure"]
    return {
        "address": redis["address"],
        "connected": redis["connected"],
        "calls": int(redis["calls"]),
        "unavailable": int(redis["unavailable"]),
        "bad_rows": int(redis["bad_rows"]),
        **{key: int(redis[key]) for key in REDIS_ERRORS},
        "errors": sum(int(redis[key]) for key in REDIS_ERRORS),
        "last_error": None
        if failure is None
        else {
            "kind": failure["kind"],
            "message": failure["message"],
            "age_s": now_unix - failure["at_us"] / 1e6,
        },
    }


def feature_panel(
    features: dict[str, Any], now_unix: float, lookup_bounds_s: Sequence[float]
) -> dict[str, Any]:
    """What the card's features section shows from the latest snapshot: totals, a row per
    view, and the Redis store (None without Redis views)."""
    views = []
    for view in features["views"]:
        lookups = sum(int(view["lookups"][r]) for r in RESULTS)
        newest = view["newest_us"]
        counts = view["latency"]["counts"]
        views.append(
            {
                "view": view["view"],
                "store": view["store"],
                "loaded": bool(view["loaded"]),
                "rows": int(view["rows"]),
                "memory_bytes": int(view["memory_bytes"]),
                "newest_event_age_s": None if newest is None else now_unix - newest / 1e6,
                "generation": int(view["generation"]),
                "lookups": lookups,
                "hit_ratio": int(view["lookups"]["hit"]) / lookups if lookups else None,
                **{r: int(view["lookups"][r]) for r in RESULTS[1:]},
                "rejected": int(view["rejected"]),
                "lookup_p50_ms": _ms(0.5, lookup_bounds_s, counts),
                "lookup_p99_ms": _ms(0.99, lookup_bounds_s, counts),
            }
        )
    redis = features.get("redis")
    return {
        "reloads": int(features["reloads"]),
        "reload_failures": int(features["reload_failures"]),
        "views": views,
        "redis": None if redis is None else _redis_panel(redis, now_unix),
    }
