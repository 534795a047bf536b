"""The online features' Prometheus families from the metrics snapshot (metrics/features.py):
per model version lookups, rejections, gathers, reloads and each view's lookup latency
histogram and installed snapshot, labelled model, version and (per view) view; and the Redis
store of a version with views in Redis (calls, rows by result, errors by kind, up).
exposition.SnapshotCollector yields them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ferroserve.metrics.histogram import duration_buckets

MODEL_LABELS = ("model", "version")

# (snapshot key of a view, metric name, help) of the per-view snapshot gauges.
SNAPSHOT_GAUGES = (
    ("rows", "ferroserve_feature_snapshot_rows", "Rows (distinct keys) in the view's snapshot."),
    (
        "memory_bytes",
        "ferroserve_feature_snapshot_bytes",
        "Bytes the view's snapshot holds: values, keys and index, event times.",
    ),
    (
        "values_bytes",
        "ferroserve_feature_snapshot_values_bytes",
        "Bytes of feature values alone in the view's snapshot.",
    ),
    (
        "duplicate_keys",
        "ferroserve_feature_snapshot_duplicate_keys",
        "Snapshot rows dropped at load because another row had the same key.",
    ),
)
# (snapshot key, metric name, help): event times, absent for a view without them.
EVENT_TIME_GAUGES = (
    (
        "oldest_us",
        "ferroserve_feature_snapshot_oldest_event_timestamp_seconds",
        "Event time of the oldest row in the view's snapshot (Unix seconds).",
    ),
    (
        "newest_us",
        "ferroserve_feature_snapshot_newest_event_timestamp_seconds",
        "Event time of the newest row in the view's snapshot (Unix seconds); "
        "time() minus it is how old the freshest data is.",
    ),
)


# How a row the Redis store was asked for ended (`ferroserve_feature_redis_rows_total{result}`):
# the snapshot's counter of each; they add up to every row asked. "bad": a stored value that
# could not be decoded or converted (served as missing).
REDIS_ROW_RESULTS = (
    ("found", "found"),
    ("missing", "missing"),
    ("unavailable", "unavailable"),
    ("bad", "bad_rows"),
)
# Why a Redis call failed (`ferroserve_feature_redis_errors_total{kind}`): the snapshot's counter.
REDIS_ERROR_KINDS = (
    ("timeout", "timeouts"),
    ("connection", "connection_errors"),
    ("protocol", "protocol_errors"),
)


def feature_families(data: dict[str, Any]) -> Iterator[Metric]:
    """The online features of every model version that has them (`features` in the snapshot:
    metrics/features.py). Lookup and rejection counts are rows; gathers are batches."""
    yield from _lookup_families(data)
    yield from redis_families(data)


def _lookup_families(data: dict[str, Any]) -> Iterator[Metric]:
    view_labels = [*MODEL_LABELS, "view"]
    lookups = CounterMetricFamily(
        "ferroserve_feature_lookups",
        "Rows looked up in a feature view, by result: hit, miss (no row for the key), stale "
        "(older than the view's max age) or unavailable (the store could not answer).",
        labels=[*view_labels, "result"],
    )
    rejections = CounterMetricFamily(
        "ferroserve_feature_rejections",
        "Rows a REJECT view could not serve (a miss, stale or unavailable row): their requests "
        "were answered NOT_FOUND.",
        labels=view_labels,
    )
    gathers = CounterMetricFamily(
        "ferroserve_feature_gathers",
        "Batches whose features were gathered (one gather per model execution).",
        labels=MODEL_LABELS,
    )
    gathered_rows = CounterMetricFamily(
        "ferroserve_feature_gathered_rows",
        "Request rows whose features were gathered.",
        labels=MODEL_LABELS,
    )
    gather_seconds = CounterMetricFamily(
        "ferroserve_feature_gather_seconds",
        "Time spent gathering features into batches (divide by gathers: time per batch).",
        labels=MODEL_LABELS,
    )
    reloads = CounterMetricFamily(
        "ferroserve_feature_reloads",
        "Snapshot loads by result: ok (installed; the load at model start included) or "
        "failed (the previous snapshot kept serving).",
        labels=[*MODEL_LABELS, "result"],
    )
    generation = GaugeMetricFamily(
        "ferroserve_feature_snapshot_generation",
        "The feature store's generation: each install of new snapshots increments it.",
        labels=MODEL_LABELS,
    )
    latency = HistogramMetricFamily(
        "ferroserve_feature_lookup_duration_seconds",
        "Lookup latency per view, one observation per gather call: an embedded view's gather "
        "of a batch (or of a request, for a model with Redis views), a Redis view's fetch "
        "(round trip) of a request.",
        labels=view_labels,
    )
    gauges = [
        (key, GaugeMetricFamily(name, text, labels=view_labels))
        for key, name, text in (*SNAPSHOT_GAUGES, *EVENT_TIME_GAUGES)
    ]
    for model in data["models"]:
        features = model.get("features")
        if features is None:
            continue
        labels = [model["model"], model["version"]]
        gathers.add_metric(labels, float(features["gathers"]))
        gathered_rows.add_metric(labels, float(features["gathered_rows"]))
        gather_seconds.add_metric(labels, features["gather_ns"] / 1e9)
        reloads.add_metric([*labels, "ok"], float(features["reloads"]))
        reloads.add_metric([*labels, "failed"], float(features["reload_failures"]))
        generations = [view["generation"] for view in features["views"]]
        generation.add_metric(labels, float(max(generations, default=0)))
        for view in features["views"]:
            per_view = [*labels, view["view"]]
            for result, rows in view["lookups"].items():
                lookups.add_metric([*per_view, result], float(rows))
            rejections.add_metric(per_view, float(view["rejected"]))
            counts = view["latency"]["counts"]
            latency.add_metric(
                per_view,
                duration_buckets(data["feature_lookup_buckets_ns"], counts),
                view["latency"]["sum_ns"] / 1e9,
            )
            if not view["loaded"]:
                continue
            for key, family in gauges:
                if view[key] is not None:
                    scale = 1e-6 if key.endswith("_us") else 1.0
                    family.add_metric(per_view, view[key] * scale)
    yield lookups
    yield rejections
    yield gathers
    yield gathered_rows
    yield gather_seconds
    yield reloads
    yield generation
    yield latency
    for _, family in gauges:
        yield family


def redis_families(data: dict[str, Any]) -> Iterator[Metric]:
    """The Redis store of every model version with views in Redis (`features.redis` in the
    snapshot): one store per version, so labels model and version only. Calls are fetch calls
    (one per Redis view per request); rows are the keys they asked for."""
    calls = CounterMetricFamily(
        "ferroserve_feature_redis_calls",
        "Fetch calls to the Redis feature store (one per Redis view per request; concurrent "
        "calls share pipelined round trips).",
        labels=MODEL_LABELS,
    )
    rows = CounterMetricFamily(
        "ferroserve_feature_redis_rows",
        "Rows (entity keys) asked of the Redis feature store, by result: found, missing, "
        "unavailable (their call timed out or failed) or bad (a stored value that could not be "
        "decoded or converted; served as missing).",
        labels=[*MODEL_LABELS, "result"],
    )
    errors = CounterMetricFamily(
        "ferroserve_feature_redis_errors",
        "Fetch calls to the Redis feature store that got no usable answer, by kind: timeout, "
        "connection (unreachable or broken connection) or protocol (an error or malformed "
        "answer); their rows were served as unavailable.",
        labels=[*MODEL_LABELS, "kind"],
    )
    round_trips = CounterMetricFamily(
        "ferroserve_feature_redis_round_trips",
        "Pipelined round trips to the Redis feature store: concurrent fetch calls share them, "
        "so calls / round trips is how many requests' lookups one round trip carried.",
        labels=MODEL_LABELS,
    )
    nulls = CounterMetricFamily(
        "ferroserve_feature_redis_null_values",
        "Features absent or null in rows found in Redis (their defaults were served).",
        labels=MODEL_LABELS,
    )
    up = GaugeMetricFamily(
        "ferroserve_feature_redis_up",
        "1 if Redis answered the store's last call, 0 if that call timed out or failed; absent "
        "before the first call.",
        labels=MODEL_LABELS,
    )
    for model in data["models"]:
        redis = (model.get("features") or {}).get("redis")
        if redis is None:
            continue
        labels = [model["model"], model["version"]]
        calls.add_metric(labels, float(redis["calls"]))
        round_trips.add_metric(labels, float(redis["round_trips"]))
        for result, key in REDIS_ROW_RESULTS:
            rows.add_metric([*labels, result], float(redis[key]))
        for kind, key in REDIS_ERROR_KINDS:
            errors.add_metric([*labels, kind], float(redis[key]))
        nulls.add_metric(labels, float(redis["null_values"]))
        if redis["connected"] is not None:
            up.add_metric(labels, 1.0 if redis["connected"] else 0.0)
    yield calls
    yield round_trips
    yield rows
    yield errors
    yield nulls
    yield up
