"""`ferroserve demo`, the README's first command: it writes the example repository, serves it
with the metrics sidecar, prints how to call it, and the printed call works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as g
from support.metrics import Samples, scrape, value, wait_for
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)


class DemoProcess(ServerProcess):
    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "ferroserve", "demo", "--dir", str(self.repository),
            "--grpc-port", str(self.port), "--metrics-port", str(self.metrics_port),
            "--http-port", str(self.http_port), "--host", "127.0.0.1", "--no-uvloop",
        ]  # fmt: skip


def test_demo_serves_what_it_prints(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    with DemoProcess(root, tmp_path / "demo.log") as demo:
        demo.wait_ready()
        printed = demo.log()
        assert f"wrote the demo model repository to {root}" in printed
        assert f'InferenceServerClient("127.0.0.1:{demo.port}")' in printed
        assert f"http://127.0.0.1:{demo.metrics_port}/" in printed
        assert (root / "mlp" / "config.pbtxt").is_file()
        # The call the demo prints, verbatim apart from the port.
        client = g.InferenceServerClient(f"127.0.0.1:{demo.port}")
        x = g.InferInput("input", [1, 64], "FP32")
        x.set_data_from_numpy(np.ones((1, 64), np.float32))
        answer = client.infer("mlp", [x]).as_numpy("output")
        client.close()
        session = ort.InferenceSession(
            str(root / "mlp" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        expected = session.run(None, {"input": np.ones((1, 64), np.float32)})[0]
        np.testing.assert_array_equal(answer, expected)

        def counted() -> Samples | None:
            samples = scrape(demo.metrics_url)
            done = value(samples, "ferroserve_requests_total", model="mlp", version="1")
            return samples if done == 1 else None

        samples = wait_for(counted, "the demo's request in /metrics")
        assert value(samples, "ferroserve_inferences_total", model="mlp", version="1") == 1

        # The curl line it prints, run as printed: the same answer over HTTP.
        lines = printed.splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
        command = lines[start].strip().removesuffix("\\") + lines[start + 1]
        assert f"http://127.0.0.1:{demo.http_port}/v2/models/mlp/infer" in command
        answer_json = json.loads(
            subprocess.run(command, shell=True, check=True, capture_output=True).stdout
        )
        (output,) = answer_json["outputs"]
        assert output["shape"] == [1, 10]
        np.testing.assert_array_equal(np.array(output["data"], np.float32), expected.reshape(-1))
