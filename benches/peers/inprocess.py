"""The ceiling no server can pass: onnxruntime's session.run on the same model and request in
this process, `concurrency` threads sharing one session (ferroserve's session options), pinned
to the servers' cores. Also the reference answer every server's output is checked against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from inprocess_ort import cpu_session, measure_session
from measurement import Measurement

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
        return measure_session(
            self.session(model_path), {INPUT: batch}, concurrency, window_s, warmup_s,
            cores=self._cores,
        )  # fmt: skip
