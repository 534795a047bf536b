"""Reading the metrics sidecar in tests: scrape /metrics into samples, wait for values, find the
sidecar process."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import InferenceServerClient, InferInput
from tritonclient.utils import InferenceServerException

from support.server import ServerProcess

# (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str, timeout_s: float = 5.0) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def scrape(base_url: str) -> Samples:
    """Every sample of one /metrics scrape (Prometheus text format)."""
    status, _, body = get(f"{base_url}/metrics")
    assert status == 200, body
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def dashboard(base_url: str) -> dict[str, Any]:
    status, _, body = get(f"{base_url}/api/dashboard")
    assert status == 200, body
    return dict(json.loads(body))


def wait_for(
    check: Callable[[], Any], what: str, timeout_s: float = 20.0, interval_s: float = 0.1
) -> Any:
    """Polls `check` until it returns a truthy value (returned) or raises AssertionError
    naming `what` and the last error seen."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, AssertionError, KeyError) as error:
            last = error
        else:
            if result:
                return result
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last error: {last}")


def sidecar_pids(parent_pid: int) -> list[int]:
    """Processes running `ferroserve metrics-sidecar` whose parent is `parent_pid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == parent_pid and b"metrics-sidecar" in command:
            pids.append(int(entry.name))
    return pids


def mlp_inputs(rows: int, seed: int, width: int = 64, datatype: str = "FP32") -> list[InferInput]:
    """Inputs for the MLP (`input` FP32 [rows, 64]); another width or datatype makes them
    invalid on purpose."""
    array = np.random.default_rng(seed).standard_normal((rows, width))
    tensor = InferInput("input", [rows, width], datatype)
    tensor.set_data_from_numpy(array.astype(np.float32 if datatype == "FP32" else np.float64))
    return [tensor]


@contextlib.contextmanager
def background_traffic(
    server: ServerProcess, rows: int = 1, invalid: bool = False, pause_s: float = 0.0
) -> Iterator[list[int]]:
    """One client sending MLP requests in a loop for the `with` block, each followed by an
    invalid one (wrong width) when `invalid`; yields [valid requests answered]."""
    stop = threading.Event()
    sent = [0]

    def traffic() -> None:
        with InferenceServerClient(server.url) as client:
            while not stop.is_set():
                client.infer("mlp", mlp_inputs(rows, sent[0]))
                sent[0] += 1
                if invalid:
                    with contextlib.suppress(InferenceServerException):
                        client.infer("mlp", mlp_inputs(1, 0, width=5))
                stop.wait(pause_s)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join()
