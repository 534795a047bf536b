"""The soak's well-behaved traffic (benches/soak.py): what every call ended as, recorded with
its time; steady unary and streaming clients, the unload/load cycle of one model, Prometheus
scrapes of the metrics sidecar, and the sidecar killed once."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

CALL_TIMEOUT_S = 10.0
GOOD = "good"
RELOADED = "reloaded"
SCRAPE = "scrape"
ADMIN = "admin"
# A call whose deadline passed, or a stream request never answered: must not happen.
UNANSWERED = "UNANSWERED"
# A clock step longer than this between two ticks of a 0.5 s wait: the soak was stopped
# (SIGSTOP, as a shared machine's benchmark guard does) or starved of CPU that long.
STALL_S = 3.0


@dataclass(frozen=True, slots=True)
class Event:
    """One call's end: `kind` groups calls for the report, `outcome` is a status code's name
    or a bad client's outcome, `expected` whether that outcome is what the soak allows."""

    at_s: float
    kind: str
    outcome: str
    latency_ms: float | None = None
    expected: bool = True


class Recorder:
    """Every event of the run, from every thread, timed from the run's start."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self.stop = threading.Event()
        self.stalls: list[tuple[float, float]] = []
        """Stretches (start, end in s) when the soak's process did not run."""

    def now_s(self) -> float:
        return time.monotonic() - self.start

    def active_s(self) -> float:
        """Seconds into the run, less the stalls."""
        return self.now_s() - sum(end - start for start, end in self.stalls)

    def run_for(self, active_s: float) -> None:
        """Returns once `active_s` seconds have run outside stalls, noting the stalls."""
        last = self.now_s()
        while self.active_s() < active_s:
            time.sleep(0.5)
            now = self.now_s()
            if now - last > STALL_S:
                self.stalls.append((last, now))
            last = now

    def add(
        self, kind: str, outcome: str, latency_ms: float | None = None, expected: bool = True
    ) -> None:
        event = Event(self.now_s(), kind, outcome, latency_ms, expected)
        with self._lock:
            self._events.append(event)

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A served model and a request that fits it."""

    name: str
    inputs: int

    def request(self, request_id: str = "") -> service_pb2.ModelInferRequest:
        request = service_pb2.ModelInferRequest(model_name=self.name, id=request_id)
        request.inputs.add(name="input", datatype="FP32", shape=[1, self.inputs])
        request.raw_input_contents.append(np.ones((1, self.inputs), np.float32).tobytes())
        return request


def paced(recorder: Recorder, rate_per_s: float) -> Iterator[int]:
    """Yields at `rate_per_s` until the run stops (skipping ticks a slow call missed)."""
    period = 1.0 / rate_per_s
    next_at = time.monotonic()
    for tick in itertools.count():
        if recorder.stop.is_set():
            return
        yield tick
        next_at = max(next_at + period, time.monotonic())
        recorder.stop.wait(max(0.0, next_at - time.monotonic()))


def code_name(error: grpc.RpcError) -> str:
    code = error.code() if isinstance(error, grpc.Call) else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UNANSWERED
    return code.name if code is not None else "UNKNOWN"


def unary_client(
    recorder: Recorder, address: str, model: ModelSpec, kind: str, rate_per_s: float
) -> None:
    """ModelInfer at a steady rate, each call's code and latency recorded."""
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = model.request()
        for _ in paced(recorder, rate_per_s):
            started = time.perf_counter()
            try:
                stub.ModelInfer(request, timeout=CALL_TIMEOUT_S)
                outcome = "OK"
            except grpc.RpcError as error:
                outcome = code_name(error)
            recorder.add(kind, outcome, (time.perf_counter() - started) * 1000)


class StreamClient:
    """One ModelStreamInfer stream for the whole run, sending at a steady rate; answers are
    matched to requests by id. A broken stream is recorded and opened again; requests never
    answered are recorded as UNANSWERED when the run ends."""

    def __init__(self, recorder: Recorder, address: str, model: ModelSpec, rate: float) -> None:
        self._recorder = recorder
        self._address = address
        self._model = model
        self._rate = rate
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()

    def run(self) -> None:
        with grpc.insecure_channel(self._address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            while not self._recorder.stop.is_set():
                self._one_stream(stub)
        with self._lock:
            for _ in self._sent:
                self._recorder.add(GOOD, UNANSWERED)

    def _one_stream(self, stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
        try:
            for answer in stub.ModelStreamInfer(self._requests()):
                self._answered(answer)
        except grpc.RpcError as error:
            if not self._recorder.stop.is_set():
                self._recorder.add(GOOD, f"stream {code_name(error)}")

    def _requests(self) -> Iterator[service_pb2.ModelInferRequest]:
        for _ in paced(self._recorder, self._rate):
            request_id = str(next(self._ids))
            with self._lock:
                self._sent[request_id] = time.perf_counter()
            yield self._model.request(request_id)
        # Stay open until the answers sent for are in (bounded by the call timeout).
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            with self._lock:
                if not self._sent:
                    return
            time.sleep(0.05)

    def _answered(self, answer: service_pb2.ModelStreamInferResponse) -> None:
        request_id = answer.infer_response.id
        with self._lock:
            sent = self._sent.pop(request_id, None)
        latency = None if sent is None else (time.perf_counter() - sent) * 1000
        outcome = f"stream error: {answer.error_message[:40]}" if answer.error_message else "OK"
        self._recorder.add(GOOD, outcome, latency)


def reload_cycle(recorder: Recorder, address: str, model: str, every_s: float) -> None:
    """Unloads `model`, loads it again a quarter period later, every `every_s`."""
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        unload = service_pb2.RepositoryModelUnloadRequest(model_name=model)
        load = service_pb2.RepositoryModelLoadRequest(model_name=model)
        while not recorder.stop.wait(every_s * 0.75):
            _admin(recorder, "unload", lambda: stub.RepositoryModelUnload(unload, timeout=60))
            recorder.stop.wait(every_s * 0.25)
            # Loaded again even when the run stopped meanwhile: it ends as it began.
            _admin(recorder, "load", lambda: stub.RepositoryModelLoad(load, timeout=60))


def _admin(recorder: Recorder, what: str, call: Callable[[], object]) -> None:
    started = time.perf_counter()
    try:
        call()
        outcome = "OK"
    except grpc.RpcError as error:
        outcome = code_name(error)
    recorder.add(ADMIN, f"{what} {outcome}", (time.perf_counter() - started) * 1000)


def scraper(recorder: Recorder, url: str, period_s: float = 1.0) -> None:
    """GET /metrics every `period_s`; OK when it answers 200 with a metrics body."""
    while not recorder.stop.wait(period_s):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=2.0) as answer:
                body = answer.read()
            outcome = (
                "OK" if answer.status == 200 and b"# TYPE" in body else f"HTTP {answer.status}"
            )
        except OSError as error:
            outcome = type(error).__name__
        recorder.add(SCRAPE, outcome, (time.perf_counter() - started) * 1000)


def tree_pids(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for listing in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending += [int(child) for child in listing.read_text().split()]
            except OSError:
                continue  # it exited meanwhile
    return found


def sidecar_pid(server_pid: int) -> int | None:
    for pid in tree_pids(server_pid)[1:]:
        try:
            if b"metrics-sidecar" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


@dataclass(slots=True)
class SidecarKill:
    """When the sidecar was killed and when /metrics answered again (seconds into the run)."""

    killed_pid: int | None = None
    killed_at_s: float | None = None
    back_at_s: float | None = None
    new_pid: int | None = None


def kill_sidecar_at(recorder: Recorder, server_pid: int, at_s: float, kill: SidecarKill) -> None:
    """SIGKILLs the sidecar `at_s` (active seconds) into the run, then waits for a scrape to
    succeed."""
    while recorder.active_s() < at_s:
        if recorder.stop.wait(0.5):
            return
    kill.killed_pid = sidecar_pid(server_pid)
    if kill.killed_pid is None:
        return
    os.kill(kill.killed_pid, signal.SIGKILL)
    kill.killed_at_s = recorder.now_s()
    while not recorder.stop.wait(0.2):
        later = [e for e in recorder.events() if e.kind == SCRAPE and e.at_s > kill.killed_at_s]
        if any(e.outcome == "OK" for e in later):
            kill.back_at_s = min(e.at_s for e in later if e.outcome == "OK")
            kill.new_pid = sidecar_pid(server_pid)
            return
