"""GPU benchmark: the MLP [N,64] -> 256 -> 256 -> 10 and a small CNN [N,3,64,64] -> 10 on
KIND_GPU instances, with and without dynamic batching, measured with Triton's perf_analyzer at
several concurrencies against one ferroserve server; beside each native-engine row the same
model on onnxruntime's Python binding (`native_engine: "false"`, the path GPU models took
before), so the ratio is measured in one run. Prints a markdown table; --out writes it too.

    python benches/gpu.py [--quick] [--out FILE] [--perf-analyzer PATH] [--gpu 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import server_process
from ferroserve.demo import mlp_model
from load_client import LoadSettings, PerfAnalyzer
from measurement import Measurement, MeasurementFailed
from peers.models import cnn_model
from report import machine_description
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving

REPO_ROOT = Path(__file__).resolve().parents[1]
NATIVE, BINDING = "native engine", "Python binding"


@dataclass(frozen=True, slots=True)
class Variant:
    """One served model: which network, batched or not, on which engine."""

    network: str
    batching: bool
    engine: str

    @property
    def name(self) -> str:
        engine = "" if self.engine == NATIVE else "_binding"
        return f"{self.network}{'' if self.batching else '_nobatch'}{engine}"


NETWORKS = {
    # name: (model, input dims, output dims)
    "mlp": (mlp_model, "64", "10"),
    "cnn": (cnn_model, "3, 64, 64", "10"),
}
CONFIG = """name: "{name}"
max_batch_size: 64
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ {inputs} ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ {outputs} ] }} ]
instance_group [ {{ kind: KIND_GPU count: 1 gpus: [ {gpu} ] }} ]
{batching}
{engine}
{fallback}
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 s windows, fewer trials")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument("--gpu", type=int, default=0, help="the GPU the models run on")
    parser.add_argument(
        "--perf-analyzer", type=Path, default=REPO_ROOT / ".perf_analyzer" / "perf_analyzer"
    )
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated")
    parser.add_argument(
        "--allow-cpu-fallback",
        action="store_true",
        help="let models run on the CPU where CUDA cannot start (to try the script without a GPU)",
    )
    parser.add_argument(
        "--binding-concurrency",
        default="16,64",
        help="concurrencies at which the Python-binding rows are measured too ('' for none)",
    )
    return parser.parse_args(argv)


def write_repository(
    root: Path, variants: Sequence[Variant], gpu: int, allow_cpu_fallback: bool
) -> None:
    for variant in variants:
        build, inputs, outputs = NETWORKS[variant.network]
        folder = root / variant.name
        (folder / "1").mkdir(parents=True)
        model: onnx.ModelProto = build()
        onnx.save(model, str(folder / "1" / "model.onnx"))
        engine = (
            ""
            if variant.engine == NATIVE
            else 'parameters { key: "native_engine" value: { string_value: "false" } }'
        )
        (folder / "config.pbtxt").write_text(
            CONFIG.format(
                name=variant.name,
                inputs=inputs,
                outputs=outputs,
                gpu=gpu,
                batching="dynamic_batching { }" if variant.batching else "",
                engine=engine,
                fallback='parameters { key: "allow_cpu_fallback" value: { string_value: "true" } }'
                if allow_cpu_fallback
                else "",
            )
        )


@dataclass(frozen=True, slots=True)
class Row:
    variant: Variant
    concurrency: int
    measurement: Measurement | None
    cpu_us: float | None
    error: str = ""


def measure(variant: Variant, concurrency: int, port: int, pid: int, client: PerfAnalyzer) -> Row:
    try:
        with CpuSampler(pid) as sampler:
            measurement = client.measure(port, concurrency, streaming=False)
    except MeasurementFailed as error:
        return Row(variant, concurrency, None, None, str(error))
    cpu_s = sampler.cpu_s_between(measurement.start_ns, measurement.end_ns)
    return Row(variant, concurrency, measurement, cpu_s * 1e6 / max(measurement.inferences, 1))


def render(rows: Sequence[Row], notes: Sequence[str]) -> str:
    lines = [
        "| model | batching | engine | c | infer/s | p50 ms | p99 ms | server CPU µs/infer "
        "| native / binding |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    found = {(r.variant, r.concurrency): r for r in rows}
    for row in rows:
        v, m = row.variant, row.measurement
        if m is None:
            lines.append(
                f"| {v.network} | {'dynamic' if v.batching else 'none'} | {v.engine} "
                f"| {row.concurrency} | failed: {row.error} | | | | |"
            )
            continue
        ratio = ""
        if v.engine == NATIVE:
            other = found.get((Variant(v.network, v.batching, BINDING), row.concurrency))
            if other is not None and other.measurement is not None:
                ratio = f"{m.infer_per_s / other.measurement.infer_per_s:.2f}x"
        lines.append(
            f"| {v.network} | {'dynamic' if v.batching else 'none'} | {v.engine} "
            f"| {row.concurrency} | {m.infer_per_s:,.0f} | {m.p50_ms:.3f} | {m.p99_ms:.3f} "
            f"| {row.cpu_us:,.0f} | {ratio} |"
        )
    return "\n".join([*notes, "", *lines, ""])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    binding_at = {int(c) for c in args.binding_concurrency.split(",") if c}
    variants = [Variant(n, b, NATIVE) for n in NETWORKS for b in (True, False)]
    variants += [Variant(n, True, BINDING) for n in NETWORKS] if binding_at else []
    settings = (
        LoadSettings(window_ms=1000, max_trials=4, stability_pct=30)
        if args.quick
        else LoadSettings(window_ms=3000, max_trials=6, stability_pct=15)
    )
    notes = [*machine_description(), f"GPU {args.gpu}; perf_analyzer, batch 1 per request."]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-gpu-bench-") as tmp:
        work = Path(tmp)
        # GPU sessions on the Python binding warm up slowly (cuDNN's algorithm search per shape).
        server_process.READY_TIMEOUT_S = 120.0
        log = ""
        # One server per engine, so neither engine's GPU work runs beside the other's.
        for engine in (NATIVE, BINDING):
            served = [v for v in variants if v.engine == engine]
            if not served:
                continue
            root = work / engine.replace(" ", "-")
            write_repository(root, served, args.gpu, args.allow_cpu_fallback)
            port = free_port()
            argv = [
                sys.executable, "-m", "ferroserve", "serve", "--model-repository", str(root),
                "--grpc-port", str(port), "--host", HOST, "--no-allow-metrics",
            ]  # fmt: skip
            log_path = work / f"{root.name}.log"
            try:
                with serving(argv, port, log_path) as pid:
                    for variant in served:
                        client = PerfAnalyzer(args.perf_analyzer, settings, work, variant.name)
                        for concurrency in concurrencies:
                            if engine == BINDING and concurrency not in binding_at:
                                continue
                            rows.append(measure(variant, concurrency, port, pid, client))
                            print(
                                f"measured {variant.name} c={concurrency}",
                                file=sys.stderr,
                                flush=True,
                            )
                            if args.out is not None:  # what was measured survives a kill
                                args.out.write_text(render(rows, notes))
            except ServerFailed as error:
                rows.extend(Row(v, 0, None, None, f"server: {error}") for v in served)
                print(log_path.read_text(errors="replace"), file=sys.stderr)
            log += log_path.read_text(errors="replace")
    notes.append(
        "Server log: "
        + "; ".join(line.split(": ", 1)[-1] for line in log.splitlines() if "GPU(s)" in line)
    )
    text = render(rows, notes)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0 if all(row.measurement is not None for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
