"""Model configuration: reads Triton's `config.pbtxt` unchanged (protobuf text format against our
`ModelConfig` proto, which keeps Triton's field numbers), warns about every field we do not
support yet, fills in what is missing from the ONNX graph, and checks the two agree.

Called by the registry when a model is loaded; the result (`ModelSignature`) is what request
validation and the runtime use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import Message

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.datatypes import BY_CONFIG_NAME, BY_ONNX_TYPE, Datatype, config_name
from ferroserve.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.pbtxt"
DEFAULT_MODEL_FILE = "model.onnx"
PLATFORM = "onnxruntime_onnx"
# Triton's default for auto-completed configs is 4; 64 lets the batcher form useful batches
# for small models while staying far below what an MLP-sized model needs in memory.
DEFAULT_MAX_BATCH_SIZE = 64

# Fields whose whole subtree we honour.
_SUPPORTED_SUBTREES = frozenset(
    {
        "name",
        "platform",
        "backend",
        "max_batch_size",
        "version_policy",
        "default_model_filename",
        "parameters",
        "input.name",
        "input.data_type",
        "input.dims",
        "input.reshape",
        "input.format",
        "output.name",
        "output.data_type",
        "output.dims",
        "output.reshape",
        "output.label_filename",
        "instance_group.name",
        "instance_group.kind",
        "instance_group.count",
        "instance_group.gpus",
        "dynamic_batching.preferred_batch_size",
        "dynamic_batching.max_queue_delay_microseconds",
        "dynamic_batching.preserve_ordering",
        "dynamic_batching.priority_levels",
        "dynamic_batching.default_priority_level",
        "dynamic_batching.default_queue_policy",
        "dynamic_batching.priority_queue_policy",
        "optimization.graph",
        "optimization.execution_accelerators.gpu_execution_accelerator",
        "model_warmup",
    }
)
# Messages we descend into, checking their fields one by one.
_CHECKED_CONTAINERS = frozenset(
    {
        "",
        "input",
        "output",
        "instance_group",
        "dynamic_batching",
        "optimization",
        "optimization.execution_accelerators",
    }
)


@dataclass(slots=True, frozen=True)
class TensorSpec:
    """One model input or output as clients see it."""

    name: str
    datatype: Datatype
    dims: tuple[int, ...]
    """Dims without the batch dim; -1 means any size."""
    model_dims: tuple[int, ...]
    """What the ONNX graph is fed or returns (config `reshape`), without the batch dim."""


@dataclass(slots=True, frozen=True)
class InputLayout:
    """One input as the request fast path checks it."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    """Full client shape, -1 for any size (the batch dim included)."""
    itemsize: int
    """Bytes per element; 0 for BYTES (length-prefixed elements, each checked by the fast path)."""


@dataclass(slots=True, frozen=True)
class ModelSignature:
    """The tensors a model version accepts and returns, and whether dim 0 is a batch dim."""

    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_layouts: tuple[InputLayout, ...] = field(init=False)
    """Per input, what the request fast path checks (precomputed once per model)."""

    def __post_init__(self) -> None:
        layouts = tuple(
            InputLayout(
                spec.name,
                spec.datatype.name,
                tuple(self.client_shape(spec)),
                0 if spec.datatype.numpy is None else spec.datatype.numpy.itemsize,
            )
            for spec in self.inputs
        )
        object.__setattr__(self, "input_layouts", layouts)

    @property
    def batches(self) -> bool:
        return self.max_batch_size > 0

    def client_shape(self, spec: TensorSpec) -> list[int]:
        """The full shape a client sees in metadata (-1 for the batch dim)."""
        return [-1, *spec.dims] if self.batches else list(spec.dims)


def read_config(model_dir: Path) -> mc.ModelConfig:
    """Parses `model_dir/config.pbtxt` if present, else returns an empty config."""
    path = model_dir / CONFIG_FILE
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return parse_config(text, model_dir.name, path)


def parse_config(text: str, name: str, path: Path | str) -> mc.ModelConfig:
    """Parses config.pbtxt `text` of the model folder `name` (`path`: where it is, for the
    errors): ConfigError for text that does not parse, a `name` that is not the folder's, or a
    platform or backend ferroserve does not serve."""
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigError(f"{path}: {error}") from error
    if not config.name:
        config.name = name
    elif config.name != name:
        raise ConfigError(f"{path}: name '{config.name}' does not match the model folder '{name}'")
    if config.platform and config.platform != PLATFORM:
        raise ConfigError(
            f"{path}: platform '{config.platform}' is not served by ferroserve (only '{PLATFORM}')"
        )
    if config.backend and config.backend != "onnxruntime":
        raise ConfigError(f"{path}: backend '{config.backend}' is not served (only 'onnxruntime')")
    return config


def unsupported_fields(config: Message) -> list[str]:
    """Dotted paths of every field set in `config` that ferroserve does not honour yet."""
    return sorted(set(_walk_unsupported(config, "")))


def _walk_unsupported(message: Message, prefix: str) -> Iterator[str]:
    for descriptor, value in message.ListFields():
        path = f"{prefix}.{descriptor.name}" if prefix else descriptor.name
        if path in _SUPPORTED_SUBTREES:
            continue
        if path in _CHECKED_CONTAINERS and descriptor.message_type is not None:
            children = value if _is_repeated(descriptor) else [value]
            for child in children:
                yield from _walk_unsupported(child, path)
        else:
            yield path


def _is_repeated(field: object) -> bool:
    # `label` is deprecated in newer protobuf releases in favour of `is_repeated`.
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(field.label == field.LABEL_REPEATED)  # type: ignore[attr-defined]


def warn_unsupported(config: mc.ModelConfig) -> list[str]:
    """Logs one warning per unsupported field and returns their paths."""
    fields = unsupported_fields(config)
    for path in fields:
        log.warning(
            "model '%s': config.pbtxt field '%s' is not supported by ferroserve yet and has "
            "no effect",
            config.name,
            path,
        )
    return fields


@dataclass(slots=True, frozen=True)
class OnnxTensor:
    """A graph input or output as onnxruntime reports it."""

    name: str
    onnx_type: str
    shape: tuple[int | None, ...]
    """None for a symbolic or unknown dim."""


def complete_config(
    config: mc.ModelConfig,
    graph_inputs: Sequence[OnnxTensor],
    graph_outputs: Sequence[OnnxTensor],
    default_max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> ModelSignature:
    """Fills missing inputs/outputs/max_batch_size from the graph (in place) and checks that the
    config and the graph agree. Raises ConfigError naming the tensor and the mismatch."""
    config.platform = PLATFORM
    if not config.backend:
        config.backend = "onnxruntime"
    if not config.default_model_filename:
        config.default_model_filename = DEFAULT_MODEL_FILE
    all_graph = [*graph_inputs, *graph_outputs]
    if not config.input and not config.output and config.max_batch_size == 0:
        batchable = bool(all_graph) and all(t.shape and t.shape[0] is None for t in all_graph)
        if batchable:
            config.max_batch_size = default_max_batch_size
    if config.max_batch_size < 0:
        raise ConfigError(f"max_batch_size must be >= 0, got {config.max_batch_size}")
    if not config.input:
        _fill_from_graph(config, config.input, graph_inputs)
    if not config.output:
        _fill_from_graph(config, config.output, graph_outputs)
    inputs = tuple(_check(config, spec, graph_inputs, "input") for spec in config.input)
    outputs = tuple(_check(config, spec, graph_outputs, "output") for spec in config.output)
    missing = {t.name for t in graph_inputs} - {s.name for s in inputs}
    if missing:
        raise ConfigError(
            f"model '{config.name}': config.pbtxt does not list graph input(s) "
            f"{sorted(missing)}; every ONNX input must be fed"
        )
    return ModelSignature(config.max_batch_size, inputs, outputs)


def _fill_from_graph(
    config: mc.ModelConfig, target: object, graph_tensors: Sequence[OnnxTensor]
) -> None:
    skip = 1 if config.max_batch_size > 0 else 0
    for tensor in graph_tensors:
        datatype = _graph_datatype(config, tensor)
        spec = target.add()  # type: ignore[attr-defined]
        spec.name = tensor.name
        spec.data_type = mc.DataType.Value(config_name(datatype))
        spec.dims.extend(-1 if d is None else d for d in tensor.shape[skip:])


def _graph_datatype(config: mc.ModelConfig, tensor: OnnxTensor) -> Datatype:
    datatype = BY_ONNX_TYPE.get(tensor.onnx_type)
    if datatype is None:
        raise ConfigError(
            f"model '{config.name}': tensor '{tensor.name}' has ONNX type {tensor.onnx_type}, "
            "which the v2 protocol cannot carry"
        )
    return datatype


def _check(
    config: mc.ModelConfig, spec: object, graph_tensors: Sequence[OnnxTensor], kind: str
) -> TensorSpec:
    name: str = spec.name  # type: ignore[attr-defined]
    where = f"model '{config.name}' {kind} '{name}'"
    graph = next((t for t in graph_tensors if t.name == name), None)
    if graph is None:
        known = [t.name for t in graph_tensors]
        raise ConfigError(f"{where}: the ONNX graph has no such {kind}; it has {known}")
    type_name = mc.DataType.Name(spec.data_type)  # type: ignore[attr-defined]
    datatype = BY_CONFIG_NAME.get(type_name)
    graph_type = _graph_datatype(config, graph)
    if datatype is None:
        raise ConfigError(f"{where}: data_type {type_name} is not supported")
    if datatype != graph_type:
        raise ConfigError(
            f"{where}: config says {type_name} but the ONNX graph has {graph.onnx_type}"
        )
    dims = tuple(int(d) for d in spec.dims)  # type: ignore[attr-defined]
    reshape = spec.reshape.shape if spec.HasField("reshape") else None  # type: ignore[attr-defined]
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
    fixed = reshape is not None and -1 not in dims and -1 not in model_dims
    if fixed and _count(dims) != _count(model_dims):
        raise ConfigError(f"{where}: reshape {list(model_dims)} does not fit dims {list(dims)}")
    return TensorSpec(name, datatype, dims, model_dims)


def _count(dims: Sequence[int]) -> int:
    total = 1
    for d in dims:
        total *= d
    return total


def _show(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
