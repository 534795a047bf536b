"""The online features' part of the metrics snapshot: per model version, the plan's lookup
counts, gather time and per-view lookup latency histograms (`FeaturePlan.stats`, Rust atomics),
each view's installed snapshot (`FeatureStore.status`), the reload counts of `ModelFeatures`,
and for a version with views in Redis the store's own counters and state
(`FeatureStore.redis_stats`). Called by the recorder on the event loop: nothing here reads a file
or waits on a lock a reload holds."""

from __future__ import annotations

from typing import Any

from ferroserve.features.redis_counters import REDIS_COUNTERS
from ferroserve.features.store import ModelFeatures

# How a lookup ended: the snapshot's `lookups` keys, the plan's statistic names beside them.
LOOKUP_RESULTS = (
    ("hit", "hits"),
    ("miss", "misses"),
    ("stale", "stale"),
    ("unavailable", "unavailable"),
)
# Where a view's rows come from (the snapshot's `store` of a view).
EMBEDDED = "embedded"
REDIS = "redis"


def feature_snapshot(features: ModelFeatures) -> dict[str, Any]:
    """{"gathers", "gathered_rows", "gather_ns", "reloads", "reload_failures", "views": [{"view",
    "store": "embedded" | "redis", "lookups": {result: rows}, "rejected", "latency": {"counts",
    "sum_ns"}, "loaded", "rows", "memory_bytes", "values_bytes", "duplicate_keys", "oldest_us",
    "newest_us", "generation"}], "redis": None | {"address", REDIS_COUNTERS..., "connected",
    "last_answer_us", "last_failure"}}; counters cumulative since the version loaded, latency
    counts per bucket of `_core.LOOKUP_BUCKETS_NS` (the last one +Inf)."""
    stats = features.plan.stats()
    settings = features.declaration.redis
    redis_views = frozenset(settings.views) if settings is not None else frozenset()
    views = []
    for status in features.status():
        counts = stats["views"].get(status["view"], {})
        view = {key: status[key] for key in _STORE_FIELDS}
        view["store"] = REDIS if status["view"] in redis_views else EMBEDDED
        view["lookups"] = {result: int(counts.get(name, 0)) for result, name in LOOKUP_RESULTS}
        view["rejected"] = int(counts.get("rejected", 0))
        buckets, sum_ns = counts.get("latency", ((), 0))
        view["latency"] = {"counts": [int(n) for n in buckets], "sum_ns": int(sum_ns)}
        views.append(view)
    redis = None
    store_stats = features.store.redis_stats() if settings is not None else None
    if settings is not None and store_stats is not None:
        redis = {
            "address": settings.address,
            **{key: int(store_stats[key]) for key in REDIS_COUNTERS},
            "connected": store_stats["connected"],
            "last_answer_us": store_stats["last_answer_us"],
            "last_failure": store_stats["last_failure"],
        }
    return {
        "gathers": int(stats["gathers"]),
        "gathered_rows": int(stats["rows"]),
        "gather_ns": int(stats["gather_ns"]),
        "reloads": features.reloads,
        "reload_failures": features.reload_failures,
        "views": views,
        "redis": redis,
    }


_STORE_FIELDS = (
    "view",
    "loaded",
    "rows",
    "memory_bytes",
    "values_bytes",
    "duplicate_keys",
    "oldest_us",
    "newest_us",
    "generation",
)
