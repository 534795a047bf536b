"""Real-world ONNX graphs served end to end from one repository through tritonclient
(support/real_world.py: convolutions, attention, an LSTM, embeddings, ai.onnx.ml string ops,
data-dependent output shapes, string inputs, scalars, an initializer a request may override),
each answer compared with in-process onnxruntime's. The test reports the share served
correctly; the aim (issue 18) is every model in-process onnxruntime runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
from support.admin import run_cli
from support.models import reference_strings
from support.real_world import LABELS, Feeds, RealWorldModel, real_world_models
from support.repository import add_model, model_file
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)
MODELS = real_world_models()


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real-world-repository")
    for model in MODELS:
        folder = add_model(root, model.name, model.model, model.config)
        for name, text in model.files.items():
            (folder / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def served(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, triton_grpc.InferenceServerClient]]:
    log = tmp_path_factory.mktemp("logs") / "real-world-server.log"
    with ServerProcess(repository, log) as server:
        # Settled, not ready: a model that fails to load is reported by the share test.
        server.wait_settled([model.name for model in MODELS])
        with triton_grpc.InferenceServerClient(server.url) as client:
            yield server, client


def _reference(path: Path, feeds: Feeds) -> list[np.ndarray]:
    """In-process onnxruntime's outputs (scalar graph inputs fed as scalars: clients send
    them as [1], as Triton's onnxruntime backend expects)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scalars = {i.name for i in session.get_inputs() if i.shape == []}
    shaped = {name: a.reshape(()) if name in scalars else a for name, a in feeds.items()}
    return reference_strings(path, shaped)


def _infer(
    client: triton_grpc.InferenceServerClient, model: RealWorldModel, feeds: Feeds
) -> triton_grpc.InferResult:
    inputs = []
    for name, array in feeds.items():
        datatype = "BYTES" if array.dtype == object else triton_grpc.np_to_triton_dtype(array.dtype)
        tensor = triton_grpc.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return client.infer(model.name, inputs)


def _same(got: np.ndarray | None, expected: np.ndarray) -> str | None:
    """None when `got` is what onnxruntime returned (a graph scalar travels as [1])."""
    if got is None:
        return "no such output"
    shape = (1,) if expected.ndim == 0 else expected.shape
    if got.shape != shape:
        return f"shape {list(got.shape)}, expected {list(shape)}"
    expected = expected.reshape(shape)
    if expected.dtype.kind == "f":
        if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
            return f"values {got.ravel()[:4]}..., expected {expected.ravel()[:4]}..."
    elif not np.array_equal(got, expected):
        return f"values {got.ravel()[:4]}..., expected {expected.ravel()[:4]}..."
    return None


def _top_classes(probs: np.ndarray, count: int) -> list[list[bytes]]:
    """Triton's classification answer per row: "value:index:label", highest value first."""
    rows = []
    for row in probs:
        best = sorted(range(len(row)), key=lambda i: (-row[i], i))[:count]
        rows.append([f"{row[i]:f}:{i}:{LABELS[i]}".encode() for i in best])
    return rows


def _check(
    client: triton_grpc.InferenceServerClient, root: Path, model: RealWorldModel
) -> str | None:
    """None when every request of `model` is answered as in-process onnxruntime answers it,
    else what differs."""
    if not client.is_model_ready(model.name):
        return "not ready"
    path = model_file(root, model.name)
    output_names = [o.name for o in ort.InferenceSession(str(path)).get_outputs()]
    for number, feeds in enumerate(model.requests):
        expected = dict(zip(output_names, _reference(path, feeds), strict=True))
        try:
            result = _infer(client, model, feeds)
        except triton_grpc.InferenceServerException as error:
            return f"request {number}: {error.message()}"
        for name, value in expected.items():
            problem = _same(result.as_numpy(name), value)
            if problem:
                return f"request {number} output '{name}': {problem}"
        for name, count in model.classify.items():
            inputs = []
            for input_name, array in feeds.items():
                tensor = triton_grpc.InferInput(input_name, list(array.shape), "FP32")
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            wanted = [triton_grpc.InferRequestedOutput(name, class_count=count)]
            classes = client.infer(model.name, inputs, outputs=wanted).as_numpy(name)
            if classes is None or classes.tolist() != _top_classes(expected[name], count):
                return f"request {number} classification of '{name}': {classes}"
    return None


def test_real_world_models_are_served_as_onnxruntime_runs_them(
    served: tuple[ServerProcess, triton_grpc.InferenceServerClient], repository: Path
) -> None:
    _, client = served
    problems = {model.name: _check(client, repository, model) for model in MODELS}
    correct = [name for name, problem in problems.items() if problem is None]
    share = len(correct) / len(MODELS)
    print(f"\nreal-world models served correctly: {len(correct)}/{len(MODELS)} ({share:.0%})")
    for name, problem in problems.items():
        print(f"  {name}: {'ok' if problem is None else problem}")
    assert share == 1.0, {name: p for name, p in problems.items() if p is not None}


def test_failed_generated_warmups_are_reported_and_the_models_serve(
    served: tuple[ServerProcess, triton_grpc.InferenceServerClient],
) -> None:
    """Zeros are no valid input for `arange` (a zero Range delta) nor `parse_numbers` (empty
    strings are no numbers): Triton, which warms up only what model_warmup configures, loads
    both, and so does ferroserve, saying in its log that the generated request failed, and to
    clients as the READY version's reason (RepositoryIndex, `ferroserve versions`); a model
    whose generated request ran has no reason."""
    server, client = served
    log = server.log()
    index = {row.name: row for row in client.get_model_repository_index().models}
    for name in ("arange", "parse_numbers"):
        assert client.is_model_ready(name)
        assert f"model '{name}' version 1: generated warm-up request failed" in log, log
        assert index[name].state == "READY"
        assert index[name].reason.startswith("warm-up: generated warm-up request failed"), index
        code, out, _ = run_cli("versions", name, "--server", server.url)
        assert code == 0 and f"{name} 1: warm-up: generated warm-up request failed" in out, out
    served_well = [m.name for m in MODELS if m.name not in ("arange", "parse_numbers")]
    assert all(index[name].reason == "" for name in served_well), index


def test_classification_is_announced(
    served: tuple[ServerProcess, triton_grpc.InferenceServerClient],
) -> None:
    _, client = served
    assert "classification" in client.get_server_metadata().extensions
