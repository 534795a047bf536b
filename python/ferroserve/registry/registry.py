"""The live model registry: which versions are loading, ready, unloading or failed, and which
`ServedModel` answers a (name, version) pair. All state changes happen on the event loop; the
blocking part of a load (sha256 check of a pushed version, session creation, warm-up) runs in a
worker thread. Besides whole models (RepositoryModelLoad/Unload), it adds a pushed version and
loads or unloads single versions (the admin service, server/admin.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ferroserve.errors import (
    FerroserveError,
    ModelLoadError,
    ModelNotFoundError,
    UnavailableError,
)
from ferroserve.registry.entries import (
    IndexRow,
    ModelEntry,
    State,
    VersionStatus,
    selection,
)
from ferroserve.registry.record import verify_version
from ferroserve.registry.repository import ModelRepository, ModelSource
from ferroserve.registry.writer import StagedVersion, remove_version
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
        # (name, version label) -> model; version label "" is the newest ready version.
        self._routes: dict[tuple[str, str], ServedModel] = {}
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
                    model = await asyncio.to_thread(_load_checked, source, version, loop)
                except Exception as error:  # any load failure fails this version alone
                    log.error("model '%s' version %d failed to load: %s", name, version, error)
                    failures.append(str(error))
                    if previous is None or previous.model is None:
                        entry.versions[version] = VersionStatus(State.UNAVAILABLE, str(error))
                    continue
                old = entry.versions.get(version)
                entry.versions[version] = VersionStatus(State.READY, model=model)
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
            stale = [v for v, s in entry.versions.items() if v not in selected and s.wanted]
            await self._unload_versions(name, entry, stale)
            self._publish(name)
            if failures and len(failures) == len(selected):
                raise ModelLoadError("; ".join(failures))

    async def add_version(self, staged: StagedVersion) -> tuple[int, ServedModel]:
        """Puts a finished upload in place as the model's next version, loads and warms it
        up, then unloads the versions that left the selection. When it fails to load, the
        version is removed from the repository again and the versions serving before are
        untouched; ModelLoadError says why. Returns the version number and its model."""
        name = staged.model
        entry = self._entries.setdefault(name, ModelEntry())
        async with entry.lock:
            version = await asyncio.to_thread(staged.commit)
            try:
                source = await asyncio.to_thread(self.repository.source, name)
                entry.versions[version] = VersionStatus(State.LOADING)
                loop = asyncio.get_running_loop()
                model = await asyncio.to_thread(_load_checked, source, version, loop)
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
            if version not in source.versions:
                entry.pinned.add(version)
            entry.versions[version] = VersionStatus(State.READY, model=model)
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
            current = entry.versions.get(version)
            if current is not None and current.model is not None:
                entry.pinned.add(version)
                return current.model
            entry.versions[version] = VersionStatus(State.LOADING, wanted=False)
            loop = asyncio.get_running_loop()
            try:
                model = await asyncio.to_thread(_load_checked, source, version, loop)
            except Exception as error:  # this version fails alone
                # Listed with its reason, but not wanted: an operator's failed load of an old
                # version must not turn the server not-ready.
                entry.versions[version] = VersionStatus(State.UNAVAILABLE, str(error), wanted=False)
                self._publish(name)
                raise ModelLoadError(
                    f"model '{name}' version {version} failed to load: {error}"
                ) from error
            self._wanted.add(name)
            entry.pinned.add(version)
            entry.held_off.discard(version)
            entry.versions[version] = VersionStatus(State.READY, model=model)
            self._publish(name)
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
            entry.held_off.add(version)
            entry.pinned.discard(version)
            await self._unload_versions(name, entry, [version])

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
        for key in [k for k in self._routes if k[0] == name]:
            del self._routes[key]
        entry = self._entries.get(name)
        ready = (
            []
            if entry is None
            else sorted(
                (v, s.model)
                for v, s in entry.versions.items()
                if s.model is not None and s.state is State.READY
            )
        )
        for version, model in ready:
            assert model is not None
            self._routes[(name, str(version))] = model
        if ready:
            self._routes[(name, "")] = ready[-1][1]
        if self._on_change is not None:
            self._on_change(name, bool(ready))

    def resolve(self, name: str, version: str = "") -> ServedModel:
        """The ready model for a request: NOT_FOUND for unknown names or versions, UNAVAILABLE
        for a known version that is not ready."""
        model = self._routes.get((name, version))
        if model is not None:
            return model
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFoundError(f"model '{name}' is not in the repository")
        if version:
            if not version.isdigit():
                raise ModelNotFoundError(f"model '{name}' has no version '{version}'")
            status = entry.versions.get(int(version))
            if status is None:
                raise ModelNotFoundError(
                    f"model '{name}' has no version {version} (known: {sorted(entry.versions)})"
                )
            raise UnavailableError(
                f"model '{name}' version {version} is {status.state.value}"
                + (f": {status.reason}" if status.reason else "")
            )
        states = (
            ", ".join(f"{v}: {s.state.value}" for v, s in sorted(entry.versions.items()))
            or entry.reason
            or "no versions"
        )
        raise UnavailableError(f"model '{name}' has no ready version ({states})")

    def routes(self) -> dict[tuple[str, str], ServedModel]:
        """(name, version label) -> the model answering it; label "" is the default version."""
        return dict(self._routes)

    def loaded(self, name: str, version: str) -> ServedModel | None:
        """The ready model of one explicit version, or None (no error: for reporting)."""
        return self._routes.get((name, version)) if version else None

    def ready_versions(self, name: str) -> list[ServedModel]:
        entry = self._entries.get(name)
        if entry is None:
            return []
        return [
            s.model
            for _, s in sorted(entry.versions.items())
            if s.model is not None and s.state is State.READY
        ]

    def is_ready(self, name: str, version: str = "") -> bool:
        return (name, version) in self._routes

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
                rows.extend(self._entry_rows(name, entry))
        return rows

    def known(self) -> list[IndexRow]:
        """Like `index`, for the models the registry was asked to load only: no repository
        listing (no I/O), so the metrics recorder can call it on the event loop."""
        return [
            row
            for name in sorted(self._entries)
            for row in self._entry_rows(name, self._entries[name])
        ]

    @staticmethod
    def _entry_rows(name: str, entry: ModelEntry) -> list[IndexRow]:
        if not entry.versions:
            return [IndexRow(name, "", State.UNAVAILABLE.value, entry.reason)]
        return [
            IndexRow(name, str(version), status.state.value, status.reason)
            for version, status in sorted(entry.versions.items())
        ]


def _load_checked(
    source: ModelSource, version: int, loop: asyncio.AbstractEventLoop
) -> ServedModel:
    """Checks a pushed version's model file against its sha256 record, then loads it
    (blocking: a worker thread's)."""
    model_file = source.model_file(version)
    verify_version(model_file.parent, model_file)
    return load_version(source.config, source.path, model_file, version, loop)
