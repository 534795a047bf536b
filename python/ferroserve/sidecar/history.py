"""The dashboard's data: the sidecar samples the snapshot every interval and keeps the last
minutes in memory; rates and latency percentiles come from the differences between samples
(percentiles interpolated within histogram buckets, as Prometheus' histogram_quantile), the
online features' figures from feature_history, each version's drift panel from drift_panel
and each model's aliases, traffic policy and routed requests from routing_panel."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ferroserve.metrics.histogram import histogram_quantile
from ferroserve.sidecar.drift_panel import drift_panel
from ferroserve.sidecar.feature_history import (
    FeatureSample,
    feature_figures,
    feature_panel,
)
from ferroserve.sidecar.routing_panel import RoutingTrack, routing_panel
from ferroserve.sidecar.source import SnapshotSource

ModelKey = tuple[str, str]
# The headline figures are rates over the last few samples, not one noisy interval.
RECENT_SAMPLES = 5


@dataclass(slots=True, frozen=True)
class ModelSample:
    """One model version's cumulative counters at one moment."""

    requests: int
    failures: int
    latency_counts: tuple[int, ...]
    inferences: int
    executions: int
    pending: int
    features: FeatureSample | None = None
    """Lookup and gather counters, for a version with looked-up features."""


def _lookup_bounds_s(data: dict[str, Any]) -> list[float]:
    """The feature lookup latency buckets' bounds in seconds (none without features)."""
    return [bound / 1e9 for bound in data.get("feature_lookup_buckets_ns", [])]


def _delta(now: int, before: int) -> int:
    """Counter increase; a decrease means the serving process restarted from zero."""
    return now - before if now >= before else now


def _sample_of(model: dict[str, Any], lookup_bounds_s: Sequence[float]) -> ModelSample:
    stats = model["stats"]
    features = model.get("features")
    outcomes = stats["outcomes"]
    requests = sum(outcomes.values())
    return ModelSample(
        requests=requests,
        failures=requests - outcomes.get("success", 0),
        latency_counts=tuple(stats["histograms"]["request"][0]),
        inferences=int(stats["inference_count"]),
        executions=int(stats["execution_count"]),
        pending=int(stats["pending"]),
        features=None if features is None else FeatureSample.of(features, lookup_bounds_s),
    )


@dataclass(slots=True, frozen=True)
class Interval:
    """What happened to one model version between two samples."""

    seconds: float
    requests: int
    failures: int
    latency_counts: tuple[int, ...]
    inferences: int
    executions: int
    features: dict[str, float | None]
    """The FeatureSample.series_names() figures; empty without looked-up features."""

    @staticmethod
    def between(before: ModelSample, after: ModelSample, seconds: float) -> Interval:
        restarted = after.requests < before.requests
        return Interval(
            seconds,
            _delta(after.requests, before.requests),
            _delta(after.failures, before.failures),
            tuple(
                now if restarted else _delta(now, old)
                for now, old in zip(after.latency_counts, before.latency_counts, strict=True)
            ),
            _delta(after.inferences, before.inferences),
            _delta(after.executions, before.executions),
            feature_figures(before.features, after.features, seconds),
        )

    def figures(self, bounds_s: Sequence[float]) -> dict[str, float | None]:
        def ms(q: float) -> float | None:
            value = histogram_quantile(q, bounds_s, self.latency_counts)
            return None if value is None else value * 1e3

        return {
            "throughput": self.requests / self.seconds,
            "errors_per_s": self.failures / self.seconds,
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "batch_size": self.inferences / self.executions if self.executions else None,
            **self.features,
        }


SERIES = ("throughput", "errors_per_s", "p50_ms", "p99_ms", "batch_size")


class Track:
    """One model version's history: the figures of each interval between samples (computed
    once, when a sample arrives, so a dashboard request only copies them) and the last few raw
    samples for the headline figures."""

    def __init__(self, keep: int) -> None:
        self.points: deque[tuple[float, dict[str, float | None]]] = deque(maxlen=keep)
        self.recent: deque[tuple[float, ModelSample]] = deque(maxlen=RECENT_SAMPLES + 1)

    def add(self, time: float, sample: ModelSample, bounds_s: Sequence[float]) -> None:
        if self.recent:
            before_time, before = self.recent[-1]
            interval = Interval.between(before, sample, time - before_time)
            self.points.append((time, interval.figures(bounds_s)))
        self.recent.append((time, sample))

    def view(self, bounds_s: Sequence[float]) -> dict[str, Any]:
        (first_time, first), (last_time, latest) = self.recent[0], self.recent[-1]
        current = (
            Interval.between(first, latest, last_time - first_time).figures(bounds_s)
            if len(self.recent) > 1
            else {}
        )
        series: dict[str, list[Any]] = {"t": [t for t, _ in self.points]}
        names = SERIES + (latest.features.series_names() if latest.features is not None else ())
        for name in names:
            series[name] = [figures.get(name) for _, figures in self.points]
        return {
            "totals": {
                "requests": latest.requests,
                "failures": latest.failures,
                "inferences": latest.inferences,
                "executions": latest.executions,
                "pending": latest.pending,
            },
            "current": current,
            "series": series,
        }


class History:
    """Samples kept for `keep_s` seconds; `dashboard()` is what /api/dashboard returns."""

    def __init__(self, source: SnapshotSource, keep_s: float, interval_s: float) -> None:
        self._source = source
        self._keep = max(2, int(keep_s / interval_s) + 1)
        self._tracks: dict[ModelKey, Track] = {}
        self._routing = RoutingTrack(RECENT_SAMPLES + 1)
        self._last_written = 0.0
        self._samples = 0
        self._lock = threading.Lock()

    def sample(self) -> None:
        """Takes one sample if the serving process wrote a new, fresh snapshot."""
        data = self._source.current()
        if data is None:
            return
        written = float(data["written_unix"])
        bounds_s = [bound / 1e9 for bound in data["duration_buckets_ns"]]
        lookup_bounds_s = _lookup_bounds_s(data)
        with self._lock:
            if written <= self._last_written:
                return
            self._last_written = written
            self._samples += 1
            if "routing" in data:
                self._routing.add(written, data["routing"])
            present = set()
            for model in data["models"]:
                if "stats" not in model:
                    continue
                key = (model["model"], model["version"])
                present.add(key)
                track = self._tracks.setdefault(key, Track(self._keep))
                track.add(written, _sample_of(model, lookup_bounds_s), bounds_s)
            for gone in self._tracks.keys() - present:  # unloaded versions
                del self._tracks[gone]

    def dashboard(self) -> dict[str, Any]:
        data = self._source.current()
        bounds_s = [] if data is None else [b / 1e9 for b in data["duration_buckets_ns"]]
        lookup_bounds_s = [] if data is None else _lookup_bounds_s(data)
        models = []
        with self._lock:
            routing = (
                routing_panel(data["routing"], self._routing)
                if data is not None and "routing" in data
                else {}
            )
            for entry in [] if data is None else data["models"]:
                key = (entry["model"], entry["version"])
                row: dict[str, Any] = {
                    "model": entry["model"],
                    "version": entry["version"],
                    "state": entry["state"],
                    "provider": entry.get("provider", ""),
                    "aliases": sorted(
                        alias
                        for alias, version in routing.get(entry["model"], {})
                        .get("aliases", {})
                        .items()
                        if version == str(entry["version"])
                    ),
                }
                track = self._tracks.get(key)
                if track is not None:
                    row.update(track.view(bounds_s))
                if "features" in entry:
                    row["features"] = feature_panel(entry["features"], time.time(), lookup_bounds_s)
                if "drift" in entry:
                    row["drift"] = drift_panel(entry["drift"])
                models.append(row)
            samples = min(self._samples, self._keep)
        return {
            "serving": data is not None,
            "snapshot_age_s": None if data is None else self._source.age_s(data),
            "samples": samples,
            "models": models,
            "routing": routing,
        }
