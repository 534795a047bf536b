"""A ferroserve `Server` run in the test's own process, so a test can see which side answered
each call: the native front end (`Frontend.rpc_counts()`) or the Python server behind it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from ferroserve.server.app import Server
from ferroserve.server.options import MetricsOptions, ServerOptions


def native_calls(server: Server, method: str = "ModelInfer") -> dict[str, int]:
    """Calls of `method` the native front end answered itself, by status code."""
    assert server.frontend is not None
    return {code: n for m, _, code, n in server.frontend.rpc_counts() if m == method}


def python_calls(server: Server, method: str = "ModelInfer") -> dict[str, int]:
    """Calls of `method` the Python server answered (forwarded ones), by status code."""
    native = native_calls(server, method)
    merged = {key[3]: n for key, n in server.rpcs.counts().items() if key[1] == method}
    return {code: n - native.get(code, 0) for code, n in merged.items() if n - native.get(code, 0)}


def serve(
    repository: Path,
    scenario: Callable[[Server, grpc.aio.Channel], Awaitable[None]],
    threads: int = 1,
    max_message_bytes: int = 64 * 1024 * 1024,
    admin_token_file: Path | None = None,
    admin_max_push_bytes: int | None = None,
    **options: object,
) -> None:
    """Starts a server on `repository` (port chosen by the OS), runs `scenario` with a channel
    to it, and stops it. `options`: other ServerOptions fields."""

    async def main() -> None:
        # Metrics on (no sidecar): the Python server then counts the calls it answers.
        settings = ServerOptions(
            repository,
            grpc_port=0,
            max_message_bytes=max_message_bytes,
            metrics=MetricsOptions(sidecar=False),
            frontend_threads=threads,
            admin_token_file=admin_token_file,
        )
        if admin_max_push_bytes is not None:
            settings = dataclasses.replace(settings, admin_max_push_bytes=admin_max_push_bytes)
        settings = dataclasses.replace(settings, **options)  # type: ignore[arg-type]
        server = Server(settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                await scenario(server, channel)
        finally:
            await server.stop(1.0)

    asyncio.run(main())
