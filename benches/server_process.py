"""Server processes for the serving benchmarks: start one on loopback, wait until its gRPC
ServerReady RPC says so, sample the CPU its process tree spends, and stop it whatever happens."""

from __future__ import annotations

import bisect
import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    """The server exited or never became ready; the message ends with its log's tail."""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(
    argv: Sequence[str], port: int, log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[int]:
    """Runs `argv` until the block ends, yielding its pid once ServerReady answers true."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_ready(process, port, log_path)
            yield process.pid
        finally:
            _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerFailed(f"exited with status {process.returncode}: {_tail(log_path)}")
            with contextlib.suppress(grpc.RpcError):
                if stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=1.0).ready:
                    return
            time.sleep(0.1)
    raise ServerFailed(f"not ready after {READY_TIMEOUT_S:.0f} s: {_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log_path: Path, lines: int = 5) -> str:
    return " / ".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants (with their reaped children)."""
    ticks, pending = 0, [pid]
    while pending:
        current = pending.pop()
        # A process may exit between listing and reading; it then adds nothing.
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            ticks += _cpu_ticks(current)
            pending += _children(current)
    return ticks / CLOCK_TICKS


def _cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # proc(5): fields after "(comm)" start at field 3 (state); utime, stime, cutime, cstime
    # are fields 14 to 17.
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(value) for value in fields[11:15])


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for listing in Path(f"/proc/{pid}/task").glob("*/children")
        for child in listing.read_text().split()
    ]


_Sampled = TypeVar("_Sampled", bound="Sampler")


class Sampler:
    """Samples a growing reading (CPU seconds, requests served) on a thread while the block
    runs, so its growth over any window inside that span can be read back afterwards (linear
    between samples)."""

    def __init__(
        self,
        read: Callable[[], float],
        period_s: float = 0.05,
        close: Callable[[], None] | None = None,
    ) -> None:
        """`close`: called when the block ends (e.g. the channel `read` uses)."""
        self._read = read
        self._close = close
        self._period_s = period_s
        self._times_ns: list[int] = []
        self._values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self: _Sampled) -> _Sampled:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._close is not None:
            self._close()

    def _sample(self) -> None:
        while True:
            now_ns = time.time_ns()
            # A failed reading (a statistics call that timed out) leaves a gap, not a hole.
            with contextlib.suppress(Exception):
                value = self._read()
                self._times_ns.append(now_ns)
                self._values.append(value)
            if self._stop.is_set():
                return
            self._stop.wait(self._period_s)

    def growth_between(self, start_ns: int, end_ns: int) -> float:
        """How much the reading grew between two instants inside the sampled span."""
        return self._value_at(end_ns) - self._value_at(start_ns)

    def _value_at(self, time_ns: int) -> float:
        times = self._times_ns
        if not times[0] <= time_ns <= times[-1]:
            raise ValueError("instant outside the sampled span")
        right = max(1, bisect.bisect_left(times, time_ns))
        t0, t1 = times[right - 1], times[right]
        v0, v1 = self._values[right - 1], self._values[right]
        return v0 + (v1 - v0) * (time_ns - t0) / max(1, t1 - t0)


class CpuSampler(Sampler):
    """A process tree's CPU seconds, sampled (see Sampler)."""

    def __init__(self, pid: int, period_s: float = 0.05) -> None:
        super().__init__(lambda: process_tree_cpu_s(pid), period_s)

    def cpu_s_between(self, start_ns: int, end_ns: int) -> float:
        """CPU seconds spent between two instants inside the sampled span."""
        return self.growth_between(start_ns, end_ns)
