"""`ferroserve demo`: writes a small Triton-style model repository so a new user has something
real to serve and call within one command."""

from __future__ import annotations

from pathlib import Path

from ferroserve.models import mlp_model, save

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


def usage(host: str, port: int, metrics_port: int | None = None) -> str:
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
{metrics}
Press Ctrl-C to stop.
"""
