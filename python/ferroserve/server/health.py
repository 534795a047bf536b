"""Keeps `grpc.health.v1.Health` truthful: the overall service ("") and the v2 service name are
SERVING only while the server is ready; each model name is SERVING while a version is ready."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from grpc_health.v1 import health, health_pb2

from ferroserve._proto.service import SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthReporter:
    """Bridges registry state changes (sync callbacks on the loop) to the async health servicer."""

    def __init__(self, server_ready: Callable[[], bool]) -> None:
        self.servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._server_ready = server_ready
        self._tasks: set[asyncio.Task[None]] = set()

    def model_changed(self, name: str, serving: bool) -> None:
        self._schedule(self._update(name, serving))

    async def refresh(self) -> None:
        status = SERVING if self._server_ready() else NOT_SERVING
        await self.servicer.set(health.OVERALL_HEALTH, status)
        await self.servicer.set(SERVICE_NAME, status)

    async def _update(self, name: str, serving: bool) -> None:
        await self.servicer.set(name, SERVING if serving else NOT_SERVING)
        await self.refresh()

    def _schedule(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        await self.servicer.enter_graceful_shutdown()
