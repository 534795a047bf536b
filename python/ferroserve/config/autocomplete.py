"""Completes a config from the ONNX graph as Triton's onnxruntime backend does
(onnxruntime_backend `src/onnxruntime.cc`, `AutoCompleteConfig`), validates it as Triton's core
does (config/validation.py), and checks that config and graph agree (the backend's
`ValidateInputs`/`ValidateOutputs`). Called by the loader once the graph is open; the result,
`ModelSignature`, is what request validation and the runtime use. Where ferroserve completes
differently from Triton, docs/configuration.md says how and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config.signature import ModelSignature, OnnxTensor, TensorSpec
from ferroserve.config.text import BACKEND, PLATFORM
from ferroserve.config.triton_fed import refuse_unfed, sequence_inputs, sequence_outputs
from ferroserve.config.validation import validate_io, validate_model_config
from ferroserve.datatypes import BY_CONFIG_NAME, BY_ONNX_TYPE, Datatype, config_name
from ferroserve.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MODEL_FILE = "model.onnx"
# Triton's onnxruntime backend fills in its backend config `default-max-batch-size`, 4 unless
# the server is started otherwise; 64 lets the batcher form useful batches for small models
# while staying far below what an MLP-sized model needs in memory.
DEFAULT_MAX_BATCH_SIZE = 64

# The graph initializers a request may override (onnxruntime's "overridable initializers":
# initializers also listed as graph inputs), asked for only when the config names a tensor
# that is not a graph input.
Initializers = Callable[[], Sequence[OnnxTensor]]


def complete_config(
    config: mc.ModelConfig,
    graph_inputs: Sequence[OnnxTensor],
    graph_outputs: Sequence[OnnxTensor],
    default_max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    initializers: Initializers = lambda: (),
) -> ModelSignature:
    """Fills missing inputs/outputs/max_batch_size from the graph (in place), validates the
    result and checks that the config and the graph agree. Raises ConfigError naming the
    tensor and the mismatch."""
    config.platform = PLATFORM
    if not config.backend:
        config.backend = BACKEND
    if not config.default_model_filename:
        config.default_model_filename = DEFAULT_MODEL_FILE
    if config.max_batch_size < 0:
        raise ConfigError(f"max_batch_size must be >= 0, got {config.max_batch_size}")
    # The sequence batcher's control and state tensors are fed by the server, not clients.
    fed = set(sequence_inputs(config))
    kept = set(sequence_outputs(config))
    client_inputs = [t for t in graph_inputs if t.name not in fed]
    client_outputs = [t for t in graph_outputs if t.name not in kept]
    # AutoCompleteConfig: nothing is completed when the config lists inputs and outputs.
    if not config.input or not config.output:
        _complete_max_batch_size(config, graph_inputs, graph_outputs, default_max_batch_size)
        if not config.input:
            _fill_from_graph(config, config.input, client_inputs)
        if not config.output:
            _fill_from_graph(config, config.output, client_outputs)
    # Triton validates the completed config (its max_batch_size may be filled in just now).
    validate_model_config(config)
    validate_io(config)
    graph_names = {t.name for t in graph_inputs}
    inputs = tuple(
        _check(config, spec, graph_inputs, "input")
        if spec.name in graph_names
        else _check_initializer(config, spec, graph_inputs, initializers)
        for spec in config.input
    )
    outputs = tuple(_check(config, spec, graph_outputs, "output") for spec in config.output)
    for spec in config.input:
        if spec.optional and spec.name in graph_names:
            raise ConfigError(
                f"model '{config.name}' input '{spec.name}': marked optional, but the ONNX "
                "graph needs it in every call; only graph initializers (which have a value "
                "of their own) can be optional. Drop optional: true"
            )
    missing = graph_names - {s.name for s in inputs} - fed
    if missing:
        refuse_unfed(config, sorted(missing))
    return ModelSignature(config.max_batch_size, inputs, outputs)


def _complete_max_batch_size(
    config: mc.ModelConfig,
    graph_inputs: Sequence[OnnxTensor],
    graph_outputs: Sequence[OnnxTensor],
    default: int,
) -> None:
    """AutoCompleteMaxBatch: a graph whose every input and output has a dynamic dim 0 batches
    (max_batch_size filled in when 0, and a dynamic batcher added, as Triton does); one that
    cannot batch must not be given a max_batch_size."""
    fixed = next(
        (t for t in [*graph_inputs, *graph_outputs] if not t.shape or t.shape[0] is not None),
        None,
    )
    if fixed is None:
        if config.max_batch_size == 0:
            config.max_batch_size = default
            log.info(
                "model '%s': max_batch_size completed to %d (every graph tensor has a "
                "dynamic dim 0)",
                config.name,
                default,
            )
        if config.max_batch_size > 1 and not (
            config.HasField("dynamic_batching") or config.HasField("sequence_batching")
        ):
            config.dynamic_batching.SetInParent()
    elif config.max_batch_size != 0:
        kind = "input" if fixed in graph_inputs else "output"
        raise ConfigError(
            f"model '{config.name}': max_batch_size is {config.max_batch_size} but the ONNX "
            f"graph cannot batch: dim 0 of {kind} '{fixed.name}' is "
            f"{fixed.shape[0] if fixed.shape else 'absent'} (shape {_show(fixed.shape)}); make "
            "dim 0 dynamic or set max_batch_size: 0"
        )


def _fill_from_graph(
    config: mc.ModelConfig, target: Any, graph_tensors: Sequence[OnnxTensor]
) -> None:
    """AutoCompleteIO: names, datatypes and dims from the graph; a tensor without dims (after
    the batch dim) is written dims [1], with an empty reshape when the model batches."""
    skip = 1 if config.max_batch_size > 0 else 0
    for tensor in graph_tensors:
        datatype = _graph_datatype(config, tensor)
        spec = target.add()
        spec.name = tensor.name
        spec.data_type = mc.DataType.Value(config_name(datatype))
        dims = [-1 if d is None else d for d in tensor.shape[skip:]]
        spec.dims.extend(dims or [1])
        if not dims and config.max_batch_size > 0:
            spec.reshape.SetInParent()


def _graph_datatype(config: mc.ModelConfig, tensor: OnnxTensor) -> Datatype:
    datatype = BY_ONNX_TYPE.get(tensor.onnx_type)
    if datatype is None:
        raise ConfigError(
            f"model '{config.name}': tensor '{tensor.name}' has ONNX type {tensor.onnx_type}, "
            "which the v2 protocol cannot carry"
        )
    return datatype


def _check_initializer(
    config: mc.ModelConfig,
    spec: Any,
    graph_inputs: Sequence[OnnxTensor],
    initializers: Initializers,
) -> TensorSpec:
    """A config input that is no graph input may be a graph initializer, which onnxruntime
    lets a call override; Triton's onnxruntime backend serves it as an optional input only
    (`ValidateInputs` counts the config's non-optional inputs against the graph's)."""
    where = f"model '{config.name}' input '{spec.name}'"
    initializer = next((t for t in initializers() if t.name == spec.name), None)
    if initializer is None:
        known = [t.name for t in graph_inputs]
        raise ConfigError(f"{where}: the ONNX graph has no such input; it has {known}")
    if not spec.optional:
        raise ConfigError(
            f"{where}: this is an initializer of the ONNX graph (a value stored in the model, "
            "which a request may override), not an input the graph needs; Triton serves it "
            "only as an optional input: add optional: true (the model must not batch), or "
            "remove it from the config"
        )
    checked = _check(config, spec, [initializer], "input")
    return TensorSpec(checked.name, checked.datatype, checked.dims, checked.model_dims, True)


def _check(
    config: mc.ModelConfig, spec: Any, graph_tensors: Sequence[OnnxTensor], kind: str
) -> TensorSpec:
    name: str = spec.name
    where = f"model '{config.name}' {kind} '{name}'"
    graph = next((t for t in graph_tensors if t.name == name), None)
    if graph is None:
        known = [t.name for t in graph_tensors]
        raise ConfigError(f"{where}: the ONNX graph has no such {kind}; it has {known}")
    type_name = mc.DataType.Name(spec.data_type)
    datatype = BY_CONFIG_NAME.get(type_name)
    graph_type = _graph_datatype(config, graph)
    if datatype is None:
        raise ConfigError(f"{where}: data_type {type_name} is not supported")
    if datatype != graph_type:
        raise ConfigError(
            f"{where}: config says {type_name} but the ONNX graph has {graph.onnx_type}"
        )
    dims = tuple(int(d) for d in spec.dims)
    reshape = spec.reshape.shape if spec.HasField("reshape") else None
    model_dims = tuple(int(d) for d in reshape) if reshape is not None else dims
    graph_shape = graph.shape
    if config.max_batch_size > 0:
        if not graph_shape or (
            graph_shape[0] is not None and graph_shape[0] < config.max_batch_size
        ):
            raise ConfigError(
                f"{where}: max_batch_size is {config.max_batch_size} but the ONNX graph's first "
                f"dim is {graph_shape[0] if graph_shape else 'absent'}; make dim 0 dynamic or "
                "set max_batch_size: 0"
            )
        graph_shape = graph_shape[1:]
    elif not graph_shape and reshape is None:
        # onnxruntime_backend ValidateInputs/Outputs: a scalar tensor of a model that does not
        # batch is written with dims of 1s (it travels as [1]; the graph gets a scalar).
        if any(d != 1 for d in dims):
            raise ConfigError(
                f"{where}: the ONNX graph has a scalar here; a model that does not batch "
                f"gives it dims [ 1 ], not {list(dims)}"
            )
        return TensorSpec(name, datatype, dims, ())
    if len(graph_shape) != len(model_dims):
        raise ConfigError(
            f"{where}: config dims {list(model_dims)} have rank {len(model_dims)} but the ONNX "
            f"graph expects rank {len(graph_shape)} (shape {_show(graph_shape)}"
            f"{', after the batch dim' if config.max_batch_size > 0 else ''})"
        )
    for position, (ours, theirs) in enumerate(zip(model_dims, graph_shape, strict=True)):
        if theirs is not None and ours not in (-1, theirs):
            raise ConfigError(
                f"{where}: dim {position} is {ours} in config.pbtxt but {theirs} in the ONNX "
                f"graph (shape {_show(graph_shape)})"
            )
    return TensorSpec(name, datatype, dims, model_dims)


def _show(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
