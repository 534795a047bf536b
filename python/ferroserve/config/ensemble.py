"""An ensemble's config (`platform: "ensemble"`, `ensemble_scheduling`) checked against
Triton's rules that need no other model (core `ValidateEnsembleSchedulingConfig`): every step
names a model and maps tensors, each ensemble tensor is produced once (an ensemble input or
one step's output) and read by someone, every ensemble output is produced, and the steps form
no cycle. The result, `EnsembleGraph`, numbers the tensors and orders the steps so each comes
after those it reads from; the loader checks it against the composing models
(runtime/ensemble.py) and Rust runs it. ConfigError says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config.text import ENSEMBLE_PLATFORM
from ferroserve.errors import ConfigError


@dataclass(slots=True, frozen=True)
class EnsembleStep:
    """One step: a composing model and its tensors' ensemble names."""

    number: int
    """Its position in `ensemble_scheduling.step`, from 1 (how errors name it)."""
    model: str
    version: int
    """`model_version`; -1: the version the model routes requests without a version to."""
    inputs: tuple[tuple[str, str], ...]
    """(model input, ensemble tensor) per `input_map` entry, sorted."""
    outputs: tuple[tuple[str, str], ...]
    """(model output, ensemble tensor) per `output_map` entry, sorted."""

    @property
    def label(self) -> str:
        return f"step {self.number} (model '{self.model}')"


@dataclass(slots=True, frozen=True)
class EnsembleGraph:
    """An ensemble's steps in dependency order and its tensors."""

    tensors: tuple[str, ...]
    """Every ensemble tensor: the inputs first, then the steps' outputs in step order."""
    steps: tuple[EnsembleStep, ...]
    """Each after every step whose output it reads."""

    def index(self, tensor: str) -> int:
        return self.tensors.index(tensor)


def is_ensemble(config: mc.ModelConfig) -> bool:
    return config.platform == ENSEMBLE_PLATFORM


def ensemble_graph(config: mc.ModelConfig) -> EnsembleGraph:
    """The checked graph of an ensemble config (see the module documentation)."""
    where = f"ensemble '{config.name}'"
    _check_fields(where, config)
    steps = [
        _step(where, number, step) for number, step in enumerate(config.ensemble_scheduling.step, 1)
    ]
    inputs = [tensor.name for tensor in config.input]
    outputs = [tensor.name for tensor in config.output]
    producer = _producers(where, steps, inputs)
    for step in steps:
        for _, tensor in step.inputs:
            if tensor not in producer:
                raise ConfigError(
                    f"{where}: {step.label} reads tensor '{tensor}', which no step's "
                    "output_map produces and which is not an ensemble input"
                )
    for name in outputs:
        if name not in producer or name in inputs:
            raise ConfigError(
                f"{where}: output '{name}' is not produced by any step; map a step's output "
                f"to it in that step's output_map"
            )
    read = {tensor for step in steps for _, tensor in step.inputs}
    for tensor, source in producer.items():
        if tensor not in read and tensor not in outputs:
            raise ConfigError(
                f"{where}: tensor '{tensor}' ({source}) is never used: no step reads it "
                "and it is not an ensemble output"
            )
    ordered = _dependency_order(where, steps, inputs)
    tensors = [*inputs, *(tensor for step in ordered for _, tensor in step.outputs)]
    return EnsembleGraph(tuple(tensors), tuple(ordered))


def _check_fields(where: str, config: mc.ModelConfig) -> None:
    """The fields an ensemble must have, and those it must not."""
    if not config.HasField("ensemble_scheduling") or not config.ensemble_scheduling.step:
        raise ConfigError(
            f"{where}: platform 'ensemble' needs ensemble_scheduling {{ step [ ... ] }} with at "
            "least one step"
        )
    if config.backend or config.HasField("dynamic_batching") or config.instance_group:
        raise ConfigError(
            f"{where}: an ensemble has no backend, dynamic_batching or instance_group (its "
            "composing models batch and run); remove them"
        )
    if config.HasField("sequence_batching"):
        raise ConfigError(f"{where}: stateful ensembles (sequence_batching) are not supported")
    if not config.input or not config.output:
        raise ConfigError(f"{where}: list the ensemble's input and output tensors in its config")


def _producers(where: str, steps: list[EnsembleStep], inputs: list[str]) -> dict[str, str]:
    """Each tensor's one producer (an ensemble input or a step), by name."""
    producer = dict.fromkeys(inputs, "an ensemble input")
    for step in steps:
        for _, tensor in step.outputs:
            if tensor in producer:
                raise ConfigError(
                    f"{where}: tensor '{tensor}' is produced by {producer[tensor]} and again "
                    f"by {step.label}'s output_map; each ensemble tensor has one producer, "
                    "rename one of them"
                )
            producer[tensor] = step.label
    return producer


def _step(where: str, number: int, step: mc.ModelEnsembling.Step) -> EnsembleStep:
    label = f"{where} step {number}"
    if not step.model_name:
        raise ConfigError(f"{label}: model_name is missing")
    if not step.input_map or not step.output_map:
        raise ConfigError(
            f"{label} (model '{step.model_name}'): input_map and output_map must each map at "
            "least one tensor"
        )
    if step.model_version < -1:
        raise ConfigError(
            f"{label} (model '{step.model_name}'): model_version must be -1 (the latest) or "
            f"a version number, got {step.model_version}"
        )
    return EnsembleStep(
        number,
        step.model_name,
        int(step.model_version),
        tuple(sorted(step.input_map.items())),
        tuple(sorted(step.output_map.items())),
    )


def _dependency_order(
    where: str, steps: list[EnsembleStep], inputs: list[str]
) -> list[EnsembleStep]:
    """The steps, each after the steps producing what it reads (their config order among
    steps that are ready together); ConfigError naming the steps of a cycle."""
    available = set(inputs)
    waiting = list(steps)
    ordered: list[EnsembleStep] = []
    while waiting:
        ready = [s for s in waiting if all(t in available for _, t in s.inputs)]
        if not ready:
            cycle = ", ".join(step.label for step in waiting)
            raise ConfigError(
                f"{where}: the steps form a cycle (each waits for another's output): {cycle}"
            )
        for step in ready:
            ordered.append(step)
            available.update(tensor for _, tensor in step.outputs)
            waiting.remove(step)
    return ordered
