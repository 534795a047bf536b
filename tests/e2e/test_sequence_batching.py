"""Stateful models (Triton's sequence batching) end to end through tritonclient: an ONNX
accumulator whose running sum is implicit state the server carries from each answer to the
sequence's next request, with the control inputs (START, END, READY, CORRID) it was fed
reported back, under the `direct` and `oldest` strategies; Triton's errors for requests that
break a sequence's rules."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from onnx import TensorProto, helper
from support.models import finish
from support.repository import add_model
from support.rpc import assert_triton_error, infer_input
from support.server import ServerProcess

F, I32, U64 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.UINT64

CONFIG = """\
name: "{name}"
max_batch_size: 4
input [ {{ name: "INPUT" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [
  {{ name: "OUTPUT" data_type: TYPE_FP32 dims: [ 1 ] }},
  {{ name: "FED" data_type: TYPE_FP32 dims: [ 4 ] }}
]
sequence_batching {{
  max_sequence_idle_microseconds: 5000000
  {strategy}
  control_input [
    {{ name: "START" control [ {{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "END" control [ {{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "READY" control [ {{ kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "CORRID" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 }} ] }}
  ]
  state [ {{ input_name: "SUM_IN" output_name: "SUM_OUT" data_type: TYPE_FP32 dims: [ 1 ] }} ]
}}
"""
STRATEGIES = {
    "accumulator_direct": "direct { max_queue_delay_microseconds: 1000 }",
    "accumulator_oldest": (
        "oldest { max_candidate_sequences: 4 max_queue_delay_microseconds: 1000 }"
    ),
}


def accumulator() -> bytes:
    """OUTPUT = INPUT + SUM_IN, SUM_OUT = OUTPUT (the running sum), FED = [START, END, READY,
    CORRID] as floats: what the server fed this row."""

    def info(name: str, elem: int, dims: int = 1) -> object:
        return helper.make_tensor_value_info(name, elem, ["b", dims])

    nodes = [
        helper.make_node("Add", ["INPUT", "SUM_IN"], ["OUTPUT"]),
        helper.make_node("Identity", ["OUTPUT"], ["SUM_OUT"]),
        *(
            helper.make_node("Cast", [name], [f"{name}_f"], to=F)
            for name in ("START", "END", "READY", "CORRID")
        ),
        helper.make_node("Concat", ["START_f", "END_f", "READY_f", "CORRID_f"], ["FED"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "accumulator",
        [
            info("INPUT", F),
            info("START", I32),
            info("END", I32),
            info("READY", I32),
            info("CORRID", U64),
            info("SUM_IN", F),
        ],
        [info("OUTPUT", F), info("FED", F, 4), info("SUM_OUT", F)],
    )
    return finish(graph).SerializeToString()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[triton_grpc.InferenceServerClient]:
    root = tmp_path_factory.mktemp("sequence-repository")
    for name, strategy in STRATEGIES.items():
        add_model(root, name, accumulator(), CONFIG.format(name=name, strategy=strategy))
    log = tmp_path_factory.mktemp("logs") / "sequence-server.log"
    with ServerProcess(root, log) as server:
        server.wait_settled(list(STRATEGIES))
        with triton_grpc.InferenceServerClient(server.url) as client:
            for name in STRATEGIES:
                assert client.is_model_ready(name), server.log()
            yield client


def step(
    client: triton_grpc.InferenceServerClient,
    model: str,
    sequence: int | str,
    value: float,
    start: bool = False,
    end: bool = False,
) -> tuple[float, list[float]]:
    x = infer_input("INPUT", np.array([[value]], np.float32), "FP32")
    result = client.infer(model, [x], sequence_id=sequence, sequence_start=start, sequence_end=end)
    return float(result.as_numpy("OUTPUT")[0, 0]), result.as_numpy("FED")[0].tolist()


@pytest.mark.parametrize("model", sorted(STRATEGIES))
def test_each_sequence_sums_its_own_inputs(
    client: triton_grpc.InferenceServerClient, model: str
) -> None:
    assert step(client, model, 1001, 1.0, start=True) == (1.0, [1.0, 0.0, 1.0, 1001.0])
    assert step(client, model, 1002, 10.0, start=True) == (10.0, [1.0, 0.0, 1.0, 1002.0])
    assert step(client, model, 1001, 2.0) == (3.0, [0.0, 0.0, 1.0, 1001.0])
    assert step(client, model, 1002, 20.0)[0] == 30.0
    assert step(client, model, 1001, 3.0, end=True) == (6.0, [0.0, 1.0, 1.0, 1001.0])
    assert step(client, model, 1002, 30.0, end=True)[0] == 60.0
    # The state is the server's, not the client's: ModelMetadata shows INPUT only.
    metadata = client.get_model_metadata(model)
    assert [t.name for t in metadata.inputs] == ["INPUT"]
    assert [t.name for t in metadata.outputs] == ["OUTPUT", "FED"]


def test_a_new_start_begins_from_zero(client: triton_grpc.InferenceServerClient) -> None:
    model = "accumulator_direct"
    step(client, model, 7, 5.0, start=True)
    assert step(client, model, 7, 1.0)[0] == 6.0
    assert step(client, model, 7, 1.0, start=True)[0] == 1.0  # restarted: the sum is reset
    step(client, model, 7, 0.0, end=True)


def test_tritons_errors(client: triton_grpc.InferenceServerClient) -> None:
    model = "accumulator_direct"
    x = infer_input("INPUT", np.array([[1.0]], np.float32), "FP32")
    assert_triton_error(
        lambda: client.infer(model, [x]),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"inference request to model '{model}' must specify a non-zero or non-empty correlation ID",
    )
    assert_triton_error(
        lambda: client.infer(model, [x], sequence_id=424242),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"inference request for sequence 424242 to model '{model}' must specify the START "
        "flag on the first request of the sequence",
    )
    two = infer_input("INPUT", np.ones((2, 1), np.float32), "FP32")
    assert_triton_error(
        lambda: client.infer(model, [two], sequence_id=9, sequence_start=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        "must specify batch-size 1 due to requirements of sequence batcher",
    )


def test_string_correlation_ids(client: triton_grpc.InferenceServerClient) -> None:
    """A string sequence_id works as an id (CORRID, a UINT64 control here, gets 0 for it)."""
    model = "accumulator_oldest"
    assert step(client, model, "user-a", 2.0, start=True)[0] == 2.0
    assert step(client, model, "user-b", 5.0, start=True)[0] == 5.0
    assert step(client, model, "user-a", 2.0, end=True) == (4.0, [0.0, 1.0, 1.0, 0.0])
    step(client, model, "user-b", 0.0, end=True)


def test_held_requests_are_bounded_by_the_servers_queue_bound(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A flood of new sequences while every slot is taken: the backlog holds up to
    --default-max-queue-size requests, the next is refused RESOURCE_EXHAUSTED, and the held
    ones run once the slot frees."""
    root = tmp_path_factory.mktemp("bounded-sequence-repository")
    name = "accumulator_one_slot"
    strategy = "oldest { max_candidate_sequences: 1 max_queue_delay_microseconds: 0 }"
    add_model(root, name, accumulator(), CONFIG.format(name=name, strategy=strategy))
    log = tmp_path_factory.mktemp("logs") / "bounded-sequence-server.log"
    with ServerProcess(root, log, ["--default-max-queue-size", "3"]) as server:
        server.wait_settled([name])
        with triton_grpc.InferenceServerClient(server.url) as client:
            step(client, name, 1, 1.0, start=True)  # sequence 1 holds the only slot
            answers: dict[int, object] = {}

            def held(sequence: int) -> None:
                x = infer_input("INPUT", np.array([[float(sequence)]], np.float32), "FP32")
                client.async_infer(
                    name,
                    [x],
                    lambda result, error: answers.__setitem__(sequence, error or result),
                    sequence_id=sequence,
                    sequence_start=True,
                    sequence_end=True,
                )

            for sequence in (2, 3, 4):
                held(sequence)
            time.sleep(0.5)  # async_infer returns before the server has them
            x = infer_input("INPUT", np.array([[9.0]], np.float32), "FP32")
            assert_triton_error(
                lambda: client.infer(
                    name, [x], sequence_id=99, sequence_start=True, client_timeout=5
                ),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"model '{name}': its sequence batcher holds 3 requests already",
            )
            assert answers == {}, "the held ones wait for the slot"
            step(client, name, 1, 0.0, end=True)
            for _ in range(500):
                if len(answers) == 3:
                    break
                time.sleep(0.01)
            for sequence in (2, 3, 4):
                result = answers[sequence]
                assert isinstance(result, triton_grpc.InferResult), result
                assert float(result.as_numpy("OUTPUT")[0, 0]) == float(sequence)
