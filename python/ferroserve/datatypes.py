"""The v2 protocol's tensor datatypes and how they map to numpy, ONNX and Triton config enums.

One table so the codec, the config loader and the runtime agree on every type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True, frozen=True)
class Datatype:
    """One v2 datatype: its protocol name, numpy dtype (None for BYTES), ORT type string,
    Triton config enum name and the typed `contents` field that carries it."""

    name: str
    numpy: np.dtype[np.generic] | None
    onnx_type: str
    config_name: str
    contents_field: str | None

    @property
    def is_bytes(self) -> bool:
        return self.numpy is None


def _dt(name: str, numpy: str | None, onnx_type: str, contents: str | None) -> Datatype:
    return Datatype(
        name, None if numpy is None else np.dtype(numpy), onnx_type, f"TYPE_{name}", contents
    )


# FP16 and BF16 have no typed contents field in the protocol: raw_input_contents only.
# BF16 travels as its 16-bit pattern (uint16 in numpy, tensor(bfloat16) in ORT).
DATATYPES: dict[str, Datatype] = {
    d.name: d
    for d in (
        _dt("BOOL", "bool", "tensor(bool)", "bool_contents"),
        _dt("UINT8", "uint8", "tensor(uint8)", "uint_contents"),
        _dt("UINT16", "uint16", "tensor(uint16)", "uint_contents"),
        _dt("UINT32", "uint32", "tensor(uint32)", "uint_contents"),
        _dt("UINT64", "uint64", "tensor(uint64)", "uint64_contents"),
        _dt("INT8", "int8", "tensor(int8)", "int_contents"),
        _dt("INT16", "int16", "tensor(int16)", "int_contents"),
        _dt("INT32", "int32", "tensor(int32)", "int_contents"),
        _dt("INT64", "int64", "tensor(int64)", "int64_contents"),
        _dt("FP16", "float16", "tensor(float16)", None),
        _dt("BF16", "uint16", "tensor(bfloat16)", None),
        _dt("FP32", "float32", "tensor(float)", "fp32_contents"),
        _dt("FP64", "float64", "tensor(double)", "fp64_contents"),
        _dt("BYTES", None, "tensor(string)", "bytes_contents"),
    )
}

BY_ONNX_TYPE: dict[str, Datatype] = {d.onnx_type: d for d in DATATYPES.values()}
BY_CONFIG_NAME: dict[str, Datatype] = {d.config_name: d for d in DATATYPES.values()}
# Triton config calls BYTES "TYPE_STRING".
BY_CONFIG_NAME["TYPE_STRING"] = DATATYPES["BYTES"]


def config_name(datatype: Datatype) -> str:
    """The Triton config enum name (`TYPE_STRING` for BYTES)."""
    return "TYPE_STRING" if datatype.is_bytes else datatype.config_name
