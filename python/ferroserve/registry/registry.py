"""The live model registry: which versions are loading, ready, unloading or failed, and which
`ServedModel` answers a request for a model and a version, an alias or no version (its routes,
routes.py, after its aliases and traffic policy, routing.py). All state changes happen on the
event loop; the blocking part of a load (sha256 check of a pushed version, session creation,
warm-up) runs in a worker thread. Besides whole models (RepositoryModelLoad/Unload), it adds a
pushed version, loads or unloads single versions and changes routing (the admin service,
server/admin.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ferroserve.config.ensemble import EnsembleStep, ensemble_graph, is_ensemble
from ferroserve.errors import (
    ConfigError,
    FailedPreconditionError,
    FerroserveError,
    ModelLoadError,
    ModelNotFoundError,
)
from ferroserve.registry.entries import (
    IndexRow,
    ModelEntry,
    State,
    VersionStatus,
    entry_rows,
    selection,
)
from ferroserve.registry.record import verify_version
from ferroserve.registry.repository import ModelRepository, ModelSource
from ferroserve.registry.routes import PublishedRoutes
from ferroserve.registry.routing import Routing, write_routing
from ferroserve.registry.writer import StagedVersion, remove_version
from ferroserve.runtime.ensemble import load_ensemble
from ferroserve.runtime.loader import load_version
from ferroserve.runtime.model import ServedModel

__all__ = ["IndexRow", "ModelRegistry", "State", "VersionStatus"]
log = logging.getLogger(__name__)


class ModelRegistry:
    """Loads models from a repository and resolves requests to ready versions."""

    def __init__(
        self,
        repository: ModelRepository,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.repository = repository
        self._entries: dict[str, ModelEntry] = {}
        self.routes = PublishedRoutes(self._entries)
        """Where requests go: the lookups of the inference and operating services."""
        self._wanted: set[str] = set()
        self._on_change = on_change

    async def load_all(self, names: list[str] | None = None) -> None:
        """Loads every model in the repository (or `names`) concurrently; failures stay local."""
        targets = self.repository.model_names() if names is None else names
        await asyncio.gather(*(self.load(name) for name in targets))

    async def load(self, name: str, reset_versions: bool = False) -> None:
        """(Re)loads a model's selected versions (the version policy's, plus pinned ones, less
        held-off ones; `reset_versions` forgets pins and holds first, as RepositoryModelLoad
        does). New versions become ready before versions that left the selection are unloaded,
        so a reload never drops traffic. Raises ModelNotFoundError for an unknown model and
        ModelLoadError when no selected version could load."""
        entry = self._entries.setdefault(name, ModelEntry())
        self._wanted.add(name)
        async with entry.lock:
            if reset_versions:
                entry.pinned.clear()
                entry.held_off.clear()
            try:
                source = await asyncio.to_thread(self.repository.source, name)
            except ModelNotFoundError:
                if not entry.versions:
                    self._entries.pop(name, None)
                self._wanted.discard(name)
                raise
            except FerroserveError as error:
                entry.reason = str(error)
                log.error("model '%s' failed: %s", name, error)
                self._publish(name)
                raise ModelLoadError(str(error)) from error
            entry.reason = ""
            entry.routing = source.routing
            loop = asyncio.get_running_loop()
            failures = []
            selected = selection(source, entry)
            for version in selected:
                status = VersionStatus(State.LOADING)
                previous = entry.versions.get(version)
                entry.versions[version] = (
                    status if previous is None or previous.model is None else previous
                )
                try:
                    model = await self._load_source(source, version, loop)
                except Exception as error:  # any load failure fails this version alone
                    log.error("model '%s' version %d failed to load: %s", name, version, error)
                    failures.append(str(error))
                    if previous is None or previous.model is None:
                        entry.versions[version] = VersionStatus(State.UNAVAILABLE, str(error))
                    continue
                old = entry.versions.get(version)
                entry.versions[version] = VersionStatus(
                    State.READY, model.report.ready_reason, model=model
                )
                log.info(
                    "model '%s' version %d ready on %s in %.2fs",
                    name,
                    version,
                    model.provider,
                    model.report.load_seconds,
                )
                self._publish(name)
                if old is not None and old.model is not None and old.model is not model:
                    await old.model.unload()
            await self._retire_stale(name, entry, selected, bool(failures))
            self._publish(name)
            if failures and len(failures) == len(selected):
                raise ModelLoadError("; ".join(failures))

    async def add_version(self, staged: StagedVersion, alias: str = "") -> tuple[int, ServedModel]:
        """Puts a finished upload in place as the model's next version, loads and warms it
        up, points `alias` (if any) at it, then unloads the versions that left the selection.
        When it fails to load, the version is removed from the repository again and the
        versions serving before are untouched; ModelLoadError says why. Returns the version
        number and its model."""
        name = staged.model
        entry = self._entries.setdefault(name, ModelEntry())
        async with entry.lock:
            version = await asyncio.to_thread(staged.commit)
            try:
                source = await asyncio.to_thread(self.repository.source, name)
                entry.versions[version] = VersionStatus(State.LOADING)
                loop = asyncio.get_running_loop()
                model = await self._load_source(source, version, loop)
            except Exception as error:  # the version goes, whatever stopped it
                entry.versions.pop(version, None)
                if not entry.versions and name not in self._wanted:
                    self._entries.pop(name, None)
                await asyncio.to_thread(
                    remove_version, self.repository.root, name, version, staged.new_model
                )
                log.error("model '%s' pushed version %d failed to load: %s", name, version, error)
                raise ModelLoadError(
                    f"model '{name}' version {version} failed to load and was removed from the "
                    f"repository (the versions serving before still serve): {error}"
                ) from error
            self._wanted.add(name)
            entry.reason = ""
            entry.routing = source.routing
            if version not in source.versions:
                entry.pinned.add(version)
            entry.versions[version] = VersionStatus(
                State.READY, model.report.ready_reason, model=model
            )
            if alias:
                routing = entry.routing.with_alias(alias, version)
                await asyncio.to_thread(write_routing, source.path, routing)
                entry.routing = routing
            log.info(
                "model '%s' pushed version %d ready on %s in %.2fs",
                name,
                version,
                model.provider,
                model.report.load_seconds,
            )
            self._publish(name)
            selected = selection(source, entry)
            stale = [v for v, s in entry.versions.items() if v not in selected and s.wanted]
            await self._unload_versions(name, entry, stale)
            return version, model

    async def load_version(self, name: str, version: int) -> ServedModel:
        """Loads one version and keeps it loaded beside the policy's (until RepositoryModelLoad
        resets the selection). ModelNotFoundError when it has no folder; ModelLoadError when it
        fails to load (the other versions are untouched)."""
        entry = self._entries.setdefault(name, ModelEntry())
        async with entry.lock:
            try:
                source = await asyncio.to_thread(self.repository.source, name)
            except FerroserveError:
                if not entry.versions:
                    self._entries.pop(name, None)
                raise
            if version not in source.available:
                if not entry.versions:
                    self._entries.pop(name, None)
                raise ModelNotFoundError(
                    f"model '{name}' has no version {version} in the repository "
                    f"(versions: {list(source.available)})"
                )
            entry.routing = source.routing
            current = entry.versions.get(version)
            if current is not None and current.model is not None:
                entry.pinned.add(version)
                return current.model
            model = await self._load_asked(name, entry, source, version, "")
            self._wanted.add(name)
            entry.pinned.add(version)
            self._publish(name)
            return model

    async def _load_asked(
        self, name: str, entry: ModelEntry, source: ModelSource, version: int, outcome: str
    ) -> ServedModel:
        """Loads one version an operator asked for (LoadVersion, a routing change), READY
        but not yet published. A failure fails this version alone: listed with its reason but
        not wanted (an operator's failed load must not turn the server not-ready), raised as
        ModelLoadError with `outcome` (what did not happen) and the reason."""
        entry.versions[version] = VersionStatus(State.LOADING, wanted=False)
        loop = asyncio.get_running_loop()
        try:
            model = await self._load_source(source, version, loop)
        except Exception as error:  # any load failure
            entry.versions[version] = VersionStatus(State.UNAVAILABLE, str(error), wanted=False)
            self._publish(name)
            raise ModelLoadError(
                f"model '{name}' version {version} failed to load{outcome}: {error}"
            ) from error
        entry.held_off.discard(version)
        entry.versions[version] = VersionStatus(State.READY, model.report.ready_reason, model=model)
        return model

    async def unload_version(self, name: str, version: int) -> None:
        """Unloads one version (queued requests finish first) and holds it off until
        LoadVersion or RepositoryModelLoad. ModelNotFoundError unless it is loaded."""
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFoundError(f"model '{name}' is not loaded")
        async with entry.lock:
            status = entry.versions.get(version)
            if status is None or status.model is None:
                loaded = [v for v, s in sorted(entry.versions.items()) if s.model is not None]
                raise ModelNotFoundError(
                    f"model '{name}' version {version} is not loaded (loaded: {loaded})"
                )
            routed_by = entry.routing.routed_by(version)
            if routed_by:
                raise FailedPreconditionError(
                    f"model '{name}' version {version} serves {routed_by}; route them "
                    "elsewhere first"
                )
            entry.held_off.add(version)
            entry.pinned.discard(version)
            await self._unload_versions(name, entry, [version])

    async def change_routing(self, name: str, change: Callable[[ModelSource], Routing]) -> Routing:
        """Applies `change` (source, whose routing is routing.json as on disk now -> the new
        routing; it raises to refuse) under the model's lock: loads and warms up every version
        the new routing routes to that is not ready, writes routing.json, publishes the
        routes, then unloads (drained) the versions that left the selection. Nothing changes
        when `change` refuses or a version fails to load (ModelLoadError says why)."""
        entry = self._entries.setdefault(name, ModelEntry())
        async with entry.lock:
            try:
                source = await asyncio.to_thread(self.repository.source, name)
                routing = change(source)
            except FerroserveError:
                if not entry.versions:
                    self._entries.pop(name, None)
                raise
            for version in sorted(routing.needed_versions() & set(source.available)):
                status = entry.versions.get(version)
                if status is None or status.state is not State.READY:
                    outcome = ", so the routing was not changed"
                    await self._load_asked(name, entry, source, version, outcome)
            self._wanted.add(name)
            try:
                await asyncio.to_thread(write_routing, source.path, routing)
                entry.routing = routing
                self._publish(name)
            finally:  # versions loaded for a change that could not be written go again
                chosen = selection(source, entry)
                stale = [v for v, s in entry.versions.items() if v not in chosen and s.wanted]
                await self._unload_versions(name, entry, stale)
            return routing

    async def _load_source(
        self, source: ModelSource, version: int, loop: asyncio.AbstractEventLoop
    ) -> ServedModel:
        """Loads one version of `source`: a model in a worker thread, an ensemble once the
        versions its steps run are ready."""
        if not is_ensemble(source.config):
            return await asyncio.to_thread(_load_checked, source, version, loop)
        graph = ensemble_graph(source.config)
        composing = {}
        for step in graph.steps:
            composing[step] = await self._composing(source.name, step)
        return load_ensemble(source.config, version, graph, composing)

    async def _composing(self, ensemble: str, step: EnsembleStep) -> ServedModel:
        """The ready version an ensemble step runs: the model's load under way is awaited, and
        a model not loaded yet is loaded (Triton loads an ensemble's composing models with
        it). ConfigError naming the step when it is unknown, an ensemble itself, or fails."""
        label = f"ensemble '{ensemble}' {step.label}"
        try:
            source = await asyncio.to_thread(self.repository.source, step.model)
        except ModelNotFoundError as error:
            raise ConfigError(f"{label}: no such model in the repository") from error
        except FerroserveError as error:
            raise ConfigError(f"{label}: the model's config is unusable: {error}") from error
        if is_ensemble(source.config):
            raise ConfigError(
                f"{label}: the model is an ensemble itself; nested ensembles are not supported"
            )
        entry = self._entries.get(step.model)
        if entry is None:
            try:
                await self.load(step.model)
            except FerroserveError as error:
                raise ConfigError(f"{label}: the model failed to load: {error}") from error
        else:
            async with entry.lock:  # a load under way finishes first
                pass
        version = "" if step.version == -1 else str(step.version)
        try:
            return self.routes.resolve(step.model, version)
        except FerroserveError as error:
            raise ConfigError(f"{label}: the model is not ready: {error}") from error

    def routing(self, name: str) -> Routing:
        """The model's aliases and traffic policy in force (empty for an unknown model)."""
        entry = self._entries.get(name)
        return Routing() if entry is None else entry.routing

    def version_states(self, name: str) -> dict[int, VersionStatus]:
        """The registry's state of each version of a model it knows (a copy)."""
        entry = self._entries.get(name)
        return {} if entry is None else dict(entry.versions)

    def model_reason(self, name: str) -> str:
        """Why the model as a whole failed, when it did."""
        entry = self._entries.get(name)
        return "" if entry is None else entry.reason

    async def unload(self, name: str) -> None:
        """Unloads every version of a model; queued requests finish first."""
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFoundError(f"model '{name}' is not loaded")
        self._wanted.discard(name)
        async with entry.lock:
            await self._unload_versions(name, entry, list(entry.versions))
            entry.reason = "unloaded"
            self._publish(name)

    async def unload_all(self) -> None:
        await asyncio.gather(*(self.unload(name) for name in list(self._entries)))

    async def _retire_stale(
        self, name: str, entry: ModelEntry, selected: list[int], failed: bool
    ) -> None:
        """After a (re)load: unloads the versions that left the selection, unless some new
        version failed while old ones still serve. Then the old ones stay (a failed load
        leaves the serving versions untouched); the failed ones stay listed with their reason,
        and readiness follows the versions still serving."""
        stale = [v for v, s in entry.versions.items() if v not in selected and s.wanted]
        serving = [v for v in stale if entry.versions[v].state is State.READY]
        if not (failed and serving):
            await self._unload_versions(name, entry, stale)
            return
        for version in selected:
            if entry.versions[version].state is State.UNAVAILABLE:
                entry.versions[version].wanted = False
        log.warning(
            "model '%s': keeping version(s) %s, which served before the failed load",
            name,
            ", ".join(map(str, serving)),
        )

    async def _unload_versions(self, name: str, entry: ModelEntry, versions: list[int]) -> None:
        for version in versions:
            status = entry.versions[version]
            model = status.model
            entry.versions[version] = VersionStatus(State.UNLOADING)
            self._publish(name)
            if model is not None:
                await model.unload()
            entry.versions[version] = VersionStatus(State.UNAVAILABLE, "unloaded", wanted=False)
        self._publish(name)

    def _publish(self, name: str) -> None:
        """Rebuilds the routes for one model and tells health listeners."""
        ready = self.routes.publish(name, self._entries.get(name))
        if self._on_change is not None:
            self._on_change(name, ready)

    def all_ready(self) -> bool:
        """True when every model selected for loading has all its selected versions ready."""
        for name in self._wanted:
            entry = self._entries.get(name)
            wanted = [s for s in entry.versions.values() if s.wanted] if entry else []
            if entry is None or entry.reason or not wanted:
                return False
            if any(s.state is not State.READY for s in wanted):
                return False
        return True

    @property
    def model_count(self) -> int:
        return len(self._wanted)

    def index(self) -> list[IndexRow]:
        """Every version of every model in the repository or the registry."""
        rows: list[IndexRow] = []
        names = sorted(set(self.repository.model_names()) | set(self._entries))
        for name in names:
            entry = self._entries.get(name)
            if entry is None:
                rows.append(IndexRow(name, "", State.UNAVAILABLE.value, "not loaded"))
            else:
                rows.extend(entry_rows(name, entry))
        return rows

    def known(self) -> list[IndexRow]:
        """Like `index`, for the models the registry was asked to load only: no repository
        listing (no I/O), so the metrics recorder can call it on the event loop."""
        return [
            row for name in sorted(self._entries) for row in entry_rows(name, self._entries[name])
        ]


def _load_checked(
    source: ModelSource, version: int, loop: asyncio.AbstractEventLoop
) -> ServedModel:
    """Checks a pushed version's model file against its sha256 record, then loads it
    (blocking: a worker thread's)."""
    model_file = source.model_file(version)
    verify_version(model_file.parent, model_file)
    return load_version(source.config, source.path, model_file, version, loop)
