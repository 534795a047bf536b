"""Shared fixtures: the main model repository and one ferroserve process serving it for the whole
session; every failing test gets the logs of the servers that were running attached."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # makes `support` importable

from support.server import EXPLICIT, RUNNING, ServerProcess

LOG_TAIL_LINES = 80


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.failed:
        # The servers this test used (fixtures in its closure), else every one still running.
        used = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, ServerProcess)]
        for server in used or list(RUNNING):
            lines = server.log().splitlines()[-LOG_TAIL_LINES:]
            report.sections.append(
                (f"ferroserve log ({server.log_path}, last {len(lines)} lines)", "\n".join(lines))
            )
    return report


@pytest.fixture(scope="session")
def main_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.repository import write_main_repository

    return write_main_repository(tmp_path_factory.mktemp("main-repository"))


@pytest.fixture(scope="session")
def server(
    main_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """ferroserve serving the main repository, READY."""
    log = tmp_path_factory.mktemp("logs") / "main-server.log"
    with ServerProcess(main_repository, log, [*EXPLICIT, "--grpc-reflection"]) as process:
        process.wait_ready()
        yield process


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> Iterator[object]:
    import tritonclient.grpc as triton_grpc

    with triton_grpc.InferenceServerClient(server.url) as triton_client:
        yield triton_client


@pytest.fixture()
def stub(server: ServerProcess) -> Iterator[object]:
    from support.rpc import raw_stub

    with raw_stub(server.url) as raw:
        yield raw


@pytest.fixture()
def demo_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """`ferroserve demo`'s repository (the MLP with dynamic batching) on its own server, with
    the metrics snapshot written every 250 ms."""
    from ferroserve.demo import write_demo_repository

    repository = write_demo_repository(tmp_path / "repository")
    process = ServerProcess(repository, tmp_path / "server.log", ["--metrics-interval-ms", "250"])
    with process:
        process.wait_ready()
        yield process
