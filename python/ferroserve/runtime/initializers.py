"""Graph initializers a request may override (onnxruntime's "overridable initializers": values
stored in the model that are also listed as graph inputs). Triton's onnxruntime backend serves
one a config lists as an `optional` input; a request that leaves it out gets the stored value.
Read from the ONNX file only for models whose config names such a tensor, so other loads pay
nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ferroserve.codec import output_buffer
from ferroserve.config import OnnxTensor, TensorSpec, reshape_dims

# onnx.TensorProto element types by onnxruntime's type names.
_ONNX_TYPES: dict[int, str] = {
    value: f"tensor({name})"
    for name, value in {
        "float": onnx.TensorProto.FLOAT,
        "uint8": onnx.TensorProto.UINT8,
        "int8": onnx.TensorProto.INT8,
        "uint16": onnx.TensorProto.UINT16,
        "int16": onnx.TensorProto.INT16,
        "int32": onnx.TensorProto.INT32,
        "int64": onnx.TensorProto.INT64,
        "string": onnx.TensorProto.STRING,
        "bool": onnx.TensorProto.BOOL,
        "float16": onnx.TensorProto.FLOAT16,
        "double": onnx.TensorProto.DOUBLE,
        "uint32": onnx.TensorProto.UINT32,
        "uint64": onnx.TensorProto.UINT64,
        "bfloat16": onnx.TensorProto.BFLOAT16,
    }.items()
}

# One input's stored value as a request would send it: raw v2 bytes and the client shape.
Default = tuple[bytes, list[int]]


def overridable_initializers(model_file: Path) -> list[OnnxTensor]:
    """The initializers of `model_file` that are graph inputs too, described as onnxruntime
    describes inputs (its binding's `get_overridable_initializers`). Weights stay on disk."""
    graph = onnx.load(str(model_file), load_external_data=False).graph
    stored = {tensor.name: tensor for tensor in graph.initializer}
    found = []
    for value in graph.input:
        tensor = stored.get(value.name)
        if tensor is not None:
            element = int(tensor.data_type)
            onnx_type = _ONNX_TYPES.get(element, f"tensor(type {element})")
            found.append(OnnxTensor(value.name, onnx_type, tuple(int(d) for d in tensor.dims)))
    return found


def stored_values(model_file: Path, specs: Sequence[TensorSpec]) -> dict[str, Default]:
    """The stored value of each optional input in `specs`, in the client's dims (a config
    `reshape` undone)."""
    graph = onnx.load(str(model_file), load_external_data=False).graph
    stored = {tensor.name: tensor for tensor in graph.initializer}
    values = {}
    for spec in specs:
        array = numpy_helper.to_array(stored[spec.name], base_dir=str(model_file.parent))
        shape = list(array.shape)
        if spec.model_dims != spec.dims:
            shape = reshape_dims(spec.model_dims, spec.dims, shape)
        values[spec.name] = (output_buffer(np.asarray(array)), shape)
    return values
