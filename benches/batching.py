"""Dynamic batching benchmark: ferroserve with and without `dynamic_batching` beside the Python
gRPC transport ceiling (uvloop, as ferroserve runs), measured in one run with Triton's
perf_analyzer, the servers alternated row by row. Also reads the Rust batcher's criterion bench.
Prints a markdown report with the targets as PASS/FAIL; --out writes it too.

    python benches/batching.py [--quick] [--out FILE] [--skip-cargo] [--tools DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batching_load import Analyzer, Run
from load_client import LoadSettings
from report import publish
from server_process import HOST, ServerFailed, free_port, serving
from serving_core import PERF_ANALYZER_DIR, REPO_ROOT, SOURCE_TREE, ferroserve_launcher

# KServe's figure measured earlier on this machine type (MLP, unary, c=16): a reference the
# target is expressed against, not measured in this run.
KSERVE_C16 = 1050.0
TARGET_OF_KSERVE = 3.0
TARGET_OF_CEILING = 0.85
TARGET_P99_MS = 8.0
TARGET_STREAM = 5000.0
TARGET_WIDE = 1.5
TARGET_ROWS_OF_CEILING = 0.60
TARGET_BATCHER_US = 5.0
# Adjacent rows of the same server move by up to ~10% on this machine.
P50_NOISE = 1.10

CEILING = "ceiling"
FERROSERVE = "ferroserve"
ROWS_PER_REQUEST = 64

MODELS = {
    # name -> (hidden layers, config.pbtxt tail)
    "mlp": ((256, 256), ""),
    "mlp_batched": ((256, 256), "dynamic_batching { }\n"),
    "mlp_batched_x2": (
        (256, 256),
        "dynamic_batching { }\ninstance_group [ { count: 2 kind: KIND_CPU } ]\n",
    ),
    "mlp_wide": ((1024, 1024), ""),
    "mlp_wide_batched": ((1024, 1024), "dynamic_batching { }\n"),
}
CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }} ]
"""


@dataclass(frozen=True, slots=True)
class Plan:
    concurrencies: tuple[int, ...]
    load: LoadSettings


FULL = Plan((1, 4, 16, 64), LoadSettings(window_ms=2000, max_trials=10, stability_pct=20))
QUICK = Plan((1, 16), LoadSettings(window_ms=1000, max_trials=8, stability_pct=30))


@dataclass(frozen=True, slots=True)
class Row:
    group: str
    server: str
    model: str
    concurrency: int
    rows: int
    streaming: bool
    run: Run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, c in {1, 16}")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--skip-cargo", action="store_true", help="read criterion's last output")
    parser.add_argument("--tools", type=Path, default=Path("/work/shared/tools"))
    return parser.parse_args(argv)


def write_repository(root: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    for name, (hidden, tail) in MODELS.items():
        (root / name).mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CONFIG.format(name=name) + tail)
        save(mlp_model(hidden=hidden), root / name / "1" / "model.onnx")


def perf_analyzer(tools: Path, plan: Plan, workdir: Path) -> Analyzer:
    installed = subprocess.run(
        ["bash", str(tools / "get-perf-analyzer.sh"), str(PERF_ANALYZER_DIR)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return Analyzer(Path(installed.stdout.strip().splitlines()[-1]), plan.load, workdir)


# ----------------------------------------------------------------------------------------
# The Rust batcher's own cost (criterion)
# ----------------------------------------------------------------------------------------


def batcher_cost(skip_cargo: bool, notes: list[str]) -> dict[int, float]:
    """ns per request of submit -> next_batch -> split at batch sizes 1, 16, 64."""
    if not skip_cargo:
        try:
            done = subprocess.run(
                ["cargo", "bench", "-p", "ferroserve-batcher", "--bench", "queue", "--",
                 "--warm-up-time", "1", "--measurement-time", "3"],
                cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            table = re.findall(r"^\s*(\d+)\s+(\d+)\s*$", done.stdout, re.MULTILINE)
            if done.returncode == 0 and table:
                notes.append("Batcher: `cargo bench -p ferroserve-batcher --bench queue` this run.")
                return {int(size): float(ns) for size, ns in table}
            notes.append(f"cargo bench failed ({done.returncode}); using criterion's last output")
        except (OSError, subprocess.SubprocessError) as error:
            notes.append(f"cargo bench could not run ({error}); using criterion's last output")
    costs = {}
    for path in (REPO_ROOT / "target" / "criterion" / "submit_next_batch_split").glob(
        "batch_*/new/estimates.json"
    ):
        size = int(path.parent.parent.name.removeprefix("batch_"))
        costs[size] = json.loads(path.read_text())["mean"]["point_estimate"] / size
    if costs:
        notes.append("Batcher: criterion's latest estimates under target/criterion (mean).")
    return dict(sorted(costs.items()))


# ----------------------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------------------


def measure_all(
    tools: Path, repository: Path, analyzer: Analyzer, plan: Plan, workdir: Path, notes: list[str]
) -> list[Row]:
    ceiling_port, port, metrics_port = free_port(), free_port(), free_port()
    ceiling_argv = [sys.executable, str(tools / "transport_ceiling.py"), "--port",
                    str(ceiling_port), "--host", HOST, "--uvloop"]  # fmt: skip
    launcher, env = ferroserve_launcher(notes)
    argv = [*launcher, "serve", "--model-repository", str(repository), "--grpc-port", str(port),
            "--metrics-port", str(metrics_port), "--host", HOST, "--uvloop"]  # fmt: skip
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(serving(ceiling_argv, ceiling_port, workdir / "ceiling.log"))
        stack.enter_context(serving(argv, port, workdir / "ferroserve.log", env))

        def group(
            name: str,
            entries: Sequence[tuple[str, str]],
            concurrency: int,
            rows_per_request: int = 1,
            streaming: bool = False,
        ) -> None:
            # Every server of a group is measured back to back: compared rows are seconds apart.
            for server, model in entries:
                server_port = ceiling_port if server == CEILING else port
                run = analyzer.measure(server_port, model, concurrency, rows_per_request, streaming)
                rows.append(Row(name, server, model, concurrency, rows_per_request, streaming, run))
                print(f"measured {name} {server}/{model} c={concurrency}", file=sys.stderr)

        trio = [(CEILING, "mlp"), (FERROSERVE, "mlp"), (FERROSERVE, "mlp_batched")]
        for concurrency in plan.concurrencies:
            extra = [(FERROSERVE, "mlp_batched_x2")] if concurrency == 16 else []
            group("MLP unary", [*trio, *extra], concurrency)
        group("MLP streaming", trio, 16, streaming=True)
        wide = [(CEILING, "mlp"), (FERROSERVE, "mlp_wide"), (FERROSERVE, "mlp_wide_batched")]
        group("wide unary", wide, 16)
        group(f"{ROWS_PER_REQUEST} rows/request", trio, 16, rows_per_request=ROWS_PER_REQUEST)
    return rows


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------


def find(rows: Sequence[Row], group: str, server: str, model: str, c: int) -> Run | None:
    for row in rows:
        if (row.group, row.server, row.model, row.concurrency) == (group, server, model, c):
            return row.run if row.run.measurement is not None else None
    return None


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| group | server / model | c | rows/req | infer/s | p50 ms | p99 ms | mean batch "
        "| % of ceiling |",
        "|" + "---|" * 9,
    ]
    for row in rows:
        cells = [row.group, f"{row.server} / {row.model}", str(row.concurrency), str(row.rows)]
        m = row.run.measurement
        if m is None:
            cells += [f"failed: {row.run.error.replace('|', '/')}", "", "", "", ""]
        else:
            batch = "" if row.run.mean_batch is None else f"{row.run.mean_batch:.1f}"
            ceiling = find(rows, row.group, CEILING, "mlp", row.concurrency)
            share = "(ref)" if row.server == CEILING else "-"
            if row.server != CEILING and ceiling is not None and ceiling.measurement is not None:
                share = f"{100 * m.infer_per_s / ceiling.measurement.infer_per_s:.0f}%"
            cells += [f"{m.infer_per_s:.0f}", f"{m.p50_ms:.3f}", f"{m.p99_ms:.3f}", batch, share]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdict(goal: str, value: float | None, passed: bool, shown: str) -> str:
    if value is None:
        return f"- NOT MEASURED: {goal}"
    return f"- {'PASS' if passed else 'FAIL'}: {goal}: {shown}"


def rate(run: Run | None) -> float | None:
    return None if run is None or run.measurement is None else run.measurement.infer_per_s


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def targets(rows: Sequence[Row], batcher: dict[int, float]) -> list[str]:
    unary = "MLP unary"
    batched16 = find(rows, unary, FERROSERVE, "mlp_batched", 16)
    share16 = ratio(rate(batched16), rate(find(rows, unary, CEILING, "mlp", 16)))
    p99 = None if batched16 is None or batched16.measurement is None else batched16.measurement
    c1_batched = find(rows, unary, FERROSERVE, "mlp_batched", 1)
    c1_plain = find(rows, unary, FERROSERVE, "mlp", 1)
    p50s = (
        (c1_batched.measurement.p50_ms, c1_plain.measurement.p50_ms)
        if c1_batched and c1_plain and c1_batched.measurement and c1_plain.measurement
        else None
    )
    stream = rate(find(rows, "MLP streaming", FERROSERVE, "mlp_batched", 16))
    wide = ratio(
        rate(find(rows, "wide unary", FERROSERVE, "mlp_wide_batched", 16)),
        rate(find(rows, "wide unary", FERROSERVE, "mlp_wide", 16)),
    )
    big = f"{ROWS_PER_REQUEST} rows/request"
    rows_share = ratio(
        rate(find(rows, big, FERROSERVE, "mlp_batched", 16)),
        rate(find(rows, big, CEILING, "mlp", 16)),
    )
    worst_batcher = max(batcher.values()) / 1000 if batcher else None
    kserve = TARGET_OF_KSERVE * KSERVE_C16
    c16 = rate(batched16)
    return [
        "Targets:",
        "",
        verdict(
            f"batcher <= {TARGET_BATCHER_US:.0f} µs/request (criterion, worst batch size)",
            worst_batcher,
            worst_batcher is not None and worst_batcher <= TARGET_BATCHER_US,
            ", ".join(f"b{size}: {ns / 1000:.2f} µs" for size, ns in batcher.items()),
        ),
        verdict(
            f"MLP unary c=16 batched >= {TARGET_OF_CEILING:.0%} of the ceiling (this run)",
            share16,
            share16 is not None and share16 >= TARGET_OF_CEILING,
            f"{share16:.0%}" if share16 is not None else "",
        ),
        verdict(
            f"MLP unary c=16 batched >= {TARGET_OF_KSERVE:.0f} x {KSERVE_C16:.0f} = {kserve:.0f} "
            "infer/s (KServe measured earlier on this machine type; reference, not this run)",
            c16,
            c16 is not None and c16 >= kserve,
            f"{c16:.0f} infer/s" if c16 is not None else "",
        ),
        verdict(
            f"MLP unary c=16 batched p99 <= {TARGET_P99_MS:.0f} ms",
            None if p99 is None else p99.p99_ms,
            p99 is not None and p99.p99_ms <= TARGET_P99_MS,
            f"{p99.p99_ms:.2f} ms" if p99 is not None else "",
        ),
        verdict(
            "MLP unary c=1 p50 with batching not worse than without (within "
            f"{P50_NOISE - 1:.0%}, adjacent-row noise)",
            None if p50s is None else p50s[0],
            p50s is not None and p50s[0] <= P50_NOISE * p50s[1],
            f"{p50s[0]:.3f} ms vs {p50s[1]:.3f} ms" if p50s is not None else "",
        ),
        verdict(
            f"ModelStreamInfer c=16 batched >= {TARGET_STREAM:.0f} infer/s",
            stream,
            stream is not None and stream >= TARGET_STREAM,
            f"{stream:.0f} infer/s" if stream is not None else "",
        ),
        verdict(
            f"wide model c=16 batched >= {TARGET_WIDE}x unbatched",
            wide,
            wide is not None and wide >= TARGET_WIDE,
            f"{wide:.2f}x" if wide is not None else "",
        ),
        verdict(
            f"{ROWS_PER_REQUEST} rows/request c=16 rows/s >= {TARGET_ROWS_OF_CEILING:.0%} of the "
            "ceiling's",
            rows_share,
            rows_share is not None and rows_share >= TARGET_ROWS_OF_CEILING,
            f"{rows_share:.0%}" if rows_share is not None else "",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    notes: list[str] = []
    batcher = batcher_cost(args.skip_cargo, notes)
    with tempfile.TemporaryDirectory(prefix="ferroserve-batching-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        analyzer = perf_analyzer(args.tools, plan, workdir)
        try:
            rows = measure_all(args.tools, workdir / "repository", analyzer, plan, workdir, notes)
        except ServerFailed as error:
            print(f"a server failed to start: {error}", file=sys.stderr)
            return 1
    notes = [
        f"Client: {analyzer.description}; `-x 1`, random FP32 input; {plan.load.window_ms} ms "
        f"windows, stable within {plan.load.stability_pct}%. Client and servers share the cores.",
        "ceiling: transport_ceiling.py on uvloop (decode, canned reply, no model); the same "
        "request and response sizes as every model here (64 -> 10 FP32 per row).",
        "mean batch: ModelStatistics inference_count / execution_count over the whole "
        "perf_analyzer run (its unstable trials included).",
        "Models: MLP [N,64] -> 256 -> 256 -> 10 (`mlp*`), wide 64 -> 1024 -> 1024 -> 10 "
        "(`mlp_wide*`); max_batch_size 64; `*_batched` add `dynamic_batching { }` (delay 0), "
        "`mlp_batched_x2` also `instance_group [ { count: 2 kind: KIND_CPU } ]`.",
        *notes,
    ]
    batcher_lines = [
        "Batcher (submit -> next_batch -> split, no model), ns per request: "
        + ", ".join(f"batch {size}: {ns:.0f}" for size, ns in batcher.items())
    ]
    publish([table(rows), batcher_lines, targets(rows, batcher)], notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
