"""Unloading gives memory back (issue 16): a 17 MB model loaded, served and unloaded 50 times
through RepositoryModelLoad/Unload leaves the server's RSS where it was after the first cycles.
A leaked session, executor or weight copy per cycle would add its ~17 MB x 50."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve.demo import mlp_model
from support.repository import add_model
from support.server import EXPLICIT, ServerProcess

pytestmark = pytest.mark.timeout(300)
CYCLES = 50
WARM_CYCLES = 5
SPAN = 10  # cycles per median: RSS jumps by about one model between neighbouring cycles
HIDDEN = 2048  # 64x2048 + 2048x2048 + 2048x10 FP32 weights: ~17 MB
MODEL_BYTES = (64 * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 10) * 4
# RSS moves by about one model between cycles (a freed copy the allocator keeps for the next
# load), measured 247-280 MiB over 50 cycles here; the median of the last SPAN cycles minus the
# median of the first SPAN after warm-up stays within that. A leak of one model per cycle would
# grow it by ~35 models between the two spans.
MAX_GROWTH_BYTES = 3 * MODEL_BYTES
CONFIG = """\
name: "big"
max_batch_size: 8
input [{ name: "input" data_type: TYPE_FP32 dims: [64] }]
output [{ name: "output" data_type: TYPE_FP32 dims: [10] }]
"""


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def infer_once(client: triton_grpc.InferenceServerClient) -> None:
    tensor = triton_grpc.InferInput("input", [2, 64], "FP32")
    tensor.set_data_from_numpy(np.ones((2, 64), dtype=np.float32))
    result = client.infer("big", [tensor]).as_numpy("output")
    assert result is not None and result.shape == (2, 10)


def test_fifty_load_unload_cycles_give_the_memory_back(tmp_path: Path) -> None:
    add_model(tmp_path / "repository", "big", mlp_model(hidden=(HIDDEN, HIDDEN)), CONFIG)
    server = ServerProcess(tmp_path / "repository", tmp_path / "server.log", EXPLICIT)
    with server, triton_grpc.InferenceServerClient(server.url) as client:
        server.wait_ready()
        samples: list[int] = []
        for _ in range(CYCLES):
            infer_once(client)
            client.unload_model("big")
            assert not client.is_model_ready("big")
            client.load_model("big")
            assert client.is_model_ready("big")
            samples.append(rss_bytes(server.pid))
        infer_once(client)
        early = statistics.median(samples[WARM_CYCLES : WARM_CYCLES + SPAN])
        growth = statistics.median(samples[-SPAN:]) - early
        figures = ", ".join(f"{sample / 2**20:.0f}" for sample in samples[::5])
        assert growth < MAX_GROWTH_BYTES, (
            f"median RSS grew {growth / 2**20:.1f} MiB between cycles {WARM_CYCLES}-"
            f"{WARM_CYCLES + SPAN} and the last {SPAN} (model {MODEL_BYTES / 2**20:.0f} MiB); "
            f"every 5th cycle, MiB: {figures}"
        )
        print(f"RSS every 5th cycle (MiB): {figures}; median growth {growth / 2**20:.1f}")
