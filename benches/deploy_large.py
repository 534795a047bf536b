"""Deploying a large model (issue 16): the time from `ferroserve push FILE --model big --alias
production` (the CLI streams the file in chunks) to the first request without a version that
the new version answers, for an MLP of ~200 MB of FP32 weights (64 -> 7000 -> 7000 -> 10),
with the server's own load-and-warm-up time from the push's answer. Beside it, for scale: the
file's sha256 in this process, and onnxruntime creating a session from the file.

    python benches/deploy_large.py [--pushes N] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np
from report import publish
from server_process import HOST, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher
from tritonclient.grpc import service_pb2, service_pb2_grpc

MODEL = "big"
HIDDEN = 7000
CONFIG = f"""name: "{MODEL}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }} ]
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=3, help="timed pushes [3]")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def write_model(path: Path) -> int:
    sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    save(mlp_model(hidden=(HIDDEN, HIDDEN)), path)
    return path.stat().st_size


def first_answer_from(url: str, version: str, timeout_s: float = 120.0) -> None:
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(np.zeros((1, 64), np.float32).tobytes())
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            if stub.ModelInfer(request, timeout=30).model_version == version:
                return
    raise RuntimeError(f"version {version} answered nothing within {timeout_s} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-deploy-large-") as tmp:
        work = Path(tmp)
        model_file = work / "big.onnx"
        size = write_model(model_file)
        (work / "repository" / MODEL / "1").mkdir(parents=True)
        (work / "repository" / MODEL / "config.pbtxt").write_text(CONFIG)
        (work / "repository" / MODEL / "1" / "model.onnx").write_bytes(model_file.read_bytes())
        started = time.perf_counter()
        hashlib.sha256(model_file.read_bytes()).hexdigest()
        sha_s = time.perf_counter() - started
        import onnxruntime as ort

        started = time.perf_counter()
        ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        session_s = time.perf_counter() - started
        launcher, env = ferroserve_launcher(notes)
        port = free_port()
        argv_ = [
            *launcher,
            "serve",
            "--model-repository",
            str(work / "repository"),
            "--grpc-port",
            str(port),
            "--no-allow-metrics",
        ]
        rows = []
        try:
            with serving(argv_, port, work / "server.log", env):
                url = f"{HOST}:{port}"
                for _ in range(args.pushes):
                    started = time.perf_counter()
                    done = subprocess.run(
                        [
                            *launcher,
                            "push",
                            str(model_file),
                            "--model",
                            MODEL,
                            "--alias",
                            "production",
                            "--server",
                            url,
                            "--json",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        env=env,
                    )
                    answer = json.loads(done.stdout)
                    version = str(answer["version"]["version"])
                    first_answer_from(url, version)
                    total = time.perf_counter() - started
                    load_s = answer.get("load_seconds", answer.get("loadSeconds", 0.0))
                    rows.append((total, float(load_s)))
        except ServerFailed as error:
            print(f"the server failed to start: {error}", file=sys.stderr)
            return 1
    table = ["| push | to first answer s | server load + warm-up s |", "|---|---|---|"]
    table += [f"| {i + 1} | {t:.2f} | {s:.2f} |" for i, (t, s) in enumerate(rows)]
    median_total = statistics.median(t for t, _ in rows)
    notes = [
        f"Model: MLP 64 -> {HIDDEN} -> {HIDDEN} -> 10, {size / 1e6:.0f} MB ONNX file; "
        f"`ferroserve push --alias production --json` (a new CLI process, chunked upload, "
        f"sha256 checked at load) until a request without a version is answered by the new "
        f"version. Median {median_total:.2f} s.",
        f"For scale, in this process: sha256 of the file {sha_s:.2f} s; onnxruntime creating a "
        f"CPU session from it {session_s:.2f} s.",
        *notes,
    ]
    publish([table], notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
