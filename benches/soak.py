"""Soak (issue 17; not run by CI): `ferroserve serve` under mixed traffic for `--duration`
seconds (default 10 minutes), with explicit model control and the metrics sidecar on:

- good clients: unary ModelInfer at a steady rate on every model, one ModelStreamInfer stream;
- hostile clients in a cycle (benches/soak_abuse.py): garbage bytes, a message prefix declaring
  4 GiB, one declaring half the limit then silence, a stream that never reads, 300 idle
  connections, malformed protobuf, a gzip bomb, wrong shapes and datatypes, unknown models;
- one model unloaded and loaded again every `--reload-every-s`; its clients' codes counted apart;
- Prometheus scrapes of the sidecar every second; the sidecar SIGKILLed at 1/3 of the run.

Prints one markdown row per `--interval` (codes, p50/p99, bad-client outcomes, the server's
process-tree RSS and open fds, scrapes) and a verdict: RSS growth and p99 drift from the first
interval to the last, UNKNOWN or unanswered calls anywhere (none allowed), whether the good
clients of the models never reloaded saw only OK, when /metrics answered again.

    python benches/soak.py [--duration S] [--interval S] [--seed N] [--rate R] [--out FILE]
                           [--no-reload] [--no-abuse] [--abuse NAME] [--abuse-pause-s S]

Run with `nice -n 19` on a shared machine; docs/security.md "Soak" has a run's figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from report import publish
from server_process import HOST, free_port, serving
from serving_core import SOURCE_TREE, ferroserve_launcher
from soak_abuse import Abuser
from soak_report import Sample, sample_tree, sections
from soak_traffic import (
    GOOD,
    RELOADED,
    ModelSpec,
    Recorder,
    SidecarKill,
    StreamClient,
    kill_sidecar_at,
    reload_cycle,
    scraper,
    unary_client,
)

MAX_MESSAGE_BYTES = 8 << 20
MLP = ModelSpec("mlp", 64)
TINY = ModelSpec("tiny", 4)
CYCLED = ModelSpec("cycled", 4)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds [600]")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per row [30]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and garbage [0]")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s per good client [20]")
    parser.add_argument("--reload-every-s", type=float, default=20.0, help="unload/load [20]")
    parser.add_argument("--no-reload", action="store_true", help="no unload/load cycle")
    parser.add_argument("--no-abuse", action="store_true", help="no hostile clients")
    parser.add_argument(
        "--abuse", action="append", default=[], help="only hostile clients whose name has this"
    )
    parser.add_argument(
        "--abuse-pause-s", type=float, default=0.5, help="between two hostile clients [0.5]"
    )
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def config(model: ModelSpec, outputs: int) -> str:
    return f"""name: "{model.name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ {model.inputs} ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ {outputs} ] }} ]
dynamic_batching {{ }}
"""


def write_repository(root: Path, seed: int) -> None:
    """The MLP 64 -> 256 -> 256 -> 10 of the other benches and two tiny MLPs 4 -> 8 -> 2."""
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    models = [
        (MLP, mlp_model(seed=seed), 10),
        (TINY, mlp_model(4, (8,), 2, seed=seed + 1), 2),
        (CYCLED, mlp_model(4, (8,), 2, seed=seed + 2), 2),
    ]
    for spec, model, outputs in models:
        save(model, root / spec.name / "1" / "model.onnx")
        (root / spec.name / "config.pbtxt").write_text(config(spec, outputs))


def server_argv(launcher: list[str], repository: Path, port: int, metrics_port: int) -> list[str]:
    return [
        *launcher, "serve", "--model-repository", str(repository), "--host", HOST,
        "--grpc-port", str(port), "--metrics-port", str(metrics_port),
        "--model-control-mode", "explicit", "--load-model", "*",
        "--grpc-max-message-bytes", str(MAX_MESSAGE_BYTES),
    ]  # fmt: skip


class TreeSampler:
    """The server's process-tree RSS and open fds every `period_s`."""

    def __init__(self, recorder: Recorder, pid: int, period_s: float = 2.0) -> None:
        self.samples: list[Sample] = []
        self._recorder, self._pid, self._period_s = recorder, pid, period_s

    def run(self) -> None:
        while True:
            self.samples.append(sample_tree(self._pid, self._recorder.now_s()))
            if self._recorder.stop.wait(self._period_s):
                return


def traffic(
    recorder: Recorder, args: argparse.Namespace, port: int, metrics_port: int, pid: int
) -> tuple[list[Callable[[], None]], SidecarKill, TreeSampler]:
    """Every thread of the run: the clients, the reload cycle, scrapes, the kill, sampling."""
    address = f"{HOST}:{port}"
    kill = SidecarKill()
    sampler = TreeSampler(recorder, pid)
    abuser = Abuser(HOST, port, MLP.name, MAX_MESSAGE_BYTES, args.seed)
    stream = StreamClient(recorder, address, MLP, args.rate)
    url = f"http://{HOST}:{metrics_port}/metrics"
    workers: list[Callable[[], None]] = [
        lambda: unary_client(recorder, address, MLP, GOOD, args.rate),
        lambda: unary_client(recorder, address, MLP, GOOD, args.rate),
        lambda: unary_client(recorder, address, TINY, GOOD, args.rate),
        lambda: unary_client(recorder, address, CYCLED, RELOADED, args.rate),
        stream.run,
        *(
            []
            if args.no_abuse
            else [lambda: abuser.cycle(recorder, args.abuse, args.abuse_pause_s)]
        ),
        *([] if args.no_reload else [reload_cycle_of(recorder, address, args.reload_every_s)]),
        lambda: scraper(recorder, url),
        lambda: kill_sidecar_at(recorder, pid, args.duration / 3, kill),
        sampler.run,
    ]
    return workers, kill, sampler


def reload_cycle_of(recorder: Recorder, address: str, every_s: float) -> Callable[[], None]:
    return lambda: reload_cycle(recorder, address, CYCLED.name, every_s)


@dataclass(frozen=True, slots=True)
class Run:
    """What a run recorded."""

    recorder: Recorder
    kill: SidecarKill
    sampler: TreeSampler
    notes: list[str]


def run(args: argparse.Namespace, workdir: Path) -> Run:
    repository = workdir / "models"
    write_repository(repository, args.seed)
    notes: list[str] = []
    launcher, env = ferroserve_launcher(notes)
    port, metrics_port = free_port(), free_port()
    argv = server_argv(launcher, repository, port, metrics_port)
    with serving(argv, port, workdir / "server.log", env) as pid:
        recorder = Recorder()
        workers, kill, sampler = traffic(recorder, args, port, metrics_port, pid)
        threads = [threading.Thread(target=work, daemon=True) for work in workers]
        for thread in threads:
            thread.start()
        recorder.run_for(args.duration)
        recorder.stop.set()
        for thread in threads:
            thread.join(timeout=90.0)
        if any(thread.is_alive() for thread in threads):
            print("warning: a client thread did not finish within 90 s", file=sys.stderr)
    return Run(recorder, kill, sampler, notes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        done = run(args, Path(tmp))
        recorder = done.recorder
        tables, verdict_passed, notes = sections(
            recorder.events(), done.sampler.samples, done.kill, args.interval, recorder.stalls
        )
        command = " ".join(
            ["python benches/soak.py", *(argv if argv is not None else sys.argv[1:])]
        )
        publish(tables, [f"command: `{command}`", *done.notes, *notes], args.out)
    return 0 if verdict_passed else 1


if __name__ == "__main__":
    sys.exit(main())
