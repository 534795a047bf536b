"""The online features' part of the metrics snapshot: per model version, the plan's lookup
counts and gather time (`FeaturePlan.stats`, Rust atomics), each view's installed snapshot
(`FeatureStore.status`) and the reload counts of `ModelFeatures`. Called by the recorder on the
event loop: nothing here reads a file or waits on a lock a reload holds."""

from __future__ import annotations

from typing import Any

from ferroserve.features.store import ModelFeatures

# How a lookup ended: the snapshot's `lookups` keys, the plan's statistic names beside them.
LOOKUP_RESULTS = (
    ("hit", "hits"),
    ("miss", "misses"),
    ("stale", "stale"),
    ("unavailable", "unavailable"),
)


def feature_snapshot(features: ModelFeatures) -> dict[str, Any]:
    """{"gathers", "gathered_rows", "gather_ns", "reloads", "reload_failures", "views": [{"view",
    "lookups": {result: rows}, "rejected", "loaded", "rows", "memory_bytes", "values_bytes",
    "duplicate_keys", "oldest_us", "newest_us", "generation"}]}; counters cumulative since the
    version loaded."""
    stats = features.plan.stats()
    views = []
    for status in features.status():
        counts = stats["views"].get(status["view"], {})
        view = {key: status[key] for key in _STORE_FIELDS}
        view["lookups"] = {result: int(counts.get(name, 0)) for result, name in LOOKUP_RESULTS}
        view["rejected"] = int(counts.get("rejected", 0))
        views.append(view)
    return {
        "gathers": int(stats["gathers"]),
        "gathered_rows": int(stats["rows"]),
        "gather_ns": int(stats["gather_ns"]),
        "reloads": features.reloads,
        "reload_failures": features.reload_failures,
        "views": views,
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
