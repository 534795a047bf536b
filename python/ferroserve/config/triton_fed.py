"""Graph tensors that Triton feeds itself rather than the client: sequence batching's control
tensors (START, END, READY, CORRID) and implicit state, which ferroserve feeds too
(runtime/sequence.py), and batch inputs (`batch_input`, built from each batch), which it does
not implement yet: a model that needs them is refused with the feature named, not with advice
to list the input in config.pbtxt."""

from __future__ import annotations

from collections.abc import Sequence

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ConfigError

# Names Triton's examples and QA models give sequence control tensors (model_configuration.md,
# "Sequence Batching"; qa/common/gen_qa_sequence_models.py).
_CONTROL_NAMES = frozenset({"start", "end", "ready", "corrid"})


def refuse_batch_io(config: mc.ModelConfig) -> None:
    """`batch_input` / `batch_output`: inputs Triton computes from each batch and outputs it
    scatters by an input's shape (ragged batching); ferroserve does neither yet."""
    for batch_input in config.batch_input:
        kind = mc.BatchInput.Kind.Name(batch_input.kind)
        raise ConfigError(
            f"model '{config.name}': batch_input {list(batch_input.target_name)} ({kind}) asks "
            "Triton to compute inputs from each batch (batch inputs, for ragged batching); "
            "ferroserve does not support batch inputs yet"
        )
    for batch_output in config.batch_output:
        raise ConfigError(
            f"model '{config.name}': batch_output {list(batch_output.target_name)} asks Triton "
            "to scatter outputs by an input's shape (ragged batching); ferroserve does not "
            "support batch outputs yet"
        )


def sequence_inputs(config: mc.ModelConfig) -> list[str]:
    """The graph inputs the sequence batcher feeds: its control inputs, then its states', in
    config order (the order the executor takes them in after the client's)."""
    batcher = config.sequence_batching
    return [c.name for c in batcher.control_input] + [s.input_name for s in batcher.state]


def sequence_outputs(config: mc.ModelConfig) -> list[str]:
    """The graph outputs the sequence batcher keeps as the next state, in config order."""
    return [state.output_name for state in config.sequence_batching.state]


def feeders(config: mc.ModelConfig) -> dict[str, str]:
    """The graph inputs the config has Triton feed and ferroserve does not, each with the
    feature that feeds it."""
    fed: dict[str, str] = {}
    for batch_input in config.batch_input:
        for name in batch_input.target_name:
            kind = mc.BatchInput.Kind.Name(batch_input.kind)
            fed[name] = f"a batch input (batch_input kind {kind})"
    return fed


def refuse_unfed(config: mc.ModelConfig, missing: Sequence[str]) -> None:
    """ConfigError for graph inputs `missing` from the config: naming the Triton feature that
    feeds them where there is one, else telling the user to list them."""
    fed = feeders(config)
    where = f"model '{config.name}'"
    named = [f"graph input '{name}' is {fed[name]}" for name in missing if name in fed]
    if named:
        raise ConfigError(
            f"{where}: {'; '.join(named)}: Triton's scheduler fills these in, not the client; "
            "ferroserve does not support that feature yet, so this model cannot be served"
        )
    controls = [name for name in missing if name.lower() in _CONTROL_NAMES]
    if controls and not config.HasField("sequence_batching"):
        raise ConfigError(
            f"{where}: graph input(s) {sorted(controls)} look like sequence control tensors, "
            "which Triton feeds through sequence_batching { control_input ... }; ferroserve "
            "does not support sequence batching yet. If they are ordinary inputs, list them "
            "in config.pbtxt's input section"
        )
    raise ConfigError(
        f"{where}: config.pbtxt does not list graph input(s) {sorted(missing)}; every ONNX "
        "input must be fed: add them to the input section (or leave input out to have it "
        "completed from the graph)"
    )
