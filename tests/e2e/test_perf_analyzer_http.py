"""Triton's perf_analyzer over the REST port (`-i http`): binary tensor data (its default) and
JSON tensors, zero and random input data, each for about two seconds against the main server;
every run must complete requests and the model's failure count must not move. perf_analyzer
lives in `.perf_analyzer/` (git-ignored; `make perf-analyzer` installs it there, and `make test`
does so first): without it the tests skip saying so."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest
import tritonclient.http as httpclient
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)

PERF_ANALYZER = Path(__file__).resolve().parents[2] / ".perf_analyzer" / "perf_analyzer"
FORMATS = {
    "binary": (),  # perf_analyzer's default over HTTP: Triton's binary tensor data extension
    "json": ("--input-tensor-format", "json", "--output-tensor-format", "json"),
}


def model_counts(url: str) -> tuple[int, int]:
    """The MLP's (successful, failed) inference requests so far, from the statistics endpoint."""
    with httpclient.InferenceServerClient(url) as client:
        (stats,) = client.get_inference_statistics("mlp")["model_stats"]
    inference = stats["inference_stats"]
    return int(inference["success"]["count"]), int(inference["fail"]["count"])


@pytest.mark.parametrize("data", ["zero", "random"])
@pytest.mark.parametrize("tensor_format", list(FORMATS))
def test_perf_analyzer_over_http_completes_requests_without_errors(
    tensor_format: str, data: str, server: ServerProcess, tmp_path: Path
) -> None:
    if not os.access(PERF_ANALYZER, os.X_OK):
        pytest.skip(
            f"perf_analyzer is not installed: {PERF_ANALYZER} is absent (`make perf-analyzer` "
            "installs it)"
        )
    successes, failures = model_counts(server.http_url)
    report = tmp_path / "report.csv"
    # The test is about errors, not speed: a stability bound no window misses, so a busy
    # machine cannot fail it with "Failed to obtain stable measurement" (seen at 100%).
    argv = [
        str(PERF_ANALYZER),
        "-m", "mlp", "-i", "http", "-u", server.http_url,
        *FORMATS[tensor_format], "--input-data", data,
        "-b", "1", "--concurrency-range", "4",
        "--measurement-interval", "700", "--max-trials", "3", "--stability-percentage", "10000",
        "-f", str(report),
    ]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    with report.open() as rows:
        (row,) = list(csv.DictReader(rows))
    assert float(row["Inferences/Second"]) > 0, output
    after_successes, after_failures = model_counts(server.http_url)
    assert after_failures == failures, output
    assert after_successes > successes
