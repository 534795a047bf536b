"""Warm-up requests run on a model version before it reports ready: Triton's `model_warmup`
samples when the config has them, else one zero-filled request of batch 1, so the first real
request does not pay for onnxruntime's lazy allocations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.errors import ConfigError

WarmupFeeds = dict[str, np.ndarray]


def warmup_feeds(
    config: mc.ModelConfig, signature: ModelSignature, model_dir: Path
) -> list[WarmupFeeds]:
    """The feeds to run, one dict per warm-up request (a sample with `count: N` appears N times)."""
    if not config.model_warmup:
        return [default_feeds(signature)]
    rng = np.random.default_rng(0)
    requests = []
    for sample in config.model_warmup:
        batch = max(int(sample.batch_size), 1)
        feeds = {}
        for spec in signature.inputs:
            if spec.name not in sample.inputs:
                raise ConfigError(
                    f"model '{config.name}': model_warmup '{sample.name}' has no input "
                    f"'{spec.name}'"
                )
            feeds[spec.name] = _sample_input(
                spec, signature, batch, sample.inputs[spec.name], model_dir / "warmup", rng
            )
        requests.extend([feeds] * max(int(sample.count), 1))
    return requests


def default_feeds(signature: ModelSignature) -> WarmupFeeds:
    """One zero-filled request of a single row (dynamic dims taken as 1)."""
    return {spec.name: _fill(spec, signature, 1, "zero") for spec in signature.inputs}


def _sample_input(
    spec: TensorSpec,
    signature: ModelSignature,
    batch: int,
    source: Any,
    folder: Path,
    rng: np.random.Generator,
) -> np.ndarray:
    kind = source.WhichOneof("input_data_type")
    if kind == "input_data_file":
        path = folder / source.input_data_file
        if not path.is_file():
            raise ConfigError(f"warm-up data file {path} does not exist")
        array = _fill(spec, signature, batch, "zero")
        if spec.datatype.is_bytes:
            return np.full(array.shape, path.read_bytes(), dtype=object)
        data = np.frombuffer(path.read_bytes(), dtype=array.dtype)
        if data.size != array.size:
            raise ConfigError(
                f"warm-up data file {path} has {data.size} elements, input '{spec.name}' "
                f"needs {array.size}"
            )
        return data.reshape(array.shape)
    return _fill(spec, signature, batch, "random" if kind == "random_data" else "zero", rng)


def _fill(
    spec: TensorSpec,
    signature: ModelSignature,
    batch: int,
    how: str,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    dims = [1 if d == -1 else d for d in spec.model_dims]
    shape = [batch, *dims] if signature.batches else dims
    if spec.datatype.is_bytes:
        return np.full(shape, b"", dtype=object)
    assert spec.datatype.numpy is not None
    if how == "random" and rng is not None:
        if spec.datatype.numpy.kind == "f":
            return rng.random(shape).astype(spec.datatype.numpy)
        return rng.integers(0, 2, size=shape).astype(spec.datatype.numpy)
    return np.zeros(shape, dtype=spec.datatype.numpy)
