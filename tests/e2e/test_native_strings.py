"""String (BYTES) tensors on the native path: models with string tensors run on the native
engine and the native front end answers them, bit for bit what onnxruntime's Python binding
returns (in-process, and the same models served with `native_engine: "false"`), batched across
requests of different string lengths; malformed BYTES inputs are left to the Python server and
get its INVALID_ARGUMENT messages, word for word. Also: every datatype (BF16 included) is
answered natively. Servers run in-process so a test sees which side answered each call."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from ferroserve.server.app import Server
from support import models as m
from support.inprocess import native_calls, python_calls, serve
from support.repository import add_model, identity_batch_config, identity_batch_name, model_file
from support.rpc import decode_bytes, encode_bytes, raw_request
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(120)
SERVICE = "/inference.GRPCInferenceService"
PYTHON_BINDING = 'parameters { key: "native_engine" value { string_value: "false" } }\n'
TEXT_CONFIG = """
name: "{name}"
max_batch_size: 16
input [{{ name: "INPUT0" data_type: TYPE_STRING dims: [-1] }}]
output [{{ name: "OUTPUT0" data_type: TYPE_STRING dims: [-1] }}]
{tail}"""
MIXED_CONFIG = """
name: "{name}"
max_batch_size: 16
input [
  {{ name: "TEXT" data_type: TYPE_STRING dims: [2] }},
  {{ name: "X" data_type: TYPE_FP32 dims: [3] }}
]
output [
  {{ name: "ECHO" data_type: TYPE_STRING dims: [2] }},
  {{ name: "LABEL" data_type: TYPE_STRING dims: [1] }},
  {{ name: "DOUBLE" data_type: TYPE_FP32 dims: [3] }}
]
{tail}"""
# Long enough for a burst of requests to meet in one batch.
BATCHED = "dynamic_batching { max_queue_delay_microseconds: 200000 }\n"

# Empty, embedded NUL bytes, non-ASCII UTF-8, a long element.
TRICKY = [b"", b"\0", b"a\0b\0", "caf\u00e9 \u65e5\u672c".encode(), b"\x7f\x01", b"z" * 100_000]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("strings-repository")
    text = m.identity_model("BYTES", ["batch", "n"])
    mixed = m.mixed_text_model()
    add_model(root, "text", text, TEXT_CONFIG.format(name="text", tail=""))
    add_model(
        root, "text_python", text, TEXT_CONFIG.format(name="text_python", tail=PYTHON_BINDING)
    )
    add_model(root, "text_batched", text, TEXT_CONFIG.format(name="text_batched", tail=BATCHED))
    add_model(root, "mixed", mixed, MIXED_CONFIG.format(name="mixed", tail=BATCHED))
    add_model(
        root, "mixed_python", mixed, MIXED_CONFIG.format(name="mixed_python", tail=PYTHON_BINDING)
    )
    for datatype in m.DATATYPES:
        name = identity_batch_name(datatype)
        add_model(
            root,
            name,
            m.identity_model(datatype, ["batch", 4]),
            identity_batch_config(datatype, name),
        )
    return root


def unary(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        f"{SERVICE}/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )


def strings(elements: list[bytes], shape: list[int]) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    return array.reshape(shape)


def text_request(model: str, elements: list[bytes], rows: int, request_id: str = "") -> Any:
    shape = [rows, len(elements) // rows]
    return raw_request(model, [("INPUT0", "BYTES", shape, encode_bytes(elements))], "", request_id)


def mixed_request(model: str, text: list[bytes], x: np.ndarray) -> Any:
    rows = x.shape[0]
    return raw_request(
        model,
        [("TEXT", "BYTES", [rows, 2], encode_bytes(text)), ("X", "FP32", [rows, 3], x.tobytes())],
    )


def test_string_identity_is_answered_natively_bit_for_bit(repository: Path) -> None:
    """Empty strings, embedded NULs, non-ASCII text, a 100 kB element and a row of 4,000
    elements come back exactly as onnxruntime's Python binding returns them, from the native
    front end; the same model on the Python binding answers the same bytes."""
    cases = [(TRICKY, 1), (TRICKY, 2), ([f"e{i}".encode() for i in range(4000)], 1)]

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for elements, rows in cases:
            shape = [rows, len(elements) // rows]
            (expected,) = m.reference_strings(
                model_file(repository, "text"), {"INPUT0": strings(elements, shape)}
            )
            native = await infer(text_request("text", elements, rows))
            python = await infer(text_request("text_python", elements, rows))
            assert native.outputs[0].datatype == "BYTES"
            assert list(native.outputs[0].shape) == shape
            assert decode_bytes(native.raw_output_contents[0]) == list(expected.reshape(-1))
            assert native.raw_output_contents[0] == python.raw_output_contents[0]
            assert native.raw_output_contents[0] == encode_bytes(elements)
        assert native_calls(server) == {"OK": len(cases)}
        assert python_calls(server) == {"OK": len(cases)}

    serve(repository, scenario)


def test_a_mixed_string_and_numeric_model_is_answered_natively(repository: Path) -> None:
    """String and numeric inputs and outputs in one model: the native answer equals
    onnxruntime's Python binding, in-process and served."""
    x = np.array([[0.0, 2.0, 1.0], [5.0, 1.0, 0.0], [0.0, 0.0, 9.0]], dtype=np.float32)
    text = [b"", b"a\0b", "\u00e9".encode(), b"", b"long" * 1000, b"x"]

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        native = await infer(mixed_request("mixed", text, x))
        python = await infer(mixed_request("mixed_python", text, x))
        echo, label, double = m.reference_strings(
            model_file(repository, "mixed"), {"TEXT": strings(text, [3, 2]), "X": x}
        )
        assert [(o.name, o.datatype, list(o.shape)) for o in native.outputs] == [
            ("ECHO", "BYTES", [3, 2]),
            ("LABEL", "BYTES", [3, 1]),
            ("DOUBLE", "FP32", [3, 3]),
        ]
        raw = native.raw_output_contents
        assert decode_bytes(raw[0]) == list(echo.reshape(-1))
        assert decode_bytes(raw[1]) == list(label.reshape(-1))
        assert decode_bytes(raw[1]) == [m.MIXED_LABELS[i] for i in (1, 0, 2)]
        assert raw[2] == double.tobytes()
        assert list(raw) == list(python.raw_output_contents)
        assert native_calls(server) == {"OK": 1}
        assert python_calls(server) == {"OK": 1}

    serve(repository, scenario)


def test_requests_of_different_string_lengths_batch_and_split_back(repository: Path) -> None:
    """A burst of requests with strings of different lengths and row counts runs in fewer
    executions than requests, and each request gets back exactly its own rows."""
    sent = {
        f"r{i}": (
            [bytes([65 + i]) * (i * 37 % 50) + b"\0" * (i % 3) for _ in range(rows * 3)],
            rows,
        )
        for i, rows in enumerate([1, 2, 1, 3, 1, 2, 1, 1])
    }
    mixed_sent = [
        (
            [b"t" * (i * 11), b"" if i % 2 else b"\0"] * rows,
            np.random.default_rng(i).standard_normal((rows, 3)).astype(np.float32),
        )
        for i, rows in enumerate([1, 2, 1, 3])
    ]

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        answers = await asyncio.gather(
            *(
                infer(text_request("text_batched", elements, rows, request_id))
                for request_id, (elements, rows) in sent.items()
            )
        )
        for answer, (request_id, (elements, rows)) in zip(answers, sent.items(), strict=True):
            assert answer.id == request_id
            assert list(answer.outputs[0].shape) == [rows, 3]
            assert answer.raw_output_contents[0] == encode_bytes(elements)
        mixed = await asyncio.gather(*(infer(mixed_request("mixed", t, x)) for t, x in mixed_sent))
        for answer, (text, x) in zip(mixed, mixed_sent, strict=True):
            echo, label, double = m.reference_strings(
                model_file(repository, "mixed"),
                {"TEXT": strings(text, [x.shape[0], 2]), "X": x},
            )
            assert decode_bytes(answer.raw_output_contents[0]) == list(echo.reshape(-1))
            assert decode_bytes(answer.raw_output_contents[1]) == list(label.reshape(-1))
            assert answer.raw_output_contents[2] == double.tobytes()
        assert native_calls(server) == {"OK": len(sent) + len(mixed_sent)}
        statistics = channel.unary_unary(
            f"{SERVICE}/ModelStatistics",
            request_serializer=pb.ModelStatisticsRequest.SerializeToString,
            response_deserializer=pb.ModelStatisticsResponse.FromString,
        )
        for model, requests in (("text_batched", len(sent)), ("mixed", len(mixed_sent))):
            answer = await statistics(pb.ModelStatisticsRequest(name=model))
            (stats,) = answer.model_stats
            assert stats.execution_count < requests, (model, stats)

    serve(repository, scenario)


ELEMENTS = [b"ab", b"", b"cde", b"f"]
MALFORMED = {
    "truncated-length-prefix": encode_bytes(ELEMENTS[:3]) + b"\x01\x00",
    "length-larger-than-data": encode_bytes(ELEMENTS[:3]) + struct.pack("<I", 100) + b"f",
    "trailing-bytes": encode_bytes(ELEMENTS) + b"xyz",
    "too-few-elements": encode_bytes(ELEMENTS[:3]),
    "too-many-elements": encode_bytes([*ELEMENTS, b"g"]),
    "not-utf8": encode_bytes([b"ok", b"\xff\xfe", b"c", b"d"]),
}


def test_malformed_bytes_get_the_python_servers_message(repository: Path) -> None:
    """The native front end leaves every malformed BYTES input to the Python server, which
    answers INVALID_ARGUMENT with the same words as for a model on the Python binding."""

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for case, raw in MALFORMED.items():
            details = []
            for model in ("text", "text_python"):
                request = raw_request(model, [("INPUT0", "BYTES", [1, 4], raw)])
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await infer(request)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
                details.append((refused.value.details() or "").replace("text_python", "text"))
            assert details[0] == details[1], case
            assert "'INPUT0'" in details[0], case
        assert native_calls(server) == {}
        assert python_calls(server) == {"INVALID_ARGUMENT": 2 * len(MALFORMED)}

    serve(repository, scenario)


def test_typed_bytes_contents_are_answered_natively(repository: Path) -> None:
    """`bytes_contents` (typed, not raw) is converted in Rust; the answer is the raw one."""

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        request = pb.ModelInferRequest(model_name="text")
        tensor = request.inputs.add(name="INPUT0", datatype="BYTES", shape=[1, 3])
        tensor.contents.bytes_contents.extend([b"a", b"", b"b\0"])
        answer = await unary(channel)(request)
        assert decode_bytes(answer.raw_output_contents[0]) == [b"a", b"", b"b\0"]
        assert native_calls(server) == {"OK": 1}
        assert python_calls(server) == {}

    serve(repository, scenario)


def test_every_datatype_is_answered_natively(repository: Path) -> None:
    """No model kind falls back: an identity model of each v2 datatype (BYTES and BF16
    included) is answered by the native front end with the bytes it was sent."""

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for datatype in m.DATATYPES:
            array = m.sample(datatype, [2, 4], seed=3)
            raw = (
                encode_bytes(list(array.reshape(-1)))
                if datatype == "BYTES"
                else np.ascontiguousarray(array).tobytes()
            )
            request = raw_request(
                identity_batch_name(datatype), [("INPUT0", datatype, [2, 4], raw)]
            )
            answer = await infer(request)
            assert answer.outputs[0].datatype == datatype
            assert answer.raw_output_contents[0] == raw, datatype
        assert native_calls(server) == {"OK": len(m.DATATYPES)}
        assert python_calls(server) == {}

    serve(repository, scenario)
