"""An ensemble against the client calling its models itself, measured in one run: a two-step
chain `chain` (double -> inc, FP32 [N, 64], both with `dynamic_batching`) served natively, vs a
client that calls `double` and then `inc` with the intermediate tensor. Both sides are driven
by the same closed-loop tritonclient.grpc.aio client at concurrency 16 (one process: the client
side pays the second round trip, which is what an ensemble saves); perf_analyzer at the same
concurrency measures the ensemble and one step alone beside them. Rounds alternate the sides.

    python benches/ensemble.py [--quick] [--out FILE] [--tools DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from batching_load import Analyzer
from load_client import LoadSettings
from report import publish
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher
from strings import perf_analyzer

CONCURRENCY = 16
STEP = """max_batch_size: 64
dynamic_batching { }
"""
CHAIN = """name: "chain"
platform: "ensemble"
max_batch_size: 64
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 64 ] } ]
ensemble_scheduling { step [
  { model_name: "double" model_version: -1 input_map { key: "X" value: "IN" }
    output_map { key: "Y" value: "doubled" } },
  { model_name: "inc" model_version: -1 input_map { key: "X" value: "doubled" }
    output_map { key: "Y" value: "OUT" } }
] }
"""


class Plan:
    def __init__(self, rounds: int, window_s: float, load: LoadSettings) -> None:
        self.rounds, self.window_s, self.load = rounds, window_s, load


FULL = Plan(3, 5.0, LoadSettings(window_ms=2000, max_trials=10, stability_pct=20))
QUICK = Plan(2, 2.0, LoadSettings(window_ms=1000, max_trials=8, stability_pct=30))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows, 2 rounds")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--tools", type=Path, default=Path("/work/shared/tools"))
    return parser.parse_args(argv)


def write_repository(root: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from onnx import TensorProto, helper, numpy_helper, save

    for name, scale, offset in (("double", 2.0, 0.0), ("inc", 1.0, 1.0)):
        graph = helper.make_graph(
            [
                helper.make_node("Mul", ["X", "s"], ["m"]),
                helper.make_node("Add", ["m", "o"], ["Y"]),
            ],
            name,
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 64])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 64])],
            [
                numpy_helper.from_array(np.array(scale, np.float32), "s"),
                numpy_helper.from_array(np.array(offset, np.float32), "o"),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        (root / name / "1").mkdir(parents=True)
        save(model, str(root / name / "1" / "model.onnx"))
        (root / name / "config.pbtxt").write_text(f'name: "{name}"\n{STEP}')
    (root / "chain" / "1").mkdir(parents=True)
    (root / "chain" / "config.pbtxt").write_text(CHAIN)


async def closed_loop(port: int, ensemble: bool, window_s: float) -> tuple[float, float]:
    """(requests/s, p50 ms) of CONCURRENCY workers for `window_s`: each request is one call to
    `chain`, or a call to `double` and one to `inc` with its output."""
    from tritonclient.grpc import aio

    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    latencies: list[float] = []
    async with aio.InferenceServerClient(f"{HOST}:{port}") as client:

        async def call(model: str, data: np.ndarray) -> np.ndarray:
            tensor = aio.InferInput("IN" if model == "chain" else "X", [1, 64], "FP32")
            tensor.set_data_from_numpy(data)
            result = await client.infer(model, [tensor])
            out = result.as_numpy("OUT" if model == "chain" else "Y")
            assert out is not None
            return out

        async def request() -> None:
            if ensemble:
                await call("chain", x)
            else:
                await call("inc", await call("double", x))

        async def worker(end: float) -> None:
            while time.perf_counter() < end:
                began = time.perf_counter()
                await request()
                latencies.append(time.perf_counter() - began)

        for _ in range(CONCURRENCY):  # warm the channel and both paths
            await request()
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + window_s) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


def measure(
    repository: Path, analyzer: Analyzer, plan: Plan, workdir: Path, notes: list[str]
) -> list[str]:
    port, metrics_port = free_port(), free_port()
    launcher, env = ferroserve_launcher(notes)
    argv = [*launcher, "serve", "--model-repository", str(repository), "--grpc-port", str(port),
            "--metrics-port", str(metrics_port), "--host", HOST, "--uvloop"]  # fmt: skip
    lines = [
        "| round | what | requests/s | p50 ms | server CPU µs/request |",
        "|---|---|---|---|---|",
    ]
    ratios: list[float] = []
    with contextlib.ExitStack() as stack:
        pid = stack.enter_context(serving(argv, port, workdir / "ferroserve.log", env))
        for round_ in range(1, plan.rounds + 1):
            rates = {}
            order = (True, False) if round_ % 2 else (False, True)
            for ensemble in order:
                label = (
                    "ensemble `chain` (tritonclient aio)"
                    if ensemble
                    else ("client calls `double` then `inc` (tritonclient aio)")
                )
                with CpuSampler(pid) as sampler:
                    time.sleep(0.2)  # the sampler's first reading comes before the window
                    start_ns = time.time_ns()
                    rate, p50 = asyncio.run(closed_loop(port, ensemble, plan.window_s))
                    end_ns = time.time_ns()
                    time.sleep(0.2)  # and its last one after
                try:
                    cpu_s = sampler.cpu_s_between(start_ns, end_ns)
                    cpu = f"{cpu_s * 1e6 / max(1.0, rate * plan.window_s):.0f}"
                except ValueError:  # the readings at the window's ends failed
                    cpu = "n/a"
                rates[ensemble] = rate
                lines.append(f"| {round_} | {label} | {rate:.0f} | {p50:.2f} | {cpu} |")
            ratios.append(rates[True] / rates[False])
            for model in ("chain", "double"):
                run = analyzer.measure(port, model, CONCURRENCY)
                m = run.measurement
                what = f"perf_analyzer `{model}`" + (
                    " (one step alone)" if model == "double" else ""
                )
                figure = "failed" if m is None else f"{m.infer_per_s:.0f} | {m.p50_ms:.2f} |"
                lines.append(f"| {round_} | {what} | {figure} |")
            print(f"measured round {round_}", file=sys.stderr)
    shown = ", ".join(f"{r:.2f}x" for r in ratios)
    summary = [
        f"Ensemble / client-side chain, requests/s at c={CONCURRENCY}: median "
        f"{statistics.median(ratios):.2f}x ({shown})"
    ]
    return [*lines, "", *summary]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-ensemble-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        analyzer = perf_analyzer(args.tools, plan, workdir)  # type: ignore[arg-type]
        try:
            section = measure(workdir / "repository", analyzer, plan, workdir, notes)
        except ServerFailed as error:
            print(f"the server failed to start: {error}", file=sys.stderr)
            return 1
    notes = [
        f"Client: tritonclient.grpc.aio, {CONCURRENCY} closed-loop workers in one process, "
        f"{plan.window_s:g} s windows, one row [1, 64] FP32 per request; perf_analyzer "
        f"({analyzer.description}) `-x 1` at c={CONCURRENCY} beside them. Client and server "
        "share the cores.",
        "Models: `double` (Y = 2X) and `inc` (Y = X + 1), FP32 [N, 64], max_batch_size 64, "
        "`dynamic_batching { }`; `chain` runs double then inc inside the server.",
        *notes,
    ]
    publish([section], notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
