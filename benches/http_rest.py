"""HTTP/REST against gRPC (issue 19): perf_analyzer drives the batched MLP [N,64] -> 10, one row
per request, c=16, over gRPC, over HTTP with Triton's binary tensor data extension
(`-i http`, its default) and over HTTP with JSON tensors (`--input-tensor-format json
--output-tensor-format json`), the three alternating within each round on a fresh server per
round; the server's CPU per request is sampled from /proc. Prints a markdown report; --out
writes it.

    python benches/http_rest.py [--rounds N] [--window-ms MS] [--out FILE]

perf_analyzer: .perf_analyzer/perf_analyzer (or --perf-analyzer PATH).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from load_client import LoadSettings, PerfAnalyzer
from measurement import MeasurementFailed
from report import publish
from server_process import HOST, CpuSampler, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher
from typed_contents import write_repository

CONCURRENCY = 16
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "gRPC": ("-i", "grpc"),
    "HTTP binary": ("-i", "http"),
    "HTTP JSON": (
        "-i", "http", "--input-tensor-format", "json", "--output-tensor-format", "json",
    ),
}  # fmt: skip
# What the issue asks of each HTTP encoding, as a share of gRPC's throughput.
TARGETS = {"HTTP binary": 0.70, "HTTP JSON": 0.40}


@dataclass(frozen=True, slots=True)
class Result:
    protocol: str
    round: int
    infer_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_request: float


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds [3]")
    parser.add_argument("--window-ms", type=int, default=3000, help="perf_analyzer window [3000]")
    parser.add_argument(
        "--perf-analyzer",
        type=Path,
        default=SOURCE_TREE.parent / ".perf_analyzer" / "perf_analyzer",
        help="perf_analyzer binary [.perf_analyzer/perf_analyzer]",
    )
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def measure_all(
    repository: Path, workdir: Path, args: argparse.Namespace, notes: list[str]
) -> list[Result]:
    launcher, env = ferroserve_launcher(notes)
    library = args.perf_analyzer.parent / "lib"
    if library.is_dir():
        os.environ["LD_LIBRARY_PATH"] = f"{library}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    settings = LoadSettings(window_ms=args.window_ms, max_trials=3, stability_pct=100)
    clients = {
        name: PerfAnalyzer(args.perf_analyzer, settings, workdir, protocol=flags)
        for name, flags in PROTOCOLS.items()
    }
    notes.append(next(iter(clients.values())).description.splitlines()[0])
    names = list(PROTOCOLS)
    results = []
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        port, http_port, metrics_port = free_port(), free_port(), free_port()
        argv = [*launcher, "serve", "--model-repository", str(repository),
                "--grpc-port", str(port), "--http-port", str(http_port),
                "--metrics-port", str(metrics_port), "--host", HOST, "--uvloop"]  # fmt: skip
        with (
            serving(argv, port, workdir / f"server-{round_}.log", env or None) as pid,
            CpuSampler(pid) as cpu,
        ):
            for name in order:
                target = port if name == "gRPC" else http_port
                try:
                    m = clients[name].measure(target, CONCURRENCY, streaming=False)
                except MeasurementFailed as error:
                    notes.append(f"round {round_ + 1}, {name}: failed ({error})")
                    continue
                server_us = cpu.cpu_s_between(m.start_ns, m.end_ns) / max(1, m.inferences) * 1e6
                results.append(Result(name, round_, m.infer_per_s, m.p50_ms, m.p99_ms, server_us))
                print(f"round {round_ + 1}: {name}: {m.infer_per_s:.0f}/s", file=sys.stderr)
    return results


def tables(results: Sequence[Result]) -> tuple[list[str], list[str]]:
    rows = [
        "| protocol | round | infer/s | p50 ms | p99 ms | server µs/request |",
        "|" + "---|" * 6,
    ]
    for r in results:
        rows.append(
            f"| {r.protocol} | {r.round + 1} | {r.infer_per_s:.0f} | {r.p50_ms:.3f} | "
            f"{r.p99_ms:.3f} | {r.server_us_per_request:.1f} |"
        )
    summary = [
        "| protocol | infer/s (median) | share of gRPC per round | median share | target | "
        "server µs/request (median) |",
        "|" + "---|" * 6,
    ]
    grpc = {r.round: r.infer_per_s for r in results if r.protocol == "gRPC"}
    for name in PROTOCOLS:
        mine = [r for r in results if r.protocol == name]
        if not mine:
            continue
        shares = [r.infer_per_s / grpc[r.round] for r in mine if r.round in grpc]
        target = TARGETS.get(name)
        verdict = (
            ""
            if target is None
            else f">= {target:.0%}: "
            + ("met" if shares and statistics.median(shares) >= target else "NOT met")
        )
        summary.append(
            f"| {name} | {statistics.median(r.infer_per_s for r in mine):.0f} | "
            + ", ".join(f"{s:.2f}" for s in shares)
            + f" | {statistics.median(shares) if shares else float('nan'):.2f} | {verdict} | "
            f"{statistics.median(r.server_us_per_request for r in mine):.1f} |"
        )
    return summary, rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = [
        "perf_analyzer, MLP [N,64] -> 10 with dynamic batching, one row per request, "
        f"c={CONCURRENCY}, {args.rounds} rounds, a fresh server per round, protocols alternating."
    ]
    with tempfile.TemporaryDirectory(prefix="ferroserve-http-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        results = measure_all(workdir / "repository", workdir, args, notes)
    summary, rows = tables(results)
    publish([summary, rows], notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
