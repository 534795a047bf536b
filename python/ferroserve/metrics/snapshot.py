"""The snapshot file: everything the metrics sidecar exports, written by the serving process
every interval and read by the sidecar on its own schedule, so a scrape never reaches the
serving process. JSON, replaced atomically (write, then rename); counters are cumulative since
the serving process started, so a restarted sidecar picks them up where they are. This module
imports nothing heavy: the sidecar uses it too."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SNAPSHOT_FILE = "ferroserve-metrics.json"
FORMAT = 1


def write(path: Path, snapshot: dict[str, Any]) -> None:
    """Writes `snapshot` to `path` atomically: a reader sees the old file or the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(snapshot, separators=(",", ":")), encoding="utf-8")
    os.replace(temporary, path)


def read(path: Path) -> dict[str, Any] | None:
    """The snapshot at `path`, or None when there is none (yet) or it is not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data
