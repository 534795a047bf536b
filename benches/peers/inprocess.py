"""The ceiling no server can pass: onnxruntime's session.run on the same model and request in
this process, `concurrency` threads sharing one session (ferroserve's session options), pinned
to the servers' cores. Also the reference answer every server's output is checked against."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from inprocess_ort import cpu_session
from measurement import Call, Measurement, summarize

from .models import INPUT


class InProcess:
    """One session per model file, created on first use."""

    def __init__(self, server_cores: set[int] | None) -> None:
        self._cores = server_cores
        self._sessions: dict[Path, ort.InferenceSession] = {}

    def session(self, model_path: Path) -> ort.InferenceSession:
        if model_path not in self._sessions:
            self._sessions[model_path] = cpu_session(model_path)
        return self._sessions[model_path]

    def answer(self, model_path: Path, batch: np.ndarray) -> np.ndarray:
        """What the model returns for `batch`: the reference for every server's answer."""
        (output,) = self.session(model_path).run(None, {INPUT: batch})
        return np.asarray(output)

    def measure(
        self,
        model_path: Path,
        batch: np.ndarray,
        concurrency: int,
        window_s: float,
        warmup_s: float,
    ) -> tuple[Measurement, float]:
        """Calls (requests) per second and the CPU µs this process spent per call."""
        session = self.session(model_path)
        stop = threading.Event()
        calls: list[list[Call]] = [[] for _ in range(concurrency)]

        def loop(done: list[Call]) -> None:
            if self._cores is not None:
                # pid 0 is the calling thread on Linux: only the workers move.
                os.sched_setaffinity(0, self._cores)
            while not stop.is_set():
                sent_ns = time.time_ns()
                session.run(None, {INPUT: batch})
                now_ns = time.time_ns()
                done.append(Call(now_ns, now_ns - sent_ns))

        threads = [threading.Thread(target=loop, args=(done,)) for done in calls]
        for thread in threads:
            thread.start()
        try:
            time.sleep(warmup_s)
            start_ns, cpu_start = time.time_ns(), time.process_time()
            time.sleep(window_s)
            end_ns, cpu_end = time.time_ns(), time.process_time()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        measurement = summarize([c for done in calls for c in done], start_ns, end_ns)
        return measurement, (cpu_end - cpu_start) * 1e6 / max(1, measurement.inferences)
