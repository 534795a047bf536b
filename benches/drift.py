"""Drift tracking's cost end to end (issue 15): the MLP [N,64] -> 256 -> 256 -> 10 served twice
by one ferroserve, once as `mlp` and once as `mlp_drift`, whose drift.pbtxt monitors all 64
input and 10 output columns (every executed batch counted into per-column histograms on the
executor thread). perf_analyzer drives both at c=16 with one row per request, the same JSON
data, back to back in an order that alternates round by round, a fresh server every round.
Target: `mlp_drift` loses under 3% of `mlp`'s throughput (median of the per-round ratios).

    python benches/drift.py [--rounds N] [--window-ms MS] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from features import CONCURRENCY, Result, analyzer, measure_model, server_argv
from report import publish
from server_process import CpuSampler, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher

TARGET_COST = 0.03
DATA_ROWS = 256
REFERENCE_ROWS = 20_000
CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }} ]
dynamic_batching {{ }}
"""
# Every input and output column, the default bins and window.
DRIFT_PBTXT = "# every input and output column, default bins (10) and window (10,000 rows)\n"
MODELS = ("mlp", "mlp_drift")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds [4]")
    parser.add_argument("--window-ms", type=int, default=3000, help="perf_analyzer window [3000]")
    parser.add_argument("--tools", type=Path, default=Path("/work/shared/tools"))
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def write_repository(root: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    reference = np.random.default_rng(0).standard_normal((REFERENCE_ROWS, 64), dtype=np.float32)
    for name in MODELS:
        folder = root / name
        (folder / "1").mkdir(parents=True)
        save(mlp_model(), folder / "1" / "model.onnx")
        (folder / "config.pbtxt").write_text(CONFIG.format(name=name))
        if name == "mlp_drift":
            (folder / "drift.pbtxt").write_text(DRIFT_PBTXT)
            # Inputs only: the outputs' reference is the model's answers on them.
            np.savez(folder / "1" / "drift_reference.npz", input=reference)


def measure_all(
    repository: Path, workdir: Path, args: argparse.Namespace, notes: list[str]
) -> list[Result]:
    pa = analyzer(args, workdir)
    notes.append(f"Client: {pa.description.splitlines()[0]}.")
    rng = np.random.default_rng(2)
    data_file = workdir / "data.json"
    rows = [{"input": rng.standard_normal(64).round(4).tolist()} for _ in range(DATA_ROWS)]
    data_file.write_text(json.dumps({"data": rows}))
    launcher, env = ferroserve_launcher(notes)
    results = []
    for round_ in range(args.rounds):
        models = list(MODELS) if round_ % 2 == 0 else list(reversed(MODELS))
        port = free_port()
        with contextlib.ExitStack() as stack:
            argv = server_argv(launcher, repository, port)
            pid = stack.enter_context(serving(argv, port, workdir / f"server-{round_}.log", env))
            cpu = stack.enter_context(CpuSampler(pid))
            for model in models:
                result = measure_model(pa, port, model, CONCURRENCY, data_file, cpu, round_)
                if result is not None:
                    results.append(result)
    return results


def report(results: Sequence[Result]) -> list[list[str]]:
    table = [
        "| model | round | infer/s | p50 ms | p99 ms | server µs/request | mean batch |",
        "|" + "---|" * 7,
    ]
    for r in results:
        batch = f"{r.mean_batch:.1f}" if r.mean_batch is not None else ""
        table.append(
            f"| {r.model} | {r.round + 1} | {r.infer_per_s:.0f} | {r.p50_ms:.3f} | "
            f"{r.p99_ms:.3f} | {r.server_us_per_request:.1f} | {batch} |"
        )
    by = {(r.model, r.round): r for r in results}
    rounds = sorted(n for n in {r.round for r in results} if all((m, n) in by for m in MODELS))
    if not rounds:
        return [table, ["- No round measured both models."]]
    ratios = [by[("mlp_drift", n)].infer_per_s / by[("mlp", n)].infer_per_s for n in rounds]
    cpu = [
        by[("mlp_drift", n)].server_us_per_request / by[("mlp", n)].server_us_per_request
        for n in rounds
    ]
    median = statistics.median(ratios)
    verdict = "PASS" if median >= 1 - TARGET_COST else "FAIL"
    return [
        table,
        [
            f"- {verdict}: drift tracking on 64 inputs + 10 outputs costs under "
            f"{TARGET_COST:.0%} of the MLP's throughput at c={CONCURRENCY}: "
            f"{median:.3f}x (per round: " + ", ".join(f"{r:.3f}" for r in ratios) + ")",
            f"- Server CPU per request, drift / plain: {statistics.median(cpu):.3f}x (per round: "
            + ", ".join(f"{r:.3f}" for r in cpu)
            + ")",
        ],
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-drift-") as tmp:
        workdir = Path(tmp)
        try:
            write_repository(workdir / "repository")
            results = measure_all(workdir / "repository", workdir, args, notes)
        except ServerFailed as error:
            print(f"the server failed to start: {error}", file=sys.stderr)
            return 1
    notes = [
        "Models: the MLP [N,64] -> 256 -> 256 -> 10, max_batch_size 64, `dynamic_batching` "
        "(delay 0), twice in one server; `mlp_drift` monitors all 64 input and 10 output "
        f"columns (10 quantile bins each, reference: {REFERENCE_ROWS:,} rows, outputs computed "
        "by the model at load, window 10,000 rows).",
        f"perf_analyzer -b 1, c={CONCURRENCY}, unary, the same {DATA_ROWS} requests for both "
        "from a JSON data file; client and server share the cores; server µs/request: CPU of "
        "the server process tree over the window / requests.",
        *notes,
    ]
    publish(report(results), notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
