"""`<model>/<N>/version.json`: what a push recorded about a version (the model file's sha256 and
size, when it was created, the deployer's notes), read when versions are listed and checked
before the version loads. Versions put in the repository by hand have none and load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferroserve.errors import ModelLoadError

RECORD_FILE = "version.json"
FORMAT = 1
_HASH_BLOCK = 1 << 20


@dataclass(slots=True, frozen=True)
class VersionRecord:
    """One pushed version's record, as written in its folder's version.json."""

    model_file: str
    """The model file's name in the version folder (model.onnx or default_model_filename)."""
    sha256: str
    """Hex sha256 of the model file."""
    size_bytes: int
    created: str
    """RFC 3339, UTC, when the push finished writing it."""
    notes: str = ""
    drift_reference: str = ""
    """The drift reference dataset pushed with it (a file name in the folder), or ""."""

    def to_json(self) -> str:
        fields: dict[str, Any] = {"format": FORMAT}
        fields.update(
            model_file=self.model_file,
            sha256=self.sha256,
            size_bytes=self.size_bytes,
            created=self.created,
            notes=self.notes,
            drift_reference=self.drift_reference,
        )
        return json.dumps(fields, indent=2) + "\n"


def read_record(version_dir: Path) -> VersionRecord | None:
    """The version's record, None when it has none (a version written by hand). ModelLoadError
    for a record that does not parse (it was written atomically, so that is tampering or a
    disk fault, not a crash)."""
    path = version_dir / RECORD_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        return VersionRecord(
            model_file=str(data["model_file"]),
            sha256=str(data["sha256"]),
            size_bytes=int(data["size_bytes"]),
            created=str(data["created"]),
            notes=str(data.get("notes", "")),
            drift_reference=str(data.get("drift_reference", "")),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f"{path} is not a valid version record: {error}") from error


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify_version(version_dir: Path, model_file: Path) -> None:
    """Checks the model file against the version's record, when it has one: ModelLoadError
    naming both digests on a mismatch (the file changed after the push)."""
    record = read_record(version_dir)
    if record is None:
        return
    try:
        size = os.path.getsize(model_file)
    except OSError as error:
        raise ModelLoadError(f"{model_file}: {error}") from error
    actual = file_sha256(model_file) if size == record.size_bytes else ""
    if actual != record.sha256:
        found = f"sha256 {actual}" if actual else f"{size} bytes"
        raise ModelLoadError(
            f"{model_file} does not match its {RECORD_FILE} (recorded sha256 {record.sha256}, "
            f"{record.size_bytes} bytes; found {found}): the file changed after it was pushed; "
            "push the version again"
        )
