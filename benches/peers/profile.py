"""Where ferroserve's time goes when a target is missed: py-spy records the serving process
while the client drives the missed configuration again; the report shows the functions that
hold the most samples and the raw collapsed stacks are kept beside it (flamegraph.pl or
speedscope read them)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from measurement import MeasurementFailed
from server_process import CLOCK_TICKS

from .load import NativeClient
from .models import MODELS
from .resources import tree_pids

if TYPE_CHECKING:
    from .targets import Verdict

DURATION_S = 6
RATE_HZ = 200
TOP = 12


@dataclass(frozen=True, slots=True)
class Profile:
    """Samples of one recording: per-function counts, own (leaf) and inclusive."""

    title: str
    raw_path: Path | None
    samples: int
    expected_samples: int
    own: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]
    error: str = ""
    # CPU µs per request by thread group over the recording (from /proc, not sampled)
    threads: dict[str, float] = field(default_factory=dict)
    infer_per_s: float = 0.0

    def markdown(self) -> list[str]:
        if self.error:
            return [f"### {self.title}", "", f"py-spy failed: {self.error}"]
        busy = self.samples / max(1, self.expected_samples)
        split = ", ".join(f"{group} {us:,.0f}" for group, us in self.threads.items())
        lines = [
            f"### {self.title}",
            "",
            f"Server CPU per request by thread while recording ({self.infer_per_s:,.0f} infer/s, "
            f"py-spy attached), µs: {split}.",
            "",
            f"py-spy: {self.samples} samples of running or runnable Python threads in "
            f"{DURATION_S} s at {RATE_HZ} Hz ({busy:.0%} of one thread's time; the server has "
            "one core, so runnable threads wait for it). A function's own samples include the "
            "native code it calls without a Python frame: under the event loop's `run` that is "
            "grpc.aio's Cython layer, protobuf and uvloop. gRPC's C-core threads have no Python "
            f"frames and show only in the CPU split above. Raw stacks: "
            f"`{self.raw_path.name if self.raw_path else '-'}`.",
            "",
            "| function (own samples, native code below included) | share "
            "| ferroserve function (inclusive) | share |",
            "|---|---|---|---|",
        ]
        for index in range(max(len(self.own), len(self.inclusive))):
            cells = []
            for entries in (self.own, self.inclusive):
                if index < len(entries):
                    name, count = entries[index]
                    cells += [f"`{name}`", f"{count / max(1, self.samples):.0%}"]
                else:
                    cells += ["", ""]
            lines.append("| " + " | ".join(cells) + " |")
        return lines


def missed_targets(
    verdicts: Sequence[Verdict],
    server: tuple[int, int] | None,
    client: NativeClient,
    out_dir: Path,
) -> list[Profile]:
    """One recording per distinct missed point (model, rows, concurrency, the ferroserve model
    the target was measured on), unary; `server` is ferroserve's (pid, port)."""
    for stale in out_dir.glob("profile-*.txt"):
        stale.unlink()
    points = dict.fromkeys(
        v.point for v in verdicts if v.measured and not v.passed and v.point is not None
    )
    if not points or server is None:
        return []
    spy = shutil.which("py-spy")
    if spy is None:
        missing = "py-spy is not installed (pip install py-spy)"
        return [Profile("py-spy", None, 0, 0, [], [], missing)]
    return [record(spy, server, client, point, out_dir) for point in points if point is not None]


def record(
    spy: str,
    server: tuple[int, int],
    client: NativeClient,
    point: tuple[str, int, int, str],
    out_dir: Path,
) -> Profile:
    pid, port = server
    model, rows, concurrency, served = point
    title = f"ferroserve model `{served}`, {rows} row(s)/request, c={concurrency}, unary"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_path = out_dir / f"profile-{model}-r{rows}-c{concurrency}.txt"
    print(f"profiling {title}", file=sys.stderr)
    spy_run = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(DURATION_S), "--rate",
         str(RATE_HZ), "--format", "raw", "--output", str(raw_path), "--nonblocking"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    before, started = thread_cpu_s(pid), time.monotonic()
    infer_per_s = 0.0
    with contextlib.suppress(MeasurementFailed):
        # Keep the load on for the whole recording (py-spy takes a moment to attach).
        measured = client.measure(
            port, served, MODELS[model], rows, concurrency, False, window_s=DURATION_S + 1.0
        )
        infer_per_s = measured.measurement.infer_per_s
    elapsed, after = time.monotonic() - started, thread_cpu_s(pid)
    requests = max(1.0, infer_per_s * elapsed)
    threads = {group: (after[group] - before.get(group, 0.0)) * 1e6 / requests for group in after}
    output, _ = spy_run.communicate(timeout=DURATION_S + 60)
    if spy_run.returncode != 0 or not raw_path.exists():
        last = output.strip().splitlines()[-1:]
        return Profile(title, None, 0, 0, [], [], last[0] if last else str(spy_run.returncode))
    return replace(summarize(title, raw_path), threads=threads, infer_per_s=infer_per_s)


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds so far by thread group: the main thread (event loop), gRPC's C-core threads,
    the other threads of the server process (executors, ...), and its child processes."""
    groups = dict.fromkeys(
        ("main thread (event loop)", "gRPC core threads", "other threads", "child processes"),
        0.0,
    )
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            name = (task / "comm").read_text().strip()
            seconds = _ticks(task / "stat") / CLOCK_TICKS
            if task.name == str(pid):
                groups["main thread (event loop)"] += seconds
            elif name.startswith(("grpc", "event_engine", "lifeguard")):
                groups["gRPC core threads"] += seconds
            else:
                groups["other threads"] += seconds
    for child in tree_pids(pid)[1:]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            groups["child processes"] += _ticks(Path(f"/proc/{child}/stat")) / CLOCK_TICKS
    return groups


def _ticks(stat_path: Path) -> int:
    stat = stat_path.read_text()
    # proc(5): after "(comm)" fields start at 3; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def summarize(title: str, raw_path: Path) -> Profile:
    """Collapsed stacks ('frame;frame;... count', root first) -> top own and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    # ferroserve's own functions; entry points (cli, __main__) are on every stack.
    telling = [
        (name, n)
        for name, n in inclusive.most_common()
        if "ferroserve/" in name and not name.endswith(("cli.py)", "__main__.py)"))
    ]
    return Profile(
        title,
        raw_path,
        samples,
        DURATION_S * RATE_HZ,
        own.most_common(TOP),
        telling[:TOP],
    )


def _short(frame: str) -> str:
    """'run (ferroserve/runtime/executor.py:120)' -> 'run (runtime/executor.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    if "ferroserve" in parts:
        parts = parts[parts.index("ferroserve") :]
    return f"{name} ({'/'.join(parts[-3:])})" if path else name
