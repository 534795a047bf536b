"""Liveness vs readiness: ServerReady and grpc.health.v1 say SERVING only when every model selected
for loading is ready; a corrupt model fails alone; an empty repository needs --allow-empty.
Also gRPC server reflection (v1alpha through grpcio-reflection's client, v1 by hand), both
served by ferroserve's own implementations through the native front end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve._proto import health_pb2, reflection_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from support import models as m
from support.repository import add_model
from support.rpc import assert_triton_error, infer_input, raw_stub
from support.server import EXPLICIT, ServerProcess
from tritonclient.grpc import service_pb2

SERVICE = "inference.GRPCInferenceService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def health(url: str, service: str = "") -> int:
    with grpc.insecure_channel(url) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        return int(check(health_pb2.HealthCheckRequest(service=service), timeout=10).status)


def health_list(url: str) -> dict[str, int]:
    with grpc.insecure_channel(url) as channel:
        list_ = channel.unary_unary(
            "/grpc.health.v1.Health/List",
            request_serializer=health_pb2.HealthListRequest.SerializeToString,
            response_deserializer=health_pb2.HealthListResponse.FromString,
        )
        answer = list_(health_pb2.HealthListRequest(), timeout=10)
        return {name: int(entry.status) for name, entry in answer.statuses.items()}


@pytest.fixture(scope="module")
def broken_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("broken-repository")
    add_model(root, "good", m.identity_model("FP32", ["batch", 4]))
    add_model(root, "corrupt", m.CORRUPT_BYTES)
    return root


@pytest.fixture(scope="module")
def broken_server(
    broken_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "broken-server.log"
    with ServerProcess(broken_repository, log, EXPLICIT) as process:
        process.wait_settled(["good", "corrupt"])
        yield process


@pytest.fixture(scope="module")
def broken_client(broken_server: ServerProcess) -> Iterator[triton_grpc.InferenceServerClient]:
    with triton_grpc.InferenceServerClient(broken_server.url) as client:
        yield client


# -- a ready server ------------------------------------------------------------------------------


def test_ready_server_is_serving(server: ServerProcess) -> None:
    assert health(server.url) == SERVING
    assert health(server.url, SERVICE) == SERVING
    assert health(server.url, "add_sub") == SERVING


def test_health_of_unknown_service_is_not_found(server: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        health(server.url, "no_such_model")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_list_names_every_service(server: ServerProcess) -> None:
    statuses = health_list(server.url)
    assert statuses[""] == SERVING
    assert statuses[SERVICE] == SERVING
    assert statuses["add_sub"] == SERVING


def test_model_health_follows_unload_and_load(
    server: ServerProcess, client: triton_grpc.InferenceServerClient
) -> None:
    with grpc.insecure_channel(server.url) as channel:
        watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        updates = watch(health_pb2.HealthCheckRequest(service="unloadable"), timeout=30)
        assert next(updates).status == SERVING
        client.unload_model("unloadable")
        try:
            assert health(server.url, "unloadable") == NOT_SERVING
            assert health(server.url) == SERVING  # an unloaded model is no longer awaited
            assert next(updates).status == NOT_SERVING  # the watcher heard it too
        finally:
            client.load_model("unloadable")
        assert next(updates).status == SERVING
        updates.cancel()
    assert health(server.url, "unloadable") == SERVING


def test_health_watch_of_unknown_service_says_so(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.url) as channel:
        watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        updates = watch(health_pb2.HealthCheckRequest(service="no_such_model"), timeout=30)
        assert next(updates).status == SERVICE_UNKNOWN
        updates.cancel()


def test_reflection_lists_the_inference_service(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.url) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert SERVICE in services
        assert "grpc.health.v1.Health" in services
        # The descriptors behind the name are complete: a client can build the messages.
        service = DescriptorPool(database).FindServiceByName(SERVICE)
        methods = {method.name for method in service.methods}
    assert {
        "ServerLive",
        "ServerReady",
        "ModelInfer",
        "ModelStreamInfer",
        "RepositoryIndex",
    } <= methods


def test_reflection_v1_answers_every_kind_of_request(server: ServerProcess) -> None:
    # grpcurl asks v1 first; grpcio-reflection's client above only speaks v1alpha.
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"{SERVICE}.ModelInfer"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
        reflection_pb2.ServerReflectionRequest(
            all_extension_numbers_of_type="inference.ModelConfig"
        ),
    ]
    with grpc.insecure_channel(server.url) as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        services, infer, health_file, missing, extensions = list(info(iter(requests), timeout=10))
    names = {service.name for service in services.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in infer.file_descriptor_response.file_descriptor_proto
    ]
    # The file asked for comes first, with what it imports, so a client can build its pool.
    assert [f.name for f in files] == ["grpc_service.proto", "model_config.proto"]
    pool = DescriptorPool()
    for file in reversed(files):
        pool.Add(file)
    assert pool.FindMethodByName(f"{SERVICE}.ModelInfer").input_type.name == "ModelInferRequest"
    (health_proto,) = health_file.file_descriptor_response.file_descriptor_proto
    assert descriptor_pb2.FileDescriptorProto.FromString(health_proto).package == "grpc.health.v1"
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no.such.Symbol" in missing.error_response.error_message
    assert missing.original_request.file_containing_symbol == "no.such.Symbol"
    assert extensions.all_extension_numbers_response.base_type_name == "inference.ModelConfig"
    assert list(extensions.all_extension_numbers_response.extension_number) == []


# -- a repository with a corrupt model -----------------------------------------------------------


def test_corrupt_model_server_is_live_not_ready(
    broken_server: ServerProcess, broken_client: triton_grpc.InferenceServerClient
) -> None:
    assert broken_client.is_server_live()
    assert not broken_client.is_server_ready()
    assert health(broken_server.url) == NOT_SERVING
    assert health(broken_server.url, SERVICE) == NOT_SERVING


def test_corrupt_model_reported_with_reason(
    broken_client: triton_grpc.InferenceServerClient,
) -> None:
    rows = {m.name: m for m in broken_client.get_model_repository_index().models}
    assert rows["good"].state == "READY"
    corrupt = rows["corrupt"]
    assert corrupt.state == "UNAVAILABLE"
    assert "corrupt" in corrupt.reason
    assert "model.onnx" in corrupt.reason  # says which file
    assert "onnxruntime" in corrupt.reason.lower()  # and who refused it


def test_other_models_still_serve(
    broken_server: ServerProcess, broken_client: triton_grpc.InferenceServerClient
) -> None:
    assert broken_client.is_model_ready("good")
    assert not broken_client.is_model_ready("corrupt")
    assert health(broken_server.url, "good") == SERVING
    assert health(broken_server.url, "corrupt") == NOT_SERVING
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    result = broken_client.infer("good", [infer_input("INPUT0", x, "FP32")])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)


def test_ready_only_index(broken_server: ServerProcess) -> None:
    with raw_stub(broken_server.url) as stub:
        index = stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True))
    assert [(row.name, row.state) for row in index.models] == [("good", "READY")]


def test_corrupt_model_infer_is_unavailable(
    broken_client: triton_grpc.InferenceServerClient,
) -> None:
    x = infer_input("INPUT0", np.ones((1, 4), np.float32), "FP32")
    assert_triton_error(
        lambda: broken_client.infer("corrupt", [x]), grpc.StatusCode.UNAVAILABLE, "corrupt"
    )


def test_loading_corrupt_model_again_fails_with_reason(
    broken_client: triton_grpc.InferenceServerClient,
) -> None:
    message = assert_triton_error(
        lambda: broken_client.load_model("corrupt"), grpc.StatusCode.INVALID_ARGUMENT, "corrupt"
    )
    assert "model.onnx" in message
    assert broken_client.is_model_ready("good")


def test_only_selected_models_are_awaited(broken_repository: Path, tmp_path: Path) -> None:
    with ServerProcess(
        broken_repository, tmp_path / "server.log", ["--load-model", "good"]
    ) as process:
        process.wait_ready()
        with triton_grpc.InferenceServerClient(process.url) as client:
            assert client.is_model_ready("good")
            assert not client.is_model_ready("corrupt")
            rows = {m.name: m for m in client.get_model_repository_index().models}
            assert rows["corrupt"].state == "UNAVAILABLE"
            assert rows["corrupt"].reason  # e.g. "not loaded"
        assert health(process.url) == SERVING


# -- an empty repository -------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "ready"), [([], False), (["--allow-empty"], True)])
def test_empty_repository(flags: list[str], ready: bool, tmp_path: Path) -> None:
    repository = tmp_path / "empty"
    repository.mkdir()
    with ServerProcess(repository, tmp_path / "server.log", flags) as process:
        with triton_grpc.InferenceServerClient(process.url) as client:
            if ready:
                process.wait_ready()
            assert client.is_server_live()
            assert client.is_server_ready() is ready
            assert list(client.get_model_repository_index().models) == []
        assert health(process.url) == (SERVING if ready else NOT_SERVING)
