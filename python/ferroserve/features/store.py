"""The online features of one model version: its `_core.FeaturePlan` (the declaration compiled
against the graph inputs), its embedded `_core.FeatureStore` loaded from the views' snapshot
files, and hot reload (`reload()`, and a poller thread that reloads a view when its file
changes). The loader (runtime/loader.py) builds one per version and hands `binding` to the
native executor, which gathers every batch from the store's current snapshot; a version with
views in Redis (`remote`) has each request joined before it is queued instead: by its native
route, or by `join` for the requests the Python server answers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ferroserve import _core
from ferroserve.config import ModelSignature
from ferroserve.errors import ConfigError, InternalError
from ferroserve.features.declaration import FeatureDeclaration, SnapshotSource
from ferroserve.features.sources import Column, read_snapshot

log = logging.getLogger(__name__)

# A file's identity for change detection: (mtime in ns, size); None while it does not exist.
FileStamp = tuple[int, int] | None


@dataclass(slots=True, frozen=True)
class ReloadResult:
    """What one reload installed."""

    views: tuple[str, ...]
    generation: int
    rows: int
    seconds: float


def compile_plan(
    model: str, declaration: FeatureDeclaration, signature: ModelSignature
) -> _core.FeaturePlan:
    """The declaration checked against the graph inputs (`signature`: the model's own, from
    config.pbtxt and the graph). Raises ConfigError naming the file and what to change."""
    graph_inputs = [(spec.name, spec.datatype.name, list(spec.dims)) for spec in signature.inputs]
    try:
        return _core.FeaturePlan(declaration.plan, graph_inputs)
    except _core.InvalidInputError as error:
        raise ConfigError(f"model '{model}': {declaration.path}: {error}") from error


def file_stamp(source: SnapshotSource) -> FileStamp:
    try:
        stat = os.stat(source.path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class ModelFeatures:
    """One model version's plan and store, and the reloads of its snapshots. Reloads are
    serialised by a lock (the poller's and explicit ones), so two never read the same files at
    once; serving never waits on it: the executor reads the store's current snapshot, which an
    install swaps atomically."""

    def __init__(
        self,
        model: str,
        declaration: FeatureDeclaration,
        plan: _core.FeaturePlan,
        store: _core.FeatureStore,
    ) -> None:
        self.model = model
        self.declaration = declaration
        self.plan = plan
        self.store = store
        self.reloads = 0
        """Reloads that installed new tables (the first load included)."""
        self.reload_failures = 0
        """Reloads that failed; the previous snapshot kept serving."""
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stamps: dict[str, FileStamp] = {}
        """Per view, the stamp of the file its installed (or last failed) load read: a file
        changes again before the poller retries a bad one."""
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @classmethod
    def load(
        cls, model: str, declaration: FeatureDeclaration, signature: ModelSignature
    ) -> ModelFeatures:
        """Compiles the plan and loads every view's snapshot. Blocking (a loading thread).
        Raises ConfigError naming the file, the view and the column that is wrong."""
        plan = compile_plan(model, declaration, signature)
        redis = declaration.redis.as_core() if declaration.redis is not None else None
        try:
            store = _core.FeatureStore(plan, redis)
        except _core.InvalidInputError as error:
            raise ConfigError(f"model '{model}': {declaration.path}: {error}") from error
        features = cls(model, declaration, plan, store)
        if declaration.sources:
            features.reload()
        return features

    @property
    def remote(self) -> bool:
        """Whether some views are in Redis: each request is then joined before it is queued
        (`join` on the Python server, the native route on the front end) and the executor runs
        the graph inputs queued."""
        return bool(self.store.remote)

    def join(
        self, buffers: list[bytes], rows: int, batches: bool
    ) -> tuple[list[bytes], list[list[int]]]:
        """The graph inputs (buffers, shapes) of one request for a `remote` version, from its
        request inputs `buffers` of `rows` rows, joined in Rust exactly as the native front end
        joins them. Blocking, up to about the Redis timeout: call it from a worker thread.
        Raises FeatureNotFoundError (NOT_FOUND) when a REJECT view cannot serve a row.
        `batches`: whether the model has a batch dim (without one, shapes carry none)."""
        try:
            graph_inputs, shapes = self.store.join(buffers, rows)
        except InternalError as error:
            raise InternalError(f"model '{self.model}': {error}") from error
        if not batches:
            shapes = [shape[1:] for shape in shapes]
        return graph_inputs, shapes

    @property
    def binding(self) -> tuple[_core.FeaturePlan, _core.FeatureStore]:
        """What the native executor gathers with."""
        return (self.plan, self.store)

    def reload(self, views: Iterable[str] | None = None) -> ReloadResult:
        """Reads the snapshots of `views` (default: all) and installs them in one atomic swap,
        so every batch sees all of the new tables or none. Raises ConfigError (the store keeps
        what it had); counts failures either way."""
        wanted = set(self.plan.views if views is None else views)
        sources = [source for source in self.declaration.sources if source.view in wanted]
        with self._lock:
            started = time.perf_counter()
            stamps = {source.view: file_stamp(source) for source in sources}
            try:
                tables = [self._build(source) for source in sources]
                generation = self.store.install(tables)
            except (ConfigError, _core.FerroserveError) as error:
                self._stamps.update(stamps)
                self.reload_failures += 1
                self.last_error = str(error)
                if isinstance(error, ConfigError):
                    raise
                raise ConfigError(f"model '{self.model}': {error}") from error
            self._stamps.update(stamps)
            self.reloads += 1
            self.last_error = None
            # pyarrow's allocator (mimalloc) keeps what the read freed; without this a 1.2 GiB
            # snapshot left the process 3.9x its raw values in RSS instead of ~1.2x.
            pa.default_memory_pool().release_unused()
            result = ReloadResult(
                tuple(source.view for source in sources),
                generation,
                sum(table.rows for table in tables),
                time.perf_counter() - started,
            )
        log.info(
            "model '%s': feature views %s loaded (%d rows, generation %d) in %.3f s",
            self.model,
            list(result.views),
            result.rows,
            result.generation,
            result.seconds,
        )
        return result

    def _build(self, source: SnapshotSource) -> _core.FeatureTable:
        key, features, _ = self.plan.view_columns(source.view)
        columns = read_snapshot(
            source, [Column(*part) for part in key], [Column(*feature) for feature in features]
        )
        where = f"model '{self.model}': snapshot {source.path} (view '{source.view}')"
        try:
            table = self.store.build(
                source.view, columns.keys, columns.features, columns.event_times_us
            )
        except _core.InvalidInputError as error:
            raise ConfigError(f"{where}: {error}") from error
        if table.duplicate_keys:
            log.warning(
                "%s: %d duplicate key(s); each keeps its newest row (or its last, without event "
                "times)",
                where,
                table.duplicate_keys,
            )
        return table

    def changed_views(self) -> list[str]:
        """Views whose snapshot file changed since it was last read."""
        return [
            source.view
            for source in self.declaration.sources
            if file_stamp(source) != self._stamps.get(source.view)
        ]

    def poll_once(self) -> ReloadResult | None:
        """Reloads the views whose files changed; a failure is logged and counted, and the old
        snapshot keeps serving. Returns what was installed, if anything."""
        changed = self.changed_views()
        if not changed:
            return None
        try:
            return self.reload(changed)
        except ConfigError as error:
            log.error(
                "model '%s': feature reload failed, still serving the previous snapshot: %s",
                self.model,
                error,
            )
            return None

    def start_polling(self) -> None:
        """Starts the poller thread, unless the declaration turns polling off."""
        interval = self.declaration.poll_interval_s
        if interval is None or self._poller is not None:
            return
        self._poller = threading.Thread(
            target=self._poll, args=(interval,), name=f"features-{self.model}", daemon=True
        )
        self._poller.start()

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.poll_once()

    def stop_polling(self) -> None:
        """Stops the poller (a reload under way finishes first). Blocking, briefly."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None

    def status(self) -> list[dict[str, Any]]:
        """The store's view of each view (rows, memory, ages, generation)."""
        return self.store.status()
