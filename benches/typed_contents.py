"""Typed contents on the native path (issue 13): what a request whose inputs travel as typed
`contents` (`fp32_contents`, packed) costs against the same request with raw contents, and,
given a build from before typed contents were native (`--before-python`), the same requests
on both builds: typed ones natively vs forwarded to the Python server, and raw ones (the common
request, whose matcher changed) before vs after. Each round starts fresh servers (one per
build), then measures every side once in an order that alternates round by round;
`ferroserve-loadgen run --typed` drives c=16 unary calls of the batched MLP [N,64] -> 10 (one
row each; perf_analyzer sends raw contents only). Prints a markdown report; --out writes it.

    python benches/typed_contents.py [--before-python PATH] [--rounds N] [--out FILE]

A before build: `git worktree add /tmp/before <commit>`, `python -m venv /tmp/venv-before`,
`/tmp/venv-before/bin/pip install /tmp/before`, then `--before-python /tmp/venv-before/bin/python`.
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

from peers.load import Window, build_loadgen, measure_window
from report import publish
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher

CONCURRENCY = 16
AFTER = "after"
BEFORE = "before"
CONFIG = """name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 10 ] } ]
dynamic_batching { }
"""


@dataclass(frozen=True, slots=True)
class Side:
    """A build and the contents its requests carry."""

    build: str
    typed: bool

    @property
    def label(self) -> str:
        return f"{self.build}, {'typed' if self.typed else 'raw'}"


@dataclass(frozen=True, slots=True)
class Pair:
    """`side` against `base`: their throughput ratio per round."""

    name: str
    side: Side
    base: Side


PAIRS_AFTER = (Pair("typed vs raw (this build)", Side(AFTER, True), Side(AFTER, False)),)
PAIRS_BEFORE = (
    Pair("typed: native vs forwarded (before)", Side(AFTER, True), Side(BEFORE, True)),
    Pair("raw: after vs before", Side(AFTER, False), Side(BEFORE, False)),
)


@dataclass(frozen=True, slots=True)
class Result:
    side: Side
    round: int
    infer_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_request: float


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-python", type=Path, help="interpreter of the before build")
    parser.add_argument("--rounds", type=int, default=3, help="rounds [3]")
    parser.add_argument("--window-s", type=float, default=3.0, help="measured window [3]")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="load before it [1]")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def write_repository(root: Path) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    (root / "mlp").mkdir(parents=True)
    (root / "mlp" / "config.pbtxt").write_text(CONFIG)
    save(mlp_model(), root / "mlp" / "1" / "model.onnx")


def measure(
    binary: Path, port: int, typed: bool, args: argparse.Namespace, cpu: CpuSampler
) -> Window:
    """One window of the MLP at c=16, its inputs raw or typed."""
    flags = ["--concurrency", str(CONCURRENCY), *(["--typed"] if typed else [])]
    return measure_window(binary, port, "mlp", flags, (args.warmup_s, args.window_s), cpu)


def launchers(
    args: argparse.Namespace, notes: list[str]
) -> dict[str, tuple[list[str], dict[str, str]]]:
    after, env = ferroserve_launcher(notes)
    builds = {AFTER: (after, env)}
    if args.before_python is not None:
        builds[BEFORE] = ([str(args.before_python), "-m", "ferroserve"], {})
        core = subprocess.run(
            [str(args.before_python), "-c", "import ferroserve._core as c; print(c.__file__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        notes.append(f"before: {args.before_python} -m ferroserve; ferroserve._core from {core}.")
    return builds


def measure_all(
    repository: Path, workdir: Path, args: argparse.Namespace, notes: list[str]
) -> list[Result]:
    binary = build_loadgen()  # a no-op when fresh; an older binary may lack --typed
    builds = launchers(args, notes)
    sides = [Side(build, typed) for build in builds for typed in (False, True)]
    results = []
    for round_ in range(args.rounds):
        order = sides if round_ % 2 == 0 else sides[::-1]
        with contextlib.ExitStack() as stack:
            servers = {}
            for build, (launcher, env) in builds.items():
                port, metrics_port = free_port(), free_port()
                argv = [*launcher, "serve", "--model-repository", str(repository),
                        "--grpc-port", str(port), "--metrics-port", str(metrics_port),
                        "--host", HOST, "--uvloop"]  # fmt: skip
                log = workdir / f"{build}-{round_}.log"
                pid = stack.enter_context(serving(argv, port, log, env or None))
                servers[build] = (port, stack.enter_context(CpuSampler(pid)))
            for side in order:
                port, cpu = servers[side.build]
                w = measure(binary, port, side.typed, args, cpu)
                results.append(
                    Result(side, round_, w.infer_per_s, w.p50_ms, w.p99_ms, w.server_us_per_request)
                )
                print(f"round {round_}: {side.label}: {w.infer_per_s:.0f}/s", file=sys.stderr)
    return results


def table(results: Sequence[Result]) -> list[str]:
    lines = ["| side | round | infer/s | p50 ms | p99 ms | server µs/request |", "|" + "---|" * 6]
    for r in results:
        lines.append(
            f"| {r.side.label} | {r.round + 1} | {r.infer_per_s:.0f} | {r.p50_ms:.3f} | "
            f"{r.p99_ms:.3f} | {r.server_us_per_request:.1f} |"
        )
    return lines


def summary(results: Sequence[Result], pairs: Sequence[Pair]) -> list[str]:
    lines = [
        "| pair | side infer/s (median) | base infer/s (median) | ratio per round | "
        "median ratio | server µs/request side / base |",
        "|" + "---|" * 6,
    ]
    for pair in pairs:
        rate = {(r.side, r.round): r for r in results if r.side in (pair.side, pair.base)}
        rounds = sorted({r.round for r in results})
        per_round = [
            rate[(pair.side, n)].infer_per_s / rate[(pair.base, n)].infer_per_s for n in rounds
        ]

        def median(side: Side, field: str) -> float:
            return float(statistics.median(getattr(r, field) for r in results if r.side == side))

        lines.append(
            f"| {pair.name} | {median(pair.side, 'infer_per_s'):.0f} | "
            f"{median(pair.base, 'infer_per_s'):.0f} | "
            + ", ".join(f"{ratio:.3f}" for ratio in per_round)
            + f" | {statistics.median(per_round):.3f} | "
            f"{median(pair.side, 'server_us_per_request'):.1f} / "
            f"{median(pair.base, 'server_us_per_request'):.1f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-typed-") as tmp:
        workdir = Path(tmp)
        write_repository(workdir / "repository")
        try:
            results = measure_all(workdir / "repository", workdir, args, notes)
        except ServerFailed as error:
            print(f"a server failed to start: {error}", file=sys.stderr)
            return 1
    pairs = PAIRS_AFTER + (PAIRS_BEFORE if args.before_python else ())
    notes = [
        f"Client: ferroserve-loadgen run (benches/loadgen), unary ModelInfer, c={CONCURRENCY} "
        "(one HTTP/2 connection per worker), 1 row of 64 random FP32 per request (typed: "
        f"packed fp32_contents), {args.warmup_s:g} s warm-up then a {args.window_s:g} s window "
        "per row; client and servers share the cores; fresh servers every round.",
        "Model: the MLP [N,64] -> 256 -> 256 -> 10, max_batch_size 64, `dynamic_batching` "
        "(delay 0).",
        "server µs/request: CPU of the server process tree over the window / requests answered.",
        *notes,
    ]
    publish([table(results), summary(results, pairs)], notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
