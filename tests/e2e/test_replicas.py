"""Three replicas on one S3 bucket (moto's server) behind a real gRPC load balancer (nginx's
`grpc_pass`), on loopback (issue 20, point 5): a push through one replica is served by all three
within a few poll intervals; the replicas' summed request counters equal the requests sent
through the balancer; killing a replica under load loses no request that the client's retry
cannot recover, and the others keep serving."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support.admin import CONFIG, MODEL, answer, plus, run_cli
from support.repository import add_model
from support.s3 import local_s3
from support.server import ServerProcess, free_port
from tritonclient.utils import InferenceServerException

pytestmark = [pytest.mark.timeout(240), pytest.mark.filterwarnings("ignore::DeprecationWarning")]
POLL_SECS = 0.5
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  upstream ferroserve {{ {servers} }}
  server {{
    listen 127.0.0.1:{port} http2;
    location / {{
      grpc_pass grpc://ferroserve;
      # A replica that refuses the connection (killed) is skipped for the next one.
      grpc_next_upstream error timeout non_idempotent;
    }}
  }}
}}
"""


def nginx_binary() -> str:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        pytest.fail("nginx is not installed: `make system-deps` installs it (Debian's nginx)")
    return binary


@contextmanager
def balancer(root: Path, ports: list[int]) -> Iterator[str]:
    """nginx balancing gRPC over `ports`; yields its host:port."""
    root.mkdir(parents=True)
    port = free_port()
    servers = " ".join(f"server 127.0.0.1:{p};" for p in ports)
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, servers=servers, port=port))
    process = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(root)])
    try:
        url = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while not _answers(url):
            assert process.poll() is None, (root / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        with triton_grpc.InferenceServerClient(url) as client:
            return bool(client.is_server_live())
    except InferenceServerException:
        return False


def eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except InferenceServerException:
            pass
        assert time.monotonic() < deadline, "no convergence in time"
        time.sleep(0.1)


def requests_counted(server: ServerProcess) -> int:
    """The replica's `ferroserve_requests_total` for MODEL, summed over versions."""
    with urllib.request.urlopen(f"{server.metrics_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("ferroserve_requests_total{") and f'model="{MODEL}"' in line
    )


def settled_counts(replicas: list[ServerProcess]) -> list[int]:
    """The replicas' counters once two reads 0.6 s apart agree (every snapshot caught up)."""
    counts = [requests_counted(r) for r in replicas]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(0.6)
        again = [requests_counted(r) for r in replicas]
        if again == counts:
            return counts
        counts = again
    raise AssertionError(f"the replicas' request counters did not settle: {counts}")


def infer(client: triton_grpc.InferenceServerClient) -> float:
    x = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), np.float32))
    output = client.infer(MODEL, [x]).as_numpy("OUTPUT0")
    assert output is not None
    return float(output[0, 0])


def test_three_replicas_behind_nginx(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    add_model(seed, MODEL, plus(1.0), CONFIG)
    with local_s3() as s3:
        s3.upload_tree(seed, "repo")
        env = {**os.environ, **s3.environment()}
        flags = [
            "--model-control-mode=poll",
            f"--repository-poll-secs={POLL_SECS}",
            "--metrics-interval-ms",
            "200",
        ]
        replicas = [
            ServerProcess(f"s3://{s3.bucket}/repo", tmp_path / f"r{i}.log", flags, env).start()
            for i in range(3)
        ]
        try:
            for replica in replicas:
                replica.wait_ready()
            with balancer(tmp_path / "nginx", [r.port for r in replicas]) as url:
                # A push through one replica reaches all three.
                model_file = tmp_path / "two.onnx"
                model_file.write_bytes(plus(2.0))
                code, _, err = run_cli(
                    "push", str(model_file), "--model", MODEL, "--server", replicas[0].url
                )
                assert code == 0, err
                for replica in replicas:
                    eventually(lambda replica=replica: answer(replica.url) == (2.0, "2"))
                # Requests through the balancer are counted once, across the replicas.
                before = settled_counts(replicas)
                sent = 60
                with triton_grpc.InferenceServerClient(url) as client:
                    assert all(infer(client) == 2.0 for _ in range(sent))

                # Each replica's sidecar exports what its snapshot (every 200 ms) says.
                def spread() -> list[int]:
                    return [requests_counted(r) - b for r, b in zip(replicas, before, strict=True)]

                eventually(lambda: sum(spread()) >= sent, timeout_s=15)
                after = settled_counts(replicas)
                counted = [a - b for a, b in zip(after, before, strict=True)]
                assert sum(counted) == sent, counted
                assert sum(1 for n in counted if n > 0) >= 2, counted  # nginx spread them
                # A replica killed under load: every request succeeds, with the client's retry.
                outcomes = load_through(url, kill=lambda: os.kill(replicas[1].pid, signal.SIGKILL))
                assert outcomes["failed"] == 0, outcomes
                assert outcomes["ok"] > 50 and outcomes["retried"] <= 10, outcomes
                for replica in (replicas[0], replicas[2]):
                    assert answer(replica.url) == (2.0, "2")
        finally:
            for replica in replicas:
                replica.stop()


def load_through(url: str, kill: Callable[[], None]) -> dict[str, int]:
    """Two client threads for ~3 s through `url`, `kill` called halfway; each failed request
    is retried up to 3 times (what a client's retry policy would do)."""
    counts = {"ok": 0, "retried": 0, "failed": 0}
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def client_loop() -> None:
        with triton_grpc.InferenceServerClient(url) as client:
            while time.monotonic() < stop:
                for attempt in range(4):
                    try:
                        assert infer(client) == 2.0
                        with lock:
                            counts["ok"] += 1
                            counts["retried"] += attempt > 0
                        break
                    except InferenceServerException:
                        time.sleep(0.05)
                else:
                    with lock:
                        counts["failed"] += 1

    threads = [threading.Thread(target=client_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    kill()
    for thread in threads:
        thread.join(30)
    return counts
