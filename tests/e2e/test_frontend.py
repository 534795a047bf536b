"""The native gRPC front end: inference for natively run models is answered in Rust, every other
call is forwarded to the grpc.aio server behind it. These tests run a server in-process so they
can see which side answered each call (`Frontend.rpc_counts()` against the Python server's own
counter): the fast path takes exactly the requests it can answer, forwards everything else
(errors included, which the Python server words), and writes what protobuf would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from ferroserve.cli import FRONTEND_REMOVED
from ferroserve.demo import mlp_model
from ferroserve.server.app import Server
from ferroserve.server.options import ServerOptions
from support.inprocess import native_calls, python_calls
from support.inprocess import serve as serve_repository
from support.models import add_sub_model, reference
from support.repository import ADD_SUB_CONFIG, add_model, model_file
from support.server import ServerProcess
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(60)
SERVICE = "/inference.GRPCInferenceService"
ORDERED_CONFIG = """
name: "mlp_ordered"
max_batch_size: 8
input [{ name: "input" data_type: TYPE_FP32 dims: [64] }]
output [{ name: "output" data_type: TYPE_FP32 dims: [10] }]
dynamic_batching { preserve_ordering: true }
"""
MAX_MESSAGE_BYTES = 64 * 1024
# The MLP on onnxruntime's Python binding: every request for it is the Python server's.
PYTHON_BINDING_CONFIG = """
name: "mlp_python"
max_batch_size: 8
input [{ name: "input" data_type: TYPE_FP32 dims: [64] }]
output [{ name: "output" data_type: TYPE_FP32 dims: [10] }]
parameters { key: "native_engine" value { string_value: "false" } }
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("frontend-repository")
    add_model(root, "mlp", mlp_model())
    add_model(root, "mlp_ordered", mlp_model(), ORDERED_CONFIG)
    add_model(root, "mlp_python", mlp_model(), PYTHON_BINDING_CONFIG)
    add_model(root, "add_sub", add_sub_model(), ADD_SUB_CONFIG)
    return root


def serve(
    repository: Path,
    scenario: Callable[[Server, grpc.aio.Channel], Awaitable[None]],
    threads: int = 1,
) -> None:
    serve_repository(repository, scenario, threads, MAX_MESSAGE_BYTES)


def rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 64)).astype(np.float32)


def request(
    model: str, data: np.ndarray, request_id: str, **parameters: Any
) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model, id=request_id)
    message.inputs.add(name="input", datatype="FP32", shape=list(data.shape))
    message.raw_input_contents.append(data.tobytes())
    for key, value in parameters.items():
        if isinstance(value, bool):
            message.parameters[key].bool_param = value
        elif isinstance(value, str):
            message.parameters[key].string_param = value
        else:
            message.parameters[key].int64_param = value
    return message


def unary(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        f"{SERVICE}/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_inference_of_a_native_model_never_reaches_python(repository: Path, threads: int) -> None:
    """perf_analyzer's `triton_enable_empty_final_response`, Triton's `priority` and `timeout`
    and parameters the server does not read (ignored on both paths) keep a request on the
    native path. Every answer equals onnxruntime's."""
    data = rows(3, 1)
    (expected,) = reference(model_file(repository, "mlp"), {"input": data})

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        plain = await infer(request("mlp", data, "a"))
        flagged = await infer(request("mlp", data, "b", triton_enable_empty_final_response=True))
        scheduled = await infer(request("mlp", data, "c", priority=1, timeout=5_000_000))
        assert native_calls(server) == {"OK": 3}
        assert python_calls(server) == {}
        custom = request("mlp", data, "d", custom_setting=1, label="x", sequence_id=7)
        unknown = await infer(custom)
        assert native_calls(server) == {"OK": 4}
        assert python_calls(server) == {}
        answers = ((plain, "a"), (flagged, "b"), (scheduled, "c"), (unknown, "d"))
        for response, request_id in answers:
            assert (response.model_name, response.model_version, response.id) == (
                "mlp",
                "1",
                request_id,
            )
            assert list(response.outputs[0].shape) == [3, 10]
            assert response.raw_output_contents[0] == expected.tobytes()

    serve(repository, scenario, threads)


def test_unread_parameters_unknown_models_and_other_rpcs_are_forwarded(repository: Path) -> None:
    """A preserve_ordering model is answered natively; a model on the Python binding, a request
    with a parameter value the native path cannot use (a negative `priority`), an unknown model
    and the metadata RPCs are answered by the Python server through the front end, errors
    included, with their status codes."""

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        ordered = await infer(request("mlp_ordered", rows(1, 2), "o"))
        assert ordered.id == "o"
        assert native_calls(server) == {"OK": 1}
        forwarded = await infer(request("mlp_python", rows(1, 2), "f"))
        assert forwarded.id == "f"
        with pytest.raises(grpc.aio.AioRpcError) as negative:
            await infer(request("mlp", rows(1, 2), "n", priority=-1))
        assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "priority" in (negative.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await infer(request("nope", rows(1, 2), "x"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in (missing.value.details() or "")
        metadata = channel.unary_unary(
            f"{SERVICE}/ModelMetadata",
            request_serializer=pb.ModelMetadataRequest.SerializeToString,
            response_deserializer=pb.ModelMetadataResponse.FromString,
        )
        answer = await metadata(pb.ModelMetadataRequest(name="mlp"))
        assert [i.name for i in answer.inputs] == ["input"]
        assert native_calls(server) == {"OK": 1}
        assert python_calls(server) == {"OK": 1, "INVALID_ARGUMENT": 1, "NOT_FOUND": 1}

    serve(repository, scenario)


def test_one_stream_mixes_native_and_forwarded_requests(repository: Path) -> None:
    """Requests the native path takes and requests it forwards (for a model on the Python
    binding) on the same stream: each gets its own answer (by id), failures come back on the stream,
    and the stream ends OK."""
    sent = {f"n{i}": ("mlp", rows(1, 10 + i)) for i in range(6)}
    sent |= {f"o{i}": ("mlp_ordered", rows(1, 30 + i)) for i in range(3)}
    sent |= {f"p{i}": ("mlp_python", rows(1, 20 + i)) for i in range(3)}

    async def messages() -> AsyncIterator[pb.ModelInferRequest]:
        for request_id, (model, data) in sent.items():
            yield request(model, data, request_id)
        yield request("nope", rows(1, 0), "missing")

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        stream = channel.stream_stream(
            f"{SERVICE}/ModelStreamInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )
        answers = {}
        errors = {}
        call = stream(messages())
        async for response in call:
            if response.error_message:
                errors[response.infer_response.id] = response.error_message
            else:
                answers[response.infer_response.id] = response.infer_response
        assert await call.code() == grpc.StatusCode.OK
        assert set(answers) == set(sent)
        assert list(errors) == ["missing"] and "nope" in errors["missing"]
        for request_id, (model, data) in sent.items():
            (expected,) = reference(model_file(repository, model), {"input": data})
            assert answers[request_id].model_name == model
            assert answers[request_id].raw_output_contents[0] == expected.tobytes()

    serve(repository, scenario)


def test_oversized_request_is_resource_exhausted(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        too_big = rows(MAX_MESSAGE_BYTES // 256 + 1, 3)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await unary(channel)(request("mlp", too_big, "big"))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert str(MAX_MESSAGE_BYTES) in (refused.value.details() or "")

    serve(repository, scenario)


def test_port_in_use_is_a_clear_error(repository: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main() -> None:
            server = Server(ServerOptions(repository, grpc_port=port, metrics=None))
            with pytest.raises(OSError, match=f"cannot bind gRPC to 127.0.0.1:{port}"):
                await server.start()
            await server.stop(0.1)

        asyncio.run(main())


def add_sub_request(rows: int = 2) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="add_sub", model_version="1", id="req-1")
    for name, seed in (("A", 1), ("B", 2)):
        message.inputs.add(name=name, datatype="FP32", shape=[rows, 4])
        data = np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)
        message.raw_input_contents.append(data.tobytes())
    return message


def forwarded_cases() -> list[tuple[str, pb.ModelInferRequest]]:
    """Requests the native fast path must leave to the Python server: every invalid one (the
    Python server words the error)."""
    cases = []

    def case(name: str) -> pb.ModelInferRequest:
        message = add_sub_request()
        cases.append((name, message))
        return message

    case("negative priority").parameters["priority"].int64_param = -1
    case("string timeout").parameters["timeout"].string_param = "1000"
    case("typed and raw contents").inputs[0].contents.fp32_contents.extend([0.0] * 8)
    case("too few bytes").raw_input_contents[0] = b"\0" * 31
    case("wrong datatype").inputs[1].datatype = "INT32"
    case("wrong dim").inputs[0].shape[1] = 5
    case("negative dim").inputs[1].shape[1] = -1
    case("rows differ").inputs[1].shape[0] = 1
    case("over max_batch_size").inputs[0].shape[0] = 9
    case("unknown output").outputs.add(name="nope")
    case("output parameters").outputs.add(name="SUM").parameters["classification"].int64_param = 2
    case("missing raw content").raw_input_contents.pop()
    case("an input given twice").inputs[1].name = "A"
    return cases


def native_cases() -> list[tuple[str, pb.ModelInferRequest]]:
    """Valid requests beyond the common shape that the native path answers itself, as the
    Python server would."""
    cases = []

    def case(name: str) -> pb.ModelInferRequest:
        message = add_sub_request()
        cases.append((name, message))
        return message

    swapped = case("inputs out of order")
    first, second = pb.ModelInferRequest.InferInputTensor(), pb.ModelInferRequest.InferInputTensor()
    first.CopyFrom(swapped.inputs[0])
    second.CopyFrom(swapped.inputs[1])
    del swapped.inputs[:]
    swapped.inputs.extend([second, first])
    raw = list(swapped.raw_input_contents)
    del swapped.raw_input_contents[:]
    swapped.raw_input_contents.extend([raw[1], raw[0]])
    custom = case("parameters the server does not read")
    custom.parameters["sequence_id"].int64_param = 1
    custom.parameters["label"].string_param = "caf\u00e9"
    custom.parameters["ratio"].double_param = 0.5
    custom.parameters["flag"].bool_param = True
    custom.outputs.add(name="DIFF").parameters["binary_data"].bool_param = True
    return cases


def test_the_fast_path_forwards_everything_it_does_not_answer(repository: Path) -> None:
    """The fast path never rejects: each of these requests is answered by the Python server
    (OK for the valid ones, INVALID_ARGUMENT with its message for the rest), none natively."""

    async def forwarded_calls(server: Server, expected: int) -> int:
        # The Python server counts a call once its handler returns, which can be just after
        # the client has the answer.
        for _ in range(100):
            counted = sum(python_calls(server).values())
            if counted >= expected:
                return counted
            await asyncio.sleep(0.02)
        return counted

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = channel.unary_unary(f"{SERVICE}/ModelInfer")
        for forwarded, (why, message) in enumerate(forwarded_cases(), start=1):
            with contextlib.suppress(grpc.aio.AioRpcError):
                await infer(message.SerializeToString())
            assert await forwarded_calls(server, forwarded) == forwarded, why
            assert native_calls(server) == {}, why
        await infer(add_sub_request().SerializeToString())
        assert native_calls(server) == {"OK": 1}

    serve(repository, scenario)


def test_any_input_order_and_unread_parameters_are_answered_natively(repository: Path) -> None:
    """Inputs in any order and parameters the server ignores (request and output ones) are
    answered natively with what onnxruntime computes for the inputs by name."""
    add_sub = model_file(repository, "add_sub")

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for why, message in native_cases():
            feeds = {
                tensor.name: np.frombuffer(raw, np.float32).reshape(tuple(tensor.shape))
                for tensor, raw in zip(message.inputs, message.raw_input_contents, strict=True)
            }
            expected = dict(zip(["SUM", "DIFF"], reference(add_sub, feeds), strict=True))
            answer = await infer(message)
            names = [output.name for output in answer.outputs]
            got = dict(zip(names, answer.raw_output_contents, strict=True))
            assert got == {name: expected[name].tobytes() for name in names}, why
        assert native_calls(server) == {"OK": len(native_cases())}
        assert python_calls(server) == {}

    serve(repository, scenario)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("wanted", [["SUM", "DIFF"], ["DIFF"], ["DIFF", "DIFF"], []])
def test_native_responses_are_what_protobuf_writes(
    repository: Path, stream: bool, wanted: list[str]
) -> None:
    """The native front end writes responses byte for byte as protobuf serializes them (outputs
    in the order requested, all of them by default)."""
    message = add_sub_request()
    for name in wanted:
        message.outputs.add(name=name)
    feeds = {
        tensor.name: np.frombuffer(raw, np.float32).reshape(2, 4)
        for tensor, raw in zip(message.inputs, message.raw_input_contents, strict=True)
    }
    outputs = dict(
        zip(("SUM", "DIFF"), reference(model_file(repository, "add_sub"), feeds), strict=True)
    )
    expected = pb.ModelInferResponse(model_name="add_sub", model_version="1", id="req-1")
    for name in wanted or ["SUM", "DIFF"]:
        expected.outputs.add(name=name, datatype="FP32", shape=[2, 4])
        expected.raw_output_contents.append(outputs[name].tobytes())
    written = (
        pb.ModelStreamInferResponse(infer_response=expected) if stream else expected
    ).SerializeToString()

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        if stream:
            call = channel.stream_stream(f"{SERVICE}/ModelStreamInfer")(
                iter([message.SerializeToString()])
            )
            answers = [answer async for answer in call]
        else:
            answers = [
                await channel.unary_unary(f"{SERVICE}/ModelInfer")(message.SerializeToString())
            ]
        assert answers == [written]
        if not stream:  # a stream is counted when it ends, which the client does not wait for
            assert native_calls(server) == {"OK": 1}

    serve(repository, scenario)


def test_frontend_python_was_removed_and_says_why(repository: Path, tmp_path: Path) -> None:
    """`--frontend python` fails at once with the reason; `--frontend native`, what always runs
    now, still starts (with a warning that the flag has no effect)."""
    refused = subprocess.run(
        [sys.executable, "-m", "ferroserve", "serve", "--model-repository", str(repository),
         "--frontend", "python"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert f"--frontend python: {FRONTEND_REMOVED}" in refused.stderr
    with ServerProcess(repository, tmp_path / "native.log", ["--frontend", "native"]) as server:
        server.wait_ready()
        assert "--frontend native has no effect" in server.log()
