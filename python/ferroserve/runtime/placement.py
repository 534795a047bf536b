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
from ferroserve.runtime.accelerators import (
    TensorRtSettings,
    cpu_accelerators,
    default_engine_cache,
    gpu_accelerators,
    warn_gpu_accelerators_on_cpu,
)

__all__ = [
    "CPU",
    "CUDA",
    "PROVIDER_NAMES",
    "TENSORRT",
    "Placement",
    "TensorRtSettings",
    "conv_algo_search",
    "default_engine_cache",
    "detected_gpus",
    "placement",
    "visible_gpus",
]

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROVIDER_NAMES = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}


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
    be served: CPU and GPU groups mixed, GPU ids this machine does not have, accelerators or
    parameters Triton refuses too."""
    groups = list(config.instance_group) or [
        mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_AUTO)
    ]
    gpu_groups = [g for g in groups if g.kind == mc.ModelInstanceGroup.KIND_GPU]
    cpu_accelerators(config)
    if not gpu_groups:
        kinds = sorted({mc.ModelInstanceGroup.Kind.Name(g.kind) for g in groups})
        why = "no instance_group" if not config.instance_group else f"instance_group {kinds}"
        warn_gpu_accelerators_on_cpu(config, why)
        return Placement("cpu", sum(max(g.count, 1) for g in groups), ())
    if len(gpu_groups) != len(groups):
        raise ModelLoadError(
            f"model '{config.name}': mixing GPU and CPU instance groups is not supported; "
            "give the model one kind of group"
        )
    _check_gpu_ids(config, gpu_groups)
    gpus = tuple(
        gpu
        for group in gpu_groups
        for gpu in (list(group.gpus) or visible_gpus())
        for _ in range(max(group.count, 1))
    )
    tensorrt = gpu_accelerators(config, model_file)
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
    return detected_gpus() or [0]


def detected_gpus() -> list[int] | None:
    """The GPU ids CUDA will show this process (CUDA_VISIBLE_DEVICES, else NVML's count);
    None when neither can tell (no NVML, no driver)."""
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
        return None
    return list(range(count))


def _check_gpu_ids(config: mc.ModelConfig, groups: list[mc.ModelInstanceGroup]) -> None:
    """core `ValidateInstanceGroup`: a GPU id the machine does not have is a config error (not
    a provider failure a CPU fallback could hide). Only where the GPUs can be counted: without
    a driver the provider says what is missing."""
    known = detected_gpus()
    if not known:
        return
    for index, group in enumerate(groups):
        missing = sorted(set(group.gpus) - set(known))
        if missing:
            raise ModelLoadError(
                f"model '{config.name}': instance_group {group.name or index} lists GPU id(s) "
                f"{missing}, which this machine does not have: its CUDA devices are {known}; "
                "list existing ids, or leave gpus out to use every visible GPU"
            )
