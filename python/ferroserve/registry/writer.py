"""Writes a pushed model version into the repository so that it appears whole or not at all.

The upload is streamed into a hidden staging folder (`.ferroserve-push-<pid>-<random>`) inside
the model's folder, or, for a new model, inside the repository as the whole model folder to
be; every file and folder is fsynced, then one rename puts it in place (`<model>/<N>/`, or
`<model>/` with its config.pbtxt and `1/`) and the parent folder is fsynced. The repository
skips hidden folders, so a crash leaves at most a staging folder nobody reads, which
`sweep_staging` removes at the next start. Blocking: the admin service calls these from worker
threads. Used by the registry (`ModelRegistry.add_version`) and server/admin.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ferroserve.config import CONFIG_FILE
from ferroserve.errors import FerroserveError, InvalidInputError, ResourceExhaustedError
from ferroserve.registry.record import RECORD_FILE, VersionRecord

STAGING_PREFIX = ".ferroserve-push-"
MAX_NAME_BYTES = 255
"""Linux's NAME_MAX: a longer model name could not be a folder."""
REFERENCE_SUFFIXES = (".parquet", ".pq", ".csv", ".npz", ".npy")


class PushConflictError(FerroserveError):
    """The repository changed under the push (a model folder created meanwhile): ABORTED."""


def check_model_name(name: str) -> None:
    """InvalidInputError unless `name` is usable as one folder of the repository: 1-255 bytes
    of UTF-8, no '/', '\\' or NUL, not starting with '.' (hidden folders are not models, and
    it rules out '.', '..' and '.git')."""
    problem = _name_problem(name)
    if problem:
        raise InvalidInputError(
            f"model name {name[:80]!r} is not usable as a folder name: {problem}"
        )


def _name_problem(name: str) -> str:
    if not name:
        return "it is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    if any(char in name for char in "/\\\0"):
        return "it contains '/', '\\' or NUL"
    if name.startswith("."):
        return "it starts with '.'"
    if not name.isprintable():
        return "it contains control characters"
    return ""


def check_reference_name(name: str) -> None:
    """InvalidInputError unless `name` is a plain file name with a reference dataset suffix."""
    if (
        _name_problem(name)
        or Path(name).suffix.lower() not in REFERENCE_SUFFIXES
        or name in (CONFIG_FILE, RECORD_FILE)
    ):
        raise InvalidInputError(
            f"drift reference name {name[:80]!r} must be a plain file name ending in "
            f"{', '.join(REFERENCE_SUFFIXES)}"
        )


class StagedVersion:
    """A version being uploaded: its files in the staging folder, their sizes bounded, the
    model file hashed as it arrives. `commit` renames it into place; `discard` removes it."""

    def __init__(
        self,
        repository: Path,
        model: str,
        model_filename: str,
        max_bytes: int,
        config_text: str | None = None,
        reference_name: str = "",
    ) -> None:
        """Creates the staging folder. `config_text` given: a new model (its folder must not
        exist yet), written with it; None: a new version of an existing model."""
        check_model_name(model)
        if reference_name:
            check_reference_name(reference_name)
        self.repository = repository
        self.model = model
        self.model_filename = model_filename
        self.max_bytes = max_bytes
        self.new_model = config_text is not None
        self.reference_name = reference_name
        self.received = 0
        parent = repository if self.new_model else repository / model
        self.stage = parent / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        self.stage.mkdir()
        self.version_dir = self.stage / "1" if self.new_model else self.stage
        if self.new_model:
            self.version_dir.mkdir()
            _write_synced(self.stage / CONFIG_FILE, (config_text or "").encode("utf-8"))
        self._hash = hashlib.sha256()
        self._model_bytes = 0
        self._files: dict[str, BinaryIO] = {}
        # A cancelled push discards from one worker thread while the write it interrupted may
        # still run in another: the lock makes the discard wait for it.
        self._lock = threading.Lock()

    def write(self, reference: bool, data: bytes) -> None:
        """Appends `data` to the model file (or the drift reference): RESOURCE_EXHAUSTED once
        the push passes `max_bytes`, INVALID_ARGUMENT for reference bytes without a name."""
        with self._lock:
            self._write(reference, data)

    def _write(self, reference: bool, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.max_bytes:
            raise ResourceExhaustedError(
                f"the push is larger than the server's limit of {self.max_bytes:,} bytes "
                "(ferroserve serve --admin-max-push-bytes)"
            )
        if reference and not self.reference_name:
            raise InvalidInputError(
                "DRIFT_REFERENCE chunks need drift_reference_name in the header"
            )
        name = self.reference_name if reference else self.model_filename
        file = self._files.get(name)
        if file is None:
            file = self._files[name] = (self.version_dir / name).open("wb")
        file.write(data)
        if not reference:
            self._hash.update(data)
            self._model_bytes += len(data)

    def finish(self, notes: str, expected_sha256: str = "") -> VersionRecord:
        """Closes and fsyncs the files and writes version.json. INVALID_ARGUMENT when no model
        bytes came, the reference was named but not sent, or the sha256 is not `expected`."""
        for file in self._files.values():
            file.flush()
            os.fsync(file.fileno())
            file.close()
        if self.model_filename not in self._files:
            raise InvalidInputError("the push sent no MODEL chunks: send the ONNX file's bytes")
        if self.reference_name and self.reference_name not in self._files:
            raise InvalidInputError(
                f"the header names drift reference '{self.reference_name}' but no "
                "DRIFT_REFERENCE chunks came"
            )
        digest = self._hash.hexdigest()
        if expected_sha256 and expected_sha256.lower() != digest:
            raise InvalidInputError(
                f"the model file arrived with sha256 {digest}, not the {expected_sha256} the "
                "header announced: the upload was corrupted; push again"
            )
        record = VersionRecord(
            model_file=self.model_filename,
            sha256=digest,
            size_bytes=self._model_bytes,
            created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            notes=notes,
            drift_reference=self.reference_name,
        )
        _write_synced(self.version_dir / RECORD_FILE, record.to_json().encode("utf-8"))
        _fsync_dir(self.version_dir)
        if self.new_model:
            _fsync_dir(self.stage)
        return record

    def commit(self) -> int:
        """Renames the finished version into place and returns its number: 1 for a new model,
        else the highest version folder + 1. The caller holds the model's lock, so no other
        push picks the same number. PushConflictError when the folder appeared meanwhile."""
        model_dir = self.repository / self.model
        if self.new_model:
            version = 1
            target, parent = model_dir, self.repository
        else:
            version = next_version(model_dir)
            target, parent = model_dir / str(version), model_dir
        if target.exists():
            raise PushConflictError(
                f"{target} appeared while the version was uploaded (another push?); push again"
            )
        os.rename(self.stage, target)
        _fsync_dir(parent)
        self.stage = target
        return version

    def discard(self) -> None:
        """Removes the staging folder (an upload that failed or was cancelled)."""
        with self._lock:
            for file in self._files.values():
                file.close()
            shutil.rmtree(self.stage, ignore_errors=True)


def next_version(model_dir: Path) -> int:
    """The highest version folder of a model + 1 (1 for none)."""
    numbers = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(numbers, default=0) + 1


def remove_version(repository: Path, model: str, version: int, whole_model: bool) -> None:
    """Takes a committed version out of the repository again (it failed to load): renamed to
    a hidden name first (one atomic step that hides it), then deleted. `whole_model`: the push
    created the model, so its folder goes."""
    model_dir = repository / model
    target = model_dir if whole_model else model_dir / str(version)
    parent = repository if whole_model else model_dir
    hidden = parent / f"{STAGING_PREFIX}removed-{secrets.token_hex(6)}"
    os.rename(target, hidden)
    _fsync_dir(parent)
    shutil.rmtree(hidden, ignore_errors=True)


def sweep_staging(repository: Path, quiet_s: float = 0.0) -> list[Path]:
    """Removes staging folders a crashed or killed server left (its own process's excepted)
    whose files have all been untouched for `quiet_s` seconds; returns them. With `quiet_s`
    above the push idle timeout, a folder another server (a replica on a shared volume) is
    still writing is left alone: a live push touches its files at least that often."""
    own = f"{STAGING_PREFIX}{os.getpid()}-"
    folders = [repository, *(p for p in repository.iterdir() if p.is_dir())]
    removed = []
    now = time.time()
    for folder in folders:
        for path in folder.glob(f"{STAGING_PREFIX}*"):
            if not path.is_dir() or path.name.startswith(own):
                continue
            if quiet_s > 0 and now - _last_write(path) < quiet_s:
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _last_write(folder: Path) -> float:
    """The newest modification time of `folder` and everything in it."""
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, path.stat().st_mtime)
    return newest


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    """Makes a folder's entries (created, renamed) durable: POSIX needs the folder fsynced."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
