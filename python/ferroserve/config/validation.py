"""Triton's own checks of a model configuration, so a repository Triton refuses is refused here
too, with a message that says what to change. Each rule cites where Triton has it:
triton-inference-server/core `src/model_config_utils.cc` (`ValidateModelConfig`,
`ValidateIOShape`, `ValidateModelInput`/`Output`, `ValidateBatchIO`, `ValidateModelMetrics`,
`ValidateInstanceGroup`) and triton-inference-server/onnxruntime_backend `src/onnxruntime.cc`
(`ValidateInputs`). Both checks run once the config is completed from the graph
(config/autocomplete.py), Triton's order: auto-complete, then validate; GPU ids are checked by
placement (runtime/placement.py), which knows the GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ConfigError

WILDCARD = -1
_GROUP = mc.ModelInstanceGroup
_SEQUENCE_CONTROL = mc.ModelSequenceBatching.Control
# core ValidateModelConfig: the datatypes a CONTROL_SEQUENCE_CORRID tensor may have.
_CORRID_TYPES = frozenset(
    {mc.TYPE_UINT64, mc.TYPE_INT64, mc.TYPE_UINT32, mc.TYPE_INT32, mc.TYPE_STRING}
)


def validate_model_config(config: mc.ModelConfig) -> None:
    """The rules of core `ValidateModelConfig` and `ValidateInstanceGroup` that do not need
    the GPUs. ConfigError naming the field and the fix."""
    where = f"model '{config.name}'"
    if config.max_batch_size < 0:
        raise ConfigError(f"{where}: max_batch_size must be >= 0, got {config.max_batch_size}")
    if config.HasField("dynamic_batching"):
        _validate_dynamic_batching(config, where)
    if config.HasField("sequence_batching"):
        _validate_sequence_batching(config, where)
    # core ValidateModelConfig, "FIXME: DLIS-3916": no response cache for decoupled models.
    if config.model_transaction_policy.decoupled and config.response_cache.enable:
        raise ConfigError(
            f"{where}: response_cache cannot be enabled for a decoupled model "
            "(model_transaction_policy { decoupled: true }); disable one of them"
        )
    if config.HasField("model_metrics"):
        _validate_model_metrics(config.model_metrics, where)
    _validate_batch_io(config, where)
    for index, group in enumerate(config.instance_group):
        _validate_instance_group(group, index, where)


def _validate_dynamic_batching(config: mc.ModelConfig, where: str) -> None:
    dynamic = config.dynamic_batching
    for size in dynamic.preferred_batch_size:
        if size <= 0 or size > config.max_batch_size:
            raise ConfigError(
                f"{where}: dynamic_batching preferred_batch_size {size} must be between 1 and "
                f"max_batch_size ({config.max_batch_size})"
            )
    levels = dynamic.priority_levels
    if levels != 0:
        if not 1 <= dynamic.default_priority_level <= levels:
            raise ConfigError(
                f"{where}: dynamic_batching default_priority_level must be in [1, {levels}] "
                f"when priority_levels is {levels}, got {dynamic.default_priority_level}"
            )
        for level in dynamic.priority_queue_policy:
            if not 1 <= level <= levels:
                raise ConfigError(
                    f"{where}: dynamic_batching priority_queue_policy has level {level}, "
                    f"outside [1, {levels}] (priority_levels)"
                )
    if not dynamic.preserve_ordering:
        return
    # Ordered answers cannot coexist with requests overtaking each other (priorities) or
    # waiting behind their deadline (DELAY) in Triton's dynamic batcher.
    if levels > 1:
        raise ConfigError(
            f"{where}: dynamic_batching preserve_ordering allows only one priority level, "
            f"priority_levels is {levels}; drop preserve_ordering or the priority levels"
        )
    policies = [("default_queue_policy", dynamic.default_queue_policy)] + [
        (f"priority_queue_policy[{level}]", policy)
        for level, policy in dynamic.priority_queue_policy.items()
    ]
    for name, policy in policies:
        if policy.default_timeout_microseconds != 0 and policy.timeout_action == (
            mc.ModelQueuePolicy.DELAY
        ):
            raise ConfigError(
                f"{where}: dynamic_batching {name} has timeout_action DELAY, which "
                "preserve_ordering does not allow; use REJECT or drop preserve_ordering"
            )


def _validate_sequence_batching(config: mc.ModelConfig, where: str) -> None:
    batcher = config.sequence_batching
    # core ValidateModelConfig, "FIXME: DLIS-4034".
    if config.response_cache.enable:
        raise ConfigError(
            f"{where}: response_cache cannot be enabled with sequence_batching; disable it"
        )
    seen: dict[int, str] = {}
    for control_input in batcher.control_input:
        for control in control_input.control:
            kind = _SEQUENCE_CONTROL.Kind.Name(control.kind)
            if control.kind in seen:
                raise ConfigError(
                    f"{where}: sequence_batching control {kind} is given twice (inputs "
                    f"'{seen[control.kind]}' and '{control_input.name}')"
                )
            seen[control.kind] = control_input.name
            if (
                control.kind == _SEQUENCE_CONTROL.CONTROL_SEQUENCE_CORRID
                and control.data_type not in _CORRID_TYPES
            ):
                raise ConfigError(
                    f"{where}: sequence_batching control {kind} on '{control_input.name}' has "
                    f"data_type {mc.DataType.Name(control.data_type)}; use TYPE_UINT64, "
                    "TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING"
                )
    if batcher.HasField("oldest"):
        for size in batcher.oldest.preferred_batch_size:
            if size <= 0 or size > config.max_batch_size:
                raise ConfigError(
                    f"{where}: sequence_batching oldest preferred_batch_size {size} must be "
                    f"between 1 and max_batch_size ({config.max_batch_size})"
                )
    if batcher.HasField("direct"):
        utilization = batcher.direct.minimum_slot_utilization
        if not 0.0 <= utilization <= 1.0:
            raise ConfigError(
                f"{where}: sequence_batching direct minimum_slot_utilization must be in "
                f"(0.0, 1.0], got {utilization}"
            )


def _validate_model_metrics(metrics: mc.ModelMetrics, where: str) -> None:
    # core ValidateModelMetrics.
    for control in metrics.metric_control:
        if not control.HasField("metric_identifier") or not control.metric_identifier.family:
            raise ConfigError(
                f"{where}: model_metrics metric_control needs metric_identifier {{ family }}"
            )
        family = control.metric_identifier.family
        if not control.HasField("histogram_options") or not control.histogram_options.buckets:
            raise ConfigError(
                f"{where}: model_metrics metric_control for '{family}' needs "
                "histogram_options with non-empty buckets"
            )


def _validate_batch_io(config: mc.ModelConfig, where: str) -> None:
    # core ValidateBatchIO.
    inputs = {tensor.name for tensor in config.input}
    outputs = {tensor.name for tensor in config.output}
    for batch_input in config.batch_input:
        kind = mc.BatchInput.Kind.Name(batch_input.kind)
        if len(batch_input.source_input) != 1:
            raise ConfigError(
                f"{where}: batch_input kind {kind} needs exactly 1 source_input, got "
                f"{len(batch_input.source_input)}"
            )
        if batch_input.data_type not in (mc.TYPE_INT32, mc.TYPE_FP32):
            raise ConfigError(f"{where}: batch_input data_type must be TYPE_INT32 or TYPE_FP32")
        _known_sources(batch_input.source_input, inputs, where)
    for batch_output in config.batch_output:
        if len(batch_output.source_input) != 1:
            raise ConfigError(
                f"{where}: batch_output needs exactly 1 source_input, got "
                f"{len(batch_output.source_input)}"
            )
        _known_sources(batch_output.source_input, inputs, where)
        if len(set(batch_output.target_name)) != len(batch_output.target_name):
            raise ConfigError(f"{where}: batch_output names a target_name twice")
        unknown = sorted(set(batch_output.target_name) - outputs)
        if unknown:
            raise ConfigError(f"{where}: batch_output target_name(s) {unknown} are not outputs")


def _known_sources(sources: Sequence[str], inputs: set[str], where: str) -> None:
    unknown = sorted(set(sources) - inputs)
    if unknown:
        raise ConfigError(f"{where}: batch source_input(s) {unknown} are not inputs")


def _validate_instance_group(group: Any, index: int, where: str) -> None:
    # core ValidateInstanceGroup.
    label = f"instance_group {group.name or index}"
    if group.kind == _GROUP.KIND_CPU and group.gpus:
        raise ConfigError(
            f"{where}: {label} has kind KIND_CPU but lists gpus {list(group.gpus)}; use "
            "KIND_GPU to run on those GPUs, or drop gpus"
        )
    if group.kind == _GROUP.KIND_MODEL and group.gpus:
        raise ConfigError(
            f"{where}: {label} has kind KIND_MODEL but lists gpus {list(group.gpus)}; drop gpus"
        )
    if group.profile:
        raise ConfigError(
            f"{where}: {label} sets profile, which only TensorRT models (platform "
            "tensorrt_plan) have; drop it"
        )


def validate_io(config: mc.ModelConfig) -> None:
    """core `ValidateModelIOConfig` (`ValidateIOShape`, `ValidateModelInput`/`Output`) and the
    onnxruntime backend's rule on optional inputs, on a config whose inputs and outputs are
    complete. ConfigError naming the tensor and the fix."""
    for tensor in config.input:
        _validate_tensor(config, tensor, "input")
        if tensor.format != mc.ModelInput.FORMAT_NONE and len(tensor.dims) != 3:
            raise ConfigError(
                f"model '{config.name}' input '{tensor.name}': format "
                f"{mc.ModelInput.Format.Name(tensor.format)} needs 3 dims, got {list(tensor.dims)}"
            )
        # onnxruntime_backend ValidateInputs: optional inputs only without batching.
        if tensor.optional and config.max_batch_size != 0:
            raise ConfigError(
                f"model '{config.name}' input '{tensor.name}': optional inputs are only "
                "supported for models that do not batch (max_batch_size: 0), as in Triton's "
                "onnxruntime backend"
            )
    for output in config.output:
        _validate_tensor(config, output, "output")


def _validate_tensor(config: mc.ModelConfig, tensor: Any, kind: str) -> None:
    if not tensor.name:
        raise ConfigError(f"model '{config.name}': an {kind} has no name")
    where = f"model '{config.name}' {kind} '{tensor.name}'"
    if tensor.data_type == mc.TYPE_INVALID:
        raise ConfigError(f"{where}: data_type is missing")
    if not tensor.dims:
        raise ConfigError(
            f"{where}: dims is missing; a tensor with no dims besides the batch dim is written "
            "dims: [ 1 ] reshape: { shape: [ ] }"
        )
    if tensor.is_shape_tensor:
        raise ConfigError(f"{where}: is_shape_tensor is for TensorRT models only; drop it")
    if tensor.is_non_linear_format_io:
        raise ConfigError(f"{where}: is_non_linear_format_io is for TensorRT models only; drop it")
    _check_dims(where, "dims", tensor.dims)
    if not tensor.HasField("reshape"):
        return
    reshape = tensor.reshape.shape
    if not reshape and config.max_batch_size == 0:
        raise ConfigError(
            f"{where}: an empty reshape on a model that does not batch would make the tensor a "
            "scalar, which Triton does not support; give reshape a shape or set max_batch_size"
        )
    _check_dims(where, "reshape", reshape)
    _check_reshape(where, list(tensor.dims), list(reshape))


def _check_dims(where: str, field: str, dims: Sequence[int]) -> None:
    for dim in dims:
        if dim < 1 and dim != WILDCARD:
            raise ConfigError(
                f"{where}: {field} {list(dims)} has {dim}; each dim must be >= 1, or -1 for a "
                "variable size"
            )


def _check_reshape(where: str, dims: list[int], reshape: list[int]) -> None:
    """core ValidateIOShape: dims and reshape hold the same elements; with -1s, the runs of
    fixed dims between them multiply to the same counts (dims [2, 4, -1, 6] may become
    [8, -1, 1, 6], never [6, -1, 8]). An empty reshape takes dims that hold one element."""
    if not reshape:
        if WILDCARD in dims or _count(dims) != 1:
            raise ConfigError(
                f"{where}: an empty reshape needs dims holding one element, got {dims}"
            )
        return
    dim_runs, reshape_runs = _runs(dims), _runs(reshape)
    if len(dim_runs) != len(reshape_runs):
        raise ConfigError(
            f"{where}: dims {dims} and reshape {reshape} have a different number of -1 dims"
        )
    if dim_runs != reshape_runs:
        detail = (
            f"{_count(dims)} vs {_count(reshape)} elements"
            if len(dim_runs) == 1
            else "the fixed dims between the -1s multiply to different sizes "
            f"({dim_runs} vs {reshape_runs})"
        )
        raise ConfigError(f"{where}: reshape {reshape} does not fit dims {dims}: {detail}")


def _runs(dims: Sequence[int]) -> list[int]:
    """Element counts of the runs of fixed dims between -1s."""
    runs, current = [], 1
    for dim in dims:
        if dim == WILDCARD:
            runs.append(current)
            current = 1
        else:
            current *= dim
    runs.append(current)
    return runs


def _count(dims: Sequence[int]) -> int:
    total = 1
    for dim in dims:
        total *= dim
    return total
