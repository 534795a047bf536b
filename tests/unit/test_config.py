"""config.pbtxt handling in-process: Triton's documented configs parse unchanged, unsupported fields
are named in a warning, missing parts are completed from the ONNX graph, and mismatches raise
ConfigError naming the tensor."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import (
    DEFAULT_MAX_BATCH_SIZE,
    OnnxTensor,
    complete_config,
    read_config,
    unsupported_fields,
    warn_unsupported,
)
from ferroserve.config.ensemble import ensemble_graph
from ferroserve.errors import ConfigError
from ferroserve.registry.repository import select_versions
from ferroserve.runtime.settings import warn_retired_parameters
from google.protobuf import text_format

F32 = "tensor(float)"


def write_config(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.pbtxt").write_text(text, encoding="utf-8")
    return folder


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


# A config written the way Triton's model_configuration.md documents each feature.
DENSENET = """\
name: "densenet_onnx"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { latest: { num_versions: 2 } }
input [
  {
    name: "data_0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
  }
]
output [
  {
    name: "fc6_1"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    label_filename: "densenet_labels.txt"
  }
]
instance_group [
  {
    count: 2
    kind: KIND_CPU
  }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
}
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
optimization { graph: { level: 1 } }
"""

GPU = """\
name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [ { name: "input" data_type: TYPE_FP16 dims: [ 3, -1, -1 ] } ]
output [ { name: "logits" data_type: TYPE_FP16 dims: [ -1 ] } ]
instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]
dynamic_batching { }
"""

DENSENET_GRAPH_IN = [OnnxTensor("data_0", F32, (None, 3, 224, 224))]
DENSENET_GRAPH_OUT = [OnnxTensor("fc6_1", F32, (None, 1000))]


# -- reading Triton's configs --------------------------------------------------------------------


def test_documented_config_parses_unchanged(tmp_path: Path) -> None:
    config = read_config(write_config(tmp_path, "densenet_onnx", DENSENET))
    assert config.name == "densenet_onnx"
    assert config.max_batch_size == 8
    assert config.version_policy.latest.num_versions == 2
    assert config.input[0].format == mc.ModelInput.FORMAT_NCHW
    assert list(config.input[0].dims) == [3, 224, 224]
    assert config.output[0].label_filename == "densenet_labels.txt"
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert config.instance_group[0].count == 2
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.parameters["intra_op_thread_count"].string_value == "2"
    assert config.optimization.graph.level == 1
    assert unsupported_fields(config) == []


def test_documented_config_completes_against_its_graph(tmp_path: Path) -> None:
    config = read_config(write_config(tmp_path, "densenet_onnx", DENSENET))
    signature = complete_config(config, DENSENET_GRAPH_IN, DENSENET_GRAPH_OUT)
    assert signature.max_batch_size == 8
    assert signature.batches
    (data,) = signature.inputs
    assert (data.name, data.datatype.name, data.dims) == ("data_0", "FP32", (3, 224, 224))
    assert signature.client_shape(data) == [-1, 3, 224, 224]
    assert signature.outputs[0].dims == (1000,)


def test_gpu_instance_group_and_dynamic_dims(tmp_path: Path) -> None:
    config = read_config(write_config(tmp_path, "resnet", GPU))
    group = config.instance_group[0]
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU
    assert list(group.gpus) == [0]
    assert config.HasField("dynamic_batching")
    graph_in = [OnnxTensor("input", "tensor(float16)", (None, 3, None, None))]
    graph_out = [OnnxTensor("logits", "tensor(float16)", (None, 1000))]
    signature = complete_config(config, graph_in, graph_out)
    assert signature.inputs[0].dims == (3, -1, -1)
    assert signature.client_shape(signature.outputs[0]) == [-1, -1]
    assert unsupported_fields(config) == []


def test_config_without_name_takes_the_folder_name(tmp_path: Path) -> None:
    config = read_config(write_config(tmp_path, "my_model", "max_batch_size: 4\n"))
    assert config.name == "my_model"


def test_missing_config_file_is_an_empty_config(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    config = read_config(folder)
    assert config.name == "bare"
    assert not config.input


def test_name_must_match_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'other'.*'folder'"):
        read_config(write_config(tmp_path, "folder", 'name: "other"\n'))


def test_other_platform_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tensorrt_plan"):
        read_config(write_config(tmp_path, "m", 'platform: "tensorrt_plan"\n'))


def test_parse_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.pbtxt"):
        read_config(write_config(tmp_path, "m", "max_batch_size: eight\n"))


# -- unsupported fields --------------------------------------------------------------------------


UNSUPPORTED = """\
name: "seq"
max_batch_size: 4
sequence_batching {
  max_sequence_idle_microseconds: 5000000
  iterative_sequence: true
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] }
  ]
}
response_cache { enable: true }
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] allow_ragged_batch: true } ]
optimization { cuda { graphs: true } }
"""


def test_unsupported_fields_are_listed() -> None:
    assert unsupported_fields(parse(UNSUPPORTED)) == [
        "input.allow_ragged_batch",
        "optimization.cuda",
        "response_cache",
        "sequence_batching.iterative_sequence",
    ]


def test_unsupported_fields_are_warned_by_name(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        fields = warn_unsupported(parse(UNSUPPORTED))
    assert "sequence_batching.iterative_sequence" in fields
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for field in (
        "sequence_batching.iterative_sequence",
        "response_cache",
        "input.allow_ragged_batch",
    ):
        assert any(f"'{field}'" in msg and "'seq'" in msg for msg in messages), messages
    assert len(messages) == len(fields)


def test_supported_config_warns_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        assert warn_unsupported(parse(DENSENET)) == []
    assert not caplog.records


def test_retired_inline_execution_is_accepted_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`inline_execution` (removed: every request is queued) still loads, never silently."""
    config = parse(
        'name: "m" parameters { key: "inline_execution" value { string_value: "true" } }'
    )
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        assert warn_retired_parameters(config) == ["inline_execution"]
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "model 'm'" in message and "'inline_execution' no longer has an effect" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        assert warn_retired_parameters(parse(DENSENET)) == []
    assert not caplog.records


# -- completion from the ONNX graph --------------------------------------------------------------


def test_config_without_inputs_is_completed_with_batching() -> None:
    config = parse('name: "mlp"')
    graph_in = [OnnxTensor("input", F32, (None, 64))]
    graph_out = [OnnxTensor("output", F32, (None, 10))]
    signature = complete_config(config, graph_in, graph_out)
    assert config.max_batch_size == DEFAULT_MAX_BATCH_SIZE == 64
    assert [(i.name, mc.DataType.Name(i.data_type), list(i.dims)) for i in config.input] == [
        ("input", "TYPE_FP32", [64])
    ]
    assert [(o.name, list(o.dims)) for o in config.output] == [("output", [10])]
    assert config.platform == "onnxruntime_onnx"
    assert config.default_model_filename == "model.onnx"
    assert signature.client_shape(signature.inputs[0]) == [-1, 64]


def test_completion_with_fixed_first_dim_does_not_batch() -> None:
    config = parse('name: "fixed"')
    signature = complete_config(
        config, [OnnxTensor("x", "tensor(string)", (2, 3))], [OnnxTensor("y", F32, (2, None))]
    )
    assert config.max_batch_size == 0
    assert mc.DataType.Name(config.input[0].data_type) == "TYPE_STRING"
    assert signature.inputs[0].datatype.name == "BYTES"
    assert signature.outputs[0].dims == (2, -1)


def test_completion_with_given_max_batch_size_keeps_it() -> None:
    config = parse('name: "m" max_batch_size: 4')
    complete_config(config, [OnnxTensor("x", F32, (None, 8))], [OnnxTensor("y", F32, (None, 2))])
    assert config.max_batch_size == 4
    assert list(config.input[0].dims) == [8]


def test_outputs_only_completed_when_missing() -> None:
    config = parse(
        'name: "m" max_batch_size: 4 input [ { name: "x" data_type: TYPE_FP32 dims: [ -1 ] } ]'
    )
    signature = complete_config(
        config, [OnnxTensor("x", F32, (None, None))], [OnnxTensor("y", F32, (None, 3))]
    )
    assert signature.inputs[0].dims == (-1,)
    assert [o.name for o in signature.outputs] == ["y"]


def test_reshape_as_documented() -> None:
    # Triton: "dims: [ 1 ] reshape: { shape: [ ] }" feeds a graph input with no dims after batch.
    config = parse(
        'name: "m" max_batch_size: 8 input [ { name: "x" data_type: TYPE_INT32 '
        "dims: [ 1 ] reshape: { shape: [ ] } } ]"
    )
    signature = complete_config(
        config,
        [OnnxTensor("x", "tensor(int32)", (None,))],
        [OnnxTensor("y", "tensor(int32)", (None,))],
    )
    (x,) = signature.inputs
    assert x.dims == (1,)
    assert x.model_dims == ()
    assert signature.client_shape(x) == [-1, 1]


def test_reshape_must_keep_the_element_count() -> None:
    config = parse(
        'name: "m" max_batch_size: 8 input [ { name: "x" data_type: TYPE_FP32 '
        "dims: [ 5 ] reshape: { shape: [ 2, 3 ] } } ]"
    )
    with pytest.raises(ConfigError, match=r"'x'.*reshape"):
        complete_config(config, [OnnxTensor("x", F32, (None, 2, 3))], [])


# -- mismatches ----------------------------------------------------------------------------------


def _check_error(config_text: str, graph_in: list[OnnxTensor], *fragments: str) -> str:
    with pytest.raises(ConfigError) as caught:
        complete_config(parse(config_text), graph_in, [OnnxTensor("y", F32, (None, 4))])
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_wrong_datatype() -> None:
    _check_error(
        'name: "m" max_batch_size: 4 input [ { name: "x" data_type: TYPE_INT32 dims: [ 4 ] } ]',
        [OnnxTensor("x", F32, (None, 4))],
        "'x'",
        "TYPE_INT32",
        "tensor(float)",
    )


def test_wrong_rank() -> None:
    _check_error(
        'name: "m" max_batch_size: 4 input [ { name: "x" data_type: TYPE_FP32 dims: [ 4, 1 ] } ]',
        [OnnxTensor("x", F32, (None, 4))],
        "'x'",
        "rank 2",
        "rank 1",
    )


def test_wrong_dim() -> None:
    _check_error(
        'name: "m" max_batch_size: 4 input [ { name: "x" data_type: TYPE_FP32 dims: [ 5 ] } ]',
        [OnnxTensor("x", F32, (None, 4))],
        "'x'",
        "5",
        "4",
    )


def test_fixed_first_dim_with_batching() -> None:
    _check_error(
        'name: "m" max_batch_size: 8 input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]',
        [OnnxTensor("x", F32, (1, 4))],
        "'x'",
        "max_batch_size",
        "8",
        "1",
    )


def test_unknown_input_name() -> None:
    _check_error(
        'name: "m" max_batch_size: 4 input [ { name: "nope" data_type: TYPE_FP32 dims: [ 4 ] } ]',
        [OnnxTensor("x", F32, (None, 4))],
        "'nope'",
        "'x'",
    )


def test_unknown_output_name() -> None:
    config = parse(
        'name: "m" max_batch_size: 4 output [ { name: "nope" data_type: TYPE_FP32 dims: [ 4 ] } ]'
    )
    with pytest.raises(ConfigError, match=r"output 'nope'.*'y'"):
        complete_config(
            config, [OnnxTensor("x", F32, (None, 4))], [OnnxTensor("y", F32, (None, 4))]
        )


def test_graph_input_missing_from_config() -> None:
    config = parse(
        'name: "m" max_batch_size: 4 input [ { name: "a" data_type: TYPE_FP32 dims: [ 4 ] } ]'
    )
    with pytest.raises(ConfigError, match="'b'"):
        complete_config(
            config,
            [OnnxTensor("a", F32, (None, 4)), OnnxTensor("b", F32, (None, 4))],
            [OnnxTensor("y", F32, (None, 4))],
        )


def test_graph_type_the_protocol_cannot_carry() -> None:
    with pytest.raises(ConfigError, match=r"'x'.*tensor\(complex64\)"):
        complete_config(
            parse('name: "m"'),
            [OnnxTensor("x", "tensor(complex64)", (2,))],
            [OnnxTensor("y", F32, (2,))],
        )


def test_negative_max_batch_size() -> None:
    with pytest.raises(ConfigError, match="max_batch_size"):
        complete_config(parse('name: "m" max_batch_size: -1'), [], [])


# -- version policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", [3]),  # Triton's default: latest 1
        ("version_policy: { latest: { num_versions: 2 } }", [2, 3]),
        ("version_policy: { latest: { num_versions: 9 } }", [1, 2, 3]),
        ("version_policy: { all: { } }", [1, 2, 3]),
        ("version_policy: { specific: { versions: [ 1, 3 ] } }", [1, 3]),
    ],
)
def test_version_policy(policy: str, expected: list[int]) -> None:
    assert select_versions(parse(f'name: "m" {policy}'), [1, 2, 3]) == expected


def test_specific_version_without_folder() -> None:
    config = parse('name: "m" version_policy: { specific: { versions: [ 4 ] } }')
    with pytest.raises(ConfigError, match=r"\[4\]"):
        select_versions(config, [1, 2, 3])


def test_latest_zero_versions() -> None:
    with pytest.raises(ConfigError, match="num_versions"):
        select_versions(parse('name: "m" version_policy: { latest: { num_versions: 0 } }'), [1])


# -- fields the proto does not know ---------------------------------------------------------------


def test_unknown_fields_are_skipped_and_named_with_their_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        "max_batch_size: 4\n"
        "instance_group [ { kind: KIND_CPU future_knob: { depth: 2 } count: 3 } ]\n"
        "typo_field: 7\n"
        'parameters { key: "k" value { string_value: "v" flavour: "x" } }\n'
    )
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        config = read_config(write_config(tmp_path, "m", text))
    assert config.max_batch_size == 4
    assert config.instance_group[0].count == 3  # parsing went on after the unknown field
    assert config.parameters["k"].string_value == "v"
    messages = [r.getMessage() for r in caplog.records]
    for path, line in (
        ("instance_group.future_knob", 2),
        ("typo_field", 3),
        ("parameters.value.flavour", 4),
    ):
        assert any(f":{line}: field '{path}'" in m for m in messages), messages


def test_an_ensemble_needs_its_steps(tmp_path: Path) -> None:
    config = read_config(write_config(tmp_path, "e", 'platform: "ensemble"\n'))
    with pytest.raises(ConfigError, match=r"needs ensemble_scheduling"):
        ensemble_graph(config)
    with pytest.raises(ConfigError, match=r"add platform: \"ensemble\""):
        read_config(write_config(tmp_path, "f", "ensemble_scheduling { step [ { } ] }\n"))


def test_ensemble_steps_are_put_in_dependency_order(tmp_path: Path) -> None:
    text = """platform: "ensemble"
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling { step [
  { model_name: "last" model_version: -1 input_map { key: "a" value: "mid" }
    input_map { key: "b" value: "IN" } output_map { key: "y" value: "OUT" } },
  { model_name: "first" model_version: 2 input_map { key: "x" value: "IN" }
    output_map { key: "y" value: "mid" } }
] }
"""
    graph = ensemble_graph(read_config(write_config(tmp_path, "e", text)))
    assert [(s.model, s.number, s.version) for s in graph.steps] == [
        ("first", 2, 2),
        ("last", 1, -1),
    ]
    assert graph.tensors == ("IN", "mid", "OUT")
    assert graph.steps[1].inputs == (("a", "mid"), ("b", "IN"))
