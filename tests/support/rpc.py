"""gRPC helpers: tritonclient inputs, hand-built `ModelInferRequest`s on the raw stub (typed
`contents`, malformed raw bytes), and assertions on status codes and messages."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

# Big enough for the ~8 MB test tensor (grpcio's client default is 4 MiB).
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


@contextmanager
def raw_stub(url: str) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(url, options=CHANNEL_OPTIONS) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def infer_input(name: str, array: np.ndarray, datatype: str) -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput(name, list(array.shape), datatype)
    if datatype == "BF16":
        # `array` holds BF16 bit patterns (uint16). tritonclient >= 2.59 (r26.06) takes BF16 as
        # ml_dtypes.bfloat16, whose memory is exactly those two bytes per element.
        bits = np.ascontiguousarray(array, dtype=np.uint16)
        tensor.set_data_from_numpy(bits.view(ml_dtypes.bfloat16))
    else:
        tensor.set_data_from_numpy(array)
    return tensor


def encode_bytes(elements: Sequence[bytes]) -> bytes:
    """The v2 raw BYTES layout: each element as a little-endian uint32 length then its bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def decode_bytes(raw: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        out.append(raw[offset : offset + length])
        offset += length
    return out


def raw_request(
    model: str,
    inputs: Sequence[tuple[str, str, Sequence[int], bytes]],
    version: str = "",
    request_id: str = "",
) -> service_pb2.ModelInferRequest:
    """A request with raw contents: inputs are (name, datatype, shape, raw bytes)."""
    request = service_pb2.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for name, datatype, shape, raw in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=list(shape))
        request.raw_input_contents.append(raw)
    return request


# v2 datatype -> the typed `InferTensorContents` field carrying it (None: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP16": None,
    "BF16": None,
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def typed_request(
    model: str, name: str, datatype: str, array: np.ndarray, field: str | None = None
) -> service_pb2.ModelInferRequest:
    """A request whose one input travels in typed `contents` (field defaults to the datatype's)."""
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
    field = field or CONTENTS_FIELD[datatype]
    assert field is not None
    values = array.reshape(-1).tolist()
    getattr(tensor.contents, field).extend(values)
    return request


def output_array(response: service_pb2.ModelInferResponse, index: int, dtype: Any) -> np.ndarray:
    tensor = response.outputs[index]
    raw = response.raw_output_contents[index]
    if dtype is np.object_:
        values = np.empty(len(decode_bytes(raw)), dtype=object)
        values[:] = decode_bytes(raw)
        return values.reshape(list(tensor.shape))
    return np.frombuffer(raw, dtype=dtype).reshape(list(tensor.shape))


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    """Runs a raw-stub call that must fail and returns its RpcError."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def assert_rpc_error(call: Callable[[], Any], code: grpc.StatusCode, *fragments: str) -> str:
    """A raw-stub call fails with `code` and a message containing every fragment."""
    error = rpc_error(call)
    details = error.details() or ""
    assert error.code() == code, f"expected {code}, got {error.code()}: {details}"
    for fragment in fragments:
        assert fragment in details, f"{fragment!r} not in error message {details!r}"
    return details


def assert_triton_error(call: Callable[[], Any], code: grpc.StatusCode, *fragments: str) -> str:
    """A tritonclient call fails with `code` and a message containing every fragment."""
    with pytest.raises(InferenceServerException) as caught:
        call()
    error = caught.value
    message = error.message() or ""
    assert error.status() == str(code), f"expected {code}, got {error.status()}: {message}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in error message {message!r}"
    return message
