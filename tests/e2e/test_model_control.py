"""Triton's model control modes (`--model-control-mode`): `none`, the default, refuses
RepositoryModelLoad/Unload and changes nothing; `explicit` loads only `--load-model` models at
start and lets clients load and unload; `poll` serves what others write into the repository
(a new version, a new model, a removed model, a changed config) within the poll interval,
and a broken new version leaves the serving one untouched."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve._proto import reflection_pb2
from ferroserve.demo import mlp_model
from support.repository import add_model
from support.rpc import assert_triton_error
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)
CONFIG = """\
name: "{name}"
max_batch_size: 8
input [{{ name: "input" data_type: TYPE_FP32 dims: [4] }}]
output [{{ name: "output" data_type: TYPE_FP32 dims: [2] }}]
"""
POLL_SECS = 0.3


def model(seed: int) -> bytes:
    return mlp_model(inputs=4, hidden=(8,), outputs=2, seed=seed).SerializeToString()


def write(root: Path, name: str, versions: tuple[int, ...] = (1,), seed: int = 0) -> Path:
    return add_model(root, name, model(seed), CONFIG.format(name=name), versions)


def served_version(client: triton_grpc.InferenceServerClient, name: str) -> str:
    tensor = triton_grpc.InferInput("input", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    return str(client.infer(name, [tensor]).get_response().model_version)


def eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the change was not picked up in time"
        time.sleep(0.05)


def index(client: triton_grpc.InferenceServerClient) -> list[tuple[str, str, str]]:
    rows = client.get_model_repository_index(as_json=True).get("models", [])
    return sorted((row["name"], row.get("version", ""), row.get("state", "")) for row in rows)


def test_none_mode_refuses_load_and_unload_and_changes_nothing(tmp_path: Path) -> None:
    write(tmp_path / "repository", "a")
    with ServerProcess(tmp_path / "repository", tmp_path / "server.log") as server:
        server.wait_ready()
        with triton_grpc.InferenceServerClient(server.url) as client:
            before = index(client)
            for call in (lambda: client.unload_model("a"), lambda: client.load_model("a")):
                message = assert_triton_error(
                    call, grpc.StatusCode.FAILED_PRECONDITION, "--model-control-mode=explicit"
                )
                assert "explicit model load / unload is not allowed" in message
            assert client.is_model_ready("a") and client.is_server_ready()
            assert index(client) == before
        # Reflection is opt-in (--grpc-reflection): by default it is not offered.
        with grpc.insecure_channel(server.url) as channel:
            reflect = channel.stream_stream(
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            with pytest.raises(grpc.RpcError) as refused:
                list(reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
            assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_explicit_mode_loads_only_what_it_is_told(tmp_path: Path) -> None:
    root = tmp_path / "repository"
    write(root, "a")
    write(root, "b")
    flags = ["--model-control-mode=explicit", "--load-model=a"]
    with ServerProcess(root, tmp_path / "server.log", flags) as server:
        server.wait_ready()
        with triton_grpc.InferenceServerClient(server.url) as client:
            assert client.is_model_ready("a") and not client.is_model_ready("b")
            client.load_model("b")
            assert served_version(client, "b") == "1"
            client.unload_model("a")
            assert not client.is_model_ready("a") and client.is_server_ready()
    # Nothing named: nothing loaded, and the server is ready to be told.
    with ServerProcess(root, tmp_path / "empty.log", flags[:1]) as server:
        server.wait_ready()
        with triton_grpc.InferenceServerClient(server.url) as client:
            assert not client.is_model_ready("a") and not client.is_model_ready("b")


def test_poll_mode_serves_what_changes_in_the_repository(tmp_path: Path) -> None:
    root = tmp_path / "repository"
    write(root, "a")
    flags = ["--model-control-mode=poll", f"--repository-poll-secs={POLL_SECS}"]
    with (
        ServerProcess(root, tmp_path / "server.log", flags) as server,
        triton_grpc.InferenceServerClient(server.url) as client,
    ):
        server.wait_ready()
        assert served_version(client, "a") == "1"
        # A new version (the default policy serves the latest).
        write(root, "a", versions=(2,), seed=1)
        eventually(lambda: served_version(client, "a") == "2")
        # A broken new version: version 2 keeps serving, the failure is in the index.
        (root / "a" / "3").mkdir()
        (root / "a" / "3" / "model.onnx").write_bytes(b"not an onnx model")
        eventually(lambda: ("a", "3", "UNAVAILABLE") in index(client))
        assert served_version(client, "a") == "2"
        shutil.rmtree(root / "a" / "3")
        # A new model, then it goes away.
        write(root, "b")
        eventually(lambda: client.is_model_ready("b"))
        assert served_version(client, "b") == "1"
        shutil.rmtree(root / "b")
        eventually(lambda: not client.is_model_ready("b"))
        # A changed config: the model reloads with it (max_batch_size 8 -> 4).
        config = root / "a" / "config.pbtxt"
        config.write_text(config.read_text().replace("max_batch_size: 8", "max_batch_size: 4"))
        eventually(lambda: client.get_model_config("a").config.max_batch_size == 4)
        assert served_version(client, "a") == "2"
        # Load and unload stay refused: the repository is in charge.
        assert_triton_error(
            lambda: client.unload_model("a"), grpc.StatusCode.FAILED_PRECONDITION, "poll"
        )
        assert client.is_server_ready()
