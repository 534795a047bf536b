"""Small ONNX models built with the `onnx` helper API: the demo repository, tests and benchmarks
use these instead of downloading anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ONNX opset 17 is understood by every onnxruntime from 1.14 on.
OPSET = 17


def mlp_model(
    inputs: int = 64,
    hidden: tuple[int, ...] = (256, 256),
    outputs: int = 10,
    seed: int = 0,
    input_name: str = "input",
    output_name: str = "output",
) -> onnx.ModelProto:
    """A float32 MLP [N, inputs] -> hidden (ReLU) ... -> [N, outputs] with a dynamic batch dim."""
    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    previous, width = input_name, inputs
    sizes = [*hidden, outputs]
    for layer, size in enumerate(sizes):
        weight = (rng.standard_normal((width, size)) / np.sqrt(width)).astype(np.float32)
        bias = (rng.standard_normal(size) * 0.01).astype(np.float32)
        initializers += [
            numpy_helper.from_array(weight, f"w{layer}"),
            numpy_helper.from_array(bias, f"b{layer}"),
        ]
        last = layer == len(sizes) - 1
        gemm_out = output_name if last else f"h{layer}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{layer}", f"b{layer}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"r{layer}"]))
            previous = f"r{layer}"
        width = size
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", outputs])],
        initializers,
    )
    return _finish(graph)


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Writes `model` to `path`, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
