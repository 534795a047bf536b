"""Every v2 datatype round-trips bit-for-bit against in-process onnxruntime, with raw contents
(tritonclient's default) and with typed `contents` (hand-built requests on the raw stub)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support import models as m
from support.repository import identity_batch_name, identity_nobatch_name, model_file
from support.rpc import (
    CONTENTS_FIELD,
    assert_rpc_error,
    infer_input,
    output_array,
    typed_request,
)

ALL = list(m.DATATYPES)
TYPED = [d for d in ALL if CONTENTS_FIELD[d] is not None]


def expected_output(path: Path, datatype: str, array: np.ndarray) -> Any:
    """In-process onnxruntime's OUTPUT0: raw bytes, or the element list for BYTES."""
    if datatype == "BF16":
        return m.reference_bf16(path, "INPUT0", array)[0]
    if datatype == "BYTES":
        # onnxruntime strings are UTF-8 text: feed str, compare the UTF-8 bytes it returns.
        text = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array)
        (out,) = m.reference(path, {"INPUT0": text})
        return [s.encode("utf-8") for s in out.reshape(-1)]
    (out,) = m.reference(path, {"INPUT0": array})
    return out.tobytes()


def received(datatype: str, array: np.ndarray, raw: bytes | None = None) -> Any:
    if datatype == "BYTES":
        return list(array.reshape(-1))
    if datatype == "BF16":
        assert raw is not None
        return raw
    return np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize("datatype", ALL)
def test_raw_batched(
    datatype: str, client: triton_grpc.InferenceServerClient, main_repository: Path
) -> None:
    name = identity_batch_name(datatype)
    array = m.sample(datatype, [3, *m.BATCH_DIMS], seed=1)
    result = client.infer(name, [infer_input("INPUT0", array, datatype)])
    response = result.get_response()
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("OUTPUT0", datatype, [3, 4])
    ]
    raw = response.raw_output_contents[0]
    got = received(datatype, raw if datatype == "BF16" else result.as_numpy("OUTPUT0"), raw)
    assert got == expected_output(model_file(main_repository, name), datatype, array)


@pytest.mark.parametrize("datatype", ALL)
def test_raw_unbatched_without_config(
    datatype: str, client: triton_grpc.InferenceServerClient, main_repository: Path
) -> None:
    name = identity_nobatch_name(datatype)
    metadata = client.get_model_metadata(name)
    assert [(t.datatype, list(t.shape)) for t in metadata.inputs] == [(datatype, m.NOBATCH_SHAPE)]
    array = m.sample(datatype, m.NOBATCH_SHAPE, seed=2)
    result = client.infer(name, [infer_input("INPUT0", array, datatype)])
    response = result.get_response()
    assert list(response.outputs[0].shape) == m.NOBATCH_SHAPE
    raw = response.raw_output_contents[0]
    got = received(datatype, raw if datatype == "BF16" else result.as_numpy("OUTPUT0"), raw)
    assert got == expected_output(model_file(main_repository, name), datatype, array)


@pytest.mark.parametrize("datatype", TYPED)
def test_typed_contents(datatype: str, stub: Any, main_repository: Path) -> None:
    name = identity_batch_name(datatype)
    array = m.sample(datatype, [2, *m.BATCH_DIMS], seed=3)
    response = stub.ModelInfer(typed_request(name, "INPUT0", datatype, array))
    assert list(response.outputs[0].shape) == [2, 4]
    assert len(response.raw_output_contents) == 1  # answered raw, whatever the request used
    got = output_array(response, 0, m.DATATYPES[datatype][1])
    assert received(datatype, got) == expected_output(
        model_file(main_repository, name), datatype, array
    )


@pytest.mark.parametrize("datatype", TYPED)
def test_typed_contents_unbatched(datatype: str, stub: Any, main_repository: Path) -> None:
    name = identity_nobatch_name(datatype)
    array = m.sample(datatype, m.NOBATCH_SHAPE, seed=4)
    response = stub.ModelInfer(typed_request(name, "INPUT0", datatype, array))
    got = output_array(response, 0, m.DATATYPES[datatype][1])
    assert received(datatype, got) == expected_output(
        model_file(main_repository, name), datatype, array
    )


@pytest.mark.parametrize(
    ("datatype", "field", "values"),
    [
        ("FP16", "fp32_contents", np.ones((1, 4), np.float32)),
        ("BF16", "uint_contents", np.full((1, 4), 0x3F80, np.uint32)),
    ],
)
def test_half_types_have_no_typed_contents(
    datatype: str, field: str, values: np.ndarray, stub: Any
) -> None:
    name = identity_batch_name(datatype)
    request = typed_request(name, "INPUT0", datatype, values, field=field)
    message = assert_rpc_error(
        lambda: stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0", datatype
    )
    assert "raw" in message


def test_typed_contents_in_wrong_field(stub: Any) -> None:
    # INT32 data sent in int64_contents: the INT32 field (int_contents) is empty.
    request = typed_request(
        identity_batch_name("INT32"),
        "INPUT0",
        "INT32",
        np.ones((1, 4), np.int64),
        field="int64_contents",
    )
    assert_rpc_error(
        lambda: stub.ModelInfer(request),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INPUT0",
        "int_contents",
        "4",
    )


def test_typed_value_out_of_range(stub: Any) -> None:
    request = typed_request(
        identity_batch_name("UINT8"), "INPUT0", "UINT8", np.full((1, 4), 300, np.int64)
    )
    assert_rpc_error(
        lambda: stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "INPUT0", "UINT8"
    )


def test_bf16_matches_float32_rounding(client: triton_grpc.InferenceServerClient) -> None:
    """Sanity check of the BF16 path itself: bits go through unchanged."""
    bits = np.array([[0x3F80, 0xC000, 0x4049, 0x0000]], np.uint16)  # 1, -2, ~3.14, 0
    result = client.infer(identity_batch_name("BF16"), [infer_input("INPUT0", bits, "BF16")])
    raw = result.get_response().raw_output_contents[0]
    assert np.frombuffer(raw, np.uint16).tolist() == bits.reshape(-1).tolist()
