"""`ferroserve metrics-sidecar`: serve the snapshot of one serving process until stopped (or,
with `exit_with_pid`, until that process is gone); SIGHUP reloads its TLS certificate."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from ferroserve.sidecar.exposition import SnapshotCollector
from ferroserve.sidecar.gpu import GpuCollector, start_nvml
from ferroserve.sidecar.history import History
from ferroserve.sidecar.http import SidecarServer, SidecarTls
from ferroserve.sidecar.source import SnapshotSource

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class SidecarConfig:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 8002
    interval_s: float = 1.0
    history_s: float = 900.0
    exit_with_pid: int | None = None
    tls: SidecarTls | None = None
    """Serve HTTPS (--metrics-ssl-cert, --metrics-ssl-key); None: HTTP."""


def build_registry(source: SnapshotSource) -> CollectorRegistry:
    """Every metric family the sidecar exports."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source))

    def serving_pid() -> int | str:
        data = source.current()
        return "-" if data is None else int(data["pid"])  # "-": no such /proc entry

    # process_cpu_seconds_total, process_resident_memory_bytes, ... of the serving process,
    # read from /proc here, so the serving process does nothing for them.
    ProcessCollector(namespace="", pid=serving_pid, registry=registry)
    registry.register(GpuCollector(start_nvml()))
    return registry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_sidecar(config: SidecarConfig) -> int:
    source = SnapshotSource(config.directory, config.interval_s)
    history = History(source, config.history_s, config.interval_s)
    server = SidecarServer((config.host, config.port), build_registry(source), history, config.tls)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        try:
            server.reload_tls()
        except ValueError as error:
            log.error("SIGHUP: kept the previous TLS certificate: %s", error)
        else:
            if config.tls is not None:
                log.info("SIGHUP: reloaded the TLS certificate (%s)", config.tls.cert)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)

    def tick() -> None:
        while not stop.wait(config.interval_s):
            history.sample()
            if config.exit_with_pid is not None and not _alive(config.exit_with_pid):
                log.info("serving process %d is gone; metrics sidecar exits", config.exit_with_pid)
                stop.set()

    threading.Thread(target=tick, name="sidecar-sampler", daemon=True).start()
    threading.Thread(target=server.serve_forever, name="sidecar-http", daemon=True).start()
    log.info(
        "metrics sidecar on %s://%s:%d/metrics (dashboard at /), reading %s",
        server.scheme,
        config.host,
        server.server_address[1],
        source.path,
    )
    history.sample()
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0
