"""`--admin-port`: the admin service (push, versions, load/unload, aliases, traffic) on a port of
its own, so a network policy or a firewall can keep deployers' calls off the port applications
reach. Plain grpc.aio, no native front end: management calls are rare and their work (disk,
loads) dwarfs the transport. The inference port then answers admin calls UNIMPLEMENTED. The
token guard (--admin-token-file), the restricted protocols (--grpc-restricted-protocol) and TLS
(--grpc-use-ssl and its siblings, reloaded with the front end's on SIGHUP) apply on this port as on
the shared one."""

from __future__ import annotations

import grpc

from ferroserve import _core
from ferroserve._proto.service import HandlerWrapper, add_service
from ferroserve.server.admin import ADMIN_SERVICE_NAME, AdminService
from ferroserve.server.health import HEALTH_SERVICE_NAME
from ferroserve.server.reflection import reflection_servicers
from ferroserve.server.restrict import RestrictionInterceptor
from ferroserve.server.tls import ReloadableCredentials, TlsOptions


class AdminListener:
    """A grpc.aio server with the admin service, gRPC health (and reflection, with
    --grpc-reflection) on `host:port`."""

    def __init__(
        self,
        admin: AdminService,
        wrap: HandlerWrapper | None,
        health_servicer: object,
        max_message_bytes: int,
        reflection: bool = False,
        restrictions: _core.Restrictions | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        interceptors = (
            [RestrictionInterceptor(restrictions)]
            if restrictions is not None and not restrictions.is_empty()
            else []
        )
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        add_service(self._server, ADMIN_SERVICE_NAME, admin, wrap)
        add_service(self._server, HEALTH_SERVICE_NAME, health_servicer)
        services = (ADMIN_SERVICE_NAME, HEALTH_SERVICE_NAME)
        if reflection:
            for name, servicer in reflection_servicers(services).items():
                add_service(self._server, name, servicer)
        self._tls = None if tls is None else ReloadableCredentials(tls)
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Binds and starts answering; the bound port (OSError when it is taken)."""
        address = f"{host}:{port}"
        if self._tls is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, self._tls.credentials)
        if self.port == 0:
            raise OSError(f"cannot bind the admin port {host}:{port} (--admin-port)")
        await self._server.start()
        return self.port

    def reload_tls(self) -> None:
        """New connections get the certificates the files hold now (ValueError: kept)."""
        if self._tls is not None:
            self._tls.reload()

    async def stop(self, grace_s: float) -> None:
        await self._server.stop(grace_s)
