"""The REST side of benches/http_rest.py: the peers' v2 REST endpoints (KServe's ModelServer and
MLServer, from benches/peers' environments under bench-results/venvs, serving the same MLP
file with onnxruntime), the native client over REST (`ferroserve-loadgen run --http`) and the
one-call answer check every REST endpoint gets before it is measured (JSON or binary tensors,
against onnxruntime in-process on the same file). Triton's own server is
not among the peers: no tritonserver build installs on this machine (docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from inprocess_ort import cpu_session
from measurement import Measurement, MeasurementFailed
from peers.load import parse
from peers.repositories import mlserver_repository
from peers.servers import PEERS_DIR
from peers.venvs import KSERVE, MLSERVER, Prepared, prepare
from server_process import HOST, free_port, serving

MODEL = "mlp"
ANSWER_TIMEOUT_S = 30.0
# Servers sum in different orders; outputs agree to float32 rounding.
TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A started server: its pid (for CPU samples), gRPC port and REST port."""

    pid: int
    grpc_port: int
    http_port: int


@dataclass(frozen=True, slots=True)
class Peer:
    """How to start one peer for a round: argv (gRPC port, REST port) and environment."""

    name: str
    argv: list[str]
    grpc_port: int
    http_port: int
    env: dict[str, str]


def environments(notes: list[str]) -> dict[str, Prepared]:
    """The peers' environments (created on first use), each prepared once per run; a note
    gives their versions, or says why one is left out."""
    prepared = {"KServe": prepare(KSERVE), "MLServer": prepare(MLSERVER)}
    for name, environment in prepared.items():
        if environment.python is None:
            notes.append(f"{name} left out: {environment.error}")
        else:
            notes.append(f"{name}: {environment.versions} (benches/peers' environment).")
    return {name: env for name, env in prepared.items() if env.python is not None}


def peers(
    environments: dict[str, Prepared], model_file: Path, workdir: Path, round_: int
) -> list[Peer]:
    """KServe and MLServer for one round, as benches/peers starts them (KServe with its
    per-request log lines off), on fresh ports."""
    started = []
    kserve, mlserver = environments.get("KServe"), environments.get("MLServer")
    if kserve is not None and kserve.python is not None:
        grpc_port, http_port = free_port(), free_port()
        argv = [
            str(kserve.python), str(PEERS_DIR / "kserve_server.py"),
            "--models-dir", str(model_file.parent), "--grpc_port", str(grpc_port),
            "--http_port", str(http_port), "--enable_latency_logging", "false",
        ]  # fmt: skip
        env = {**os.environ, "KSERVE_LOGLEVEL": "WARNING"}
        started.append(Peer("KServe", argv, grpc_port, http_port, env))
    if mlserver is not None and mlserver.python is not None:
        grpc_port, http_port = free_port(), free_port()
        root = workdir / f"mlserver-{round_}"
        repository = mlserver_repository(
            root / "repository", {MODEL: model_file}, grpc_port, http_port, free_port()
        )
        # Only the runtime module goes on the workers' path, not the benchmark's own modules.
        (root / "runtime").mkdir()
        shutil.copyfile(PEERS_DIR / "mlserver_runtime.py", root / "runtime" / "mlserver_runtime.py")
        env = {**os.environ, "PYTHONPATH": str(root / "runtime")}
        argv = [str(mlserver.python.parent / "mlserver"), "start", str(repository)]
        started.append(Peer("MLServer", argv, grpc_port, http_port, env))
    return started


@contextmanager
def serving_peer(peer: Peer, log: Path) -> Iterator[Endpoint]:
    """The peer running until the block ends (ready once its gRPC ServerReady says so)."""
    with serving(peer.argv, peer.grpc_port, log, peer.env) as pid:
        yield Endpoint(pid, peer.grpc_port, peer.http_port)


class Reference:
    """onnxruntime in-process on the served file: the answer every endpoint must give."""

    def __init__(self, model_file: Path) -> None:
        self._session = cpu_session(model_file)
        self.batch = np.random.default_rng(7).standard_normal((2, 64)).astype(np.float32)
        (expected,) = self._session.run(None, {"input": self.batch})
        self.expected = np.asarray(expected)

    def check(self, http_port: int, binary: bool) -> None:
        """One REST call whose answer must match onnxruntime's; raises MeasurementFailed."""
        try:
            got = rest_infer(http_port, self.batch, binary)
        except (OSError, ValueError, LookupError, TypeError, AttributeError) as error:
            raise MeasurementFailed(f"first call: {type(error).__name__}: {error}") from error
        if got.shape != self.expected.shape:
            raise MeasurementFailed(f"answer shape {got.shape}, expected {self.expected.shape}")
        if not np.allclose(got, self.expected, atol=TOLERANCE):
            diff = float(np.max(np.abs(got - self.expected)))
            raise MeasurementFailed(f"answer differs from onnxruntime in-process by {diff:.3g}")


def rest_infer(port: int, batch: np.ndarray, binary: bool) -> np.ndarray:
    """POST /v2/models/mlp/infer with `batch` as JSON or binary tensors; the FP32 `output`.
    Written on a socket (one request, the connection closed after it): the check shares no
    code with the clients it checks for."""
    tensor: dict[str, object] = {"name": "input", "shape": list(batch.shape), "datatype": "FP32"}
    headers = {"Content-Type": "application/json"}
    if binary:
        tensor["parameters"] = {"binary_data_size": batch.nbytes}
        header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
        body = header.encode() + batch.tobytes()
        headers = {"Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": str(len(header))}  # fmt: skip
    else:
        tensor["data"] = batch.ravel().tolist()
        body = json.dumps({"inputs": [tensor]}).encode()
    status, fields, answer = _post(port, f"/v2/models/{MODEL}/infer", body, headers)
    if status != 200:
        raise ValueError(f"HTTP {status}: {answer[:300].decode(errors='replace')}")
    length = int(fields.get("inference-header-content-length", len(answer)))
    outputs = json.loads(answer[:length])["outputs"]
    offset = length
    for output in outputs:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if output["name"] == "output":
            shape = tuple(output["shape"])
            if size is None:
                return np.asarray(output["data"], dtype=np.float32).reshape(shape)
            return np.frombuffer(answer[offset : offset + size], np.float32).reshape(shape)
        offset += size or 0
    raise KeyError("no output named 'output'")


def _post(
    port: int, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 POST (connection closed after it): status, headers (lower-case), body."""
    fields = {"Host": f"{HOST}:{port}", "Content-Length": str(len(body)), "Connection": "close"}
    head = [f"POST {path} HTTP/1.1"]
    head += [f"{key}: {value}" for key, value in {**fields, **headers}.items()]
    with socket.create_connection((HOST, port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    status_and_fields, _, content = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = status_and_fields.decode("latin-1").split("\r\n")
    answer_fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        answer_fields[key.strip().lower()] = value.strip()
    if "chunked" in answer_fields.get("transfer-encoding", ""):
        content = _dechunk(content)
    return int(status_line.split()[1]), answer_fields, content


def _dechunk(data: bytes) -> bytes:
    """A chunked body's content."""
    out, rest = [], data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class ClientFigures:
    """A window measured by a client, and the client's own CPU (cores busy on average)."""

    measurement: Measurement
    client_cores: float | None


def native(
    binary: Path,
    port: int,
    concurrency: int,
    encoding: str | None,
    timing: tuple[float, float],
) -> ClientFigures:
    """`ferroserve-loadgen run` on the MLP (one FP32 [1, 64] row per request): gRPC when
    `encoding` is None, else REST with `json` or `binary` tensors. Any failed answer fails it."""
    warmup_s, window_s = timing
    argv = [
        str(binary), "run", "--target", f"{HOST}:{port}", "--model", MODEL,
        "--input", "input:FP32:64", "--concurrency", str(concurrency),
        "--warmup-s", str(warmup_s), "--window-s", str(window_s),
        "--timeout-s", str(ANSWER_TIMEOUT_S),
        *(["--http", encoding] if encoding else []),
    ]  # fmt: skip
    limit_s = warmup_s + window_s + 2 * ANSWER_TIMEOUT_S
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=limit_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise MeasurementFailed(f"client ran past {limit_s:.0f} s") from error
    if done.returncode != 0:
        raise MeasurementFailed(f"ferroserve-loadgen: {done.stderr.strip()[-300:]}")
    cores = json.loads(done.stdout)["client_cpu"]
    return ClientFigures(parse(done.stdout).measurement, cores)
