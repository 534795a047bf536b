"""perf_analyzer runs for the batching benchmark: any model name, batch size (rows per request)
and mode, with the model's ModelStatistics read before and after so the mean executed batch
size of the run is known. Reuses load_client's CSV/profile-export reader."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import grpc
from load_client import LoadSettings, _read_perf_analyzer
from measurement import Measurement, MeasurementFailed
from server_process import HOST
from tritonclient.grpc import service_pb2, service_pb2_grpc


@dataclass(frozen=True, slots=True)
class Run:
    """One measured row: perf_analyzer's figure and, for ferroserve, the batches it formed."""

    measurement: Measurement | None
    mean_batch: float | None
    error: str = ""


def model_counts(port: int, model: str) -> tuple[int, int] | None:
    """(inference_count, execution_count) of `model` version 1, None if the server has no
    ModelStatistics (the transport ceiling)."""
    try:
        with grpc.insecure_channel(f"{HOST}:{port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            answer = stub.ModelStatistics(
                service_pb2.ModelStatisticsRequest(name=model, version="1"), timeout=5
            )
    except grpc.RpcError:
        return None
    (stats,) = answer.model_stats
    return int(stats.inference_count), int(stats.execution_count)


class Analyzer:
    """Triton's perf_analyzer with `-x 1`, random input, closed loop at one concurrency."""

    def __init__(self, binary: Path, settings: LoadSettings, workdir: Path) -> None:
        self._binary = binary
        self._settings = settings
        self._workdir = workdir
        probe = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, check=True
        )
        self.description = (probe.stdout + probe.stderr).strip()
        self._runs = 0

    @property
    def settings(self) -> LoadSettings:
        """The window, trials and stability bound of every run unless told otherwise."""
        return self._settings

    def measure(
        self,
        port: int,
        model: str,
        concurrency: int,
        rows: int = 1,
        streaming: bool = False,
        input_data: Path | None = None,
        settings: LoadSettings | None = None,
    ) -> Run:
        """One closed-loop run; `input_data`: a perf_analyzer JSON data file instead of random
        inputs; `settings`: this run's instead of the analyzer's."""
        self._runs += 1
        stem = self._workdir / f"pa-{self._runs}-{port}-{model}-c{concurrency}-b{rows}"
        csv_path, export_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
        settings = settings or self._settings
        argv = [
            str(self._binary), "-m", model, "-x", "1", "-i", "grpc", "-u", f"{HOST}:{port}",
            "-b", str(rows), "--concurrency-range", str(concurrency),
            "--measurement-interval", str(settings.window_ms),
            "--max-trials", str(settings.max_trials),
            "--stability-percentage", str(settings.stability_pct),
            "-f", str(csv_path), "--profile-export-file", str(export_path),
            *(["--streaming"] if streaming else []),
            *(["--input-data", str(input_data)] if input_data is not None else []),
        ]  # fmt: skip
        timeout_s = settings.max_trials * settings.window_ms / 1000 * 1.5 + 30
        before = model_counts(port, model)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, check=False
            )
            if done.returncode != 0 or not csv_path.exists():
                last = (done.stdout + done.stderr).strip().splitlines()[-1:]
                raise MeasurementFailed(f"perf_analyzer: {' '.join(last) or done.returncode}")
            measurement = _read_perf_analyzer(csv_path, export_path)
        except subprocess.TimeoutExpired:
            return Run(None, None, f"perf_analyzer ran past {timeout_s:.0f} s")
        except MeasurementFailed as error:
            return Run(None, None, str(error))
        after = model_counts(port, model)
        mean_batch = None
        if before is not None and after is not None and after[1] > before[1]:
            mean_batch = (after[0] - before[0]) / (after[1] - before[1])
        return Run(measurement, mean_batch)
