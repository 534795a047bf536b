"""The floor under every server: onnxruntime's session.run on the same model in this process,
no transport, `concurrency` threads calling one session in a closed loop."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from measurement import Call, Measurement, summarize


def cpu_session(model_path: Path) -> ort.InferenceSession:
    """One intra-op and one inter-op thread, no spinning: the settings a server on a small
    machine runs with (the default spinning pool burns cores the gRPC threads need)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def measure_session(
    session: ort.InferenceSession,
    feeds: dict[str, np.ndarray],
    concurrency: int,
    window_s: float,
    warmup_s: float,
    rows_per_call: int = 1,
    cores: set[int] | None = None,
) -> tuple[Measurement, float]:
    """The figure for `concurrency` threads calling `session.run(feeds)` in a closed loop
    (counting `rows_per_call` inferences per call) and the CPU µs this process spent per
    inference. `cores`: pin the calling threads (only they move, not the caller)."""
    stop = threading.Event()
    calls: list[list[Call]] = [[] for _ in range(concurrency)]

    def loop(done: list[Call]) -> None:
        if cores is not None:
            os.sched_setaffinity(0, cores)  # pid 0: this thread
        while not stop.is_set():
            sent_ns = time.time_ns()
            session.run(None, feeds)
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
    measurement = summarize([c for done in calls for c in done], start_ns, end_ns, rows_per_call)
    return measurement, (cpu_end - cpu_start) * 1e6 / max(1, measurement.inferences)
