"""Snapshot -> Prometheus metric families (base units, `_total` counters, histograms with fixed
buckets so they aggregate across replicas), labelled by model and version (and by view for the
online features)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ferroserve.sidecar.source import SnapshotSource

MODEL_LABELS = ("model", "version")
# Rows per execution; fixed bounds so every scrape has the same buckets.
BATCH_SIZE_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# (snapshot histogram key, metric name, help)
DURATION_HISTOGRAMS = (
    (
        "request",
        "ferroserve_request_duration_seconds",
        "End-to-end time of inference requests in the server (failed ones included).",
    ),
    (
        "queue",
        "ferroserve_queue_duration_seconds",
        "Time requests waited in the batcher's queue before running.",
    ),
    (
        "compute_input",
        "ferroserve_compute_input_duration_seconds",
        "Time per execution preparing the batch's inputs.",
    ),
    (
        "compute_infer",
        "ferroserve_compute_infer_duration_seconds",
        "Time per execution in onnxruntime.",
    ),
    (
        "compute_output",
        "ferroserve_compute_output_duration_seconds",
        "Time per execution splitting outputs back per request.",
    ),
)


def duration_buckets(bounds_ns: Sequence[int], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets from per-bucket counts (the last one is +Inf)."""
    buckets = []
    total = 0
    for bound_ns, count in zip(bounds_ns, counts, strict=False):
        total += count
        buckets.append((repr(bound_ns / 1e9), float(total)))
    total += sum(counts[len(bounds_ns) :])
    buckets.append(("+Inf", float(total)))
    return buckets


def batch_size_buckets(executions_by_size: dict[int, int]) -> list[tuple[str, float]]:
    buckets = []
    for bound in BATCH_SIZE_BOUNDS:
        count = sum(n for size, n in executions_by_size.items() if size <= bound)
        buckets.append((repr(float(bound)), float(count)))
    buckets.append(("+Inf", float(sum(executions_by_size.values()))))
    return buckets


def executions_by_size(stats: dict[str, Any]) -> dict[int, int]:
    return {
        int(size): int(entry["compute_infer"][0]) for size, entry in stats["batch_stats"].items()
    }


class SnapshotCollector(Collector):
    """Exports the newest fresh snapshot; a stale one only shows in the age gauge."""

    def __init__(self, source: SnapshotSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        data = self._source.latest()
        if data is None:
            return
        age = GaugeMetricFamily(
            "ferroserve_metrics_snapshot_age_seconds",
            "Seconds since the serving process last wrote its metrics snapshot.",
        )
        age.add_metric([], self._source.age_s(data))
        yield age
        if self._source.age_s(data) > self._source.stale_after_s:
            return
        yield from model_families(data)
        yield from feature_families(data)
        yield from rpc_families(data)


def model_families(data: dict[str, Any]) -> Iterator[Metric]:
    bounds = data["duration_buckets_ns"]
    outcomes = data["outcomes"]
    info = GaugeMetricFamily(
        "ferroserve_model_info",
        "Every model version the server knows: its state and execution provider (value 1).",
        labels=[*MODEL_LABELS, "state", "provider"],
    )
    load = GaugeMetricFamily(
        "ferroserve_model_load_duration_seconds",
        "How long the model version took to load and warm up.",
        labels=MODEL_LABELS,
    )
    histograms = {
        key: HistogramMetricFamily(name, text, labels=MODEL_LABELS)
        for key, name, text in DURATION_HISTOGRAMS
    }
    batch = HistogramMetricFamily(
        "ferroserve_batch_size", "Rows per model execution.", labels=MODEL_LABELS
    )
    inferences = CounterMetricFamily(
        "ferroserve_inferences", "Rows inferred (Triton inference_count).", labels=MODEL_LABELS
    )
    executions = CounterMetricFamily(
        "ferroserve_executions",
        "Model executions, one per batch (Triton execution_count).",
        labels=MODEL_LABELS,
    )
    requests = CounterMetricFamily(
        "ferroserve_requests", "Inference requests finished.", labels=MODEL_LABELS
    )
    failures = CounterMetricFamily(
        "ferroserve_request_failures",
        "Inference requests that failed, by reason.",
        labels=[*MODEL_LABELS, "reason"],
    )
    pending = GaugeMetricFamily(
        "ferroserve_pending_requests", "Requests waiting in the queue.", labels=MODEL_LABELS
    )
    for model in data["models"]:
        labels = [model["model"], model["version"]]
        info.add_metric([*labels, model["state"], model.get("provider", "")], 1.0)
        stats = model.get("stats")
        if stats is None:
            continue
        load.add_metric(labels, float(model["load_seconds"]))
        for key, family in histograms.items():
            counts, sum_ns = stats["histograms"][key]
            family.add_metric(labels, duration_buckets(bounds, counts), sum_ns / 1e9)
        batch.add_metric(
            labels,
            batch_size_buckets(executions_by_size(stats)),
            float(stats["inference_count"]),
        )
        inferences.add_metric(labels, float(stats["inference_count"]))
        executions.add_metric(labels, float(stats["execution_count"]))
        by_outcome = stats["outcomes"]
        requests.add_metric(labels, float(sum(by_outcome.values())))
        for reason in outcomes:
            if reason != "success":
                failures.add_metric([*labels, reason], float(by_outcome.get(reason, 0)))
        pending.add_metric(labels, float(stats["pending"]))
    yield info
    yield load
    yield from histograms.values()
    yield batch
    yield inferences
    yield executions
    yield requests
    yield failures
    yield pending


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


def feature_families(data: dict[str, Any]) -> Iterator[Metric]:
    """The online features of every model version that has them (`features` in the snapshot:
    metrics/features.py). Lookup and rejection counts are rows; gathers are batches."""
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
    for _, family in gauges:
        yield family


def rpc_families(data: dict[str, Any]) -> Iterator[Metric]:
    handled = CounterMetricFamily(
        "grpc_server_handled",
        "gRPC calls completed by the server, by method and status code.",
        labels=["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
    )
    for service, method, rpc_type, code, count in data["rpcs"]:
        handled.add_metric([service, method, rpc_type, code], float(count))
    yield handled
