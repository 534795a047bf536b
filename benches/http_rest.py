"""HTTP/REST against gRPC (issue 19): the batched MLP [N,64] -> 10, one row per request, c=16.
ferroserve over gRPC, over HTTP with Triton's binary tensor data extension and over HTTP with
JSON tensors, each driven by perf_analyzer (`-i grpc`, `-i http`, `-i http
--input-tensor-format json --output-tensor-format json`) and by the native client
(`ferroserve-loadgen run`, `--http binary|json`); beside them the peers' REST endpoints with
the native client (perf_analyzer needs Triton's model config endpoint, which they lack):
KServe's ModelServer (JSON and binary tensors) and MLServer (JSON; it has no binary
extension). Every round starts a fresh server of each kind, checks each REST endpoint's answer
once against onnxruntime, then measures every row in an order that rotates from round to
round; the servers' CPU per request is sampled from /proc, and each client's own CPU is
reported (perf_analyzer's from its rusage, over its whole run). Prints a markdown report;
--out writes it.

    python benches/http_rest.py [--rounds N] [--window-ms MS] [--out FILE]

perf_analyzer: .perf_analyzer/perf_analyzer (or --perf-analyzer PATH); the peers'
environments: bench-results/venvs (created by benches/peers on first use).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from http_peers import Endpoint, Reference, environments, native, peers, serving_peer
from http_report import NATIVE, PERF_ANALYZER, Result, Row, tables
from load_client import LoadSettings, PerfAnalyzer
from measurement import Measurement, MeasurementFailed
from peers.load import build_loadgen
from report import publish
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher
from typed_contents import write_repository

CONCURRENCY = 16
FERROSERVE = "ferroserve"
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "gRPC": ("-i", "grpc"),
    "HTTP binary": ("-i", "http"),
    "HTTP JSON": (
        "-i", "http", "--input-tensor-format", "json", "--output-tensor-format", "json",
    ),
}  # fmt: skip
# The native client's flag for each protocol (`--http`; None: gRPC).
ENCODINGS: dict[str, str | None] = {"gRPC": None, "HTTP binary": "binary", "HTTP JSON": "json"}
# The peers' REST rows: MLServer has no binary tensor extension.
PEER_PROTOCOLS = {"KServe": ("HTTP JSON", "HTTP binary"), "MLServer": ("HTTP JSON",)}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds [3]")
    parser.add_argument("--window-ms", type=int, default=3000, help="each client's window [3000]")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="native warm-up [1]")
    parser.add_argument(
        "--perf-analyzer",
        type=Path,
        default=SOURCE_TREE.parent / ".perf_analyzer" / "perf_analyzer",
        help="perf_analyzer binary [.perf_analyzer/perf_analyzer]",
    )
    parser.add_argument("--no-peers", action="store_true", help="ferroserve's rows only")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def all_rows(peer_names: Sequence[str]) -> list[Row]:
    """ferroserve's rows under both clients, then the peers', in table order."""
    rows = [
        Row(FERROSERVE, protocol, client)
        for protocol in PROTOCOLS
        for client in (PERF_ANALYZER, NATIVE)
    ]
    for name in peer_names:
        rows += [Row(name, protocol, NATIVE) for protocol in PEER_PROTOCOLS[name]]
    return rows


@dataclass(frozen=True, slots=True)
class Clients:
    """perf_analyzer per protocol, the native client's binary and its timing."""

    analyzers: dict[str, PerfAnalyzer]
    loadgen: Path
    timing: tuple[float, float]

    def measure(self, row: Row, endpoint: Endpoint) -> tuple[Measurement, float | None]:
        """One window of `row` and the client's CPU (cores busy on average)."""
        port = endpoint.grpc_port if row.protocol == "gRPC" else endpoint.http_port
        if row.client == NATIVE:
            figures = native(self.loadgen, port, CONCURRENCY, ENCODINGS[row.protocol], self.timing)
            return figures.measurement, figures.client_cores
        before, started = _children_cpu_s(), time.monotonic()
        measurement = self.analyzers[row.protocol].measure(port, CONCURRENCY, streaming=False)
        return measurement, (_children_cpu_s() - before) / (time.monotonic() - started)


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children (perf_analyzer, once it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_all(workdir: Path, args: argparse.Namespace, notes: list[str]) -> list[Result]:
    write_repository(workdir / "repository")
    model_file = workdir / "onnx" / "mlp.onnx"
    model_file.parent.mkdir()
    shutil.copyfile(workdir / "repository" / "mlp" / "1" / "model.onnx", model_file)
    reference = Reference(model_file)
    launcher, env = ferroserve_launcher(notes)
    library = args.perf_analyzer.parent / "lib"
    if library.is_dir():
        os.environ["LD_LIBRARY_PATH"] = f"{library}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    settings = LoadSettings(window_ms=args.window_ms, max_trials=3, stability_pct=100)
    analyzers = {
        name: PerfAnalyzer(args.perf_analyzer, settings, workdir, protocol=flags)
        for name, flags in PROTOCOLS.items()
    }
    clients = Clients(analyzers, build_loadgen(), (args.warmup_s, args.window_ms / 1000))
    notes.append(next(iter(analyzers.values())).description.splitlines()[0])
    peer_environments = {} if args.no_peers else environments(notes)
    results = []
    for round_ in range(args.rounds):
        stack = peers(peer_environments, model_file, workdir, round_)
        port, http_port = free_port(), free_port()
        argv = [*launcher, "serve", "--model-repository", str(workdir / "repository"),
                "--grpc-port", str(port), "--http-port", str(http_port),
                "--metrics-port", str(free_port()), "--host", HOST, "--uvloop"]  # fmt: skip
        with ExitStack() as servers:
            pid = servers.enter_context(
                serving(argv, port, workdir / f"ferroserve-{round_}.log", env or None)
            )
            endpoints = {FERROSERVE: Endpoint(pid, port, http_port)}
            for peer in stack:
                try:
                    log = workdir / f"{peer.name.lower()}-{round_}.log"
                    endpoints[peer.name] = servers.enter_context(serving_peer(peer, log))
                except ServerFailed as error:
                    notes.append(f"round {round_ + 1}, {peer.name} did not start: {error}")
            rows = checked_rows(all_rows([p.name for p in stack]), endpoints, reference, notes)
            cpu = {name: servers.enter_context(CpuSampler(e.pid)) for name, e in endpoints.items()}
            shift = (round_ * 3) % max(1, len(rows))
            for row in rows[shift:] + rows[:shift]:
                try:
                    measurement, client_cores = clients.measure(row, endpoints[row.server])
                except MeasurementFailed as error:
                    notes.append(
                        f"round {round_ + 1}, {row.label} ({row.client}): failed ({error})"
                    )
                    continue
                time.sleep(0.1)  # the sampler's first sample past the window
                m = measurement
                server_s = cpu[row.server].cpu_s_between(m.start_ns, m.end_ns)
                server_us = server_s / max(1, m.inferences) * 1e6
                results.append(Result(row, round_, m.infer_per_s, m.p50_ms, m.p99_ms, server_us,
                                      client_cores))  # fmt: skip
                print(f"round {round_ + 1}: {row.label} ({row.client}): "
                      f"{m.infer_per_s:.0f}/s", file=sys.stderr)  # fmt: skip
    return results


def checked_rows(
    rows: Sequence[Row], endpoints: dict[str, Endpoint], reference: Reference, notes: list[str]
) -> list[Row]:
    """The rows whose server started and whose REST answer (in the row's tensor encoding)
    matches onnxruntime's; a note for each one left out."""
    verdicts: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row.server, row.protocol)
        if key in verdicts or row.server not in endpoints or row.protocol == "gRPC":
            continue
        try:
            reference.check(endpoints[row.server].http_port, binary=row.protocol == "HTTP binary")
            verdicts[key] = ""
        except MeasurementFailed as error:
            verdicts[key] = str(error)
            notes.append(f"{row.label}: answer check failed, not measured ({error})")
    return [
        row
        for row in rows
        if row.server in endpoints and not verdicts.get((row.server, row.protocol))
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = [
        "MLP [N,64] -> 10 (ferroserve: dynamic batching), one row per request, "
        f"c={CONCURRENCY}, {args.rounds} rounds, a fresh server of each kind per round, rows "
        f"in an order rotating per round, {args.window_ms} ms windows; server CPU from /proc "
        "(process tree)."
    ]
    with tempfile.TemporaryDirectory(prefix="ferroserve-http-") as tmp:
        results = measure_all(Path(tmp), args, notes)
    publish(tables(results), notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
