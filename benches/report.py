"""The serving benchmark's report: one markdown table of the rows measured in this run, each
server row as a share of the transport ceiling measured beside it, the issue's targets as
PASS/FAIL lines, and the machine the figures belong to."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import onnxruntime
from measurement import Measurement

CEILING = "ceiling"
FERROSERVE = "ferroserve"
UNARY = "unary"
# The bare grpcio v2 server measured earlier on this machine type (2 cores): a reference the
# issue's target is expressed against, not measured in this run.
BARE_GRPCIO_C16 = 2000.0
TARGET_OF_BARE = 1.4
TARGET_OF_CEILING = 0.75
TARGET_P50_C1_MS = 0.6


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table. `measurement` is None when the run failed (`error` says why)."""

    server: str
    loop: str
    mode: str
    concurrency: int
    measurement: Measurement | None
    cpu_us_per_infer: float | None
    error: str = ""

    @property
    def label(self) -> str:
        return f"{self.server} ({self.loop})" if self.loop else self.server


def render(rows: Sequence[Row], notes: Sequence[str]) -> str:
    """The whole report as markdown: machine, table, targets, notes."""
    return compose([table(rows), targets(rows)], notes)


def compose(sections: Sequence[Sequence[str]], notes: Sequence[str]) -> str:
    """A benchmark's markdown report: the machine, each section in turn, then the notes as a
    list."""
    lines = list(machine_description())
    for section in sections:
        lines += ["", *section]
    return "\n".join([*lines, "", *(f"- {note}" for note in notes), ""])


def publish(sections: Sequence[Sequence[str]], notes: Sequence[str], out: Path | None) -> None:
    """Prints the report (see `compose`) and writes it to `out` too when given."""
    text = compose(sections, notes)
    print(text)
    if out is not None:
        out.write_text(text)


def table(rows: Sequence[Row]) -> list[str]:
    header = (
        "| server | mode | c | infer/s | p50 ms | p99 ms | server CPU µs/infer | % of ceiling |"
    )
    lines = [header, "|" + "---|" * 8]
    for row in rows:
        cells = [row.label, row.mode, str(row.concurrency)]
        if row.measurement is None:
            # A "|" would end the cell early.
            cells += [f"failed: {row.error.replace('|', '/')}", "", "", "", ""]
        else:
            m = row.measurement
            cpu = "" if row.cpu_us_per_infer is None else f"{row.cpu_us_per_infer:.0f}"
            cells += [f"{m.infer_per_s:.0f}", f"{m.p50_ms:.3f}", f"{m.p99_ms:.3f}", cpu]
            cells.append(_share_of_ceiling(row, rows))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _share_of_ceiling(row: Row, rows: Sequence[Row]) -> str:
    if row.server == CEILING:
        return "(ref)"
    ceiling = _find(rows, CEILING, row.loop, row.mode, row.concurrency)
    if row.measurement is None or ceiling is None:
        return "-"
    return f"{100 * row.measurement.infer_per_s / ceiling.infer_per_s:.0f}%"


def _find(rows: Sequence[Row], server: str, loop: str, mode: str, c: int) -> Measurement | None:
    for row in rows:
        if (row.server, row.loop, row.mode, row.concurrency) == (server, loop, mode, c):
            return row.measurement
    return None


def targets(rows: Sequence[Row]) -> list[str]:
    """The issue's targets for ferroserve unary, as PASS/FAIL (or NOT MEASURED) lines."""
    loop = next((row.loop for row in rows if row.server == FERROSERVE), "")
    c16 = _find(rows, FERROSERVE, loop, UNARY, 16)
    c1 = _find(rows, FERROSERVE, loop, UNARY, 1)
    ceiling = _find(rows, CEILING, loop, UNARY, 16)
    bare_target = TARGET_OF_BARE * BARE_GRPCIO_C16
    share = None if c16 is None or ceiling is None else c16.infer_per_s / ceiling.infer_per_s
    return [
        "Targets (ferroserve unary):",
        "",
        _verdict(
            f"c=16 >= {TARGET_OF_CEILING:.0%} of the ceiling's unary c=16 ({loop}, this run)",
            share,
            share is not None and share >= TARGET_OF_CEILING,
            f"{share:.0%}" if share is not None else "",
        ),
        _verdict(
            f"c=16 >= {TARGET_OF_BARE} x {BARE_GRPCIO_C16:.0f} = {bare_target:.0f} infer/s "
            "(bare grpcio server measured earlier on this machine type; reference, not this run)",
            c16,
            c16 is not None and c16.infer_per_s >= bare_target,
            f"{c16.infer_per_s:.0f} infer/s" if c16 is not None else "",
        ),
        _verdict(
            f"p50 at c=1 <= {TARGET_P50_C1_MS} ms",
            c1,
            c1 is not None and c1.p50_ms <= TARGET_P50_C1_MS,
            f"{c1.p50_ms:.3f} ms" if c1 is not None else "",
        ),
    ]


def _verdict(goal: str, value: object, passed: bool, shown: str) -> str:
    if value is None:
        return f"- NOT MEASURED: {goal}"
    return f"- {'PASS' if passed else 'FAIL'}: {goal}: {shown}"


def machine_description() -> list[str]:
    """Date, CPU, memory and the versions the figures depend on."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = f"onnxruntime {onnxruntime.__version__}, grpcio {grpc.__version__}"
    return [
        f"Measured {now} on {os.cpu_count()} x {_cpu_model()}, {_memory_gib():.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; Python {sys.version.split()[0]}, {versions}.",
    ]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0
