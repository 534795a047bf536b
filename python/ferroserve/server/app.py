"""Hosts a running ferroserve: the native front end (`_core.Frontend`, Rust) on the public port,
and behind it, on a private Unix socket, one grpc.aio server with the inference, feature
(`FeatureService`), drift, admin (`AdminService`: pushing and loading versions), health and
reflection services for every call the front end forwards;
message limits sized for real tensors, TLS on every TCP port (certificates reloaded on SIGHUP),
and an orderly start and stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
from dataclasses import asdict
from pathlib import Path

import grpc

from ferroserve import _core
from ferroserve._proto.service import SERVICE_NAME, add_inference_service, add_service
from ferroserve.metrics.recorder import MetricsRecorder
from ferroserve.metrics.routing import RoutingCounter
from ferroserve.metrics.rpc import RpcCounter
from ferroserve.metrics.supervisor import SidecarOptions, SidecarSupervisor
from ferroserve.registry.control import ALL_MODELS, EXPLICIT, POLL
from ferroserve.registry.poller import RepositoryPoller
from ferroserve.registry.registry import ModelRegistry
from ferroserve.registry.repository import ModelRepository
from ferroserve.registry.s3 import S3Mirror, parse_s3_url
from ferroserve.registry.writer import sweep_staging
from ferroserve.runtime.settings import set_default_max_queue_size
from ferroserve.server.admin import ADMIN_SERVICE_NAME, AdminService
from ferroserve.server.admin_listener import AdminListener
from ferroserve.server.auth import TokenGuard, chain
from ferroserve.server.drift import DRIFT_SERVICE_NAME, DriftService
from ferroserve.server.faults import contain
from ferroserve.server.features import FEATURE_SERVICE_NAME, FeatureService
from ferroserve.server.health import HEALTH_SERVICE_NAME, HealthReporter
from ferroserve.server.inference import InferenceService
from ferroserve.server.options import MetricsOptions, ServerOptions
from ferroserve.server.reflection import reflection_servicers

log = logging.getLogger(__name__)


class Server:
    """A running ferroserve: registry, services and the grpc.aio server."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        set_default_max_queue_size(options.default_max_queue_size)
        self.health = HealthReporter(lambda: self.service.server_ready())
        self.registry = ModelRegistry(
            ModelRepository(options.model_repository), on_change=self._model_changed
        )
        self.routing = RoutingCounter()
        """Requests per model, alias and version, and shadow comparisons, both paths."""
        self.service = InferenceService(
            self.registry,
            self.routing,
            options.allow_empty,
            options.model_control_mode,
            options.connections.stream_window,
        )
        self.mirror = (
            None
            if options.repository_url is None
            else S3Mirror(parse_s3_url(options.repository_url), options.model_repository)
        )
        self.poller = (
            RepositoryPoller(
                self.registry,
                options.repository_poll_secs,
                self.mirror,
                apply=options.model_control_mode == POLL,
            )
            if options.model_control_mode == POLL or self.mirror is not None
            else None
        )
        self.rpcs = RpcCounter()
        self.grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
                # Two servers on one port would split traffic silently; fail the bind instead.
                ("grpc.so_reuseport", 0),
            ]
        )
        # Parsed first: a bad --grpc-restricted-protocol stops the server before it binds.
        self.restrictions = _core.Restrictions(list(options.restricted_protocols))
        self.http_restrictions = _core.Restrictions(list(options.http_restricted_apis), http=True)
        counted = self.rpcs.wrap if options.metrics is not None else None
        # Unexpected exceptions answer INTERNAL with a message, never UNKNOWN (faults.py).
        contained = chain(counted, contain)
        add_inference_service(self.grpc, self.service, contained)
        add_service(self.grpc, FEATURE_SERVICE_NAME, FeatureService(self.registry), contained)
        add_service(self.grpc, DRIFT_SERVICE_NAME, DriftService(self.registry), contained)
        self.admin_guard = (
            None
            if options.admin_token_file is None
            else TokenGuard.from_file(options.admin_token_file, "--admin-token-file")
        )
        admin = AdminService(
            self.registry,
            options.admin_max_push_bytes,
            options.admin_max_pushes,
            options.admin_push_idle_s,
        )
        admin_wrap = chain(
            counted,
            self.admin_guard.wrap if self.admin_guard is not None else None,
            contain,
        )
        self.admin_listener: AdminListener | None = None
        if options.admin_port is None:
            add_service(self.grpc, ADMIN_SERVICE_NAME, admin, admin_wrap)
        else:
            self.admin_listener = AdminListener(
                admin,
                admin_wrap,
                self.health.servicer,
                options.max_message_bytes,
                reflection=options.reflection,
                restrictions=self.restrictions,
                tls=options.tls,
            )
        add_service(self.grpc, HEALTH_SERVICE_NAME, self.health.servicer)
        services = (
            SERVICE_NAME,
            FEATURE_SERVICE_NAME,
            DRIFT_SERVICE_NAME,
            *([ADMIN_SERVICE_NAME] if options.admin_port is None else []),
            HEALTH_SERVICE_NAME,
        )
        if options.reflection:
            for name, servicer in reflection_servicers(services).items():
                add_service(self.grpc, name, servicer)
        self.port = 0
        self.http_port = 0
        """Where the v2 REST protocol is served (0: it is not)."""
        self.admin_port = 0
        """Where the admin service listens when it has a port of its own."""
        self.frontend: _core.Frontend | None = None
        self._socket_dir: tempfile.TemporaryDirectory[str] | None = None
        self.recorder: MetricsRecorder | None = None
        self.sidecar: SidecarSupervisor | None = None
        self._metrics_tmp: tempfile.TemporaryDirectory[str] | None = None

    def _start_metrics(self, metrics: MetricsOptions) -> None:
        directory = metrics.directory
        if directory is None:
            self._metrics_tmp = tempfile.TemporaryDirectory(prefix="ferroserve-metrics-")
            directory = Path(self._metrics_tmp.name)
        directory.mkdir(parents=True, exist_ok=True)
        self.recorder = MetricsRecorder(
            self.registry, self.rpcs, directory, metrics.interval_s, self.routing
        )
        self.recorder.start()
        if metrics.sidecar:
            self.sidecar = SidecarSupervisor(
                SidecarOptions(
                    directory,
                    metrics.host,
                    metrics.port,
                    metrics.interval_s,
                    metrics.ssl_cert,
                    metrics.ssl_key,
                )
            )
            self.sidecar.start()

    def _model_changed(self, name: str, ready: bool) -> None:
        self.health.model_changed(name, ready)
        self._publish_routes()

    def _publish_routes(self) -> None:
        """Hands the native front end every route it can answer itself: each ready version
        and alias, the traffic policy's targets (drawn per request by weight in Rust) and its
        shadows. A policy with a target the front end cannot run is left to the Python
        server whole, so the shares stay the policy's."""
        if self.frontend is None:  # not started yet: `_bind` publishes them once it is
            return
        table = []
        for name, routes in self.registry.routes.models().items():
            labels = [(str(v), "", m) for v, m in routes.versions.items()]
            labels.extend((alias, alias, m) for alias, m in routes.aliases.items())
            named = [
                (label, alias, str(m.version), m.native_route)
                for label, alias, m in labels
                if m.native_route is not None
            ]
            split = [
                (t.percent, t.alias, str(t.model.version), t.model.native_route)
                for t in routes.default
                if t.model.native_route is not None
            ]
            shadows = [
                (t.percent, str(t.model.version), t.model.native_route)
                for t in routes.shadows
                if t.model.native_route is not None
            ]
            table.append((name, named, split if len(split) == len(routes.default) else [], shadows))
        self.frontend.set_routes(table)

    async def _bind(self) -> None:
        address = f"{self.options.host}:{self.options.grpc_port}"
        http_port = self.options.http_port
        http_address = None if http_port is None else f"{self.options.host}:{http_port}"
        self._socket_dir = tempfile.TemporaryDirectory(prefix="ferroserve-grpc-")
        socket_path = Path(self._socket_dir.name) / "backend.sock"
        if self.grpc.add_insecure_port(f"unix:{socket_path}") == 0:
            raise OSError(f"cannot bind the gRPC backend socket {socket_path}")
        await self.grpc.start()
        tls = self.options.tls
        try:
            self.frontend = _core.Frontend.start(
                address,
                str(socket_path),
                http_address=http_address,
                max_message_bytes=self.options.max_message_bytes,
                threads=self.options.frontend_threads,
                restrictions=self.restrictions,
                http_restrictions=self.http_restrictions,
                **asdict(self.options.connections),
                tls_cert=None if tls is None else str(tls.cert),
                tls_key=None if tls is None else str(tls.key),
                tls_root_cert=None if tls is None or tls.root_cert is None else str(tls.root_cert),
                http_tls=self.options.http_tls,
            )
        except (OSError, ValueError):  # ValueError: TLS files changed since the CLI checked them
            await self.grpc.stop(None)
            raise
        self.port = self.frontend.port
        self.http_port = self.frontend.http_port
        self.rpcs.add_source(self.frontend.rpc_counts)
        self.routing.add_source(self.frontend.routed_counts, self.frontend.shadow_counts)
        self._publish_routes()

    async def start(self) -> int:
        """Binds, starts answering (live, not yet ready), then loads the models."""
        # Twice the push idle timeout: a push another replica is still receiving on a shared
        # volume has written within it, and is left alone.
        removed = await asyncio.to_thread(
            sweep_staging, self.options.model_repository, 2 * self.options.admin_push_idle_s
        )
        for path in removed:
            log.warning("removed %s, an unfinished push left by a server that stopped", path)
        if self.admin_guard is None:
            log.warning(
                "the admin service (pushing, loading and unloading model versions) is open to "
                "anyone who can reach the %s; give --admin-token-file to protect it",
                "gRPC port" if self.options.admin_port is None else "admin port",
            )
        if self.mirror is not None:
            report = await asyncio.to_thread(self.mirror.sync)
            log.info(
                "mirrored %s into %s (%d file(s))",
                self.mirror.location,
                self.options.model_repository,
                len(report.downloaded),
            )
        await self._bind()
        if self.admin_listener is not None:
            assert self.options.admin_port is not None
            self.admin_port = await self.admin_listener.start(
                self.options.host, self.options.admin_port
            )
            log.info("admin service on %s:%d", self.options.host, self.admin_port)
        if self.options.metrics is not None:
            self._start_metrics(self.options.metrics)
        self.health.refresh()
        if self.http_port:
            log.info(
                "HTTP%s (v2 REST) listening on %s:%d",
                "S" if self.options.http_tls else "",
                self.options.host,
                self.http_port,
            )
            if self.options.tls is not None and not self.options.http_tls:
                log.warning(
                    "the HTTP port %d serves plaintext (--http-use-ssl=false): TLS covers the "
                    "gRPC, admin and metrics ports only; drop --http-use-ssl=false, give "
                    "--no-allow-http to close it, or put a TLS proxy in front",
                    self.http_port,
                )
        log.info(
            "gRPC%s listening on %s:%d; loading models",
            "" if self.options.tls is None else " (TLS)",
            self.options.host,
            self.port,
        )
        if self.poller is not None:
            await self.poller.baseline()  # what changes from now on is picked up by a poll
        results = await asyncio.gather(*(self._load(name) for name in self._startup_models()))
        self.health.refresh()
        ready = self.service.server_ready()
        log.info(
            "%d/%d models loaded; server %s",
            sum(results),
            len(results),
            "READY" if ready else "NOT READY",
        )
        if self.poller is not None:
            self.poller.start()
            log.info("polling the repository every %g s", self.options.repository_poll_secs)
        return self.port

    def _startup_models(self) -> list[str]:
        """The models to load at start: --load-model's (`*`: all), else every model in the
        repository, except in explicit mode, which starts with none (Triton's semantics)."""
        models = self.options.models
        if models is not None and ALL_MODELS not in models:
            return list(models)
        if models is None and self.options.model_control_mode == EXPLICIT:
            return []
        return self.registry.repository.model_names()

    async def _load(self, name: str) -> bool:
        try:
            await self.registry.load(name)
        except Exception:  # reported in the log and in RepositoryIndex; others keep loading
            return False
        return True

    def reload_tls(self) -> None:
        """SIGHUP: every TLS port reads its certificate files again; new connections get the
        new certificates, open ones go on. Files that cannot be used are logged and the old
        certificates kept: a bad rotation never takes the server down."""
        tls = self.options.tls
        if tls is not None:
            try:
                tls.check()
                if self.frontend is not None:
                    self.frontend.reload_tls()
                if self.admin_listener is not None:
                    self.admin_listener.reload_tls()
            except ValueError as error:
                log.error("SIGHUP: kept the previous TLS certificates: %s", error)
            else:
                log.info("SIGHUP: reloaded the TLS certificates (%s, %s)", tls.cert, tls.key)
        if self.sidecar is not None:
            self.sidecar.reload_tls()  # the sidecar reloads its own (--metrics-ssl-cert)
        elif tls is None:
            log.info("SIGHUP: no TLS configured, nothing to reload")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Drains, then stops: readiness goes NOT_SERVING at once and new work is refused
        (new connections are not accepted, open ones get a GOAWAY, requests reaching the Python
        server get UNAVAILABLE) while the calls in flight and the requests queued finish, for up
        to `grace_s`; then the models unload and the last metrics snapshot is written."""
        self.service.drain()
        self.health.shutdown()
        if self.poller is not None:
            await self.poller.stop()
            await self.poller.sync()  # what was pushed since the last sync reaches the bucket
        if self.frontend is not None:
            await asyncio.to_thread(self.frontend.stop, grace_s)
        await self.grpc.stop(grace_s)
        if self.admin_listener is not None:
            await self.admin_listener.stop(grace_s)
        await self.registry.unload_all()
        if self.recorder is not None:
            await self.recorder.stop()
        if self.sidecar is not None:
            await self.sidecar.stop()
        if self._metrics_tmp is not None:
            self._metrics_tmp.cleanup()
        if self._socket_dir is not None:
            self._socket_dir.cleanup()


async def serve_forever(options: ServerOptions) -> None:
    """Runs until SIGINT/SIGTERM, then drains and stops."""
    server = Server(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload_tls)
    await server.start()
    await stop.wait()
    log.info("shutting down: draining for up to %g s", options.exit_timeout_s)
    await server.stop(options.exit_timeout_s)
    log.info("stopped")
