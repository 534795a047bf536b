"""The error table: each bad request gets the right gRPC status code and a message that names the
input (or model) and says what was expected and what was received."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support import models as m
from support.repository import identity_batch_name, model_file
from support.rpc import (
    assert_rpc_error,
    assert_triton_error,
    encode_bytes,
    infer_input,
    raw_request,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
FP32_BATCH = identity_batch_name("FP32")
BYTES_BATCH = identity_batch_name("BYTES")


def _ones(shape: list[int], dtype: Any = np.float32) -> np.ndarray:
    return np.ones(shape, dtype)


def _add_sub(client: triton_grpc.InferenceServerClient, *tensors: triton_grpc.InferInput) -> Any:
    return client.infer("add_sub", list(tensors))


# -- NOT_FOUND -----------------------------------------------------------------------------------


def test_unknown_model(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: client.infer("no_such_model", [infer_input("A", _ones([1, 4]), "FP32")]),
        grpc.StatusCode.NOT_FOUND,
        "no_such_model",
    )


def test_unknown_version(client: triton_grpc.InferenceServerClient) -> None:
    a = infer_input("A", _ones([1, 4]), "FP32")
    b = infer_input("B", _ones([1, 4]), "FP32")
    assert_triton_error(
        lambda: client.infer("add_sub", [a, b], model_version="9"),
        grpc.StatusCode.NOT_FOUND,
        "add_sub",
        "9",
    )


def test_non_numeric_version(client: triton_grpc.InferenceServerClient) -> None:
    a = infer_input("A", _ones([1, 4]), "FP32")
    b = infer_input("B", _ones([1, 4]), "FP32")
    assert_triton_error(
        lambda: client.infer("add_sub", [a, b], model_version="latest"),
        grpc.StatusCode.NOT_FOUND,
        "add_sub",
        "latest",
    )


def test_unknown_model_metadata_and_config(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: client.get_model_metadata("no_such_model"),
        grpc.StatusCode.NOT_FOUND,
        "no_such_model",
    )
    assert_triton_error(
        lambda: client.get_model_config("no_such_model"), grpc.StatusCode.NOT_FOUND, "no_such_model"
    )
    assert_triton_error(
        lambda: client.get_inference_statistics("no_such_model"),
        grpc.StatusCode.NOT_FOUND,
        "no_such_model",
    )


# -- INVALID_ARGUMENT: tensor names, types, shapes -----------------------------------------------


def test_wrong_datatype(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: _add_sub(
            client,
            infer_input("A", _ones([1, 4], np.int32), "INT32"),
            infer_input("B", _ones([1, 4]), "FP32"),
        ),
        INVALID,
        "'A'",
        "FP32",
        "INT32",
    )


def test_wrong_rank(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: _add_sub(
            client,
            infer_input("A", _ones([1, 4, 1]), "FP32"),
            infer_input("B", _ones([1, 4]), "FP32"),
        ),
        INVALID,
        "'A'",
        "[-1, 4]",
        "[1, 4, 1]",
    )


def test_wrong_dim(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: _add_sub(
            client, infer_input("A", _ones([1, 4]), "FP32"), infer_input("B", _ones([1, 5]), "FP32")
        ),
        INVALID,
        "'B'",
        "[-1, 4]",
        "[1, 5]",
    )


def test_wrong_shape_unbatched(client: triton_grpc.InferenceServerClient) -> None:
    name = "identity_fp32_nobatch"
    assert_triton_error(
        lambda: client.infer(name, [infer_input("INPUT0", _ones([1, 2, 3]), "FP32")]),
        INVALID,
        "INPUT0",
        "[2, 3]",
        "[1, 2, 3]",
    )


def test_missing_input(client: triton_grpc.InferenceServerClient) -> None:
    message = assert_triton_error(
        lambda: _add_sub(client, infer_input("A", _ones([1, 4]), "FP32")),
        INVALID,
        "'B'",
    )
    assert "missing" in message


def test_extra_input(client: triton_grpc.InferenceServerClient) -> None:
    message = assert_triton_error(
        lambda: _add_sub(
            client,
            infer_input("A", _ones([1, 4]), "FP32"),
            infer_input("B", _ones([1, 4]), "FP32"),
            infer_input("C", _ones([1, 4]), "FP32"),
        ),
        INVALID,
        "'C'",
    )
    assert "unexpected" in message or "extra" in message
    assert "'A', 'B'" in message  # says what the model expects


def test_inputs_disagree_on_batch_size(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: _add_sub(
            client, infer_input("A", _ones([2, 4]), "FP32"), infer_input("B", _ones([3, 4]), "FP32")
        ),
        INVALID,
        "batch size",
        "2",
        "3",
    )


def test_batch_larger_than_max_batch_size(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: client.infer(FP32_BATCH, [infer_input("INPUT0", _ones([9, 4]), "FP32")]),
        INVALID,
        "INPUT0",
        "9",
        "max_batch_size",
        str(m.IDENTITY_MAX_BATCH),
    )


def test_unknown_requested_output(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: client.infer(
            FP32_BATCH,
            [infer_input("INPUT0", _ones([1, 4]), "FP32")],
            outputs=[triton_grpc.InferRequestedOutput("NOPE")],
        ),
        INVALID,
        "NOPE",
        "OUTPUT0",
    )


# -- INVALID_ARGUMENT: raw bytes -----------------------------------------------------------------


def test_raw_size_does_not_match_shape(stub: Any) -> None:
    request = raw_request(FP32_BATCH, [("INPUT0", "FP32", [2, 4], b"\x00" * 12)])
    assert_rpc_error(lambda: stub.ModelInfer(request), INVALID, "INPUT0", "12", "32")


def test_raw_contents_count_does_not_match_inputs(stub: Any) -> None:
    request = raw_request("add_sub", [("A", "FP32", [1, 4], b"\x00" * 16)])
    request.inputs.add(name="B", datatype="FP32", shape=[1, 4])  # no raw entry for B
    assert_rpc_error(lambda: stub.ModelInfer(request), INVALID, "raw_input_contents")


ELEMENTS = [b"ab", b"", b"cde", b"f"]


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        # 3 complete elements, then only 2 of the 4 bytes of the 4th length prefix.
        (encode_bytes(ELEMENTS[:3]) + b"\x01\x00", ("element 3", "2", "4")),
        # The 4th element claims 100 bytes but only 1 follows.
        (encode_bytes(ELEMENTS[:3]) + struct.pack("<I", 100) + b"f", ("element 3", "100", "1")),
        # All 4 elements, then 3 bytes that belong to no element.
        (encode_bytes(ELEMENTS) + b"xyz", ("trailing", "3")),
        # Only 3 of the 4 elements the shape needs.
        (encode_bytes(ELEMENTS[:3]), ("4", "3")),
    ],
    ids=[
        "truncated-length-prefix",
        "length-larger-than-data",
        "trailing-bytes",
        "too-few-elements",
    ],
)
def test_malformed_bytes(raw: bytes, fragments: tuple[str, ...], stub: Any) -> None:
    request = raw_request(BYTES_BATCH, [("INPUT0", "BYTES", [1, 4], raw)])
    assert_rpc_error(lambda: stub.ModelInfer(request), INVALID, "'INPUT0'", *fragments)


def test_bytes_that_are_not_utf8_text(stub: Any) -> None:
    """onnxruntime string tensors hold text: invalid UTF-8 is rejected for this request alone."""
    raw = encode_bytes([b"ok", b"\xff\xfe", b"c", b"d"])
    request = raw_request(BYTES_BATCH, [("INPUT0", "BYTES", [1, 4], raw)])
    assert_rpc_error(lambda: stub.ModelInfer(request), INVALID, "'INPUT0'", "element 1", "UTF-8")


def test_well_formed_bytes_control(stub: Any) -> None:
    """The same request with a correct encoding succeeds (the cases above fail for their flaw)."""
    request = raw_request(BYTES_BATCH, [("INPUT0", "BYTES", [1, 4], encode_bytes(ELEMENTS))])
    response = stub.ModelInfer(request)
    assert list(response.outputs[0].shape) == [1, 4]


# -- errors on a stream ---------------------------------------------------------------------------


def test_stream_errors_carry_the_request_id(stub: Any) -> None:
    """On ModelStreamInfer a failing request becomes an error_message on the stream (with its
    request id), and the requests after it are still answered."""
    good = raw_request(
        FP32_BATCH, [("INPUT0", "FP32", [1, 4], _ones([1, 4]).tobytes())], request_id="good"
    )
    requests = [
        raw_request("no_such_model", [("INPUT0", "FP32", [1, 4], b"\x00" * 16)], request_id="r1"),
        raw_request(FP32_BATCH, [("INPUT0", "FP32", [1, 4], b"\x00" * 3)], request_id="r2"),
        good,
    ]
    responses = {r.infer_response.id: r for r in stub.ModelStreamInfer(iter(requests), timeout=30)}
    assert sorted(responses) == ["good", "r1", "r2"]
    assert "no_such_model" in responses["r1"].error_message
    assert "INPUT0" in responses["r2"].error_message
    assert "16" in responses["r2"].error_message and "3" in responses["r2"].error_message
    assert responses["good"].error_message == ""
    assert list(responses["good"].infer_response.outputs[0].shape) == [1, 4]


# -- UNAVAILABLE ---------------------------------------------------------------------------------


def test_unloaded_model_is_unavailable(client: triton_grpc.InferenceServerClient) -> None:
    x = infer_input("INPUT0", _ones([1, 4]), "FP32")
    client.unload_model("unloadable")
    try:
        assert_triton_error(
            lambda: client.infer("unloadable", [x]), grpc.StatusCode.UNAVAILABLE, "unloadable"
        )
        assert_triton_error(
            lambda: client.infer("unloadable", [x], model_version="1"),
            grpc.StatusCode.UNAVAILABLE,
            "unloadable",
            "1",
        )
    finally:
        client.load_model("unloadable")
    client.infer("unloadable", [x])


# -- INTERNAL ------------------------------------------------------------------------------------


def _onnxruntime_error(path: Path, feeds: dict[str, np.ndarray]) -> str:
    with pytest.raises(Exception) as caught:
        m.ort_session(path).run(None, feeds)
    return str(caught.value)


def test_onnxruntime_failure_is_internal(
    client: triton_grpc.InferenceServerClient, main_repository: Path
) -> None:
    data = np.arange(4, dtype=np.float32)
    shape = np.array([3], np.int64)  # 4 elements cannot become [3]
    ours = _onnxruntime_error(
        model_file(main_repository, "runtime_fail"), {"DATA": data, "SHAPE": shape}
    )
    message = assert_triton_error(
        lambda: client.infer(
            "runtime_fail",
            [infer_input("DATA", data, "FP32"), infer_input("SHAPE", shape, "INT64")],
        ),
        grpc.StatusCode.INTERNAL,
        "runtime_fail",
    )
    # onnxruntime's own explanation reaches the client (the node and the shapes involved).
    detail = ours[ours.index("Reshape") :] if "Reshape" in ours else ours
    assert detail.splitlines()[0] in message, f"{detail!r} not in {message!r}"
    # The model keeps serving good requests afterwards.
    ok = client.infer(
        "runtime_fail",
        [
            infer_input("DATA", data, "FP32"),
            infer_input("SHAPE", np.array([-1], np.int64), "INT64"),
        ],
    )
    np.testing.assert_array_equal(ok.as_numpy("OUTPUT0"), data)
