"""Runs the peer benchmark: builds the load generator, prepares the peers' environments, starts
every server once (pinned to the server cores), then for each model, rows per request and
concurrency measures every row back to back with the native client, so compared figures are
seconds apart; perf_analyzer re-measures ferroserve to validate the client. Writes the report
and plots.

    python -m benches.peers [--quick] [--models mlp,...] [--out-dir docs/benchmarks] [--no-pin]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from measurement import MeasurementFailed
from server_process import CpuSampler, ServerFailed, process_tree_cpu_s, serving

from . import crosscheck, plots, profile, report, targets
from .inprocess import InProcess
from .load import NativeClient, build_loadgen, check_answer
from .models import MODELS, REPO_ROOT, write_models
from .resources import PeakRss
from .results import IN_PROCESS, Result
from .servers import (
    FERROSERVE,
    KSERVE,
    MLSERVER,
    Process,
    Running,
    Target,
    processes,
    table_rows,
)
from .venvs import KSERVE as KSERVE_ENV
from .venvs import MLSERVER as MLSERVER_ENV
from .venvs import prepare

IDLE_PROBE_S = 2.0
LOGS_DIR = REPO_ROOT / "bench-results" / "peers-logs"


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run measures and for how long (seconds of warm-up, then the measured window)."""

    name: str
    models: tuple[str, ...]
    concurrencies: tuple[int, ...]
    rows: tuple[int, ...]
    window_s: float
    warmup_s: float


FULL = Plan("", ("gemm", "mlp", "cnn"), (1, 4, 16, 64), (1, 64), 3.0, 1.0)
QUICK = Plan("--quick", ("gemm", "mlp", "cnn"), (1, 16), (1, 64), 1.5, 0.5)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benches.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="c in {1, 16}, 1.5 s windows")
    parser.add_argument(
        "--models",
        type=lambda text: tuple(text.split(",")),
        help=f"comma-separated subset of {','.join(MODELS)} (default: all)",
    )
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    parser.add_argument("--no-pin", action="store_true", help="client and servers share cores")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy on a missed target")
    parser.add_argument(
        "--no-crosscheck", action="store_true", help="skip the perf_analyzer validation"
    )
    parser.add_argument(
        "--tools",
        type=Path,
        default=Path("/work/shared/tools"),
        help="folder with transport_ceiling.py and get-perf-analyzer.sh",
    )
    return parser.parse_args(argv)


def choose_cores(no_pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """Client on the first core this process may use, servers on the rest; None when not
    pinning (asked, or a single core)."""
    allowed = sorted(os.sched_getaffinity(0))
    if no_pin or len(allowed) < 2:
        return None, None
    return {allowed[0]}, set(allowed[1:])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = choose_plan(args)
    if isinstance(plan, str):
        print(plan, file=sys.stderr)
        return 2
    started_at = time.time()
    # Before anything is measured: without the client there is no run.
    loadgen = build_loadgen()
    load_before = os.getloadavg()
    client_cores, server_cores = choose_cores(args.no_pin)
    if client_cores is not None:
        os.sched_setaffinity(0, client_cores)
    peers = {KSERVE: prepare(KSERVE_ENV), MLSERVER: prepare(MLSERVER_ENV)}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-peers-") as tmp:
        workdir = Path(tmp)
        onnx_files = write_models(workdir / "onnx")
        pin = ["taskset", "-c", ",".join(map(str, sorted(server_cores)))] if server_cores else []
        specs = processes(
            workdir, onnx_files, peers, args.tools, loadgen, (plan.models, plan.rows), pin, notes
        )
        with contextlib.ExitStack() as stack:
            running, start_errors = start_all(specs, stack, workdir)
            notes.append(idle_note(running))
            rows = table_rows({name for name, ready in peers.items() if ready.python is not None})
            client = NativeClient(loadgen, plan.window_s, plan.warmup_s)
            session = Session(plan, client, running, start_errors)
            results = session.measure_all(rows, InProcess(server_cores), onnx_files)
            server_count = len(server_cores) if server_cores else os.cpu_count() or 1
            checked = (
                []
                if args.no_crosscheck
                else validate(args, plan, workdir, session, server_count, notes)
            )
            verdicts = targets.verdicts(results, [pair.analyzer for pair in checked])
            profiles = []
            if not args.no_profile and any(not verdict.passed for verdict in verdicts):
                ferroserve = running.get(FERROSERVE)
                server = None if ferroserve is None else (ferroserve.pid, ferroserve.port)
                profiles = profile.missed_targets(verdicts, server, client, args.out_dir)
        notes += keep_logs(workdir)
    context = report.Context(
        plan_name=plan.name,
        quick=args.quick,
        window_s=plan.window_s,
        warmup_s=plan.warmup_s,
        client=client.description,
        client_cores=client_cores,
        server_cores=server_cores,
        peers=peers,
        load_before=load_before,
        load_after=os.getloadavg(),
        minutes=(time.time() - started_at) / 60,
        notes=notes,
        crosscheck=checked,
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    images = plots.write_all(results, plan.models, plan.rows, args.out_dir)
    text = report.render(results, verdicts, profiles, images, context)
    (args.out_dir / "peers.md").write_text(text)
    print(text)
    print(f"wrote {args.out_dir / 'peers.md'} and {len(images)} plots", file=sys.stderr)
    print(f"README headline: {targets.headline(results)}", file=sys.stderr)
    return 0


def choose_plan(args: argparse.Namespace) -> Plan | str:
    """The plan the flags ask for, or why there is none."""
    plan = QUICK if args.quick else FULL
    if not args.models:
        return plan
    unknown = set(args.models) - set(MODELS)
    if unknown:
        return f"unknown models: {', '.join(sorted(unknown))} (known: {', '.join(MODELS)})"
    flags = f"{plan.name} --models {','.join(args.models)}".strip()
    return replace(plan, name=flags, models=args.models)


def validate(
    args: argparse.Namespace,
    plan: Plan,
    workdir: Path,
    session: Session,
    server_cores: int,
    notes: list[str],
) -> list[crosscheck.Agreement]:
    """perf_analyzer's rows for the client validation, each between two native-client runs
    of the same row ([] with a note if perf_analyzer cannot run)."""
    analyzer = crosscheck.install(args.tools, args.quick, workdir)
    if isinstance(analyzer, str):
        notes.append(analyzer)
        return []
    pairs = crosscheck.measure(
        analyzer, session.measure, session.running, plan.models, server_cores
    )
    notes.append(f"Validation client: {analyzer.description}.")
    return pairs


def start_all(
    specs: Sequence[Process], stack: contextlib.ExitStack, workdir: Path
) -> tuple[dict[str, Running], dict[str, str]]:
    """Starts every process (in turn, each until ServerReady); a failure is kept, not raised."""
    running, errors = {}, {}
    for spec in specs:
        log_path = workdir / f"{spec.name}.log"
        try:
            pid = stack.enter_context(serving(spec.argv, spec.port, log_path, spec.env))
        except (ServerFailed, OSError) as error:
            errors[spec.name] = f"did not start: {error}"
            print(f"{spec.name} did not start: {error}", file=sys.stderr)
            continue
        running[spec.name] = Running(pid, spec.port)
        print(f"started {spec.name} (pid {pid}, port {spec.port})", file=sys.stderr)
    return running, errors


def keep_logs(workdir: Path) -> list[str]:
    """Copies the servers' logs out of the temporary folder (bench-results/ is git-ignored) and
    notes the inline-execution switches ferroserve logged, which change what its rows measure."""
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copyfile(log, LOGS_DIR / log.name)
    notes = [f"Server logs of this run: {LOGS_DIR.relative_to(REPO_ROOT)}/."]
    ferroserve_log = workdir / f"{FERROSERVE}.log"
    if ferroserve_log.exists():
        switches = [
            line.split(": ", 1)[-1]
            for line in ferroserve_log.read_text(errors="replace").splitlines()
            if "executor thread from now on" in line
        ]
        if switches:
            notes.append(
                "ferroserve switched models from inline execution to the executor thread "
                "during the run (one slow call is enough; on one shared core a preempted call "
                "counts): " + "; ".join(switches)
            )
    return notes


def idle_note(running: dict[str, Running]) -> str:
    """Every server stays up for the whole run: what each takes while the others are measured."""
    before = {name: process_tree_cpu_s(server.pid) for name, server in running.items()}
    time.sleep(IDLE_PROBE_S)
    shares = [
        f"{name} {100 * (process_tree_cpu_s(server.pid) - before[name]) / IDLE_PROBE_S:.1f}%"
        for name, server in running.items()
    ]
    return "All servers run for the whole benchmark; CPU of each while idle: " + (
        ", ".join(shares) + "."
    )


class Session:
    """The measuring loop over one set of running servers."""

    def __init__(
        self,
        plan: Plan,
        client: NativeClient,
        running: dict[str, Running],
        start_errors: dict[str, str],
    ) -> None:
        self.plan = plan
        self.client = client
        self.running = running
        # process name -> why it is not running, shown in each of its rows
        self.start_errors = start_errors

    def measure_all(
        self, rows: Sequence[Target], inprocess: InProcess, onnx_files: dict[str, Path]
    ) -> list[Result]:
        results: list[Result] = []
        for model in self.plan.models:
            for rows_per_request in self.plan.rows:
                batch = MODELS[model].sample(rows_per_request)
                expected = inprocess.answer(onnx_files[model], batch)
                broken = {t.label: self._check(t, model, batch, expected) for t in rows}
                for concurrency in self.plan.concurrencies:
                    measurement, cpu_us = inprocess.measure(
                        onnx_files[model], batch, concurrency, self.plan.window_s,
                        self.plan.warmup_s,
                    )  # fmt: skip
                    point = (model, rows_per_request, concurrency)
                    results.append(Result(IN_PROCESS, *point, measurement, cpu_us))
                    for target in rows:
                        error = broken[target.label]
                        result = (
                            Result(target, *point, None, error=error)
                            if error
                            else self.measure(target, model, rows_per_request, concurrency)
                        )
                        results.append(result)
                        _progress(result)
        return results

    def _check(self, target: Target, model: str, batch: np.ndarray, expected: np.ndarray) -> str:
        """'' when the row can be measured, else why not (server down, wrong answer)."""
        process = target.process_for(model, batch.shape[0])
        if process not in self.running:
            return self.start_errors.get(process, f"{process} is not running")
        if not target.runs_model:
            return ""
        try:
            check_answer(
                self.running[process].port,
                target.model_for(model),
                batch,
                expected,
                target.streaming,
            )
        except MeasurementFailed as error:
            print(f"{target.label} {model}: {error}", file=sys.stderr)
            return str(error)
        return ""

    def measure(self, target: Target, model: str, rows: int, concurrency: int) -> Result:
        """One row with the native client: its figure, the server tree's CPU per request over
        the window and its peak RSS."""
        server = self.running[target.process_for(model, rows)]
        try:
            with CpuSampler(server.pid) as cpu, PeakRss(server.pid) as rss:
                run = self.client.measure(
                    server.port,
                    target.model_for(model),
                    MODELS[model],
                    rows,
                    concurrency,
                    target.streaming,
                )
        except MeasurementFailed as error:
            return Result(target, model, rows, concurrency, None, error=str(error))
        measurement = run.measurement
        cpu_us = None
        # The client reads its window's wall-clock bounds inside its own lifetime, which the
        # samples span; should a clock step break that, the row keeps its other figures.
        with contextlib.suppress(ValueError):
            cpu_s = cpu.cpu_s_between(measurement.start_ns, measurement.end_ns)
            cpu_us = cpu_s * 1e6 / max(1, measurement.inferences)
        return Result(
            target, model, rows, concurrency, measurement, cpu_us, rss.peak_mib,
            client_busy=run.client_busy,
        )  # fmt: skip


def _progress(result: Result) -> None:
    m = result.measurement
    shown = f"{m.infer_per_s:.0f} infer/s p99 {m.p99_ms:.2f} ms" if m else result.error[:80]
    print(
        f"{result.model} rows={result.rows} c={result.concurrency} {result.target.label}: {shown}",
        file=sys.stderr,
    )
