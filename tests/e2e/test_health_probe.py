"""`ferroserve health`, the probe command of the container image's HEALTHCHECK: exit 0 only when
the service asked for is SERVING, against real servers (ready, not ready, gone), and the
liveness service that stays SERVING while a model cannot load."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from ferroserve.server.health import LIVENESS
from support import models as m
from support.repository import add_model
from support.server import ServerProcess, free_port
from support.tools import tool


def health(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as the image's HEALTHCHECK runs it."""
    return subprocess.run(
        [tool("ferroserve"), "health", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def unready_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose only model cannot load: live, never ready."""
    root = tmp_path_factory.mktemp("unready-repository")
    add_model(root, "corrupt", m.CORRUPT_BYTES)
    log = tmp_path_factory.mktemp("logs") / "unready-server.log"
    with ServerProcess(root, log) as process:
        process.wait_settled(["corrupt"])
        yield process


def test_a_ready_server_is_healthy(server: ServerProcess) -> None:
    ready = health("--server", server.url)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert ready.stdout.strip() == f"{server.url} (server): SERVING"
    live = health("--server", server.url, "--live")
    assert live.returncode == 0
    assert live.stdout.strip() == f"{server.url} ({LIVENESS}): SERVING"
    model = health("--server", server.url, "--service", "add_sub")
    assert model.returncode == 0
    assert "(add_sub): SERVING" in model.stdout


def test_a_server_that_cannot_load_its_model_is_live_but_not_ready(
    unready_server: ServerProcess,
) -> None:
    ready = health("--server", unready_server.url)
    assert ready.returncode == 1
    assert ready.stdout.strip() == f"{unready_server.url} (server): NOT_SERVING"
    live = health("--server", unready_server.url, "--live")
    assert live.returncode == 0, live.stdout
    model = health("--server", unready_server.url, "--service", "corrupt")
    assert model.returncode == 1
    assert "NOT_SERVING" in model.stdout


def test_an_unknown_service_and_a_missing_server_fail_with_the_reason(
    server: ServerProcess,
) -> None:
    unknown = health("--server", server.url, "--service", "no_such_model")
    assert unknown.returncode == 1
    assert "NOT_FOUND: unknown service 'no_such_model'" in unknown.stdout
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    gone = health("--server", address, "--timeout", "2")
    assert gone.returncode == 1
    assert gone.stdout.startswith(f"{address} (server): UNAVAILABLE")


def test_live_and_service_cannot_be_combined() -> None:
    both = health("--live", "--service", "m")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr


def test_help_lists_the_health_command() -> None:
    listing = subprocess.run(
        [tool("ferroserve"), "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "health" in listing.stdout
