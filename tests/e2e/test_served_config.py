"""Configuration end to end: models served without config.pbtxt (completed from the graph and
returned by ModelConfig), dynamic non-batch dims, `reshape`, and version policies."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support.models import reference
from support.repository import RESHAPED_VARIABLE, model_file
from support.rpc import assert_triton_error, infer_input
from support.server import ServerProcess
from tritonclient.grpc.model_config_pb2 import DataType

# -- no config.pbtxt -----------------------------------------------------------------------------


def test_model_config_is_completed_from_the_graph(
    client: triton_grpc.InferenceServerClient, main_repository: Path
) -> None:
    assert not (main_repository / "mlp" / "config.pbtxt").exists()
    config = client.get_model_config("mlp").config
    assert config.name == "mlp"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64  # dynamic dim 0 -> batching with the default size
    # Triton's onnxruntime backend adds a dynamic batcher to a model it completes as batching.
    assert config.HasField("dynamic_batching")
    assert [(t.name, DataType.Name(t.data_type), list(t.dims)) for t in config.input] == [
        ("input", "TYPE_FP32", [64])
    ]
    assert config.default_model_filename == "model.onnx"
    assert [(t.name, list(t.dims)) for t in config.output] == [("output", [10])]


def test_unbatched_model_config_is_completed(client: triton_grpc.InferenceServerClient) -> None:
    config = client.get_model_config("identity_bytes_nobatch", as_json=True)["config"]
    assert config.get("max_batch_size", 0) == 0
    assert config["input"][0]["data_type"] == "TYPE_STRING"
    assert config["input"][0]["dims"] == ["2", "3"]


def test_model_without_config_serves(
    client: triton_grpc.InferenceServerClient, main_repository: Path
) -> None:
    metadata = client.get_model_metadata("mlp")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("input", "FP32", [-1, 64])
    ]
    x = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 64)
    result = client.infer("mlp", [infer_input("input", x, "FP32")])
    (expected,) = reference(model_file(main_repository, "mlp"), {"input": x})
    assert result.as_numpy("output").tobytes() == expected.tobytes()


def test_unsupported_field_is_warned_and_model_serves(
    server: ServerProcess, client: triton_grpc.InferenceServerClient
) -> None:
    assert "'response_cache' is not supported" in server.log()
    x = np.ones((2, 4), np.float32)
    result = client.infer("with_unsupported", [infer_input("INPUT0", x, "FP32")])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)


# -- dynamic non-batch dim and reshape -----------------------------------------------------------


def test_dynamic_dim_accepts_any_size(client: triton_grpc.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("dynamic_dim")
    assert list(metadata.inputs[0].shape) == [-1, -1]
    for width in (1, 5, 17):
        x = np.arange(2 * width, dtype=np.float32).reshape(2, width)
        result = client.infer("dynamic_dim", [infer_input("INPUT0", x, "FP32")])
        assert result.as_numpy("OUTPUT0").tobytes() == x.tobytes()
        assert list(result.get_response().outputs[0].shape) == [2, width]


def test_reshape_config(client: triton_grpc.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("reshaped")
    assert list(metadata.inputs[0].shape) == [-1, 6]  # clients see config dims, not the graph's
    assert list(metadata.outputs[0].shape) == [-1, 6]
    x = np.arange(18, dtype=np.float32).reshape(3, 6)
    result = client.infer("reshaped", [infer_input("INPUT0", x, "FP32")])
    assert list(result.get_response().outputs[0].shape) == [3, 6]
    assert result.as_numpy("OUTPUT0").tobytes() == x.tobytes()


@pytest.mark.parametrize("name", sorted(RESHAPED_VARIABLE))
def test_reshape_with_several_variable_dims(
    client: triton_grpc.InferenceServerClient, name: str
) -> None:
    """dims [-1, 2, 3, -1] fed as [-1, 6, -1]: each -1 keeps its own size both ways, on the
    native engine and on onnxruntime's Python binding."""
    assert list(client.get_model_metadata(name).inputs[0].shape) == [-1, -1, 2, 3, -1]
    x = np.arange(2 * 5 * 6 * 7, dtype=np.float32).reshape(2, 5, 2, 3, 7)
    result = client.infer(name, [infer_input("INPUT0", x, "FP32")])
    assert list(result.get_response().outputs[0].shape) == [2, 5, 2, 3, 7]
    assert result.as_numpy("OUTPUT0").tobytes() == x.tobytes()


def test_reshape_rejects_the_graph_shape(client: triton_grpc.InferenceServerClient) -> None:
    x = np.zeros((1, 2, 3), np.float32)
    assert_triton_error(
        lambda: client.infer("reshaped", [infer_input("INPUT0", x, "FP32")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INPUT0",
        "[-1, 6]",
        "[1, 2, 3]",
    )


# -- version policy: latest { num_versions: 2 } over versions 1, 2, 3 ----------------------------


def _plus(client: triton_grpc.InferenceServerClient, version: str = "") -> tuple[str, float]:
    x = np.zeros((1, 4), np.float32)
    result = client.infer("versioned", [infer_input("INPUT0", x, "FP32")], model_version=version)
    return result.get_response().model_version, float(result.as_numpy("OUTPUT0")[0, 0])


def test_latest_two_versions_serve(client: triton_grpc.InferenceServerClient) -> None:
    assert _plus(client, "2") == ("2", 2.0)
    assert _plus(client, "3") == ("3", 3.0)
    assert client.is_model_ready("versioned", "2")
    assert client.is_model_ready("versioned", "3")
    assert not client.is_model_ready("versioned", "1")


def test_no_version_means_newest(client: triton_grpc.InferenceServerClient) -> None:
    assert _plus(client) == ("3", 3.0)
    assert client.is_model_ready("versioned")


def test_version_outside_policy_is_not_found(client: triton_grpc.InferenceServerClient) -> None:
    message = assert_triton_error(
        lambda: _plus(client, "1"), grpc.StatusCode.NOT_FOUND, "versioned", "version 1"
    )
    assert "2" in message and "3" in message  # says which versions there are
    assert_triton_error(
        lambda: client.get_model_metadata("versioned", "1"), grpc.StatusCode.NOT_FOUND, "versioned"
    )


def test_versioned_metadata_and_config(client: triton_grpc.InferenceServerClient) -> None:
    assert list(client.get_model_metadata("versioned").versions) == ["2", "3"]
    assert client.get_model_metadata("versioned", "2").name == "versioned"
    config = client.get_model_config("versioned").config
    assert config.version_policy.latest.num_versions == 2
    stats = client.get_inference_statistics("versioned").model_stats
    assert sorted(s.version for s in stats) == ["2", "3"]
