"""What bounds a client (docs/security.md), through `ferroserve serve` and a running server:
the flags and their defaults, connections closed when idle, a stream's window on the Python
server's side. The HTTP/2 abuse itself is played against the front end in
rust/frontend/tests/abuse.rs."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from ferroserve.cli import build_parser
from ferroserve.cli_limits import connection_options
from ferroserve.demo import mlp_model
from ferroserve.errors import FerroserveError
from ferroserve.metrics.routing import RoutingCounter
from ferroserve.server.app import Server
from ferroserve.server.inference import InferenceService
from ferroserve.server.limits import DEFAULT_MAX_MESSAGE_BYTES, ConnectionOptions
from ferroserve.server.options import ServerOptions
from support.repository import add_model

pytestmark = pytest.mark.timeout(60)


def test_defaults_bound_messages_and_connections() -> None:
    args = build_parser().parse_args(["serve", "--model-repository", "models"])
    assert args.grpc_max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 128 * 1024**2
    options = connection_options(args)
    assert 16 <= options.max_connections <= 4096
    assert options.max_concurrent_streams == 256
    assert options.idle_timeout_ms == 300_000
    assert options.stream_window == 64
    # Triton's keep-alive defaults, under Triton's flag names.
    assert (options.keepalive_time_ms, options.keepalive_timeout_ms) == (7_200_000, 20_000)
    given = build_parser().parse_args(
        ["serve", "--model-repository", "models", "--grpc-keepalive-time", "1000",
         "--grpc-idle-timeout-ms", "0", "--grpc-stream-window", "8"]
    )  # fmt: skip
    options = connection_options(given)
    assert (options.keepalive_time_ms, options.idle_timeout_ms, options.stream_window) == (
        1000,
        0,
        8,
    )


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--grpc-stream-window", "0", "--grpc-stream-window must be at least 1"),
        ("--grpc-max-connections", "0", "--grpc-max-connections must be at least 1"),
        ("--grpc-idle-timeout-ms", "-1", "--grpc-idle-timeout-ms must not be negative"),
    ],
)
def test_a_limit_out_of_range_is_refused_with_its_flag(flag: str, value: str, says: str) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "ferroserve", "serve", "--model-repository", "models", flag,
         value],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert says in refused.stderr


def _read_to_end(sock: socket.socket) -> bool:
    """Whether the peer closes `sock` (before its timeout)."""
    try:
        while sock.recv(1024):
            pass
    except TimeoutError:
        return False
    return True


def test_idle_connections_are_closed(tmp_path: Path) -> None:
    add_model(tmp_path, "mlp", mlp_model())
    limits = ConnectionOptions(handshake_timeout_ms=300, idle_timeout_ms=300)

    async def main() -> None:
        server = Server(ServerOptions(tmp_path, grpc_port=0, metrics=None, connections=limits))
        await server.start()
        try:
            silent = socket.create_connection(("127.0.0.1", server.port))
            silent.settimeout(3.0)
            # Closed after the handshake timeout: past the server's SETTINGS, end of file.
            assert await asyncio.to_thread(_read_to_end, silent)
            silent.close()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                live = channel.unary_unary(
                    "/inference.GRPCInferenceService/ServerLive",
                    request_serializer=lambda raw: raw,
                    response_deserializer=lambda raw: raw,
                )
                await live(b"")
                # Closed while idle; the client reconnects on its next call.
                await asyncio.sleep(1.0)
                await live(b"")
        finally:
            await server.stop(0.5)

    asyncio.run(main())


class _Unknown:
    """A registry where every model is unknown: each request fails at once."""

    model_count = 0

    def __init__(self) -> None:
        self.routes = self
        self.repository = SimpleNamespace(root=Path("models"))

    def route(self, name: str, version: str = "") -> Any:
        raise FerroserveError(f"model '{name}' is not in the repository")


class _BlockedWriter:
    """A stream context whose client never reads: every write waits forever."""

    def __init__(self) -> None:
        self.writes = 0

    async def write(self, message: bytes) -> None:
        self.writes += 1
        await asyncio.Event().wait()

    def time_remaining(self) -> float | None:
        return None


def test_a_stream_is_not_read_past_its_window_while_answers_wait() -> None:
    """The Python server's side of the stream window (the front end's is
    rust/frontend/tests/abuse.rs): with 4 answers unwritten, no fifth request is read."""
    service = InferenceService(_Unknown(), RoutingCounter(), stream_window=4)  # type: ignore[arg-type]
    read = 0

    async def messages() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(1000):
            read += 1
            yield b""

    async def main() -> None:
        context = _BlockedWriter()
        call = asyncio.ensure_future(service.ModelStreamInfer(messages(), context))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert read <= 5
        assert context.writes == 1  # one write at a time: the others wait for it
        call.cancel()

    asyncio.run(main())
