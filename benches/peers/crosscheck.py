"""A cross-check of the Python client: Triton's C++ perf_analyzer (installed by the batching
benchmark's helper) on the servers that answer the ModelConfig RPC it needs, ferroserve and the
transport ceiling, at the MLP points the targets use. It shows how much of each latency is the
client's; the peers cannot be measured this way, so these rows stay out of the comparison."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from batching import Plan as BatchingPlan
from batching import perf_analyzer
from batching_load import Analyzer
from load_client import LoadSettings

from .repositories import NO_BATCHING
from .results import Result
from .servers import CEILING, FERROSERVE, Target

CROSSCHECK = "perf_analyzer"
POINTS = (("mlp", 1, 1), ("mlp", 1, 16), ("mlp", 64, 16))
QUICK_SETTINGS = LoadSettings(window_ms=1500, max_trials=6, stability_pct=30)
FULL_SETTINGS = LoadSettings(window_ms=2000, max_trials=10, stability_pct=20)


def install(tools: Path, quick: bool, workdir: Path) -> Analyzer | str:
    """perf_analyzer ready to run, or why not (the rest of the benchmark runs regardless)."""
    settings = QUICK_SETTINGS if quick else FULL_SETTINGS
    try:
        return perf_analyzer(tools, BatchingPlan((), settings), workdir)
    except (OSError, IndexError, subprocess.SubprocessError) as error:
        return f"perf_analyzer could not be installed or run: {error}"


def measure(analyzer: Analyzer, ports: dict[str, int]) -> list[Result]:
    """ferroserve (both configurations) and the ceiling at each point, back to back."""
    rows = [
        Target("ferroserve (dynamic batching)", CROSSCHECK, FERROSERVE),
        Target("ferroserve (no batching)", CROSSCHECK, FERROSERVE, "{model}" + NO_BATCHING),
        Target("transport ceiling", CROSSCHECK, CEILING + "-{model}", runs_model=False),
    ]
    results = []
    for model, per_request, concurrency in POINTS:
        for target in rows:
            port = ports.get(target.process_for(model))
            if port is None:
                continue
            run = analyzer.measure(port, target.model_for(model), concurrency, per_request)
            m = run.measurement
            if m is not None:
                # perf_analyzer counts rows as inferences; the tables count requests.
                m = replace(
                    m, infer_per_s=m.infer_per_s / per_request,
                    inferences=m.inferences // per_request,
                )  # fmt: skip
            results.append(Result(target, model, per_request, concurrency, m, error=run.error))
            print(f"perf_analyzer {model} rows={per_request} c={concurrency} {target.label}",
                  file=sys.stderr)  # fmt: skip
    return results


def table(results: Sequence[Result], client_rows: Sequence[Result]) -> list[str]:
    """perf_analyzer's figures beside the Python client's (unary) for the same rows."""
    lines = [
        "| server | rows/req | c | perf_analyzer infer/s | p50 ms | p99 ms "
        "| Python client infer/s | p50 ms | p99 ms |",
        "|" + "---|" * 9,
    ]
    for result in results:
        ours = next(
            (
                r
                for r in client_rows
                if r.target.label == result.target.label
                and not r.target.streaming
                and (r.model, r.rows, r.concurrency)
                == (result.model, result.rows, result.concurrency)
            ),
            None,
        )
        cells = [result.target.label, str(result.rows), str(result.concurrency)]
        for row in (result, ours):
            m = None if row is None else row.measurement
            if m is None:
                error = "" if row is None else row.error.replace("|", "/")[:120]
                cells += [f"failed: {error}" if error else "-", "", ""]
            else:
                cells += [f"{m.infer_per_s:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
