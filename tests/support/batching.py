"""Models, repository and tritonclient.grpc.aio helpers for the dynamic-batching tests.

The workhorse is the "busy" model: OUTPUT0 = 2 * INPUT0 exactly, but before answering it runs a
Loop of `max(INPUT0)` small MatMuls (~8 µs each on one core) whose result is multiplied by 0.
So a request's *values* decide how long its batch runs (the largest value in the batch wins)
while its output stays exact whatever it was batched with: a request holding BUSY_SLOW keeps an
executor busy for a few hundred milliseconds, so requests sent after it really queue, and
requests holding small values run in well under a millisecond.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from ferroserve.demo import mlp_model
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import aio
from tritonclient.utils import InferenceServerException

from support import models as m
from support.repository import add_model
from support.server import ServerProcess

# Loop trips of a blocking request: ~0.5 s alone on one core, longer when the cores are shared.
BUSY_SLOW = 120_000.0
_BUSY_WIDTH = 256


def busy_model(dims: Sequence[int | str] = ("batch", 4)) -> onnx.ModelProto:
    """FP32 INPUT0 `dims` -> OUTPUT0 = 2 * INPUT0, after Loop(max(INPUT0)) MatMuls [1,256]."""
    rng = np.random.default_rng(0)
    orthogonal, _ = np.linalg.qr(rng.standard_normal((_BUSY_WIDTH, _BUSY_WIDTH)))
    state = [1, _BUSY_WIDTH]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["state_in", "w"], ["state_out"]),
        ],
        "busy_body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, state),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, state),
        ],
    )
    nodes = [
        helper.make_node("ReduceMax", ["INPUT0"], ["most"], keepdims=0),
        helper.make_node("Cast", ["most"], ["trips"], to=TensorProto.INT64),
        helper.make_node("Loop", ["trips", "", "s0"], ["s_final"], body=body),
        helper.make_node("ReduceSum", ["s_final"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Mul", ["INPUT0", "two"], ["doubled"]),
        helper.make_node("Add", ["doubled", "nothing"], ["OUTPUT0"]),
    ]
    initializers = [
        numpy_helper.from_array(orthogonal.astype(np.float32), "w"),
        numpy_helper.from_array((np.ones(state) / np.sqrt(_BUSY_WIDTH)).astype(np.float32), "s0"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
        numpy_helper.from_array(np.array(2, np.float32), "two"),
    ]
    graph = helper.make_graph(
        nodes,
        "busy",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, list(dims))],
        initializers,
    )
    return m.finish(graph)


def gather_model() -> onnx.ModelProto:
    """DATA FP32 [batch, 4], INDEX INT64 [batch, 1] -> OUTPUT0 = GatherElements(axis 1): an
    index outside 0..3 makes onnxruntime fail the whole batch at run time."""
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["DATA", "INDEX"], ["OUTPUT0"], axis=1)],
        "gather",
        [
            helper.make_tensor_value_info("DATA", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("INDEX", TensorProto.INT64, ["batch", 1]),
        ],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", 1])],
    )
    return m.finish(graph)


def busy_config(
    name: str,
    max_batch_size: int,
    dynamic_batching: str | None = "max_queue_delay_microseconds: 0",
    instances: int = 1,
    dims: str = "[ 4 ]",
    inline: str | None = None,
) -> str:
    """config.pbtxt of a busy model; `dynamic_batching` is the block's body (None: no block),
    `inline` the retired inline_execution parameter (None: not set)."""
    block = "" if dynamic_batching is None else f"dynamic_batching {{ {dynamic_batching} }}\n"
    if inline is not None:
        block += f'parameters {{ key: "inline_execution" value {{ string_value: "{inline}" }} }}\n'
    return f"""\
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: {dims} }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: {dims} }} ]
instance_group [ {{ count: {instances} kind: KIND_CPU }} ]
{block}"""


MLP_CONFIG = """\
name: "mlp_batched"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 10 ] } ]
dynamic_batching { max_queue_delay_microseconds: 200000 }
"""


def gather_config(name: str, dynamic_batching: bool = True) -> str:
    block = "dynamic_batching { max_queue_delay_microseconds: 2000000 }\n"
    return f"""\
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [
  {{ name: "DATA" data_type: TYPE_FP32 dims: [ 4 ] }},
  {{ name: "INDEX" data_type: TYPE_INT64 dims: [ 1 ] }}
]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] }} ]
{block if dynamic_batching else ""}"""


PRIORITY_BATCHING = "priority_levels: 2 default_priority_level: 2"
FULL_BATCHING = "default_queue_policy { max_queue_size: 2 }"
REJECT_BATCHING = (
    "default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 100000 }"
)
DELAY_BATCHING = (
    "default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 100000 }"
)
# Per-request `timeout` may shorten (never lengthen) the level's 30 s default.
OVERRIDE_BATCHING = (
    "default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 30000000 "
    "allow_timeout_override: true }"
)
ORDERED_BATCHING = "max_queue_delay_microseconds: 0 preserve_ordering: true"

# name -> (max_batch_size, dynamic_batching body or None, instance count, dims)
BUSY_MODELS: dict[str, tuple[int, str | None, int, str]] = {
    "busy": (8, "max_queue_delay_microseconds: 0", 1, "[ 4 ]"),
    "busy_mixed": (8, "max_queue_delay_microseconds: 500000", 1, "[ -1 ]"),
    "busy_priority": (4, PRIORITY_BATCHING, 1, "[ 4 ]"),
    "busy_full": (4, FULL_BATCHING, 1, "[ 4 ]"),
    "busy_reject": (4, REJECT_BATCHING, 1, "[ 4 ]"),
    "busy_delay": (4, DELAY_BATCHING, 1, "[ 4 ]"),
    "busy_override": (4, OVERRIDE_BATCHING, 1, "[ 4 ]"),
    "busy_deadline": (4, "max_queue_delay_microseconds: 0", 1, "[ 4 ]"),
    "busy_two": (4, "max_queue_delay_microseconds: 0", 2, "[ 4 ]"),
    "busy_ordered": (8, ORDERED_BATCHING, 2, "[ 4 ]"),
    "busy_unordered": (8, "max_queue_delay_microseconds: 0", 2, "[ 4 ]"),
    "busy_ordered_timeout": (8, f"{ORDERED_BATCHING} {OVERRIDE_BATCHING}", 2, "[ 4 ]"),
    "busy_unload": (4, "max_queue_delay_microseconds: 0", 1, "[ 4 ]"),
}

# name -> inline_execution parameter (retired: accepted with a warning, no effect), for models
# without dynamic_batching
UNBATCHED_MODELS: dict[str, str | None] = {
    "busy_unbatched": None,
    "busy_unbatched_inline": "true",
}


def write_batching_repository(root: Path) -> Path:
    for name, (max_batch, dynamic, instances, dims) in BUSY_MODELS.items():
        shape: list[int | str] = ["batch", 4] if dims == "[ 4 ]" else ["batch", "n"]
        add_model(
            root, name, busy_model(shape), busy_config(name, max_batch, dynamic, instances, dims)
        )
    # No dynamic_batching: every request is queued and runs alone.
    for name, inline in UNBATCHED_MODELS.items():
        add_model(root, name, busy_model(), busy_config(name, 8, None, inline=inline))
    add_model(root, "mlp_batched", mlp_model(), MLP_CONFIG)
    add_model(root, "gather", gather_model(), gather_config("gather"))
    add_model(root, "gather_unbatched", gather_model(), gather_config("gather_unbatched", False))
    return root


def busy_input(rows: int, value: float, width: int = 4) -> np.ndarray:
    """Rows of `value` (the Loop trip count) with distinct small offsets in the last columns
    so that every request's output is recognisable."""
    array = np.full((rows, width), value, dtype=np.float32)
    array[:, 1:] = np.arange(rows * (width - 1), dtype=np.float32).reshape(rows, width - 1) / 8
    return array


@dataclass(slots=True)
class Outcome:
    """What one request got back, and when (time.monotonic())."""

    output: np.ndarray | None
    error: InferenceServerException | None
    finished: float

    @property
    def status(self) -> str:
        return "OK" if self.error is None else str(self.error.status())


def fp32_inputs(name: str, array: np.ndarray) -> list[aio.InferInput]:
    tensor = aio.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return [tensor]


async def infer(
    client: aio.InferenceServerClient,
    model: str,
    array: np.ndarray,
    input_name: str = "INPUT0",
    output_name: str = "OUTPUT0",
    **options: Any,
) -> Outcome:
    """One ModelInfer; errors are returned, not raised."""
    try:
        result = await client.infer(model, fp32_inputs(input_name, array), **options)
    except InferenceServerException as error:
        return Outcome(None, error, time.monotonic())
    return Outcome(result.as_numpy(output_name), None, time.monotonic())


def spawn(coroutine: Any) -> asyncio.Task[Any]:
    return asyncio.get_running_loop().create_task(coroutine)


async def statistics(client: aio.InferenceServerClient, model: str) -> dict[str, Any]:
    """The model's ModelStatistics entry as JSON (Triton's field names; int64 as strings)."""
    answer = await client.get_inference_statistics(model, as_json=True)
    (entry,) = answer["model_stats"]
    return dict(entry)


def counts(stats: dict[str, Any]) -> tuple[int, int]:
    """(inference_count, execution_count)."""
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def batch_sizes(stats: dict[str, Any]) -> dict[int, int]:
    """Executed batch size -> number of executions."""
    return {
        int(entry["batch_size"]): int(entry["compute_infer"].get("count", 0))
        for entry in stats.get("batch_stats", [])
    }


async def wait_until_executing(
    client: aio.InferenceServerClient, model: str, before: int, timeout_s: float = 10.0
) -> None:
    """Waits until ModelStatistics shows a request left the queue after `before` queue
    entries (the blocking request is running, so what is sent next really queues)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = await statistics(client, model)
        if int(stats["inference_stats"].get("queue", {}).get("count", 0)) > before:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"model '{model}': no request left the queue in {timeout_s} s")


def queue_count(stats: dict[str, Any]) -> int:
    return int(stats["inference_stats"].get("queue", {}).get("count", 0))


Scenario = Callable[[aio.InferenceServerClient], Awaitable[None]]


def run(server: ServerProcess, scenario: Scenario) -> None:
    async def main() -> None:
        client = aio.InferenceServerClient(server.url)
        try:
            await scenario(client)
        finally:
            await client.close()

    asyncio.run(main())


def assert_doubled(outcome: Outcome, sent: np.ndarray) -> None:
    """The busy model's answer: exactly 2 * input, shape included."""
    assert outcome.error is None, outcome.error
    assert outcome.output is not None
    np.testing.assert_array_equal(outcome.output, sent * 2)


async def blocked(client: aio.InferenceServerClient, model: str, rows: int = 1) -> Any:
    """Sends a blocking request and returns its task once it is executing."""
    before = queue_count(await statistics(client, model))
    task = spawn(infer(client, model, busy_input(rows, BUSY_SLOW)))
    await wait_until_executing(client, model, before)
    return task
