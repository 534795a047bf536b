"""Swap semantics under load: tritonclient traffic at concurrency 16 on the native front end
the whole time (requests without a version, the traffic policy decides), while 20 changes are
made through the CLI: pushes, aliases, traffic splits, shadows, rollbacks, loads and unloads.
No request fails, and every answer comes from a version the policy allowed at that moment (the
old policy's or the new one's while a change is in flight). Bad requests in between change
nothing: neither the repository nor what answers."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve.server.app import Server
from support.admin import CONFIG, MODEL, answer, plus, run_cli, tree
from support.inprocess import native_calls, serve
from support.repository import add_model
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(120)
CLIENTS = 16


class Policy:
    """Which versions may answer, by generation: a change in flight allows the old set and
    the new one, a finished change only the new one."""

    def __init__(self, allowed: set[int]) -> None:
        self._lock = threading.Lock()
        self.allowed: list[frozenset[int]] = [frozenset(allowed)]

    @property
    def generation(self) -> int:
        return len(self.allowed) - 1

    def begin(self, new: set[int]) -> None:
        with self._lock:
            self.allowed.append(self.allowed[-1] | new)

    def end(self, new: set[int]) -> None:
        with self._lock:
            self.allowed.append(frozenset(new))

    def between(self, first: int, last: int) -> frozenset[int]:
        with self._lock:
            return frozenset().union(*self.allowed[first : last + 1])


class Traffic:
    """Clients sending requests without a version in a loop, each answer checked against the
    policy's generations between its sending and its answer."""

    def __init__(self, url: str, policy: Policy) -> None:
        self.url, self.policy = url, policy
        self.failures: list[str] = []
        self.answered = 0
        self.versions: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        client = triton_grpc.InferenceServerClient(self.url)
        x = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
        x.set_data_from_numpy(np.zeros((1, 4), np.float32))
        answered, seen = 0, set()
        while not self._stop.is_set():
            first = self.policy.generation
            try:
                result = client.infer(MODEL, [x])
            except Exception as error:  # every failure is reported, none expected
                with self._lock:
                    self.failures.append(repr(error))
                continue
            output = result.as_numpy("OUTPUT0")
            version = int(result.get_response().model_version)
            allowed = self.policy.between(first, self.policy.generation)
            if output is None or float(output[0, 0]) != version or version not in allowed:
                with self._lock:
                    self.failures.append(f"version {version} answered; allowed {set(allowed)}")
            answered += 1
            seen.add(version)
        client.close()
        with self._lock:
            self.answered += answered
            self.versions |= seen


def test_twenty_swaps_under_load_fail_no_request(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG)
    files = {}
    for version in (2, 3, 4):
        files[version] = tmp_path / f"v{version}.onnx"
        files[version].write_bytes(plus(float(version)))
    # (command, versions requests without a version may go to once it is done)
    swaps: list[tuple[tuple[str, ...], set[int]]] = [
        (("push", str(files[2]), "--model", MODEL, "--alias", "canary"), {1}),
        (("traffic", MODEL, "production=90", "canary=10"), {1, 2}),
        (("traffic", MODEL, "production=90", "canary=10", "--shadow", "canary=20"), {1, 2}),
        (("alias", MODEL, "production", "2"), {2}),
        (("rollback", MODEL), {1, 2}),
        (("traffic", MODEL, "--clear"), {1}),
        (("push", str(files[3]), "--model", MODEL), {1}),
        (("alias", MODEL, "canary", "3"), {1}),  # version 2 loses its last alias: unloaded
        (("traffic", MODEL, "production=50", "3=50"), {1, 3}),
        (("alias", MODEL, "production", "3"), {3}),
        (("rollback", MODEL), {1, 3}),
        (("traffic", MODEL, "1=100", "--shadow", "canary=20"), {1}),
        (("load", MODEL, "--version", "2"), {1}),
        (("unload", MODEL, "--version", "2"), {1}),
        (("push", str(files[4]), "--model", MODEL, "--alias", "canary"), {1}),
        (("traffic", MODEL, "production=80", "canary=20", "--shadow", "4=10"), {1, 4}),
        (("alias", MODEL, "production", "4"), {4}),
        (("traffic", MODEL, "--clear"), {4}),
        (("rollback", MODEL), {1}),
        (("alias", MODEL, "production", "4"), {4}),
    ]
    bad = [
        ("alias", MODEL, "production", "9"),  # no such version
        ("rollback", MODEL, "--alias", "stable"),  # no history
        ("rollback", MODEL, "--alias", "staging"),  # no such alias
        ("traffic", MODEL, "production=110", "canary=-10"),  # weights outside 0-100
        ("traffic", MODEL, "production=90", "canary=20"),  # not 100
        ("traffic", MODEL, "production=50", "staging=50"),  # unknown alias
        ("alias", "..", "production", "1"),  # not a folder name
        ("alias", MODEL, "9lives", "1"),  # not an alias name
    ]
    assert len(swaps) == 20

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        # `stable` never moves: a rollback of it has no history to go back to (it keeps
        # version 1 loaded throughout).
        for alias in ("production", "stable"):
            code, _, err = await asyncio.to_thread(
                run_cli, "alias", MODEL, alias, "1", "--server", url
            )
            assert code == 0, err
        policy = Policy({1})
        traffic = Traffic(url, policy)
        traffic.start()
        started = time.monotonic()
        try:
            await asyncio.sleep(0.3)
            for step, (argv, allowed) in enumerate(swaps):
                policy.begin(allowed)
                code, _, err = await asyncio.to_thread(run_cli, *argv, "--server", url)
                assert code == 0, (argv, err)
                policy.end(allowed)
                if step % 4 == 3:  # bad requests between the swaps change nothing
                    before = tree(root)
                    for wrong in bad:
                        code, _, err = await asyncio.to_thread(run_cli, *wrong, "--server", url)
                        assert code in (1, 2) and err, (wrong, code)
                    with pytest.raises(InferenceServerException, match="no version or alias"):
                        await asyncio.to_thread(answer, url, "staging")
                    assert tree(root) == before
                await asyncio.sleep(0.25)
        finally:
            await asyncio.to_thread(traffic.stop)
        elapsed = time.monotonic() - started
        assert not traffic.failures, traffic.failures[:5]
        assert traffic.versions == {1, 2, 3, 4}
        assert traffic.answered > 500, traffic.answered
        assert sum(native_calls(server).values()) >= traffic.answered  # the native path
        shadows = {(m, v): sent for m, v, sent, *_ in server.routing.snapshot()["shadows"]}
        assert shadows.get((MODEL, "2"), 0) > 0 and shadows.get((MODEL, "4"), 0) > 0, shadows
        states = {v: s.state.value for v, s in server.registry.version_states(MODEL).items()}
        assert states == {1: "READY", 2: "UNAVAILABLE", 3: "UNAVAILABLE", 4: "READY"}
        print(f"{traffic.answered} requests across 20 swaps in {elapsed:.1f} s, none failed")

    serve(root, scenario)


def test_an_unload_waits_for_the_requests_the_front_end_routed(tmp_path: Path) -> None:
    """The drain's rule: a version's native route is held by the front end's table and by
    every request from its lookup to its answer (`NativeRoute.holders`); an unload closes the
    version's queue only once none holds it, so a request routed just before a swap never
    meets a closed queue."""
    root = tmp_path / "models"
    slow = CONFIG.replace(
        "max_queue_delay_microseconds: 500",
        "max_queue_delay_microseconds: 400000 preferred_batch_size: [8]",
    )
    add_model(root, MODEL, plus(1.0), slow + "version_policy { all {} }\n", versions=(1, 2))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        model = server.registry.routes.loaded(MODEL, "1")
        assert model is not None and model.native_route is not None
        route = model.native_route
        in_table = route.holders()
        assert in_table >= 1  # its label ("1") in the front end's table
        request = asyncio.create_task(asyncio.to_thread(answer, url, "1"))
        for _ in range(100):
            if route.holders() > in_table:
                break
            await asyncio.sleep(0.005)
        assert route.holders() == in_table + 1  # the request waits in the batch queue
        unload = asyncio.create_task(
            asyncio.to_thread(run_cli, "unload", MODEL, "--version", "1", "--server", url)
        )
        await asyncio.sleep(0.1)
        assert not request.done() and route.holders() == 1  # out of the table, still held
        assert not model.queue.closed  # the unload waits for it
        assert await request == (1.0, "1")
        code, _, err = await unload
        assert code == 0, err
        assert route.holders() == 0 and model.queue.closed

    serve(root, scenario)
