"""KIND_GPU instance groups. Without a working CUDA provider the model fails to load with a
reason naming CUDAExecutionProvider and what is missing (no silent CPU fallback) unless
`allow_cpu_fallback` is set. With a GPU (the `gpu` tests; they skip with the reason elsewhere) it
runs on the native engine through CUDA: answered by the Rust front end, batched, several
instances per GPU, results equal to the CPU's within float tolerance, TensorRT refused with a
reason where its libraries are missing, a GPU that does not exist refused by name, and string
models on the native engine too (CUDA runs their numeric operators, the CPU their string ones)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve.demo import mlp_model
from ferroserve.server.app import Server
from support import models as m
from support.gpu import CUDA, TENSORRT, cuda_unavailable_reason
from support.inprocess import native_calls, python_calls, serve
from support.repository import add_model, model_file
from support.rpc import decode_bytes, encode_bytes, infer_input
from support.server import ServerProcess
from tritonclient.grpc import service_pb2 as pb

GPU_CONFIG = """\
name: "{name}"
max_batch_size: 8
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ kind: KIND_GPU count: 1 gpus: [ {gpu} ] }} ]
{extra}
"""
MLP_CONFIG = """\
name: "gpu_mlp"
max_batch_size: 32
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 10 ] } ]
instance_group [ { kind: KIND_GPU count: 2 gpus: [ 0 ] } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
"""
STRING_CONFIG = """\
name: "gpu_strings"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ 2 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ 2 ] } ]
instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]
"""
MIXED_CONFIG = """\
name: "gpu_mixed"
max_batch_size: 16
input [
  { name: "TEXT" data_type: TYPE_STRING dims: [ 2 ] },
  { name: "X" data_type: TYPE_FP32 dims: [ 3 ] }
]
output [
  { name: "ECHO" data_type: TYPE_STRING dims: [ 2 ] },
  { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "DOUBLE" data_type: TYPE_FP32 dims: [ 3 ] }
]
instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]
dynamic_batching { max_queue_delay_microseconds: 100000 }
"""
FALLBACK = 'parameters { key: "allow_cpu_fallback" value: { string_value: "true" } }'
HEURISTIC = 'parameters { key: "cudnn_conv_algo_search" value: { string_value: "1" } }'
TENSORRT_ACCELERATOR = """optimization { execution_accelerators {
  gpu_execution_accelerator: [
    { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } }
  ]
} }"""
MODELS = [
    "gpu_strict",
    "gpu_heuristic",
    "gpu_fallback",
    "gpu_mlp",
    "gpu_missing_device",
    "gpu_tensorrt",
    "gpu_strings",
]

needs_gpu = pytest.mark.gpu


def skip_without_cuda() -> None:
    reason = cuda_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no working CUDA execution provider: {reason}")


@pytest.fixture(scope="module")
def gpu_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gpu-repository")
    identity = m.identity_model("FP32", ["batch", 4])
    add_model(root, "gpu_strict", identity, GPU_CONFIG.format(name="gpu_strict", gpu=0, extra=""))
    add_model(
        root,
        "gpu_fallback",
        identity,
        GPU_CONFIG.format(name="gpu_fallback", gpu=0, extra=FALLBACK),
    )
    add_model(
        root,
        "gpu_heuristic",
        identity,
        GPU_CONFIG.format(name="gpu_heuristic", gpu=0, extra=HEURISTIC),
    )
    add_model(root, "gpu_mlp", mlp_model(), MLP_CONFIG)
    add_model(
        root,
        "gpu_missing_device",
        identity,
        GPU_CONFIG.format(name="gpu_missing_device", gpu=63, extra=""),
    )
    add_model(
        root,
        "gpu_tensorrt",
        identity,
        GPU_CONFIG.format(name="gpu_tensorrt", gpu=0, extra=TENSORRT_ACCELERATOR),
    )
    add_model(root, "gpu_strings", m.identity_model("BYTES", ["batch", 2]), STRING_CONFIG)
    return root


@pytest.fixture(scope="module")
def gpu_server(
    gpu_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "gpu-server.log"
    env = {**os.environ, "FERROSERVE_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    with ServerProcess(gpu_repository, log, env=env) as process:
        process.wait_settled(MODELS)
        yield process


@pytest.fixture(scope="module")
def gpu_client(gpu_server: ServerProcess) -> Iterator[triton_grpc.InferenceServerClient]:
    with triton_grpc.InferenceServerClient(gpu_server.url) as client:
        yield client


def index(client: triton_grpc.InferenceServerClient) -> dict[str, object]:
    return {row.name: row for row in client.get_model_repository_index().models}


def _roundtrip(client: triton_grpc.InferenceServerClient, name: str) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    result = client.infer(name, [infer_input("INPUT0", x, "FP32")])
    assert result.as_numpy("OUTPUT0").tobytes() == x.tobytes()


# -- without a GPU (CI) -------------------------------------------------------------------------


def test_gpu_model_without_cuda_fails_to_load_with_reason(
    gpu_client: triton_grpc.InferenceServerClient,
) -> None:
    missing = cuda_unavailable_reason()
    if missing is None:
        pytest.skip("this machine has a working CUDA provider; the no-CUDA path cannot happen")
    strict = index(gpu_client)["gpu_strict"]
    assert strict.state == "UNAVAILABLE"
    assert CUDA in strict.reason, strict.reason
    assert "cuDNN" in strict.reason, strict.reason  # what to install
    assert "allow_cpu_fallback" in strict.reason, strict.reason  # and how to accept CPU
    assert not gpu_client.is_model_ready("gpu_strict")
    assert not gpu_client.is_server_ready()  # a selected model failed


def test_gpu_model_with_cpu_fallback_serves(
    gpu_client: triton_grpc.InferenceServerClient, gpu_server: ServerProcess
) -> None:
    assert gpu_client.is_model_ready("gpu_fallback")
    _roundtrip(gpu_client, "gpu_fallback")
    config = gpu_client.get_model_config("gpu_fallback").config
    assert config.parameters["allow_cpu_fallback"].string_value == "true"
    if cuda_unavailable_reason() is not None:
        assert "'gpu_fallback': CUDAExecutionProvider unavailable, running on CPU" in (
            gpu_server.log()
        )


# -- with a GPU ----------------------------------------------------------------------------------


@needs_gpu
def test_gpu_model_runs_natively_on_cuda(
    gpu_client: triton_grpc.InferenceServerClient, gpu_server: ServerProcess
) -> None:
    skip_without_cuda()
    assert gpu_client.is_model_ready("gpu_strict"), gpu_server.log()
    _roundtrip(gpu_client, "gpu_strict")
    log = gpu_server.log()
    assert f"'gpu_strict' version 1 ready on {CUDA}" in log
    assert "'gpu_strict': 1 instance(s) on GPU(s) [0], pinned host memory for batches" in log


def test_cudnn_conv_algo_search_is_accepted_by_cuda(
    gpu_client: triton_grpc.InferenceServerClient, gpu_server: ServerProcess
) -> None:
    """Config parameter `cudnn_conv_algo_search` reaches the CUDA provider, which takes it."""
    skip_without_cuda()
    assert gpu_client.is_model_ready("gpu_heuristic"), gpu_server.log()
    _roundtrip(gpu_client, "gpu_heuristic")
    assert f"'gpu_heuristic' version 1 ready on {CUDA}" in gpu_server.log()


@needs_gpu
def test_gpu_mlp_matches_cpu_and_batches_on_two_instances(
    gpu_client: triton_grpc.InferenceServerClient,
    gpu_repository: Path,
    gpu_server: ServerProcess,
) -> None:
    skip_without_cuda()
    assert "'gpu_mlp': 2 instance(s) on GPU(s) [0]" in gpu_server.log()
    rows = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    (expected,) = m.reference(model_file(gpu_repository, "gpu_mlp"), {"input": rows})

    def one(i: int) -> np.ndarray:
        row = rows[i : i + 1]
        return gpu_client.infer("gpu_mlp", [infer_input("input", row, "FP32")]).as_numpy("output")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(len(rows))))
    # onnxruntime's CUDA provider multiplies FP32 matrices in TF32 on Ampere and later (its
    # default, use_tf32=1): ~1e-3 relative error against the CPU's kernels.
    np.testing.assert_allclose(np.concatenate(answers), expected, rtol=1e-2, atol=5e-3)
    stats = gpu_client.get_inference_statistics("gpu_mlp").model_stats[0]
    assert stats.inference_count == len(rows)
    assert stats.execution_count < stats.inference_count  # concurrent requests were batched


@needs_gpu
def test_gpu_id_that_does_not_exist_is_refused(
    gpu_client: triton_grpc.InferenceServerClient,
) -> None:
    skip_without_cuda()
    row = index(gpu_client)["gpu_missing_device"]
    assert row.state == "UNAVAILABLE"
    assert "ordinal" in row.reason.lower() or "device" in row.reason.lower(), row.reason


@needs_gpu
def test_tensorrt_runs_or_says_what_is_missing(
    gpu_client: triton_grpc.InferenceServerClient, gpu_server: ServerProcess
) -> None:
    skip_without_cuda()
    row = index(gpu_client)["gpu_tensorrt"]
    if ctypes.util.find_library("nvinfer") is None:
        assert row.state == "UNAVAILABLE"
        assert TENSORRT in row.reason, row.reason
        assert "libnvinfer" in row.reason, row.reason
    else:
        assert row.state == "READY", row.reason
        _roundtrip(gpu_client, "gpu_tensorrt")
        assert f"'gpu_tensorrt' version 1 ready on {TENSORRT}" in gpu_server.log()


@needs_gpu
def test_gpu_string_model_runs_natively(
    gpu_client: triton_grpc.InferenceServerClient, gpu_server: ServerProcess
) -> None:
    skip_without_cuda()
    assert gpu_client.is_model_ready("gpu_strings"), index(gpu_client)["gpu_strings"]
    words = np.array([[b"gpu", "\u00e9t\u00e9".encode()]], dtype=np.object_)
    answer = gpu_client.infer("gpu_strings", [infer_input("INPUT0", words, "BYTES")])
    assert answer.as_numpy("OUTPUT0").tolist() == words.tolist()
    log = gpu_server.log()
    assert "'gpu_strings' version 1 ready on CUDAExecutionProvider" in log
    assert "'gpu_strings': 1 instance(s) on GPU(s) [0]" in log  # the native engine's line


@needs_gpu
def test_gpu_mixed_string_model_is_answered_natively_and_batched(tmp_path: Path) -> None:
    """String and numeric tensors in one GPU model, batched across requests: string outputs
    stay in host memory, numeric ones come back through pinned memory; no call reaches
    Python, and the answers equal onnxruntime's on the CPU."""
    skip_without_cuda()
    add_model(tmp_path, "gpu_mixed", m.mixed_text_model(), MIXED_CONFIG)
    sent = [
        (
            [b"t" * (i * 13), b"\0" if i % 2 else b""] * rows,
            np.random.default_rng(i).standard_normal((rows, 3)).astype(np.float32),
        )
        for i, rows in enumerate([1, 3, 2, 1, 2])
    ]

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )

        def message(text: list[bytes], x: np.ndarray) -> pb.ModelInferRequest:
            request = pb.ModelInferRequest(model_name="gpu_mixed")
            request.inputs.add(name="TEXT", datatype="BYTES", shape=[x.shape[0], 2])
            request.inputs.add(name="X", datatype="FP32", shape=list(x.shape))
            request.raw_input_contents.extend([encode_bytes(text), x.tobytes()])
            return request

        answers = await asyncio.gather(*(infer(message(t, x), timeout=30) for t, x in sent))
        for answer, (text, x) in zip(answers, sent, strict=True):
            feeds = {"TEXT": np.array(text, dtype=object).reshape(-1, 2), "X": x}
            echo, label, double = m.reference_strings(model_file(tmp_path, "gpu_mixed"), feeds)
            assert decode_bytes(answer.raw_output_contents[0]) == list(echo.reshape(-1))
            assert decode_bytes(answer.raw_output_contents[1]) == list(label.reshape(-1))
            np.testing.assert_allclose(
                np.frombuffer(answer.raw_output_contents[2], np.float32).reshape(x.shape),
                double,
            )
        assert native_calls(server) == {"OK": len(sent)}
        assert python_calls(server) == {}

    serve(tmp_path, scenario)


@needs_gpu
def test_gpu_inference_never_reaches_python(tmp_path: Path) -> None:
    skip_without_cuda()
    add_model(tmp_path, "gpu_mlp", mlp_model(), MLP_CONFIG)
    rows = np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        message = pb.ModelInferRequest(model_name="gpu_mlp")
        message.inputs.add(name="input", datatype="FP32", shape=[2, 64])
        message.raw_input_contents.append(rows.tobytes())
        answer = await infer(message, timeout=30)
        assert np.frombuffer(answer.raw_output_contents[0], np.float32).shape == (20,)
        assert native_calls(server) == {"OK": 1}
        assert python_calls(server) == {}

    serve(tmp_path, scenario)
