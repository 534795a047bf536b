"""Request parameters and ordering on the native path (issue 13, point 3): what a `priority`
parameter and a `preserve_ordering` model cost on ferroserve's native front end, each against
the same load without them, in one run. One ferroserve serves the MLP [N,64] -> 256 -> 256 -> 10
batched four ways; `ferroserve-loadgen run` (perf_analyzer sends no request parameters over
gRPC) drives c=16 unary calls, the two sides of each pair alternated round by round (A B, then
B A) so drift of the machine hits both. Prints a markdown report with the targets as PASS/FAIL;
--out writes it too.

    python benches/request_parameters.py [--rounds N] [--window-s S] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from peers.load import Window, build_loadgen, measure_window
from report import publish
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher

CONCURRENCY = 16
# The targets: throughput with the feature / without, at c=16.
TARGET_PRIORITY = 0.90
TARGET_ORDERING = 0.85

CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }} ]
"""
MODELS = {
    # Two levels, the default the lower one: `priority: 1` moves a request up a level.
    "mlp_levels": "dynamic_batching { priority_levels: 2 default_priority_level: 2 }\n",
    "mlp_batched": "dynamic_batching { }\n",
    "mlp_ordered": "dynamic_batching { preserve_ordering: true }\n",
    "mlp_batched_x2": "dynamic_batching { }\ninstance_group [ { count: 2 kind: KIND_CPU } ]\n",
    "mlp_ordered_x2": (
        "dynamic_batching { preserve_ordering: true }\n"
        "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
    ),
}


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a pair: what the load generator sends."""

    label: str
    model: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pair:
    """Without the feature (`base`) against with it (`feature`), and the target ratio of their
    throughputs (None: reported, no target)."""

    name: str
    base: Side
    feature: Side
    target: float | None


PAIRS = (
    Pair(
        "priority",
        Side("no parameters", "mlp_levels"),
        Side("priority=1", "mlp_levels", ("priority=1",)),
        TARGET_PRIORITY,
    ),
    Pair(
        "priority + timeout",
        Side("no parameters", "mlp_levels"),
        Side("priority=1 timeout=5000000", "mlp_levels", ("priority=1", "timeout=5000000")),
        None,
    ),
    Pair(
        "preserve_ordering",
        Side("mlp_batched", "mlp_batched"),
        Side("mlp_ordered", "mlp_ordered"),
        TARGET_ORDERING,
    ),
    Pair(
        "preserve_ordering, 2 instances",
        Side("mlp_batched_x2", "mlp_batched_x2"),
        Side("mlp_ordered_x2", "mlp_ordered_x2"),
        None,
    ),
)


@dataclass(frozen=True, slots=True)
class Result:
    """One measured window of one side."""

    pair: str
    side: Side
    round: int
    infer_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_request: float


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per pair [3]")
    parser.add_argument("--window-s", type=float, default=3.0, help="measured window [3]")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="load before it [1]")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def write_repository(root: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    for name, tail in MODELS.items():
        (root / name).mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CONFIG.format(name=name) + tail)
        save(mlp_model(), root / name / "1" / "model.onnx")


def measure(
    binary: Path, port: int, side: Side, args: argparse.Namespace, cpu: CpuSampler
) -> Window:
    """One window of `side` at c=16."""
    flags = [
        "--concurrency",
        str(CONCURRENCY),
        *(flag for parameter in side.parameters for flag in ("--parameter", parameter)),
    ]
    return measure_window(binary, port, side.model, flags, (args.warmup_s, args.window_s), cpu)


def measure_all(
    repository: Path, workdir: Path, args: argparse.Namespace, notes: list[str]
) -> list[Result]:
    # Built every run (a no-op when fresh): an older binary may lack `--parameter`.
    binary = build_loadgen()
    port, metrics_port = free_port(), free_port()
    launcher, env = ferroserve_launcher(notes)
    argv = [*launcher, "serve", "--model-repository", str(repository), "--grpc-port", str(port),
            "--metrics-port", str(metrics_port), "--host", HOST, "--uvloop"]  # fmt: skip
    results = []
    with contextlib.ExitStack() as stack:
        pid = stack.enter_context(serving(argv, port, workdir / "ferroserve.log", env))
        cpu = stack.enter_context(CpuSampler(pid))
        for pair in PAIRS:
            for round_ in range(args.rounds):
                # A B, then B A: a machine that drifts during the pair hits both sides alike.
                sides = (pair.base, pair.feature) if round_ % 2 == 0 else (pair.feature, pair.base)
                for side in sides:
                    w = measure(binary, port, side, args, cpu)
                    results.append(
                        Result(
                            pair.name,
                            side,
                            round_,
                            w.infer_per_s,
                            w.p50_ms,
                            w.p99_ms,
                            w.server_us_per_request,
                        )
                    )
                    print(f"measured {pair.name} / {side.label} round {round_}: "
                          f"{w.infer_per_s:.0f}/s", file=sys.stderr)  # fmt: skip
    return results


def table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| pair | side | round | infer/s | p50 ms | p99 ms | server µs/request |",
        "|" + "---|" * 7,
    ]
    for r in results:
        lines.append(
            f"| {r.pair} | {r.side.label} | {r.round + 1} | {r.infer_per_s:.0f} | "
            f"{r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.server_us_per_request:.1f} |"
        )
    return lines


def ratios(results: Sequence[Result], pair: Pair) -> list[float]:
    """Per round: the feature side's throughput over the base side's."""
    by_round: dict[int, dict[Side, float]] = {}
    for r in results:
        if r.pair == pair.name:
            by_round.setdefault(r.round, {})[r.side] = r.infer_per_s
    return [sides[pair.feature] / sides[pair.base] for _, sides in sorted(by_round.items())]


def summary(results: Sequence[Result]) -> list[str]:
    lines = [
        "| pair | base infer/s (median) | with infer/s (median) | ratio per round | "
        "median ratio | server µs/request base / with |",
        "|" + "---|" * 6,
    ]
    verdicts = ["Targets (c=16, median of the per-round ratios):", ""]
    for pair in PAIRS:
        mine = [r for r in results if r.pair == pair.name]
        base = [r for r in mine if r.side == pair.base]
        feature = [r for r in mine if r.side == pair.feature]
        per_round = ratios(results, pair)
        median = statistics.median(per_round)
        cpu = (
            f"{statistics.median(r.server_us_per_request for r in base):.1f} / "
            f"{statistics.median(r.server_us_per_request for r in feature):.1f}"
        )
        lines.append(
            f"| {pair.name} | {statistics.median(r.infer_per_s for r in base):.0f} | "
            f"{statistics.median(r.infer_per_s for r in feature):.0f} | "
            + ", ".join(f"{ratio:.3f}" for ratio in per_round)
            + f" | {median:.3f} | {cpu} |"
        )
        if pair.target is not None:
            verdicts.append(
                f"- {'PASS' if median >= pair.target else 'FAIL'}: {pair.feature.label} within "
                f"{1 - pair.target:.0%} of {pair.base.label} ({pair.name}): {median:.3f}x"
            )
    return [*lines, "", *verdicts]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-parameters-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        try:
            results = measure_all(workdir / "repository", workdir, args, notes)
        except ServerFailed as error:
            print(f"the server failed to start: {error}", file=sys.stderr)
            return 1
    notes = [
        f"Client: ferroserve-loadgen run (benches/loadgen), unary ModelInfer, c={CONCURRENCY} "
        f"(one HTTP/2 connection per worker), 1 row of random FP32 per request, "
        f"{args.warmup_s:g} s warm-up then a {args.window_s:g} s window per row; client and "
        "server share the cores.",
        "Models: the MLP [N,64] -> 256 -> 256 -> 10, max_batch_size 64, `dynamic_batching` "
        "(delay 0); `mlp_levels` with `priority_levels: 2 default_priority_level: 2`; "
        "`mlp_ordered*` with `preserve_ordering: true`; `*_x2` with two CPU instances.",
        "server µs/request: CPU of the server process tree over the window / requests answered.",
        *notes,
    ]
    publish([table(results), summary(results)], notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
