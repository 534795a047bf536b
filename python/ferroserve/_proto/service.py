"""Registration of the services in ``protos/`` (``inference.GRPCInferenceService``, health,
reflection) on a gRPC server.

Handlers are built from the service descriptors in the private pool (no
generated ``*_pb2_grpc`` module and no tritonclient server stubs), so the
method table always matches the ``.proto`` files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor

from . import POOL, grpc_service_pb2

__all__ = [
    "SERVICE_NAME",
    "add_inference_service",
    "add_service",
    "file_descriptors",
    "method_names",
]

SERVICE_NAME = "inference.GRPCInferenceService"
_SERVICE = POOL.FindServiceByName(SERVICE_NAME)


def file_descriptors() -> list[FileDescriptor]:
    """The inference protocol's file descriptors (the service's file and its imports), in
    dependency order."""
    files: list[FileDescriptor] = []

    def visit(fd: FileDescriptor) -> None:
        if fd not in files:
            for dep in fd.dependencies:
                visit(dep)
            files.append(fd)

    visit(grpc_service_pb2.DESCRIPTOR)
    return files


def method_names() -> list[str]:
    """Names of the service's methods, in declaration order."""
    return [m.name for m in _SERVICE.methods]


def _unimplemented(method: MethodDescriptor) -> Callable[..., Any]:
    message = f"{method.name} is not supported by ferroserve"
    if method.server_streaming:

        async def abort_stream(request_iterator: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
            yield  # pragma: no cover - makes this an async generator

        return abort_stream

    async def abort_unary(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    return abort_unary


def _unimplemented_sync(method: MethodDescriptor) -> Callable[..., Any]:
    message = f"{method.name} is not supported by ferroserve"

    def abort(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    return abort


# Wraps one handler: (service, method, rpc type, behaviour) -> behaviour.
HandlerWrapper = Callable[[str, str, str, Callable[..., Any]], Callable[..., Any]]


def _rpc_type(method: MethodDescriptor) -> str:
    if method.client_streaming:
        return "bidi_stream" if method.server_streaming else "client_stream"
    return "server_stream" if method.server_streaming else "unary"


def add_inference_service(
    server: grpc.aio.Server | grpc.Server,
    servicer: object,
    wrap: HandlerWrapper | None = None,
) -> None:
    """Register ``inference.GRPCInferenceService`` on ``server`` (see :func:`add_service`)."""
    add_service(server, SERVICE_NAME, servicer, wrap)


def add_service(
    server: grpc.aio.Server | grpc.Server,
    service_name: str,
    servicer: object,
    wrap: HandlerWrapper | None = None,
) -> None:
    """Register the service ``service_name`` of :data:`POOL` on ``server``.

    Each RPC is served by the ``servicer`` attribute of the same name (e.g.
    ``servicer.ModelInfer(request, context)``); RPCs the servicer lacks answer
    ``UNIMPLEMENTED``. Unary RPCs get ``(request, context)``, streaming ones
    ``(request_iterator, context)``, as with generated gRPC servicers. Methods named in the
    servicer's ``raw_message_methods`` (a collection of names) get and return serialized
    messages (``bytes``) instead, so that they can parse and write them themselves. ``wrap``,
    when given, decorates every handler (metrics), with the RPC type named as
    go-grpc-prometheus does.
    """
    service = POOL.FindServiceByName(service_name)
    raw = frozenset(getattr(servicer, "raw_message_methods", ()))
    is_aio = isinstance(server, grpc.aio.Server)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        behaviour = getattr(servicer, method.name, None)
        if behaviour is None:
            behaviour = _unimplemented(method) if is_aio else _unimplemented_sync(method)
        if wrap is not None:
            behaviour = wrap(service_name, method.name, _rpc_type(method), behaviour)
        if method.client_streaming and method.server_streaming:
            make = grpc.stream_stream_rpc_method_handler
        elif method.client_streaming:
            make = grpc.stream_unary_rpc_method_handler
        elif method.server_streaming:
            make = grpc.unary_stream_rpc_method_handler
        else:
            make = grpc.unary_unary_rpc_method_handler
        if method.name in raw:
            handlers[method.name] = make(behaviour)
        else:
            handlers[method.name] = make(
                behaviour,
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, handlers),))
