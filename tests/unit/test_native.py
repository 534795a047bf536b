"""The native engine (onnxruntime's C API from Rust): which models it takes, that it computes
what onnxruntime's Python binding computes, and that its executor settles asyncio futures."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import DeadlineExceededError, InternalError, ModelLoadError
from ferroserve.runtime.native import library_path
from ferroserve.runtime.session import create_session
from google.protobuf import text_format
from onnx import TensorProto, helper

from tests.support.models import (
    CORRUPT_BYTES,
    DATATYPES,
    MIXED_LABELS,
    add_sub_model,
    finish,
    identity_model,
    mixed_text_model,
    reference,
    reference_bf16,
    reference_strings,
    reshape_runtime_model,
    sample,
)
from tests.support.rpc import decode_bytes, encode_bytes

FIXED_SIZE = [name for name in DATATYPES if name != "BYTES"]


def save(model: onnx.ModelProto, tmp_path: Path, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def config(text: str = "") -> mc.ModelConfig:
    return text_format.Parse(f'name: "m" {text}', mc.ModelConfig())


def load(path: Path) -> _core.OrtModel:
    library = library_path()
    assert library is not None, "the onnxruntime wheel ships its shared library"
    return _core.OrtModel.load(library, path)


def executor(model: _core.OrtModel, queue: _core.BatchQueue, names: tuple[str, str]) -> Any:
    return _core.OrtExecutor(
        "m",
        model,
        queue,
        input_names=[names[0]],
        output_names=[names[1]],
        batches=True,
        input_reshapes=[None],
        output_reshapes=[None],
    )


def test_cpu_models_load_on_the_native_engine(tmp_path: Path) -> None:
    path = save(add_sub_model(), tmp_path)
    loaded = create_session(config(), path)
    assert loaded.native is not None and loaded.session is None
    assert [t.name for t in loaded.inputs] == ["A", "B"]
    assert loaded.inputs[0].onnx_type == "tensor(float)"
    assert loaded.inputs[0].shape == (None, 4)


def test_native_engine_false_keeps_the_python_binding(tmp_path: Path) -> None:
    path = save(add_sub_model(), tmp_path)
    text = 'parameters { key: "native_engine" value { string_value: "false" } }'
    loaded = create_session(config(text), path)
    assert loaded.native is None and loaded.session is not None


def test_unknown_native_engine_value_fails_the_load(tmp_path: Path) -> None:
    path = save(add_sub_model(), tmp_path)
    text = 'parameters { key: "native_engine" value { string_value: "maybe" } }'
    with pytest.raises(ModelLoadError, match=r"native_engine.*'maybe'"):
        create_session(config(text), path)


def test_string_models_load_on_the_native_engine(tmp_path: Path) -> None:
    path = save(mixed_text_model(), tmp_path)
    loaded = create_session(config(), path)
    assert loaded.native is not None and loaded.session is None
    assert [(t.name, t.onnx_type) for t in loaded.inputs] == [
        ("TEXT", "tensor(string)"),
        ("X", "tensor(float)"),
    ]
    assert [t.onnx_type for t in loaded.outputs] == [
        "tensor(string)",
        "tensor(string)",
        "tensor(float)",
    ]


def test_graphs_with_non_tensor_outputs_fall_back_to_the_python_binding_and_say_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["X"], ["S"])],
        "sequence",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_sequence_value_info("S", TensorProto.FLOAT, [2])],
    )
    path = save(finish(graph), tmp_path)
    with caplog.at_level(logging.INFO, logger="ferroserve.runtime.native"):
        loaded = create_session(config(), path)
    assert loaded.native is None and loaded.session is not None
    assert "output 'S' has type" in caplog.text
    with pytest.raises(NotImplementedError, match="native engine does not run"):
        load(path)


def test_a_corrupt_file_fails_the_load_with_onnxruntimes_reason(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(CORRUPT_BYTES)
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        create_session(config(), path)


@pytest.mark.parametrize("datatype", FIXED_SIZE)
def test_outputs_equal_the_python_binding_bit_for_bit(datatype: str, tmp_path: Path) -> None:
    path = save(identity_model(datatype, ["batch", 4]), tmp_path)
    data = sample(datatype, [3, 4])
    model = load(path)
    run = executor(model, _core.BatchQueue("m", 8), ("INPUT0", "OUTPUT0"))
    buffers, shapes = run.run([data.tobytes()], [[3, 4]])
    expected = (
        reference_bf16(path, "INPUT0", data)[0]
        if datatype == "BF16"
        else reference(path, {"INPUT0": data})[0].tobytes()
    )
    assert buffers == [expected]
    assert shapes == [[3, 4]]


def text(elements: list[bytes], shape: list[int]) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    return array.reshape(shape)


# Empty, NUL bytes (embedded, leading, trailing), non-ASCII UTF-8, long, and many elements.
TRICKY_STRINGS = [
    [b"", b"\0", b"a\0b", b"end\0", "\u00e9\u65e5\u672c\U0001f600".encode(), b"x" * 70_000],
    [f"element {i}".encode() for i in range(3000)],
]


@pytest.mark.parametrize("elements", TRICKY_STRINGS, ids=["tricky", "many"])
def test_string_outputs_equal_the_python_binding_bit_for_bit(
    elements: list[bytes], tmp_path: Path
) -> None:
    path = save(identity_model("BYTES", ["batch", "n"]), tmp_path)
    shape = [2, len(elements) // 2]
    run = executor(load(path), _core.BatchQueue("m", 8), ("INPUT0", "OUTPUT0"))
    buffers, shapes = run.run([encode_bytes(elements)], [shape])
    (expected,) = reference_strings(path, {"INPUT0": text(elements, shape)})
    assert buffers == [encode_bytes(list(expected.reshape(-1)))]
    assert buffers == [encode_bytes(elements)]
    assert shapes == [shape]


def test_strings_that_are_not_utf8_pass_through_the_engine_unchanged(tmp_path: Path) -> None:
    """The engine copies every element with its length: bytes that are not UTF-8 (which the
    request path refuses before they get here) are not its business."""
    path = save(identity_model("BYTES", ["n"]), tmp_path)
    elements = [b"\xff\xfe", b"ok", b"\xc3", b"\x00\x80"]
    run = _core.OrtExecutor(
        "m",
        load(path),
        _core.BatchQueue("m", 0),
        input_names=["INPUT0"],
        output_names=["OUTPUT0"],
        batches=False,
        input_reshapes=[None],
        output_reshapes=[None],
    )
    buffers, shapes = run.run([encode_bytes(elements)], [[4]])
    assert buffers == [encode_bytes(elements)] and shapes == [[4]]


def test_a_mixed_string_and_numeric_model_equals_the_python_binding(tmp_path: Path) -> None:
    path = save(mixed_text_model(), tmp_path)
    words = [b"", b"a\0", "\u00e9".encode(), b"xyz"]
    x = np.array([[1, 0, 0], [0, 0, 1]], dtype=np.float32)
    run = _core.OrtExecutor(
        "m",
        load(path),
        _core.BatchQueue("m", 8),
        input_names=["TEXT", "X"],
        output_names=["ECHO", "LABEL", "DOUBLE"],
        batches=True,
        input_reshapes=[None, None],
        output_reshapes=[None, None, None],
    )
    buffers, shapes = run.run([encode_bytes(words), x.tobytes()], [[2, 2], [2, 3]])
    echo, label, double = reference_strings(path, {"TEXT": text(words, [2, 2]), "X": x})
    assert buffers == [
        encode_bytes(list(echo.reshape(-1))),
        encode_bytes(list(label.reshape(-1))),
        double.tobytes(),
    ]
    assert decode_bytes(buffers[1]) == [MIXED_LABELS[0], MIXED_LABELS[2]]
    assert shapes == [[2, 2], [2, 1], [2, 3]]


def test_malformed_bytes_reaching_the_engine_are_an_input_error(tmp_path: Path) -> None:
    path = save(identity_model("BYTES", ["batch", 2]), tmp_path)
    run = executor(load(path), _core.BatchQueue("m", 8), ("INPUT0", "OUTPUT0"))
    with pytest.raises(_core.InvalidInputError, match="input 'INPUT0': BYTES contents: element 1"):
        run.run([encode_bytes([b"a"]) + b"\x09\0\0\0x"], [[1, 2]])


def test_a_runtime_failure_is_an_internal_error_with_onnxruntimes_message(tmp_path: Path) -> None:
    path = save(reshape_runtime_model(), tmp_path)
    run = _core.OrtExecutor(
        "m",
        load(path),
        _core.BatchQueue("m", 0),
        input_names=["DATA", "SHAPE"],
        output_names=["OUTPUT0"],
        batches=False,
        input_reshapes=[None, None],
        output_reshapes=[None],
    )
    data = np.arange(4, dtype=np.float32).tobytes()
    buffers, shapes = run.run([data, np.array([0], np.int64).tobytes()], [[4], [1]])
    assert shapes == [[4]] and buffers == [data]
    with pytest.raises(InternalError, match="Reshape"):
        run.run([data, np.array([3], np.int64).tobytes()], [[4], [1]])


def test_executor_threads_settle_futures_through_the_pipe(tmp_path: Path) -> None:
    """Requests queued from the event loop are answered by the executor thread; the loop
    learns of it only through the pipe it watches."""
    path = save(identity_model("FP32", ["batch", 4]), tmp_path)
    queue = _core.BatchQueue("m", 8)
    run = executor(load(path), queue, ("INPUT0", "OUTPUT0"))
    arrays = [sample("FP32", [rows, 4], seed=rows) for rows in (1, 2, 3)]

    async def scenario() -> list[tuple[list[bytes], list[list[int]]]]:
        loop = asyncio.get_running_loop()
        loop.add_reader(run.fileno(), run.settle)
        run.start()
        try:
            futures = [loop.create_future() for _ in arrays]
            for array, future in zip(arrays, futures, strict=True):
                queue.submit([array.tobytes()], [list(array.shape)], future)
            return list(await asyncio.wait_for(asyncio.gather(*futures), 5))
        finally:
            loop.remove_reader(run.fileno())

    results = asyncio.run(scenario())
    for array, (buffers, shapes) in zip(arrays, results, strict=True):
        assert buffers == [array.tobytes()]
        assert shapes == [list(array.shape)]
    queue.close(True)
    assert run.join(5.0)


def test_queue_timeouts_reach_the_future_as_deadline_exceeded(tmp_path: Path) -> None:
    path = save(identity_model("FP32", ["batch", 4]), tmp_path)
    queue = _core.BatchQueue("m", 8)
    run = executor(load(path), queue, ("INPUT0", "OUTPUT0"))
    data = sample("FP32", [1, 4])

    async def scenario() -> BaseException | None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        queue.submit([data.tobytes()], [[1, 4]], future, deadline_s=0.0)
        await asyncio.sleep(0.01)  # the deadline passes before any executor looks
        loop.add_reader(run.fileno(), run.settle)
        run.start()
        try:
            await asyncio.wait_for(asyncio.wait([future]), 5)
            return future.exception()
        finally:
            loop.remove_reader(run.fileno())

    error = asyncio.run(scenario())
    assert isinstance(error, DeadlineExceededError)
    queue.close(True)
    assert run.join(5.0)
