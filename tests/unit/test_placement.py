"""instance_group -> placement (Triton's semantics: `count` instances on each listed GPU, every
visible GPU when none is listed) and TensorRT's settings, with a clear error for what cannot be
served."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ModelLoadError
from ferroserve.runtime import placement as placement_module
from ferroserve.runtime.placement import Placement, default_engine_cache, placement
from ferroserve.runtime.session import binding_providers
from google.protobuf import text_format

MODEL_FILE = Path("/models/m/3/model.onnx")


def where(text: str) -> Placement:
    return placement(text_format.Parse(f'name: "m" {text}', mc.ModelConfig()), MODEL_FILE)


def test_cpu_groups_add_up() -> None:
    assert where("") == Placement("cpu", 1, ())
    got = where("instance_group [ { count: 2 kind: KIND_CPU }, { count: 3 kind: KIND_CPU } ]")
    assert got == Placement("cpu", 5, ())
    assert got.provider == "CPUExecutionProvider"


def test_count_instances_on_each_listed_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    got = where("instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] } ]")
    assert got.accelerator == "cuda"
    assert got.provider == "CUDAExecutionProvider"
    assert got.gpus == (0, 0, 1, 1)
    assert got.instance_count == 4


def test_gpu_group_without_gpus_uses_every_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    assert where("instance_group [ { kind: KIND_GPU } ]").gpus == (0, 1, 2)


def test_mixed_cpu_and_gpu_groups_are_refused() -> None:
    with pytest.raises(ModelLoadError, match="mixing GPU and CPU instance groups"):
        where("instance_group [ { kind: KIND_GPU gpus: [0] }, { kind: KIND_CPU } ]")


TRT = """instance_group [ {{ kind: KIND_GPU gpus: [ 0 ] }} ]
optimization {{ execution_accelerators {{ gpu_execution_accelerator: [
  {{ name: "tensorrt" {parameters} }} ] }} }}"""


def test_tensorrt_settings_and_default_engine_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FERROSERVE_CACHE_DIR", str(tmp_path))
    got = where(
        TRT.format(
            parameters='parameters { key: "precision_mode" value: "FP16" } '
            'parameters { key: "max_workspace_size_bytes" value: "1073741824" }'
        )
    )
    assert got.accelerator == "tensorrt"
    assert got.provider == "TensorrtExecutionProvider"
    assert got.tensorrt is not None
    assert got.tensorrt.fp16
    assert got.tensorrt.max_workspace_bytes == 1 << 30
    # Engines are kept per model version outside the (maybe read-only) repository.
    assert got.tensorrt.engine_cache_path == str(tmp_path / "tensorrt" / "m" / "3")


def test_tensorrt_cache_can_be_moved_or_turned_off() -> None:
    moved = where(TRT.format(parameters='parameters { key: "trt_engine_cache_path" value: "/c" }'))
    assert moved.tensorrt is not None and moved.tensorrt.engine_cache_path == "/c"
    off = where(
        TRT.format(parameters='parameters { key: "trt_engine_cache_enable" value: "false" }')
    )
    assert off.tensorrt is not None and off.tensorrt.engine_cache_path is None


def test_default_engine_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERROSERVE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert default_engine_cache("m", MODEL_FILE) == Path("/xdg/ferroserve/tensorrt/m/3")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            'parameters { key: "precision_mode" value: "INT4" }',
            "precision_mode must be FP16 or FP32",
        ),
        ('parameters { key: "max_workspace_size_bytes" value: "lots" }', "must be an integer"),
        ('parameters { key: "trt_engine_cache_enable" value: "maybe" }', "true or false"),
        ('parameters { key: "trt_int8_enable" value: "1" }', "trt_int8_enable"),
    ],
)
def test_bad_tensorrt_parameters_say_what_to_fix(parameters: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        where(TRT.format(parameters=parameters))


def test_accelerators_other_than_tensorrt_are_refused() -> None:
    text = """instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]
    optimization { execution_accelerators {
      gpu_execution_accelerator: [ { name: "openvino" } ]
    } }"""
    with pytest.raises(ModelLoadError, match="'openvino' is not supported"):
        where(text)


GPU = "instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]"


@pytest.mark.parametrize(
    ("value", "search"),
    [("0", "exhaustive"), ("1", "heuristic"), ("2", "default"), ("HEURISTIC", "heuristic")],
)
def test_cudnn_conv_algo_search_takes_tritons_numbers_and_names(value: str, search: str) -> None:
    parameter = (
        f'parameters {{ key: "cudnn_conv_algo_search" value {{ string_value: "{value}" }} }}'
    )
    assert where(f"{GPU} {parameter}").cudnn_conv_algo_search == search
    assert where(GPU).cudnn_conv_algo_search == "exhaustive"


def test_a_bad_cudnn_conv_algo_search_says_what_to_use() -> None:
    parameter = 'parameters { key: "cudnn_conv_algo_search" value { string_value: "fast" } }'
    with pytest.raises(ModelLoadError, match=r"0 \(EXHAUSTIVE\), 1 \(HEURISTIC\) or 2"):
        where(f"{GPU} {parameter}")


def test_the_python_binding_gets_the_same_cuda_options() -> None:
    parameter = 'parameters { key: "cudnn_conv_algo_search" value { string_value: "1" } }'
    config = text_format.Parse(f'name: "m" {GPU} {parameter}', mc.ModelConfig())
    providers = binding_providers(config, placement(config, MODEL_FILE))
    assert providers[0] == (
        "CUDAExecutionProvider",
        {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"},
    )


def test_gpu_ids_the_machine_lacks_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """core ValidateInstanceGroup: a config error, not a provider failure a fallback could hide."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # one GPU, shown to CUDA as id 0
    text = "instance_group [ { kind: KIND_GPU gpus: [ 0, 2 ] } ]"
    with pytest.raises(ModelLoadError, match=r"GPU id\(s\) \[2\].*CUDA devices are \[0\]"):
        where(text)
    # Where the GPUs cannot be counted (no driver), the provider says what is missing.
    monkeypatch.setattr(placement_module, "detected_gpus", lambda: None)
    assert where(text).gpus == (0, 2)


def test_gpu_accelerators_on_a_cpu_model_are_named(caplog: pytest.LogCaptureFixture) -> None:
    accelerators = """optimization { execution_accelerators { gpu_execution_accelerator: [
      { name: "tensorrt" }, { name: "cuda" } ] } }"""
    for groups in ("", "instance_group [ { kind: KIND_CPU } ]"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ferroserve"):
            assert where(groups + accelerators).accelerator == "cpu"
        messages = [r.getMessage() for r in caplog.records]
        for name in ("tensorrt", "cuda"):
            assert any(f"'{name}' has no effect: the model runs on CPU" in m for m in messages)


def test_parameters_triton_accepts_but_ferroserve_does_not_apply_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = """instance_group [ { kind: KIND_GPU gpus: [ 0 ] } ]
    optimization { execution_accelerators { gpu_execution_accelerator: [
      { name: "tensorrt"
        parameters { key: "trt_max_partition_iterations" value: "10" }
        parameters { key: "precision_mode" value: "INT8" } },
      { name: "cuda" parameters { key: "arena_extend_strategy" value: "1" } } ] } }"""
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        got = where(text)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert got.tensorrt is not None and not got.tensorrt.fp16
    for name in (
        "tensorrt parameter 'trt_max_partition_iterations'",
        "precision_mode INT8",
        "cuda accelerator parameter 'arena_extend_strategy'",
    ):
        assert name in messages, messages


def test_cpu_accelerators_as_triton_knows_them(caplog: pytest.LogCaptureFixture) -> None:
    openvino = (
        'optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "%s" } ] } }'
    )
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        assert where(openvino % "openvino").accelerator == "cpu"
    assert any("'openvino'" in r.getMessage() for r in caplog.records)
    with pytest.raises(ModelLoadError, match="cpu_execution_accelerator 'dnnl'"):
        where(openvino % "dnnl")
