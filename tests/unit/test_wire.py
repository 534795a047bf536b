"""The Rust wire codec of the inference fast path (`_core.InferRequestView`, `_core.InferCodec`):
what it accepts, what it leaves to the general path, and responses byte-for-byte equal to
protobuf's own serialization."""

from __future__ import annotations

import numpy as np
import pytest
from ferroserve import _core
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve.codec import infer_codec
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import DATATYPES


def spec(name: str, datatype: str, dims: tuple[int, ...]) -> TensorSpec:
    return TensorSpec(name, DATATYPES[datatype], dims, dims)


SIGNATURE = ModelSignature(
    8,
    (spec("A", "FP32", (4,)), spec("B", "INT64", (-1,))),
    (spec("P", "FP32", (4,)), spec("Q", "INT8", (-1,))),
)
CODEC = infer_codec("m", "3", SIGNATURE)


def request(rows: int = 2, width: int = 3) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m", model_version="3", id="req-1")
    message.inputs.add(name="A", datatype="FP32", shape=[rows, 4])
    message.inputs.add(name="B", datatype="INT64", shape=[rows, width])
    message.raw_input_contents.append(np.arange(rows * 4, dtype=np.float32).tobytes())
    message.raw_input_contents.append(np.arange(rows * width, dtype=np.int64).tobytes())
    return message


def view(message: pb.ModelInferRequest | bytes) -> _core.InferRequestView:
    data = message if isinstance(message, bytes) else message.SerializeToString()
    parsed = _core.InferRequestView.parse(data)
    assert parsed is not None
    return parsed


def test_parses_names_and_matches_the_common_request() -> None:
    message = request()
    parsed = view(message)
    assert (parsed.model_name, parsed.model_version) == ("m", "3")
    matched = CODEC.match(parsed)
    assert matched is not None
    offsets, shapes, rows, wanted = matched
    assert shapes == [[2, 4], [2, 3]] and rows == 2 and wanted == [0, 1]
    data = parsed.data
    for (start, length), raw in zip(offsets, message.raw_input_contents, strict=True):
        assert data[start : start + length] == raw


def test_requested_outputs_by_name() -> None:
    message = request()
    message.outputs.add(name="Q")
    message.outputs.add(name="P")
    matched = CODEC.match(view(message))
    assert matched is not None and matched[3] == [1, 0]


def test_priority_and_timeout_keep_the_fast_path() -> None:
    """Triton's scheduling parameters, as tritonclient sends them (priority uint64, timeout
    int64), are read by the parser and handed to the queue; without them both read 0."""
    message = request()
    assert (view(message).priority, view(message).timeout_us) == (0, 0)
    message.parameters["priority"].uint64_param = 2
    message.parameters["timeout"].int64_param = 20_000
    parsed = view(message)
    assert CODEC.match(parsed) is not None
    assert (parsed.priority, parsed.timeout_us) == (2, 20_000)


def test_not_a_message_is_left_to_protobuf() -> None:
    assert _core.InferRequestView.parse(b"\x0a\x05ab") is None  # truncated string
    assert _core.InferRequestView.parse(b"\x0a\x01\xff") is None  # not UTF-8


def declined_cases() -> list[tuple[str, pb.ModelInferRequest]]:
    cases = []

    def case(name: str) -> pb.ModelInferRequest:
        message = request()
        cases.append((name, message))
        return message

    case("parameters").parameters["sequence_id"].int64_param = 1
    case("negative priority").parameters["priority"].int64_param = -1
    case("string timeout").parameters["timeout"].string_param = "1000"
    case("typed contents").inputs[0].contents.fp32_contents.extend([0.0] * 8)
    case("too few bytes").raw_input_contents[0] = b"\0" * 31
    case("wrong datatype").inputs[1].datatype = "INT32"
    case("wrong dim").inputs[0].shape[1] = 5
    case("negative dim").inputs[1].shape[1] = -1
    case("rows differ").inputs[1].shape[0] = 1
    case("over max_batch_size").inputs[0].shape[0] = 9
    case("unknown output").outputs.add(name="nope")
    case("output parameters").outputs.add(name="P").parameters["classification"].int64_param = 2
    case("missing raw content").raw_input_contents.pop()
    swapped = case("inputs out of order")
    first, second = pb.ModelInferRequest.InferInputTensor(), pb.ModelInferRequest.InferInputTensor()
    first.CopyFrom(swapped.inputs[0])
    second.CopyFrom(swapped.inputs[1])
    del swapped.inputs[:]
    swapped.inputs.extend([second, first])
    return cases


@pytest.mark.parametrize(("why", "message"), declined_cases(), ids=lambda v: str(v)[:20])
def test_everything_else_goes_to_the_general_path(why: str, message: pb.ModelInferRequest) -> None:
    assert CODEC.match(view(message)) is None, why


@pytest.mark.parametrize(
    ("raw", "fast"),
    [
        (b"\1\0\0\0a\0\0\0\0", True),  # "a" and ""
        (b"\3\0\0\0a\0b\1\0\0\0\0", True),  # embedded NUL bytes are text
        (b"\1\0\0\0a", False),  # one element where the shape needs two
        (b"\1\0\0\0a\0\0", False),  # truncated length prefix
        (b"\1\0\0\0a\x09\0\0\0b", False),  # the second element overruns
        (b"\1\0\0\0a\0\0\0\0zz", False),  # trailing bytes
        (b"\1\0\0\0\xff\0\0\0\0", False),  # not UTF-8 text
    ],
)
def test_raw_bytes_inputs_take_the_fast_path_only_when_the_general_path_would(
    raw: bytes, fast: bool
) -> None:
    """Raw BYTES inputs are matched element by element (length prefixes and UTF-8 text); any
    flaw leaves the request to the general path, which words the error."""
    signature = ModelSignature(0, (spec("S", "BYTES", (2,)),), (spec("T", "BYTES", (2,)),))
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="S", datatype="BYTES", shape=[2])
    message.raw_input_contents.append(raw)
    matched = infer_codec("m", "1", signature).match(view(message))
    assert (matched is not None) == fast
    if matched is not None:
        assert matched[1] == [[2]]


def test_typed_bytes_contents_take_the_general_path() -> None:
    signature = ModelSignature(0, (spec("S", "BYTES", (1,)),), (spec("T", "BYTES", (1,)),))
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="S", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"a")
    assert infer_codec("m", "1", signature).match(view(message)) is None


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("wanted", [[0, 1], [1], [1, 1], []])
def test_response_is_what_protobuf_writes(stream: bool, wanted: list[int]) -> None:
    parsed = view(request())
    rng = np.random.default_rng(0)
    outputs = [rng.standard_normal((2, 4)).astype(np.float32), np.array([[-1, 5]], np.int8)]
    shapes = [list(o.shape) for o in outputs]
    buffers = [o.tobytes() for o in outputs]
    expected = pb.ModelInferResponse(model_name="m", model_version="3", id="req-1")
    names = [("P", "FP32"), ("Q", "INT8")]
    for index in wanted:
        expected.outputs.add(name=names[index][0], datatype=names[index][1], shape=shapes[index])
        expected.raw_output_contents.append(buffers[index])
    message = (
        pb.ModelStreamInferResponse(infer_response=expected) if stream else expected
    ).SerializeToString()
    assert CODEC.encode(parsed, wanted, buffers, shapes, stream) == message


def test_response_without_id_or_version() -> None:
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="A", datatype="FP32", shape=[1, 4])
    message.inputs.add(name="B", datatype="INT64", shape=[1, 0])
    message.raw_input_contents.extend([b"\0" * 16, b""])
    codec = infer_codec("m", "", SIGNATURE)
    encoded = codec.encode(view(message), [1], [b"\0" * 16, b""], [[1, 4], [1, 0]])
    expected = pb.ModelInferResponse(model_name="m")
    expected.outputs.add(name="Q", datatype="INT8", shape=[1, 0])
    expected.raw_output_contents.append(b"")
    assert encoded == expected.SerializeToString()


def test_encode_checks_its_arguments() -> None:
    parsed = view(request())
    with pytest.raises(ValueError, match="2 outputs"):
        CODEC.encode(parsed, [0], [b""], [[1]])
    with pytest.raises(ValueError, match="out of range"):
        CODEC.encode(parsed, [2], [b"", b""], [[1], [1]])
