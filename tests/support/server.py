"""Runs `python -m ferroserve serve` as a subprocess on a free port for end-to-end tests: waits
until it answers, captures its log to a file, and always stops it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import tritonclient.grpc as triton_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

STARTUP_TIMEOUT_S = 60.0
EXPLICIT = ("--model-control-mode=explicit", "--load-model=*")
"""Flags of a server whose tests load and unload models (RepositoryModelLoad/Unload), with
every model loaded at start; without them the server runs Triton's default mode, none."""
# Servers currently running in this pytest process; conftest attaches their logs to failures.
RUNNING: list[ServerProcess] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerError(RuntimeError):
    pass


class ServerProcess:
    """One ferroserve process. Use `with ServerProcess(...) as server:` or start()/stop()."""

    def __init__(
        self,
        repository: Path | str,
        log_path: Path,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`headers`: sent with the start-up probes (a server restricting health needs them)."""
        self.headers = headers
        self.repository = repository
        self.client_options = dict(client_options or {})
        """tritonclient's keyword arguments to reach it (ssl=True, root_certificates=...)."""
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.env = env
        self.port = 0
        self.metrics_port = 0
        self.http_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The v2 REST port's host:port (tritonclient.http's url)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """The metrics sidecar's base URL (http://host:port)."""
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ferroserve",
            "serve",
            "--model-repository",
            str(self.repository),
            "--grpc-port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--http-port",
            str(self.http_port),
            "--host",
            "127.0.0.1",
            "--no-uvloop",
            *self.extra_args,
        ]

    def start(self) -> ServerProcess:
        self.port = free_port()
        self.metrics_port = free_port()
        self.http_port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("wb")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._process = subprocess.Popen(
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        RUNNING.append(self)
        try:
            self._wait_live()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_live(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        client = triton_grpc.InferenceServerClient(self.url, **self.client_options)
        try:
            while time.monotonic() < deadline:
                self._check_running()
                with contextlib.suppress(InferenceServerException):
                    if client.is_server_live(headers=self.headers):
                        return
                time.sleep(0.1)
        finally:
            client.close()
        raise ServerError(f"ferroserve did not become live in {STARTUP_TIMEOUT_S}s\n{self.log()}")

    def _check_running(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise ServerError(
                f"ferroserve exited with {self._process.returncode} during start\n{self.log()}"
            )

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Polls ServerReady until it says ready."""
        deadline = time.monotonic() + timeout_s
        client = triton_grpc.InferenceServerClient(self.url, **self.client_options)
        try:
            while time.monotonic() < deadline:
                self._check_running()
                if client.is_server_ready(headers=self.headers):
                    return
                time.sleep(0.1)
        finally:
            client.close()
        raise ServerError(f"ferroserve did not become ready in {timeout_s}s\n{self.log()}")

    def wait_settled(
        self, models: Iterable[str], timeout_s: float = STARTUP_TIMEOUT_S
    ) -> dict[str, list[service_pb2.RepositoryIndexResponse.ModelIndex]]:
        """Polls RepositoryIndex until every model in `models` finished loading (READY or
        UNAVAILABLE with a reason); returns the index rows per model."""
        wanted = set(models)
        deadline = time.monotonic() + timeout_s
        rows: dict[str, list[service_pb2.RepositoryIndexResponse.ModelIndex]] = {}
        with grpc.insecure_channel(self.url) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            while time.monotonic() < deadline:
                self._check_running()
                index = stub.RepositoryIndex(service_pb2.RepositoryIndexRequest())
                rows = {}
                for row in index.models:
                    rows.setdefault(row.name, []).append(row)
                if all(_settled(rows.get(name, [])) for name in wanted):
                    return rows
                time.sleep(0.1)
        raise ServerError(f"models {sorted(wanted)} did not settle: {rows}\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "<no log>"

    def wait_exit(self, timeout_s: float) -> int:
        """The exit status once the process ends by itself (TimeoutExpired past `timeout_s`)."""
        assert self._process is not None
        return self._process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        process = self._process
        if process is not None and process.poll() is None:
            # SIGTERM lets the server drain; kill the whole group if it does not stop.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _settled(rows: list[service_pb2.RepositoryIndexResponse.ModelIndex]) -> bool:
    return bool(rows) and all(
        row.state in ("READY", "UNAVAILABLE") and row.reason != "not loaded" for row in rows
    )


@contextlib.contextmanager
def running(repository: Path, log_path: Path, *args: str) -> Iterator[ServerProcess]:
    with ServerProcess(repository, log_path, args) as server:
        yield server
