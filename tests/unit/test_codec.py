"""Request decoding and response encoding in-process: raw and typed contents, every validation
error with the input named and expected vs received, BYTES framing, output selection."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve.classification import RequestedOutput
from ferroserve.codec import decode_inputs, output_buffer, requested_outputs
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import DATATYPES
from ferroserve.errors import InvalidInputError


def spec(name: str, datatype: str, dims: tuple[int, ...]) -> TensorSpec:
    return TensorSpec(name, DATATYPES[datatype], dims, dims)


BATCHED = ModelSignature(
    8, (spec("A", "FP32", (4,)), spec("B", "INT64", (-1,))), (spec("OUT", "FP32", (4,)),)
)
UNBATCHED = ModelSignature(0, (spec("S", "BYTES", (2,)),), (spec("T", "BYTES", (2,)),))
TWO_OUTPUTS = ModelSignature(
    0, (spec("X", "FP32", (1,)),), (spec("P", "FP32", (1,)), spec("Q", "FP32", (1,)))
)


def raw_request(*inputs: tuple[str, str, list[int], bytes]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    for name, datatype, shape, raw in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(raw)
    return request


def good_a(rows: int = 2) -> tuple[str, str, list[int], bytes]:
    return ("A", "FP32", [rows, 4], np.arange(rows * 4, dtype=np.float32).tobytes())


def good_b(rows: int = 2, width: int = 3) -> tuple[str, str, list[int], bytes]:
    return ("B", "INT64", [rows, width], np.arange(rows * width, dtype=np.int64).tobytes())


def frame(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def invalid(request: pb.ModelInferRequest, signature: ModelSignature, *fragments: str) -> str:
    with pytest.raises(InvalidInputError) as caught:
        decode_inputs(request, "m", signature)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# -- decoding ------------------------------------------------------------------------------------


def test_raw_inputs_in_signature_order() -> None:
    a, b = good_a(), good_b()
    decoded = decode_inputs(raw_request(b, a), "m", BATCHED)  # sent B first
    assert decoded.buffers == [a[3], b[3]]
    assert decoded.shapes == [[2, 4], [2, 3]]
    assert decoded.rows == 2


def test_typed_contents_become_raw_little_endian() -> None:
    request = pb.ModelInferRequest(model_name="m")
    a = request.inputs.add(name="A", datatype="FP32", shape=[1, 4])
    a.contents.fp32_contents.extend([1.0, 2.5, -3.0, 0.0])
    b = request.inputs.add(name="B", datatype="INT64", shape=[1, 2])
    b.contents.int64_contents.extend([-(2**63), 2**63 - 1])
    decoded = decode_inputs(request, "m", BATCHED)
    assert decoded.buffers[0] == np.array([1.0, 2.5, -3.0, 0.0], "<f4").tobytes()
    assert decoded.buffers[1] == np.array([-(2**63), 2**63 - 1], "<i8").tobytes()


def test_typed_bytes_are_framed() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="S", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend([b"ab", b""])
    decoded = decode_inputs(request, "m", UNBATCHED)
    assert bytes(decoded.buffers[0]) == frame(b"ab", b"")
    assert decoded.rows == 1


def test_raw_bytes_are_validated_and_kept() -> None:
    raw = frame(b"hello", "\u00e9".encode())
    decoded = decode_inputs(raw_request(("S", "BYTES", [2], raw)), "m", UNBATCHED)
    assert decoded.buffers == [raw]


def test_zero_sized_dynamic_dim() -> None:
    decoded = decode_inputs(raw_request(good_a(1), ("B", "INT64", [1, 0], b"")), "m", BATCHED)
    assert decoded.shapes[1] == [1, 0]


# -- decoding errors -----------------------------------------------------------------------------


def test_wrong_datatype() -> None:
    invalid(
        raw_request(("A", "FP64", [2, 4], b"\x00" * 64), good_b()), BATCHED, "'A'", "FP32", "FP64"
    )


def test_wrong_rank() -> None:
    invalid(
        raw_request(("A", "FP32", [8], b"\x00" * 32), good_b()), BATCHED, "'A'", "[-1, 4]", "[8]"
    )


def test_wrong_dim() -> None:
    invalid(
        raw_request(("A", "FP32", [2, 3], b"\x00" * 24), good_b()),
        BATCHED,
        "'A'",
        "[-1, 4]",
        "[2, 3]",
    )


def test_negative_dim() -> None:
    invalid(raw_request(good_a(), ("B", "INT64", [2, -1], b"")), BATCHED, "'B'", "[2, -1]")


def test_missing_input() -> None:
    invalid(raw_request(good_a()), BATCHED, "missing", "'B'", "['A', 'B']")


def test_extra_input() -> None:
    invalid(
        raw_request(good_a(), good_b(), ("C", "FP32", [1], b"\x00" * 4)),
        BATCHED,
        "unexpected",
        "'C'",
    )


def test_duplicate_input() -> None:
    invalid(raw_request(good_a(), good_a()), BATCHED, "'A'", "twice")


@pytest.mark.parametrize("rows", [0, 9])
def test_batch_size_outside_limits(rows: int) -> None:
    invalid(raw_request(good_a(rows), good_b(rows)), BATCHED, "'A'", str(rows), "1..8")


def test_inputs_disagree_on_batch_size() -> None:
    invalid(raw_request(good_a(2), good_b(3)), BATCHED, "'B'", "3", "2")


def test_raw_size_mismatch() -> None:
    invalid(raw_request(("A", "FP32", [2, 4], b"\x00" * 31), good_b()), BATCHED, "'A'", "31", "32")


def test_raw_for_some_inputs_only() -> None:
    request = raw_request(good_a())
    request.inputs.add(name="B", datatype="INT64", shape=[2, 3])
    invalid(request, BATCHED, "raw_input_contents", "2 inputs", "1")


def test_raw_and_typed_together() -> None:
    request = raw_request(good_a(), good_b())
    request.inputs[0].contents.fp32_contents.extend([0.0] * 8)
    invalid(request, BATCHED, "'A'", "both")


def test_typed_count_mismatch() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="S", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.append(b"only one")
    invalid(request, UNBATCHED, "'S'", "1", "2")


@pytest.mark.parametrize("datatype", ["FP16", "BF16"])
def test_half_types_need_raw(datatype: str) -> None:
    signature = ModelSignature(0, (spec("H", datatype, (1,)),), ())
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="H", datatype=datatype, shape=[1])
    invalid(request, signature, "'H'", datatype, "raw_input_contents")


@pytest.mark.parametrize(
    ("datatype", "field", "value"),
    [
        ("UINT8", "uint_contents", 256),
        ("INT8", "int_contents", -129),
        ("UINT16", "uint_contents", 70000),
        ("INT16", "int_contents", 40000),
    ],
)
def test_typed_value_out_of_range(datatype: str, field: str, value: int) -> None:
    signature = ModelSignature(0, (spec("V", datatype, (1,)),), ())
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="V", datatype=datatype, shape=[1])
    getattr(tensor.contents, field).append(value)
    invalid(request, signature, "'V'", datatype)


@pytest.mark.parametrize(
    "raw",
    [
        frame(b"ab") + b"\x03\x00",  # truncated length prefix
        frame(b"ab") + struct.pack("<I", 50) + b"xy",  # length larger than the data
        frame(b"ab", b"cd") + b"!",  # trailing bytes
        frame(b"ab"),  # one element short
    ],
    ids=["truncated-prefix", "length-past-end", "trailing-bytes", "too-few"],
)
def test_malformed_bytes(raw: bytes) -> None:
    invalid(raw_request(("S", "BYTES", [2], raw)), UNBATCHED, "'S'", "BYTES")


# -- encoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.uint16])
def test_output_buffer_numeric(dtype: type) -> None:
    array = np.arange(6).astype(dtype).reshape(2, 3)
    assert output_buffer(array) == array.tobytes()
    assert output_buffer(array.T) == np.ascontiguousarray(array.T).tobytes()


def test_output_buffer_strings() -> None:
    array = np.array([["ab", "\u00e9"], ["", "xyz"]], dtype=object)
    assert bytes(output_buffer(array)) == frame(b"ab", "\u00e9".encode(), b"", b"xyz")


def test_requested_outputs() -> None:
    request = pb.ModelInferRequest(model_name="m")
    assert requested_outputs(request, "m", TWO_OUTPUTS) == [
        RequestedOutput(0),
        RequestedOutput(1),
    ]
    request.outputs.add(name="Q")
    assert requested_outputs(request, "m", TWO_OUTPUTS) == [RequestedOutput(1)]


def test_requested_output_unknown() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.outputs.add(name="Z")
    with pytest.raises(InvalidInputError, match=r"'Z'.*\['P', 'Q'\]"):
        requested_outputs(request, "m", TWO_OUTPUTS)


def test_requested_output_classification_takes_its_class_count() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.outputs.add(name="P").parameters["classification"].int64_param = 3
    request.outputs.add(name="Q").parameters["classification"].int64_param = 0
    assert requested_outputs(request, "m", TWO_OUTPUTS) == [
        RequestedOutput(0, 3),
        RequestedOutput(1, 0),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (pb.InferParameter(string_param="3"), "must be an integer"),
        (pb.InferParameter(int64_param=-1), "must be >= 0"),
    ],
)
def test_requested_output_classification_needs_a_count(
    value: pb.InferParameter, message: str
) -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.outputs.add(name="P").parameters["classification"].CopyFrom(value)
    with pytest.raises(InvalidInputError, match=rf"'P'.*{message}"):
        requested_outputs(request, "m", TWO_OUTPUTS)


def test_classification_of_a_datatype_triton_cannot_classify_is_refused() -> None:
    signature = ModelSignature(0, (spec("X", "FP32", (1,)),), (spec("H", "FP16", (4,)),))
    request = pb.ModelInferRequest(model_name="m")
    request.outputs.add(name="H").parameters["classification"].int64_param = 2
    with pytest.raises(InvalidInputError, match="class result not available for datatype FP16"):
        requested_outputs(request, "m", signature)


def test_optional_input_left_out_gets_its_stored_value() -> None:
    optional = TensorSpec("W", DATATYPES["FP32"], (2,), (2,), optional=True)
    signature = ModelSignature(0, (spec("X", "FP32", (2,)), optional), (spec("Y", "FP32", (2,)),))
    stored = np.array([10, 20], np.float32).tobytes()
    x = ("X", "FP32", [2], np.ones(2, np.float32).tobytes())
    decoded = decode_inputs(raw_request(x), "m", signature, {"W": (stored, [2])})
    assert decoded.buffers == [x[3], stored]
    assert decoded.shapes == [[2], [2]]
    sent = ("W", "FP32", [2], np.zeros(2, np.float32).tobytes())
    decoded = decode_inputs(raw_request(x, sent), "m", signature, {"W": (stored, [2])})
    assert decoded.buffers == [x[3], sent[3]]
    with pytest.raises(InvalidInputError, match=r"missing input\(s\) \['X'\]"):
        decode_inputs(raw_request(sent), "m", signature, {"W": (stored, [2])})


def test_a_bytes_element_count_past_int64_is_invalid_input_not_overflow() -> None:
    """A shape whose dims multiply past int64 (each dim fits) names the count it needs, instead
    of an OverflowError the server would answer UNKNOWN (docs/security.md)."""
    dynamic = ModelSignature(8, (spec("S", "BYTES", (-1,)),), (spec("T", "BYTES", (-1,)),))
    request = raw_request(("S", "BYTES", [2, 2**62], frame(b"a", b"b")))
    invalid(request, dynamic, "'S'", str(2**63), "BYTES elements", "10 bytes")
