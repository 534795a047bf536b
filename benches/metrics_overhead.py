"""Metrics cost benchmark: the batching benchmark's MLP models at concurrency 16 on two
ferroserve processes running side by side, one with metrics (snapshot every second, the sidecar,
and a scraper reading /metrics and /api/dashboard every second: 15x Prometheus' default rate)
and one with `--no-allow-metrics`. Every round starts both afresh (a process's placement on
the cores alone moves its throughput by several percent) and perf_analyzer alternates between
them, so each pair is measured seconds apart; the report gives the median on/off ratio of
throughput and of server CPU per inference, with the issue's target (cost under 2%) as
PASS/FAIL. The batcher's Rust atomics (ModelStatistics)
are always on and are in both figures.

    python benches/metrics_overhead.py [--quick] [--rounds N] [--out FILE] [--tools DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from batching import CONFIG, FULL, QUICK, Plan, perf_analyzer
from batching_load import Analyzer, Run
from report import machine_description
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher

TARGET_COST = 0.02
CONCURRENCY = 16
SCRAPE_PERIOD_S = 1.0
METRICS_PORT = free_port()
MODELS = {
    # name -> config.pbtxt tail
    "mlp_batched": "dynamic_batching { }\n",
    "mlp": "",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="on/off pairs per model")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--tools", type=Path, default=Path("/work/shared/tools"))
    return parser.parse_args(argv)


def write_repository(root: Path) -> None:
    sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    for name, tail in MODELS.items():
        (root / name).mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CONFIG.format(name=name) + tail)
        save(mlp_model(), root / name / "1" / "model.onnx")


@contextlib.contextmanager
def scraping(metrics_port: int) -> Iterator[list[int]]:
    """Reads /metrics and /api/dashboard every SCRAPE_PERIOD_S; yields [scrapes done]."""
    stop = threading.Event()
    done = [0]

    def loop() -> None:
        while not stop.wait(SCRAPE_PERIOD_S):
            with contextlib.suppress(OSError):
                for path in ("/metrics", "/api/dashboard"):
                    with urllib.request.urlopen(f"http://{HOST}:{metrics_port}{path}", timeout=5):
                        pass
                done[0] += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True, slots=True)
class Measured:
    run: Run
    cpu_us: float | None
    """CPU of the server's process tree (sidecar included) per inference."""

    @property
    def rate(self) -> float | None:
        return None if self.run.measurement is None else self.run.measurement.infer_per_s


def measure_one(analyzer: Analyzer, port: int, pid: int, model: str) -> Measured:
    with CpuSampler(pid) as sampler:
        run = analyzer.measure(port, model, CONCURRENCY)
    m = run.measurement
    if m is None or m.inferences == 0:
        return Measured(run, None)
    return Measured(run, sampler.cpu_s_between(m.start_ns, m.end_ns) * 1e6 / m.inferences)


def measure_round(
    analyzer: Analyzer, command: Callable[[str], list[str]], ports: dict[str, int],
    round_index: int, workdir: Path, env: dict[str, str], scrapes: list[int],
) -> dict[str, tuple[Measured, Measured]]:  # fmt: skip
    """Starts both servers afresh (in alternating order: a process's placement on the cores
    moves its throughput by several percent, so no server may keep a lucky one for the whole
    run), then measures each model on both, alternating which goes first."""
    names = ("on", "off") if round_index % 2 == 0 else ("off", "on")
    with contextlib.ExitStack() as stack:
        pids = {
            name: stack.enter_context(
                serving(command(name), ports[name], workdir / f"{name}-{round_index}.log", env)
            )
            for name in names
        }
        scraped = stack.enter_context(scraping(METRICS_PORT))
        result = {}
        for model in MODELS:
            runs = {n: measure_one(analyzer, ports[n], pids[n], model) for n in names}
            result[model] = (runs["on"], runs["off"])
            names = names[::-1]
    scrapes[0] += scraped[0]
    return result


def report(
    pairs: dict[str, list[tuple[Measured, Measured]]], scrapes: int, notes: list[str]
) -> str:
    lines = [
        *machine_description(),
        "",
        f"MLP [N,64] -> 256 -> 256 -> 10, one row per request, unary, c={CONCURRENCY}.",
        "",
        "| model | round | on infer/s | off infer/s | on/off | on CPU µs/infer "
        "| off CPU µs/infer | on p99 ms | off p99 ms |",
        "|" + "---|" * 9,
    ]
    verdicts = []
    for model, runs in pairs.items():
        ratios, cpu_ratios = [], []
        for index, (on, off) in enumerate(runs, 1):
            a, b = on.run.measurement, off.run.measurement
            if a is None or b is None or on.cpu_us is None or off.cpu_us is None:
                error = on.run.error or off.run.error
                lines.append(f"| {model} | {index} | failed: {error} |" + " |" * 6)
                continue
            ratios.append(a.infer_per_s / b.infer_per_s)
            cpu_ratios.append(on.cpu_us / off.cpu_us)
            lines.append(
                f"| {model} | {index} | {a.infer_per_s:.0f} | {b.infer_per_s:.0f} "
                f"| {ratios[-1]:.3f} | {on.cpu_us:.0f} | {off.cpu_us:.0f} "
                f"| {a.p99_ms:.2f} | {b.p99_ms:.2f} |"
            )
        if not ratios:
            verdicts.append(f"- NOT MEASURED: {model}")
            continue
        cost = 1 - statistics.median(ratios)
        cpu_cost = statistics.median(cpu_ratios) - 1
        verdicts.append(
            f"- {'PASS' if cost < TARGET_COST else 'FAIL'}: {model}: throughput cost "
            f"{100 * cost:+.1f}% (median of {len(ratios)} pairs, on/off range "
            f"{min(ratios):.3f}-{max(ratios):.3f}); target < {100 * TARGET_COST:.0f}%. "
            f"CPU per inference: {100 * cpu_cost:+.1f}% (median)"
        )
    lines += ["", "Target: throughput cost of metrics < 2%.", "", *verdicts, ""]
    notes.append(f"Scraper: /metrics and /api/dashboard every {SCRAPE_PERIOD_S:.0f} s "
                 f"({scrapes} rounds during the run).")  # fmt: skip
    notes.append("CPU: utime+stime of the server's process tree (the sidecar is a child of the "
                 "metrics-on server) over perf_analyzer's window, per inference.")  # fmt: skip
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan: Plan = QUICK if args.quick else FULL
    rounds = args.rounds or (2 if args.quick else 5)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-metrics-bench-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        analyzer = perf_analyzer(args.tools, plan, workdir)
        notes.append(f"Client: {analyzer.description.splitlines()[0]}.")
        launcher, env = ferroserve_launcher(notes)
        ports = {"on": free_port(), "off": free_port()}

        def command(name: str) -> list[str]:
            flags = (
                ["--metrics-port", str(METRICS_PORT)] if name == "on" else ["--no-allow-metrics"]
            )
            repository = str(workdir / "repository")
            port = str(ports[name])
            return [*launcher, "serve", "--model-repository", repository,
                    "--grpc-port", port, "--host", HOST, "--uvloop", *flags]  # fmt: skip

        pairs: dict[str, list[tuple[Measured, Measured]]] = {model: [] for model in MODELS}
        scrapes = [0]
        try:
            for round_index in range(rounds):
                measured = measure_round(
                    analyzer, command, ports, round_index, workdir, env, scrapes
                )
                for model, pair in measured.items():
                    pairs[model].append(pair)
                print(f"round {round_index + 1}/{rounds}", file=sys.stderr)
        except ServerFailed as error:
            print(f"server failed: {error}", file=sys.stderr)
            return 1
        text = report(pairs, scrapes[0], notes)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
