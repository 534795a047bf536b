"""Where a model version's instances run, from its `instance_group` (Triton's semantics): the
execution provider (CPU, CUDA, or TensorRT when `optimization.execution_accelerators` asks for
it), the GPU of each instance, and TensorRT's settings with its engine cache.

Triton places `count` instances on *each* GPU a group lists, and on every visible GPU when the
group lists none."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ModelLoadError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROVIDER_NAMES = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Triton's onnxruntime backend names for TensorRT accelerator parameters that we honour.
_TENSORRT_PARAMETERS = {
    "precision_mode",
    "max_workspace_size_bytes",
    "trt_engine_cache_enable",
    "trt_engine_cache_path",
}


@dataclass(slots=True, frozen=True)
class TensorRtSettings:
    """TensorRT's options for one model version."""

    fp16: bool
    engine_cache_path: str | None
    """Built engines are kept here and reused by the next load (a build takes seconds to
    minutes); None rebuilds them at every load."""
    max_workspace_bytes: int | None


@dataclass(slots=True, frozen=True)
class Placement:
    """The provider and devices of one model version's instances."""

    accelerator: str
    """"cpu", "cuda" or "tensorrt"."""
    instance_count: int
    gpus: tuple[int, ...]
    """The GPU id of each instance (empty on the CPU)."""
    tensorrt: TensorRtSettings | None = None
    cudnn_conv_algo_search: str = "exhaustive"
    """"exhaustive", "heuristic" or "default" (config parameter `cudnn_conv_algo_search`)."""

    @property
    def provider(self) -> str:
        """onnxruntime's name of the provider asked for."""
        return PROVIDER_NAMES[self.accelerator]


def placement(config: mc.ModelConfig, model_file: Path) -> Placement:
    """The placement `config`'s instance groups ask for. Raises ModelLoadError for what cannot
    be served: CPU and GPU groups mixed, an accelerator other than TensorRT, bad parameters."""
    groups = list(config.instance_group) or [
        mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_AUTO)
    ]
    gpu_groups = [g for g in groups if g.kind == mc.ModelInstanceGroup.KIND_GPU]
    if not gpu_groups:
        return Placement("cpu", sum(max(g.count, 1) for g in groups), ())
    if len(gpu_groups) != len(groups):
        raise ModelLoadError(
            f"model '{config.name}': mixing GPU and CPU instance groups is not supported; "
            "give the model one kind of group"
        )
    gpus = tuple(
        gpu
        for group in gpu_groups
        for gpu in (list(group.gpus) or visible_gpus())
        for _ in range(max(group.count, 1))
    )
    tensorrt = _tensorrt(config, model_file)
    return Placement(
        "tensorrt" if tensorrt is not None else "cuda",
        len(gpus),
        gpus,
        tensorrt,
        conv_algo_search(config),
    )


# Triton's onnxruntime backend numbers them 0, 1, 2 (OrtCudnnConvAlgoSearch); names work too.
_CONV_ALGO_SEARCH = {
    "0": "exhaustive",
    "1": "heuristic",
    "2": "default",
    "exhaustive": "exhaustive",
    "heuristic": "heuristic",
    "default": "default",
}


def conv_algo_search(config: mc.ModelConfig) -> str:
    """Config parameter `cudnn_conv_algo_search` (Triton's): how cuDNN picks convolution
    algorithms on the GPU. EXHAUSTIVE (0, the default) benchmarks them for every new input
    shape, which a dynamic batcher produces with every new batch size; HEURISTIC (1) does not."""
    if "cudnn_conv_algo_search" not in config.parameters:
        return "exhaustive"
    raw = config.parameters["cudnn_conv_algo_search"].string_value
    search = _CONV_ALGO_SEARCH.get(raw.strip().lower())
    if search is None:
        raise ModelLoadError(
            f"model '{config.name}': parameter cudnn_conv_algo_search must be 0 (EXHAUSTIVE), "
            f"1 (HEURISTIC) or 2 (DEFAULT), got '{raw}'"
        )
    return search


def visible_gpus() -> list[int]:
    """GPU ids a group without `gpus` uses: every GPU CUDA will show this process (per
    CUDA_VISIBLE_DEVICES, else NVML's count), or GPU 0 when neither says."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return list(range(len([d for d in visible.split(",") if d.strip()])))
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no GPU: let the provider say what is missing
        return [0]
    return list(range(count)) or [0]


def _tensorrt(config: mc.ModelConfig, model_file: Path) -> TensorRtSettings | None:
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    settings = None
    for accelerator in accelerators:
        if accelerator.name != "tensorrt":
            raise ModelLoadError(
                f"model '{config.name}': gpu_execution_accelerator '{accelerator.name}' is not "
                "supported (only 'tensorrt')"
            )
        parameters = dict(accelerator.parameters)
        unknown = sorted(set(parameters) - _TENSORRT_PARAMETERS)
        if unknown:
            raise ModelLoadError(
                f"model '{config.name}': tensorrt parameters {unknown} are not supported; "
                f"use {sorted(_TENSORRT_PARAMETERS)}"
            )
        precision = parameters.get("precision_mode", "FP32").upper()
        if precision not in ("FP16", "FP32"):
            raise ModelLoadError(
                f"model '{config.name}': tensorrt precision_mode must be FP16 or FP32, "
                f"got '{precision}'"
            )
        workspace = parameters.get("max_workspace_size_bytes")
        try:
            workspace_bytes = int(workspace) if workspace is not None else None
        except ValueError:
            raise ModelLoadError(
                f"model '{config.name}': tensorrt max_workspace_size_bytes must be an integer, "
                f"got '{workspace}'"
            ) from None
        cache_enabled = parameters.get("trt_engine_cache_enable", "true").lower()
        if cache_enabled not in _TRUE | _FALSE:
            raise ModelLoadError(
                f"model '{config.name}': tensorrt trt_engine_cache_enable must be true or "
                f"false, got '{cache_enabled}'"
            )
        cache = None
        if cache_enabled in _TRUE:
            cache = parameters.get("trt_engine_cache_path") or str(
                default_engine_cache(config.name, model_file)
            )
        settings = TensorRtSettings(precision == "FP16", cache, workspace_bytes)
    return settings


def default_engine_cache(model: str, model_file: Path) -> Path:
    """Where TensorRT engines of a model version are kept by default: a per-user cache folder
    ($FERROSERVE_CACHE_DIR, else $XDG_CACHE_HOME/ferroserve, else ~/.cache/ferroserve), not the
    model repository, which may be read-only."""
    root = os.environ.get("FERROSERVE_CACHE_DIR")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "ferroserve")
    return Path(root) / "tensorrt" / model / model_file.parent.name
