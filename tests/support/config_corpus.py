"""The config.pbtxt corpus (tests/corpus/configs): real-world configs, each with the ONNX graph
it is loaded against and its expected outcome written in its header comments:

    # source: where the config comes from (Triton's docs, its QA's kind of case, a user report)
    # graph: a name in GRAPHS
    # expect: loads | warns | rejected
    # naming: a text the warning or the error must contain (repeatable)
    # completed: a config.pbtxt fragment the completed config must match, field by field
    # absent: a field the completed config must not have (repeatable)
    # env: NAME=VALUE for the load (repeatable)
    # no-files: the test writes no label files (label_filename) and no warm-up data

protobuf's text format takes `#` comments, so each file is also a config.pbtxt as-is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from support.models import finish

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "configs"
F = TensorProto.FLOAT


@dataclass(slots=True)
class Case:
    """One corpus file and what it expects."""

    path: Path
    graph: str
    expect: str
    naming: list[str] = field(default_factory=list)
    completed: str = ""
    absent: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    files: bool = True

    @property
    def name(self) -> str:
        return self.path.stem


def cases() -> list[Case]:
    found = []
    for path in sorted(CORPUS.glob("*.pbtxt")):
        case = Case(path, "", "")
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("# "):
                continue
            key, _, value = line[2:].partition(":")
            value = value.strip()
            if key == "graph":
                case.graph = value
            elif key == "expect":
                case.expect = value
            elif key == "naming":
                case.naming.append(value)
            elif key == "completed":
                case.completed += value + "\n"
            elif key == "absent":
                case.absent.append(value)
            elif key == "env":
                name, _, setting = value.partition("=")
                case.env[name] = setting
            elif key == "no-files":
                case.files = False
        assert case.graph in GRAPHS, f"{path.name}: unknown graph '{case.graph}'"
        assert case.expect in ("loads", "warns", "rejected"), f"{path.name}: bad expect"
        found.append(case)
    return found


def _info(name: str, elem: int, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _graph(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto] | None = None,
) -> onnx.ModelProto:
    return finish(helper.make_graph(nodes, "corpus", inputs, outputs, initializers or []))


def two_in_one_out() -> onnx.ModelProto:
    """Triton's docs' running example: INPUT0, INPUT1 [batch, 16] -> OUTPUT0 = sum."""
    return _graph(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"])],
        [_info("INPUT0", F, ["b", 16]), _info("INPUT1", F, ["b", 16])],
        [_info("OUTPUT0", F, ["b", 16])],
    )


def densenet_like() -> onnx.ModelProto:
    """densenet_onnx's signature (Triton's quickstart): data_0 [1, 3, 224, 224] -> fc6_1
    [1, 1000, 1, 1], computed cheaply (average pool, 1x1 convolution, softmax)."""
    weight = np.linspace(-1, 1, 3000, dtype=np.float32).reshape(1000, 3, 1, 1)
    return _graph(
        [
            helper.make_node("GlobalAveragePool", ["data_0"], ["pooled"]),
            helper.make_node("Conv", ["pooled", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["fc6_1"], axis=1),
        ],
        [_info("data_0", F, [1, 3, 224, 224])],
        [_info("fc6_1", F, [1, 1000, 1, 1])],
        [numpy_helper.from_array(weight, "w")],
    )


def batch_scalar() -> onnx.ModelProto:
    """A batching graph whose tensors have no dims besides the batch dim: x [batch] -> y."""
    return _graph(
        [helper.make_node("Neg", ["x"], ["y"])],
        [_info("x", TensorProto.INT32, ["b"])],
        [_info("y", TensorProto.INT32, ["b"])],
    )


def scalar() -> onnx.ModelProto:
    """A graph that does not batch with a scalar input and output: y = -x."""
    return _graph(
        [helper.make_node("Neg", ["x"], ["y"])],
        [_info("x", F, [])],
        [_info("y", F, [])],
    )


def fixed() -> onnx.ModelProto:
    """A graph that cannot batch: x [2, 3] -> y = x + x."""
    return _graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        [_info("x", F, [2, 3])],
        [_info("y", F, [2, 3])],
    )


def reshaped() -> onnx.ModelProto:
    """x [batch, 8, n, 1, 6] -> y, for dims [2, 4, -1, 6] reshaped to [8, -1, 1, 6]."""
    return _graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        [_info("x", F, ["b", 8, "n", 1, 6])],
        [_info("y", F, ["b", 8, "n", 1, 6])],
    )


def reshaped_twice() -> onnx.ModelProto:
    """x [batch, n, 6, m] -> y, for dims [-1, 2, 3, -1] reshaped to [-1, 6, -1]."""
    return _graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        [_info("x", F, ["b", "n", 6, "m"])],
        [_info("y", F, ["b", "n", 6, "m"])],
    )


def images() -> onnx.ModelProto:
    """An image model: x [batch, 3, h, w] -> y [batch, 3]."""
    return _graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"]),
            helper.make_node("Flatten", ["p"], ["y"]),
        ],
        [_info("x", F, ["b", 3, "h", "w"])],
        [_info("y", F, ["b", 3])],
    )


def stateful() -> onnx.ModelProto:
    """Triton's sequence examples' signature: INPUT [batch, 1] with control tensors START and
    READY [batch, 1] -> OUTPUT = INPUT * START * READY."""
    return _graph(
        [
            helper.make_node("Mul", ["INPUT", "START"], ["t"]),
            helper.make_node("Mul", ["t", "READY"], ["OUTPUT"]),
        ],
        [_info("INPUT", F, ["b", 1]), _info("START", F, ["b", 1]), _info("READY", F, ["b", 1])],
        [_info("OUTPUT", F, ["b", 1])],
    )


def ragged() -> onnx.ModelProto:
    """Triton's ragged batching example: INPUT [n] plus INDEX [batch] (a batch input) ->
    OUTPUT = sum(INPUT) + INDEX."""
    return _graph(
        [
            helper.make_node("ReduceSum", ["INPUT"], ["s"], keepdims=1),
            helper.make_node("Add", ["INDEX", "s"], ["OUTPUT"]),
        ],
        [_info("INPUT", F, ["n"]), _info("INDEX", F, ["b"])],
        [_info("OUTPUT", F, ["b"])],
    )


def overridable() -> onnx.ModelProto:
    """x [4] + w, w an initializer also listed as a graph input (a request may override it)."""
    return _graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [_info("x", F, [4]), _info("w", F, [4])],
        [_info("y", F, [4])],
        [numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")],
    )


def overridable_batching() -> onnx.ModelProto:
    """x [batch, 4] + w [4], w an overridable initializer."""
    return _graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [_info("x", F, ["b", 4]), _info("w", F, [4])],
        [_info("y", F, ["b", 4])],
        [numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")],
    )


def range_model() -> onnx.ModelProto:
    """A graph that does not batch, whose output length depends on its scalar inputs:
    y = Range(start, limit, delta); a zero delta (as generated zeros are) fails the run."""
    return _graph(
        [helper.make_node("Range", ["start", "limit", "delta"], ["y"])],
        [_info("start", F, []), _info("limit", F, []), _info("delta", F, [])],
        [_info("y", F, ["n"])],
    )


GRAPHS: dict[str, Callable[[], onnx.ModelProto]] = {
    "range": range_model,
    "two_in_one_out": two_in_one_out,
    "densenet_like": densenet_like,
    "batch_scalar": batch_scalar,
    "scalar": scalar,
    "fixed": fixed,
    "reshaped": reshaped,
    "reshaped_twice": reshaped_twice,
    "images": images,
    "stateful": stateful,
    "ragged": ragged,
    "overridable": overridable,
    "overridable_batching": overridable_batching,
}
