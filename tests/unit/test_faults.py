"""Faults stay local (docs/security.md): an exception a handler did not expect is answered
INTERNAL with a message that names the call, not UNKNOWN with the exception's text; a
`FerroserveError` that escaped keeps its own code; a failing request on a stream gets an
error answer and the stream goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve.errors import ModelNotFoundError
from ferroserve.metrics.routing import RoutingCounter
from ferroserve.server.faults import contain, without_root
from ferroserve.server.inference import InferenceService


class Aborted(Exception):
    pass


class Context:
    """What a handler's context records: the abort, and the stream's writes."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.written: list[bytes] = []

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted

    async def write(self, message: bytes) -> None:
        self.written.append(message)

    def time_remaining(self) -> float | None:
        return None


def run(handler: Any, request: Any, context: Context) -> None:
    with pytest.raises(Aborted):
        asyncio.run(handler(request, context))


def test_an_unexpected_exception_is_internal_with_a_message_and_no_path() -> None:
    async def broken(request: Any, context: Any) -> Any:
        raise OSError(2, "No such file or directory", "/srv/models/secret/1/model.onnx")

    context = Context()
    run(contain("svc", "ModelConfig", "unary", broken), None, context)
    assert context.code == grpc.StatusCode.INTERNAL
    assert "ModelConfig" in context.details and "FileNotFoundError" in context.details
    assert "/srv" not in context.details


def test_an_escaped_ferroserve_error_keeps_its_code() -> None:
    async def not_found(request: Any, context: Any) -> Any:
        raise ModelNotFoundError("model 'x' is not in the repository")

    context = Context()
    run(contain("svc", "ModelMetadata", "unary", not_found), None, context)
    assert context.code == grpc.StatusCode.NOT_FOUND
    assert context.details == "model 'x' is not in the repository"


def test_a_streaming_generator_is_contained_too() -> None:
    async def generator(request: Any, context: Any) -> AsyncIterator[int]:
        yield 1
        raise ValueError("boom")

    async def drain(request: Any, context: Any) -> None:
        async for _ in contain("svc", "Watch", "server_stream", generator)(request, context):
            pass

    context = Context()
    run(drain, None, context)
    assert context.code == grpc.StatusCode.INTERNAL and "Watch" in context.details


class _Broken:
    """A registry that fails in a way nobody expected."""

    model_count = 1

    def __init__(self) -> None:
        self.routes = self
        self.repository = SimpleNamespace(root=Path("/srv/models"))

    def route(self, name: str, version: str = "") -> Any:
        if name == "broken":
            raise RuntimeError("unexpected")
        raise ModelNotFoundError(f"model '{name}' is not in the repository")


def test_a_request_failing_unexpectedly_on_a_stream_is_answered_and_the_stream_goes_on() -> None:
    service = InferenceService(_Broken(), RoutingCounter())  # type: ignore[arg-type]
    sent = [
        pb.ModelInferRequest(model_name="broken", id="first").SerializeToString(),
        pb.ModelInferRequest(model_name="other", id="second").SerializeToString(),
    ]

    async def messages() -> AsyncIterator[bytes]:
        for message in sent:
            yield message

    context = Context()
    asyncio.run(service.ModelStreamInfer(messages(), context))  # type: ignore[arg-type]
    answers = {
        answer.infer_response.id: answer.error_message
        for answer in map(pb.ModelStreamInferResponse.FromString, context.written)
    }
    assert "ModelStreamInfer" in answers["first"] and "RuntimeError" in answers["first"]
    assert answers["second"] == "model 'other' is not in the repository"


def test_paths_are_named_within_the_repository(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    text = f"model 'mlp': onnxruntime cannot load {root}/mlp/1/model.onnx: bad graph"
    assert (
        without_root(text, root)
        == "model 'mlp': onnxruntime cannot load mlp/1/model.onnx: bad graph"
    )
    assert without_root(f"{root.resolve()}/a/config.pbtxt: x", root) == "a/config.pbtxt: x"
    assert without_root("no path here", root) == "no path here"
