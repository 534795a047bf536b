"""Triton's request parameters and ordering on the native front end: requests carrying
`priority` / `timeout` and requests to `preserve_ordering` models are answered in Rust
(`Frontend.rpc_counts()`), with the semantics tests/e2e/test_batching.py checks through the
whole server. The server runs in-process so each test can see which side answered.

Queueing is made deterministic as in test_batching.py: the "busy" model runs for as long as its
input's largest value says (tests/support/batching.py), and a test waits until ModelStatistics
shows the blocking request left the queue before sending the requests that must queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from ferroserve.server.app import Server
from support.batching import BUSY_MODELS, BUSY_SLOW, busy_config, busy_input, busy_model
from support.inprocess import native_calls, python_calls, serve
from support.repository import add_model
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(120)
SERVICE = "/inference.GRPCInferenceService"
# Rows of a busy request that fills a max_batch_size 4 batch alone.
FULL4 = 4
MODELS = (
    "busy_priority",
    "busy_override",
    "busy_ordered",
    "busy_unordered",
    "busy_ordered_timeout",
)
# busy_ordered on onnxruntime's Python binding: not routed natively, same ordering rule.
PYTHON_BINDING = 'parameters { key: "native_engine" value { string_value: "false" } }\n'


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("native-scheduling-repository")
    for name in MODELS:
        max_batch, dynamic, instances, dims = BUSY_MODELS[name]
        add_model(root, name, busy_model(), busy_config(name, max_batch, dynamic, instances, dims))
    max_batch, dynamic, instances, dims = BUSY_MODELS["busy_ordered"]
    config = busy_config("busy_ordered_binding", max_batch, dynamic, instances, dims)
    add_model(root, "busy_ordered_binding", busy_model(), config + PYTHON_BINDING)
    return root


def request(model: str, data: np.ndarray, request_id: str, **parameters: int) -> Any:
    """A ModelInferRequest as tritonclient writes it: `priority` as uint64_param, every other
    integer parameter (`timeout` among them) as int64_param."""
    message = pb.ModelInferRequest(model_name=model, id=request_id)
    message.inputs.add(name="INPUT0", datatype="FP32", shape=list(data.shape))
    message.raw_input_contents.append(data.tobytes())
    for key, value in parameters.items():
        if key == "priority":
            message.parameters[key].uint64_param = value
        else:
            message.parameters[key].int64_param = value
    return message


def output(response: Any) -> np.ndarray:
    shape = list(response.outputs[0].shape)
    return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(shape)


class Client:
    """Raw ModelInfer / ModelStreamInfer / ModelStatistics calls on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.infer = channel.unary_unary(
            f"{SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        self.stream = channel.stream_stream(
            f"{SERVICE}/ModelStreamInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )
        self._statistics = channel.unary_unary(
            f"{SERVICE}/ModelStatistics",
            request_serializer=pb.ModelStatisticsRequest.SerializeToString,
            response_deserializer=pb.ModelStatisticsResponse.FromString,
        )

    async def statistics(self, model: str) -> Any:
        answer = await self._statistics(pb.ModelStatisticsRequest(name=model))
        (entry,) = answer.model_stats
        return entry

    async def counts(self, model: str) -> tuple[int, int]:
        """(inference_count, execution_count)."""
        entry = await self.statistics(model)
        return int(entry.inference_count), int(entry.execution_count)

    async def wait_executing(self, model: str, before: int, left: int = 1) -> None:
        """Waits until `left` more requests than `before` have left the model's queue."""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            entry = await self.statistics(model)
            if int(entry.inference_stats.queue.count) >= before + left:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"model '{model}': the blocking request never left the queue")

    async def blocked(self, model: str, rows: int = 1, value: float = BUSY_SLOW) -> Any:
        """Sends a blocking request; returns its task once it is executing."""
        before = int((await self.statistics(model)).inference_stats.queue.count)
        task = spawn(self.timed(request(model, busy_input(rows, value), "blocker")))
        await self.wait_executing(model, before)
        return task

    async def timed(self, message: Any) -> tuple[str, float]:
        """One unary call: its status code name and when it finished; outputs checked."""
        try:
            response = await self.infer(message)
        except grpc.aio.AioRpcError as error:
            return error.code().name, time.monotonic()
        sent = np.frombuffer(message.raw_input_contents[0], np.float32)
        np.testing.assert_array_equal(output(response).ravel(), sent * 2)
        return "OK", time.monotonic()


def spawn(coroutine: Any) -> asyncio.Task[Any]:
    return asyncio.get_running_loop().create_task(coroutine)


def run(repository: Path, scenario: Callable[[Server, Client], Awaitable[None]]) -> None:
    async def with_client(server: Server, channel: grpc.aio.Channel) -> None:
        await scenario(server, Client(channel))

    serve(repository, with_client)


async def stream_order(
    client: Client, model: str, requests: list[tuple[str, np.ndarray, int]]
) -> list[str]:
    """Sends (id, input, timeout µs) on one ModelStreamInfer stream, 20 ms apart; returns the
    ids in the order the answers came back ("error:<message>" for a failed one)."""
    sent = {request_id: array for request_id, array, _ in requests}

    async def messages() -> AsyncIterator[Any]:
        for request_id, array, timeout in requests:
            yield request(model, array, request_id, **({"timeout": timeout} if timeout else {}))
            await asyncio.sleep(0.02)

    order: list[str] = []
    call = client.stream(messages())
    async for response in call:
        if response.error_message:
            order.append(f"error:{response.error_message}")
        else:
            answer = response.infer_response
            np.testing.assert_array_equal(output(answer), sent[answer.id] * 2)
            order.append(answer.id)
        if len(order) == len(requests):
            break
    call.cancel()
    return order


def test_priority_parameters_are_answered_natively_in_priority_order(repository: Path) -> None:
    """priority_levels 2, default level 2: a priority 1 request sent after two default-level
    ones runs first; 0 and a value above priority_levels mean the default level. All of them,
    and the blocker, are answered by the native front end."""
    model = "busy_priority"

    async def scenario(server: Server, client: Client) -> None:
        blocker = await client.blocked(model)
        named: dict[str, asyncio.Task[tuple[str, float]]] = {}
        for name, priority in (("low1", 0), ("low2", 2), ("high", 1), ("beyond", 7)):
            message = request(model, busy_input(FULL4, 5000), name, priority=priority)
            named[name] = spawn(client.timed(message))
            await asyncio.sleep(0.02)  # arrival order = send order
        finished = {name: await task for name, task in named.items()}
        assert (await blocker)[0] == "OK"
        assert {code for code, _ in finished.values()} == {"OK"}
        assert sorted(finished, key=lambda name: finished[name][1]) == [
            "high",
            "low1",
            "low2",
            "beyond",
        ]
        assert native_calls(server) == {"OK": 5}
        assert python_calls(server) == {}

    run(repository, scenario)


def test_timeout_parameters_are_answered_natively(repository: Path) -> None:
    """allow_timeout_override with a 30 s default: a `timeout` of 50 ms rejects the request
    with DEADLINE_EXCEEDED and it never runs; without one, or with a longer one (which
    Triton ignores), it is served. All answered by the native front end."""
    model = "busy_override"

    async def scenario(server: Server, client: Client) -> None:
        before = await client.counts(model)
        blocker = await client.blocked(model)
        short = spawn(client.timed(request(model, busy_input(FULL4, 1), "short", timeout=50_000)))
        served = [
            spawn(client.timed(request(model, busy_input(FULL4, 2), "plain"))),
            spawn(client.timed(request(model, busy_input(FULL4, 3), "long", timeout=60_000_000))),
        ]
        assert (await short)[0] == "DEADLINE_EXCEEDED"
        assert (await blocker)[0] == "OK"
        assert [(await task)[0] for task in served] == ["OK", "OK"]
        after = await client.counts(model)
        # The blocker and the two served requests ran; the rejected one never did.
        assert (after[0] - before[0], after[1] - before[1]) == (1 + 2 * FULL4, 3)
        assert native_calls(server) == {"OK": 3, "DEADLINE_EXCEEDED": 1}
        assert python_calls(server) == {}

    run(repository, scenario)


def test_preserve_ordering_is_native_on_a_stream_and_across_unary_calls(
    repository: Path,
) -> None:
    """Two instances: a slow 8-row request and two light ones sent after it. Without
    preserve_ordering the light ones come back first; with it, in the order sent, on one
    stream and across separate unary calls; every answer comes from the native front end."""
    requests = [
        ("slow", busy_input(8, BUSY_SLOW), 0),
        ("light1", busy_input(1, 1), 0),
        ("light2", busy_input(1, 2), 0),
    ]

    async def scenario(server: Server, client: Client) -> None:
        unordered = await stream_order(client, "busy_unordered", requests)
        assert unordered[-1] == "slow", unordered
        ordered = await stream_order(client, "busy_ordered", requests)
        assert ordered == ["slow", "light1", "light2"]
        slow = spawn(client.timed(request("busy_ordered", busy_input(8, BUSY_SLOW), "slow")))
        await asyncio.sleep(0.05)
        light = await client.timed(request("busy_ordered", busy_input(1, 1), "light"))
        slow_code, slow_finished = await slow
        assert (slow_code, light[0]) == ("OK", "OK")
        assert slow_finished <= light[1], "the light answer went before the slow one"
        assert native_calls(server, "ModelStreamInfer") == {"OK": 2}
        assert native_calls(server) == {"OK": 2}
        assert python_calls(server) == {}
        assert python_calls(server, "ModelStreamInfer") == {}

    run(repository, scenario)


def test_preserve_ordering_keeps_a_timed_out_requests_place_natively(repository: Path) -> None:
    """Both instances busy; a request that times out in the queue keeps its place in the order
    with its error, and the request after it is still answered."""
    requests = [
        ("slow1", busy_input(8, BUSY_SLOW), 0),
        ("slow2", busy_input(8, BUSY_SLOW / 2), 0),
        ("expires", busy_input(1, 1), 1000),
        ("light", busy_input(1, 2), 0),
    ]

    async def scenario(server: Server, client: Client) -> None:
        order = await stream_order(client, "busy_ordered_timeout", requests)
        assert order[:2] == ["slow1", "slow2"]
        assert order[2].startswith("error:") and "timed out" in order[2], order
        assert order[3] == "light"
        assert native_calls(server, "ModelStreamInfer") == {"OK": 1}
        assert python_calls(server, "ModelStreamInfer") == {}

    run(repository, scenario)


def test_a_cancelled_request_does_not_hold_up_later_answers(repository: Path) -> None:
    """preserve_ordering: a queued request whose client gives up leaves the order at once, so
    the request queued after it is answered as soon as its turn comes, not never."""
    model = "busy_ordered"

    async def scenario(server: Server, client: Client) -> None:
        before = int((await client.statistics(model)).inference_stats.queue.count)
        slow = [
            spawn(client.timed(request(model, busy_input(8, BUSY_SLOW), "slow1"))),
            spawn(client.timed(request(model, busy_input(8, BUSY_SLOW), "slow2"))),
        ]
        await client.wait_executing(model, before, left=2)  # both instances busy
        gone = client.infer(request(model, busy_input(1, 1), "gone"))
        await asyncio.sleep(0.05)
        gone.cancel()
        light = await asyncio.wait_for(
            client.timed(request(model, busy_input(1, 2), "light")), timeout=30
        )
        assert light[0] == "OK"
        assert [(await task)[0] for task in slow] == ["OK", "OK"]
        assert native_calls(server) == {"OK": 3, "CANCELLED": 1}
        assert python_calls(server) == {}

    run(repository, scenario)


def test_preserve_ordering_on_the_python_binding_uses_the_same_gate(repository: Path) -> None:
    """A preserve_ordering model on onnxruntime's Python binding is answered by the Python
    server, in queue order too (the Rust gate, `_core.InOrder`, on the event loop)."""
    requests = [
        ("slow", busy_input(8, BUSY_SLOW), 0),
        ("light1", busy_input(1, 1), 0),
        ("light2", busy_input(1, 2), 0),
    ]

    async def scenario(server: Server, client: Client) -> None:
        order = await stream_order(client, "busy_ordered_binding", requests)
        assert order == ["slow", "light1", "light2"]
        assert native_calls(server, "ModelStreamInfer") == {}

    run(repository, scenario)
