"""The dashboard's data: the sidecar samples the snapshot every interval and keeps the last
minutes in memory; rates and latency percentiles come from the differences between samples
(percentiles interpolated within histogram buckets, as Prometheus' histogram_quantile)."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(slots=True, frozen=True)
class Sample:
    time: float
    models: dict[ModelKey, ModelSample]


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


def _delta(now: int, before: int) -> int:
    """Counter increase; a decrease means the serving process restarted from zero."""
    return now - before if now >= before else now


def _sample_of(stats: dict[str, Any]) -> ModelSample:
    outcomes = stats["outcomes"]
    requests = sum(outcomes.values())
    return ModelSample(
        requests=requests,
        failures=requests - outcomes.get("success", 0),
        latency_counts=tuple(stats["histograms"]["request"][0]),
        inferences=int(stats["inference_count"]),
        executions=int(stats["execution_count"]),
        pending=int(stats["pending"]),
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
        }


class History:
    """Samples kept for `keep_s` seconds; `dashboard()` is what /api/dashboard returns."""

    def __init__(self, source: SnapshotSource, keep_s: float, interval_s: float) -> None:
        self._source = source
        self._samples: deque[Sample] = deque(maxlen=max(2, int(keep_s / interval_s) + 1))
        self._lock = threading.Lock()

    def sample(self) -> None:
        """Takes one sample if the serving process wrote a new, fresh snapshot."""
        data = self._source.current()
        if data is None:
            return
        written = float(data["written_unix"])
        models = {
            (m["model"], m["version"]): _sample_of(m["stats"])
            for m in data["models"]
            if "stats" in m
        }
        with self._lock:
            if self._samples and self._samples[-1].time >= written:
                return
            self._samples.append(Sample(written, models))

    def dashboard(self) -> dict[str, Any]:
        data = self._source.current()
        with self._lock:
            samples = list(self._samples)
        bounds_s = [] if data is None else [b / 1e9 for b in data["duration_buckets_ns"]]
        models = []
        for entry in [] if data is None else data["models"]:
            key = (entry["model"], entry["version"])
            row: dict[str, Any] = {
                "model": entry["model"],
                "version": entry["version"],
                "state": entry["state"],
                "provider": entry.get("provider", ""),
            }
            if key in {k for s in samples for k in s.models}:
                row.update(self._series(key, samples, bounds_s))
            models.append(row)
        return {
            "serving": data is not None,
            "snapshot_age_s": None if data is None else self._source.age_s(data),
            "samples": len(samples),
            "models": models,
        }

    @staticmethod
    def _series(key: ModelKey, samples: list[Sample], bounds_s: Sequence[float]) -> dict[str, Any]:
        series: dict[str, list[Any]] = {
            name: []
            for name in ("t", "throughput", "errors_per_s", "p50_ms", "p99_ms", "batch_size")
        }
        present = [s for s in samples if key in s.models]
        for before, after in itertools.pairwise(present):
            interval = Interval.between(
                before.models[key], after.models[key], after.time - before.time
            )
            series["t"].append(after.time)
            for name, value in interval.figures(bounds_s).items():
                series[name].append(value)
        latest = present[-1].models[key]
        recent = present[-RECENT_SAMPLES - 1 :]
        current = (
            Interval.between(
                recent[0].models[key], latest, recent[-1].time - recent[0].time
            ).figures(bounds_s)
            if len(recent) > 1
            else {}
        )
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
