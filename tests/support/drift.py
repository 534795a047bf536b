"""A model that monitors drift, for the sidecar, dashboard and Prometheus tests: an MLP (`x` FP32
[6] -> `y` [3]) with a drift.pbtxt and a reference of standard normal rows, and clients sending
rows drawn from that reference shifted by some standard deviations."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ferroserve.demo import mlp_model
from tritonclient.grpc import InferenceServerClient, InferInput

from support.repository import add_model

WIDTH = 6
ROWS_PER_REQUEST = 16
CONFIG = """\
name: "{name}"
max_batch_size: 32
input [{{ name: "x" data_type: TYPE_FP32 dims: [{width}] }}]
output [{{ name: "y" data_type: TYPE_FP32 dims: [3] }}]
"""
# Windows of 400 rows, so a test closes several in a second of traffic; columns are judged from
# 300 values (a shift of one standard deviation is unmistakable there: PSI > 1, the noise of
# rows from the reference stays under 0.1).
DRIFT = "window {{ rows: {window_rows} }}\nthresholds {{ min_rows: 300 }}\n"
MONITORED_COLUMNS = WIDTH + 3  # every input and output column


def add_drift_model(root: Path, name: str, window_rows: int = 400) -> Path:
    model = mlp_model(inputs=WIDTH, hidden=(8,), outputs=3, input_name="x", output_name="y")
    folder = add_model(root, name, model, CONFIG.format(name=name, width=WIDTH))
    (folder / "drift.pbtxt").write_text(DRIFT.format(window_rows=window_rows), encoding="utf-8")
    reference = np.random.default_rng(0).standard_normal((5_000, WIDTH)).astype(np.float32)
    np.savez(folder / "1" / "drift_reference.npz", x=reference)
    return folder


def rows_input(rows: int, shift: float, seed: int) -> list[InferInput]:
    values = np.random.default_rng(seed).standard_normal((rows, WIDTH)) + shift
    tensor = InferInput("x", [rows, WIDTH], "FP32")
    tensor.set_data_from_numpy(values.astype(np.float32))
    return [tensor]


def send_rows(url: str, model: str, rows: int, shift: float, seed: int = 1) -> None:
    """`rows` rows (a multiple of ROWS_PER_REQUEST) in requests of ROWS_PER_REQUEST."""
    assert rows % ROWS_PER_REQUEST == 0, rows
    with InferenceServerClient(url) as client:
        for request in range(rows // ROWS_PER_REQUEST):
            client.infer(model, rows_input(ROWS_PER_REQUEST, shift, seed + request))


@contextlib.contextmanager
def drift_traffic(url: str, model: str, shift: float, pause_s: float = 0.0) -> Iterator[list[int]]:
    """One client sending ROWS_PER_REQUEST shifted rows per request to `model` for the `with`
    block; yields [requests answered]."""
    stop = threading.Event()
    sent = [0]

    def traffic() -> None:
        with InferenceServerClient(url) as client:
            while not stop.is_set():
                client.infer(model, rows_input(ROWS_PER_REQUEST, shift, 1000 + sent[0]))
                sent[0] += 1
                stop.wait(pause_s)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join()
