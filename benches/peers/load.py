"""The one load client every server gets in this benchmark: `ferroserve-loadgen run`
(benches/loadgen), a native closed-loop v2 gRPC client (hyper's HTTP/2, the request built and
framed once, one request in flight per worker, unary or one ModelStreamInfer stream per
worker, latencies in HDR histograms). It needs only ModelInfer, so it drives KServe and
MLServer too, which perf_analyzer cannot (they have no ModelConfig RPC), and it is cheap
enough that the servers, not the client, set the pace: it reports its own CPU use, and the
report flags any row where the client's core was busy.

Also the one-call answer check every server gets before it is measured (grpc's Python client:
one call, so its speed does not matter).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from measurement import Measurement, MeasurementFailed
from server_process import HOST, CpuSampler
from tritonclient.grpc import service_pb2

from .models import INPUT, REPO_ROOT, ModelSpec

LOADGEN = REPO_ROOT / "target" / "release" / "ferroserve-loadgen"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
# No answer within this long means the server is stuck; the run fails instead of hanging.
ANSWER_TIMEOUT_S = 30.0
BUILD_TIMEOUT_S = 1800
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
# Servers sum in different orders (batched or not); outputs agree to float32 rounding.
TOLERANCE = 1e-4


def build_loadgen() -> Path:
    """`cargo build --release -p ferroserve-loadgen` into the workspace's own target/ (a
    CARGO_TARGET_DIR in the environment is ignored, so the binary is where the runner looks)."""
    env = {key: value for key, value in os.environ.items() if key != "CARGO_TARGET_DIR"}
    print("building ferroserve-loadgen (cargo build --release)", file=sys.stderr)
    subprocess.run(
        ["cargo", "build", "--release", "-p", "ferroserve-loadgen"],
        cwd=REPO_ROOT, env=env, check=True, timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    return LOADGEN


@dataclass(frozen=True, slots=True)
class Window:
    """One `ferroserve-loadgen run` window against ferroserve, with the server's CPU cost."""

    infer_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_request: float


def measure_window(
    binary: Path,
    port: int,
    model: str,
    flags: Sequence[str],
    timing: tuple[float, float],
    cpu: CpuSampler,
) -> Window:
    """c=16-style closed-loop run of `model` (one FP32 [1, 64] input) with extra `flags`
    (e.g. --concurrency, --parameter, --typed); `timing`: (warm-up s, window s). Raises on any
    failed answer. The server's CPU over the window comes from `cpu` (sampled every 50 ms, so
    it waits two periods for the window's last sample)."""
    warmup_s, window_s = timing
    argv = [
        str(binary), "run", "--target", f"{HOST}:{port}", "--model", model,
        "--input", "input:FP32:64", "--warmup-s", str(warmup_s), "--window-s", str(window_s),
        "--timeout-s", str(ANSWER_TIMEOUT_S), *flags,
    ]  # fmt: skip
    limit_s = warmup_s + window_s + 2 * ANSWER_TIMEOUT_S
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ferroserve-loadgen: {done.stderr.strip()[-300:]}")
    m = parse(done.stdout).measurement  # raises MeasurementFailed on any failed answer
    time.sleep(0.1)
    server_s = cpu.cpu_s_between(m.start_ns, m.end_ns)
    return Window(m.infer_per_s, m.p50_ms, m.p99_ms, 1e6 * server_s / max(1, m.inferences))


@dataclass(frozen=True, slots=True)
class ClientRun:
    """One measured row: the figure and how busy the client's cores were (1.0 = all of
    them, the whole window)."""

    measurement: Measurement
    client_busy: float | None


class NativeClient:
    """`ferroserve-loadgen run` for one row at a time: warm-up, then a fixed window."""

    def __init__(self, binary: Path, window_s: float, warmup_s: float) -> None:
        self.binary = binary
        self._window_s = window_s
        self._warmup_s = warmup_s

    @property
    def description(self) -> str:
        return (
            "ferroserve-loadgen run (benches/loadgen: Rust, hyper HTTP/2, closed loop, one "
            "request in flight per worker, one HTTP/2 connection per worker, the "
            "ModelInferRequest built once with raw FP32 input, every answer's status checked), "
            "the same for every server"
        )

    def measure(
        self,
        port: int,
        served_as: str,
        spec: ModelSpec,
        rows: int,
        concurrency: int,
        streaming: bool,
        window_s: float | None = None,
    ) -> ClientRun:
        """Requests (not rows) per second and their latency at `concurrency`; any failed
        answer fails the row (with the counts by code and the first message)."""
        argv = [
            str(self.binary), "run", "--target", f"{HOST}:{port}", "--model", served_as,
            "--input", f"{INPUT}:FP32:{','.join(map(str, spec.row_shape))}",
            "--rows", str(rows), "--concurrency", str(concurrency),
            "--warmup-s", str(self._warmup_s),
            "--window-s", str(window_s or self._window_s),
            "--timeout-s", str(ANSWER_TIMEOUT_S),
            *(["--stream"] if streaming else []),
        ]  # fmt: skip
        limit_s = self._warmup_s + (window_s or self._window_s) + 2 * ANSWER_TIMEOUT_S
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=limit_s, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise MeasurementFailed(f"client ran past {limit_s:.0f} s") from error
        if done.returncode != 0:
            raise MeasurementFailed(f"client: {done.stderr.strip()[-300:]}")
        return parse(done.stdout)


def parse(output: str) -> ClientRun:
    """The client's JSON line as a Measurement; errors fail the row."""
    report = json.loads(output)
    if report["errors"]:
        counts = ", ".join(f"{code} x{count}" for code, count in report["errors"].items())
        raise MeasurementFailed(f"{counts}; first: {report['first_error']}")
    if report["requests"] == 0:
        raise MeasurementFailed("no call completed inside the measurement window")
    latency = report["latency_us"]
    measurement = Measurement(
        infer_per_s=report["infer_per_s"],
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        start_ns=report["window_start_unix_ns"],
        end_ns=report["window_end_unix_ns"],
        inferences=report["requests"],
    )
    cpu = report["client_cpu"]
    return ClientRun(measurement, None if cpu is None else cpu / max(1, report["threads"]))


def check_answer(
    port: int, model: str, batch: np.ndarray, expected: np.ndarray, streaming: bool
) -> None:
    """One call whose answer must match `expected` (onnxruntime in-process on `batch`)."""
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=INPUT, datatype="FP32")
    tensor.shape.extend(batch.shape)
    request.raw_input_contents.append(batch.tobytes())
    with grpc.insecure_channel(f"{HOST}:{port}", options=CHANNEL_OPTIONS) as channel:
        try:
            if streaming:
                call = channel.stream_stream(
                    MODEL_STREAM_INFER,
                    request_serializer=service_pb2.ModelInferRequest.SerializeToString,
                    response_deserializer=service_pb2.ModelStreamInferResponse.FromString,
                )
                answers = call(iter([request]), timeout=ANSWER_TIMEOUT_S)
                # grpc-stubs type the answers as an iterable only, and cancel() untyped.
                answer = next(iter(answers))
                answers.cancel()  # type: ignore[no-untyped-call]
                if answer.error_message:
                    raise MeasurementFailed(f"stream: {answer.error_message}")
                response = answer.infer_response
            else:
                unary = channel.unary_unary(
                    MODEL_INFER,
                    request_serializer=service_pb2.ModelInferRequest.SerializeToString,
                    response_deserializer=service_pb2.ModelInferResponse.FromString,
                )
                response = unary(request, timeout=ANSWER_TIMEOUT_S)
        except grpc.RpcError as error:
            raise MeasurementFailed(f"first call: {_describe(error)}") from error
    got = output_array(response)
    if got.shape != expected.shape:
        raise MeasurementFailed(f"answer shape {got.shape}, expected {expected.shape}")
    if not np.allclose(got, expected, atol=TOLERANCE):
        raise MeasurementFailed(
            "answer differs from onnxruntime in-process: max |diff| "
            f"{np.max(np.abs(got - expected)):.3g}"
        )


def output_array(response: service_pb2.ModelInferResponse) -> np.ndarray:
    """The first output as an array, from raw contents or typed fp32 contents."""
    output = response.outputs[0]
    if response.raw_output_contents:
        values = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    else:
        values = np.asarray(output.contents.fp32_contents, dtype=np.float32)
    return values.reshape(tuple(output.shape))


def _describe(error: grpc.RpcError) -> str:
    if isinstance(error, grpc.Call):
        return f"{error.code().name}: {error.details()}"
    return str(error) or type(error).__name__
