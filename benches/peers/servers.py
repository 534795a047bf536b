"""The server processes of one run and the rows each serves: ferroserve (dynamic batching on and
off, unary and ModelStreamInfer), KServe's ModelServer, MLServer (adaptive batching off and on),
one Python transport ceiling per model (its canned answer has that model's output size) and one
native transport ceiling (`ferroserve-loadgen echo`) per model and rows per request."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from server_process import HOST, free_port
from serving_core import ferroserve_launcher

from .models import MODELS, OUTPUT
from .repositories import ADAPTIVE, NO_BATCHING, ferroserve_repository, mlserver_repository
from .venvs import Prepared

PEERS_DIR = Path(__file__).resolve().parent
ORT_SAME = "1 / 1 / off"

FERROSERVE = "ferroserve"
KSERVE = "kserve"
KSERVE_DEFAULTS = "kserve-defaults"
MLSERVER = "mlserver"
CEILING = "ceiling"
NATIVE_CEILING = "native-ceiling"
# Row kinds: what a row is compared with.
OURS, PEER, REFERENCE = "ours", "peer", "reference"


@dataclass(frozen=True, slots=True)
class Process:
    """A server process to start (`argv` already pinned to the server cores when pinning)."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Running:
    """A started server process: its pid (for CPU and memory samples) and gRPC port."""

    pid: int
    port: int


@dataclass(frozen=True, slots=True)
class Target:
    """One line of the table: a process (`{model}` and `{rows}` in its name are the model and
    the rows per request measured), the name the model has there (`{model}` again) and the call
    mode."""

    label: str
    kind: str
    process: str
    served_as: str = "{model}"
    streaming: bool = False
    ort_threads: str = ORT_SAME
    # False for the transport ceiling: its canned answer is zeros, not the model's output.
    runs_model: bool = True

    def process_for(self, model: str, rows: int) -> str:
        return self.process.format(model=model, rows=rows)

    def model_for(self, model: str) -> str:
        return self.served_as.format(model=model)


def table_rows(peers_up: set[str]) -> list[Target]:
    """Every row, in table order; peers only where their environment could be prepared."""
    rows = [
        Target("ferroserve (dynamic batching)", OURS, FERROSERVE),
        Target("ferroserve (no batching)", OURS, FERROSERVE, "{model}" + NO_BATCHING),
        Target("ferroserve stream (dynamic batching)", OURS, FERROSERVE, streaming=True),
    ]
    if KSERVE in peers_up:
        rows += [
            Target("KServe ModelServer", PEER, KSERVE),
            Target("KServe ModelServer (default logging)", PEER, KSERVE_DEFAULTS),
        ]
    if MLSERVER in peers_up:
        rows += [
            Target("MLServer", PEER, MLSERVER),
            Target("MLServer (adaptive batching)", PEER, MLSERVER, "{model}" + ADAPTIVE),
        ]
    rows += [
        Target("transport ceiling", REFERENCE, CEILING + "-{model}", ort_threads="-",
               runs_model=False),
        Target("transport ceiling stream", REFERENCE, CEILING + "-{model}", streaming=True,
               ort_threads="-", runs_model=False),
        Target("native transport ceiling", REFERENCE, NATIVE_CEILING + "-{model}-r{rows}",
               ort_threads="-", runs_model=False),
        Target("native transport ceiling stream", REFERENCE, NATIVE_CEILING + "-{model}-r{rows}",
               streaming=True, ort_threads="-", runs_model=False),
    ]  # fmt: skip
    return rows


def processes(
    workdir: Path,
    onnx_files: dict[str, Path],
    peers: dict[str, Prepared],
    tools: Path,
    loadgen: Path,
    plan: tuple[Sequence[str], Sequence[int]],
    pin: list[str],
    notes: list[str],
) -> list[Process]:
    """Writes each server's repository under `workdir` and says how to start it; ceilings
    only for the (models, rows per request) of the `plan`."""
    started = [_ferroserve(workdir, onnx_files, pin, notes)]
    kserve, mlserver = peers.get(KSERVE), peers.get(MLSERVER)
    if kserve is not None and kserve.python is not None:
        started.append(_kserve(kserve.python, onnx_files, pin, quiet=True))
        started.append(_kserve(kserve.python, onnx_files, pin, quiet=False))
    if mlserver is not None and mlserver.python is not None:
        started.append(_mlserver(mlserver.python, workdir, onnx_files, pin))
    models, rows_per_request = plan
    for name in models:
        spec = MODELS[name]
        port = free_port()
        argv = [
            sys.executable, str(tools / "transport_ceiling.py"), "--port", str(port),
            "--host", HOST, "--uvloop", "--model", name, "--inputs", str(spec.row_size),
            "--outputs", str(spec.output_width),
        ]  # fmt: skip
        started.append(Process(f"{CEILING}-{name}", [*pin, *argv], port))
        for rows in rows_per_request:
            started.append(_native_ceiling(loadgen, name, rows, pin))
    return started


def _native_ceiling(loadgen: Path, model: str, rows: int, pin: list[str]) -> Process:
    """`ferroserve-loadgen echo`: a canned answer of `rows` rows of the model's output, one
    tokio thread like ferroserve's front end. It does not read the request's rows, so there is
    one per rows-per-request."""
    port = free_port()
    argv = [
        str(loadgen), "echo", "--host", HOST, "--port", str(port), "--model", model,
        "--output", f"{OUTPUT}:FP32:{MODELS[model].output_width}", "--rows", str(rows),
    ]  # fmt: skip
    return Process(f"{NATIVE_CEILING}-{model}-r{rows}", [*pin, *argv], port)


def _ferroserve(
    workdir: Path, onnx_files: dict[str, Path], pin: list[str], notes: list[str]
) -> Process:
    repository = ferroserve_repository(workdir / "ferroserve", onnx_files)
    launcher, env = ferroserve_launcher(notes)
    port = free_port()
    argv = [
        *launcher, "serve", "--model-repository", str(repository), "--grpc-port", str(port),
        "--metrics-port", str(free_port()), "--http-port", str(free_port()),
        "--host", HOST, "--uvloop",
    ]  # fmt: skip
    return Process(FERROSERVE, [*pin, *argv], port, env)


def _kserve(python: Path, onnx_files: dict[str, Path], pin: list[str], quiet: bool) -> Process:
    """KServe as its docs start it; `quiet` turns off its two per-request log lines (the
    latency line, on by default, and the gRPC interceptor's INFO line for every call)."""
    port = free_port()
    folder = next(iter(onnx_files.values())).parent
    argv = [
        str(python), str(PEERS_DIR / "kserve_server.py"), "--models-dir", str(folder),
        "--grpc_port", str(port), "--http_port", str(free_port()),
    ]  # fmt: skip
    if not quiet:
        return Process(KSERVE_DEFAULTS, [*pin, *argv], port)
    env = {**os.environ, "KSERVE_LOGLEVEL": "WARNING"}
    return Process(KSERVE, [*pin, *argv, "--enable_latency_logging", "false"], port, env)


def _mlserver(python: Path, workdir: Path, onnx_files: dict[str, Path], pin: list[str]) -> Process:
    port = free_port()
    repository = mlserver_repository(
        workdir / "mlserver", onnx_files, port, free_port(), free_port()
    )
    # Only the runtime module goes on the workers' path, not the benchmark's own modules.
    runtime = workdir / "mlserver-runtime"
    runtime.mkdir()
    shutil.copyfile(PEERS_DIR / "mlserver_runtime.py", runtime / "mlserver_runtime.py")
    env = {**os.environ, "PYTHONPATH": str(runtime)}
    argv = [str(python.parent / "mlserver"), "start", str(repository)]
    return Process(MLSERVER, [*pin, *argv], port, env)
