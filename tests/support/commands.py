"""Runs the command lines that deploy/ files give ferroserve (the image's ENTRYPOINT and CMD, a
container's args, KServe's runtime args) on this machine: their flags' values are swapped for
local paths and free ports, the rest runs as written."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from support.server import ServerProcess
from support.tools import tool


def with_flags(args: list[str], values: Mapping[str, str], *, append: bool = False) -> list[str]:
    """`args` with the value of each flag in `values` replaced (`--flag=value` or `--flag value`);
    a flag that is not there is an error, or appended when `append`."""
    result = list(args)
    for flag, value in values.items():
        for index, arg in enumerate(result):
            if arg.startswith(f"{flag}="):
                result[index] = f"{flag}={value}"
                break
            if arg == flag and index + 1 < len(result):
                result[index + 1] = value
                break
        else:
            if not append:
                raise AssertionError(f"{flag} is not in {args}")
            result.extend([flag, value])
    return result


class CommandServer(ServerProcess):
    """A ferroserve server started from `argv_for(grpc_port, metrics_port)`: the console script
    and the arguments a deploy file gives it."""

    def __init__(
        self,
        argv_for: Callable[[int, int], list[str]],
        repository: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(repository, log_path, env=env, client_options=client_options)
        self._argv_for = argv_for

    def command(self) -> list[str]:
        return [tool("ferroserve"), *self._argv_for(self.port, self.metrics_port)]


@contextlib.contextmanager
def sidecar_process(args: list[str], log_path: Path, port: int) -> Iterator[str]:
    """`ferroserve <args>` (a metrics sidecar) until the block ends; yields its base URL once
    /-/healthy answers."""
    with log_path.open("wb") as log:
        process = subprocess.Popen([tool("ferroserve"), *args], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"the sidecar exited: {log_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"{url}/-/healthy", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
