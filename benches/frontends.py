"""Front-end A/B (issue 13, point 4): the same build serving the MLP [N,64] -> 256 -> 256 -> 10
with `--frontend native` and `--frontend python`, both servers alive for the whole run, measured
with Triton's perf_analyzer (batch 1, unary) at c=1 and c=16, unbatched (`mlp`) and with
`dynamic_batching { }` (`mlp_batched`). The two sides of each row are alternated round by round
(A B, then B A) so drift of the machine hits both; the server's CPU per request comes from its
process tree. Prints a markdown report; --out writes it too.

    python benches/frontends.py [--rounds N] [--quick] [--out FILE] [--tools DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batching_load import Analyzer, Run
from load_client import LoadSettings
from report import machine_description
from server_process import HOST, CpuSampler, free_port, serving
from serving_core import PERF_ANALYZER_DIR, SOURCE_TREE, ferroserve_launcher

FRONTENDS = ("native", "python")
MODELS = {"mlp": "", "mlp_batched": "dynamic_batching { }\n"}
CONCURRENCIES = (1, 16)
CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }} ]
"""
FULL = LoadSettings(window_ms=2000, max_trials=10, stability_pct=20)
QUICK = LoadSettings(window_ms=1000, max_trials=8, stability_pct=30)


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured window of one front end."""

    frontend: str
    model: str
    concurrency: int
    run: Run
    cpu_us: float | None
    """Server CPU (process tree) per inference over the measured window."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per row (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 s windows instead of 2 s")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--tools", type=Path, default=Path("/work/shared/tools"))
    return parser.parse_args(argv)


def write_repository(root: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    for name, tail in MODELS.items():
        (root / name).mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CONFIG.format(name=name) + tail)
        save(mlp_model(), root / name / "1" / "model.onnx")


def measure(analyzer: Analyzer, port: int, pid: int, sample: tuple[str, str, int]) -> Sample:
    frontend, model, concurrency = sample
    with CpuSampler(pid) as sampler:
        run = analyzer.measure(port, model, concurrency)
    cpu_us = None
    if run.measurement is not None and run.measurement.inferences:
        m = run.measurement
        cpu_us = sampler.cpu_s_between(m.start_ns, m.end_ns) * 1e6 / m.inferences
    return Sample(frontend, model, concurrency, run, cpu_us)


def measure_all(
    repository: Path, analyzer: Analyzer, rounds: int, workdir: Path, notes: list[str]
) -> list[Sample]:
    launcher, env = ferroserve_launcher(notes)
    samples: list[Sample] = []
    with contextlib.ExitStack() as stack:
        servers = {}
        for frontend in FRONTENDS:
            port, metrics_port = free_port(), free_port()
            argv = [*launcher, "serve", "--model-repository", str(repository),
                    "--grpc-port", str(port), "--metrics-port", str(metrics_port),
                    "--host", HOST, "--uvloop", "--frontend", frontend]  # fmt: skip
            pid = stack.enter_context(serving(argv, port, workdir / f"{frontend}.log", env))
            servers[frontend] = (port, pid)
        for model in MODELS:
            for concurrency in CONCURRENCIES:
                for round_ in range(rounds):
                    order = FRONTENDS if round_ % 2 == 0 else FRONTENDS[::-1]
                    for frontend in order:
                        port, pid = servers[frontend]
                        samples.append(measure(analyzer, port, pid, (frontend, model, concurrency)))
                        print(f"measured {frontend} {model} c={concurrency}", file=sys.stderr)
    return samples


def span(values: Sequence[float], digits: int = 0) -> str:
    if not values:
        return "failed"
    low, high = min(values), max(values)
    return f"{low:,.{digits}f}" if low == high else f"{low:,.{digits}f}-{high:,.{digits}f}"


def table(samples: Sequence[Sample]) -> list[str]:
    lines = [
        "| model | c | front end | infer/s | p50 ms | p99 ms | server CPU µs/infer "
        "| native / python (median infer/s) |",
        "|" + "---|" * 8,
    ]
    for model in MODELS:
        for concurrency in CONCURRENCIES:
            medians = {}
            for frontend in FRONTENDS:
                runs = [
                    s
                    for s in samples
                    if (s.frontend, s.model, s.concurrency) == (frontend, model, concurrency)
                    and s.run.measurement is not None
                ]
                rates = [s.run.measurement.infer_per_s for s in runs if s.run.measurement]
                medians[frontend] = statistics.median(rates) if rates else None
                ratio = ""
                if frontend == FRONTENDS[-1] and all(medians.values()):
                    native, python = medians["native"], medians["python"]
                    assert native is not None and python is not None
                    ratio = f"{native / python:.2f}x"
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            model,
                            str(concurrency),
                            frontend,
                            span(rates),
                            span([s.run.measurement.p50_ms for s in runs if s.run.measurement], 3),
                            span([s.run.measurement.p99_ms for s in runs if s.run.measurement], 3),
                            span([s.cpu_us for s in runs if s.cpu_us is not None]),
                            ratio,
                        ]
                    )
                    + " |"
                )
    failures = [s for s in samples if s.run.measurement is None]
    for s in failures:
        lines.append(f"- failed: {s.frontend} {s.model} c={s.concurrency}: {s.run.error}")
    return lines


def perf_analyzer(tools: Path, settings: LoadSettings, workdir: Path) -> Analyzer:
    installed = subprocess.run(
        ["bash", str(tools / "get-perf-analyzer.sh"), str(PERF_ANALYZER_DIR)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return Analyzer(Path(installed.stdout.strip().splitlines()[-1]), settings, workdir)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-frontends-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        analyzer = perf_analyzer(args.tools, settings, workdir)
        samples = measure_all(workdir / "repository", analyzer, args.rounds, workdir, notes)
    notes = [
        f"Client: {analyzer.description}; `-x 1 -b 1`, random FP32 [1, 64], unary; "
        f"{settings.window_ms} ms windows, stable within {settings.stability_pct}%. Client and "
        "both servers share the cores; the idle server waits beside the measured one.",
        f"{args.rounds} rounds per row, the two front ends alternated (A B, B A, ...); ranges "
        "are min-max over the rounds.",
        "Server CPU: utime+stime of the server's process tree over the measured window, per "
        "inference.",
        *notes,
    ]
    text = "\n".join(
        [*machine_description(), "", *table(samples), "", *(f"- {n}" for n in notes), ""]
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
