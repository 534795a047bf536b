"""Warm-up of a model version before it reports ready.

With `model_warmup` samples, exactly what Triton does (core `src/backend_model_instance.cc`,
`GenerateWarmupData` and `WarmUp`): a sample of `batch_size` 0 is skipped; each sample is one
batch of `batch_size` rows of its inputs' `dims` (no -1 allowed), zeros, random bytes (STRING
inputs: empty strings) or a file under `<model>/warmup/` (raw tensor bytes, BYTES ones in the
v2 length-prefixed layout), run `count` times (at least once) on every instance; a failing
sample fails the load, naming the sample.

Without `model_warmup` Triton runs nothing. ferroserve runs one generated zero-filled request
of a single row (dynamic dims taken as 1) on the first instance, so the first real request
does not pay for onnxruntime's lazy allocations; generated inputs are not valid for every
model (strings parsed as numbers, data-dependent shapes), so its failure is reported in the
load log and `LoadReport.warmup`, never a load failure. Opening the session already checked
that onnxruntime can run the graph. Such a failure, and the samples a `model_warmup` ran, are
also the READY version's reason in RepositoryIndex (`WarmupResult.shown`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import BY_CONFIG_NAME
from ferroserve.errors import ConfigError, ModelLoadError
from ferroserve.runtime.executor import Executor

log = logging.getLogger(__name__)

WarmupFeeds = dict[str, np.ndarray]
WARMUP_FOLDER = "warmup"


@dataclass(slots=True, frozen=True)
class WarmupResult:
    """What a version's warm-up ran and how it went."""

    summary: str
    """For the load log and `LoadReport.warmup`."""
    shown: bool
    """Whether clients see it as the READY version's reason (RepositoryIndex, `ferroserve
    versions`): a generated request that failed, or the `model_warmup` samples that ran. The
    generated request that ran is not news."""


@dataclass(slots=True, frozen=True)
class WarmupSample:
    """One `model_warmup` entry, ready to run: its feeds (a batch of `batch_size` rows) and how
    many times."""

    name: str
    feeds: WarmupFeeds
    count: int


def warm_up(
    executor: Executor,
    config: mc.ModelConfig,
    signature: ModelSignature,
    model_dir: Path,
    version: int,
) -> WarmupResult:
    """Runs the version's warm-up and returns what happened, for the load report and log.
    ModelLoadError when a `model_warmup` sample is invalid or fails."""
    where = f"model '{config.name}' version {version}"
    started = time.perf_counter()
    if not config.model_warmup:
        try:
            executor.warm_up(default_feeds(signature), 0)
        except Exception as error:  # generated inputs need not suit the model: report only
            outcome = (
                "generated warm-up request failed (no model_warmup configured; the model "
                f"still loads, as Triton runs no warm-up without one): {error}"
            )
            log.warning("%s: %s", where, outcome)
            return WarmupResult(outcome, shown=True)
        outcome = f"generated zero-filled request ran in {_ms(started)}"
        log.info("%s: warm-up: %s", where, outcome)
        return WarmupResult(outcome, shown=False)
    samples = warmup_samples(config, signature, model_dir)
    instances = executor.warm_up_instances
    for sample in samples:
        for instance in range(instances):
            for _ in range(sample.count):
                try:
                    executor.warm_up(sample.feeds, instance)
                except Exception as error:
                    raise ModelLoadError(
                        f"{where}: model_warmup sample '{sample.name}' failed: {error}"
                    ) from error
    runs = sum(sample.count for sample in samples) * instances
    outcome = (
        f"{len(samples)} model_warmup sample(s), {runs} run(s) on {instances} instance(s) "
        f"in {_ms(started)}"
    )
    log.info("%s: warm-up: %s", where, outcome)
    return WarmupResult(outcome, shown=True)


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.1f} ms"


def default_feeds(signature: ModelSignature) -> WarmupFeeds:
    """One zero-filled request of a single row (dynamic dims taken as 1); optional inputs
    left out (the graph's own value)."""
    feeds = {}
    for spec in signature.inputs:
        if spec.optional:
            continue
        shape = [1 if d == -1 else d for d in spec.dims]
        if signature.batches:
            shape = [1, *shape]
        feeds[spec.name] = _zeros(spec, shape)
    return feeds


def warmup_samples(
    config: mc.ModelConfig, signature: ModelSignature, model_dir: Path
) -> list[WarmupSample]:
    """The config's `model_warmup` samples as feeds. ConfigError naming the sample and input
    for what Triton would refuse or fail on."""
    rng = np.random.default_rng(0)
    samples = []
    for index, sample in enumerate(config.model_warmup):
        label = f"model '{config.name}': model_warmup '{sample.name or index}'"
        if sample.batch_size == 0:
            log.info("%s has batch_size 0 and is skipped, as Triton does", label)
            continue
        if signature.batches and sample.batch_size > signature.max_batch_size:
            raise ConfigError(
                f"{label}: batch_size {sample.batch_size} exceeds max_batch_size "
                f"{signature.max_batch_size}"
            )
        if not signature.batches and sample.batch_size != 1:
            raise ConfigError(
                f"{label}: batch_size must be 1 for a model that does not batch "
                f"(max_batch_size 0), got {sample.batch_size}"
            )
        specs = {spec.name: spec for spec in signature.inputs}
        unknown = sorted(set(sample.inputs) - set(specs))
        if unknown:
            raise ConfigError(
                f"{label}: input(s) {unknown} are not inputs of the model; it has {sorted(specs)}"
            )
        feeds = {}
        for spec in signature.inputs:
            if spec.name not in sample.inputs:
                if spec.optional:
                    continue
                raise ConfigError(f"{label}: has no input '{spec.name}'; give every input")
            feeds[spec.name] = _sample_input(
                label, spec, signature, sample.batch_size, sample.inputs[spec.name], model_dir, rng
            )
        samples.append(WarmupSample(sample.name or str(index), feeds, max(sample.count, 1)))
    return samples


def _sample_input(
    label: str,
    spec: TensorSpec,
    signature: ModelSignature,
    batch_size: int,
    source: Any,
    model_dir: Path,
    rng: np.random.Generator,
) -> np.ndarray:
    where = f"{label} input '{spec.name}'"
    datatype = BY_CONFIG_NAME.get(mc.DataType.Name(source.data_type))
    if datatype != spec.datatype:
        raise ConfigError(
            f"{where}: data_type {mc.DataType.Name(source.data_type)} differs from the "
            f"input's {mc.DataType.Name(_config_type(spec))}"
        )
    dims = [int(d) for d in source.dims]
    if any(d < 0 for d in dims):
        raise ConfigError(f"{where}: dims {dims} must give every variable-size dim a size")
    if len(dims) != len(spec.dims) or any(
        w not in (-1, d) for w, d in zip(spec.dims, dims, strict=False)
    ):
        raise ConfigError(f"{where}: dims {dims} do not fit the input's dims {list(spec.dims)}")
    row = _row(where, spec, dims, source, model_dir, rng)
    if not signature.batches:
        return row
    # Triton sends batch_size requests of one row each, run as one batch.
    return np.concatenate([row[np.newaxis]] * batch_size)


def _row(
    where: str,
    spec: TensorSpec,
    dims: list[int],
    source: Any,
    model_dir: Path,
    rng: np.random.Generator,
) -> np.ndarray:
    """One request's data for the input (without the batch dim)."""
    kind = source.WhichOneof("input_data_type")
    count = int(np.prod(dims)) if dims else 1
    if kind == "input_data_file":
        path = model_dir / WARMUP_FOLDER / source.input_data_file
        if not path.is_file():
            raise ConfigError(f"{where}: input_data_file {path} does not exist")
        data = path.read_bytes()
        if spec.datatype.is_bytes:
            # The file holds the tensor as a request's raw contents: 4-byte length, bytes, ...
            try:
                return _core.decode_bytes_tensor(data, count, spec.name, utf8=True).reshape(dims)
            except _core.FerroserveError as error:
                raise ConfigError(f"{where}: {path}: {error}") from None
        assert spec.datatype.numpy is not None
        needed = count * spec.datatype.numpy.itemsize
        if len(data) < needed:
            raise ConfigError(
                f"{where}: {path} has {len(data)} bytes, dims {dims} of "
                f"{spec.datatype.name} need {needed}"
            )
        return np.frombuffer(data[:needed], dtype=spec.datatype.numpy).reshape(dims)
    if kind == "random_data" and not spec.datatype.is_bytes:
        assert spec.datatype.numpy is not None
        raw = rng.integers(0, 256, size=count * spec.datatype.numpy.itemsize, dtype=np.uint8)
        if spec.datatype.name == "BOOL":
            raw &= 1  # random bytes, as Triton sends, but each a valid bool
        return raw.view(spec.datatype.numpy).reshape(dims)
    if kind is None:
        raise ConfigError(f"{where}: set zero_data, random_data or input_data_file")
    # zero_data; random_data of a STRING input is zeros too (empty strings), as in Triton.
    return _zeros(spec, dims)


def _zeros(spec: TensorSpec, shape: list[int]) -> np.ndarray:
    if spec.datatype.is_bytes:
        return np.full(shape, b"", dtype=object)
    assert spec.datatype.numpy is not None
    return np.zeros(shape, dtype=spec.datatype.numpy)


def _config_type(spec: TensorSpec) -> int:
    return mc.DataType.Value("TYPE_STRING" if spec.datatype.is_bytes else spec.datatype.config_name)
