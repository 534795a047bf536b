"""Dynamic batching end to end (Triton semantics) with tritonclient.grpc.aio against a server
that serves tests/support/batching.py's repository.

Queueing is made deterministic with the "busy" model: a request carrying BUSY_SLOW keeps the
executor busy for a few hundred milliseconds, and the test waits until ModelStatistics shows it
left the queue before sending the requests that must queue behind it. Execution is checked with
ModelStatistics (inference_count counts rows, execution_count batches); no timing is asserted
beyond generous orderings between events hundreds of milliseconds apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from support.batching import (
    BUSY_SLOW,
    Outcome,
    assert_doubled,
    batch_sizes,
    blocked,
    busy_input,
    counts,
    fp32_inputs,
    infer,
    queue_count,
    run,
    spawn,
    statistics,
    write_batching_repository,
)
from support.models import reference
from support.repository import model_file
from support.server import EXPLICIT, ServerProcess
from tritonclient.grpc import aio
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(120)

OK = "OK"
DEADLINE = str(grpc.StatusCode.DEADLINE_EXCEEDED)
EXHAUSTED = str(grpc.StatusCode.RESOURCE_EXHAUSTED)
INTERNAL = str(grpc.StatusCode.INTERNAL)
UNAVAILABLE = str(grpc.StatusCode.UNAVAILABLE)
# Rows of a busy request that fills a max_batch_size 4 batch alone.
FULL4 = 4


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_batching_repository(tmp_path_factory.mktemp("batching-repository"))


@pytest.fixture(scope="module")
def batching_server(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "batching-server.log"
    with ServerProcess(repository, log, EXPLICIT) as process:
        process.wait_ready()
        yield process


async def gather_row(
    client: aio.InferenceServerClient, model: str, data: np.ndarray, row: int, index: int
) -> Outcome:
    """GatherElements of data[row] at `index` (outside 0..3: onnxruntime fails the call)."""
    index_input = aio.InferInput("INDEX", [1, 1], "INT64")
    index_input.set_data_from_numpy(np.array([[index]], dtype=np.int64))
    inputs = [*fp32_inputs("DATA", data[row : row + 1]), index_input]
    try:
        result = await client.infer(model, inputs)
    except InferenceServerException as error:
        return Outcome(None, error, time.monotonic())
    return Outcome(result.as_numpy("OUTPUT0"), None, time.monotonic())


# --------------------------------------------------------------------------------------
# Batches form; outputs, statistics and multi-row requests
# --------------------------------------------------------------------------------------


def test_batches_form_and_match_onnxruntime(
    batching_server: ServerProcess, repository: Path
) -> None:
    """Concurrent requests (1 to 3 rows) share batches; each gets exactly its own rows of what
    in-process onnxruntime returns for it alone; ModelStatistics counts rows and batches."""
    rng = np.random.default_rng(7)
    sizes = [1] * 12 + [2, 3, 2, 1]
    arrays = [rng.standard_normal((rows, 64)).astype(np.float32) for rows in sizes]
    model = "mlp_batched"
    path = model_file(repository, model)

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = await statistics(client, model)
        outcomes = await asyncio.gather(
            *(infer(client, model, a, input_name="input", output_name="output") for a in arrays)
        )
        after = await statistics(client, model)
        for array, outcome in zip(arrays, outcomes, strict=True):
            assert outcome.error is None, outcome.error
            expected = reference(path, {"input": array})[0]
            assert outcome.output is not None and outcome.output.shape == (len(array), 10)
            np.testing.assert_allclose(outcome.output, expected, rtol=1e-5, atol=1e-6)
        rows = counts(after)[0] - counts(before)[0]
        executions = counts(after)[1] - counts(before)[1]
        assert rows == sum(sizes)
        assert 1 <= executions < len(arrays), f"no batching: {executions} executions"
        stats = after["inference_stats"]
        assert int(stats["success"]["count"]) - int(
            before["inference_stats"].get("success", {}).get("count", 0)
        ) == len(arrays)
        assert int(stats["queue"]["count"]) >= len(arrays)
        for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
            assert int(stats[phase]["ns"]) > 0, phase
        for phase in ("compute_input", "compute_infer", "compute_output"):
            assert int(stats[phase]["count"]) == counts(after)[1], phase
        per_size = batch_sizes(after)
        assert sum(size * n for size, n in per_size.items()) == counts(after)[0]
        assert sum(per_size.values()) == counts(after)[1]
        assert max(per_size) > 1

    run(batching_server, scenario)


def test_lone_request_waits_at_most_the_delay(batching_server: ServerProcess) -> None:
    """An idle queue sends a lone request once max_queue_delay (200 ms) is over, not later;
    with delay 0 it runs at once."""

    async def scenario(client: aio.InferenceServerClient) -> None:
        row = np.ones((1, 64), np.float32)
        for model, input_name, output_name, array in (
            ("mlp_batched", "input", "output", row),
            ("busy", "INPUT0", "OUTPUT0", busy_input(1, 1)),
        ):
            await infer(client, model, array, input_name=input_name, output_name=output_name)
            started = time.monotonic()
            outcome = await infer(
                client, model, array, input_name=input_name, output_name=output_name
            )
            assert outcome.error is None, outcome.error
            assert outcome.finished - started < 3.0, model

    run(batching_server, scenario)


def test_delay_zero_batches_what_queued_meanwhile(batching_server: ServerProcess) -> None:
    """max_queue_delay 0: requests that queued while a batch ran leave together, multi-row
    requests included, FIFO, as long as the rows fit in max_batch_size (8)."""
    model = "busy"

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = await statistics(client, model)
        blocker = await blocked(client, model)
        arrays = [busy_input(rows, 1 + i) for i, rows in enumerate((3, 2, 2, 4))]
        queued = [spawn(infer(client, model, a)) for a in arrays]
        outcomes = await asyncio.gather(blocker, *queued)
        for outcome, sent in zip(outcomes[1:], arrays, strict=True):
            assert_doubled(outcome, sent)
        after = await statistics(client, model)
        executed = {
            size: n - batch_sizes(before).get(size, 0) for size, n in batch_sizes(after).items()
        }
        # The blocker alone, then 3 + 2 + 2 = 7 rows (the 4-row request does not fit), then 4.
        assert {size: n for size, n in executed.items() if n} == {1: 1, 7: 1, 4: 1}

    run(batching_server, scenario)


def test_without_dynamic_batching_each_request_runs_alone(batching_server: ServerProcess) -> None:
    """No dynamic_batching block: Triton's default scheduler, one execution per request even
    when several are queued."""
    model = "busy_unbatched"

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = counts(await statistics(client, model))
        blocker = await blocked(client, model)
        arrays = [busy_input(2, 1), busy_input(1, 2), busy_input(3, 3)]
        outcomes = await asyncio.gather(blocker, *(infer(client, model, a) for a in arrays))
        for outcome, sent in zip(outcomes[1:], arrays, strict=True):
            assert_doubled(outcome, sent)
        after = counts(await statistics(client, model))
        assert (after[0] - before[0], after[1] - before[1]) == (1 + 6, 4)

    run(batching_server, scenario)


def test_different_non_batch_dims_never_share_a_batch(batching_server: ServerProcess) -> None:
    """INPUT0 dims [-1]: requests of width 4 and width 6 queue together but run as two batches,
    each request answered with its own shape."""
    model = "busy_mixed"
    arrays = [busy_input(1, 1, 4), busy_input(1, 2, 6), busy_input(2, 3, 4), busy_input(1, 4, 6)]
    arrays += [busy_input(1, 5, 4), busy_input(1, 6, 6)]

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = batch_sizes(await statistics(client, model))
        outcomes = await asyncio.gather(*(infer(client, model, a) for a in arrays))
        for outcome, sent in zip(outcomes, arrays, strict=True):
            assert_doubled(outcome, sent)
        after = batch_sizes(await statistics(client, model))
        executed = {size: n - before.get(size, 0) for size, n in after.items()}
        # Width 4: 1 + 2 + 1 = 4 rows; width 6: 3 rows.
        assert {size: n for size, n in executed.items() if n} == {4: 1, 3: 1}

    run(batching_server, scenario)


# --------------------------------------------------------------------------------------
# Priorities and queue policies
# --------------------------------------------------------------------------------------


def test_high_priority_request_queued_last_runs_first(batching_server: ServerProcess) -> None:
    """priority_levels 2, default level 2: a priority 1 request sent after two default ones
    runs right after the blocker; a priority above priority_levels means the default level
    (Triton), not an error."""
    model = "busy_priority"

    async def scenario(client: aio.InferenceServerClient) -> None:
        blocker = await blocked(client, model)
        named: dict[str, asyncio.Task[Outcome]] = {}
        for name, priority in (("low1", 0), ("low2", 2), ("high", 1), ("beyond", 7)):
            array = busy_input(FULL4, 5000)
            named[name] = spawn(infer(client, model, array, priority=priority))
            await asyncio.sleep(0.02)  # arrival order = send order
        outcomes = {name: await task for name, task in named.items()}
        assert (await blocker).error is None
        for outcome in outcomes.values():
            assert outcome.error is None, outcome.error
        order = sorted(outcomes, key=lambda name: outcomes[name].finished)
        assert order == ["high", "low1", "low2", "beyond"]

    run(batching_server, scenario)


def test_priority_without_priority_levels_is_served(batching_server: ServerProcess) -> None:
    async def scenario(client: aio.InferenceServerClient) -> None:
        for priority in (1, 3):
            array = busy_input(1, 1)
            assert_doubled(await infer(client, "busy", array, priority=priority), array)

    run(batching_server, scenario)


def test_full_queue_is_resource_exhausted_at_once(batching_server: ServerProcess) -> None:
    """max_queue_size 2: the third queued request fails at once, the queued ones are served."""
    model = "busy_full"

    async def scenario(client: aio.InferenceServerClient) -> None:
        blocker = await blocked(client, model)
        arrays = [busy_input(FULL4, 1), busy_input(FULL4, 2)]
        queued = [spawn(infer(client, model, a)) for a in arrays]
        await asyncio.sleep(0.05)
        refused = await infer(client, model, busy_input(1, 3))
        assert refused.status == EXHAUSTED, refused.error
        assert refused.error is not None and "queue" in str(refused.error.message())
        assert not blocker.done(), "refused only after the blocker ran: not at once"
        assert (await blocker).error is None
        for task, sent in zip(queued, arrays, strict=True):
            assert_doubled(await task, sent)

    run(batching_server, scenario)


def test_queue_timeout_reject_is_deadline_exceeded_and_never_runs(
    batching_server: ServerProcess,
) -> None:
    """default_queue_policy REJECT after 100 ms: a request queued behind a longer batch fails
    with DEADLINE_EXCEEDED and is never executed."""
    model = "busy_reject"

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = counts(await statistics(client, model))
        blocker = await blocked(client, model)
        rejected = await infer(client, model, busy_input(2, 1))
        assert rejected.status == DEADLINE, rejected.error
        assert (await blocker).error is None
        await asyncio.sleep(0.2)
        after = counts(await statistics(client, model))
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
        array = busy_input(2, 1)  # an idle queue serves it well within the timeout
        assert_doubled(await infer(client, model, array), array)

    run(batching_server, scenario)


def test_queue_timeout_delay_still_serves(batching_server: ServerProcess) -> None:
    """default_queue_policy DELAY after 100 ms: the expired request still runs."""
    model = "busy_delay"

    async def scenario(client: aio.InferenceServerClient) -> None:
        blocker = await blocked(client, model)
        array = busy_input(2, 1)
        delayed = await infer(client, model, array)
        assert_doubled(delayed, array)
        assert (await blocker).error is None

    run(batching_server, scenario)


def test_request_timeout_parameter_overrides_the_default(batching_server: ServerProcess) -> None:
    """allow_timeout_override with a 30 s default: a request's `timeout` of 50 ms applies and
    rejects it; without one (or with a longer one, which Triton ignores) it is served."""
    model = "busy_override"

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = counts(await statistics(client, model))
        blocker = await blocked(client, model)
        short = spawn(infer(client, model, busy_input(FULL4, 1), timeout=50_000))
        plain, longer = busy_input(FULL4, 2), busy_input(FULL4, 3)
        served = [
            spawn(infer(client, model, plain)),
            spawn(infer(client, model, longer, timeout=60_000_000)),
        ]
        assert (await short).status == DEADLINE
        assert (await blocker).error is None
        assert_doubled(await served[0], plain)
        assert_doubled(await served[1], longer)
        after = counts(await statistics(client, model))
        assert (after[0] - before[0], after[1] - before[1]) == (1 + 2 * FULL4, 3)

    run(batching_server, scenario)


def test_client_deadline_and_cancel_never_execute(batching_server: ServerProcess) -> None:
    """A queued request whose gRPC deadline passes fails with DEADLINE_EXCEEDED, and one the
    client cancels is dropped; neither is ever executed (inference_count)."""
    model = "busy_deadline"

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = counts(await statistics(client, model))
        blocker = await blocked(client, model)
        expired = spawn(infer(client, model, busy_input(2, 1), client_timeout=0.1))
        cancelled = spawn(infer(client, model, busy_input(3, 1)))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        assert (await expired).status == DEADLINE
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert (await blocker).error is None
        await asyncio.sleep(0.3)  # anything wrongly left in the queue would have run by now
        after = counts(await statistics(client, model))
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
        array = busy_input(2, 1)
        assert_doubled(await infer(client, model, array, client_timeout=10), array)

    run(batching_server, scenario)


# --------------------------------------------------------------------------------------
# Instances, ordering, failures, unload
# --------------------------------------------------------------------------------------


def test_instance_count_two_executes_concurrently(batching_server: ServerProcess) -> None:
    """instance_group count 2: two executions overlap, so the executions' summed compute time
    exceeds the wall time they took (it cannot with one instance)."""
    model = "busy_two"

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = await statistics(client, model)
        arrays = [busy_input(FULL4, 15_000) for _ in range(4)]
        started = time.monotonic()
        outcomes = await asyncio.gather(*(infer(client, model, a) for a in arrays))
        elapsed_ns = (time.monotonic() - started) * 1e9
        for outcome, sent in zip(outcomes, arrays, strict=True):
            assert_doubled(outcome, sent)
        after = await statistics(client, model)
        assert counts(after)[1] - counts(before)[1] == 4

        def infer_ns(stats: dict[str, Any]) -> int:
            return int(stats["inference_stats"].get("compute_infer", {}).get("ns", 0))

        busy_ns = infer_ns(after) - infer_ns(before)
        assert busy_ns > 1.3 * elapsed_ns, (busy_ns, elapsed_ns)

    run(batching_server, scenario)


async def stream_order(
    client: aio.InferenceServerClient, model: str, requests: list[tuple[str, np.ndarray, int]]
) -> list[str]:
    """Sends (id, input, timeout µs) on one ModelStreamInfer stream; returns the ids in the
    order the answers came back ("error:<message>" for a failed one), outputs checked."""
    sent = {request_id: array for request_id, array, _ in requests}

    async def requests_iterator() -> AsyncIterator[dict[str, Any]]:
        for request_id, array, timeout in requests:
            yield {
                "model_name": model,
                "inputs": fp32_inputs("INPUT0", array),
                "request_id": request_id,
                **({"timeout": timeout} if timeout else {}),
            }
            await asyncio.sleep(0.02)  # the server reads them in this order anyway

    order: list[str] = []
    responses = client.stream_infer(requests_iterator(), stream_timeout=60)
    async for result, error in responses:
        if error is not None:
            order.append(f"error:{error.message()}")
        else:
            request_id = result.get_response().id
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), sent[request_id] * 2)
            order.append(request_id)
        if len(order) == len(requests):
            break
    responses.cancel()
    return order


def test_preserve_ordering_with_two_instances(batching_server: ServerProcess) -> None:
    """Two instances: a slow 8-row request and two light ones sent after it. Without
    preserve_ordering the light ones come back first; with it, in the order sent."""
    requests = [
        ("slow", busy_input(8, BUSY_SLOW), 0),
        ("light1", busy_input(1, 1), 0),
        ("light2", busy_input(1, 2), 0),
    ]

    async def scenario(client: aio.InferenceServerClient) -> None:
        unordered = await stream_order(client, "busy_unordered", requests)
        assert unordered[-1] == "slow", unordered
        assert await stream_order(client, "busy_ordered", requests) == [
            "slow",
            "light1",
            "light2",
        ]
        # Unary calls too: the light request's answer waits for the slow one's.
        slow = spawn(infer(client, "busy_ordered", busy_input(8, BUSY_SLOW)))
        await asyncio.sleep(0.05)
        light = await infer(client, "busy_ordered", busy_input(1, 1))
        assert light.error is None and slow.done()
        assert (await slow).error is None

    run(batching_server, scenario)


def test_preserve_ordering_counts_rejected_requests_as_done(
    batching_server: ServerProcess,
) -> None:
    """Both instances busy; a request that times out in the queue keeps its place in the order
    with its error, and the request after it is still answered (nothing waits forever)."""
    requests = [
        ("slow1", busy_input(8, BUSY_SLOW), 0),
        ("slow2", busy_input(8, BUSY_SLOW / 2), 0),
        ("expires", busy_input(1, 1), 1000),
        ("light", busy_input(1, 2), 0),
    ]

    async def scenario(client: aio.InferenceServerClient) -> None:
        order = await stream_order(client, "busy_ordered_timeout", requests)
        assert order[:2] == ["slow1", "slow2"]
        assert order[2].startswith("error:") and "timed out" in order[2], order
        assert order[3] == "light"

    run(batching_server, scenario)


def test_failing_batch_fails_its_requests_only(
    batching_server: ServerProcess, repository: Path
) -> None:
    """One bad index fails the whole batch it shares (INTERNAL, onnxruntime's message); the
    next batch and other models are served."""
    model = "gather"
    data = np.arange(16, dtype=np.float32).reshape(4, 4)

    async def gather(client: aio.InferenceServerClient, row: int, index: int) -> Outcome:
        return await gather_row(client, model, data, row, index)

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = counts(await statistics(client, model))
        # max_batch_size 4 and 4 requests: one full batch, the third request's index is bad.
        failed = await asyncio.gather(*(gather(client, r, 7 if r == 2 else r) for r in range(4)))
        for result in failed:
            assert result.status == INTERNAL, result.error
            assert result.error is not None
            assert "onnxruntime" in result.error.message()
            assert "GatherElements" in result.error.message()
        served = await asyncio.gather(*(gather(client, r, 3 - r) for r in range(4)))
        expected = reference(
            model_file(repository, model),
            {"DATA": data, "INDEX": np.array([[3], [2], [1], [0]], dtype=np.int64)},
        )[0]
        for row, result in enumerate(served):
            assert result.error is None, result.error
            np.testing.assert_array_equal(result.output, expected[row : row + 1])
        array = busy_input(1, 1)
        assert_doubled(await infer(client, "busy", array), array)
        after = counts(await statistics(client, model))
        assert after[0] - before[0] == 4  # only the successful batch counts

    run(batching_server, scenario)


def test_unload_drains_the_queue(batching_server: ServerProcess) -> None:
    """Unloading while requests are queued: every one finishes (served, or UNAVAILABLE), none
    hangs, and the model then refuses requests."""
    model = "busy_unload"

    async def scenario(client: aio.InferenceServerClient) -> None:
        blocker = await blocked(client, model)
        arrays = [busy_input(FULL4, 1 + i) for i in range(3)]
        queued = [spawn(infer(client, model, a)) for a in arrays]
        await asyncio.sleep(0.05)
        await client.unload_model(model)
        outcomes = await asyncio.wait_for(asyncio.gather(blocker, *queued), timeout=30)
        assert outcomes[0].error is None
        for outcome, sent in zip(outcomes[1:], arrays, strict=True):
            if outcome.error is None:
                assert_doubled(outcome, sent)
            else:
                assert outcome.status == UNAVAILABLE, outcome.error
        late = await infer(client, model, busy_input(1, 1))
        assert late.error is not None
        assert not await client.is_model_ready(model)

    run(batching_server, scenario)


# --------------------------------------------------------------------------------------
# Models without dynamic_batching (Triton's default scheduler)
# --------------------------------------------------------------------------------------


def queue_ns(stats: dict[str, Any]) -> int:
    return int(stats["inference_stats"].get("queue", {}).get("ns", 0))


async def sequential_requests(
    client: aio.InferenceServerClient, model: str, requests: int = 5
) -> tuple[int, int, int, int]:
    """Sends one-row requests one after another (the executor is idle for each) and returns
    the deltas of (inference_count, execution_count, queue count, queue ns)."""
    before = await statistics(client, model)
    for i in range(requests):
        array = busy_input(1, 1 + i)
        assert_doubled(await infer(client, model, array), array)
    after = await statistics(client, model)
    return (
        counts(after)[0] - counts(before)[0],
        counts(after)[1] - counts(before)[1],
        queue_count(after) - queue_count(before),
        queue_ns(after) - queue_ns(before),
    )


@pytest.mark.parametrize("model", ["busy_unbatched", "busy_unbatched_inline"])
def test_unbatched_model_queues_every_request(batching_server: ServerProcess, model: str) -> None:
    """Without dynamic_batching every request is queued and runs as its own execution, and the
    statistics say so (time queued included). The retired `inline_execution` parameter is
    accepted with a warning and changes nothing."""

    async def scenario(client: aio.InferenceServerClient) -> None:
        sent = await sequential_requests(client, model)
        assert sent[:3] == (5, 5, 5)
        assert sent[3] > 0

    run(batching_server, scenario)
    if model == "busy_unbatched_inline":
        assert (
            f"model '{model}': config.pbtxt parameter 'inline_execution' no longer has an effect"
            in batching_server.log()
        )


def test_unbatched_results_under_concurrency_match(batching_server: ServerProcess) -> None:
    """Concurrent requests to a model without dynamic_batching each get their own answer, one
    execution each, however many rows they carry."""
    model = "busy_unbatched"

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = counts(await statistics(client, model))
        arrays = [busy_input(1 + i % 3, 1 + i) for i in range(12)]
        outcomes = await asyncio.gather(*(infer(client, model, a) for a in arrays))
        for outcome, sent in zip(outcomes, arrays, strict=True):
            assert_doubled(outcome, sent)
        after = counts(await statistics(client, model))
        assert (after[0] - before[0], after[1] - before[1]) == (sum(len(a) for a in arrays), 12)

    run(batching_server, scenario)


def test_unbatched_onnxruntime_failure_is_internal(batching_server: ServerProcess) -> None:
    """A failing call of a model without dynamic_batching answers INTERNAL with onnxruntime's
    message and counts as a failure; the model goes on."""
    model = "gather_unbatched"
    data = np.arange(16, dtype=np.float32).reshape(4, 4)

    async def scenario(client: aio.InferenceServerClient) -> None:
        before = await statistics(client, model)
        failed = await gather_row(client, model, data, 1, 9)
        assert failed.status == INTERNAL, failed.error
        assert failed.error is not None
        assert "onnxruntime" in failed.error.message()
        assert "GatherElements" in failed.error.message()
        served = await gather_row(client, model, data, 2, 3)
        assert served.error is None, served.error
        np.testing.assert_array_equal(served.output, data[2:3, 3:4])
        after = await statistics(client, model)
        assert counts(after)[0] - counts(before)[0] == 1
        failures = int(after["inference_stats"]["fail"]["count"]) - int(
            before["inference_stats"].get("fail", {}).get("count", 0)
        )
        assert failures == 1

    run(batching_server, scenario)
