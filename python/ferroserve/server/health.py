"""The standard `grpc.health.v1.Health` service, served from our own descriptors (no
grpcio-health-checking: its generated code pins the protobuf runtime), and the reporter that
keeps it truthful: the overall service ("") and the v2 service name are SERVING only while the
server is ready; each model name is SERVING while a version of it is ready; LIVENESS is SERVING
from the start until shutdown begins (what Kubernetes' liveness probe asks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from ferroserve._proto import health_pb2
from ferroserve._proto.service import SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
OVERALL = ""
"""The name that asks for the server as a whole (the protocol's convention)."""
LIVENESS = "ferroserve/live"
"""SERVING whenever the server answers at all, ready or not: a liveness probe that asked for
readiness would restart a server whose model cannot load (a loop that hides the reason). The `/`
keeps it apart from every model name: a model is a folder, and a folder name has no `/`."""
HEALTH_SERVICE_NAME = "grpc.health.v1.Health"
Context = grpc.aio.ServicerContext[Any, Any]


class HealthServicer:
    """`Check`, `List` and `Watch` over a table of statuses. Runs on the event loop: `set` is a
    plain call there, and watchers are woken by swapping an `asyncio.Event`, so a watcher that
    never reads holds one pending answer at most (the latest status), never a backlog."""

    def __init__(self) -> None:
        self._statuses: dict[str, health_pb2.HealthCheckResponse.ServingStatus] = {}
        self._changed = asyncio.Event()
        self._shutting_down = False

    def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        """Records `service`'s status (ignored once shutdown began: it stays NOT_SERVING)."""
        if self._shutting_down or self._statuses.get(service) == status:
            return
        self._statuses[service] = status
        self._wake_watchers()

    def enter_graceful_shutdown(self) -> None:
        """Every service becomes NOT_SERVING for good, so probes and balancers move away."""
        self._shutting_down = True
        for service in self._statuses:
            self._statuses[service] = NOT_SERVING
        self._wake_watchers()

    def _wake_watchers(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown service '{request.service}': ask for '' (the server), "
                f"'{SERVICE_NAME}', '{LIVENESS}' or a model name",
            )
        return health_pb2.HealthCheckResponse(status=status)

    async def List(
        self, request: health_pb2.HealthListRequest, context: Context
    ) -> health_pb2.HealthListResponse:
        response = health_pb2.HealthListResponse()
        for service, status in self._statuses.items():
            response.statuses[service].status = status
        return response

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        sent: health_pb2.HealthCheckResponse.ServingStatus | None = None
        while True:
            changed = self._changed  # taken before reading, so no change is missed
            status = self._statuses.get(request.service, SERVICE_UNKNOWN)
            if status != sent:
                sent = status
                yield health_pb2.HealthCheckResponse(status=status)
            await changed.wait()


class HealthReporter:
    """Bridges registry state changes (sync callbacks on the loop) to the health servicer."""

    def __init__(self, server_ready: Callable[[], bool]) -> None:
        self.servicer = HealthServicer()
        self.servicer.set(LIVENESS, SERVING)
        self._server_ready = server_ready

    def model_changed(self, name: str, serving: bool) -> None:
        self.servicer.set(name, SERVING if serving else NOT_SERVING)
        self.refresh()

    def refresh(self) -> None:
        status = SERVING if self._server_ready() else NOT_SERVING
        self.servicer.set(OVERALL, status)
        self.servicer.set(SERVICE_NAME, status)

    def shutdown(self) -> None:
        self.servicer.enter_graceful_shutdown()
