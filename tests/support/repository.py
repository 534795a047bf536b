"""Writes Triton-style model repositories (`<model>/[config.pbtxt]`, `<model>/<v>/model.onnx`)
for the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import onnx
from ferroserve.demo import mlp_model

from support import models as m


def add_model(
    root: Path,
    name: str,
    model: onnx.ModelProto | bytes,
    config: str | None = None,
    versions: tuple[int, ...] = (1,),
) -> Path:
    """Writes `model` (or raw bytes) as every version in `versions`, and config.pbtxt if given."""
    folder = root / name
    for version in versions:
        path = folder / str(version) / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    if config is not None:
        (folder / "config.pbtxt").write_text(config, encoding="utf-8")
    return folder


def model_file(root: Path, name: str, version: int = 1) -> Path:
    return root / name / str(version) / "model.onnx"


def identity_batch_name(datatype: str) -> str:
    return f"identity_{datatype.lower()}_batch"


def identity_nobatch_name(datatype: str) -> str:
    return f"identity_{datatype.lower()}_nobatch"


def identity_batch_config(datatype: str, name: str) -> str:
    kind = m.CONFIG_TYPE[datatype]
    return f"""\
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {m.IDENTITY_MAX_BATCH}
input [ {{ name: "INPUT0" data_type: {kind} dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: {kind} dims: [ 4 ] }} ]
"""


ADD_SUB_CONFIG = """\
name: "add_sub"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "A" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "B" data_type: TYPE_FP32 dims: [ 4 ] }
]
output [
  { name: "SUM" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "DIFF" data_type: TYPE_FP32 dims: [ 4 ] }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
"""

DYNAMIC_DIM_CONFIG = """\
name: "dynamic_dim"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""

# Triton's documented `reshape`: clients send [batch, 6], the graph takes [batch, 2, 3].
RESHAPE_CONFIG = """\
name: "reshaped"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 6 ] reshape: { shape: [ 2, 3 ] } } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 6 ] reshape: { shape: [ 2, 3 ] } } ]
"""

# Several variable dims reshaped (Triton maps the i-th -1 to the i-th -1): clients send
# [batch, n, 2, 3, m], the graph takes [batch, n, 6, m]; on both engines.
RESHAPE_VARIABLE_CONFIG = """\
name: "{name}"
max_batch_size: 8
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1, 2, 3, -1 ]
          reshape: {{ shape: [ -1, 6, -1 ] }} }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1, 2, 3, -1 ]
           reshape: {{ shape: [ -1, 6, -1 ] }} }} ]
{parameters}
"""
RESHAPED_VARIABLE = {
    "reshaped_variable": "",
    "reshaped_variable_binding": (
        'parameters { key: "native_engine" value: { string_value: "false" } }'
    ),
}

VERSIONED_CONFIG = """\
name: "versioned"
max_batch_size: 8
version_policy: { latest: { num_versions: 2 } }
"""

# Loads and serves; Triton fields ferroserve ignores are named in a warning.
UNSUPPORTED_CONFIG = """\
name: "with_unsupported"
max_batch_size: 4
response_cache { enable: true }
"""

LARGE_CONFIG = """\
name: "large"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""


def write_main_repository(root: Path) -> Path:
    """Every well-formed model the shared server serves (no failing model: it must be READY)."""
    for datatype in m.DATATYPES:
        batch = identity_batch_name(datatype)
        add_model(
            root,
            batch,
            m.identity_model(datatype, ["batch", *m.BATCH_DIMS]),
            identity_batch_config(datatype, batch),
        )
        # No config.pbtxt: completed from the graph (fixed dim 0 -> max_batch_size 0).
        add_model(
            root, identity_nobatch_name(datatype), m.identity_model(datatype, m.NOBATCH_SHAPE)
        )
    add_model(root, "add_sub", m.add_sub_model(), ADD_SUB_CONFIG)
    add_model(root, "dynamic_dim", m.identity_model("FP32", ["batch", "n"]), DYNAMIC_DIM_CONFIG)
    add_model(root, "reshaped", m.identity_model("FP32", ["batch", 2, 3]), RESHAPE_CONFIG)
    for name, parameters in RESHAPED_VARIABLE.items():
        config = RESHAPE_VARIABLE_CONFIG.format(name=name, parameters=parameters)
        add_model(root, name, m.identity_model("FP32", ["batch", "n", 6, "m"]), config)
    add_model(root, "runtime_fail", m.reshape_runtime_model())
    add_model(root, "mlp", mlp_model())  # no config.pbtxt at all
    for version in (1, 2, 3):
        add_model(root, "versioned", m.plus_constant_model(float(version)), versions=(version,))
    (root / "versioned" / "config.pbtxt").write_text(VERSIONED_CONFIG, encoding="utf-8")
    add_model(root, "large", m.identity_model("FP32", ["n"]), LARGE_CONFIG)
    add_model(root, "with_unsupported", m.identity_model("FP32", ["batch", 4]), UNSUPPORTED_CONFIG)
    add_model(root, "unloadable", m.identity_model("FP32", ["batch", 4]))
    return root
