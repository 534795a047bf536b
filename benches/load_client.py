"""Load clients that drive a v2 gRPC server at a fixed concurrency and return one Measurement:
Triton's C++ perf_analyzer (the reference), and a tritonclient.grpc.aio generator used only when
perf_analyzer cannot run on this machine."""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from measurement import Call, Measurement, MeasurementFailed, summarize
from server_process import HOST
from tritonclient.grpc import aio
from tritonclient.utils import InferenceServerException

MODEL = "mlp"
VERSION = "1"
# No answer within this long means the server is stuck; the run fails instead of hanging.
ANSWER_TIMEOUT_S = 30.0
ROW = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """How long to measure: perf_analyzer's window, trials and stability threshold."""

    window_ms: int
    max_trials: int
    stability_pct: int


class LoadClient(Protocol):
    """Drives the model `mlp` (batch 1) on a loopback port and measures it."""

    description: str

    def measure(self, port: int, concurrency: int, streaming: bool) -> Measurement: ...


class PerfAnalyzer:
    """Triton's perf_analyzer. Its CSV gives the rate and percentiles; its profile export gives
    the stable window's boundaries and the requests that completed in it."""

    def __init__(
        self,
        binary: Path,
        settings: LoadSettings,
        workdir: Path,
        model: str = MODEL,
        protocol: tuple[str, ...] = ("-i", "grpc"),
    ) -> None:
        self._binary = binary
        self._settings = settings
        self._workdir = workdir
        self._model = model
        self._protocol = protocol
        """perf_analyzer's protocol flags (`-i http` and its tensor formats for REST)."""
        # perf_analyzer prints its version on stderr.
        probe = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, check=True
        )
        self.description = (probe.stdout + probe.stderr).strip()

    def measure(self, port: int, concurrency: int, streaming: bool) -> Measurement:
        mode = "stream" if streaming else "unary"
        label = "-".join(flag.strip("-") for flag in self._protocol)
        stem = self._workdir / f"pa-{self._model}-{port}-c{concurrency}-{mode}-{label}"
        csv_path, export_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
        settings = self._settings
        # -x 1: without an explicit version perf_analyzer 2.41 looks for one in ModelStatistics.
        argv = [
            str(self._binary), "-m", self._model, "-x", VERSION, *self._protocol,
            "-u", f"{HOST}:{port}", "-b", "1", "--concurrency-range", str(concurrency),
            "--measurement-interval", str(settings.window_ms),
            "--max-trials", str(settings.max_trials),
            "--stability-percentage", str(settings.stability_pct),
            "-f", str(csv_path), "--profile-export-file", str(export_path),
            *(["--streaming"] if streaming else []),
        ]  # fmt: skip
        # Each trial's window runs a little longer than asked (~1.2x); allow for start-up too.
        timeout_s = settings.max_trials * settings.window_ms / 1000 * 1.5 + 30
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise MeasurementFailed(f"perf_analyzer ran past {timeout_s:.0f} s") from error
        if done.returncode != 0 or not csv_path.exists():
            last = (done.stdout + done.stderr).strip().splitlines()[-1:]
            raise MeasurementFailed(f"perf_analyzer: {' '.join(last) or done.returncode}")
        return _read_perf_analyzer(csv_path, export_path)


def _read_perf_analyzer(csv_path: Path, export_path: Path) -> Measurement:
    with csv_path.open() as file:
        row = next(csv.DictReader(file))
    experiment = json.loads(export_path.read_text())["experiments"][0]
    # Once stable, perf_analyzer reports the merged last three windows.
    bounds = experiment["window_boundaries"]
    start_ns, end_ns = bounds[-4], bounds[-1]
    completed = sum(
        1
        for request in experiment["requests"]
        if request["response_timestamps"]
        and start_ns <= request["response_timestamps"][-1] < end_ns
    )
    return Measurement(
        infer_per_s=float(row["Inferences/Second"]),
        p50_ms=int(row["p50 latency"]) / 1000,
        p99_ms=int(row["p99 latency"]) / 1000,
        start_ns=start_ns,
        end_ns=end_ns,
        inferences=completed,
    )


class AioLoadGenerator:
    """A closed-loop tritonclient.grpc.aio generator: `concurrency` tasks each send the next
    request when the previous answer arrives. Python on the client side makes it slower than
    perf_analyzer, so it is a fallback only."""

    def __init__(self, window_s: float, warmup_s: float, reason: str) -> None:
        self._window_s = window_s
        self._warmup_s = warmup_s
        self.description = f"tritonclient.grpc.aio fallback ({reason})"

    def measure(self, port: int, concurrency: int, streaming: bool) -> Measurement:
        try:
            return asyncio.run(self._measure(port, concurrency, streaming))
        except (TimeoutError, InferenceServerException) as error:
            raise MeasurementFailed(f"tritonclient: {error}") from error

    async def _measure(self, port: int, concurrency: int, streaming: bool) -> Measurement:
        client = aio.InferenceServerClient(f"{HOST}:{port}")
        request = aio.InferInput("input", list(ROW.shape), "FP32")
        request.set_data_from_numpy(ROW)
        try:
            if not streaming:

                async def unary() -> None:
                    await client.infer(
                        MODEL, [request], model_version=VERSION, client_timeout=ANSWER_TIMEOUT_S
                    )

                return await self._drive(unary, concurrency)
            async with _Stream(client, request) as stream:
                return await self._drive(stream.infer, concurrency)
        finally:
            await client.close()

    async def _drive(self, call: Callable[[], Awaitable[None]], concurrency: int) -> Measurement:
        start_ns = time.time_ns() + int(self._warmup_s * 1e9)
        end_ns = start_ns + int(self._window_s * 1e9)
        calls: list[Call] = []

        async def worker() -> None:
            while (sent_ns := time.time_ns()) < end_ns:
                await call()
                now_ns = time.time_ns()
                calls.append(Call(now_ns, now_ns - sent_ns))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return summarize(calls, start_ns, end_ns)


class _Stream:
    """One ModelStreamInfer stream shared by all workers; answers are matched by request id."""

    def __init__(self, client: aio.InferenceServerClient, request: aio.InferInput) -> None:
        self._client = client
        self._request = request
        self._outgoing: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count()
        self._receiver: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Stream:
        self._receiver = asyncio.create_task(self._receive())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._outgoing.put(None)
        if self._receiver is not None:
            self._receiver.cancel()

    async def infer(self) -> None:
        request_id = str(next(self._ids))
        answered = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answered
        await self._outgoing.put(
            {"model_name": MODEL, "model_version": VERSION, "inputs": [self._request],
             "request_id": request_id}
        )  # fmt: skip
        await asyncio.wait_for(answered, ANSWER_TIMEOUT_S)

    async def _requests(self) -> AsyncIterator[dict[str, Any]]:
        while (item := await self._outgoing.get()) is not None:
            yield item

    async def _receive(self) -> None:
        async for result, error in self._client.stream_infer(self._requests()):
            if error is not None:
                for answered in self._waiting.values():
                    answered.set_exception(MeasurementFailed(f"stream: {error}"))
                return
            self._waiting.pop(result.get_response().id).set_result(None)
