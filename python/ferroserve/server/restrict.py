"""Triton's restricted protocols on the listeners Python serves itself (the `--admin-port`
listener): a grpc.aio interceptor asking `_core.Restrictions`, the same rules, header names and
words as the native front end applies to every call on the public port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from ferroserve import _core

if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # not subscriptable at run time
    _Interceptor = grpc.aio.ServerInterceptor


class RestrictionInterceptor(_Interceptor):
    """Refuses calls of a restricted protocol without their header: UNAVAILABLE with Triton's
    message, before any handler runs."""

    def __init__(self, restrictions: _core.Restrictions) -> None:
        self._restrictions = restrictions

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        metadata = [
            (key, value)
            for key, value in (handler_call_details.invocation_metadata or ())
            if isinstance(value, str)
        ]
        path = handler_call_details.method
        refusal = self._restrictions.refusal(path, metadata)
        handler = await continuation(handler_call_details)
        if refusal is None or handler is None:
            return handler
        return _refusing(handler, refusal)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as `handler` that answers UNAVAILABLE with `message`."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, message)
        yield  # pragma: no cover - abort raises

    deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, deserializer, serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, deserializer, serializer)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary, deserializer, serializer)
    return grpc.stream_stream_rpc_method_handler(streaming, deserializer, serializer)
