"""ferroserve's protocol buffers vs. Triton's (as shipped in tritonclient).

Our ``protos/*.proto`` are written from the public KServe v2 / Triton protocol and
must stay wire compatible with Triton: same messages, enums, field numbers, types,
labels and service methods. They are loaded into a private descriptor pool so
they coexist with tritonclient's modules (default pool) in one process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve._proto import POOL
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve._proto import model_config_pb2 as mc
from ferroserve._proto.service import (
    SERVICE_NAME,
    add_inference_service,
    file_descriptors,
    method_names,
)
from google.protobuf import descriptor_pb2, text_format
from google.protobuf.descriptor import FileDescriptor
from tritonclient.grpc import model_config_pb2 as triton_mc
from tritonclient.grpc import service_pb2 as triton_pb
from tritonclient.utils import InferenceServerException

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------
# (a), (b): schema identity with tritonclient's descriptors
# --------------------------------------------------------------------------------------


def _file_proto(fd: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(proto)
    return proto


def _enum_shape(enum: descriptor_pb2.EnumDescriptorProto) -> dict[str, int]:
    return {v.name: v.number for v in enum.value}


def _message_shape(msg: descriptor_pb2.DescriptorProto) -> dict[str, Any]:
    """Everything about a message that matters on the wire and to generated code."""
    oneofs = [o.name for o in msg.oneof_decl]
    fields = {
        f.number: {
            "name": f.name,
            "type": descriptor_pb2.FieldDescriptorProto.Type.Name(f.type),
            "label": descriptor_pb2.FieldDescriptorProto.Label.Name(f.label),
            "type_name": f.type_name,
            "oneof": oneofs[f.oneof_index] if f.HasField("oneof_index") else None,
            "proto3_optional": f.proto3_optional,
        }
        for f in msg.field
    }
    return {
        "map_entry": msg.options.map_entry,
        "fields": fields,
        "oneofs": sorted(oneofs),
        "nested": {n.name: _message_shape(n) for n in msg.nested_type},
        "enums": {e.name: _enum_shape(e) for e in msg.enum_type},
    }


FILE_PAIRS = [
    pytest.param(mc.DESCRIPTOR, triton_mc.DESCRIPTOR, id="model_config.proto"),
    pytest.param(pb.DESCRIPTOR, triton_pb.DESCRIPTOR, id="grpc_service.proto"),
]


@pytest.mark.parametrize(("ours_fd", "theirs_fd"), FILE_PAIRS)
def test_file_header_matches(ours_fd: FileDescriptor, theirs_fd: FileDescriptor) -> None:
    ours, theirs = _file_proto(ours_fd), _file_proto(theirs_fd)
    assert (ours.name, ours.package, ours.syntax) == (theirs.name, theirs.package, theirs.syntax)
    assert list(ours.dependency) == list(theirs.dependency)


@pytest.mark.parametrize(("ours_fd", "theirs_fd"), FILE_PAIRS)
def test_every_triton_message_matches(ours_fd: FileDescriptor, theirs_fd: FileDescriptor) -> None:
    ours = {m.name: _message_shape(m) for m in _file_proto(ours_fd).message_type}
    theirs = {m.name: _message_shape(m) for m in _file_proto(theirs_fd).message_type}
    missing = sorted(set(theirs) - set(ours))
    assert not missing, f"messages missing from ferroserve's protos: {missing}"
    for name, shape in theirs.items():
        assert ours[name] == shape, f"message {name} differs from Triton's"
    assert set(ours) == set(theirs), "ferroserve declares messages Triton does not"


@pytest.mark.parametrize(("ours_fd", "theirs_fd"), FILE_PAIRS)
def test_every_triton_enum_matches(ours_fd: FileDescriptor, theirs_fd: FileDescriptor) -> None:
    ours = {e.name: _enum_shape(e) for e in _file_proto(ours_fd).enum_type}
    theirs = {e.name: _enum_shape(e) for e in _file_proto(theirs_fd).enum_type}
    assert ours == theirs


def test_service_methods_match() -> None:
    def methods(fd: FileDescriptor) -> dict[str, tuple[str, str, bool, bool]]:
        (service,) = _file_proto(fd).service
        assert service.name == "GRPCInferenceService"
        return {
            m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
            for m in service.method
        }

    assert methods(pb.DESCRIPTOR) == methods(triton_pb.DESCRIPTOR)
    assert method_names() == [
        m.name for m in triton_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
    ]


def test_module_names_follow_generated_code() -> None:
    # Same top-level names as tritonclient's generated modules.
    for ours, theirs in ((pb, triton_pb), (mc, triton_mc)):
        for name in theirs.DESCRIPTOR.message_types_by_name:
            assert getattr(ours, name).DESCRIPTOR.full_name == f"inference.{name}"
        for name, enum in theirs.DESCRIPTOR.enum_types_by_name.items():
            assert getattr(ours, name).items() == getattr(theirs, name).items()
            for value in enum.values:
                assert getattr(ours, value.name) == value.number
    assert mc.TYPE_FP32 == 11
    assert mc.DataType.Name(mc.TYPE_BF16) == "TYPE_BF16"
    assert mc.ModelInstanceGroup.KIND_GPU == 1
    assert mc.ModelInstanceGroup.Kind.Value("KIND_CPU") == 2
    tensor_cls = pb.ModelInferRequest.InferInputTensor
    assert tensor_cls.__qualname__ == "ModelInferRequest.InferInputTensor"
    assert tensor_cls.__module__ == pb.__name__
    request = pb.ModelInferRequest(inputs=[tensor_cls(name="x")])
    assert type(request.inputs[0]) is tensor_cls


def test_private_pool_only() -> None:
    # Our descriptors live in POOL, not in the default pool that tritonclient uses.
    assert pb.DESCRIPTOR.pool is POOL
    assert mc.DESCRIPTOR.pool is POOL
    assert triton_pb.DESCRIPTOR.pool is not POOL
    assert pb.ModelInferRequest is not triton_pb.ModelInferRequest
    assert [fd.name for fd in file_descriptors()] == ["model_config.proto", "grpc_service.proto"]


def test_no_generated_code_pins_the_protobuf_runtime() -> None:
    # Generated *_pb2 modules check the protobuf runtime against the protoc that made them
    # (grpcio-health-checking 1.85 refuses protobuf 6, which tritonclient needs); ferroserve
    # builds its classes from descriptors, so it must not import any such package.
    # (grpcio itself imports the bare top-level packages if present; their generated modules
    # live below them.)
    code = (
        "import sys, ferroserve.server.app, ferroserve.cli; "
        "print(sorted(m for m in sys.modules if '.' in m and m.split('.')[0] in "
        "('grpc_health', 'grpc_reflection', 'grpc_tools', 'tritonclient')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------
# (c): wire round trips between ferroserve's and tritonclient's classes
# --------------------------------------------------------------------------------------


def _infer_request(module: Any) -> Any:
    request = module.ModelInferRequest(model_name="resnet", model_version="2", id="req-7")
    request.parameters["sequence_id"].uint64_param = 42
    request.parameters["priority"].int64_param = -1
    request.parameters["flag"].bool_param = True
    request.parameters["scale"].double_param = 0.5
    request.parameters["note"].string_param = "hello"
    tensor = request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 3])
    tensor.parameters["shared_memory_region"].string_param = "r0"
    request.inputs.add(name="INPUT1", datatype="BYTES", shape=[2])
    tensor = request.inputs.add(name="INPUT2", datatype="INT32", shape=[2])
    tensor.contents.int_contents.extend([-5, 7])
    request.outputs.add(name="OUTPUT0").parameters["classification"].int64_param = 3
    request.raw_input_contents.append(np.arange(3, dtype=np.float32).tobytes())
    request.raw_input_contents.append(b"\x02\x00\x00\x00hi\x03\x00\x00\x00abc")
    return request


def _model_config(module: Any) -> Any:
    config = module.ModelConfig(name="resnet", backend="onnxruntime", max_batch_size=8)
    config.input.add(name="INPUT0", data_type=module.TYPE_FP32, dims=[-1, 3, 224, 224])
    config.output.add(name="OUTPUT0", data_type=module.TYPE_FP32, dims=[1000])
    config.dynamic_batching.preferred_batch_size.extend([4, 8])
    config.dynamic_batching.max_queue_delay_microseconds = 100
    config.dynamic_batching.priority_queue_policy[1].max_queue_size = 16
    group = config.instance_group.add(count=2, kind=module.ModelInstanceGroup.KIND_GPU)
    group.gpus.extend([0, 1])
    config.version_policy.latest.num_versions = 2
    config.parameters["threads"].string_value = "4"
    return config


@pytest.mark.parametrize("make", [_infer_request, _model_config])
def test_messages_cross_parse(make: Any) -> None:
    ours, theirs = (
        make(pb if make is _infer_request else mc),
        make(triton_pb if make is _infer_request else triton_mc),
    )
    ours_bytes = ours.SerializeToString(deterministic=True)
    theirs_bytes = theirs.SerializeToString(deterministic=True)
    assert ours_bytes == theirs_bytes

    parsed_by_triton = type(theirs).FromString(ours_bytes)
    assert parsed_by_triton == theirs
    parsed_by_us = type(ours).FromString(theirs_bytes)
    assert parsed_by_us == ours
    assert text_format.MessageToString(parsed_by_us) == text_format.MessageToString(theirs)
    assert parsed_by_us.SerializeToString(deterministic=True) == theirs_bytes


def test_model_config_response_cross_parse() -> None:
    response = pb.ModelConfigResponse(config=_model_config(mc))
    parsed = triton_pb.ModelConfigResponse.FromString(response.SerializeToString())
    assert parsed.config.WhichOneof("scheduling_choice") == "dynamic_batching"
    assert list(parsed.config.instance_group[0].gpus) == [0, 1]
    assert parsed.config.instance_group[0].kind == triton_mc.ModelInstanceGroup.KIND_GPU


# --------------------------------------------------------------------------------------
# (d): generated files are fresh
# --------------------------------------------------------------------------------------


def test_generated_files_are_fresh() -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpc_tools (grpcio-tools) is not installed; cannot regenerate protos")
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------
# (e): a Triton-style config.pbtxt parses into our ModelConfig
# --------------------------------------------------------------------------------------

CONFIG_PBTXT = """
name: "resnet50"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy { latest { num_versions: 2 } }
input [
  {
    name: "input"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ -1, 3, 224, 224 ]
    reshape { shape: [ 3, 224, 224 ] }
  }
]
output [
  {
    name: "probs"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    label_filename: "labels.txt"
  }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  priority_levels: 2
  default_priority_level: 1
  priority_queue_policy {
    key: 1
    value { timeout_action: DELAY default_timeout_microseconds: 5000 max_queue_size: 64 }
  }
}
instance_group [
  {
    count: 1
    kind: KIND_GPU
    gpus: [ 0 ]
  }
]
optimization { execution_accelerators {
  gpu_execution_accelerator : [ {
    name : "tensorrt"
    parameters { key: "precision_mode" value: "FP16" }
  } ]
} }
parameters { key: "intra_op_thread_count" value: { string_value: "4" } }
"""


def test_config_pbtxt_parses() -> None:
    config = text_format.Parse(CONFIG_PBTXT, mc.ModelConfig())
    assert config.name == "resnet50"
    assert config.max_batch_size == 8
    assert config.version_policy.WhichOneof("policy_choice") == "latest"
    assert config.version_policy.latest.num_versions == 2
    (tensor,) = config.input
    assert tensor.data_type == mc.TYPE_FP32
    assert tensor.format == mc.ModelInput.FORMAT_NCHW
    assert list(tensor.dims) == [-1, 3, 224, 224]
    assert list(tensor.reshape.shape) == [3, 224, 224]
    assert config.output[0].label_filename == "labels.txt"
    assert config.WhichOneof("scheduling_choice") == "dynamic_batching"
    batching = config.dynamic_batching
    assert list(batching.preferred_batch_size) == [4, 8]
    assert batching.max_queue_delay_microseconds == 100
    assert batching.priority_levels == 2
    assert batching.default_priority_level == 1
    policy = batching.priority_queue_policy[1]
    assert policy.timeout_action == mc.ModelQueuePolicy.DELAY
    assert policy.default_timeout_microseconds == 5000
    assert policy.max_queue_size == 64
    (group,) = config.instance_group
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU
    assert list(group.gpus) == [0]
    (accel,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.name == "tensorrt"
    assert dict(accel.parameters) == {"precision_mode": "FP16"}
    assert config.parameters["intra_op_thread_count"].string_value == "4"

    # Triton's own class reads the same text identically.
    theirs = text_format.Parse(CONFIG_PBTXT, triton_mc.ModelConfig())
    assert theirs.SerializeToString(deterministic=True) == config.SerializeToString(
        deterministic=True
    )


# --------------------------------------------------------------------------------------
# Service registration, exercised with the unmodified tritonclient
# --------------------------------------------------------------------------------------


class _EchoServicer:
    """Implements ServerLive and ModelInfer (echoing inputs as outputs) only."""

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerLiveResponse:
        assert isinstance(request, pb.ServerLiveRequest)
        return pb.ServerLiveResponse(live=True)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse:
        assert isinstance(request, pb.ModelInferRequest)
        response = pb.ModelInferResponse(
            model_name=request.model_name, model_version=request.model_version, id=request.id
        )
        for key, value in request.parameters.items():
            response.parameters[key].CopyFrom(value)
        for tensor in request.inputs:
            response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        response.raw_output_contents.extend(request.raw_input_contents)
        return response


def _triton_client_session(port: int) -> None:
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        assert client.is_server_live()

        data = np.arange(6, dtype=np.float32).reshape(2, 3)
        text = np.array([b"ab", b"", b"xyz\x00"], dtype=np.object_)
        inputs = [
            triton_grpc.InferInput("INPUT0", [2, 3], "FP32"),
            triton_grpc.InferInput("INPUT1", [3], "BYTES"),
        ]
        inputs[0].set_data_from_numpy(data)
        inputs[1].set_data_from_numpy(text)
        result = client.infer(
            "echo", inputs, model_version="1", request_id="r1", parameters={"p": 3, "q": "s"}
        )
        np.testing.assert_array_equal(result.as_numpy("INPUT0"), data)
        np.testing.assert_array_equal(result.as_numpy("INPUT1"), text)
        response = result.get_response()
        assert (response.model_name, response.model_version, response.id) == ("echo", "1", "r1")
        assert response.parameters["p"].int64_param == 3
        assert response.parameters["q"].string_param == "s"

        with pytest.raises(InferenceServerException, match="not supported by ferroserve"):
            client.is_server_ready()
    finally:
        client.close()


def test_aio_server_with_tritonclient() -> None:
    async def main() -> None:
        server = grpc.aio.server()
        add_inference_service(server, _EchoServicer())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            await asyncio.to_thread(_triton_client_session, port)
            # Streaming RPC the servicer lacks: UNIMPLEMENTED with our message.
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.stream_stream(
                    f"/{SERVICE_NAME}/ModelStreamInfer",
                    request_serializer=pb.ModelInferRequest.SerializeToString,
                    response_deserializer=pb.ModelStreamInferResponse.FromString,
                )(iter([pb.ModelInferRequest(model_name="echo")]))
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async for _ in call:
                        pass
                assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
                assert info.value.details() == "ModelStreamInfer is not supported by ferroserve"
        finally:
            await server.stop(None)

    asyncio.run(main())


def test_sync_server_unimplemented() -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    add_inference_service(server, object())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            live = channel.unary_unary(
                f"/{SERVICE_NAME}/ServerLive",
                request_serializer=triton_pb.ServerLiveRequest.SerializeToString,
                response_deserializer=triton_pb.ServerLiveResponse.FromString,
            )
            with pytest.raises(grpc.RpcError) as info:
                live(triton_pb.ServerLiveRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "ServerLive is not supported by ferroserve" in str(info.value)
    finally:
        server.stop(None)
