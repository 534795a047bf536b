"""`inference.GRPCInferenceService` (KServe v2 / Triton field numbering) behind the native front
end: every RPC but the inference requests the front end answers itself arrives here, forwarded
unchanged. Protocol only: every decision is delegated to the registry and the served models;
errors become gRPC status codes in one place (`ferroserve.errors.status_code_for`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ferroserve import __version__
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve.codec import parse_request, serialize_response
from ferroserve.errors import FerroserveError, status_code_for
from ferroserve.metrics.routing import RoutingCounter
from ferroserve.registry.control import EXPLICIT
from ferroserve.registry.registry import ModelRegistry, State
from ferroserve.server.faults import internal_error, without_root
from ferroserve.server.shadowing import ShadowCopies
from ferroserve.server.statistics import model_statistics

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
EXTENSIONS = (
    "classification",
    "model_repository",
    "model_configuration",
    "statistics",
    "schedule_policy",
)


class InferenceService:
    """Implements the v2 RPCs on top of a `ModelRegistry`."""

    # These get and return serialized messages and parse them here, not in grpc: a message
    # that is not a ModelInferRequest is then INVALID_ARGUMENT with protobuf's reason, and on a
    # stream one error_message response instead of the end of the stream (docs/errors.md).
    raw_message_methods = frozenset({"ModelInfer", "ModelStreamInfer"})

    def __init__(
        self,
        registry: ModelRegistry,
        routing: RoutingCounter,
        allow_empty: bool = False,
        model_control_mode: str = EXPLICIT,
        stream_window: int = 64,
    ) -> None:
        self._registry = registry
        self._model_control_mode = model_control_mode
        # Started to be driven by RepositoryModelLoad, a server may rightly hold no model yet.
        self._allow_empty = allow_empty or model_control_mode == EXPLICIT
        self._routing = routing
        self._shadows = ShadowCopies(routing)
        self._stream_window = stream_window
        self._draining = False

    async def _abort(self, context: Context, error: BaseException) -> None:
        text = without_root(str(error), self._registry.repository.root)
        await context.abort(status_code_for(error), text)

    def drain(self) -> None:
        """The server is shutting down: not ready any more, and new requests that reach this
        server are refused with UNAVAILABLE (those in flight finish)."""
        self._draining = True

    async def _refuse_while_draining(self, context: Context) -> None:
        if self._draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; send the request to another replica",
            )

    def server_ready(self) -> bool:
        if self._draining:
            return False
        if self._registry.model_count == 0 and not self._allow_empty:
            return False
        return self._registry.all_ready()

    async def _check_model_control(self, context: Context) -> None:
        """RepositoryModelLoad/Unload only in explicit mode, as Triton (which answers
        UNAVAILABLE; FAILED_PRECONDITION here, so clients do not retry what cannot succeed)."""
        if self._model_control_mode != EXPLICIT:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "explicit model load / unload is not allowed: the server runs with "
                f"--model-control-mode={self._model_control_mode}; start it with "
                "--model-control-mode=explicit, or push and (un)load versions through the "
                "admin service (ferroserve push / load / unload)",
            )

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> Any:
        return pb.ServerReadyResponse(ready=self.server_ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> Any:
        ready = self._registry.routes.is_ready(request.name, request.version)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> Any:
        return pb.ServerMetadataResponse(
            name="ferroserve", version=__version__, extensions=list(EXTENSIONS)
        )

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> Any:
        try:
            model = self._registry.routes.resolve(request.name, request.version)
        except FerroserveError as error:
            await self._abort(context, error)
            raise
        signature = model.signature
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=model.name,
            versions=[m.version_label for m in self._registry.routes.ready_versions(model.name)],
            platform=model.config.platform,
            inputs=[
                tensor(name=s.name, datatype=s.datatype.name, shape=signature.client_shape(s))
                for s in signature.inputs
            ],
            outputs=[
                tensor(name=s.name, datatype=s.datatype.name, shape=signature.client_shape(s))
                for s in signature.outputs
            ],
        )

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context) -> Any:
        try:
            model = self._registry.routes.resolve(request.name, request.version)
        except FerroserveError as error:
            await self._abort(context, error)
            raise
        return pb.ModelConfigResponse(config=model.config)

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Context) -> Any:
        try:
            if request.name:
                models = (
                    [self._registry.routes.resolve(request.name, request.version)]
                    if request.version
                    else self._registry.routes.ready_versions(request.name)
                )
                if not models:
                    self._registry.routes.resolve(request.name)  # raises the right error
            else:
                models = [
                    m
                    for row in self._registry.index()
                    if row.state == State.READY.value
                    for m in [self._registry.routes.resolve(row.name, row.version)]
                ]
        except FerroserveError as error:
            await self._abort(context, error)
            raise
        return pb.ModelStatisticsResponse(model_stats=[model_statistics(m) for m in models])

    async def ModelInfer(self, message: bytes, context: Context) -> bytes:
        """Gets and returns serialized messages (see `raw_message_methods`)."""
        await self._refuse_while_draining(context)
        try:
            request = parse_request(message)
            response = await self._infer(request, context)
        except FerroserveError as error:
            await self._abort(context, error)
            raise
        return serialize_response(response, stream=False)

    async def _infer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        routed = self._registry.routes.route(request.model_name, request.model_version)
        target = routed.target
        self._routing.served(target.model.name, target.alias, target.model.version)
        response = await target.model.infer(request, context.time_remaining())
        if routed.copies:
            self._shadows.send(request, response, routed.copies)
        return response

    async def ModelStreamInfer(self, messages: AsyncIterator[bytes], context: Context) -> None:
        """Requests on one stream run concurrently; each response carries its request's id.
        A failing request becomes an `error_message` on the stream, never the end of it.
        Responses are written with `context.write`, one at a time. At most `stream_window`
        requests are in flight: past that the stream is not read until one is answered, so a
        client that does not read its answers is paused (HTTP/2 flow control)."""
        await self._refuse_while_draining(context)
        write_lock = asyncio.Lock()
        window = asyncio.Semaphore(self._stream_window)
        pending: set[asyncio.Task[None]] = set()

        async def answer(message: bytes) -> None:
            request = pb.ModelInferRequest()
            try:
                try:
                    request = parse_request(message)
                    response = serialize_response(await self._infer(request, context), stream=True)
                except FerroserveError as error:
                    text = without_root(str(error), self._registry.repository.root)
                    response = _stream_error(request, text)
                except Exception as error:  # answered on the stream, never left unanswered
                    text = str(internal_error("ModelStreamInfer", error))
                    response = _stream_error(request, text)
                async with write_lock:
                    await context.write(response)
            finally:
                window.release()

        try:
            async for message in messages:
                await window.acquire()
                task = asyncio.create_task(answer(message))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
        finally:
            for task in pending:
                task.cancel()

    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Context) -> Any:
        index = pb.RepositoryIndexResponse.ModelIndex
        root = self._registry.repository.root
        rows = [
            index(name=name, version=version, state=state, reason=without_root(reason, root))
            for name, version, state, reason in self._registry.index()
            if not request.ready or state == "READY"
        ]
        return pb.RepositoryIndexResponse(models=rows)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> Any:
        await self._check_model_control(context)
        if request.parameters:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "load parameters (config / file overrides) are not supported; update the model "
                f"repository and load again (got {sorted(request.parameters)})",
            )
        try:
            await self._registry.load(request.model_name, reset_versions=True)
        except FerroserveError as error:
            await self._abort(context, error)
            raise
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> Any:
        await self._check_model_control(context)
        try:
            await self._registry.unload(request.model_name)
        except FerroserveError as error:
            await self._abort(context, error)
            raise
        return pb.RepositoryModelUnloadResponse()


def _stream_error(request: pb.ModelInferRequest, message: str) -> bytes:
    """A stream's answer to a failed request: the error's message and the request's model and
    id (empty for a message that did not parse)."""
    return pb.ModelStreamInferResponse(
        error_message=message,
        infer_response=pb.ModelInferResponse(
            model_name=request.model_name, model_version=request.model_version, id=request.id
        ),
    ).SerializeToString()
