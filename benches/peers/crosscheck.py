"""Validation of the load client: Triton's C++ perf_analyzer (installed by the batching
benchmark's helper, pinned to the client's core like the native client) re-measures the servers
that answer the ModelConfig RPC it needs, ferroserve and the Python transport ceiling, at the
MLP points the targets use, in the same run. Each perf_analyzer row is measured between two
native-client runs of the same row, seconds apart, so a load change on the machine moves both
clients alike. Two checks decide, on ferroserve's unary rows:
- each client's figure must match what the server itself counted as served over that client's
  window (ModelStatistics' success count, sampled every 100 ms), within 3%: the client counts
  honestly;
- the native client's figure (the mean of its two runs) must agree within 10% with
  perf_analyzer's, or be higher while perf_analyzer keeps its own core at least 80% busy (its
  CPU time over its run): then perf_analyzer, not the server, set that row's pace, and the
  server's own count confirms the native client's higher figure; or, with the server's cores
  busy under both clients (at least 90%), differ only as much as the server's CPU per request
  does under the two clients' traffic (within 5%): the server set the pace under both, and
  the clients' traffic cost it differently (e.g. how requests arrive in HTTP/2 frames); or, at
  c=1, be higher while the server spent the same time on each request under both clients
  (ModelStatistics' success time per request, within 10%): with one request in flight a
  client's infer/s is the inverse of its whole round trip, its own turnaround included, so the
  client that turns answers into the next request faster reads higher for the same server.
The server's CPU per request under each client is shown too: when it differs, the clients load
the server differently. The peers cannot be measured this way, which is why the native client
exists."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from batching import Plan as BatchingPlan
from batching import perf_analyzer
from batching_load import Analyzer
from load_client import LoadSettings
from server_process import HOST, CpuSampler, Sampler
from tritonclient.grpc import service_pb2, service_pb2_grpc

from .repositories import NO_BATCHING
from .results import Result
from .servers import CEILING, FERROSERVE, OURS, Running, Target

CROSSCHECK = "perf_analyzer"
POINTS = (("mlp", 1, 1), ("mlp", 1, 16), ("mlp", 64, 16))
# How far the native client's infer/s may be from perf_analyzer's on ferroserve.
AGREEMENT = 0.10
# How far a client's infer/s may be from the server's own count over the same window.
COUNT_AGREEMENT = 0.03
# perf_analyzer's CPU over its run, as a share of the client's cores, from which it is taken
# to be the row's limit.
CLIENT_BOUND = 0.80
# Server cores' busy share (CPU per request x infer/s) from which the server is the limit, and
# how far the throughput ratio may then be from the inverse ratio of CPU per request.
SERVER_BOUND = 0.90
CPU_EXPLAINS = 0.05
QUICK_SETTINGS = LoadSettings(window_ms=1500, max_trials=6, stability_pct=30)
FULL_SETTINGS = LoadSettings(window_ms=2000, max_trials=10, stability_pct=20)
# perf_analyzer gives no figure when its last three windows never agree within its stability
# bound (seen on a noisy 2-core VM at 20%); such a row is measured once more with this bound,
# and its table cell says so. The row is still judged against the server's own count.
RETRY_STABILITY_PCT = 50
# How a passing row's cell says which rule it met (Agreement.reason).
PASS_REASONS = {
    "within": "PASS",
    "client-bound": "PASS: perf_analyzer client-bound",
    "server-bound": "PASS: server-bound, CPU per request explains it",
    "turnaround": "PASS: c=1, same server time per request, faster client turnaround",
}
ROWS = (
    Target("ferroserve (dynamic batching)", CROSSCHECK, FERROSERVE),
    Target("ferroserve (no batching)", CROSSCHECK, FERROSERVE, "{model}" + NO_BATCHING),
    Target("ferroserve stream (dynamic batching)", CROSSCHECK, FERROSERVE, streaming=True),
    Target("transport ceiling", CROSSCHECK, CEILING + "-{model}", runs_model=False),
)


def install(tools: Path, quick: bool, workdir: Path) -> Analyzer | str:
    """perf_analyzer ready to run, or why not (the rest of the benchmark runs regardless)."""
    settings = QUICK_SETTINGS if quick else FULL_SETTINGS
    try:
        return perf_analyzer(tools, BatchingPlan((), settings), workdir)
    except (OSError, IndexError, subprocess.SubprocessError) as error:
        return f"perf_analyzer could not be installed or run: {error}"


def measure(
    analyzer: Analyzer,
    native: Callable[[Target, str, int, int], Result],
    running: dict[str, Running],
    models: Sequence[str],
    server_cores: int = 1,
) -> list[Agreement]:
    """Every row at each point whose model this run measured: native client, perf_analyzer,
    native client, back to back. `native(target, model, rows, concurrency)` measures one row
    with the native client."""
    pairs = []
    for model, per_request, concurrency in POINTS:
        if model not in models:
            continue
        for target in ROWS:
            server = running.get(target.process_for(model, per_request))
            if server is None:
                continue
            native_row = replace(target, kind=OURS)
            counting: contextlib.AbstractContextManager[ServerCounts | None] = (
                ServerCounts(server.port, target.model_for(model))
                if target.runs_model  # the transport ceiling keeps no statistics
                else contextlib.nullcontext()
            )
            with counting as counted:
                before = native(native_row, model, per_request, concurrency)
                checked, busy = _analyzer_row(
                    analyzer, server, target, model, per_request, concurrency
                )
                after = native(native_row, model, per_request, concurrency)
            runs = (checked, before, after)
            served = tuple(None if counted is None else counted.rate(r) for r in runs)
            server_us = tuple(None if counted is None else counted.us_per_request(r) for r in runs)
            pairs.append(Agreement(checked, (before, after), served, busy, server_cores, server_us))
            print(f"perf_analyzer {model} rows={per_request} c={concurrency} {target.label}: "
                  f"ratio {pair_text(pairs[-1])}", file=sys.stderr)  # fmt: skip
    return pairs


def _analyzer_row(
    analyzer: Analyzer,
    server: Running,
    target: Target,
    model: str,
    per_request: int,
    concurrency: int,
) -> tuple[Result, float | None]:
    """perf_analyzer's figure for one row, with the server tree's CPU per request, and how
    busy perf_analyzer kept the client's cores over its run (its CPU time over the run's wall
    time; 1.0 = all of them)."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with CpuSampler(server.pid) as cpu:
        run = analyzer.measure(
            server.port, target.model_for(model), concurrency, per_request, target.streaming
        )
        retried = run.measurement is None and "stable" in run.error
        if retried:
            settings = replace(analyzer.settings, stability_pct=RETRY_STABILITY_PCT)
            print(f"perf_analyzer {target.label} c={concurrency}: {run.error}; once more at "
                  f"{RETRY_STABILITY_PCT}% stability", file=sys.stderr)  # fmt: skip
            run = analyzer.measure(
                server.port,
                target.model_for(model),
                concurrency,
                per_request,
                target.streaming,
                settings=settings,
            )
    wall_s = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    busy = client_s / wall_s / len(os.sched_getaffinity(0)) if wall_s > 0 else None
    m = run.measurement
    if m is None:
        return Result(target, model, per_request, concurrency, None, error=run.error), busy
    # perf_analyzer's infer/s counts rows; the tables count requests (its `inferences`, read
    # from the profile export, already count requests).
    m = replace(m, infer_per_s=m.infer_per_s / per_request)
    cpu_us = None
    with contextlib.suppress(ValueError):
        cpu_us = cpu.cpu_s_between(m.start_ns, m.end_ns) * 1e6 / max(1, m.inferences)
    label = f"{target.label} (second try, {RETRY_STABILITY_PCT}% stability)"
    checked = replace(target, label=label) if retried else target
    return Result(checked, model, per_request, concurrency, m, cpu_us), busy


class ServerCounts:
    """The server's own statistics of `model`'s successful requests (ModelStatistics, summed
    over versions), sampled every 100 ms while the block runs: how many it served and the time
    it spent on them (receipt to answer) over any client's window, whatever the client
    reports."""

    def __init__(self, port: int, model: str) -> None:
        self._channel = grpc.insecure_channel(f"{HOST}:{port}")
        stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        request = service_pb2.ModelStatisticsRequest(name=model)

        def success() -> list[service_pb2.StatisticDuration]:
            answer = stub.ModelStatistics(request, timeout=5)
            return [s.inference_stats.success for s in answer.model_stats]

        self.served = Sampler(lambda: float(sum(d.count for d in success())), period_s=0.1)
        self.success_ns = Sampler(lambda: float(sum(d.ns for d in success())), period_s=0.1)

    def __enter__(self) -> ServerCounts:
        self.served.__enter__()
        self.success_ns.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.__exit__(None, None, None)
        self.success_ns.__exit__(None, None, None)
        self._channel.close()

    def rate(self, run: Result) -> float | None:
        """Requests per second the server counted over `run`'s window, if known."""
        window = _window(run)
        served = self._growth(self.served, window)
        if window is None or served is None:
            return None
        return served / ((window[1] - window[0]) / 1e9)

    def us_per_request(self, run: Result) -> float | None:
        """The server's mean time per request over `run`'s window (µs), if known."""
        window = _window(run)
        served = self._growth(self.served, window)
        spent_ns = self._growth(self.success_ns, window)
        if served is None or spent_ns is None or served <= 0:
            return None
        return spent_ns / served / 1e3

    @staticmethod
    def _growth(sampler: Sampler, window: tuple[int, int] | None) -> float | None:
        if window is None:
            return None
        try:
            return sampler.growth_between(*window)
        except (ValueError, IndexError):
            return None


def _window(run: Result) -> tuple[int, int] | None:
    m = run.measurement
    if m is None or m.end_ns <= m.start_ns:
        return None
    return m.start_ns, m.end_ns


@dataclass(frozen=True, slots=True)
class Agreement:
    """One row measured by perf_analyzer and, just before and after, by the native client,
    with the server's own count over each of the three windows (perf_analyzer's first) and
    how busy perf_analyzer kept the client's cores."""

    analyzer: Result
    native: tuple[Result, Result]
    served: tuple[float | None, ...] = ()
    analyzer_busy: float | None = None
    server_cores: int = 1
    # The server's own time per request (µs, ModelStatistics) over each window, in `served`'s
    # order.
    server_us: tuple[float | None, ...] = ()

    @property
    def native_infer_per_s(self) -> float | None:
        rates = [r.measurement.infer_per_s for r in self.native if r.measurement is not None]
        return sum(rates) / len(rates) if len(rates) == len(self.native) else None

    @property
    def ratio(self) -> float | None:
        """Native client's infer/s (mean of its two runs) over perf_analyzer's."""
        native = self.native_infer_per_s
        if native is None or self.analyzer.measurement is None:
            return None
        return native / self.analyzer.measurement.infer_per_s

    @property
    def count_errors(self) -> list[float]:
        """Per window (perf_analyzer's, then the native client's two): the client's infer/s
        over the server's own count, minus 1; windows without a server count are left out."""
        runs = (self.analyzer, *self.native)
        errors = []
        for run, served in zip(runs, self.served, strict=False):
            if run.measurement is not None and served:
                errors.append(run.measurement.infer_per_s / served - 1)
        return errors

    @property
    def counted_honestly(self) -> bool:
        return all(abs(error) <= COUNT_AGREEMENT for error in self.count_errors)

    @property
    def analyzer_bound(self) -> bool:
        """perf_analyzer kept the client's cores busy enough to be the row's limit."""
        return self.analyzer_busy is not None and self.analyzer_busy >= CLIENT_BOUND

    @property
    def server_bound(self) -> bool:
        """The server's cores were busy under both clients, and the throughput ratio is the
        inverse of the ratio of the server's CPU per request under them."""
        ratio = self.ratio
        cpu: list[float] = []
        for run in (self.analyzer, *self.native):
            if run.measurement is None or run.cpu_us_per_request is None:
                return False
            busy = run.cpu_us_per_request * run.measurement.infer_per_s / 1e6
            if busy / self.server_cores < SERVER_BOUND:
                return False
            cpu.append(run.cpu_us_per_request)
        native_cpu = (cpu[1] + cpu[2]) / 2
        return ratio is not None and abs(ratio * native_cpu / cpu[0] - 1) <= CPU_EXPLAINS

    @property
    def turnaround_bound(self) -> bool:
        """A c=1 row where the native client reads higher while the server spent the same time
        per request under both clients (within AGREEMENT): the difference is the clients' own
        turnaround between an answer and the next request."""
        ratio = self.ratio
        if self.analyzer.concurrency != 1 or ratio is None or ratio <= 1:
            return False
        times = self.server_us
        if len(times) != 3 or any(t is None for t in times):
            return False
        analyzer_us, before_us, after_us = (t or 0.0 for t in times)
        return analyzer_us > 0 and abs((before_us + after_us) / 2 / analyzer_us - 1) <= AGREEMENT

    @property
    def reason(self) -> str | None:
        """The first pass rule the row meets (a key of PASS_REASONS), or None: it fails."""
        ratio = self.ratio
        if ratio is None or not self.counted_honestly:
            return None
        if abs(ratio - 1) <= AGREEMENT:
            return "within"
        if ratio > 1 and self.analyzer_bound:
            return "client-bound"
        if self.server_bound:
            return "server-bound"
        if self.turnaround_bound:
            return "turnaround"
        return None

    @property
    def passed(self) -> bool:
        return self.reason is not None

    @property
    def decides(self) -> bool:
        """ferroserve's unary rows decide the validation. The Python ceiling and the stream
        rows are shown for information: perf_analyzer's streaming costs ferroserve about twice
        the CPU per message that the native client's does (65-71 vs 35-36 µs at MLP c=16, one
        core), so there the two clients measure different loads."""
        target = self.analyzer.target
        return target.label.startswith("ferroserve") and not target.streaming


def pair_text(pair: Agreement) -> str:
    ratio = pair.ratio
    if ratio is None:
        return "-"
    if not pair.decides:
        return f"{ratio:.2f} (info)"
    reason = pair.reason
    if reason is None:
        return f"{ratio:.2f} (FAIL)"
    return f"{ratio:.2f} ({PASS_REASONS[reason]})"


def verdict(pairs: Sequence[Agreement]) -> str:
    """One line: PASS when every deciding row (ferroserve, unary) agrees within AGREEMENT."""
    deciding = [pair for pair in pairs if pair.decides]
    ratios = [pair.ratio for pair in deciding if pair.ratio is not None]
    if not ratios:
        return "NOT MEASURED: no ferroserve row was measured by both clients"
    passed = sum(pair.passed for pair in deciding)
    reasons = Counter(pair.reason for pair in deciding)
    errors = [abs(e) for pair in deciding for e in pair.count_errors]
    honest = (
        f"both clients' figures within {max(errors):.1%} of the server's own count"
        if errors
        else "no server count"
    )
    outcome = "PASS" if passed == len(deciding) else "FAIL"
    return (
        f"{outcome}: native client vs perf_analyzer on ferroserve (unary), {passed} of "
        f"{len(deciding)} rows pass: {reasons['within']} within {AGREEMENT:.0%}, "
        f"{reasons['client-bound']} higher where "
        f"perf_analyzer was client-bound (>= {CLIENT_BOUND:.0%} of its core), "
        f"{reasons['server-bound']} server-bound with the difference in the "
        f"server's CPU per request, {reasons['turnaround']} at c=1 higher with the same server "
        f"time per request; infer/s ratio {min(ratios):.2f}-{max(ratios):.2f}; {honest}"
    )


def table(pairs: Sequence[Agreement]) -> list[str]:
    """perf_analyzer's figures beside the native client's two runs of the same row."""
    lines = [
        "| server | rows/req | c | perf_analyzer infer/s | p50 ms | p99 ms | server CPU µs/infer "
        "| perf_analyzer CPU | native client infer/s (before / after) | p50 ms | p99 ms "
        "| server CPU µs/infer | native client CPU | server-counted infer/s (pa / native) "
        "| server µs/request (pa / native) | native / perf_analyzer |",
        "|" + "---|" * 16,
    ]
    for pair in pairs:
        checked = pair.analyzer
        cells = [checked.target.label, str(checked.rows), str(checked.concurrency)]
        cells += _figures([checked])
        cells.append(_share(pair.analyzer_busy))
        cells += _figures(list(pair.native))
        busy = [r.client_busy for r in pair.native if r.client_busy is not None]
        cells.append(_share(sum(busy) / len(busy) if busy else None))
        cells.append(
            " / ".join("-" if rate is None else f"{rate:,.0f}" for rate in pair.served) or "-"
        )
        cells.append(
            " / ".join("-" if us is None else f"{us:,.0f}" for us in pair.server_us) or "-"
        )
        cells.append(pair_text(pair))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _figures(rows: list[Result]) -> list[str]:
    """infer/s (each run), p50, p99 and server CPU (the mean over the runs), or why none."""
    measured = [(r, r.measurement) for r in rows if r.measurement is not None]
    if len(measured) < len(rows):
        error = next(r.error for r in rows if r.measurement is None).replace("|", "/")[:120]
        return [f"failed: {error}", "", "", ""]
    cpu = [r.cpu_us_per_request for r, _ in measured if r.cpu_us_per_request is not None]
    return [
        " / ".join(f"{m.infer_per_s:,.0f}" for _, m in measured),
        f"{sum(m.p50_ms for _, m in measured) / len(measured):.2f}",
        f"{sum(m.p99_ms for _, m in measured) / len(measured):.2f}",
        f"{sum(cpu) / len(cpu):,.0f}" if cpu else "",
    ]


def _share(busy: float | None) -> str:
    return "" if busy is None else f"{busy:.0%}"
