"""Small real-world ONNX graphs for the end-to-end fidelity test
(tests/e2e/test_real_world_models.py): the operators and tensor kinds real repositories hold
(convolutions, attention, an LSTM, an embedding table, ai.onnx.ml string ops), data-dependent
output shapes, string inputs and outputs, scalars, and initializers a request may override.
Each comes with the config.pbtxt a user would write (None: completed from the graph) and
requests to compare against in-process onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from support.models import IR_VERSION, OPSET

F = TensorProto.FLOAT
I64 = TensorProto.INT64
S = TensorProto.STRING
RNG = np.random.default_rng(18)
LABELS = ["cat", "dog", "bird", "fish", "frog"]

Feeds = dict[str, np.ndarray]


@dataclass(slots=True)
class RealWorldModel:
    """A graph, its config, the extra files of its folder and the requests to send."""

    name: str
    model: onnx.ModelProto
    config: str | None
    requests: list[Feeds]
    files: dict[str, str] = field(default_factory=dict)
    classify: dict[str, int] = field(default_factory=dict)
    """Outputs to also ask for through the classification extension, with their class count."""


def _model(
    name: str,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[np.ndarray | tuple[str, np.ndarray]] | None = None,
    ml: bool = False,
) -> onnx.ModelProto:
    tensors = [numpy_helper.from_array(array, key) for key, array in (initializers or [])]
    graph = helper.make_graph(nodes, name, inputs, outputs, tensors)
    opsets = [helper.make_opsetid("", OPSET)]
    if ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", 3))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _info(name: str, elem: int, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _weights(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def _floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _strings(*words: str) -> np.ndarray:
    array = np.empty(len(words), dtype=object)
    array[:] = [word.encode() for word in words]
    return array


def mlp_classifier() -> RealWorldModel:
    """Gemm, Relu, Softmax; labels for Triton's classification extension."""
    model = _model(
        "mlp_classifier",
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["a"]),
            helper.make_node("Gemm", ["a", "w2", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        [_info("x", F, ["batch", 8])],
        [_info("probs", F, ["batch", 5])],
        [
            ("w1", _weights(8, 16)),
            ("b1", _weights(16)),
            ("w2", _weights(16, 5)),
            ("b2", _weights(5)),
        ],
    )
    config = """
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 8 ] } ]
output [ { name: "probs" data_type: TYPE_FP32 dims: [ 5 ] label_filename: "labels.txt" } ]
dynamic_batching { }
"""
    requests = [{"x": _floats(1, 8)}, {"x": _floats(3, 8)}]
    return RealWorldModel(
        "mlp_classifier", model, config, requests, {"labels.txt": "\n".join(LABELS)}, {"probs": 3}
    )


def cnn() -> RealWorldModel:
    """Conv, BatchNormalization, Relu, MaxPool, GlobalAveragePool, Flatten, Gemm."""
    model = _model(
        "cnn",
        [
            helper.make_node("Conv", ["image", "kernel", "bias"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"]),
            helper.make_node("Relu", ["n"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("GlobalAveragePool", ["p"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "w", "b"], ["scores"]),
        ],
        [_info("image", F, ["batch", 1, 8, 8])],
        [_info("scores", F, ["batch", 3])],
        [
            ("kernel", _weights(4, 1, 3, 3)),
            ("bias", _weights(4)),
            ("scale", np.abs(_weights(4)) + 0.5),
            ("shift", _weights(4)),
            ("mean", _weights(4)),
            ("var", np.abs(_weights(4)) + 0.5),
            ("w", _weights(4, 3)),
            ("b", _weights(3)),
        ],
    )
    config = """
max_batch_size: 4
input [ { name: "image" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 1, 8, 8 ] } ]
output [ { name: "scores" data_type: TYPE_FP32 dims: [ 3 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""
    return RealWorldModel("cnn", model, config, [{"image": _floats(2, 1, 8, 8)}])


def attention() -> RealWorldModel:
    """Self-attention with a layer norm: MatMul, Transpose, Div, Softmax, Add,
    LayerNormalization, over a variable sequence length."""
    model = _model(
        "attention",
        [
            helper.make_node("MatMul", ["x", "wq"], ["q"]),
            helper.make_node("MatMul", ["x", "wk"], ["k"]),
            helper.make_node("MatMul", ["x", "wv"], ["v"]),
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["q", "kt"], ["scores"]),
            helper.make_node("Div", ["scores", "scale"], ["scaled"]),
            helper.make_node("Softmax", ["scaled"], ["weights"], axis=-1),
            helper.make_node("MatMul", ["weights", "v"], ["mixed"]),
            helper.make_node("Add", ["mixed", "x"], ["residual"]),
            helper.make_node("LayerNormalization", ["residual", "gamma", "beta"], ["y"], axis=-1),
        ],
        [_info("x", F, ["batch", "tokens", 8])],
        [_info("y", F, ["batch", "tokens", 8])],
        [
            ("wq", _weights(8, 8)),
            ("wk", _weights(8, 8)),
            ("wv", _weights(8, 8)),
            ("scale", np.array(np.sqrt(8), np.float32)),
            ("gamma", np.abs(_weights(8)) + 0.5),
            ("beta", _weights(8)),
        ],
    )
    return RealWorldModel(
        "attention", model, None, [{"x": _floats(1, 5, 8)}, {"x": _floats(2, 3, 8)}]
    )


def embedding() -> RealWorldModel:
    """Gather from an embedding table, ReduceMean, Concat, Slice, Reshape with -1."""
    model = _model(
        "embedding",
        [
            helper.make_node("Gather", ["table", "ids"], ["vectors"], axis=0),
            helper.make_node("ReduceMean", ["vectors"], ["mean"], axes=[1], keepdims=0),
            helper.make_node("Concat", ["mean", "mean"], ["both"], axis=1),
            helper.make_node("Slice", ["both", "starts", "ends", "axes"], ["sliced"]),
            helper.make_node("Reshape", ["sliced", "shape"], ["pooled"]),
        ],
        [_info("ids", I64, ["batch", "tokens"])],
        [_info("pooled", F, ["batch", 6])],
        [
            ("table", _weights(20, 4)),
            ("starts", np.array([1], np.int64)),
            ("ends", np.array([7], np.int64)),
            ("axes", np.array([1], np.int64)),
            ("shape", np.array([-1, 6], np.int64)),
        ],
    )
    config = """
max_batch_size: 16
input [ { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "pooled" data_type: TYPE_FP32 dims: [ 6 ] } ]
dynamic_batching { max_queue_delay_microseconds: 100 }
"""
    ids = RNG.integers(0, 20, (3, 7)).astype(np.int64)
    return RealWorldModel("embedding", model, config, [{"ids": ids}])


def gates() -> RealWorldModel:
    """Greater, Not, Or, Where: a boolean mask out beside the selected values."""
    model = _model(
        "gates",
        [
            helper.make_node("Greater", ["a", "b"], ["bigger"]),
            helper.make_node("Less", ["a", "zero"], ["negative"]),
            helper.make_node("Not", ["negative"], ["positive"]),
            helper.make_node("Or", ["bigger", "positive"], ["mask"]),
            helper.make_node("Where", ["mask", "a", "b"], ["picked"]),
        ],
        [_info("a", F, ["batch", 4]), _info("b", F, ["batch", 4])],
        [_info("picked", F, ["batch", 4]), _info("mask", TensorProto.BOOL, ["batch", 4])],
        [("zero", np.array(0, np.float32))],
    )
    return RealWorldModel("gates", model, None, [{"a": _floats(2, 4), "b": _floats(2, 4)}])


def lstm() -> RealWorldModel:
    """An LSTM over a variable number of steps (dim 0 is time, so it does not batch)."""
    hidden = 4
    model = _model(
        "lstm",
        [helper.make_node("LSTM", ["x", "w", "r", "b"], ["y", "y_h"], hidden_size=hidden)],
        [_info("x", F, ["steps", 1, 3])],
        [_info("y", F, ["steps", 1, 1, hidden]), _info("y_h", F, [1, 1, hidden])],
        [
            ("w", _weights(1, 4 * hidden, 3)),
            ("r", _weights(1, 4 * hidden, hidden)),
            ("b", _weights(1, 8 * hidden)),
        ],
    )
    return RealWorldModel("lstm", model, None, [{"x": _floats(6, 1, 3)}])


def nonzero_positions() -> RealWorldModel:
    """NonZero: an output whose shape depends on the input's values."""
    model = _model(
        "nonzero_positions",
        [helper.make_node("NonZero", ["grid"], ["positions"])],
        [_info("grid", F, [4, 4])],
        [_info("positions", I64, [2, "found"])],
    )
    grid = np.where(RNG.random((4, 4)) > 0.5, 1.0, 0.0).astype(np.float32)
    return RealWorldModel("nonzero_positions", model, None, [{"grid": grid}])


def positives() -> RealWorldModel:
    """Compress by a computed mask and CumSum: data-dependent length, variable input."""
    model = _model(
        "positives",
        [
            helper.make_node("Greater", ["x", "zero"], ["mask"]),
            helper.make_node("Compress", ["x", "mask"], ["kept"], axis=0),
            helper.make_node("CumSum", ["kept", "axis"], ["running"]),
        ],
        [_info("x", F, ["n"])],
        [_info("running", F, ["m"])],
        [("zero", np.array(0, np.float32)), ("axis", np.array(0, np.int64))],
    )
    # Every dim 0 is dynamic, so completion would make it batch: a config says it does not.
    config = """
max_batch_size: 0
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "running" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""
    requests = [{"x": _floats(9)}, {"x": -np.ones(3, np.float32)}]  # the second keeps nothing
    return RealWorldModel("positives", model, config, requests)


def top_k() -> RealWorldModel:
    """TopK with k from the request: both outputs' length is the request's k."""
    model = _model(
        "top_k",
        [helper.make_node("TopK", ["scores", "k"], ["values", "indices"])],
        [_info("scores", F, ["n"]), _info("k", I64, [1])],
        [_info("values", F, ["k"]), _info("indices", I64, ["k"])],
    )
    requests = [
        {"scores": _floats(10), "k": np.array([3], np.int64)},
        {"scores": _floats(6), "k": np.array([6], np.int64)},
    ]
    return RealWorldModel("top_k", model, None, requests)


def arange() -> RealWorldModel:
    """Range over scalar inputs: generated zeros (a zero delta) fail, real requests work."""
    model = _model(
        "arange",
        [helper.make_node("Range", ["start", "limit", "delta"], ["values"])],
        [_info("start", F, []), _info("limit", F, []), _info("delta", F, [])],
        [_info("values", F, ["n"])],
    )
    request = {
        "start": np.array([1.0], np.float32),
        "limit": np.array([4.0], np.float32),
        "delta": np.array([0.5], np.float32),
    }
    return RealWorldModel("arange", model, None, [request])


def parse_numbers() -> RealWorldModel:
    """Cast from STRING to INT64: the strings are numbers, which generated empty strings are
    not (issue 18's failing warm-up)."""
    model = _model(
        "parse_numbers",
        [
            helper.make_node("Cast", ["text"], ["number"], to=I64),
            helper.make_node("Add", ["number", "one"], ["next"]),
        ],
        [_info("text", S, ["batch", 1])],
        [_info("next", I64, ["batch", 1])],
        [("one", np.array(1, np.int64))],
    )
    config = """
max_batch_size: 8
input [ { name: "text" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "next" data_type: TYPE_INT64 dims: [ 1 ] } ]
"""
    return RealWorldModel(
        "parse_numbers", model, config, [{"text": _strings("41", "-8", "1000").reshape(3, 1)}]
    )


def words() -> RealWorldModel:
    """StringNormalizer (lower case), ai.onnx.ml LabelEncoder (word -> id), Unique: string
    in, strings and data-dependent ids out."""
    model = _model(
        "words",
        [
            # The "C" locale is in every libc; the default, en_US.UTF-8, may not be installed.
            helper.make_node(
                "StringNormalizer", ["text"], ["lower"], case_change_action="LOWER", locale="C"
            ),
            helper.make_node("Unique", ["lower"], ["distinct"], sorted=1),
            helper.make_node(
                "LabelEncoder",
                ["distinct"],
                ["ids"],
                domain="ai.onnx.ml",
                keys_strings=["the", "cat", "sat"],
                values_int64s=[1, 2, 3],
                default_int64=0,
            ),
        ],
        [_info("text", S, ["n"])],
        [_info("distinct", S, ["m"]), _info("ids", I64, ["m"])],
        ml=True,
    )
    config = """
input [ { name: "text" data_type: TYPE_STRING dims: [ -1 ] } ]
output [
  { name: "distinct" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }
]
"""
    requests = [{"text": _strings("The", "CAT", "sat", "on", "the", "Mat")}]
    return RealWorldModel("words", model, config, requests)


def overridable_weight() -> RealWorldModel:
    """x + w, w an initializer listed as a graph input: the config serves it as an optional
    input, and requests send it or leave it out."""
    model = _model(
        "overridable_weight",
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [_info("x", F, [4]), _info("w", F, [4])],
        [_info("y", F, [4])],
        [("w", np.array([10, 20, 30, 40], np.float32))],
    )
    config = """
input [
  { name: "x" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "w" data_type: TYPE_FP32 dims: [ 4 ] optional: true }
]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]
"""
    requests = [{"x": _floats(4)}, {"x": _floats(4), "w": _floats(4)}]
    return RealWorldModel("overridable_weight", model, config, requests)


def real_world_models() -> list[RealWorldModel]:
    return [
        mlp_classifier(),
        cnn(),
        attention(),
        embedding(),
        gates(),
        lstm(),
        nonzero_positions(),
        positives(),
        top_k(),
        arange(),
        parse_numbers(),
        words(),
        overridable_weight(),
    ]
