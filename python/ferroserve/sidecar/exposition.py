"""Snapshot -> Prometheus metric families (base units, `_total` counters, histograms with fixed
buckets so they aggregate across replicas), labelled by model and version; the online
features' families are feature_exposition's, drift's drift_exposition's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ferroserve.metrics.histogram import duration_buckets
from ferroserve.sidecar.drift_exposition import drift_families
from ferroserve.sidecar.feature_exposition import feature_families
from ferroserve.sidecar.routing_exposition import routing_families
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
        yield from drift_families(data)
        yield from routing_families(data)
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


def rpc_families(data: dict[str, Any]) -> Iterator[Metric]:
    handled = CounterMetricFamily(
        "grpc_server_handled",
        "gRPC calls completed by the server, by method and status code.",
        labels=["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
    )
    for service, method, rpc_type, code, count in data["rpcs"]:
        handled.add_metric([service, method, rpc_type, code], float(count))
    yield handled
