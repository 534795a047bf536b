"""Each server's model repository, in its own format, for the same ONNX files: a Triton-style
repository for ferroserve (with and without `dynamic_batching`), a folder of files for the KServe
script, an MLServer repository (adaptive batching off and on)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .models import INPUT, MODELS, OUTPUT

MAX_BATCH_SIZE = 64
# MLServer's adaptive batching only starts with max_batch_time > 0: wait up to 1 ms for up to
# 64 requests (ferroserve's batcher waits 0 ms, taking whatever is queued).
MLSERVER_MAX_BATCH_TIME_S = 0.001
NO_BATCHING = "_nobatch"
ADAPTIVE = "_ab"

FERROSERVE_CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [ {{ name: "{input}" data_type: TYPE_FP32 dims: [ {dims} ] }} ]
output [ {{ name: "{output}" data_type: TYPE_FP32 dims: [ {width} ] }} ]
"""


def ferroserve_repository(root: Path, onnx_files: dict[str, Path]) -> Path:
    """`<model>` with `dynamic_batching { }` (delay 0) and `<model>_nobatch` without."""
    for name, spec in MODELS.items():
        for served, tail in ((name, "dynamic_batching { }\n"), (name + NO_BATCHING, "")):
            config = FERROSERVE_CONFIG.format(
                name=served,
                max_batch_size=MAX_BATCH_SIZE,
                input=INPUT,
                dims=", ".join(map(str, spec.row_shape)),
                output=OUTPUT,
                width=spec.output_width,
            )
            (root / served / "1").mkdir(parents=True)
            (root / served / "config.pbtxt").write_text(config + tail)
            shutil.copyfile(onnx_files[name], root / served / "1" / "model.onnx")
    return root


def mlserver_repository(
    root: Path, onnx_files: dict[str, Path], grpc_port: int, http_port: int, metrics_port: int
) -> Path:
    """settings.json plus, for each file, `<model>` (adaptive batching off) and `<model>_ab`
    (on)."""
    root.mkdir(parents=True)
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "grpc_port": grpc_port,
        "http_port": http_port,
        "metrics_port": metrics_port,
        # MLServer's default: one inference worker process beside the front-end process.
        "parallel_workers": 1,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    for name, onnx_file in onnx_files.items():
        for served, batching in ((name, {}), (name + ADAPTIVE, _adaptive())):
            model_settings = {
                "name": served,
                "implementation": "mlserver_runtime.OnnxRuntime",
                "parameters": {"uri": str(onnx_file)},
                **batching,
            }
            (root / served).mkdir()
            (root / served / "model-settings.json").write_text(json.dumps(model_settings))
    return root


def _adaptive() -> dict[str, float]:
    return {"max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MLSERVER_MAX_BATCH_TIME_S}
