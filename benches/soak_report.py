"""The soak's report (benches/soak.py): one markdown row per interval and the verdict."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from soak_traffic import ADMIN, GOOD, RELOADED, SCRAPE, UNANSWERED, Event, SidecarKill, tree_pids

# Flatness allowed from the first interval to the last (the first holds the warm-up).
MAX_RSS_GROWTH = 0.10
MAX_P99_DRIFT = 2.0
SIDECAR_BACK_WITHIN_S = 10.0
# What a client of the model being unloaded and loaded again may see besides OK.
RELOAD_CODES = {"OK", "UNAVAILABLE", "NOT_FOUND"}


@dataclass(frozen=True, slots=True)
class Sample:
    """The server's process tree at one instant."""

    at_s: float
    tree_rss_mib: float
    server_rss_mib: float
    fds: int
    load_1m: float
    """The machine's 1-minute load average: the soak shares it with whatever else runs."""


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample_tree(pid: int, at_s: float) -> Sample:
    tree_rss, fds = 0.0, 0
    for member in tree_pids(pid):
        try:
            tree_rss += _rss_mib(member)
            fds += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue  # it exited meanwhile
    load_1m = float(Path("/proc/loadavg").read_text().split()[0])
    return Sample(at_s, tree_rss, _rss_mib(pid), fds, load_1m)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def codes(events: Sequence[Event]) -> str:
    counted = Counter(event.outcome for event in events)
    return ", ".join(f"{outcome} {count}" for outcome, count in counted.most_common()) or "-"


@dataclass(frozen=True, slots=True)
class Interval:
    """What happened in [start_s, end_s)."""

    start_s: float
    end_s: float
    events: list[Event]
    samples: list[Sample]

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event.kind == kind]

    def good_latencies(self) -> list[float]:
        good = self.of(GOOD)
        return [e.latency_ms for e in good if e.outcome == "OK" and e.latency_ms is not None]

    def bad(self) -> list[Event]:
        return [event for event in self.events if event.kind.startswith("bad: ")]

    def rss_mib(self) -> float:
        return statistics.median(s.tree_rss_mib for s in self.samples) if self.samples else 0.0

    def server_rss_mib(self) -> float:
        return statistics.median(s.server_rss_mib for s in self.samples) if self.samples else 0.0

    def fds(self) -> int:
        return max((s.fds for s in self.samples), default=0)

    def row(self) -> str:
        latencies = self.good_latencies()
        bad = self.bad()
        scrapes = self.of(SCRAPE)
        cells = [
            f"{self.start_s:.0f}-{self.end_s:.0f}",
            codes(self.of(GOOD)),
            f"{percentile(latencies, 0.5):.1f} / {percentile(latencies, 0.99):.1f}",
            codes(self.of(RELOADED)),
            f"{sum(e.expected for e in bad)} / {len(bad)}",
            f"{self.rss_mib():.0f} ({self.server_rss_mib():.0f})",
            str(self.fds()),
            f"{sum(e.outcome == 'OK' for e in scrapes)} / {len(scrapes)}",
            f"{max((s.load_1m for s in self.samples), default=0.0):.1f}",
        ]
        return "| " + " | ".join(cells) + " |"


HEADER = [
    "| t (s) | good clients: codes | good p50 / p99 (ms) | reloaded model: codes "
    "| bad clients as expected | RSS MiB tree (server) | fds | scrapes OK | load |",
    "|---|---|---|---|---|---|---|---|---|",
]


def intervals(
    events: Sequence[Event], samples: Sequence[Sample], length_s: float, end_s: float
) -> list[Interval]:
    """The run cut every `length_s` up to `end_s` (the last takes the answers drained after
    it), less the intervals where nothing ran (the soak was stopped throughout)."""
    count = max(1, round(end_s / length_s))
    found = []
    for index in range(count):
        start, end = index * length_s, (index + 1) * length_s
        last = index == count - 1
        interval = Interval(
            start,
            end,
            [e for e in events if start <= e.at_s < end or (last and e.at_s >= end)],
            [s for s in samples if start <= s.at_s < end or (last and s.at_s >= end)],
        )
        if interval.samples:
            found.append(interval)
    return found


def bad_summary(events: Sequence[Event]) -> list[str]:
    """One row per hostile client: how often played, its outcomes."""
    by_name: dict[str, list[Event]] = {}
    for event in events:
        if event.kind.startswith("bad: "):
            by_name.setdefault(event.kind.removeprefix("bad: "), []).append(event)
    lines = ["| hostile client | played | outcomes | as expected |", "|---|---|---|---|"]
    for name, played in by_name.items():
        expected = sum(e.expected for e in played)
        lines.append(f"| {name} | {len(played)} | {codes(played)} | {expected} / {len(played)} |")
    return lines


def _of(events: Sequence[Event], kind: str) -> list[Event]:
    return [event for event in events if event.kind == kind]


def _check(passed: bool, text: str) -> str:
    return f"{'PASS' if passed else 'FAIL'}: {text}"


def verdict(rows: Sequence[Interval], events: Sequence[Event], kill: SidecarKill) -> list[str]:
    first, last = rows[0], rows[-1]
    growth = (last.rss_mib() - first.rss_mib()) / max(first.rss_mib(), 1.0)
    # p99 of 2 000 calls swings with the machine's other load; halves of the run are steadier.
    half = max(1, len(rows) // 2)
    p99_first = percentile([ms for row in rows[:half] for ms in row.good_latencies()], 0.99)
    p99_last = percentile([ms for row in rows[half:] for ms in row.good_latencies()], 0.99)
    drift = p99_last / p99_first if p99_first > 0 else float("inf")
    unknown = [e for e in events if "UNKNOWN" in e.outcome]
    unanswered = [e for e in events if UNANSWERED in e.outcome]
    good_other = [e for e in events if e.kind == GOOD and e.outcome != "OK"]
    reload_other = [e for e in events if e.kind == RELOADED and e.outcome not in RELOAD_CODES]
    bad_other = [e for e in events if e.kind.startswith("bad: ") and not e.expected]
    admin_other = [e for e in events if e.kind == ADMIN and not e.outcome.endswith(" OK")]
    back_s = (
        None
        if kill.back_at_s is None or kill.killed_at_s is None
        else kill.back_at_s - kill.killed_at_s
    )
    return [
        _check(growth <= MAX_RSS_GROWTH, f"tree RSS {first.rss_mib():.0f} -> "
               f"{last.rss_mib():.0f} MiB first to last interval ({growth:+.1%}; "
               f"server alone {first.server_rss_mib():.0f} -> {last.server_rss_mib():.0f})"),
        _check(drift <= MAX_P99_DRIFT, f"good p99 {p99_first:.1f} -> {p99_last:.1f} ms, first half "
               f"to second "
               f"(x{drift:.2f}; worst interval "
               f"{max(percentile(r.good_latencies(), 0.99) for r in rows):.1f} ms)"),
        _check(not unknown, f"UNKNOWN anywhere: {len(unknown)}"),
        _check(not unanswered, f"calls unanswered (deadline passed, stream answer missing): "
               f"{len(unanswered)}"),
        _check(not good_other, f"good clients of the models never reloaded: "
               f"{sum(e.kind == GOOD for e in events)} calls, not OK: {codes(good_other)}"),
        _check(not reload_other, f"reloaded model's clients: {codes(_of(events, RELOADED))}"),
        _check(not admin_other, f"unload/load calls: {codes(_of(events, ADMIN))}"),
        _check(not bad_other, f"hostile clients not cut off as expected: {len(bad_other)}"),
        _check(back_s is not None and back_s <= SIDECAR_BACK_WITHIN_S,
               f"sidecar pid {kill.killed_pid} SIGKILLed at {kill.killed_at_s or 0:.0f} s; "
               f"/metrics answered again after "
               f"{'never' if back_s is None else f'{back_s:.1f} s'} (new pid {kill.new_pid})"),
    ]  # fmt: skip


def sections(
    events: Sequence[Event],
    samples: Sequence[Sample],
    kill: SidecarKill,
    interval_s: float,
    stalls: Sequence[tuple[float, float]],
) -> tuple[list[list[str]], bool, list[str]]:
    """The report's tables and verdict, whether every check passed, and notes."""
    end_s = max((sample.at_s for sample in samples), default=interval_s)
    rows = intervals(events, samples, interval_s, end_s)
    checks = verdict(rows, events, kill)
    tables = [
        ["## Soak", "", *HEADER, *(row.row() for row in rows)],
        ["### Hostile clients", "", *bad_summary(events)],
        ["### Verdict", "", *(f"- {check}" for check in checks)],
    ]
    notes = [
        "good clients: 2 unary on mlp, 1 unary on tiny, 1 stream on mlp; reloaded model: "
        "cycled (unary); RSS: median of 2 s samples; fds: the interval's maximum; "
        "load: the machine's highest 1-minute load average in the interval.",
    ]
    unexpected = Counter(
        f"{e.kind}: {e.outcome}" for e in events if e.kind.startswith("bad: ") and not e.expected
    )
    notes += [f"unexpected: {what} (x{count})" for what, count in unexpected.items()]
    notes += [
        f"stalled {start:.0f}-{end:.0f} s: the soak's processes did not run (stopped by the "
        "machine's benchmark guard, or starved); times are wall-clock, the run went on past "
        "them so that --duration seconds ran"
        for start, end in stalls
    ]
    return tables, all(check.startswith("PASS") for check in checks), notes
