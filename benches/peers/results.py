"""What one run measured: a row per (server row, model, rows per request, concurrency), and the
look-ups the report, the targets and the plots share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from measurement import Measurement

from .servers import ORT_SAME, REFERENCE, Target

IN_PROCESS = Target("onnxruntime in-process", REFERENCE, "in-process", ort_threads=ORT_SAME)


@dataclass(frozen=True, slots=True)
class Result:
    """One measured line. `measurement.infer_per_s` counts requests; `rows` per request."""

    target: Target
    model: str
    rows: int
    concurrency: int
    measurement: Measurement | None
    cpu_us_per_request: float | None = None
    peak_rss_mib: float | None = None
    error: str = ""
    # Share of the client's cores it kept busy over the window (1.0: all, the whole time).
    client_busy: float | None = None

    @property
    def rows_per_s(self) -> float | None:
        return None if self.measurement is None else self.measurement.infer_per_s * self.rows


def find(
    results: Sequence[Result], label: str, model: str, rows: int, concurrency: int
) -> Result | None:
    """The measured (not failed) row, if any."""
    for result in results:
        if (result.target.label, result.model, result.rows, result.concurrency) == (
            label,
            model,
            rows,
            concurrency,
        ) and result.measurement is not None:
            return result
    return None


def best(
    results: Sequence[Result],
    kind: str,
    model: str,
    rows: int,
    concurrency: int,
    streaming: bool = False,
) -> Result | None:
    """The highest-throughput measured row of a kind (e.g. the best peer) at one point."""
    candidates = [
        result
        for result in results
        if result.target.kind == kind
        and result.target.streaming == streaming
        and (result.model, result.rows, result.concurrency) == (model, rows, concurrency)
        and result.measurement is not None
    ]
    return max(candidates, key=lambda r: r.rows_per_s or 0.0, default=None)
