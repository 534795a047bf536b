"""Memory of a server's process tree (MLServer runs its inference workers as child processes):
resident set size summed over the live processes, sampled on a thread while a block runs."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from types import TracebackType


def tree_pids(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for listing in Path(f"/proc/{current}/task").glob("*/children"):
                pending += [int(child) for child in listing.read_text().split()]
            pids.append(current)
    return pids


def tree_rss_mib(pid: int) -> float:
    """Resident memory of the tree now. Pages shared by forked workers count once per process,
    as `ps` and the kernel's per-process accounting count them."""
    kib = 0
    for current in tree_pids(pid):
        # A process may exit between listing and reading; it then adds nothing.
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
    return kib / 1024


class PeakRss:
    """The largest tree RSS seen while the block runs (sampled every `period_s`)."""

    def __init__(self, pid: int, period_s: float = 0.1) -> None:
        self._pid = pid
        self._period_s = period_s
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak_mib = max(self.peak_mib, tree_rss_mib(self._pid))
            if self._stop.wait(self._period_s):
                return
