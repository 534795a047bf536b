"""A new user's first steps: ferroserve and the official client, `tritonclient[grpc]`, installed
into one fresh virtual environment in either order, then the demo served and called from that
environment. Guards against depending on packages whose generated code pins a protobuf runtime
(grpcio-health-checking 1.85 wanted protobuf >= 7.35 while tritonclient wants < 7: the second
install downgraded protobuf and the server died at import).

Slow (a wheel, two venvs, packages from PyPI or pip's cache): `-m "not install"` skips it
locally; CI runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import ServerProcess

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT = "tritonclient[grpc]"
PIP_TIMEOUT_S = 600

# The README's call, run by the venv's own Python with the venv's own tritonclient.
CALL = """
import json, sys
import google.protobuf, numpy as np, tritonclient.grpc as grpcclient
client = grpcclient.InferenceServerClient(sys.argv[1])
x = grpcclient.InferInput("input", [1, 64], "FP32")
x.set_data_from_numpy(np.ones((1, 64), np.float32))
out = client.infer("mlp", [x]).as_numpy("output")
print(json.dumps({"ready": client.is_server_ready(), "shape": list(out.shape),
                  "finite": bool(np.isfinite(out).all()), "protobuf": google.protobuf.__version__}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ferroserve's wheel, built from this checkout (reuses the Rust build already in target/)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO_ROOT)],
        check=True, timeout=PIP_TIMEOUT_S,
    )  # fmt: skip
    (built,) = out.glob("ferroserve-*.whl")
    return built


class VenvServer(ServerProcess):
    """`ferroserve demo` run by another environment's Python."""

    def __init__(self, python: Path, root: Path, log: Path) -> None:
        super().__init__(root, log)
        self.python = python

    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "ferroserve", "demo", "--dir", str(self.repository),
            "--grpc-port", str(self.port), "--metrics-port", str(self.metrics_port),
            "--host", "127.0.0.1",
        ]  # fmt: skip


def fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def pip_install(python: Path, *requirements: str) -> None:
    # Outside CI a developer's pip cache makes this fast; never read from stdin.
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *requirements],
        check=True, timeout=PIP_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(params=["ferroserve-first", "client-first"])
def installed(
    request: pytest.FixtureRequest, wheel: Path, tmp_path: Path
) -> Iterator[tuple[Path, Path]]:
    python = fresh_venv(tmp_path / "venv")
    steps = [str(wheel), CLIENT]
    if request.param == "client-first":
        steps.reverse()
    for step in steps:  # two separate installs, as a user types them
        pip_install(python, step)
    yield python, tmp_path


def test_server_and_client_install_in_either_order(installed: tuple[Path, Path]) -> None:
    python, tmp_path = installed
    check = subprocess.run(
        [str(python), "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, f"inconsistent environment:\n{check.stdout}{check.stderr}"
    with VenvServer(python, tmp_path / "demo", tmp_path / "demo.log") as server:
        server.wait_ready()
        called = subprocess.run(
            [str(python), "-c", CALL, server.url],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
    answer = json.loads(called.stdout)
    assert answer["ready"] is True
    assert answer["shape"] == [1, 10]
    assert answer["finite"] is True
    # The case from the report: the client pulls protobuf below 7 and the server still serves.
    assert int(answer["protobuf"].split(".")[0]) < 7
