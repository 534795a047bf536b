"""Writes the metrics snapshot every interval from the serving process's event loop. Collecting
reads Rust atomics and the registry (tens of microseconds); serialising and writing the file
run in a worker thread, so the loop is busy for a moment per interval and never per scrape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from ferroserve import _core
from ferroserve.drift.tracking import ModelDrift
from ferroserve.metrics import snapshot
from ferroserve.metrics.drift import drift_snapshot
from ferroserve.metrics.features import feature_snapshot
from ferroserve.metrics.routing import RoutingCounter, routing_snapshot
from ferroserve.metrics.rpc import RpcCounter
from ferroserve.registry.registry import ModelRegistry

log = logging.getLogger(__name__)


def collect(
    registry: ModelRegistry,
    rpcs: RpcCounter,
    started_unix: float,
    routing: RoutingCounter | None = None,
) -> dict[str, Any]:
    """The snapshot as plain data. Runs on the event loop (the registry's owner); the Rust
    statistics are atomics read without locks."""
    models = []
    for name, version, state, reason in registry.known():
        entry: dict[str, Any] = {"model": name, "version": version, "state": state}
        if reason:
            entry["reason"] = reason
        model = registry.routes.loaded(name, version)
        if model is not None:
            entry["provider"] = model.provider
            entry["load_seconds"] = model.report.load_seconds
            entry["stats"] = model.queue.statistics()
            if model.features is not None:
                entry["features"] = feature_snapshot(model.features)
        models.append(entry)
    return {
        "format": snapshot.FORMAT,
        "pid": os.getpid(),
        "started_unix": started_unix,
        "written_unix": time.time(),
        "duration_buckets_ns": list(_core.DURATION_BUCKETS_NS),
        "feature_lookup_buckets_ns": list(_core.LOOKUP_BUCKETS_NS),
        "outcomes": list(_core.REQUEST_OUTCOMES),
        "models": models,
        "rpcs": [[*key, count] for key, count in sorted(rpcs.counts().items())],
        "routing": routing_snapshot(routing or RoutingCounter(), registry),
    }


def _drifting(
    registry: ModelRegistry, data: dict[str, Any]
) -> list[tuple[dict[str, Any], ModelDrift]]:
    """The snapshot's entries of loaded versions that monitor drift, with their trackers."""
    pairs = []
    for entry in data["models"]:
        model = registry.routes.loaded(entry["model"], entry["version"])
        if model is not None and model.drift is not None:
            pairs.append((entry, model.drift))
    return pairs


def _write(
    path: Path, data: dict[str, Any], drifts: list[tuple[dict[str, Any], ModelDrift]]
) -> None:
    """In a worker thread: the drift reports (Rust, every column and window), then the file."""
    for entry, drift in drifts:
        try:
            entry["drift"] = drift_snapshot(drift)
        except Exception:  # a report bug must not stop the other metrics
            log.exception("model '%s': cannot compute the drift report", entry["model"])
    snapshot.write(path, data)


class MetricsRecorder:
    """Keeps `directory/SNAPSHOT_FILE` at most `interval_s` old while running."""

    def __init__(
        self,
        registry: ModelRegistry,
        rpcs: RpcCounter,
        directory: Path,
        interval_s: float,
        routing: RoutingCounter | None = None,
    ) -> None:
        self.path = directory / snapshot.SNAPSHOT_FILE
        self._registry = registry
        self._rpcs = rpcs
        self._routing = routing
        self._interval_s = interval_s
        self._started_unix = time.time()
        self._task: asyncio.Task[None] | None = None

    async def write_now(self) -> None:
        data = collect(self._registry, self._rpcs, self._started_unix, self._routing)
        drifts = _drifting(self._registry, data)
        await asyncio.to_thread(_write, self.path, data, drifts)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics-recorder")

    async def _run(self) -> None:
        while True:
            try:
                await self.write_now()
            except OSError as error:  # a full or vanished disk must not stop serving
                log.warning("cannot write metrics snapshot %s: %s", self.path, error)
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        """Stops writing after one last snapshot, so the final counts are on disk."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(OSError):
            await self.write_now()
