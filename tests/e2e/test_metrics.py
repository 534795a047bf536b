"""The metrics sidecar end to end: a ferroserve process with its sidecar on a free port, real
traffic with tritonclient (some failing on purpose, for every failure reason), and /metrics
scraped with Prometheus' own text parser. Counts are asserted exactly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ferroserve.demo import mlp_model
from support.batching import (
    FULL_BATCHING,
    REJECT_BATCHING,
    assert_doubled,
    blocked,
    busy_config,
    busy_input,
    busy_model,
    gather_config,
    gather_model,
    infer,
    run,
    spawn,
)
from support.drift import MONITORED_COLUMNS, WIDTH, add_drift_model, send_rows
from support.metrics import (
    Samples,
    background_traffic,
    dashboard,
    get,
    mlp_inputs,
    scrape,
    sidecar_pids,
    value,
    wait_for,
)
from support.repository import add_model
from support.server import ServerProcess, free_port
from tritonclient.grpc import InferenceServerClient, InferInput, aio
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(180)

MLP_CONFIG = """\
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 10 ] } ]
"""
SERVICE = "inference.GRPCInferenceService"
DRIFTY = {"model": "drifty", "version": "1"}


def write_repository(root: Path) -> Path:
    add_model(root, "mlp", mlp_model(), MLP_CONFIG)
    add_model(root, "busy_full", busy_model(), busy_config("busy_full", 4, FULL_BATCHING))
    add_model(root, "busy_reject", busy_model(), busy_config("busy_reject", 4, REJECT_BATCHING))
    add_model(root, "busy_cancel", busy_model(), busy_config("busy_cancel", 4))
    add_model(root, "gather", gather_model(), gather_config("gather", False))
    return root


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repository(tmp_path_factory.mktemp("metrics-repository"))


def start_server(
    repository: Path, tmp_path_factory: pytest.TempPathFactory, name: str, *args: str
) -> ServerProcess:
    log = tmp_path_factory.mktemp("logs") / f"{name}.log"
    # A short interval keeps the tests quick; production default is 1 s.
    process = ServerProcess(repository, log, ["--metrics-interval-ms", "200", *args])
    process.start()
    process.wait_ready()
    return process


@pytest.fixture(scope="module")
def metrics_server(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    process = start_server(repository, tmp_path_factory, "metrics-server")
    try:
        wait_for(lambda: scrape(process.metrics_url), "the sidecar to answer")
        yield process
    finally:
        process.stop()


def model_value(samples: Samples, name: str, model: str, **labels: str) -> float:
    found = value(samples, name, model=model, version="1", **labels)
    assert found is not None, f"{name} for {model} missing"
    return found


def handled(samples: Samples, method: str, code: str) -> float:
    found = value(
        samples,
        "grpc_server_handled_total",
        grpc_service=SERVICE,
        grpc_method=method,
        grpc_type="unary",
        grpc_code=code,
    )
    return 0.0 if found is None else found


def settled(base_url: str, model: str, requests: int) -> Samples:
    """A scrape in which `model` shows `requests` finished requests (the snapshot is written
    every 200 ms, so the counts arrive a moment after the responses)."""

    def check() -> Samples | None:
        samples = scrape(base_url)
        done = value(samples, "ferroserve_requests_total", model=model, version="1")
        return samples if done == requests else None

    return wait_for(check, f"{model}: {requests} requests in /metrics")  # type: ignore[no-any-return]


def test_exact_counts_after_n_requests(metrics_server: ServerProcess) -> None:
    """After exactly N requests (two of them invalid), every counter and histogram count
    equals what was sent."""
    url = metrics_server.metrics_url
    before = scrape(url)

    with InferenceServerClient(metrics_server.url) as client:
        for i in range(30):
            client.infer("mlp", mlp_inputs(1 + i % 3, i))
        for inputs in (mlp_inputs(1, 0, width=63), mlp_inputs(2, 0, datatype="FP64")):
            with pytest.raises(InferenceServerException, match="input"):
                client.infer("mlp", inputs)
    samples = settled(url, "mlp", 32)
    rows = sum(1 + i % 3 for i in range(30))
    assert model_value(samples, "ferroserve_inferences_total", "mlp") == rows
    assert model_value(samples, "ferroserve_executions_total", "mlp") == 30
    assert model_value(samples, "ferroserve_request_duration_seconds_count", "mlp") == 32
    assert model_value(samples, "ferroserve_queue_duration_seconds_count", "mlp") == 30
    assert model_value(samples, "ferroserve_compute_infer_duration_seconds_count", "mlp") == 30
    assert model_value(samples, "ferroserve_batch_size_count", "mlp") == 30
    assert model_value(samples, "ferroserve_batch_size_sum", "mlp") == rows
    for size, expected in (("1.0", 10), ("2.0", 20), ("4.0", 30), ("+Inf", 30)):
        assert model_value(samples, "ferroserve_batch_size_bucket", "mlp", le=size) == expected
    expected_failures = {"invalid": 2}
    for reason in ("rejected", "timeout", "cancelled", "invalid", "unavailable", "internal"):
        assert model_value(
            samples, "ferroserve_request_failures_total", "mlp", reason=reason
        ) == expected_failures.get(reason, 0)
    assert model_value(samples, "ferroserve_pending_requests", "mlp") == 0
    assert (
        model_value(
            samples,
            "ferroserve_model_info",
            "mlp",
            state="READY",
            provider="CPUExecutionProvider",
        )
        == 1
    )
    assert 0 < model_value(samples, "ferroserve_model_load_duration_seconds", "mlp") < 60
    for code, count in (("OK", 30), ("INVALID_ARGUMENT", 2)):
        assert handled(samples, "ModelInfer", code) - handled(before, "ModelInfer", code) == count


def test_exact_counts_for_every_failure_reason(metrics_server: ServerProcess) -> None:
    """Requests refused by a full queue, timed out in the queue, cancelled by the client and
    failed in onnxruntime are counted by reason, per model and by gRPC status code."""
    url = metrics_server.metrics_url
    before = scrape(url)

    async def failures(client: aio.InferenceServerClient) -> None:
        # rejected: a blocker runs, two requests fill the queue (max_queue_size 2), three more
        # are refused at once.
        blocker = await blocked(client, "busy_full")
        queued = [spawn(infer(client, "busy_full", busy_input(1, 1))) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = [await infer(client, "busy_full", busy_input(1, 1)) for _ in range(3)]
        assert all(r.status == "StatusCode.RESOURCE_EXHAUSTED" for r in refused)
        assert (await blocker).error is None
        for task in queued:
            assert_doubled(await task, busy_input(1, 1))
        # timeout: two requests wait longer than the 100 ms queue timeout (REJECT).
        blocker = await blocked(client, "busy_reject")
        expired = await asyncio.gather(
            *(infer(client, "busy_reject", busy_input(1, 1)) for _ in range(2))
        )
        assert all(r.status == "StatusCode.DEADLINE_EXCEEDED" for r in expired)
        assert (await blocker).error is None
        # cancelled: the client gives up on a queued request.
        blocker = await blocked(client, "busy_cancel")
        gone = spawn(infer(client, "busy_cancel", busy_input(1, 1)))
        await asyncio.sleep(0.1)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert (await blocker).error is None

    run(metrics_server, failures)

    with InferenceServerClient(metrics_server.url) as client:
        index = InferInput("INDEX", [1, 1], "INT64")
        index.set_data_from_numpy(np.array([[9]], dtype=np.int64))
        data = InferInput("DATA", [1, 4], "FP32")
        data.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
        with pytest.raises(InferenceServerException, match="onnxruntime"):
            client.infer("gather", [data, index])

    samples = settled(url, "busy_full", 6)
    samples = settled(url, "busy_reject", 3)
    samples = settled(url, "busy_cancel", 2)
    samples = settled(url, "gather", 1)
    expected = {
        ("busy_full", "rejected"): 3,
        ("busy_reject", "timeout"): 2,
        ("busy_cancel", "cancelled"): 1,
        ("gather", "internal"): 1,
    }
    for model in ("busy_full", "busy_reject", "busy_cancel", "gather"):
        for reason in ("rejected", "timeout", "cancelled", "invalid", "unavailable", "internal"):
            assert model_value(
                samples, "ferroserve_request_failures_total", model, reason=reason
            ) == expected.get((model, reason), 0), (model, reason)
    # Executed rows: the blockers and the served queued requests; never a failed request.
    assert model_value(samples, "ferroserve_inferences_total", "busy_full") == 3
    assert model_value(samples, "ferroserve_inferences_total", "busy_reject") == 1
    assert model_value(samples, "ferroserve_inferences_total", "busy_cancel") == 1
    # gRPC codes, as the clients saw them (blockers and served queued requests are OK).
    codes = {
        "OK": 3 + 1 + 1,
        "RESOURCE_EXHAUSTED": 3,
        "DEADLINE_EXCEEDED": 2,
        "INTERNAL": 1,
        "CANCELLED": 1,
    }
    for code, count in codes.items():
        assert handled(samples, "ModelInfer", code) - handled(before, "ModelInfer", code) == count


def test_exposition_follows_prometheus_conventions(metrics_server: ServerProcess) -> None:
    """Histograms (not summaries) in seconds with buckets from 50 µs to 10 s, `_total`
    counters, process metrics of the serving process, no GPU families without NVML, and
    OpenMetrics on request."""
    status, content_type, body = get(f"{metrics_server.metrics_url}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "# TYPE ferroserve_request_duration_seconds histogram" in text
    assert "# TYPE ferroserve_requests_total counter" in text
    assert "summary" not in text
    samples = scrape(metrics_server.metrics_url)
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in samples
        if name == "ferroserve_request_duration_seconds_bucket" and dict(labels)["model"] == "mlp"
    )
    assert bounds[0] == 5e-05
    assert bounds[-2] == 10.0
    assert bounds[-1] == float("inf")
    assert len(bounds) >= 20
    # process_* describe the serving process (the sidecar reads its /proc entry).
    start = value(samples, "process_start_time_seconds")
    assert start is not None
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path(f"/proc/{metrics_server.pid}/stat").read_text().rsplit(")", 1)[1].split()
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    assert start == pytest.approx(boot + int(stat[19]) / ticks, abs=0.05)
    assert (value(samples, "process_resident_memory_bytes") or 0) > 10_000_000
    if not Path("/dev/nvidia0").exists():
        assert not [name for name, _ in samples if name.startswith("ferroserve_gpu_")]
    status, content_type, body = get_openmetrics(metrics_server.metrics_url)
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    status, _, body = get(f"{metrics_server.metrics_url}/nowhere")
    assert status == 404
    assert b"/metrics" in body


def get_openmetrics(base_url: str) -> tuple[int, str, bytes]:
    import urllib.request

    request = urllib.request.Request(
        f"{base_url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_scraping_under_load_changes_nothing(metrics_server: ServerProcess) -> None:
    """Scrapes and dashboard reads in a tight loop while requests run: every response is
    right and the counts are exact."""
    url = metrics_server.metrics_url
    before = scrape(url)
    start = model_value(before, "ferroserve_requests_total", "mlp")
    stop = threading.Event()
    scrapes = [0]

    def scraper() -> None:
        while not stop.is_set():
            scrape(url)
            dashboard(url)
            scrapes[0] += 1

    thread = threading.Thread(target=scraper)
    thread.start()
    reference = Reference()
    sent = 0
    try:
        with InferenceServerClient(metrics_server.url) as client:
            # At least 200 requests, and on until 20 scrapes overlapped them.
            deadline = time.monotonic() + 60
            while sent < 200 or (scrapes[0] < 20 and time.monotonic() < deadline):
                result = client.infer("mlp", [reference.inputs[sent % 4]])
                expected = reference.outputs[sent % 4]
                np.testing.assert_array_equal(result.as_numpy("output"), expected)
                sent += 1
    finally:
        stop.set()
        thread.join()
    assert scrapes[0] >= 20
    samples = settled(url, "mlp", int(start) + sent)
    assert model_value(samples, "ferroserve_request_failures_total", "mlp", reason="internal") == 0


class Reference:
    """Four one-row MLP inputs and in-process onnxruntime's outputs for them."""

    def __init__(self) -> None:
        import onnxruntime as ort

        session = ort.InferenceSession(
            mlp_model().SerializeToString(), providers=["CPUExecutionProvider"]
        )
        rng = np.random.default_rng(7)
        self.inputs: list[InferInput] = []
        self.outputs: list[np.ndarray] = []
        for _ in range(4):
            array = rng.standard_normal((1, 64)).astype(np.float32)
            tensor = InferInput("input", [1, 64], "FP32")
            tensor.set_data_from_numpy(array)
            self.inputs.append(tensor)
            self.outputs.append(session.run(None, {"input": array})[0])


def test_killed_sidecar_fails_no_request_and_comes_back(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIGKILL the sidecar in the middle of traffic: not one request fails, `ferroserve serve`
    restarts it, and the new sidecar reports the counts from before and after."""
    server = start_server(repository, tmp_path_factory, "sidecar-restart")
    try:
        url = server.metrics_url
        wait_for(lambda: scrape(url), "the sidecar")
        (first,) = wait_for(lambda: sidecar_pids(server.pid), "the sidecar process")
        errors: list[BaseException] = []
        sent = [0]
        stop = threading.Event()

        def traffic() -> None:
            with InferenceServerClient(server.url) as client:
                while not stop.is_set():
                    try:
                        client.infer("mlp", mlp_inputs(1, sent[0]))
                    except BaseException as error:
                        errors.append(error)
                    sent[0] += 1

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            time.sleep(0.5)
            os.kill(first, signal.SIGKILL)
            (second,) = wait_for(
                lambda: [p for p in sidecar_pids(server.pid) if p != first],
                "a restarted sidecar",
            )
            wait_for(lambda: scrape(url), "the restarted sidecar to answer")
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join()
        assert errors == []
        assert second != first
        samples = settled(url, "mlp", sent[0])
        assert model_value(samples, "ferroserve_inferences_total", "mlp") == sent[0]
        assert "restarting" in server.log()
    finally:
        server.stop()


def test_standalone_sidecar_reads_a_metrics_dir(
    repository: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """`serve --no-metrics-sidecar --metrics-dir D` with `ferroserve metrics-sidecar
    --metrics-dir D` run separately (a Kubernetes sidecar container): a sidecar started after
    the traffic, and one restarted, report the same counts."""
    metrics_dir = tmp_path / "metrics"
    server = start_server(
        repository,
        tmp_path_factory,
        "no-child-sidecar",
        "--no-metrics-sidecar",
        "--metrics-dir",
        str(metrics_dir),
    )
    try:
        assert sidecar_pids(server.pid) == []
        with InferenceServerClient(server.url) as client:
            for i in range(7):
                client.infer("mlp", mlp_inputs(1, i))
        for _ in range(2):
            port = free_port()
            sidecar = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ferroserve",
                    "metrics-sidecar",
                    "--metrics-dir",
                    str(metrics_dir),
                    "--metrics-port",
                    str(port),
                    "--metrics-interval-ms",
                    "200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                samples = settled(f"http://127.0.0.1:{port}", "mlp", 7)
                assert model_value(samples, "ferroserve_executions_total", "mlp") == 7
            finally:
                sidecar.terminate()
                _, errors = sidecar.communicate(timeout=10)
            assert sidecar.returncode == 0, errors
    finally:
        server.stop()


def test_sidecar_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket_bound() as port:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ferroserve",
                "metrics-sidecar",
                "--metrics-dir",
                str(tmp_path),
                "--metrics-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr


class socket_bound:
    """A listening socket on a free port, held for the `with` block."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen()
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


def test_metrics_off_starts_no_sidecar(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = start_server(repository, tmp_path_factory, "metrics-off", "--no-allow-metrics")
    try:
        with InferenceServerClient(server.url) as client:
            client.infer("mlp", mlp_inputs(1, 0))
        time.sleep(0.5)
        assert sidecar_pids(server.pid) == []
        with pytest.raises(OSError):
            get(f"{server.metrics_url}/metrics", timeout_s=1)
    finally:
        server.stop()


def test_dashboard_api_reports_rates_and_latency(metrics_server: ServerProcess) -> None:
    """/api/dashboard: per model version, request rate, p50/p99 and batch size computed from
    the sidecar's samples while traffic runs."""
    url = metrics_server.metrics_url

    def mlp_row() -> dict[str, Any] | None:
        data = dashboard(url)
        row = next(m for m in data["models"] if m["model"] == "mlp")
        current = row.get("current", {})
        return row if current.get("throughput") and current.get("p50_ms") else None

    with background_traffic(metrics_server, rows=2):
        row = wait_for(mlp_row, "dashboard data for mlp")
    current = row["current"]
    assert row["state"] == "READY" and row["provider"] == "CPUExecutionProvider"
    assert max(row["series"]["throughput"]) > 10
    assert 0 < current["p50_ms"] <= current["p99_ms"] < 1000
    assert current["batch_size"] == pytest.approx(2.0)
    assert current["errors_per_s"] == 0

    # Pending is a gauge: a request may be in flight in the sample taken during traffic, so it
    # is read again once the traffic has stopped.
    def settled() -> dict[str, Any] | None:
        again = next(m for m in dashboard(url)["models"] if m["model"] == "mlp")
        return again if again["totals"]["pending"] == 0 else None

    assert wait_for(settled, "no pending mlp request after the traffic")["totals"]["pending"] == 0


def test_drift_of_a_served_model_is_exported(tmp_path: Path) -> None:
    """A model with a drift.pbtxt, after 1,024 rows shifted by one standard deviation in
    requests of 16 (windows of 400 rows): /metrics shows it drifting in the cumulative and the
    last closed window, the open one (224 rows) not judged yet, exact rows, every column by
    verdict and the top columns' scores; the same figures in /api/dashboard's drift panel."""
    root = tmp_path / "repository"
    add_drift_model(root, "drifty")
    add_model(root, "mlp", mlp_model(), MLP_CONFIG)  # no drift.pbtxt: no drift series
    server = ServerProcess(root, tmp_path / "server.log", ["--metrics-interval-ms", "200"])
    with server:
        server.wait_ready()
        send_rows(server.url, "drifty", 1_024, shift=1.0)

        def drift_settled() -> Samples | None:
            samples = scrape(server.metrics_url)
            rows = value(samples, "ferroserve_drift_window_rows", window="cumulative", **DRIFTY)
            return samples if rows == 1_024 else None

        samples = wait_for(drift_settled, "the drift of 1,024 rows in /metrics")
        board = next(m for m in dashboard(server.metrics_url)["models"] if m["model"] == "drifty")

    def drift(name: str, **labels: str) -> float | None:
        return value(samples, f"ferroserve_drift_{name}", **DRIFTY, **labels)

    assert drift("monitored_columns") == MONITORED_COLUMNS
    assert drift("uncounted_batches_total") == 0
    windows = {"cumulative": (2, 1_024), "last_closed": (2, 400), "current": (0, 224)}
    for window, (status, rows) in windows.items():
        assert drift("status", window=window) == status, window
        assert drift("window_rows", window=window) == rows, window
        by_verdict = {
            verdict: drift("columns", window=window, verdict=verdict)
            for verdict in ("ok", "warning", "drift", "too_few_rows")
        }
        assert sum(n or 0 for n in by_verdict.values()) == MONITORED_COLUMNS, by_verdict
    assert drift("columns", window="current", verdict="too_few_rows") == MONITORED_COLUMNS
    assert (drift("columns", window="cumulative", verdict="drift") or 0) >= WIDTH
    for j in range(WIDTH):
        column = {"window": "last_closed", "column": f"x[{j}]"}
        assert (drift("score", statistic="psi", **column) or 0) > 0.2
        assert drift("column_status", **column) == 2
        assert drift("column_non_finite_ratio", **column) == 0
        # chi-squared is for categorical columns: absent, not 0
        assert drift("score", statistic="chi_squared_p_value", **column) is None
    # The open window's columns are not judged yet: no verdict, but their statistics are there.
    assert drift("column_status", window="current", column="x[0]") is None
    assert (drift("score", window="current", column="x[0]", statistic="psi") or 0) > 0.2
    assert not [
        key
        for key in samples
        if key[0].startswith("ferroserve_drift") and ("model", "mlp") in key[1]
    ]
    panel = board["drift"]
    assert [(w["window"], w["status"], w["rows"]) for w in panel["windows"]] == [
        ("cumulative", "drift", 1_024),
        ("current", "ok", 224),
        ("last_closed", "drift", 400),
    ]
    assert len(panel["histograms"]) == MONITORED_COLUMNS
    histogram = panel["histograms"][0]
    assert sum(histogram["reference"]) == pytest.approx(1.0)
    assert sum(histogram["windows"]["last_closed"]) == pytest.approx(1.0)
    assert histogram["values"]["cumulative"] == 1_024
