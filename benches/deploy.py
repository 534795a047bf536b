"""Deploying into a running server (issue 16), for the MLP [N,64] -> 256 -> 256 -> 10:

1. the time from `ferroserve push FILE --model mlp --alias production` to the first request
   without a version that the new version answers: through the CLI (a new process, as a
   pipeline runs it) and through the API from a warm client, with the server's own load time;
2. the latency of c=16 closed-loop traffic (`ferroserve-loadgen run`, requests without a
   version) while versions are pushed and swapped in every `--swap-every-s` (each push loads
   and warms up the new version, moves `production` to it, and drains and unloads the one it
   leaves), against the same traffic with no swaps, windows alternated in one run. Any failed
   request fails the run.

    python benches/deploy.py [--pushes N] [--rounds N] [--window-s S] [--swap-every-s S]
                             [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from peers.load import Window, build_loadgen, measure_window
from report import publish
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher
from tritonclient.grpc import service_pb2, service_pb2_grpc

MODEL = "mlp"
CONCURRENCY = 16
CONFIG = f"""name: "{MODEL}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }} ]
dynamic_batching {{ }}
"""
FIRST_ANSWER_TIMEOUT_S = 30.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=10, help="timed pushes of each kind [10]")
    parser.add_argument("--rounds", type=int, default=3, help="steady/swapping pairs [3]")
    parser.add_argument("--window-s", type=float, default=5.0, help="measured window [5]")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="load before it [1]")
    parser.add_argument(
        "--swap-every-s", type=float, default=0.5, help="time between swaps while swapping [0.5]"
    )
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def write_repository(root: Path, model_file: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    (root / MODEL).mkdir(parents=True)
    (root / MODEL / "config.pbtxt").write_text(CONFIG)
    save(mlp_model(), root / MODEL / "1" / "model.onnx")
    save(mlp_model(), model_file)


class Admin:
    """Pushes through the API from this process (a warm client), as `ferroserve push` does."""

    def __init__(self, url: str, model_file: Path) -> None:
        from ferroserve._proto import admin_pb2

        self._pb = admin_pb2
        self._channel = grpc.insecure_channel(url)
        self._data = model_file.read_bytes()
        self._push = self._channel.stream_unary(
            "/ferroserve.admin.v1.AdminService/PushVersion",
            request_serializer=admin_pb2.PushVersionRequest.SerializeToString,
            response_deserializer=admin_pb2.PushVersionResponse.FromString,
        )
        self._alias = self._channel.unary_unary(
            "/ferroserve.admin.v1.AdminService/SetAlias",
            request_serializer=admin_pb2.SetAliasRequest.SerializeToString,
            response_deserializer=admin_pb2.SetAliasResponse.FromString,
        )

    def set_alias(self, alias: str, version: int) -> None:
        self._alias(self._pb.SetAliasRequest(model=MODEL, alias=alias, version=version))

    def push(self) -> tuple[int, float]:
        """A new version as `production`: (its number, the server's load seconds)."""
        pb = self._pb

        def requests() -> Iterator[object]:
            yield pb.PushVersionRequest(header=pb.PushHeader(model=MODEL, alias="production"))
            yield pb.PushVersionRequest(chunk=pb.FileChunk(file=pb.MODEL, data=self._data))

        answer = self._push(requests(), timeout=60)
        return int(answer.version.version), float(answer.load_seconds)

    def close(self) -> None:
        self._channel.close()


def first_answer_from(url: str, version: int) -> None:
    """Requests without a version until one is answered by `version` (the first should be)."""
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(np.zeros((1, 64), np.float32).tobytes())
    deadline = time.monotonic() + FIRST_ANSWER_TIMEOUT_S
    with grpc.insecure_channel(url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            if stub.ModelInfer(request, timeout=10).model_version == str(version):
                return
    raise RuntimeError(f"version {version} answered nothing within {FIRST_ANSWER_TIMEOUT_S} s")


@dataclass(frozen=True, slots=True)
class PushTiming:
    kind: str
    to_first_answer_s: float
    load_s: float


def time_pushes(
    launcher: list[str], url: str, admin: Admin, model_file: Path, count: int
) -> list[PushTiming]:
    """`count` pushes through the CLI and `count` through the API, alternated."""
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        done = subprocess.run(
            [*launcher, "push", str(model_file), "--model", MODEL, "--alias", "production",
             "--server", url, "--json"],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        answer = json.loads(done.stdout)
        first_answer_from(url, int(answer["version"]["version"]))
        elapsed = time.perf_counter() - started
        timings.append(PushTiming("CLI", elapsed, float(answer["load_seconds"])))
        started = time.perf_counter()
        version, load_s = admin.push()
        first_answer_from(url, version)
        timings.append(PushTiming("API", time.perf_counter() - started, load_s))
    return timings


@dataclass(frozen=True, slots=True)
class LoadWindow:
    kind: str
    round: int
    window: Window
    swaps: int


class Swapper:
    """Pushes a version as `production` every `every_s` until stopped; counts them."""

    def __init__(self, admin: Admin, every_s: float) -> None:
        self.swaps: list[float] = []
        self._admin, self._every_s = admin, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self.error: BaseException | None = None

    def __enter__(self) -> Swapper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._admin.push()
            except BaseException as error:  # reported by the run
                self.error = error
                return
            self.swaps.append(time.time_ns())


def measure_load(
    binary: Path, port: int, admin: Admin, args: argparse.Namespace, cpu: CpuSampler
) -> list[LoadWindow]:
    flags = ["--concurrency", str(CONCURRENCY)]
    timing = (args.warmup_s, args.window_s)
    windows = []
    for round_ in range(args.rounds):
        # steady, swapping; then swapping, steady: drift of the machine hits both alike.
        kinds = ("steady", "swapping") if round_ % 2 == 0 else ("swapping", "steady")
        for kind in kinds:
            if kind == "steady":
                w = measure_window(binary, port, MODEL, flags, timing, cpu)
                windows.append(LoadWindow(kind, round_, w, 0))
            else:
                with Swapper(admin, args.swap_every_s) as swapper:
                    w = measure_window(binary, port, MODEL, flags, timing, cpu)
                if swapper.error is not None:
                    raise RuntimeError(f"a swap failed: {swapper.error}")
                windows.append(LoadWindow(kind, round_, w, len(swapper.swaps)))
            print(f"measured {kind} round {round_ + 1}: {w.infer_per_s:.0f}/s, "
                  f"p99 {w.p99_ms:.2f} ms", file=sys.stderr)  # fmt: skip
    return windows


def report(
    timings: Sequence[PushTiming], windows: Sequence[LoadWindow], args: argparse.Namespace
) -> list[str]:
    lines = [
        "Push to first served request (the MLP, ~340 kB; a request without a version "
        "answered by the new version, which the push made `production`):",
        "",
        "| path | pushes | median s | max s | server load + warm-up median s |",
        "|---|---|---|---|---|",
    ]
    for kind in ("CLI", "API"):
        mine = [t for t in timings if t.kind == kind]
        if mine:
            to_first = [t.to_first_answer_s for t in mine]
            lines.append(
                f"| {kind} | {len(mine)} | {statistics.median(to_first):.3f} | "
                f"{max(to_first):.3f} | {statistics.median(t.load_s for t in mine):.3f} |"
            )
    lines += [
        "",
        f"c={CONCURRENCY} requests without a version (ferroserve-loadgen, {args.window_s:g} s "
        f"windows), with a push + swap every {args.swap_every_s:g} s, and without:",
        "",
        "| round | window | swaps (warm-up + window) | infer/s | p50 ms | p99 ms "
        "| server µs/request |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in windows:
        lines.append(
            f"| {w.round + 1} | {w.kind} | {w.swaps} | {w.window.infer_per_s:.0f} | "
            f"{w.window.p50_ms:.3f} | {w.window.p99_ms:.3f} | "
            f"{w.window.server_us_per_request:.1f} |"
        )
    steady = [w.window.p99_ms for w in windows if w.kind == "steady"]
    swapping = [w.window.p99_ms for w in windows if w.kind == "swapping"]
    if steady and swapping:
        lines += [
            "",
            f"p99 while swapping / steady (medians): {statistics.median(swapping):.3f} / "
            f"{statistics.median(steady):.3f} ms = "
            f"{statistics.median(swapping) / statistics.median(steady):.2f}x; no request failed.",
        ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    binary = build_loadgen()
    with tempfile.TemporaryDirectory(prefix="ferroserve-deploy-") as tmp:
        workdir = Path(tmp)
        model_file = workdir / "mlp.onnx"
        write_repository(workdir / "models", model_file)
        port, metrics_port = free_port(), free_port()
        url = f"{HOST}:{port}"
        launcher, env = ferroserve_launcher(notes)
        argv_ = [*launcher, "serve", "--model-repository", str(workdir / "models"),
                 "--grpc-port", str(port), "--metrics-port", str(metrics_port), "--host", HOST,
                 "--uvloop"]  # fmt: skip
        with contextlib.ExitStack() as stack:
            try:
                pid = stack.enter_context(serving(argv_, port, workdir / "ferroserve.log", env))
            except ServerFailed as error:
                print(f"the server did not start: {error}", file=sys.stderr)
                return 1
            cpu = stack.enter_context(CpuSampler(pid))
            admin = Admin(url, model_file)
            stack.callback(admin.close)
            admin.set_alias("production", 1)
            timings = time_pushes(launcher, url, admin, model_file, args.pushes)
            windows = measure_load(binary, port, admin, args, cpu)
    publish([report(timings, windows, args)], notes, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
