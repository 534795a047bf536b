"""gRPC calls handled, by method and status code (exported as Prometheus'
`grpc_server_handled_total`, the name go-grpc-prometheus and py-grpc-prometheus use, so
existing gRPC dashboards work). Counting is one dict update per call on the event loop."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from ferroserve._proto.service import SERVICE_NAME
from ferroserve.errors import status_code_for

# (service, method, type, code name) -> calls
RpcKey = tuple[str, str, str, str]
_OK = grpc.StatusCode.OK.name


class RpcCounter:
    """Counts finished RPCs; `wrap` decorates a servicer method to count it."""

    def __init__(self) -> None:
        self._counts: Counter[RpcKey] = Counter()
        self._sources: list[Callable[[], list[tuple[str, str, str, int]]]] = []

    def add_source(self, source: Callable[[], list[tuple[str, str, str, int]]]) -> None:
        """Adds calls counted elsewhere (the native front end's): `source()` returns
        (method, rpc type, code name, calls) of the inference service."""
        self._sources.append(source)

    def counts(self) -> dict[RpcKey, int]:
        """A copy of the counts (taken on the event loop, which alone updates them), with
        every source's added."""
        counts = Counter(self._counts)
        for source in self._sources:
            for method, rpc_type, code, calls in source():
                counts[(SERVICE_NAME, method, rpc_type, code)] += calls
        return dict(counts)

    def wrap(
        self, service: str, method: str, rpc_type: str, behaviour: Callable[..., Any]
    ) -> Callable[..., Any]:
        """`behaviour` counted under (service, method, rpc_type). Streaming responses count
        once, when the stream ends (an async generator's, or a coroutine's that writes them
        with `context.write`)."""
        counts = self._counts
        ok: RpcKey = (service, method, rpc_type, _OK)

        def failed(error: BaseException, context: Any) -> RpcKey:
            return (service, method, rpc_type, _failure_code(error, context))

        if inspect.isasyncgenfunction(behaviour):

            @functools.wraps(behaviour)
            async def counted_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                try:
                    async for response in behaviour(request, context):
                        yield response
                except BaseException as error:
                    counts[failed(error, context)] += 1
                    raise
                counts[ok] += 1

            return counted_stream

        @functools.wraps(behaviour)
        async def counted(request: Any, context: Any) -> Any:
            try:
                response = await behaviour(request, context)
            except BaseException as error:
                counts[failed(error, context)] += 1
                raise
            counts[ok] += 1
            return response

        return counted


def _failure_code(error: BaseException, context: Any) -> str:
    """The status the client sees: the one `context.abort` set, else what the error maps to."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code.name
    return status_code_for(error).name
