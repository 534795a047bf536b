"""`ferroserve demo`: writes a small Triton-style model repository so a new user has something
real to serve and call within one command. Its model, an MLP built with the `onnx` helper API
(`mlp_model`), is also what the tests and benchmarks serve instead of downloading anything."""

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


MLP_CONFIG = """\
# A Triton-style config: read unchanged by ferroserve.
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 10 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
dynamic_batching { max_queue_delay_microseconds: 0 }
"""


def write_demo_repository(root: Path) -> Path:
    """Writes `root/mlp/{config.pbtxt,1/model.onnx}` (an MLP 64 -> 256 -> 256 -> 10)."""
    save(mlp_model(), root / "mlp" / "1" / "model.onnx")
    (root / "mlp" / "config.pbtxt").write_text(MLP_CONFIG, encoding="utf-8")
    return root


def usage(
    host: str, port: int, metrics_port: int | None = None, http_port: int | None = None
) -> str:
    ones = ",".join(["1"] * 64)
    http = (
        ""
        if http_port is None
        else f"""
or over HTTP (KServe v2 REST, docs/http.md):

    curl -s http://{host}:{http_port}/v2/models/mlp/infer -H 'Content-Type: application/json' \\
      -d '{{"inputs":[{{"name":"input","shape":[1,64],"datatype":"FP32","data":[{ones}]}}]}}'
"""
    )
    metrics = (
        ""
        if metrics_port is None
        else f"""
Live dashboard: http://{host}:{metrics_port}/   Prometheus metrics: http://{host}:{metrics_port}/metrics
"""
    )
    return f"""\
ferroserve demo: serving model 'mlp' (input FP32 [-1, 64] -> output FP32 [-1, 10]) on {host}:{port}

Call it with tritonclient (pip install 'tritonclient[grpc]'):

    import numpy as np, tritonclient.grpc as g
    client = g.InferenceServerClient("{host}:{port}")
    x = g.InferInput("input", [1, 64], "FP32"); x.set_data_from_numpy(np.ones((1, 64), np.float32))
    print(client.infer("mlp", [x]).as_numpy("output"))

or load it with Triton's perf_analyzer:

    perf_analyzer -m mlp -i grpc -u {host}:{port} --concurrency-range 16
{http}{metrics}
Press Ctrl-C to stop.
"""
