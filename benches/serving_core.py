"""Serving-core benchmark (issue 2): the MLP [N,64] -> 256 -> 256 -> 10 served by ferroserve,
beside the Python gRPC transport ceiling and onnxruntime in-process, measured in one run on
loopback with Triton's perf_analyzer. Prints a markdown table of ratios; --out writes it too.

    python benches/serving_core.py [--quick] [--out FILE] [--dynamic-batching] [--tools DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from inprocess_ort import cpu_session, measure_session
from load_client import AioLoadGenerator, LoadClient, LoadSettings, PerfAnalyzer
from measurement import MeasurementFailed
from report import CEILING, FERROSERVE, UNARY, Row, render
from server_process import (
    HOST,
    CpuSampler,
    ServerFailed,
    free_port,
    process_tree_cpu_s,
    serving,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_TREE = REPO_ROOT / "python"
PERF_ANALYZER_DIR = REPO_ROOT / ".perf_analyzer"  # git-ignored; the installer caches there
STREAMING = "streaming"
IDLE_PROBE_S = 2.0
CONFIG_PBTXT = """name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 10 ] } ]
"""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run measures and for how long."""

    concurrencies: tuple[int, ...]
    load: LoadSettings
    ort_window_s: float
    ort_warmup_s: float


# Stability thresholds are loose because two cores shared by client and server swing 10-25%
# between windows; the figure is still the mean of three full windows.
FULL = Plan((1, 4, 16), LoadSettings(window_ms=2000, max_trials=10, stability_pct=20), 3.0, 0.5)
QUICK = Plan((1, 16), LoadSettings(window_ms=1000, max_trials=8, stability_pct=30), 1.0, 0.3)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A server process to start: what the rows call it and how to run it on `port`."""

    server: str
    loop: str
    argv: list[str]
    port: int
    env: dict[str, str] | None = None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, c in {1, 16}")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--dynamic-batching",
        action="store_true",
        help="serve the model with `dynamic_batching { }` in its config.pbtxt",
    )
    parser.add_argument(
        "--tools",
        type=Path,
        default=Path("/work/shared/tools"),
        help="folder with transport_ceiling.py and get-perf-analyzer.sh",
    )
    return parser.parse_args(argv)


def write_repository(root: Path, dynamic_batching: bool) -> Path:
    """A Triton-style repository with the MLP as `mlp` version 1; returns the model file."""
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    config = CONFIG_PBTXT + ("dynamic_batching { }\n" if dynamic_batching else "")
    (root / "mlp").mkdir(parents=True)
    (root / "mlp" / "config.pbtxt").write_text(config)
    return save(mlp_model(), root / "mlp" / "1" / "model.onnx")


def choose_client(tools: Path, plan: Plan, workdir: Path) -> LoadClient:
    """perf_analyzer, installed (and cached) by the shared script; the aio generator if not."""
    try:
        installed = subprocess.run(
            ["bash", str(tools / "get-perf-analyzer.sh"), str(PERF_ANALYZER_DIR)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        binary = Path(installed.stdout.strip().splitlines()[-1])
        return PerfAnalyzer(binary, plan.load, workdir)
    except (OSError, IndexError, subprocess.SubprocessError) as error:
        reason = f"perf_analyzer could not run: {error}"
        print(f"warning: {reason}; using the tritonclient.grpc.aio fallback", file=sys.stderr)
        window_s = plan.load.window_ms * 3 / 1000
        return AioLoadGenerator(window_s, warmup_s=plan.ort_warmup_s * 2, reason=reason)


def inprocess_rows(model_path: Path, plan: Plan) -> list[Row]:
    session = cpu_session(model_path)
    rows = []
    for batch in (1, 64):
        for concurrency in plan.concurrencies:
            inputs = np.random.default_rng(0).standard_normal((batch, 64)).astype(np.float32)
            measurement, cpu_us = measure_session(
                session, {"input": inputs}, concurrency, plan.ort_window_s, plan.ort_warmup_s,
                rows_per_call=batch,
            )  # fmt: skip
            mode = f"session.run b{batch}" + (" (rows/s)" if batch > 1 else "")
            rows.append(Row("onnxruntime in-process", "", mode, concurrency, measurement, cpu_us))
            print(f"measured in-process b{batch} c={concurrency}", file=sys.stderr)
    return rows


def server_specs(tools: Path, repository: Path, notes: list[str]) -> list[ServerSpec]:
    """The transport ceiling on each event loop, then ferroserve on uvloop when installed."""
    loops = ["asyncio", "uvloop"] if importlib.util.find_spec("uvloop") else ["asyncio"]
    specs = []
    for loop in loops:
        port = free_port()
        argv = [sys.executable, str(tools / "transport_ceiling.py"), "--port", str(port)]
        argv += ["--host", HOST, *(["--uvloop"] if loop == "uvloop" else [])]
        specs.append(ServerSpec(CEILING, loop, argv, port))
    launcher, env = ferroserve_launcher(notes)
    port, metrics_port = free_port(), free_port()
    argv = [
        *launcher, "serve", "--model-repository", str(repository), "--grpc-port", str(port),
        "--metrics-port", str(metrics_port), "--host", HOST,
        "--uvloop" if loops[-1] == "uvloop" else "--no-uvloop",
    ]  # fmt: skip
    return [*specs, ServerSpec(FERROSERVE, loops[-1], argv, port, env)]


def ferroserve_launcher(notes: list[str]) -> tuple[list[str], dict[str, str]]:
    """The installed `ferroserve` command, else `python -m ferroserve` from the source tree;
    notes which one ran and which `_core` it imports, since a stand-in changes the figures."""
    env = dict(os.environ)
    command = shutil.which("ferroserve")
    if command is not None:
        launcher, origin = [command], f"installed command {command}"
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_TREE), env.get("PYTHONPATH")]))
        launcher, origin = (
            [sys.executable, "-m", "ferroserve"],
            "source tree (python -m ferroserve)",
        )
    probe = subprocess.run(
        [sys.executable, "-c", "import ferroserve._core as core; print(core.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    core = probe.stdout.strip() or f"not importable ({probe.stderr.strip().splitlines()[-1:]})"
    notes.append(f"ferroserve: {origin}; ferroserve._core from {core}.")
    return launcher, env


def server_rows(
    specs: Sequence[ServerSpec], client: LoadClient, plan: Plan, workdir: Path, notes: list[str]
) -> list[Row]:
    """Starts every server, then measures them in turn for each mode and concurrency, so the
    rows compared with each other are taken seconds apart rather than minutes."""
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        running: list[tuple[ServerSpec, int]] = []
        for spec in specs:
            log_path = workdir / f"{spec.server}-{spec.loop}.log"
            try:
                pid = stack.enter_context(serving(spec.argv, spec.port, log_path, spec.env))
            except ServerFailed as error:
                rows.append(Row(spec.server, spec.loop, "start", 0, None, None, str(error)))
                continue
            running.append((spec, pid))
        if running:
            notes.append(_idle_cpu_note(running))
        for mode in (UNARY, STREAMING):
            for concurrency in plan.concurrencies:
                for spec, pid in running:
                    rows.append(_measure_server(spec, pid, client, mode, concurrency))
                    print(f"measured {rows[-1].label} {mode} c={concurrency}", file=sys.stderr)
    return rows


def _idle_cpu_note(running: Sequence[tuple[ServerSpec, int]]) -> str:
    """Idle servers run beside the one measured; this shows what they take while waiting."""
    before = [process_tree_cpu_s(pid) for _, pid in running]
    time.sleep(IDLE_PROBE_S)
    shares = [
        f"{spec.server} ({spec.loop}) {100 * (process_tree_cpu_s(pid) - cpu) / IDLE_PROBE_S:.1f}%"
        for (spec, pid), cpu in zip(running, before, strict=True)
    ]
    return (
        f"All servers run during the whole benchmark; CPU of each while idle: {', '.join(shares)}."
    )


def _measure_server(
    spec: ServerSpec, pid: int, client: LoadClient, mode: str, concurrency: int
) -> Row:
    try:
        with CpuSampler(pid) as sampler:
            measurement = client.measure(spec.port, concurrency, mode == STREAMING)
    except MeasurementFailed as error:
        return Row(spec.server, spec.loop, mode, concurrency, None, None, str(error))
    cpu_s = sampler.cpu_s_between(measurement.start_ns, measurement.end_ns)
    cpu_us = cpu_s * 1e6 / measurement.inferences
    return Row(spec.server, spec.loop, mode, concurrency, measurement, cpu_us)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-bench-") as tmp:
        workdir = Path(tmp)
        model_path = write_repository(workdir / "repository", args.dynamic_batching)
        client = choose_client(args.tools, plan, workdir)
        rows = inprocess_rows(model_path, plan)
        specs = server_specs(args.tools, workdir / "repository", notes)
        rows += server_rows(specs, client, plan, workdir, notes)
    notes = [
        f"Client: {client.description}; batch 1, random FP32 [1, 64]; "
        f"{plan.load.window_ms} ms windows, stable within {plan.load.stability_pct}%.",
        *notes,
        *NOTES,
        *(["Model config has `dynamic_batching { }`."] if args.dynamic_batching else []),
    ]
    text = render(rows, notes)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


NOTES = (
    "ceiling: transport_ceiling.py, a grpc.aio server that decodes the input and returns a "
    "canned output (no model). % of ceiling compares with it on the same event loop, mode and "
    "concurrency.",
    "Server CPU: utime+stime of the server's process tree (/proc, sampled every 50 ms) over the "
    "measured window, divided by the inferences completed in it. The client shares the 2 cores.",
    "onnxruntime in-process: intra_op 1, inter_op 1, no spinning; c threads share one session; "
    "CPU is this process's per row.",
)


if __name__ == "__main__":
    sys.exit(main())
