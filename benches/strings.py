"""String (BYTES) models natively vs on the Python path, measured in one run: a BYTES identity
model and a model with string and numeric inputs and outputs, each served twice by one server,
on the native engine (answered by the native front end) and with `native_engine: "false"`
(forwarded to the Python server, onnxruntime's Python binding). Triton's perf_analyzer drives
both at the same concurrency with its own random strings; the pairs are measured back to back,
round after round. Prints a markdown report with the >= 4x target as PASS/FAIL; --out writes it.

    python benches/strings.py [--quick] [--out FILE] [--tools DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batching_load import Analyzer, Run
from load_client import LoadSettings
from report import publish
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import PERF_ANALYZER_DIR, SOURCE_TREE, ferroserve_launcher

TARGET = 4.0
CONCURRENCY = 16
NATIVE = "native"
PYTHON = "python"
PYTHON_BINDING = 'parameters { key: "native_engine" value { string_value: "false" } }\n'
# model -> config.pbtxt body (name and the engine parameter are added per served copy)
MODELS = {
    "text": """max_batch_size: 64
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 1 ] } ]
dynamic_batching { }
""",
    "mixed": """max_batch_size: 64
input [
  { name: "TEXT" data_type: TYPE_STRING dims: [ 2 ] },
  { name: "X" data_type: TYPE_FP32 dims: [ 3 ] }
]
output [
  { name: "ECHO" data_type: TYPE_STRING dims: [ 2 ] },
  { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "DOUBLE" data_type: TYPE_FP32 dims: [ 3 ] }
]
dynamic_batching { }
""",
    # A fixed-size reference, native only: the same request size as `text` (128 bytes).
    "fp32": """max_batch_size: 64
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 32 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 32 ] } ]
dynamic_batching { }
""",
}
# Models served on both engines; the rest (the reference) on the native engine only.
COMPARED = ("text", "mixed")


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    load: LoadSettings


FULL = Plan(3, LoadSettings(window_ms=2000, max_trials=10, stability_pct=20))
QUICK = Plan(2, LoadSettings(window_ms=1000, max_trials=8, stability_pct=30))


@dataclass(frozen=True, slots=True)
class Row:
    model: str
    engine: str
    round: int
    run: Run
    cpu_us: float | None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows, 2 rounds")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--tools", type=Path, default=Path("/work/shared/tools"))
    return parser.parse_args(argv)


def engines(model: str) -> tuple[str, ...]:
    return (NATIVE, PYTHON) if model in COMPARED else (NATIVE,)


def served_name(model: str, engine: str) -> str:
    return model if engine == NATIVE else f"{model}_python"


def write_repository(root: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def info(name: str, elem: int, dims: list[int | str]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, elem, dims)

    text = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        "text",
        [info("INPUT0", TensorProto.STRING, ["batch", 1])],
        [info("OUTPUT0", TensorProto.STRING, ["batch", 1])],
    )
    labels = np.array([b"negative", b"neutral", b"positive"], dtype=object)
    mixed = helper.make_graph(
        [
            helper.make_node("Identity", ["TEXT"], ["ECHO"]),
            helper.make_node("ArgMax", ["X"], ["best"], axis=1, keepdims=1),
            helper.make_node("Gather", ["labels", "best"], ["LABEL"], axis=0),
            helper.make_node("Add", ["X", "X"], ["DOUBLE"]),
        ],
        "mixed",
        [
            info("TEXT", TensorProto.STRING, ["batch", 2]),
            info("X", TensorProto.FLOAT, ["batch", 3]),
        ],
        [
            info("ECHO", TensorProto.STRING, ["batch", 2]),
            info("LABEL", TensorProto.STRING, ["batch", 1]),
            info("DOUBLE", TensorProto.FLOAT, ["batch", 3]),
        ],
        [numpy_helper.from_array(labels, "labels")],
    )
    fp32 = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        "fp32",
        [info("INPUT0", TensorProto.FLOAT, ["batch", 32])],
        [info("OUTPUT0", TensorProto.FLOAT, ["batch", 32])],
    )
    graphs = {"text": text, "mixed": mixed, "fp32": fp32}
    for model, body in MODELS.items():
        proto = helper.make_model(graphs[model], opset_imports=[helper.make_opsetid("", 17)])
        proto.ir_version = 8
        for engine in engines(model):
            name = served_name(model, engine)
            (root / name / "1").mkdir(parents=True)
            tail = PYTHON_BINDING if engine == PYTHON else ""
            (root / name / "config.pbtxt").write_text(f'name: "{name}"\n{body}{tail}')
            onnx.save(proto, str(root / name / "1" / "model.onnx"))


def perf_analyzer(tools: Path, plan: Plan, workdir: Path) -> Analyzer:
    installed = subprocess.run(
        ["bash", str(tools / "get-perf-analyzer.sh"), str(PERF_ANALYZER_DIR)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return Analyzer(Path(installed.stdout.strip().splitlines()[-1]), plan.load, workdir)


def measure_all(
    repository: Path, analyzer: Analyzer, plan: Plan, workdir: Path, notes: list[str]
) -> list[Row]:
    port, metrics_port = free_port(), free_port()
    launcher, env = ferroserve_launcher(notes)
    argv = [*launcher, "serve", "--model-repository", str(repository), "--grpc-port", str(port),
            "--metrics-port", str(metrics_port), "--host", HOST, "--uvloop"]  # fmt: skip
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        pid = stack.enter_context(serving(argv, port, workdir / "ferroserve.log", env))
        for round_ in range(1, plan.rounds + 1):
            for model in MODELS:
                # A pair is measured back to back: the rows compared are seconds apart.
                for engine in engines(model):
                    with CpuSampler(pid) as sampler:
                        run = analyzer.measure(port, served_name(model, engine), CONCURRENCY)
                    cpu_us = None
                    if run.measurement is not None:
                        m = run.measurement
                        cpu_s = sampler.cpu_s_between(m.start_ns, m.end_ns)
                        cpu_us = cpu_s * 1e6 / max(1, m.inferences)
                    rows.append(Row(model, engine, round_, run, cpu_us))
                    print(f"measured round {round_} {model} {engine}", file=sys.stderr)
    return rows


def rate(rows: Sequence[Row], model: str, engine: str, round_: int) -> float | None:
    for row in rows:
        if (row.model, row.engine, row.round) == (model, engine, round_):
            m = row.run.measurement
            return None if m is None else m.infer_per_s
    return None


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| round | model | engine | infer/s | p50 ms | p99 ms | mean batch | server CPU µs/infer "
        "| native / python |",
        "|" + "---|" * 9,
    ]
    for row in rows:
        cells = [str(row.round), row.model, row.engine]
        m = row.run.measurement
        if m is None:
            cells += [f"failed: {row.run.error.replace('|', '/')}", "", "", "", "", ""]
        else:
            batch = "" if row.run.mean_batch is None else f"{row.run.mean_batch:.1f}"
            cpu = "" if row.cpu_us is None else f"{row.cpu_us:.0f}"
            ratio = ""
            if row.engine == PYTHON:
                native = rate(rows, row.model, NATIVE, row.round)
                ratio = "" if native is None else f"{native / m.infer_per_s:.2f}x"
            cells += [
                f"{m.infer_per_s:.0f}",
                f"{m.p50_ms:.3f}",
                f"{m.p99_ms:.3f}",
                batch,
                cpu,
                ratio,
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(rows: Sequence[Row], rounds: int) -> list[str]:
    lines = ["Targets (median of the rounds' native / python ratios):", ""]
    for model in COMPARED:
        ratios = []
        for round_ in range(1, rounds + 1):
            native, python = rate(rows, model, NATIVE, round_), rate(rows, model, PYTHON, round_)
            if native is not None and python:
                ratios.append(native / python)
        goal = f"{model}: native >= {TARGET:.0f}x the Python path, unary c={CONCURRENCY}"
        if not ratios:
            lines.append(f"- NOT MEASURED: {goal}")
            continue
        median = statistics.median(ratios)
        shown = ", ".join(f"{r:.2f}x" for r in ratios)
        lines.append(f"- {'PASS' if median >= TARGET else 'FAIL'}: {goal}: {median:.2f}x ({shown})")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-strings-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        analyzer = perf_analyzer(args.tools, plan, workdir)
        try:
            rows = measure_all(workdir / "repository", analyzer, plan, workdir, notes)
        except ServerFailed as error:
            print(f"the server failed to start: {error}", file=sys.stderr)
            return 1
    notes = [
        f"Client: {analyzer.description}; `-x 1`, batch 1, its random strings (128 characters "
        f"each) and random FP32; {plan.load.window_ms} ms windows, stable within "
        f"{plan.load.stability_pct}%. Client and server share the cores.",
        "One server serves every model twice: `<model>` on "
        'the native engine, `<model>_python` with `native_engine: "false"`, whose requests the '
        "front end forwards to the Python server (onnxruntime's Python binding).",
        "Models: `text` BYTES [N, 1] -> Identity; `mixed` TEXT BYTES [N, 2] and X FP32 [N, 3] -> "
        "ECHO = TEXT, LABEL = labels[argmax(X)] (BYTES [N, 1]), DOUBLE = X + X; both "
        "max_batch_size 64 with `dynamic_batching { }`. `fp32` (native only) is a fixed-size "
        "reference of the same request size as `text`: FP32 [N, 32] -> Identity.",
        "server CPU: the serving process tree's CPU over perf_analyzer's stable window, per "
        "inference; mean batch: ModelStatistics over the whole perf_analyzer run.",
        *notes,
    ]
    publish([table(rows), targets(rows, plan.rounds)], notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
