"""A stateful model's sequence batcher (Triton's `sequence_batching`) as the native engine runs
it: the graph inputs the server feeds (the control inputs START, END, READY and CORRID, and the
implicit `state`), the state outputs it keeps for the sequence's next request, its slots and idle
timeout, and its batch queue's settings. Built once per version from the config and the graph
by the loader; the scheduling is Rust's (`ferroserve_batcher::SequenceScheduler`,
`ferroserve_frontend::Sequencer`). Each check cites Triton's rule or says why ferroserve is
stricter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, OnnxTensor, TensorSpec
from ferroserve.datatypes import BY_CONFIG_NAME, BY_ONNX_TYPE, Datatype
from ferroserve.errors import ConfigError
from ferroserve.runtime.settings import queue_bound

_CONTROL = mc.ModelSequenceBatching.Control
# max_sequence_idle_microseconds when the config leaves it 0 (Triton's default: 1 s).
DEFAULT_MAX_IDLE_US = 1_000_000
_FLAG_KINDS = {
    _CONTROL.CONTROL_SEQUENCE_START: "START",
    _CONTROL.CONTROL_SEQUENCE_END: "END",
    _CONTROL.CONTROL_SEQUENCE_READY: "READY",
}


@dataclass(slots=True, frozen=True)
class SequenceBatching:
    """What a stateful model version's executor and queue need."""

    inputs: tuple[TensorSpec, ...]
    """The graph inputs the server feeds, in the executor's order after the client's: the
    control inputs, then the states' (dims without the batch dim)."""
    outputs: tuple[TensorSpec, ...]
    """The states' graph outputs, in the executor's order after the client's outputs."""
    plan: _core.SequencePlan
    """For the Rust sequencer."""
    slots: int
    max_queue_delay_us: int
    preferred_batch_sizes: tuple[int, ...]


def sequence_batching(
    config: mc.ModelConfig,
    signature: ModelSignature,
    graph_inputs: Sequence[OnnxTensor],
    graph_outputs: Sequence[OnnxTensor],
    instances: int,
) -> SequenceBatching | None:
    """The version's sequence batcher, or None without `sequence_batching`. ConfigError naming
    the field for what Triton refuses or ferroserve cannot feed."""
    if not config.HasField("sequence_batching"):
        return None
    batcher = config.sequence_batching
    where = f"model '{config.name}': sequence_batching"
    by_input = {tensor.name: tensor for tensor in graph_inputs}
    by_output = {tensor.name: tensor for tensor in graph_outputs}
    batches = signature.batches
    inputs: list[TensorSpec] = []
    controls: list[tuple[str, bytes, bytes, str]] = []
    for control_input in batcher.control_input:
        graph = _graph_tensor(by_input, control_input.name, f"{where} control_input", "input")
        if len(control_input.control) != 1:
            raise ConfigError(
                f"{where} control_input '{control_input.name}' must have exactly one control, "
                f"has {len(control_input.control)}"
            )
        (control,) = control_input.control
        label = f"{where} control_input '{control_input.name}'"
        datatype, values = _control_values(control, label)
        _check_graph(graph, datatype, (1,), batches, f"{where} control_input")
        controls.append(values)
        inputs.append(TensorSpec(control_input.name, datatype, (1,), (1,)))
    outputs: list[TensorSpec] = []
    states: list[tuple[int, bytes, list[int]]] = []
    for state in batcher.state:
        label = f"{where} state '{state.input_name}'"
        datatype = _datatype(state.data_type, label)
        dims = tuple(int(d) for d in state.dims)
        if datatype.numpy is None or datatype.is_bytes or not dims or min(dims) < 1:
            raise ConfigError(
                f"{label}: ferroserve keeps states of fixed-size datatypes with fixed dims; "
                f"got {mc.DataType.Name(state.data_type)} dims {list(dims)}"
            )
        for initial in state.initial_state:
            if initial.WhichOneof("state_data") != "zero_data":
                raise ConfigError(
                    f"{label}: initial_state from a data_file is not supported yet; use "
                    "zero_data (or leave initial_state out: zeros)"
                )
        graph_in = _graph_tensor(by_input, state.input_name, label, "input")
        graph_out = _graph_tensor(by_output, state.output_name, label, "output")
        _check_graph(graph_in, datatype, dims, batches, label)
        _check_graph(graph_out, datatype, dims, batches, label)
        inputs.append(TensorSpec(state.input_name, datatype, dims, dims))
        output = TensorSpec(state.output_name, datatype, dims, dims)
        states.append((len(signature.outputs) + len(outputs), _zeros(datatype, dims), list(dims)))
        outputs.append(output)
    slots, delay, preferred = _strategy(config, where, instances)
    plan = _core.SequencePlan(
        model=config.name,
        slots=slots,
        max_idle_us=int(batcher.max_sequence_idle_microseconds) or DEFAULT_MAX_IDLE_US,
        # Triton does not bound the requests a sequence batcher holds; the server's default
        # queue bound does here (docs/sequence-batching.md).
        max_held=queue_bound(0),
        controls=controls,
        states=states,
        batches=batches,
    )
    return SequenceBatching(tuple(inputs), tuple(outputs), plan, slots, delay, preferred)


def _strategy(
    config: mc.ModelConfig, where: str, instances: int
) -> tuple[int, int, tuple[int, ...]]:
    """Slots, queue delay and preferred batch sizes: `direct` (Triton's default) has
    max_batch_size slots (at least 1) per instance; `oldest` has max_candidate_sequences."""
    batcher = config.sequence_batching
    if batcher.HasField("oldest"):
        oldest = batcher.oldest
        if oldest.max_candidate_sequences < 1:
            # Triton would hold every sequence in its backlog for ever; say so at load.
            raise ConfigError(
                f"{where} oldest max_candidate_sequences must be at least 1, got "
                f"{oldest.max_candidate_sequences}"
            )
        return (
            int(oldest.max_candidate_sequences),
            int(oldest.max_queue_delay_microseconds),
            tuple(int(size) for size in oldest.preferred_batch_size),
        )
    slots = max(config.max_batch_size, 1) * instances
    return slots, int(batcher.direct.max_queue_delay_microseconds), ()


def _control_values(
    control: mc.ModelSequenceBatching.Control, where: str
) -> tuple[Datatype, tuple[str, bytes, bytes, str]]:
    """A control's datatype and (kind, false bytes, true bytes, CORRID datatype)."""
    if control.kind == _CONTROL.CONTROL_SEQUENCE_CORRID:
        datatype = _datatype(control.data_type, where)
        return datatype, ("CORRID", b"", b"", datatype.name)
    kind = _FLAG_KINDS[control.kind]
    given = [
        (name, list(values))
        for name, values in (
            ("TYPE_INT32", control.int32_false_true),
            ("TYPE_FP32", control.fp32_false_true),
            ("TYPE_BOOL", control.bool_false_true),
        )
        if values
    ]
    # Triton's GetBooleanSequenceControlProperties: exactly one of them, with two values.
    if len(given) != 1 or len(given[0][1]) != 2:
        raise ConfigError(
            f"{where}: a {kind} control needs exactly one of int32_false_true, "
            "fp32_false_true or bool_false_true, with two values (false, true)"
        )
    type_name, (false, true) = given[0]
    datatype = BY_CONFIG_NAME[type_name]
    values = [np.array(value, datatype.numpy).tobytes() for value in (false, true)]
    return datatype, (kind, values[0], values[1], "")


def _datatype(data_type: int, where: str) -> Datatype:
    datatype = BY_CONFIG_NAME.get(mc.DataType.Name(data_type))
    if datatype is None:
        raise ConfigError(f"{where}: data_type {mc.DataType.Name(data_type)} is not supported")
    return datatype


def _graph_tensor(tensors: dict[str, OnnxTensor], name: str, where: str, kind: str) -> OnnxTensor:
    tensor = tensors.get(name)
    if tensor is None:
        raise ConfigError(
            f"{where}: '{name}' is not an {kind} of the ONNX graph; it has {sorted(tensors)}"
        )
    return tensor


def _check_graph(
    graph: OnnxTensor, datatype: Datatype, dims: tuple[int, ...], batches: bool, where: str
) -> None:
    """The graph tensor has the datatype and dims (after the batch dim) the server feeds."""
    graph_type = BY_ONNX_TYPE.get(graph.onnx_type)
    shape = graph.shape[1:] if batches else graph.shape
    fits = len(shape) == len(dims) and all(
        g is None or g == d for g, d in zip(shape, dims, strict=True)
    )
    if graph_type != datatype or not fits:
        fed = ["batch", *dims] if batches else list(dims)
        raise ConfigError(
            f"{where}: '{graph.name}' is {graph.onnx_type} {list(graph.shape)} in the ONNX "
            f"graph; the server feeds it as {datatype.name} {fed}"
        )


def _zeros(datatype: Datatype, dims: tuple[int, ...]) -> bytes:
    assert datatype.numpy is not None
    return np.zeros(dims, datatype.numpy).tobytes()


def sequence_feeds(sequence: SequenceBatching, rows: int | None) -> dict[str, np.ndarray]:
    """Zeros for the server-fed inputs of a warm-up call of `rows` rows (None: no batch dim)."""
    feeds = {}
    for spec in sequence.inputs:
        assert spec.datatype.numpy is not None
        shape = [*([] if rows is None else [rows]), *spec.dims]
        feeds[spec.name] = np.zeros(shape, spec.datatype.numpy)
    return feeds
