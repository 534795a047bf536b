"""benches/http_rest.py's rows and tables: medians per row with each row's share of ferroserve's
gRPC throughput under the same client (the issue's targets: HTTP binary >= 0.70, JSON >=
0.40), the native client against perf_analyzer on ferroserve round by round (with both
clients' own CPU), and every window."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

PERF_ANALYZER = "perf_analyzer"
NATIVE = "native"
# What the issue asks of each HTTP encoding, as a share of gRPC's throughput.
TARGETS = {"HTTP binary": 0.70, "HTTP JSON": 0.40}
# How far the native client may be from perf_analyzer before the difference needs explaining.
AGREEMENT = 0.10


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the tables: a server, a protocol and the client that drives it."""

    server: str
    protocol: str
    client: str

    @property
    def label(self) -> str:
        return f"{self.server} {self.protocol}"


@dataclass(frozen=True, slots=True)
class Result:
    """One measured window."""

    row: Row
    round: int
    infer_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_request: float
    # The client's CPU, in cores busy on average (perf_analyzer: over its whole run).
    client_cores: float | None


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cores(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def summary(results: Sequence[Result]) -> list[str]:
    lines = [
        "| server | protocol | client | infer/s (median) | p50 ms | p99 ms | server µs/request "
        "| client CPU (cores) | share of ferroserve gRPC (same client), per round | median "
        "| issue's target |",
        "|" + "---|" * 11,
    ]
    rows = list(dict.fromkeys(r.row for r in results))
    for row in rows:
        mine = [r for r in results if r.row == row]
        grpc = {
            r.round: r.infer_per_s
            for r in results
            if r.row.server == "ferroserve"
            and r.row.protocol == "gRPC"
            and r.row.client == row.client
        }
        shares = [r.infer_per_s / grpc[r.round] for r in mine if r.round in grpc]
        target = TARGETS.get(row.protocol) if row.server == "ferroserve" else None
        verdict = ""
        if target is not None and shares:
            met = _median(shares) >= target
            verdict = f">= {target:.2f}: " + ("met" if met else "NOT met")
        cores = [r.client_cores for r in mine if r.client_cores is not None]
        lines.append(
            f"| {row.server} | {row.protocol} | {row.client} "
            f"| {_median([r.infer_per_s for r in mine]):.0f} "
            f"| {_median([r.p50_ms for r in mine]):.2f} | {_median([r.p99_ms for r in mine]):.2f} "
            f"| {_median([r.server_us_per_request for r in mine]):.1f} "
            f"| {_cores(_median(cores) if cores else None)} "
            f"| {', '.join(f'{s:.2f}' for s in shares)} | {_median(shares):.2f} | {verdict} |"
        )
    return lines


def validation(results: Sequence[Result]) -> list[str]:
    """ferroserve's rows, native client against perf_analyzer, round by round."""
    lines = [
        "| protocol | round | perf_analyzer infer/s | its CPU (cores) | server µs/request "
        "| native infer/s | its CPU (cores) | server µs/request | native / perf_analyzer |",
        "|" + "---|" * 9,
    ]
    by_key = {
        (r.row.protocol, r.row.client, r.round): r for r in results if r.row.server == "ferroserve"
    }
    order = ["gRPC", "HTTP binary", "HTTP JSON"]
    for protocol, client, round_ in sorted(by_key, key=lambda k: (order.index(k[0]), k[2])):
        if client != NATIVE or (protocol, PERF_ANALYZER, round_) not in by_key:
            continue
        mine, theirs = by_key[(protocol, NATIVE, round_)], by_key[(protocol, PERF_ANALYZER, round_)]
        ratio = mine.infer_per_s / theirs.infer_per_s
        within = "within" if abs(ratio - 1) <= AGREEMENT else "outside"
        lines.append(
            f"| {protocol} | {round_ + 1} | {theirs.infer_per_s:.0f} "
            f"| {_cores(theirs.client_cores)} | {theirs.server_us_per_request:.1f} "
            f"| {mine.infer_per_s:.0f} "
            f"| {_cores(mine.client_cores)} | {mine.server_us_per_request:.1f} "
            f"| {ratio:.2f} ({within} {AGREEMENT:.0%}) |"
        )
    return lines


def windows(results: Sequence[Result]) -> list[str]:
    lines = [
        "| round | server | protocol | client | infer/s | p50 ms | p99 ms | server µs/request "
        "| client CPU (cores) |",
        "|" + "---|" * 9,
    ]
    for r in results:
        lines.append(
            f"| {r.round + 1} | {r.row.server} | {r.row.protocol} | {r.row.client} "
            f"| {r.infer_per_s:.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} "
            f"| {r.server_us_per_request:.1f} | {_cores(r.client_cores)} |"
        )
    return lines


def tables(results: Sequence[Result]) -> list[list[str]]:
    return [summary(results), validation(results), windows(results)]
