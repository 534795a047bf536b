"""The latest snapshot the serving process wrote, re-read only when the file changed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ferroserve.metrics import snapshot

# A snapshot older than this many write intervals (and at least STALE_MIN_S) means the serving
# process stopped writing: its model metrics are withheld rather than exported as if current.
STALE_INTERVALS = 5
STALE_MIN_S = 10.0


class SnapshotSource:
    """Reads `directory/SNAPSHOT_FILE`; safe to call from several threads."""

    def __init__(self, directory: Path, interval_s: float) -> None:
        self.path = directory / snapshot.SNAPSHOT_FILE
        self.stale_after_s = max(STALE_MIN_S, STALE_INTERVALS * interval_s)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._latest: dict[str, Any] | None = None

    def latest(self) -> dict[str, Any] | None:
        """The newest snapshot, or None when none was written yet."""
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError:
                return self._latest
            stamp = (stat.st_mtime_ns, stat.st_ino)
            if stamp != self._stamp:
                data = snapshot.read(self.path)
                if data is not None:
                    self._latest, self._stamp = data, stamp
            return self._latest

    def age_s(self, data: dict[str, Any]) -> float:
        return max(0.0, time.time() - float(data["written_unix"]))

    def current(self) -> dict[str, Any] | None:
        """The newest snapshot if it is fresh, else None."""
        data = self.latest()
        if data is None or self.age_s(data) > self.stale_after_s:
            return None
        return data
