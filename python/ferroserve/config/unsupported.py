"""The fields of a config.pbtxt that ferroserve does not honour: each is named in a warning
when a version loads, so no setting is dropped silently (docs/configuration.md lists them).
Fields whose whole subtree is honoured, validated (refused when Triton refuses them) or worded
by the code that reads them (placement: the execution accelerators) are not listed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from google.protobuf.message import Message

from ferroserve._proto import model_config_pb2 as mc

log = logging.getLogger(__name__)

# Fields whose whole subtree is honoured or checked.
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
        # Image layout metadata for clients; Triton's backends do not read it either, and
        # validation checks its 3 dims.
        "input.format",
        # Honoured for graph initializers a request may override (config/autocomplete.py).
        "input.optional",
        # Refused by validation outside TensorRT, as Triton does.
        "input.is_shape_tensor",
        "input.is_non_linear_format_io",
        "output.is_shape_tensor",
        "output.is_non_linear_format_io",
        "output.name",
        "output.data_type",
        "output.dims",
        "output.reshape",
        "output.label_filename",
        "instance_group.name",
        "instance_group.kind",
        "instance_group.count",
        "instance_group.gpus",
        "instance_group.profile",
        "dynamic_batching.preferred_batch_size",
        "dynamic_batching.max_queue_delay_microseconds",
        "dynamic_batching.preserve_ordering",
        "dynamic_batching.priority_levels",
        "dynamic_batching.default_priority_level",
        "dynamic_batching.default_queue_policy",
        "dynamic_batching.priority_queue_policy",
        "optimization.graph",
        # Worded by placement (runtime/placement.py): honoured, warned about or refused.
        "optimization.execution_accelerators",
        "model_warmup",
        # Sequence batching (runtime/sequence.py); an initial_state from a data_file is
        # refused there.
        "sequence_batching.max_sequence_idle_microseconds",
        "sequence_batching.control_input",
        "sequence_batching.direct.max_queue_delay_microseconds",
        "sequence_batching.oldest.max_candidate_sequences",
        "sequence_batching.oldest.preferred_batch_size",
        "sequence_batching.oldest.max_queue_delay_microseconds",
        "sequence_batching.state.input_name",
        "sequence_batching.state.output_name",
        "sequence_batching.state.data_type",
        "sequence_batching.state.dims",
        "sequence_batching.state.initial_state",
        # Ensembles (config/ensemble.py, runtime/ensemble.py); max_inflight_requests and
        # model_namespace are warned about.
        "ensemble_scheduling.step.model_name",
        "ensemble_scheduling.step.model_version",
        "ensemble_scheduling.step.input_map",
        "ensemble_scheduling.step.output_map",
        # Refused with the Triton feature named (config/triton_fed.py).
        "batch_input",
        "batch_output",
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
        "sequence_batching",
        "sequence_batching.direct",
        "sequence_batching.oldest",
        "sequence_batching.state",
        "ensemble_scheduling",
        "ensemble_scheduling.step",
    }
)


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
