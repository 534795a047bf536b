"""`--admin-port`: the admin service answers on its own port, behind the same token, and the
inference port no longer offers it (UNIMPLEMENTED), while inference stays on the inference
port."""

from __future__ import annotations

from pathlib import Path

import grpc
from ferroserve._proto import admin_pb2 as apb
from support.admin import CONFIG, MODEL, answer, plus, run_cli
from support.repository import add_model
from support.server import ServerProcess, free_port

LIST = "/ferroserve.admin.v1.AdminService/ListVersions"


def list_versions(url: str) -> grpc.RpcError | apb.ListVersionsResponse:
    with grpc.insecure_channel(url) as channel:
        call = channel.unary_unary(
            LIST,
            request_serializer=apb.ListVersionsRequest.SerializeToString,
            response_deserializer=apb.ListVersionsResponse.FromString,
        )
        try:
            return call(apb.ListVersionsRequest(model=MODEL), timeout=10)
        except grpc.RpcError as error:
            return error


def test_the_admin_service_moves_to_its_own_port(tmp_path: Path) -> None:
    add_model(tmp_path / "repository", MODEL, plus(1.0), CONFIG)
    token = tmp_path / "token"
    token.write_text("secret\n")
    admin_port = free_port()
    flags = ["--admin-port", str(admin_port), "--admin-token-file", str(token)]
    with ServerProcess(tmp_path / "repository", tmp_path / "server.log", flags) as server:
        server.wait_ready()
        admin = f"127.0.0.1:{admin_port}"
        refused = list_versions(server.url)
        assert isinstance(refused, grpc.RpcError)
        assert refused.code() is grpc.StatusCode.UNIMPLEMENTED
        unauthenticated = list_versions(admin)
        assert isinstance(unauthenticated, grpc.RpcError)
        assert unauthenticated.code() is grpc.StatusCode.UNAUTHENTICATED
        model_file = tmp_path / "two.onnx"
        model_file.write_bytes(plus(2.0))
        push = ["push", str(model_file), "--model", MODEL, "--token-file", str(token)]
        code, _, err = run_cli(*push, "--server", server.url)
        assert code == 1 and "UNIMPLEMENTED" in err and "--admin-port" in err, err
        code, out, err = run_cli(*push, "--server", admin)
        assert code == 0 and "version 2: READY" in out, err
        assert answer(server.url) == (2.0, "2")
        assert "admin service on 127.0.0.1:" in server.log()
