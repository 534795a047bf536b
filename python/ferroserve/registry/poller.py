"""`--model-control-mode=poll`: every `--repository-poll-secs` the repository is scanned and
what others wrote into it is served (Triton's poll mode). A model folder that appears is
loaded, one that disappears is unloaded, and a model whose config.pbtxt, routing.json or
version folders changed is reloaded through the registry (`ModelRegistry.load`: the new
versions are ready before the old ones go, so a poll never drops traffic; a version that fails
to load leaves the serving ones untouched). Versions this server put there itself (a push) are
already loaded and cause no reload. Scanning reads only names, sizes and modification times,
in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from ferroserve.errors import FerroserveError
from ferroserve.registry.registry import ModelRegistry
from ferroserve.registry.s3 import S3Mirror

log = logging.getLogger(__name__)

FileStamp = tuple[str, int, int]
"""A file's path inside the model folder, size and modification time (ns)."""


@dataclass(slots=True, frozen=True)
class ModelStamp:
    """What a poll compares: the model-level files and every version folder's files."""

    model_files: tuple[FileStamp, ...]
    versions: dict[int, tuple[FileStamp, ...]]


def _files(folder: Path, prefix: str = "") -> list[FileStamp]:
    """Every file under `folder` (hidden entries skipped: staging folders and temp files)."""
    stamps: list[FileStamp] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=True):
                    stamps.extend(_files(Path(entry.path), f"{prefix}{entry.name}/"))
                else:
                    stat = entry.stat()
                    stamps.append((prefix + entry.name, stat.st_size, stat.st_mtime_ns))
    return sorted(stamps)


def stamp_model(folder: Path) -> ModelStamp:
    """The stamp of one model folder (blocking)."""
    model_files: list[FileStamp] = []
    versions: dict[int, tuple[FileStamp, ...]] = {}
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.name.isdigit() and entry.is_dir():
                versions[int(entry.name)] = tuple(_files(Path(entry.path)))
            elif entry.is_file():
                stat = entry.stat()
                model_files.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return ModelStamp(tuple(sorted(model_files)), versions)


def stamp_repository(root: Path) -> dict[str, ModelStamp]:
    """Every model folder's stamp (hidden folders skipped, as the repository does)."""
    stamps: dict[str, ModelStamp] = {}
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_dir():
                stamps[entry.name] = stamp_model(Path(entry.path))
    return stamps


class RepositoryPoller:
    """Every `interval_s` seconds: syncs the S3 mirror (if any), then applies the
    repository's changes to the registry (if `apply`: poll mode)."""

    def __init__(
        self,
        registry: ModelRegistry,
        interval_s: float,
        mirror: S3Mirror | None = None,
        apply: bool = True,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"--repository-poll-secs must be > 0 (got {interval_s})")
        self._registry = registry
        self._interval_s = interval_s
        self._mirror = mirror
        self._apply_changes = apply
        self._seen: dict[str, ModelStamp] = {}
        self._task: asyncio.Task[None] | None = None

    async def baseline(self) -> None:
        """Records the repository as loaded at start, so the first poll changes nothing."""
        self._seen = await asyncio.to_thread(stamp_repository, self._registry.repository.root)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="repository-poll")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.sync()
            if not self._apply_changes:
                continue
            try:
                await self.poll()
            except Exception:  # a poll must never stop the next one
                log.exception("polling the model repository failed")

    async def sync(self) -> None:
        """Syncs the S3 mirror; an unreachable bucket is logged and retried next time (the
        versions loaded keep serving)."""
        if self._mirror is None:
            return
        try:
            report = await asyncio.to_thread(self._mirror.sync)
        except Exception as error:  # boto3's errors: network, credentials, throttling
            log.warning(
                "syncing with %s failed (retried next poll): %s", self._mirror.location, error
            )
            return
        for kind, paths in (
            ("downloaded", report.downloaded),
            ("uploaded", report.uploaded),
            ("removed here", report.removed_here),
            ("removed in the bucket", report.removed_there),
        ):
            if paths:
                log.info("%s %s: %s", self._mirror.location, kind, ", ".join(paths))

    async def poll(self) -> list[str]:
        """One scan: loads, reloads and unloads what changed; returns the models it touched."""
        now = await asyncio.to_thread(stamp_repository, self._registry.repository.root)
        touched: list[str] = []
        for name in sorted(set(self._seen) | set(now)):
            before, after = self._seen.get(name), now.get(name)
            if before == after:
                continue
            if after is None:
                log.info("model '%s' left the repository: unloading it", name)
                await self._apply(name, self._registry.unload(name))
            elif self._already_served(name, before, after):
                pass
            else:
                log.info("model '%s' changed in the repository: loading it", name)
                await self._apply(name, self._registry.load(name))
            touched.append(name)
        self._seen = now
        return touched

    def _already_served(self, name: str, before: ModelStamp | None, after: ModelStamp) -> bool:
        """Whether the change is only new version folders this registry already holds (a
        push through the admin service, which loaded the version itself)."""
        if before is None or before.model_files != after.model_files:
            return False
        changed = {
            version
            for version in set(before.versions) | set(after.versions)
            if before.versions.get(version) != after.versions.get(version)
        }
        known = self._registry.version_states(name)
        return all(
            version not in before.versions and version in after.versions and version in known
            for version in changed
        )

    @staticmethod
    async def _apply(name: str, change: Awaitable[None]) -> None:
        """Awaits a registry change; its failure is logged (and shown in RepositoryIndex)."""
        try:
            await change
        except FerroserveError as error:
            log.error("model '%s': applying the repository's change failed: %s", name, error)
