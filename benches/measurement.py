"""What one benchmark run measured, and how a list of completed calls becomes that figure.
Shared by the load clients (perf_analyzer, the tritonclient fallback) and the in-process runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class MeasurementFailed(RuntimeError):
    """A run produced no usable figure (unstable, timed out, client error)."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured window. Times are nanoseconds since the epoch, the clock perf_analyzer stamps
    its requests with, so server CPU samples can be matched to the same window."""

    infer_per_s: float
    p50_ms: float
    p99_ms: float
    start_ns: int
    end_ns: int
    # inferences (rows, for batched calls) completed inside [start_ns, end_ns)
    inferences: int


@dataclass(frozen=True, slots=True)
class Call:
    """One completed call: when it ended and how long it took."""

    end_ns: int
    latency_ns: int


def summarize(calls: Sequence[Call], start_ns: int, end_ns: int, batch: int = 1) -> Measurement:
    """The figure for the calls that ended inside [start_ns, end_ns), `batch` rows each."""
    latencies = [call.latency_ns for call in calls if start_ns <= call.end_ns < end_ns]
    if not latencies:
        raise MeasurementFailed("no call completed inside the measurement window")
    p50, p99 = np.percentile(np.asarray(latencies, dtype=np.float64), [50, 99]) / 1e6
    inferences = len(latencies) * batch
    return Measurement(
        infer_per_s=inferences * 1e9 / (end_ns - start_ns),
        p50_ms=float(p50),
        p99_ms=float(p99),
        start_ns=start_ns,
        end_ns=end_ns,
        inferences=inferences,
    )
