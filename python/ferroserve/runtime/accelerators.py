"""What a config's `optimization.execution_accelerators` asks for and what ferroserve does with
each entry: TensorRT's settings it honours (precision FP16/FP32, workspace size, engine cache),
the rest of Triton's accepted settings named in a warning, names and parameters Triton's
onnxruntime backend refuses refused the same way (onnxruntime_backend `src/onnxruntime.cc`,
the `gpu_execution_accelerator` / `cpu_execution_accelerator` loops of session creation).
Read by placement (placement.py) once per model version."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ModelLoadError

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# TensorRT parameters ferroserve applies.
_TENSORRT_HONOURED = frozenset(
    {
        "precision_mode",
        "max_workspace_size_bytes",
        "trt_engine_cache_enable",
        "trt_engine_cache_path",
    }
)
# The other TensorRT parameters Triton's onnxruntime backend accepts: loaded with a warning.
_TENSORRT_ACCEPTED = frozenset(
    {
        "trt_max_partition_iterations",
        "trt_min_subgraph_size",
        "int8_calibration_table_name",
        "int8_use_native_calibration_table",
        "trt_dla_enable",
        "trt_dla_core",
        "trt_engine_cache_prefix",
        "trt_dump_subgraphs",
        "trt_force_sequential_engine_build",
        "trt_context_memory_sharing_enable",
        "trt_layer_norm_fp32_fallback",
        "trt_timing_cache_enable",
        "trt_timing_cache_path",
        "trt_force_timing_cache",
        "trt_detailed_build_log",
        "trt_build_heuristics_enable",
        "trt_sparsity_enable",
        "trt_builder_optimization_level",
        "trt_auxiliary_streams",
        "trt_tactic_sources",
        "trt_extra_plugin_lib_paths",
        "trt_profile_min_shapes",
        "trt_profile_max_shapes",
        "trt_profile_opt_shapes",
        "trt_cuda_graph_enable",
        "trt_dump_ep_context_model",
        "trt_ep_context_file_path",
        "trt_ep_context_embed_mode",
    }
)
# Triton's precision modes; ferroserve builds FP16 or FP32 engines.
_PRECISIONS = ("FP32", "FP16", "BF16", "INT8")


@dataclass(slots=True, frozen=True)
class TensorRtSettings:
    """TensorRT's options for one model version."""

    fp16: bool
    engine_cache_path: str | None
    """Built engines are kept here and reused by the next load (a build takes seconds to
    minutes); None rebuilds them at every load."""
    max_workspace_bytes: int | None


def gpu_accelerators(config: mc.ModelConfig, model_file: Path) -> TensorRtSettings | None:
    """TensorRT's settings when a GPU model asks for TensorRT, else None (CUDA alone).
    ModelLoadError for what Triton refuses too."""
    settings = None
    for accelerator in config.optimization.execution_accelerators.gpu_execution_accelerator:
        if accelerator.name == "tensorrt":
            settings = _tensorrt(config, dict(accelerator.parameters), model_file)
        elif accelerator.name == "cuda":
            # Triton passes these to the CUDA provider's options; ours come from parameters
            # (cudnn_conv_algo_search) and defaults.
            for key in sorted(accelerator.parameters):
                _ignored(config, f"cuda accelerator parameter '{key}'")
        else:
            raise ModelLoadError(
                f"model '{config.name}': gpu_execution_accelerator '{accelerator.name}' is not "
                "supported; use 'tensorrt' or 'cuda', as Triton's onnxruntime backend does"
            )
    return settings


def cpu_accelerators(config: mc.ModelConfig) -> None:
    """`cpu_execution_accelerator`: Triton's onnxruntime backend knows OpenVINO only."""
    for accelerator in config.optimization.execution_accelerators.cpu_execution_accelerator:
        if accelerator.name != "openvino":
            raise ModelLoadError(
                f"model '{config.name}': cpu_execution_accelerator '{accelerator.name}' is not "
                "known to Triton's onnxruntime backend (only 'openvino'); remove it"
            )
        _ignored(config, "cpu_execution_accelerator 'openvino' (the CPU provider runs the model)")


def warn_gpu_accelerators_on_cpu(config: mc.ModelConfig, why: str) -> list[str]:
    """A model that runs on CPU ignores its GPU accelerators, as Triton does: named in a
    warning each (`why`: what put it on CPU). Returns their names."""
    names = [
        accelerator.name
        for accelerator in config.optimization.execution_accelerators.gpu_execution_accelerator
    ]
    for name in names:
        log.warning(
            "model '%s': gpu_execution_accelerator '%s' has no effect: the model runs on CPU "
            "(%s); use instance_group { kind: KIND_GPU } to run it on a GPU",
            config.name,
            name,
            why,
        )
    return names


def _ignored(config: mc.ModelConfig, what: str) -> None:
    log.warning(
        "model '%s': %s is not supported by ferroserve and has no effect", config.name, what
    )


def _tensorrt(
    config: mc.ModelConfig, parameters: dict[str, str], model_file: Path
) -> TensorRtSettings:
    where = f"model '{config.name}': tensorrt"
    unknown = sorted(set(parameters) - _TENSORRT_HONOURED - _TENSORRT_ACCEPTED)
    if unknown:
        raise ModelLoadError(
            f"{where} parameters {unknown} are not TensorRT parameters Triton's onnxruntime "
            f"backend knows; ferroserve applies {sorted(_TENSORRT_HONOURED)}"
        )
    for key in sorted(set(parameters) & _TENSORRT_ACCEPTED):
        _ignored(config, f"tensorrt parameter '{key}'")
    precision = parameters.get("precision_mode", "FP32").upper()
    if precision not in _PRECISIONS:
        raise ModelLoadError(
            f"{where} precision_mode must be FP16 or FP32 (or Triton's BF16, INT8), got "
            f"'{precision}'"
        )
    if precision in ("BF16", "INT8"):
        _ignored(config, f"tensorrt precision_mode {precision} (engines are built in FP32)")
    workspace = parameters.get("max_workspace_size_bytes")
    try:
        workspace_bytes = int(workspace) if workspace is not None else None
    except ValueError:
        raise ModelLoadError(
            f"{where} max_workspace_size_bytes must be an integer, got '{workspace}'"
        ) from None
    cache_enabled = parameters.get("trt_engine_cache_enable", "true").lower()
    if cache_enabled not in _TRUE | _FALSE:
        raise ModelLoadError(
            f"{where} trt_engine_cache_enable must be true or false, got '{cache_enabled}'"
        )
    cache = None
    if cache_enabled in _TRUE:
        cache = parameters.get("trt_engine_cache_path") or str(
            default_engine_cache(config.name, model_file)
        )
    return TensorRtSettings(precision == "FP16", cache, workspace_bytes)


def default_engine_cache(model: str, model_file: Path) -> Path:
    """Where TensorRT engines of a model version are kept by default: a per-user cache folder
    ($FERROSERVE_CACHE_DIR, else $XDG_CACHE_HOME/ferroserve, else ~/.cache/ferroserve), not the
    model repository, which may be read-only."""
    root = os.environ.get("FERROSERVE_CACHE_DIR")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "ferroserve")
    return Path(root) / "tensorrt" / model / model_file.parent.name
