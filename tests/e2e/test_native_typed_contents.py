"""Typed contents (`InferTensorContents`) on the native path: a request whose inputs travel in
the datatype's typed field is answered by the native front end with exactly the bytes the raw
request gets and the Python server's conversion gives (protobuf's readings included: int32
fields keep a varint's low 32 bits, bool is "not zero", unpacked fields, contents given twice,
a signalling FP32 NaN quieted). Every typed request the Python server rejects is still answered
by it, word for word as for the same model on the Python binding (`native_engine: "false"`),
and a stream mixes raw, typed and rejected requests. Servers run in-process so a test sees which
side answered each call."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from ferroserve.server.app import Server
from support import models as m
from support.inprocess import native_calls, python_calls, serve
from support.repository import (
    ADD_SUB_CONFIG,
    add_model,
    identity_batch_config,
    identity_batch_name,
)
from support.rpc import CONTENTS_FIELD, encode_bytes, raw_request, typed_request
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(120)
SERVICE = "/inference.GRPCInferenceService"
PYTHON_BINDING = 'parameters { key: "native_engine" value { string_value: "false" } }\n'
TYPED = [datatype for datatype, field in CONTENTS_FIELD.items() if field is not None]
SHAPE = [2, 4]


def twin(model: str) -> str:
    """The same model on onnxruntime's Python binding: the Python server answers it all."""
    return f"{model}_python"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("typed-contents-repository")
    for datatype in m.DATATYPES:
        name = identity_batch_name(datatype)
        model = m.identity_model(datatype, ["batch", 4])
        config = identity_batch_config(datatype, name)
        add_model(root, name, model, config)
        add_model(root, twin(name), model, config.replace(name, twin(name)) + PYTHON_BINDING)
    add_model(root, "add_sub", m.add_sub_model(), ADD_SUB_CONFIG)
    add_model(
        root,
        twin("add_sub"),
        m.add_sub_model(),
        ADD_SUB_CONFIG.replace("add_sub", twin("add_sub")) + PYTHON_BINDING,
    )
    return root


def unary(channel: grpc.aio.Channel) -> Any:
    """ModelInfer on serialized messages (hand-built ones are not protobuf objects)."""
    return channel.unary_unary(
        f"{SERVICE}/ModelInfer", response_deserializer=pb.ModelInferResponse.FromString
    )


def raw_bytes(datatype: str, array: np.ndarray) -> bytes:
    if datatype == "BYTES":
        return encode_bytes(list(array.reshape(-1)))
    return np.ascontiguousarray(array).tobytes()


# Hand-built protobuf: what protobuf's serializer never writes (unpacked fields, contents given
# twice, values that do not fit the field) but its parser accepts.
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 / int64 values as 10-byte two's complement
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def varints(number: int, values: Sequence[int], packed: bool) -> bytes:
    if packed:
        return field(number, b"".join(varint(v) for v in values))
    return b"".join(varint(number << 3) + varint(v) for v in values)


def fixed32(number: int, bits: Sequence[int]) -> bytes:
    return b"".join(varint(number << 3 | 5) + struct.pack("<I", b) for b in bits)


def hand_built(
    model: str, datatype: str, shape: Sequence[int], *contents: bytes, raw: bytes | None = None
) -> bytes:
    """A serialized request with one input INPUT0 whose `contents` field is given once per item
    of `contents` (each an encoded `InferTensorContents`), and a raw entry when `raw` is given."""
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="INPUT0", datatype=datatype, shape=list(shape)
    ).SerializeToString()
    tensor += b"".join(field(5, part) for part in contents)
    message = pb.ModelInferRequest(model_name=model).SerializeToString() + field(5, tensor)
    return message + (field(7, raw) if raw is not None else b"")


def float_bits(*bits: int) -> bytes:
    return struct.pack(f"<{len(bits)}I", *bits)


# (datatype, typed contents given once per item, the raw bytes they mean). Signalling NaNs come
# back quiet with their payload (0x7f800001 -> 0x7fc00001) on FP32, as they are on FP64.
EDGE_CASES: dict[str, tuple[str, tuple[bytes, ...], bytes]] = {
    "int32 keeps a varint's low 32 bits": (
        "INT32",
        (varints(2, [2**32 + 5, -1, 0xFFFFFFFF, 2**63 + 7], packed=False),),
        struct.pack("<4i", 5, -1, -1, 7),
    ),
    "int8 range-checked after that": (
        "INT8",
        (varints(2, [2**32 + 127, -128, 0xFFFFFFFF, 0], packed=True),),
        struct.pack("<4b", 127, -128, -1, 0),
    ),
    "uint16 likewise": (
        "UINT16",
        (varints(4, [2**32 + 300, 65535, 0, 2**40], packed=True),),
        struct.pack("<4H", 300, 65535, 0, 0),
    ),
    "bool is not zero": (
        "BOOL",
        (varints(1, [2, 0, 2**40, 1], packed=False),),
        bytes([1, 0, 1, 1]),
    ),
    "fp32 packed and not, signalling NaNs quieted": (
        "FP32",
        (fixed32(6, [0x7F800001]) + field(6, float_bits(0xFF800123, 0x7FC00001, 0x3FC00000)),),
        float_bits(0x7FC00001, 0xFFC00123, 0x7FC00001, 0x3FC00000),
    ),
    "fp64 bit for bit": (
        "FP64",
        (
            b"".join(
                varint(7 << 3 | 1) + struct.pack("<Q", bits)
                for bits in (0x7FF0000000000001, 0x8000000000000000, 0x7FF0000000000000, 1)
            ),
        ),
        struct.pack("<4Q", 0x7FF0000000000001, 0x8000000000000000, 0x7FF0000000000000, 1),
    ),
    "contents given twice are merged": (
        "INT64",
        (varints(3, [-(2**63), 1], packed=True), varints(3, [2**63 - 1, -1], packed=False)),
        struct.pack("<4q", -(2**63), 1, 2**63 - 1, -1),
    ),
    "uint64 unpacked": (
        "UINT64",
        (varints(5, [2**64 - 1, 0, 1, 2**63], packed=False),),
        struct.pack("<4Q", 2**64 - 1, 0, 1, 2**63),
    ),
    "bytes in two parts": (
        "BYTES",
        (field(8, b"") + field(8, b"a\0b"), field(8, "caf\u00e9".encode()) + field(8, b"z" * 300)),
        encode_bytes([b"", b"a\0b", "caf\u00e9".encode(), b"z" * 300]),
    ),
}


def test_typed_contents_are_answered_natively_bit_for_bit(repository: Path) -> None:
    """For every datatype with a typed field, the typed request gets natively what the raw
    request gets natively and what the Python server answers for the typed one."""

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for seed, datatype in enumerate(TYPED):
            name = identity_batch_name(datatype)
            array = m.sample(datatype, SHAPE, seed=seed)
            raw = raw_bytes(datatype, array)
            raw_answer = await infer(
                raw_request(name, [("INPUT0", datatype, SHAPE, raw)]).SerializeToString()
            )
            typed = typed_request(name, "INPUT0", datatype, array)
            native = await infer(typed.SerializeToString())
            typed.model_name = twin(name)
            python = await infer(typed.SerializeToString())
            assert native.raw_output_contents[0] == raw, datatype
            assert raw_answer.raw_output_contents[0] == raw, datatype
            assert python.raw_output_contents[0] == raw, datatype
            assert (native.outputs[0].datatype, list(native.outputs[0].shape)) == (datatype, SHAPE)
        assert native_calls(server) == {"OK": 2 * len(TYPED)}
        assert python_calls(server) == {"OK": len(TYPED)}

    serve(repository, scenario)


def test_protobufs_readings_are_matched_natively(repository: Path) -> None:
    """Typed contents protobuf's serializer never writes but its parser reads: the native answer
    is the one the Python server gives the same bytes."""

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for case, (datatype, contents, raw) in EDGE_CASES.items():
            name = identity_batch_name(datatype)
            native = await infer(hand_built(name, datatype, [1, 4], *contents))
            python = await infer(hand_built(twin(name), datatype, [1, 4], *contents))
            assert native.raw_output_contents[0] == raw, case
            assert python.raw_output_contents[0] == raw, case
        assert native_calls(server) == {"OK": len(EDGE_CASES)}
        assert python_calls(server) == {"OK": len(EDGE_CASES)}

    serve(repository, scenario)


def fp32_values(count: int) -> list[float]:
    return [float(i) for i in range(count)]


def error_cases() -> dict[str, tuple[str, Callable[[str], bytes]]]:
    """Typed requests the Python server rejects: per case the native model it is sent to (and
    to its twin), and how to build it for a model name."""
    four = fp32_values(4)
    fp32 = identity_batch_name("FP32")

    def typed(
        datatype: str, contents_field: str, values: Sequence[Any]
    ) -> tuple[str, Callable[[str], bytes]]:
        def build(model: str) -> bytes:
            request = pb.ModelInferRequest(model_name=model)
            tensor = request.inputs.add(name="INPUT0", datatype=datatype, shape=[1, len(values)])
            getattr(tensor.contents, contents_field).extend(values)
            return request.SerializeToString()

        return identity_batch_name(datatype), build

    def resized(count: int) -> tuple[str, Callable[[str], bytes]]:
        def build(model: str) -> bytes:
            request = pb.ModelInferRequest(model_name=model)
            tensor = request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
            tensor.contents.fp32_contents.extend(fp32_values(count))
            return request.SerializeToString()

        return fp32, build

    def add_sub(raw_a: bool, typed_b: bool) -> tuple[str, Callable[[str], bytes]]:
        def build(model: str) -> bytes:
            request = pb.ModelInferRequest(model_name=model)
            a = request.inputs.add(name="A", datatype="FP32", shape=[1, 4])
            b = request.inputs.add(name="B", datatype="FP32", shape=[1, 4])
            if raw_a:
                request.raw_input_contents.append(np.ones(4, np.float32).tobytes())
            else:
                a.contents.fp32_contents.extend(four)
            if typed_b:
                b.contents.fp32_contents.extend(four)
            return request.SerializeToString()

        return "add_sub", build

    def both(model: str) -> bytes:
        return hand_built(model, "FP32", [1, 4], field(6, float_bits(*range(4))), raw=bytes(16))

    def packed_of_six_bytes(model: str) -> bytes:
        return hand_built(model, "FP32", [1, 4], field(6, bytes(6)))

    return {
        "FP32 in int_contents": typed("FP32", "int_contents", [1, 2, 3, 4]),
        "INT32 in int64_contents": typed("INT32", "int64_contents", [1, 2, 3, 4]),
        "UINT64 in uint_contents": typed("UINT64", "uint_contents", [1, 2, 3, 4]),
        "too few values": resized(3),
        "too many values": resized(5),
        "typed and raw for one input": (fp32, both),
        "one input raw, the other typed": add_sub(raw_a=True, typed_b=True),
        "one input typed, the other without contents": add_sub(raw_a=False, typed_b=False),
        "INT8 128": typed("INT8", "int_contents", [1, 128, 0, 0]),
        "INT8 -129": typed("INT8", "int_contents", [-129, 0, 0, 0]),
        "INT16 40000": typed("INT16", "int_contents", [0, 0, 0, 40000]),
        "UINT8 256": typed("UINT8", "uint_contents", [256, 0, 0, 0]),
        "UINT16 70000": typed("UINT16", "uint_contents", [0, 70000, 0, 0]),
        "FP16 in fp32_contents": typed("FP16", "fp32_contents", four),
        "BF16 in uint_contents": typed("BF16", "uint_contents", [0x3F80] * 4),
        "BYTES not UTF-8": typed("BYTES", "bytes_contents", [b"ok", b"\xff\xfe", b"", b"x"]),
        "a packed FP32 run of 6 bytes": (fp32, packed_of_six_bytes),
    }


def test_typed_content_errors_get_the_python_servers_message(repository: Path) -> None:
    """The native front end leaves every typed request the Python server rejects to it: the
    native model's answer is INVALID_ARGUMENT with the words the same model on the Python
    binding gets."""
    cases = error_cases()

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for case, (model, build) in cases.items():
            details = []
            for name in (model, twin(model)):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await infer(build(name))
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
                details.append((refused.value.details() or "").replace(twin(model), model))
            assert details[0] == details[1], case
        assert native_calls(server) == {}
        assert python_calls(server) == {"INVALID_ARGUMENT": 2 * len(cases)}

    serve(repository, scenario)


async def stream_calls(
    server: Server, side: Callable[[Server, str], dict[str, int]], expected: dict[str, int]
) -> dict[str, int]:
    """A stream's call is counted when it ends, which the client does not wait for."""
    for _ in range(100):
        counted = side(server, "ModelStreamInfer")
        if counted == expected:
            break
        await asyncio.sleep(0.02)
    return counted


def test_a_stream_mixes_raw_typed_and_rejected_requests(repository: Path) -> None:
    """On one stream raw and typed requests of several datatypes are answered natively (a
    stream of only those is the native front end's alone); with a rejected typed request among
    them, that one gets the Python server's error_message and the rest their answers."""
    datatypes = ["FP32", "INT8", "BYTES", "UINT64", "BOOL", "FP64"]
    sent: dict[str, tuple[bytes, bytes]] = {}  # id -> (message, raw answer expected)
    for i, datatype in enumerate(datatypes * 2):
        array = m.sample(datatype, [1 + i % 3, 4], seed=i)
        name = identity_batch_name(datatype)
        raw = raw_bytes(datatype, array)
        if i % 2:
            request = typed_request(name, "INPUT0", datatype, array)
        else:
            request = raw_request(name, [("INPUT0", datatype, list(array.shape), raw)])
        request.id = f"{'typed' if i % 2 else 'raw'}-{i}"
        sent[request.id] = (request.SerializeToString(), raw)
    rejected = pb.ModelInferRequest(model_name=identity_batch_name("FP32"), id="rejected")
    tensor = rejected.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend(fp32_values(3))

    async def run_stream(channel: grpc.aio.Channel, messages: list[bytes]) -> dict[str, Any]:
        call = channel.stream_stream(
            f"{SERVICE}/ModelStreamInfer",
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )(iter(messages))
        responses = [response async for response in call]
        assert len(responses) == len(messages)
        return {response.infer_response.id: response for response in responses}

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        answers = await run_stream(channel, [message for message, _ in sent.values()])
        for request_id, (_, raw) in sent.items():
            assert not answers[request_id].error_message, request_id
            assert answers[request_id].infer_response.raw_output_contents[0] == raw, request_id
        assert await stream_calls(server, native_calls, {"OK": 1}) == {"OK": 1}
        assert python_calls(server, "ModelStreamInfer") == {}

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await unary(channel)(rejected.SerializeToString())
        messages = [message for message, _ in sent.values()]
        messages.insert(5, rejected.SerializeToString())
        answers = await run_stream(channel, messages)
        assert answers["rejected"].error_message == refused.value.details()
        for request_id, (_, raw) in sent.items():
            assert answers[request_id].infer_response.raw_output_contents[0] == raw, request_id
        assert await stream_calls(server, python_calls, {"OK": 1}) == {"OK": 1}

    serve(repository, scenario)
