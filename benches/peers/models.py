"""The three models every server serves, built with the `onnx` helper API (no downloads): a tiny
Gemm (the request path's own cost), the MLP of the other benchmarks and a small CNN. All take
FP32 `input` [N, ...] and return FP32 `output` [N, width] with a dynamic batch dimension."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
INPUT = "input"
OUTPUT = "output"
# The opset ferroserve.demo uses; every onnxruntime from 1.14 on reads it.
OPSET = 17


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: its name on every server, the shape of one input row and of one output row."""

    name: str
    description: str
    row_shape: tuple[int, ...]
    output_width: int
    build: Callable[[], onnx.ModelProto]

    @property
    def row_size(self) -> int:
        """FP32 values per input row (the transport ceiling's `--inputs`)."""
        return math.prod(self.row_shape)

    def sample(self, rows: int, seed: int = 0) -> np.ndarray:
        """A random request of `rows` rows, the same for every server."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((rows, *self.row_shape)).astype(np.float32)


def gemm_model() -> onnx.ModelProto:
    """[N, 4] -> Gemm -> [N, 4]: almost no compute, so a server's own overhead shows."""
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", [INPUT, "w", "b"], [OUTPUT])],
        "gemm",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 4])],
        [weight, bias],
    )
    return _finish(graph)


def cnn_model() -> onnx.ModelProto:
    """[N, 3, 64, 64] -> conv 3x3/2 (8) -> ReLU -> conv 3x3/2 (16) -> ReLU -> global average
    pool -> Gemm -> [N, 10]: ~0.5 M multiply-adds per row."""
    rng = np.random.default_rng(2)

    def weights(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        fan_in = math.prod(shape[1:])
        values = rng.standard_normal(shape) / np.sqrt(fan_in)
        return numpy_helper.from_array(values.astype(np.float32), name)

    def conv(inputs: list[str], output: str) -> onnx.NodeProto:
        return helper.make_node(
            "Conv", inputs, [output], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        )

    nodes = [
        conv([INPUT, "c1w", "c1b"], "c1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        conv(["r1", "c2w", "c2b"], "c2"),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fw", "fb"], [OUTPUT]),
    ]
    initializers = [
        weights("c1w", (8, 3, 3, 3)),
        numpy_helper.from_array(np.zeros(8, np.float32), "c1b"),
        weights("c2w", (16, 8, 3, 3)),
        numpy_helper.from_array(np.zeros(16, np.float32), "c2b"),
        weights("fw", (16, 10)),
        numpy_helper.from_array(np.zeros(10, np.float32), "fb"),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 10])],
        initializers,
    )
    return _finish(graph)


def mlp() -> onnx.ModelProto:
    """The MLP [N, 64] -> 256 -> 256 -> 10 of the serving and batching benchmarks."""
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(REPO_ROOT / "python"))
    from ferroserve.demo import mlp_model

    return mlp_model(hidden=(256, 256))


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec("gemm", "tiny Gemm [N,4] -> [N,4]", (4,), 4, gemm_model),
        ModelSpec("mlp", "MLP [N,64] -> 256 -> 256 -> 10", (64,), 10, mlp),
        ModelSpec("cnn", "CNN [N,3,64,64] -> 2 conv -> pool -> 10", (3, 64, 64), 10, cnn_model),
    )
}


def write_models(folder: Path) -> dict[str, Path]:
    """Writes every model as `folder/<name>.onnx`; the repositories copy or point at these."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in MODELS.items():
        paths[name] = folder / f"{name}.onnx"
        onnx.save(spec.build(), str(paths[name]))
    return paths
