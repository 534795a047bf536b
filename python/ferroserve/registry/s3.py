"""A model repository in S3-compatible object storage (`--model-repository s3://bucket/prefix`),
served from a local mirror that a two-way sync keeps equal to the bucket, so the registry and
the loaders only ever read a local folder. Several replicas pointed at one bucket converge: what
one pushes (a version folder, routing.json after an alias change) is uploaded at its next sync
and downloaded by the others at theirs, and their poll (registry/poller.py) serves it.

Sync rules, per file, against a manifest of what both sides held after the last sync:
- changed in the bucket (new, or another ETag): downloaded; the bucket wins when both changed;
- changed here only: uploaded;  removed on one side, unchanged on the other: removed there too.
A version folder appears locally whole or not at all (downloaded into a hidden staging folder,
then renamed into place) and only once complete in the bucket: a pushed version (version.json)
when its model file has the recorded size, a version written by hand when it holds an .onnx
file. Uploads of a new version send version.json first and .onnx files last, so readers never
take a half-uploaded version for a whole one. Endpoint: boto3's own settings (AWS_ENDPOINT_URL,
credentials and region from the environment or ~/.aws), or Triton's `s3://host:port/bucket/...`.
Blocking (boto3): the poller calls `sync` in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferroserve.errors import ConfigError
from ferroserve.registry.record import RECORD_FILE, read_record

log = logging.getLogger(__name__)

SCHEME = "s3://"
SYNC_PREFIX = ".ferroserve-sync-"
MANIFEST_FILE = ".ferroserve-s3-manifest.json"
Stamp = tuple[int, int]
"""A local file's size and modification time (ns)."""


@dataclass(slots=True, frozen=True)
class S3Location:
    bucket: str
    prefix: str
    """Key prefix of the repository, "" or ending in "/"."""
    endpoint_url: str | None = None
    """From Triton's host:port form; None: boto3's default (AWS_ENDPOINT_URL or AWS)."""

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


def is_s3_url(text: str) -> bool:
    return text.startswith(SCHEME)


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket[/prefix]`, or Triton's `s3://host:port/bucket[/prefix]` (plain HTTP)."""
    parts = [part for part in url[len(SCHEME) :].split("/") if part]
    endpoint = None
    if parts and ":" in parts[0]:
        endpoint = f"http://{parts.pop(0)}"
    if not parts:
        raise ConfigError(f"{url}: name a bucket, as s3://bucket/prefix")
    prefix = "/".join(parts[1:])
    return S3Location(parts[0], f"{prefix}/" if prefix else "", endpoint)


@dataclass(slots=True)
class SyncReport:
    downloaded: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    removed_here: list[str] = field(default_factory=list)
    removed_there: list[str] = field(default_factory=list)

    @property
    def changed_here(self) -> bool:
        return bool(self.downloaded or self.removed_here)


def _hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in relpath.split("/"))


def _version_of(relpath: str) -> str | None:
    """ "model/3" for "model/3/model.onnx", else None (a model-level file)."""
    parts = relpath.split("/")
    return "/".join(parts[:2]) if len(parts) >= 3 and parts[1].isdigit() else None


class S3Mirror:
    """Keeps `root` (a local folder) and the bucket's repository equal; see the module doc."""

    def __init__(self, location: S3Location, root: Path, client: Any = None) -> None:
        self.location = location
        self.root = root
        if client is None:
            try:
                import boto3
            except ImportError as error:
                raise ConfigError(
                    f"{location}: S3 repositories need boto3: pip install 'ferroserve[s3]'"
                ) from error
            client = boto3.client("s3", endpoint_url=location.endpoint_url)
        self._s3 = client
        for leftover in root.rglob(f"{SYNC_PREFIX}*"):  # a sync a crash interrupted
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        self._manifest_path = root / MANIFEST_FILE
        self._manifest: dict[str, dict[str, Any]] = self._read_manifest()

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        with contextlib.suppress(FileNotFoundError, ValueError):
            data = json.loads(self._manifest_path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        return {}

    def _write_manifest(self) -> None:
        temporary = self.root / f"{MANIFEST_FILE}.tmp"
        temporary.write_text(json.dumps(self._manifest, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self._manifest_path)

    # The two sides' listings.
    def _remote(self) -> dict[str, str]:
        """relpath -> ETag of every object of the repository (hidden paths skipped)."""
        objects: dict[str, str] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                relpath = item["Key"][len(self.location.prefix) :]
                if relpath and not relpath.endswith("/") and not _hidden(relpath):
                    objects[relpath] = item["ETag"]
        return objects

    def _local(self) -> dict[str, Stamp]:
        files: dict[str, Stamp] = {}
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [name for name in dirs if not name.startswith(".")]
            for name in names:
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                stat = path.stat()
                files[path.relative_to(self.root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return files

    def sync(self) -> SyncReport:
        """One two-way sync; raises the client's error when the bucket cannot be listed."""
        remote, local = self._remote(), self._local()
        report = SyncReport()
        seen = self._manifest

        def local_changed(path: str) -> bool:
            entry = seen.get(path)
            return path in local and (entry is None or tuple(entry["stamp"]) != local[path])

        def remote_changed(path: str) -> bool:
            entry = seen.get(path)
            return path in remote and (entry is None or entry["etag"] != remote[path])

        paths = set(remote) | set(local) | set(seen)
        download = sorted(p for p in paths if remote_changed(p))
        for path in download:
            if local_changed(path):
                log.warning("%s changed here and in %s; the bucket's wins", path, self.location)
        upload = sorted(p for p in paths if local_changed(p) and not remote_changed(p))
        drop_here = sorted(
            p for p in paths if p in seen and p not in remote and not local_changed(p)
        )
        gone_here = (p for p in paths if p in seen and p in remote and p not in local)
        drop_there = sorted(p for p in gone_here if not remote_changed(p))
        self._download(download, remote, report)
        self._remove_here(drop_here, report)
        self._upload(upload, local, report)
        for path in drop_there:
            self._s3.delete_object(Bucket=self.location.bucket, Key=self.location.prefix + path)
            seen.pop(path, None)
            report.removed_there.append(path)
        for path in paths - set(remote) - set(local):
            seen.pop(path, None)
        self._write_manifest()
        return report

    # Downloads: whole new version folders and models through staging, other files one by one.
    def _download(self, paths: list[str], remote: dict[str, str], report: SyncReport) -> None:
        new_versions: set[str] = set()
        singles: list[str] = []
        for path in paths:
            version = _version_of(path)
            if version is not None and not (self.root / version).exists():
                new_versions.add(version)
            else:
                singles.append(path)
        for version in sorted(new_versions):
            everything = [p for p in remote if p.startswith(version + "/")]
            if not self._complete(version, everything):
                continue  # still being uploaded: the next sync takes it
            model = self.root / version.split("/")[0]
            if not model.exists():
                # A new model appears with its config and first versions at once.
                model_files = [p for p in singles if p.split("/")[0] == model.name]
                singles = [p for p in singles if p not in model_files]
                self._fetch_folder(model.name, model_files + everything, remote, report)
            else:
                self._fetch_folder(version, everything, remote, report)
        for path in singles:
            if _version_of(path) is None and not (self.root / path.split("/")[0]).exists():
                continue  # a model's files without any complete version yet
            self._fetch_file(path, remote[path], self.root / path)
            report.downloaded.append(path)

    def _complete(self, version: str, files: list[str]) -> bool:
        names = {p[len(version) + 1 :] for p in files}
        if RECORD_FILE in names:
            with tempfile.TemporaryDirectory() as scratch:
                self._get(f"{version}/{RECORD_FILE}", Path(scratch) / RECORD_FILE)
                record = read_record(Path(scratch))
            if record is None or record.model_file not in names:
                return False
            key = f"{self.location.prefix}{version}/{record.model_file}"
            head = self._s3.head_object(Bucket=self.location.bucket, Key=key)
            return int(head["ContentLength"]) == record.size_bytes and (
                not record.drift_reference or record.drift_reference in names
            )
        return any(name.endswith(".onnx") for name in names)

    def _fetch_folder(
        self, folder: str, paths: Iterable[str], remote: dict[str, str], report: SyncReport
    ) -> None:
        """Downloads `paths` (all under `folder`) into a staging folder, then renames it into
        place as `folder`."""
        parent = (self.root / folder).parent
        staging = Path(tempfile.mkdtemp(prefix=SYNC_PREFIX, dir=parent))
        try:
            for path in paths:
                inside = path[len(folder) + 1 :]
                self._fetch_file(path, remote[path], staging / inside, record=False)
            os.rename(staging, self.root / folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        for path in paths:
            self._remember(path, remote[path])
            report.downloaded.append(path)

    def _fetch_file(self, path: str, etag: str, target: Path, record: bool = True) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f"{SYNC_PREFIX}{target.name}"
        self._get(path, temporary)
        os.replace(temporary, target)
        if record:
            self._remember(path, etag)

    def _get(self, path: str, target: Path) -> None:
        self._s3.download_file(self.location.bucket, self.location.prefix + path, str(target))

    def _remember(self, path: str, etag: str) -> None:
        stat = (self.root / path).stat()
        self._manifest[path] = {"etag": etag, "stamp": [stat.st_size, stat.st_mtime_ns]}

    def _remove_here(self, paths: list[str], report: SyncReport) -> None:
        """Removes files the bucket lost; a version folder that loses every file goes at once
        (renamed to a hidden name first, so no scan sees it half removed)."""
        by_version: dict[str, list[str]] = {}
        for path in paths:
            by_version.setdefault(_version_of(path) or path, []).append(path)
        for group, files in sorted(by_version.items()):
            folder = self.root / group
            if folder.is_dir():
                remaining = {p.relative_to(self.root).as_posix() for p in folder.rglob("*")}
                if remaining - {p for p in remaining if (self.root / p).is_dir()} <= set(files):
                    gone = folder.parent / f"{SYNC_PREFIX}gone-{folder.name}"
                    os.rename(folder, gone)
                    shutil.rmtree(gone, ignore_errors=True)
            for path in files:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / path).unlink()
                self._manifest.pop(path, None)
                report.removed_here.append(path)
        for model in {p.split("/")[0] for p in paths}:
            folder = self.root / model
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    # Uploads: a version's record first, its .onnx files last.
    def _upload(self, paths: list[str], local: dict[str, Stamp], report: SyncReport) -> None:
        def order(path: str) -> tuple[int, str]:
            name = path.rsplit("/", 1)[-1]
            return (0 if name == RECORD_FILE else 2 if name.endswith(".onnx") else 1, path)

        for path in sorted(paths, key=order):
            with (self.root / path).open("rb") as body:
                answer = self._s3.put_object(
                    Bucket=self.location.bucket, Key=self.location.prefix + path, Body=body
                )
            self._manifest[path] = {"etag": answer["ETag"], "stamp": list(local[path])}
            report.uploaded.append(path)
