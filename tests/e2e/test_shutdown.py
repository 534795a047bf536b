"""Graceful shutdown (docs/security.md): on SIGTERM under load the server stops being ready,
refuses new work with UNAVAILABLE, lets the calls in flight finish, and exits 0 within
--exit-timeout-secs; no request is left without an answer."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from ferroserve.demo import mlp_model
from ferroserve.metrics.routing import RoutingCounter
from ferroserve.server.inference import InferenceService
from support.repository import add_model
from support.server import ServerProcess
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(90)
EXIT_TIMEOUT_S = 10.0
CLIENTS = 16


def request(client: int) -> bytes:
    message = pb.ModelInferRequest(model_name="mlp", id=f"client-{client}")
    message.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    message.raw_input_contents.append(np.ones((1, 64), np.float32).tobytes())
    return message.SerializeToString()


def test_sigterm_under_load_drains_every_call_and_exits_zero(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    add_model(repository, "mlp", mlp_model())
    args = ["--exit-timeout-secs", str(EXIT_TIMEOUT_S)]
    with ServerProcess(repository, tmp_path / "server.log", args) as server:
        server.wait_ready()
        codes: Counter[str] = Counter()
        after_sigterm: Counter[str] = Counter()
        signalled = asyncio.Event()

        async def client(index: int) -> None:
            """Sends one request after another until the server refuses one."""
            async with grpc.aio.insecure_channel(server.url) as channel:
                infer = channel.unary_unary(
                    "/inference.GRPCInferenceService/ModelInfer",
                    request_serializer=lambda raw: raw,
                    response_deserializer=lambda raw: raw,
                )
                while True:
                    try:
                        await infer(request(index), timeout=EXIT_TIMEOUT_S)
                        code = "OK"
                    except grpc.aio.AioRpcError as error:
                        code = error.code().name
                    codes[code] += 1
                    if signalled.is_set():
                        after_sigterm[code] += 1
                    if code != "OK":
                        return

        async def main() -> float:
            clients = [asyncio.create_task(client(index)) for index in range(CLIENTS)]
            await asyncio.sleep(1.0)
            assert codes["OK"] > 0 and set(codes) == {"OK"}, codes
            os.kill(server.pid, signal.SIGTERM)
            signalled.set()
            started = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*clients), timeout=EXIT_TIMEOUT_S + 20)
            return started

        started = asyncio.run(main())
        status = server.wait_exit(EXIT_TIMEOUT_S + 10)
        took = time.monotonic() - started
        assert status == 0, server.log()
        assert took < EXIT_TIMEOUT_S + 5, took
        # Every request was answered: OK, or refused with UNAVAILABLE (each client's last).
        assert set(codes) == {"OK", "UNAVAILABLE"}, codes
        assert codes["UNAVAILABLE"] == CLIENTS, codes
        assert "draining for up to 10 s" in server.log()
        assert "stopped" in server.log()


class _Context:
    code: grpc.StatusCode | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise RuntimeError(details)


def test_a_draining_service_is_not_ready_and_refuses_new_requests() -> None:
    registry = SimpleNamespace(model_count=1, all_ready=lambda: True)
    service = InferenceService(registry, RoutingCounter(), allow_empty=True)  # type: ignore[arg-type]
    assert service.server_ready()
    service.drain()
    assert not service.server_ready()
    context = _Context()
    with pytest.raises(RuntimeError, match="shutting down"):
        asyncio.run(service.ModelInfer(b"", context))  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.UNAVAILABLE
