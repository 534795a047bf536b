"""KIND_GPU instance groups: without a working CUDA provider the model fails to load with a reason
naming CUDAExecutionProvider (no silent CPU fallback) unless `allow_cpu_fallback` is set; with a
GPU it really runs on CUDA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
from support import models as m
from support.repository import add_model
from support.rpc import infer_input
from support.server import ServerProcess

CUDA = "CUDAExecutionProvider"

GPU_CONFIG = """\
name: "{name}"
max_batch_size: 8
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ kind: KIND_GPU count: 1 gpus: [ 0 ] }} ]
{extra}
"""
FALLBACK = 'parameters { key: "allow_cpu_fallback" value: { string_value: "true" } }'


def cuda_unavailable_reason(probe_dir: Path) -> str | None:
    """None when onnxruntime really runs on CUDA here, else why not. onnxruntime-gpu lists
    CUDAExecutionProvider as available even on machines without a GPU (it falls back to CPU when
    a session is created), so a tiny session is the real probe."""
    available = ort.get_available_providers()
    if CUDA not in available:
        return f"onnxruntime offers only {available}"
    path = probe_dir / "probe.onnx"
    path.write_bytes(m.identity_model("FP32", [1]).SerializeToString())
    try:
        session = ort.InferenceSession(str(path), providers=[CUDA, "CPUExecutionProvider"])
    except Exception as error:
        return f"{CUDA} failed to start: {error}"
    if session.get_providers()[0] != CUDA:
        return f"{CUDA} is compiled in but could not start (no GPU, or CUDA/cuDNN missing)"
    return None


@pytest.fixture(scope="module")
def cuda_missing(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    return cuda_unavailable_reason(tmp_path_factory.mktemp("cuda-probe"))


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("gpu-repository")
    model = m.identity_model("FP32", ["batch", 4])
    add_model(root, "gpu_strict", model, GPU_CONFIG.format(name="gpu_strict", extra=""))
    add_model(root, "gpu_fallback", model, GPU_CONFIG.format(name="gpu_fallback", extra=FALLBACK))
    log = tmp_path_factory.mktemp("logs") / "gpu-server.log"
    with ServerProcess(root, log) as process:
        process.wait_settled(["gpu_strict", "gpu_fallback"])
        yield process


@pytest.fixture(scope="module")
def gpu_client(gpu_server: ServerProcess) -> Iterator[triton_grpc.InferenceServerClient]:
    with triton_grpc.InferenceServerClient(gpu_server.url) as client:
        yield client


def _roundtrip(client: triton_grpc.InferenceServerClient, name: str) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    result = client.infer(name, [infer_input("INPUT0", x, "FP32")])
    assert result.as_numpy("OUTPUT0").tobytes() == x.tobytes()


def test_gpu_model_without_cuda_fails_to_load_with_reason(
    cuda_missing: str | None, gpu_client: triton_grpc.InferenceServerClient
) -> None:
    if cuda_missing is None:
        pytest.skip("this machine has a working CUDA provider; the no-CUDA path cannot happen")
    rows = {row.name: row for row in gpu_client.get_model_repository_index().models}
    strict = rows["gpu_strict"]
    assert strict.state == "UNAVAILABLE"
    assert CUDA in strict.reason, strict.reason
    assert "cuDNN" in strict.reason or "CUDA 12" in strict.reason, strict.reason  # what is missing
    assert "allow_cpu_fallback" in strict.reason, strict.reason  # and how to accept CPU
    assert not gpu_client.is_model_ready("gpu_strict")
    assert not gpu_client.is_server_ready()  # a selected model failed


def test_gpu_model_with_cpu_fallback_serves(
    gpu_client: triton_grpc.InferenceServerClient,
) -> None:
    assert gpu_client.is_model_ready("gpu_fallback")
    _roundtrip(gpu_client, "gpu_fallback")
    config = gpu_client.get_model_config("gpu_fallback").config
    assert config.parameters["allow_cpu_fallback"].string_value == "true"


@pytest.mark.gpu
def test_gpu_model_runs_on_cuda(
    cuda_missing: str | None,
    gpu_client: triton_grpc.InferenceServerClient,
    gpu_server: ServerProcess,
) -> None:
    if cuda_missing is not None:
        pytest.skip(f"no CUDA execution provider: {cuda_missing}")
    assert gpu_client.is_model_ready("gpu_strict"), gpu_server.log()
    assert gpu_client.is_server_ready()
    _roundtrip(gpu_client, "gpu_strict")
    assert f"'gpu_strict' version 1 ready on {CUDA}" in gpu_server.log()
