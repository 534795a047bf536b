"""Runs the metrics sidecar as a child process of `ferroserve serve` and restarts it when it
dies (with backoff, logged), so a crashed exporter costs a scrape or two and never a request.
The sidecar exits by itself when the serving process is gone (`--exit-with-pid`); SIGHUP is passed
on to it (it reloads its TLS certificates)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_CHECK_INTERVAL_S = 0.5
_MAX_BACKOFF_S = 30.0
# A sidecar that ran this long before dying is restarted without backoff.
_HEALTHY_RUN_S = 10.0


@dataclass(slots=True, frozen=True)
class SidecarOptions:
    """Where the sidecar reads snapshots and where it serves."""

    directory: Path
    host: str
    port: int
    interval_s: float
    ssl_cert: Path | None = None
    """Serve HTTPS with this certificate and `ssl_key` (--metrics-ssl-cert/-key)."""
    ssl_key: Path | None = None

    def command(self) -> list[str]:
        tls = (
            []
            if self.ssl_cert is None or self.ssl_key is None
            else ["--metrics-ssl-cert", str(self.ssl_cert), "--metrics-ssl-key", str(self.ssl_key)]
        )
        return [
            sys.executable,
            "-m",
            "ferroserve",
            "metrics-sidecar",
            "--metrics-dir",
            str(self.directory),
            "--host",
            self.host,
            "--metrics-port",
            str(self.port),
            "--metrics-interval-ms",
            str(round(self.interval_s * 1000)),
            "--exit-with-pid",
            str(os.getpid()),
            *tls,
        ]


class SidecarSupervisor:
    """Starts the sidecar, restarts it when it exits, stops it on shutdown."""

    def __init__(self, options: SidecarOptions) -> None:
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._backoff_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._spawn()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="sidecar-watch")

    def _spawn(self) -> None:
        self.process = subprocess.Popen(self.options.command(), stdin=subprocess.DEVNULL)
        self._started_at = time.monotonic()
        log.info(
            "metrics sidecar pid %d serving %s://%s:%d/metrics",
            self.process.pid,
            "http" if self.options.ssl_cert is None else "https",
            self.options.host,
            self.options.port,
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_CHECK_INTERVAL_S)
            process = self.process
            if process is None or process.poll() is None:
                continue
            ran_s = time.monotonic() - self._started_at
            quick_failure = ran_s <= _HEALTHY_RUN_S
            self._backoff_s = (
                min(max(1.0, 2 * self._backoff_s), _MAX_BACKOFF_S) if quick_failure else 0.0
            )
            log.warning(
                "metrics sidecar exited with %s after %.1fs; restarting in %.0fs",
                process.returncode,
                ran_s,
                self._backoff_s,
            )
            await asyncio.sleep(self._backoff_s)
            self._spawn()

    def reload_tls(self) -> None:
        """Passes SIGHUP on: the sidecar reads its certificate files again."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGHUP)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
