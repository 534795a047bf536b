"""Tiny ONNX models built with the `onnx` helper API (opset 17, ir_version 8), plus the numpy
inputs and the in-process onnxruntime reference the end-to-end tests compare against."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8

# v2 datatype -> (ONNX element type, numpy dtype the client uses; BF16 travels as uint16 bits).
DATATYPES: dict[str, tuple[int, Any]] = {
    "BOOL": (TensorProto.BOOL, np.bool_),
    "UINT8": (TensorProto.UINT8, np.uint8),
    "UINT16": (TensorProto.UINT16, np.uint16),
    "UINT32": (TensorProto.UINT32, np.uint32),
    "UINT64": (TensorProto.UINT64, np.uint64),
    "INT8": (TensorProto.INT8, np.int8),
    "INT16": (TensorProto.INT16, np.int16),
    "INT32": (TensorProto.INT32, np.int32),
    "INT64": (TensorProto.INT64, np.int64),
    "FP16": (TensorProto.FLOAT16, np.float16),
    "BF16": (TensorProto.BFLOAT16, np.uint16),
    "FP32": (TensorProto.FLOAT, np.float32),
    "FP64": (TensorProto.DOUBLE, np.float64),
    "BYTES": (TensorProto.STRING, np.object_),
}
# Triton config enum names (BYTES is TYPE_STRING in config.pbtxt).
CONFIG_TYPE = {name: "TYPE_STRING" if name == "BYTES" else f"TYPE_{name}" for name in DATATYPES}

# Shapes of the identity models: batched ones are [batch, 4], unbatched ones a fixed [2, 3].
BATCH_DIMS = [4]
NOBATCH_SHAPE = [2, 3]
IDENTITY_MAX_BATCH = 8


def finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _info(name: str, elem: int, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def identity_model(datatype: str, shape: Sequence[int | str]) -> onnx.ModelProto:
    """OUTPUT0 = Identity(INPUT0) of one v2 datatype."""
    elem = DATATYPES[datatype][0]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        f"identity_{datatype.lower()}",
        [_info("INPUT0", elem, shape)],
        [_info("OUTPUT0", elem, shape)],
    )
    return finish(graph)


def add_sub_model() -> onnx.ModelProto:
    """Two FP32 inputs [batch, 4] -> SUM = A + B and DIFF = A - B."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["A", "B"], ["SUM"]),
            helper.make_node("Sub", ["A", "B"], ["DIFF"]),
        ],
        "add_sub",
        [_info("A", TensorProto.FLOAT, ["batch", 4]), _info("B", TensorProto.FLOAT, ["batch", 4])],
        [
            _info("SUM", TensorProto.FLOAT, ["batch", 4]),
            _info("DIFF", TensorProto.FLOAT, ["batch", 4]),
        ],
    )
    return finish(graph)


def plus_constant_model(value: float, shape: Sequence[int | str] = ("batch", 4)) -> onnx.ModelProto:
    """FP32 OUTPUT0 = INPUT0 + value (tells versions of one model apart)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "c"], ["OUTPUT0"])],
        "plus_constant",
        [_info("INPUT0", TensorProto.FLOAT, shape)],
        [_info("OUTPUT0", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(np.array(value, dtype=np.float32), "c")],
    )
    return finish(graph)


def reshape_runtime_model() -> onnx.ModelProto:
    """OUTPUT0 = Reshape(DATA [4] FP32, SHAPE [1] INT64): zeros reshape fine (0 copies the dim),
    SHAPE [3] makes onnxruntime fail at run time."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["DATA", "SHAPE"], ["OUTPUT0"])],
        "reshape_runtime",
        [_info("DATA", TensorProto.FLOAT, [4]), _info("SHAPE", TensorProto.INT64, [1])],
        [_info("OUTPUT0", TensorProto.FLOAT, ["n"])],
    )
    return finish(graph)


# Labels of `mixed_text_model`: an empty string, an embedded NUL, non-ASCII UTF-8.
MIXED_LABELS = [b"", b"nul\0inside", "caf\u00e9 \u65e5\u672c".encode()]


def mixed_text_model() -> onnx.ModelProto:
    """String and numeric tensors in one graph: TEXT [batch, 2] string and X [batch, 3] float
    in; ECHO = TEXT, LABEL = MIXED_LABELS[argmax(X)] ([batch, 1] string, a string output that
    depends on a numeric input) and DOUBLE = X + X out."""
    labels = np.empty(len(MIXED_LABELS), dtype=object)
    labels[:] = MIXED_LABELS
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["TEXT"], ["ECHO"]),
            helper.make_node("ArgMax", ["X"], ["best"], axis=1, keepdims=1),
            helper.make_node("Gather", ["labels", "best"], ["LABEL"], axis=0),
            helper.make_node("Add", ["X", "X"], ["DOUBLE"]),
        ],
        "mixed_text",
        [
            _info("TEXT", TensorProto.STRING, ["batch", 2]),
            _info("X", TensorProto.FLOAT, ["batch", 3]),
        ],
        [
            _info("ECHO", TensorProto.STRING, ["batch", 2]),
            _info("LABEL", TensorProto.STRING, ["batch", 1]),
            _info("DOUBLE", TensorProto.FLOAT, ["batch", 3]),
        ],
        [numpy_helper.from_array(labels, "labels")],
    )
    return finish(graph)


def reference_strings(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """`reference` for models with string tensors: BYTES inputs (object arrays of bytes) are
    fed as str, as the Python path feeds them, and string outputs come back as UTF-8 bytes."""

    def text(array: np.ndarray) -> np.ndarray:
        if array.dtype != object:
            return array
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array)

    outputs = reference(path, {name: text(array) for name, array in feeds.items()})
    return [
        np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(out)
        if out.dtype == object
        else out
        for out in outputs
    ]


CORRUPT_BYTES = b"\x00this is not an onnx model\xff" * 8


def ort_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def reference(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """What in-process onnxruntime returns for `feeds` (no BF16 here: see reference_bf16)."""
    return list(ort_session(path).run(None, feeds))


def reference_bf16(path: Path, name: str, bits: np.ndarray) -> list[bytes]:
    """Runs a BF16 model in-process on `bits` (uint16 bit patterns) via OrtValue and returns
    each output's raw bytes."""
    session = ort_session(path)
    value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
        np.ascontiguousarray(bits), TensorProto.BFLOAT16
    )
    outputs = session.run_with_ort_values([o.name for o in session.get_outputs()], {name: value})
    raw = []
    for output in outputs:
        count = int(np.prod(output.shape()))
        # numpy has no bfloat16; OrtValue.numpy() cannot read it, so copy the 2-byte elements.
        raw.append(ctypes.string_at(output.data_ptr(), count * 2))
    return raw


def sample(datatype: str, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Deterministic test data that exercises each type's range (extremes, negatives, NaN-free
    floats, non-ASCII UTF-8 for BYTES)."""
    rng = np.random.default_rng(seed)
    count = int(np.prod(shape))
    if datatype == "BOOL":
        return (np.arange(count) % 3 == 0).reshape(shape)
    if datatype == "BYTES":
        words = [b"", b"a", b"hello", "caf\u00e9".encode(), "\u65e5\u672c".encode(), b"x" * 40]
        values = np.empty(count, dtype=object)
        values[:] = [words[(i + seed) % len(words)] + str(i).encode() for i in range(count)]
        return values.reshape(shape)
    if datatype == "BF16":
        # Bit patterns of ordinary bf16 numbers (sign, exponent 0x3f..0x40, any mantissa).
        high = rng.integers(0x3E, 0x42, count, dtype=np.uint16) | (
            (np.arange(count, dtype=np.uint16) % 2) << 7
        ).astype(np.uint16)
        return ((high << 8) | rng.integers(0, 256, count, dtype=np.uint16)).reshape(shape)
    dtype = np.dtype(DATATYPES[datatype][1])
    if dtype.kind == "f":
        return (rng.standard_normal(count) * 100).astype(dtype).reshape(shape)
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max, count, dtype=dtype, endpoint=True)
    values[0] = info.max
    if count > 1:
        values[1] = info.min
    return values.reshape(shape)
