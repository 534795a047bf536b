"""Loads each model version with the execution provider and session options its config asks for,
and refuses a silent CPU fallback. CPU and GPU models, string tensors included, run on the native
engine (onnxruntime's C API from Rust, see runtime/native.py); models whose config sets
`native_engine: "false"` (and the rare graph that engine cannot run, logged) get an onnxruntime
Python session.

A GPU provider that cannot start (no GPU, CUDA or cuDNN missing) fails the load with
onnxruntime's reason, unless config parameter `allow_cpu_fallback` says otherwise: the native
engine registers each provider and stops at the first that fails; onnxruntime's Python binding
quietly runs on CPU instead, so there `session.get_providers()` is checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import OnnxTensor
from ferroserve.errors import ModelLoadError
from ferroserve.runtime.native import load_native
from ferroserve.runtime.placement import CPU, CUDA, TENSORRT, Placement, placement
from ferroserve.runtime.settings import (
    SessionSettings,
    flag,
    native_engine_allowed,
    session_settings,
)

log = logging.getLogger(__name__)

_ORT_GRAPH_LEVELS = {
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(slots=True)
class LoadedSession:
    """A ready model version: an onnxruntime session (Python binding) or a native model, and
    the provider it really runs on."""

    session: ort.InferenceSession | None
    native: _core.OrtModel | None
    provider: str
    inputs: list[OnnxTensor]
    outputs: list[OnnxTensor]
    instance_count: int


def session_options(settings: SessionSettings) -> ort.SessionOptions:
    """The settings as options for onnxruntime's Python binding."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    if settings.parallel_execution:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    spinning = "1" if settings.allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    options.graph_optimization_level = _ORT_GRAPH_LEVELS[settings.optimization]
    if settings.optimized_model_path:
        options.optimized_model_filepath = settings.optimized_model_path
    return options


def binding_providers(config: mc.ModelConfig, where: Placement) -> list[Any]:
    """The provider list for onnxruntime's Python binding (one device for all instances)."""
    if where.accelerator == "cpu":
        return [CPU]
    devices = sorted(set(where.gpus))
    if len(devices) > 1:
        raise ModelLoadError(
            f"model '{config.name}': instance groups on several GPUs {devices} need the native "
            "engine, which cannot run this model (see the log); run one replica per GPU"
        )
    device = str(devices[0])
    providers: list[Any] = []
    if where.tensorrt is not None:
        trt_options: dict[str, str] = {"device_id": device}
        if where.tensorrt.fp16:
            trt_options["trt_fp16_enable"] = "True"
        if where.tensorrt.engine_cache_path:
            trt_options["trt_engine_cache_enable"] = "True"
            trt_options["trt_engine_cache_path"] = where.tensorrt.engine_cache_path
        if where.tensorrt.max_workspace_bytes is not None:
            trt_options["trt_max_workspace_size"] = str(where.tensorrt.max_workspace_bytes)
        providers.append((TENSORRT, trt_options))
    search = where.cudnn_conv_algo_search.upper()
    providers.append((CUDA, {"device_id": device, "cudnn_conv_algo_search": search}))
    providers.append(CPU)
    return providers


def create_session(
    config: mc.ModelConfig, model_file: Path, allow_native: bool = True
) -> LoadedSession:
    """Loads `model_file` onto the providers the config asks for, on the native engine where
    it can run the graph and `allow_native` holds. Raises ModelLoadError when the file is
    unusable or a requested GPU provider is not really in use."""
    if not model_file.is_file():
        raise ModelLoadError(f"model '{config.name}': {model_file} does not exist")
    where = placement(config, model_file)
    settings = session_settings(config)
    fallback_allowed = flag(config, "allow_cpu_fallback")
    if where.tensorrt is not None and where.tensorrt.engine_cache_path:
        Path(where.tensorrt.engine_cache_path).mkdir(parents=True, exist_ok=True)
    if allow_native and native_engine_allowed(config):
        native = load_native(config.name, model_file, settings, where, fallback_allowed)
        if native is not None:
            provider = native.providers[0]
            if provider != where.provider:
                log.warning(
                    "model '%s': %s unavailable, running on %s as allowed by config",
                    config.name,
                    where.provider,
                    provider,
                )
            return LoadedSession(
                session=None,
                native=native,
                provider=provider,
                inputs=[OnnxTensor(*tensor) for tensor in native.inputs],
                outputs=[OnnxTensor(*tensor) for tensor in native.outputs],
                instance_count=where.instance_count,
            )
    return _binding_session(config, model_file, settings, where, fallback_allowed)


def _binding_session(
    config: mc.ModelConfig,
    model_file: Path,
    settings: SessionSettings,
    where: Placement,
    fallback_allowed: bool,
) -> LoadedSession:
    """The version on onnxruntime's Python binding, checked to run where it was asked to."""
    providers = binding_providers(config, where)
    wanted = where.provider
    available = ort.get_available_providers()
    if wanted != CPU and wanted not in available and not fallback_allowed:
        raise ModelLoadError(
            f"model '{config.name}': instance_group asks for a GPU ({wanted}) but this "
            f"onnxruntime build offers only {available}. Install onnxruntime-gpu and the CUDA "
            "and cuDNN libraries it was built for, or set config parameter "
            'allow_cpu_fallback to "true" to run on CPU'
        )
    try:
        session = ort.InferenceSession(
            str(model_file), sess_options=session_options(settings), providers=providers
        )
    except Exception as error:  # onnxruntime raises several unrelated types for bad files
        raise ModelLoadError(
            f"model '{config.name}': onnxruntime cannot load {model_file}: {error}"
        ) from error
    active = session.get_providers()
    provider = active[0] if active else CPU
    if wanted not in (CPU, provider):
        if not fallback_allowed:
            raise ModelLoadError(
                f"model '{config.name}': asked for {wanted} but onnxruntime fell back to "
                f"{active} (CUDA or cuDNN libraries could not be loaded; see the onnxruntime "
                "log above). Set allow_cpu_fallback to accept CPU"
            )
        log.warning(
            "model '%s': %s unavailable, running on %s as allowed by config",
            config.name,
            wanted,
            provider,
        )
    return LoadedSession(
        session=session,
        native=None,
        provider=provider,
        inputs=[_describe(t) for t in session.get_inputs()],
        outputs=[_describe(t) for t in session.get_outputs()],
        instance_count=where.instance_count,
    )


def _describe(node: Any) -> OnnxTensor:
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return OnnxTensor(node.name, node.type, shape)
