"""What a model's `config.pbtxt` `parameters` ask of the runtime: onnxruntime session options
(Triton's onnxruntime backend names where they exist) for either engine, the engine choice,
whether a GPU model may fall back to the CPU, and keys that no longer have an effect. Read once
per model version by the loader (runtime/loader.py) and the session code (runtime/session.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ModelLoadError
from ferroserve.server.limits import DEFAULT_MAX_QUEUE_SIZE

log = logging.getLogger(__name__)

# Measured on 2 cores: ORT's default intra-op pool (one spinning thread per core) burns 1.5
# cores at concurrency 1 and triples p99 by fighting the gRPC threads. One thread without
# spinning is the server default; models that need more say so in config.pbtxt parameters.
DEFAULT_INTRA_OP_THREADS = 1
DEFAULT_INTER_OP_THREADS = 1

# onnxruntime's graph optimization levels, by the names config parameters use.
GRAPH_LEVELS = ("disable_all", "basic", "extended", "all")

# Triton's onnxruntime backend: optimization { graph { level } }: -1 basic, 1 extended,
# 0 (unset) all.
_CONFIG_GRAPH_LEVELS = {-1: "basic", 0: "all", 1: "extended", 2: "all"}
_TRUE = {"1", "true", "yes", "on"}
_NATIVE_MODES = ("auto", "false")
# Parameters that once had an effect and are still accepted (configs in the wild set them),
# each with what to tell the operator.
_RETIRED_PARAMETERS = {
    "inline_execution": (
        "inline execution on the event loop was removed: every request is queued to the "
        "model's executor threads (docs/configuration.md)"
    ),
}


# The bound of queue levels whose config sets no max_queue_size (server/limits.py says why);
# `ferroserve serve --default-max-queue-size` sets it for the server.
_queue_bound = {"max_queue_size": DEFAULT_MAX_QUEUE_SIZE}


def set_default_max_queue_size(size: int) -> None:
    """The bound of levels whose config sets none, for the versions loaded from now on."""
    _queue_bound["max_queue_size"] = size


def queue_bound(configured: int) -> int:
    """A level's max_queue_size: its config's, else the server's default."""
    return configured or _queue_bound["max_queue_size"]


@dataclass(slots=True, frozen=True)
class SessionSettings:
    """Session options from config parameters, for either engine."""

    intra_op_threads: int
    inter_op_threads: int
    parallel_execution: bool
    allow_spinning: bool
    optimization: str
    """One of GRAPH_LEVELS."""
    optimized_model_path: str | None


def parameter(config: mc.ModelConfig, key: str) -> str | None:
    """A config.pbtxt `parameters { key: ... value { string_value: ... } }` entry."""
    if key in config.parameters:
        return str(config.parameters[key].string_value)
    return None


def flag(config: mc.ModelConfig, key: str) -> bool:
    """A yes/no parameter ("1", "true", "yes", "on" mean yes); absent means no."""
    return (parameter(config, key) or "").lower() in _TRUE


def _int_parameter(config: mc.ModelConfig, key: str, default: int) -> int:
    raw = parameter(config, key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ModelLoadError(
            f"model '{config.name}': parameter {key} must be an integer, got '{raw}'"
        ) from None


def session_settings(config: mc.ModelConfig) -> SessionSettings:
    """Session options from config parameters with defaults measured for a concurrent server on
    a small machine."""
    named_level = parameter(config, "graph_optimization_level")
    if named_level is not None:
        if named_level not in GRAPH_LEVELS:
            raise ModelLoadError(
                f"model '{config.name}': graph_optimization_level must be one of "
                f"{sorted(GRAPH_LEVELS)}, got '{named_level}'"
            )
        level = named_level
    else:
        if config.optimization.graph.level not in _CONFIG_GRAPH_LEVELS:
            raise ModelLoadError(
                f"model '{config.name}': optimization.graph.level must be -1, 0, 1 or 2"
            )
        level = _CONFIG_GRAPH_LEVELS[config.optimization.graph.level]
    return SessionSettings(
        intra_op_threads=_int_parameter(config, "intra_op_thread_count", DEFAULT_INTRA_OP_THREADS),
        inter_op_threads=_int_parameter(config, "inter_op_thread_count", DEFAULT_INTER_OP_THREADS),
        parallel_execution=_int_parameter(config, "execution_mode", 0) == 1,
        allow_spinning=flag(config, "allow_spinning"),
        optimization=level,
        optimized_model_path=parameter(config, "optimized_model_filepath") or None,
    )


def native_engine_allowed(config: mc.ModelConfig) -> bool:
    """Config parameter `native_engine`: "auto" (default) runs models through the native
    engine where it can, "false" always through onnxruntime's Python binding."""
    mode = (parameter(config, "native_engine") or "auto").lower()
    if mode not in _NATIVE_MODES:
        raise ModelLoadError(
            f"model '{config.name}': parameter native_engine must be one of {_NATIVE_MODES}, "
            f"got '{mode}'"
        )
    return mode == "auto"


def warn_retired_parameters(config: mc.ModelConfig) -> list[str]:
    """Logs one warning per parameter that no longer has an effect and returns their keys:
    accepted, never silently (docs/architecture.md, "Never silent")."""
    retired = [key for key in _RETIRED_PARAMETERS if key in config.parameters]
    for key in retired:
        log.warning(
            "model '%s': config.pbtxt parameter '%s' no longer has an effect: %s; remove it",
            config.name,
            key,
            _RETIRED_PARAMETERS[key],
        )
    return retired
