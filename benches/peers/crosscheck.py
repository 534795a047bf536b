"""Validation of the load client: Triton's C++ perf_analyzer (installed by the batching
benchmark's helper, pinned to the client's core like the native client) re-measures the servers
that answer the ModelConfig RPC it needs, ferroserve and the Python transport ceiling, at the
MLP points the targets use, in the same run. Each perf_analyzer row is measured between two
native-client runs of the same row, seconds apart, so a load change on the machine moves both
clients alike; the native client's figure (the mean of its two runs) must agree within 10%
(infer/s) on ferroserve's unary rows. The server's CPU per request under each client is shown
too: when it differs, the clients load the server differently, and the figures may differ for
that reason. The peers cannot be measured this way, which is why the native client exists."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from batching import Plan as BatchingPlan
from batching import perf_analyzer
from batching_load import Analyzer
from load_client import LoadSettings
from server_process import CpuSampler

from .repositories import NO_BATCHING
from .results import Result
from .servers import CEILING, FERROSERVE, OURS, Running, Target

CROSSCHECK = "perf_analyzer"
POINTS = (("mlp", 1, 1), ("mlp", 1, 16), ("mlp", 64, 16))
# How far the native client's infer/s may be from perf_analyzer's on ferroserve.
AGREEMENT = 0.10
QUICK_SETTINGS = LoadSettings(window_ms=1500, max_trials=6, stability_pct=30)
FULL_SETTINGS = LoadSettings(window_ms=2000, max_trials=10, stability_pct=20)
ROWS = (
    Target("ferroserve (dynamic batching)", CROSSCHECK, FERROSERVE),
    Target("ferroserve (no batching)", CROSSCHECK, FERROSERVE, "{model}" + NO_BATCHING),
    Target("ferroserve stream (dynamic batching)", CROSSCHECK, FERROSERVE, streaming=True),
    Target("transport ceiling", CROSSCHECK, CEILING + "-{model}", runs_model=False),
)


def install(tools: Path, quick: bool, workdir: Path) -> Analyzer | str:
    """perf_analyzer ready to run, or why not (the rest of the benchmark runs regardless)."""
    settings = QUICK_SETTINGS if quick else FULL_SETTINGS
    try:
        return perf_analyzer(tools, BatchingPlan((), settings), workdir)
    except (OSError, IndexError, subprocess.SubprocessError) as error:
        return f"perf_analyzer could not be installed or run: {error}"


def measure(
    analyzer: Analyzer,
    native: Callable[[Target, str, int, int], Result],
    running: dict[str, Running],
    models: Sequence[str],
) -> list[Agreement]:
    """Every row at each point whose model this run measured: native client, perf_analyzer,
    native client, back to back. `native(target, model, rows, concurrency)` measures one row
    with the native client."""
    pairs = []
    for model, per_request, concurrency in POINTS:
        if model not in models:
            continue
        for target in ROWS:
            server = running.get(target.process_for(model, per_request))
            if server is None:
                continue
            native_row = replace(target, kind=OURS)
            before = native(native_row, model, per_request, concurrency)
            checked = _analyzer_row(analyzer, server, target, model, per_request, concurrency)
            after = native(native_row, model, per_request, concurrency)
            pairs.append(Agreement(checked, (before, after)))
            print(f"perf_analyzer {model} rows={per_request} c={concurrency} {target.label}: "
                  f"ratio {pair_text(pairs[-1])}", file=sys.stderr)  # fmt: skip
    return pairs


def _analyzer_row(
    analyzer: Analyzer,
    server: Running,
    target: Target,
    model: str,
    per_request: int,
    concurrency: int,
) -> Result:
    """perf_analyzer's figure for one row, with the server tree's CPU per request."""
    with CpuSampler(server.pid) as cpu:
        run = analyzer.measure(
            server.port, target.model_for(model), concurrency, per_request, target.streaming
        )
    m = run.measurement
    if m is None:
        return Result(target, model, per_request, concurrency, None, error=run.error)
    # perf_analyzer's infer/s counts rows; the tables count requests (its `inferences`, read
    # from the profile export, already count requests).
    m = replace(m, infer_per_s=m.infer_per_s / per_request)
    cpu_us = None
    with contextlib.suppress(ValueError):
        cpu_us = cpu.cpu_s_between(m.start_ns, m.end_ns) * 1e6 / max(1, m.inferences)
    return Result(target, model, per_request, concurrency, m, cpu_us)


@dataclass(frozen=True, slots=True)
class Agreement:
    """One row measured by perf_analyzer and, just before and after, by the native client."""

    analyzer: Result
    native: tuple[Result, Result]

    @property
    def native_infer_per_s(self) -> float | None:
        rates = [r.measurement.infer_per_s for r in self.native if r.measurement is not None]
        return sum(rates) / len(rates) if len(rates) == len(self.native) else None

    @property
    def ratio(self) -> float | None:
        """Native client's infer/s (mean of its two runs) over perf_analyzer's."""
        native = self.native_infer_per_s
        if native is None or self.analyzer.measurement is None:
            return None
        return native / self.analyzer.measurement.infer_per_s

    @property
    def passed(self) -> bool:
        ratio = self.ratio
        return ratio is not None and abs(ratio - 1) <= AGREEMENT

    @property
    def decides(self) -> bool:
        """ferroserve's unary rows decide the validation. The Python ceiling and the stream
        rows are shown for information: perf_analyzer's streaming costs ferroserve about twice
        the CPU per message that the native client's does (65-71 vs 35-36 µs at MLP c=16, one
        core), so there the two clients measure different loads."""
        target = self.analyzer.target
        return target.label.startswith("ferroserve") and not target.streaming


def pair_text(pair: Agreement) -> str:
    ratio = pair.ratio
    if ratio is None:
        return "-"
    return f"{ratio:.2f} ({('PASS' if pair.passed else 'FAIL') if pair.decides else 'info'})"


def verdict(pairs: Sequence[Agreement]) -> str:
    """One line: PASS when every deciding row (ferroserve, unary) agrees within AGREEMENT."""
    deciding = [pair for pair in pairs if pair.decides]
    ratios = [pair.ratio for pair in deciding if pair.ratio is not None]
    if not ratios:
        return "NOT MEASURED: no ferroserve row was measured by both clients"
    passed = sum(pair.passed for pair in deciding)
    outcome = "PASS" if passed == len(deciding) else "FAIL"
    return (
        f"{outcome}: native client vs perf_analyzer on ferroserve (unary), {passed} of "
        f"{len(deciding)} "
        f"rows within {AGREEMENT:.0%} (infer/s ratio {min(ratios):.2f}-{max(ratios):.2f})"
    )


def table(pairs: Sequence[Agreement]) -> list[str]:
    """perf_analyzer's figures beside the native client's two runs of the same row."""
    lines = [
        "| server | rows/req | c | perf_analyzer infer/s | p50 ms | p99 ms | server CPU µs/infer "
        "| native client infer/s (before / after) | p50 ms | p99 ms | server CPU µs/infer "
        "| native / perf_analyzer |",
        "|" + "---|" * 12,
    ]
    for pair in pairs:
        checked = pair.analyzer
        cells = [checked.target.label, str(checked.rows), str(checked.concurrency)]
        cells += _figures([checked])
        cells += _figures(list(pair.native))
        cells.append(pair_text(pair))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _figures(rows: list[Result]) -> list[str]:
    """infer/s (each run), p50, p99 and server CPU (the mean over the runs), or why none."""
    measured = [(r, r.measurement) for r in rows if r.measurement is not None]
    if len(measured) < len(rows):
        error = next(r.error for r in rows if r.measurement is None).replace("|", "/")[:120]
        return [f"failed: {error}", "", "", ""]
    cpu = [r.cpu_us_per_request for r, _ in measured if r.cpu_us_per_request is not None]
    return [
        " / ".join(f"{m.infer_per_s:,.0f}" for _, m in measured),
        f"{sum(m.p50_ms for _, m in measured) / len(measured):.2f}",
        f"{sum(m.p99_ms for _, m in measured) / len(measured):.2f}",
        f"{sum(cpu) / len(cpu):,.0f}" if cpu else "",
    ]
