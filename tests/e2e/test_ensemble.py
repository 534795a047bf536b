"""Ensembles (Triton's `platform: "ensemble"`) end to end through tritonclient: a two-step
chain, a diamond whose branches read an ensemble input directly and are joined by a third
step (outputs remapped to other names), batched and concurrent requests, gRPC and HTTP, each
compared with running the steps by hand in onnxruntime; a step failing at run time; and every
config Triton refuses, refused at load with what to fix (RepositoryIndex's reason)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from onnx import TensorProto, helper, numpy_helper
from support.models import finish, reshape_runtime_model
from support.repository import add_model
from support.rpc import assert_triton_error, infer_input
from support.server import ServerProcess

F = TensorProto.FLOAT
MAX_BATCH = 8


def affine_model(scale: float, offset: float) -> bytes:
    """Y = X * scale + offset, FP32 [batch, 4]."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["X", "s"], ["m"]), helper.make_node("Add", ["m", "o"], ["Y"])],
        "affine",
        [helper.make_tensor_value_info("X", F, ["batch", 4])],
        [helper.make_tensor_value_info("Y", F, ["batch", 4])],
        [
            numpy_helper.from_array(np.array(scale, np.float32), "s"),
            numpy_helper.from_array(np.array(offset, np.float32), "o"),
        ],
    )
    return finish(graph).SerializeToString()


def add_sub_model() -> bytes:
    """SUM = A + B, DIFF = A - B, FP32 [batch, 4]."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["A", "B"], ["SUM"]),
            helper.make_node("Sub", ["A", "B"], ["DIFF"]),
        ],
        "add_sub",
        [helper.make_tensor_value_info(n, F, ["batch", 4]) for n in ("A", "B")],
        [helper.make_tensor_value_info(n, F, ["batch", 4]) for n in ("SUM", "DIFF")],
    )
    return finish(graph).SerializeToString()


def model_config(name: str) -> str:
    return f"""name: "{name}"
max_batch_size: {MAX_BATCH}
dynamic_batching {{ max_queue_delay_microseconds: 500 }}
"""


def io(name: str, datatype: str = "TYPE_FP32", dims: str = "[ 4 ]") -> str:
    return f'{{ name: "{name}" data_type: {datatype} dims: {dims} }}'


def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    def entries(mapping: dict[str, str], field: str) -> str:
        return " ".join(f'{field} {{ key: "{k}" value: "{v}" }}' for k, v in mapping.items())

    return (
        f'{{ model_name: "{model}" model_version: -1 {entries(inputs, "input_map")} '
        f"{entries(outputs, 'output_map')} }}"
    )


def ensemble_config(
    name: str, inputs: list[str], outputs: list[str], steps: list[str], max_batch: int = MAX_BATCH
) -> str:
    return f"""name: "{name}"
platform: "ensemble"
max_batch_size: {max_batch}
input [ {", ".join(inputs)} ]
output [ {", ".join(outputs)} ]
ensemble_scheduling {{ step [ {", ".join(steps)} ] }}
"""


def add_ensemble(root: Path, name: str, config: str) -> None:
    (root / name / "1").mkdir(parents=True)  # Triton wants an empty version folder
    (root / name / "config.pbtxt").write_text(config, encoding="utf-8")


DOUBLE = {"X": "IN"}
CHAIN = ensemble_config(
    "chain",
    [io("IN")],
    [io("OUT")],
    [step("double", {"X": "IN"}, {"Y": "doubled"}), step("inc", {"X": "doubled"}, {"Y": "OUT"})],
)
DIAMOND = ensemble_config(
    "diamond",
    [io("IN")],
    [io("TOTAL"), io("GAP")],
    [
        step("add_sub", {"A": "left", "B": "right"}, {"SUM": "TOTAL", "DIFF": "GAP"}),
        step("double", {"X": "IN"}, {"Y": "left"}),
        step("inc", {"X": "IN"}, {"Y": "right"}),
    ],
)
FAILING = ensemble_config(
    "failing",
    [io("DATA"), io("SHAPE", "TYPE_INT64", "[ 1 ]")],
    [io("OUT", dims="[ -1 ]")],
    [step("reshaper", {"DATA": "DATA", "SHAPE": "SHAPE"}, {"OUTPUT0": "OUT"})],
    max_batch=0,
)
# Each refused as Triton refuses it: (name, config, a fragment of the load error).
INVALID = [
    (
        "bad_unknown",
        ensemble_config(
            "bad_unknown", [io("IN")], [io("OUT")], [step("nope", DOUBLE, {"Y": "OUT"})]
        ),
        "step 1 (model 'nope'): no such model in the repository",
    ),
    (
        "bad_cycle",
        ensemble_config(
            "bad_cycle",
            [io("IN")],
            [io("OUT")],
            [
                step("add_sub", {"A": "IN", "B": "loop"}, {"SUM": "OUT", "DIFF": "back"}),
                step("double", {"X": "back"}, {"Y": "loop"}),
            ],
        ),
        "the steps form a cycle",
    ),
    (
        "bad_twice",
        ensemble_config(
            "bad_twice",
            [io("IN")],
            [io("OUT")],
            [step("double", DOUBLE, {"Y": "OUT"}), step("inc", DOUBLE, {"Y": "OUT"})],
        ),
        "tensor 'OUT' is produced by step 1 (model 'double') and again by step 2",
    ),
    (
        "bad_ghost",
        ensemble_config(
            "bad_ghost", [io("IN")], [io("OUT")], [step("inc", {"X": "ghost"}, {"Y": "OUT"})]
        ),
        "reads tensor 'ghost', which no step's output_map produces",
    ),
    (
        "bad_unused",
        ensemble_config(
            "bad_unused",
            [io("IN")],
            [io("OUT")],
            [step("add_sub", {"A": "IN", "B": "IN"}, {"SUM": "OUT", "DIFF": "spare"})],
        ),
        "tensor 'spare' (step 1 (model 'add_sub')) is never used",
    ),
    (
        "bad_output",
        ensemble_config(
            "bad_output", [io("IN")], [io("OUT"), io("MORE")], [step("inc", DOUBLE, {"Y": "OUT"})]
        ),
        "output 'MORE' is not produced by any step",
    ),
    (
        "bad_dtype",
        ensemble_config(
            "bad_dtype", [io("IN", "TYPE_INT32")], [io("OUT")], [step("inc", DOUBLE, {"Y": "OUT"})]
        ),
        "tensor 'IN' is produced by ensemble input 'IN' (INT32 [-1, 4]) but read by step 1 "
        "(model 'inc') input 'X' (FP32 [-1, 4])",
    ),
    (
        "bad_shape",
        ensemble_config(
            "bad_shape", [io("IN", dims="[ 5 ]")], [io("OUT")], [step("inc", DOUBLE, {"Y": "OUT"})]
        ),
        "(FP32 [-1, 5]) but read by step 1 (model 'inc') input 'X' (FP32 [-1, 4])",
    ),
    (
        "bad_batch",
        ensemble_config(
            "bad_batch", [io("IN")], [io("OUT")], [step("inc", DOUBLE, {"Y": "OUT"})], max_batch=16
        ),
        "allows max_batch_size 16, but step 1 (model 'inc') allows only 8",
    ),
    (
        "bad_key",
        ensemble_config(
            "bad_key", [io("IN")], [io("OUT")], [step("inc", {"WRONG": "IN"}, {"Y": "OUT"})]
        ),
        "input_map key 'WRONG' is not an input of the model (inputs: ['X'])",
    ),
    (
        "bad_composing",
        ensemble_config(
            "bad_composing", [io("IN")], [io("OUT")], [step("broken", DOUBLE, {"Y": "OUT"})]
        ),
        "step 1 (model 'broken'): the model ",
    ),
]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ensemble-repository")
    add_model(root, "double", affine_model(2.0, 0.0), model_config("double"))
    add_model(root, "inc", affine_model(1.0, 1.0), model_config("inc"))
    add_model(root, "add_sub", add_sub_model(), model_config("add_sub"))
    add_model(root, "reshaper", reshape_runtime_model())
    add_model(root, "broken", b"not an onnx model", model_config("broken"))
    for name, config in [("chain", CHAIN), ("diamond", DIAMOND), ("failing", FAILING)]:
        add_ensemble(root, name, config)
    for name, config, _ in INVALID:
        add_ensemble(root, name, config)
    return root


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "ensemble-server.log"
    with ServerProcess(repository, log) as running:
        running.wait_settled(["chain", "diamond", "failing", *(n for n, _, _ in INVALID)])
        yield running


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[triton_grpc.InferenceServerClient]:
    with triton_grpc.InferenceServerClient(server.url) as client:
        yield client


def by_hand(repository: Path, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What onnxruntime gives for one composing model, run directly."""
    session = ort.InferenceSession(str(repository / model / "1" / "model.onnx"))
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def infer(
    client: triton_grpc.InferenceServerClient, model: str, x: np.ndarray, outputs: list[str]
) -> dict[str, np.ndarray]:
    wanted = [triton_grpc.InferRequestedOutput(name) for name in outputs]
    result = client.infer(model, [infer_input("IN", x, "FP32")], outputs=wanted)
    response = result.get_response()
    assert [o.name for o in response.outputs] == outputs
    return {name: result.as_numpy(name) for name in outputs}


def test_a_chain_equals_its_steps_run_by_hand(
    client: triton_grpc.InferenceServerClient, repository: Path
) -> None:
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    doubled = by_hand(repository, "double", {"X": x})["Y"]
    expected = by_hand(repository, "inc", {"X": doubled})["Y"]
    assert np.array_equal(infer(client, "chain", x, ["OUT"])["OUT"], expected)
    metadata = client.get_model_metadata("chain")
    assert metadata.platform == "ensemble"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("IN", "FP32", [-1, 4])
    ]
    config = client.get_model_config("chain").config
    assert [s.model_name for s in config.ensemble_scheduling.step] == ["double", "inc"]


def test_a_diamond_joins_its_branches_with_outputs_remapped(
    client: triton_grpc.InferenceServerClient, repository: Path
) -> None:
    x = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    left = by_hand(repository, "double", {"X": x})["Y"]
    right = by_hand(repository, "inc", {"X": x})["Y"]
    joined = by_hand(repository, "add_sub", {"A": left, "B": right})
    both = infer(client, "diamond", x, ["TOTAL", "GAP"])
    assert np.array_equal(both["TOTAL"], joined["SUM"])
    assert np.array_equal(both["GAP"], joined["DIFF"])
    # Only the requested outputs come back.
    assert np.array_equal(infer(client, "diamond", x, ["GAP"])["GAP"], joined["DIFF"])


def test_batched_concurrent_requests_each_get_their_own_answer(
    client: triton_grpc.InferenceServerClient, server: ServerProcess
) -> None:
    def one(seed: int) -> bool:
        rows = 1 + seed % MAX_BATCH
        x = np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)
        with triton_grpc.InferenceServerClient(server.url) as own:
            out = infer(own, "chain", x, ["OUT"])["OUT"]
        return bool(np.allclose(out, x * 2 + 1, rtol=0, atol=1e-6)) and out.shape == (rows, 4)

    before = client.get_inference_statistics("chain").model_stats[0].inference_stats.success.count
    steps_before = client.get_inference_statistics("inc").model_stats[0].inference_stats
    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(one, range(64)))
    stats = client.get_inference_statistics("chain").model_stats[0]
    assert stats.inference_stats.success.count == before + 64
    # Triton's ensemble statistics: each request one execution, its steps' queue and compute
    # durations summed.
    assert stats.execution_count == stats.inference_stats.success.count
    assert stats.inference_stats.queue.count == stats.execution_count
    assert stats.inference_stats.compute_infer.count == stats.execution_count
    assert stats.inference_stats.compute_infer.ns > 0
    inc = client.get_inference_statistics("inc").model_stats[0].inference_stats
    assert inc.success.count == steps_before.success.count + 64  # the composing model's own


def test_http_reaches_the_same_ensemble(server: ServerProcess) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    with triton_http.InferenceServerClient(server.http_url) as client:
        data = triton_http.InferInput("IN", [2, 4], "FP32")
        data.set_data_from_numpy(x)
        result = client.infer("chain", [data])
    assert np.array_equal(result.as_numpy("OUT"), x * 2 + 1)


def test_a_failing_step_names_itself(client: triton_grpc.InferenceServerClient) -> None:
    data = infer_input("DATA", np.arange(4, dtype=np.float32), "FP32")
    fine = infer_input("SHAPE", np.array([0], np.int64), "INT64")
    assert client.infer("failing", [data, fine]).as_numpy("OUT").tolist() == [0, 1, 2, 3]
    bad = infer_input("SHAPE", np.array([3], np.int64), "INT64")
    assert_triton_error(
        lambda: client.infer("failing", [data, bad]),
        grpc.StatusCode.INTERNAL,
        "ensemble 'failing' step 1 (model 'reshaper'): ",
    )
    fail = client.get_inference_statistics("failing").model_stats[0].inference_stats.fail
    assert fail.count >= 1


def test_requests_it_cannot_take_natively_are_worded(
    client: triton_grpc.InferenceServerClient,
) -> None:
    wrong = infer_input("IN", np.ones((1, 5), np.float32), "FP32")
    assert_triton_error(lambda: client.infer("chain", [wrong]), grpc.StatusCode.INVALID_ARGUMENT)
    # Large enough that gzip makes it smaller (grpc sends a message that does not shrink as is).
    x = infer_input("IN", np.ones((MAX_BATCH, 4), np.float32), "FP32")
    assert_triton_error(
        lambda: client.infer("chain", [x], compression_algorithm="gzip"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ensemble 'chain' runs its steps in the native front end only",
    )


@pytest.mark.parametrize(("name", "fragment"), [(n, f) for n, _, f in INVALID])
def test_invalid_ensembles_are_refused_saying_what_to_fix(
    server: ServerProcess, name: str, fragment: str
) -> None:
    rows = server.wait_settled([name])[name]
    assert rows[0].state == "UNAVAILABLE"
    assert fragment in rows[0].reason, rows[0].reason


def test_composing_models_stay_callable_on_their_own(
    client: triton_grpc.InferenceServerClient,
) -> None:
    x = np.ones((1, 4), np.float32)
    result = client.infer("inc", [infer_input("X", x, "FP32")])
    assert np.array_equal(result.as_numpy("Y"), x + 1)
