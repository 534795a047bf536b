"""Brings an ensemble version up (`platform: "ensemble"`): its graph (config/ensemble.py)
checked against the composing model versions the registry loaded for it, as Triton's
`ValidateEnsembleConfig` does (every mapped name exists, every required input is fed, each
tensor's producer and readers agree on datatype and shape, the ensemble batches no more than
any step), then the native front end's `EnsembleRoute`, which runs the steps in Rust. The
result is a `ServedModel` with no executor threads of its own: its queue only counts the
ensemble's statistics (nothing is queued into it), and its composing models count theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, TensorSpec, validate_io, warn_unsupported
from ferroserve.config.ensemble import EnsembleGraph, EnsembleStep
from ferroserve.datatypes import BY_CONFIG_NAME, Datatype
from ferroserve.errors import ConfigError
from ferroserve.runtime.model import LoadReport, ServedModel

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class _End:
    """One end of an ensemble tensor: who produces or reads it, and what it holds there."""

    who: str
    datatype: Datatype
    shape: tuple[int, ...]
    """The full shape, -1 for any size (a batching model's batch dim among them)."""

    def __str__(self) -> str:
        return f"{self.who} ({self.datatype.name} {list(self.shape)})"


def load_ensemble(
    config: mc.ModelConfig,
    version: int,
    graph: EnsembleGraph,
    composing: Mapping[EnsembleStep, ServedModel],
) -> ServedModel:
    """The served ensemble `version` of `config`, its steps checked against `composing` (the
    version each step runs now). ConfigError naming the step, the tensor and the fix."""
    started = time.perf_counter()
    where = f"ensemble '{config.name}'"
    if config.max_batch_size < 0:
        raise ConfigError(f"{where}: max_batch_size must be >= 0")
    validate_io(config)
    reshaped = [t.name for t in config.input if t.HasField("reshape")]
    reshaped += [t.name for t in config.output if t.HasField("reshape")]
    if reshaped:
        raise ConfigError(
            f"{where}: tensor '{reshaped[0]}' sets reshape, which an ensemble does not apply "
            "(its steps' configs do); remove it"
        )
    ignored = warn_unsupported(config)
    signature = ModelSignature(
        config.max_batch_size,
        tuple(_spec(where, tensor) for tensor in config.input),
        tuple(_spec(where, tensor) for tensor in config.output),
    )
    producers: dict[str, _End] = {
        spec.name: _End(
            f"ensemble input '{spec.name}'", spec.datatype, tuple(signature.client_shape(spec))
        )
        for spec in signature.inputs
    }
    for step in graph.steps:
        model = composing[step]
        _check_step(where, config, step, model)
        for name, tensor in step.outputs:
            spec = _tensor(model.signature.outputs, name)
            producers[tensor] = _end(step, model, "output", name, spec)
    for step in graph.steps:
        model = composing[step]
        for name, tensor in step.inputs:
            spec = _tensor(model.signature.inputs, name)
            _agree(where, tensor, producers[tensor], _end(step, model, "input", name, spec))
    for spec in signature.outputs:
        shape = tuple(signature.client_shape(spec))
        reader = _End(f"ensemble output '{spec.name}'", spec.datatype, shape)
        _agree(where, spec.name, producers[spec.name], reader)
    stats = _core.BatchQueue(config.name, 0)
    route = _core.NativeRoute.ensemble(
        stats,
        config.name,
        str(version),
        inputs=[
            (layout.name, layout.datatype, list(layout.shape), layout.itemsize)
            for layout in signature.input_layouts
        ],
        max_batch_size=signature.max_batch_size,
        outputs=[(spec.name, spec.datatype.name) for spec in signature.outputs],
        tensors=list(graph.tensors),
        input_tensors=[graph.index(spec.name) for spec in signature.inputs],
        output_tensors=[graph.index(spec.name) for spec in signature.outputs],
        steps=[
            (
                step.model,
                "" if step.version == -1 else str(step.version),
                [(name, graph.index(tensor)) for name, tensor in step.inputs],
                [(name, graph.index(tensor)) for name, tensor in step.outputs],
            )
            for step in graph.steps
        ],
    )
    return ServedModel(
        name=config.name,
        version=version,
        config=config,
        signature=signature,
        queue=stats,
        executor=EnsembleExecutor(route),
        native_route=route,
        report=LoadReport("ensemble", tuple(ignored), time.perf_counter() - started),
    )


def _spec(where: str, tensor: mc.ModelInput | mc.ModelOutput) -> TensorSpec:
    datatype = BY_CONFIG_NAME.get(mc.DataType.Name(tensor.data_type))
    if datatype is None:
        raise ConfigError(f"{where}: tensor '{tensor.name}' has an unsupported data_type")
    dims = tuple(int(d) for d in tensor.dims)
    return TensorSpec(tensor.name, datatype, dims, dims)


def _tensor(specs: Sequence[TensorSpec], name: str) -> TensorSpec:
    return next(spec for spec in specs if spec.name == name)


def _end(step: EnsembleStep, model: ServedModel, kind: str, name: str, spec: TensorSpec) -> _End:
    shape = tuple(model.signature.client_shape(spec))
    return _End(f"{step.label} {kind} '{name}'", spec.datatype, shape)


def _check_step(where: str, config: mc.ModelConfig, step: EnsembleStep, model: ServedModel) -> None:
    """The step's maps against its model's signature, and what the native path can run."""
    label = f"{where} {step.label}"
    if model.native_route is None:
        raise ConfigError(
            f"{label}: the model runs on onnxruntime's Python binding (see its log lines for "
            "why), and ensemble steps run on the native engine only"
        )
    if model.config.HasField("sequence_batching"):
        raise ConfigError(
            f"{label}: ensembles of stateful (sequence_batching) models are not supported"
        )
    if model.features is not None and model.features.remote:
        raise ConfigError(
            f"{label}: the model joins features from Redis per request, which ensemble steps "
            "do not do yet"
        )
    if config.max_batch_size > model.signature.max_batch_size:
        raise ConfigError(
            f"{where} allows max_batch_size {config.max_batch_size}, but {step.label} allows "
            f"only {model.signature.max_batch_size}; lower the ensemble's max_batch_size"
        )
    inputs = [spec.name for spec in model.signature.inputs]
    outputs = [spec.name for spec in model.signature.outputs]
    for name, _ in step.inputs:
        if name not in inputs:
            raise ConfigError(
                f"{label}: input_map key '{name}' is not an input of the model (inputs: {inputs})"
            )
    for name, _ in step.outputs:
        if name not in outputs:
            raise ConfigError(
                f"{label}: output_map key '{name}' is not an output of the model (outputs: "
                f"{outputs})"
            )
    mapped = {name for name, _ in step.inputs}
    missing = [spec.name for spec in model.signature.inputs if spec.name not in mapped]
    if missing:
        raise ConfigError(f"{label}: input_map does not feed the model's input(s) {missing}")


def _agree(where: str, tensor: str, producer: _End, reader: _End) -> None:
    """Triton's rule: one datatype, and shapes of the same rank whose dims match where both
    are fixed (the batch dim counted as -1 on a batching side)."""
    same_rank = len(producer.shape) == len(reader.shape)
    dims_fit = all(
        a == b or -1 in (a, b) for a, b in zip(producer.shape, reader.shape, strict=False)
    )
    if producer.datatype != reader.datatype or not (same_rank and dims_fit):
        raise ConfigError(
            f"{where}: tensor '{tensor}' is produced by {producer} but read by {reader}; "
            "make the datatypes and shapes agree"
        )


class EnsembleExecutor:
    """An ensemble's `Executor`: no threads, no engine. Its steps run on the composing models'
    executors; this only hands the route over."""

    def __init__(self, route: _core.NativeRoute) -> None:
        self._route = route

    @property
    def warm_up_instances(self) -> int:
        return 0

    def warm_up(self, feeds: dict[str, np.ndarray], instance: int) -> None:
        raise ConfigError("an ensemble has no engine to warm up; its composing models warm up")

    def start(self) -> None:
        pass

    def route(self, model: str, version: str) -> _core.NativeRoute | None:
        return self._route

    def cancel(self, request_id: int) -> None:
        pass

    def close_sequences(self) -> None:
        pass

    def join(self, timeout_s: float) -> None:
        pass

    def stop(self) -> None:
        pass
