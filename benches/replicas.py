"""Scaling with replicas on one machine (issue 20): N ferroserve processes serving one model
repository behind nginx (`grpc_pass`, as tests/e2e/test_replicas.py runs it), driven by
perf_analyzer through the balancer, beside one replica driven directly (no balancer), so the
balancer's own cost shows. Per row: infer/s, p50/p99, each replica's share of the requests
(ModelStatistics) and CPU per request, nginx's CPU per request. Rounds alternate the rows, a
fresh set of processes per row. On this 2-core machine every process shares the same cores:
the figures show the cost of replication and balancing here, not how a cluster scales.

    python benches/replicas.py [--replicas 1,2,3] [--rounds 2] [--concurrency 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from batching import Plan as BatchingPlan
from batching import perf_analyzer, write_repository
from batching_load import Analyzer, model_counts
from load_client import LoadSettings
from report import publish
from server_process import HOST, CpuSampler, free_port, serving
from serving_core import ferroserve_launcher
from tritonclient.grpc import service_pb2, service_pb2_grpc

MODEL = "mlp_batched"
SETTINGS = LoadSettings(window_ms=3000, max_trials=10, stability_pct=30)
NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  upstream ferroserve {{ {servers} keepalive 64; }}
  server {{
    listen {host}:{port} http2;
    location / {{ grpc_pass grpc://ferroserve; }}
  }}
}}
"""


# The ferroserve command and its environment, found once per run.
LAUNCHER: list[tuple[list[str], dict[str, str]]] = []


@dataclass(frozen=True, slots=True)
class Row:
    """One measured configuration."""

    replicas: int
    balanced: bool
    infer_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    shares: tuple[float, ...]  # each replica's share of the requests served
    replica_cpu_us: float | None  # all replicas' CPU per request
    nginx_cpu_us: float | None
    error: str = ""

    @property
    def label(self) -> str:
        return f"{self.replicas} behind nginx" if self.balanced else "1 direct (no balancer)"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,3", help="replica counts behind nginx")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument(
        "--tools", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "tools"
    )
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise SystemExit("nginx is not installed (Debian: apt-get install nginx; make system-deps)")
    return found


@contextlib.contextmanager
def replicas(
    count: int, repository: Path, workdir: Path, notes: list[str]
) -> Iterator[list[tuple[int, int]]]:
    """`count` ferroserve processes on one repository; yields (port, pid) of each."""
    if not LAUNCHER:
        LAUNCHER.append(ferroserve_launcher(notes))
    launcher, env = LAUNCHER[0]
    with contextlib.ExitStack() as stack:
        running = []
        for index in range(count):
            port = free_port()
            argv = [
                *launcher, "serve", "--model-repository", str(repository), "--host", HOST,
                "--grpc-port", str(port), "--metrics-port", str(free_port()),
                # One REST port each would collide on 8000; this benchmark is gRPC only.
                "--no-allow-http",
            ]  # fmt: skip
            log = workdir / f"replica-{count}-{index}-{port}.log"
            pid = stack.enter_context(serving(argv, port, log, env))
            running.append((port, pid))
        yield running


@contextlib.contextmanager
def nginx(ports: Sequence[int], workdir: Path, workers: int) -> Iterator[tuple[int, int]]:
    """nginx balancing gRPC over `ports`; yields (its port, its master's pid)."""
    root = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
    port = free_port()
    servers = " ".join(f"server {HOST}:{p};" for p in ports)
    conf = root / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(root=root, servers=servers, host=HOST, port=port, workers=workers)
    )
    process = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(root)])
    try:
        deadline = time.monotonic() + 20
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nginx did not start: {(root / 'error.log').read_text()}")
            time.sleep(0.1)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(10)


def _ready(port: int) -> bool:
    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with contextlib.suppress(grpc.RpcError):
            return bool(stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=1).ready)
    return False


def measure(
    analyzer: Analyzer,
    count: int,
    balanced: bool,
    repository: Path,
    workdir: Path,
    args: argparse.Namespace,
    notes: list[str],
) -> Row:
    with replicas(count, repository, workdir, notes) as running, contextlib.ExitStack() as stack:
        samplers = [stack.enter_context(CpuSampler(pid)) for _, pid in running]
        port, nginx_sampler = running[0][0], None
        if balanced:
            port, nginx_pid = stack.enter_context(
                nginx([p for p, _ in running], workdir, args.nginx_workers)
            )
            nginx_sampler = stack.enter_context(CpuSampler(nginx_pid))
        before = [model_counts(p, MODEL) or (0, 0) for p, _ in running]
        run = analyzer.measure(port, MODEL, args.concurrency)
        after = [model_counts(p, MODEL) or (0, 0) for p, _ in running]
        m = run.measurement
        if m is None:
            return Row(count, balanced, None, None, None, (), None, None, run.error)
        served = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
        total = max(1, sum(served))
        per_request = 1e6 / max(1, m.inferences)
        replica_cpu = sum(s.cpu_s_between(m.start_ns, m.end_ns) for s in samplers) * per_request
        nginx_cpu = None
        if nginx_sampler is not None:
            nginx_cpu = nginx_sampler.cpu_s_between(m.start_ns, m.end_ns) * per_request
        return Row(
            count, balanced, m.infer_per_s, m.p50_ms, m.p99_ms,
            tuple(n / total for n in served), replica_cpu, nginx_cpu,
        )  # fmt: skip


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| replicas | round | infer/s | p50 ms | p99 ms | share per replica "
        "| replicas' CPU µs/infer | nginx CPU µs/infer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rounds: dict[str, int] = {}
    for row in rows:
        rounds[row.label] = rounds.get(row.label, 0) + 1
        if row.infer_per_s is None:
            lines.append(
                f"| {row.label} | {rounds[row.label]} | failed: {row.error[:100]} | | | | | |"
            )
            continue
        shares = " / ".join(f"{s:.0%}" for s in row.shares)
        nginx_cpu = "-" if row.nginx_cpu_us is None else f"{row.nginx_cpu_us:.0f}"
        lines.append(
            f"| {row.label} | {rounds[row.label]} | {row.infer_per_s:,.0f} | {row.p50_ms:.2f} "
            f"| {row.p99_ms:.2f} | {shares} | {row.replica_cpu_us:.0f} | {nginx_cpu} |"
        )
    return lines


def summary(rows: Sequence[Row]) -> list[str]:
    """Mean infer/s per configuration, relative to one replica measured directly."""
    means: dict[str, list[float]] = {}
    for row in rows:
        if row.infer_per_s is not None:
            means.setdefault(row.label, []).append(row.infer_per_s)
    base = means.get("1 direct (no balancer)")
    lines = ["| configuration | mean infer/s | vs one replica direct |", "|---|---|---|"]
    for label, values in means.items():
        mean = sum(values) / len(values)
        relative = f"{mean / (sum(base) / len(base)):.2f}x" if base else "-"
        lines.append(f"| {label} | {mean:,.0f} | {relative} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(n) for n in args.replicas.split(",")]
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-replicas-") as temp:
        workdir = Path(temp)
        repository = workdir / "repository"
        write_repository(repository)
        analyzer = perf_analyzer(args.tools, BatchingPlan((), SETTINGS), workdir)
        rows = []
        for _ in range(args.rounds):
            rows.append(measure(analyzer, 1, False, repository, workdir, args, notes))
            for count in counts:
                rows.append(measure(analyzer, count, True, repository, workdir, args, notes))
                print(table(rows)[-1], file=sys.stderr)
    notes += [
        f"perf_analyzer ({analyzer.description.splitlines()[0]}), MLP 64->256->256->10 with "
        f"dynamic batching, one row per request, c={args.concurrency}, unary; windows of "
        f"{SETTINGS.window_ms} ms. nginx {args.nginx_workers} worker process(es), HTTP/2 to the "
        "replicas with upstream keep-alive. Every replica serves the same local repository.",
        "share per replica: each replica's part of the requests served in the window "
        "(ModelStatistics inference_count); CPU: utime+stime of each process tree over the "
        "measured window, per request.",
    ]
    publish(
        [["## Scaling with replicas behind nginx", "", *summary(rows), "", *table(rows)]],
        notes,
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
