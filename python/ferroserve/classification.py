"""Triton's classification extension: a request asks for the top `k` classes of an output
(`InferRequestedOutput(name, class_count=k)`, i.e. output parameter `classification`) and gets,
per batch row, `k` BYTES strings "value:index" or "value:index:label", labels read from the
output's `label_filename` (one per line, in the model folder). The rules follow Triton's
server (`src/classification.cc` `TopkClassifications` and the gRPC response writer): values
printed as C's `std::to_string` prints them (six decimals for floats), highest first, shape
[rows, min(k, elements per row)] ([min(k, elements)] without batching), numeric datatypes other
than FP16/BF16 only.

Requests that ask for it are never answered by the native fast path (its matcher leaves output
parameters to the general path), so the classification work costs only those requests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import TensorSpec
from ferroserve.errors import ConfigError, InvalidInputError

# Triton's TopkClassifications handles these; anything else is refused.
_CLASSIFIABLE = frozenset(
    {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP32", "FP64"}
)


@dataclass(slots=True, frozen=True)
class RequestedOutput:
    """An output a request asked for: its index in the signature and, for the
    classification extension, how many classes (0: the tensor itself)."""

    index: int
    class_count: int = 0


def read_labels(config: mc.ModelConfig, model_dir: Path) -> dict[str, tuple[str, ...]]:
    """Each output's labels from its `label_filename` (Triton's core: one label per line of a
    file in the model folder; a file that cannot be read fails the load)."""
    labels = {}
    for output in config.output:
        if not output.label_filename:
            continue
        path = model_dir / output.label_filename
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"model '{config.name}' output '{output.name}': label_filename {path} cannot "
                f"be read: {error}"
            ) from None
        # std::getline splits on "\n"; a Windows file's "\r" is dropped here too.
        labels[output.name] = tuple(line.rstrip("\r") for line in text.split("\n"))
    return labels


def class_count(parameter: Any, model: str, output: str) -> int:
    """The `classification` parameter of a requested output, checked (an int64 >= 0, as
    tritonclient sends it)."""
    kind = parameter.WhichOneof("parameter_choice")
    if kind not in ("int64_param", "uint64_param"):
        raise InvalidInputError(
            f"model '{model}': output '{output}': parameter 'classification' must be an "
            f"integer (int64_param), got {kind}"
        )
    count = int(getattr(parameter, kind))
    if count < 0:
        raise InvalidInputError(
            f"model '{model}': output '{output}': classification count must be >= 0, got {count}"
        )
    return count


def check_classifiable(spec: TensorSpec, model: str) -> None:
    """InvalidInputError for an output Triton cannot classify (its datatype)."""
    if spec.datatype.name not in _CLASSIFIABLE:
        raise InvalidInputError(
            f"model '{model}': output '{spec.name}': class result not available for datatype "
            f"{spec.datatype.name}; ask for the tensor itself"
        )


def classify(
    spec: TensorSpec,
    buffer: bytes,
    shape: list[int],
    batches: bool,
    count: int,
    labels: tuple[str, ...],
) -> tuple[bytes, list[int]]:
    """The classification answer for one request's output (`buffer`, `shape`): raw BYTES
    contents and their shape."""
    assert spec.datatype.numpy is not None
    values = np.frombuffer(buffer, dtype=spec.datatype.numpy)
    rows = shape[0] if batches and shape else 1
    per_row = values.reshape(rows, -1) if rows else values.reshape(0, 0)
    width = per_row.shape[1] if rows else 0
    kept = min(count, width)
    is_float = spec.datatype.numpy.kind == "f"
    strings = []
    for row in per_row:
        # Highest first; among equal values the lower index first.
        for index in np.argsort(-row.astype(np.float64), kind="stable")[:kept]:
            value = row[index]
            text = f"{float(value):f}" if is_float else str(int(value))
            text = f"{text}:{index}"
            if index < len(labels) and labels[index]:  # Triton: no label, no ":label"
                text = f"{text}:{labels[index]}"
            strings.append(text.encode())
    out_shape = [rows, kept] if batches else [kept]
    return _core.encode_bytes_tensor(np.array(strings, dtype=object)), out_shape
