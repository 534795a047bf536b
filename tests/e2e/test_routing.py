"""Aliases end to end, on the native front end and on the Python server (a model on
onnxruntime's Python binding): a request's model_version names a version or an alias, an empty
one follows `production` once it is set, and the response names the version that answered;
`ferroserve alias|rollback|push --alias|versions` change and show them; aliases survive a
restart (routing.json); bad requests change nothing and say why."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from ferroserve._proto import admin_pb2 as apb
from ferroserve.registry.routing import ROUTING_FILE
from ferroserve.server.app import Server
from support.admin import CONFIG, MODEL, PYTHON_ENGINE, answer, plus, run_cli, tree
from support.inprocess import native_calls, python_calls, serve
from support.repository import add_model
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(120)
ADMIN = "/ferroserve.admin.v1.AdminService"


def unary(
    channel: grpc.aio.Channel, method: str, response: type
) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        f"{ADMIN}/{method}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,  # type: ignore[attr-defined]
    )


def refused(url: str, version: str) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as failure:
        answer(url, version)
    return failure.value


@pytest.mark.parametrize("engine", ["native", "python"])
def test_aliases_route_requests(tmp_path: Path, engine: str) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG + (PYTHON_ENGINE if engine == "python" else ""))
    canary = tmp_path / "v2.onnx"
    canary.write_bytes(plus(2.0))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"

        def cli(*argv: str) -> tuple[int, str, str]:
            return run_cli(*argv, "--server", url)

        code, out, err = await asyncio.to_thread(cli, "alias", MODEL, "production", "1")
        assert code == 0 and out.strip() == f"{MODEL}: production -> version 1 (new alias)", err
        # Pushed as the canary: the version policy (latest 1) would serve it, the alias keeps
        # requests without a version on production.
        code, out, err = await asyncio.to_thread(
            cli, "push", str(canary), "--model", MODEL, "--alias", "canary"
        )
        assert code == 0 and f"{MODEL} version 2 as canary: READY" in out, err
        assert await asyncio.to_thread(answer, url) == (1.0, "1")
        assert await asyncio.to_thread(answer, url, "canary") == (2.0, "2")
        assert await asyncio.to_thread(answer, url, "production") == (1.0, "1")
        assert await asyncio.to_thread(answer, url, "2") == (2.0, "2")
        error = await asyncio.to_thread(refused, url, "staging")
        assert "StatusCode.NOT_FOUND" in str(error.status()), error
        assert "no version or alias 'staging' (aliases: canary -> 2, production -> 1)" in str(error)
        # Promote the canary, then roll back.
        code, out, err = await asyncio.to_thread(cli, "alias", MODEL, "production", "2")
        assert code == 0 and "production -> version 2 (was version 1)" in out, err
        assert await asyncio.to_thread(answer, url) == (2.0, "2")
        code, out, err = await asyncio.to_thread(cli, "rollback", MODEL)
        assert code == 0 and "production rolled back from version 2 to version 1" in out, err
        assert await asyncio.to_thread(answer, url) == (1.0, "1")
        code, _, err = await asyncio.to_thread(cli, "rollback", MODEL, "--alias", "canary")
        assert code == 1 and "FAILED_PRECONDITION" in err and "no earlier target" in err, err
        assert "ferroserve versions MODEL" in err  # what to do next
        served = native_calls(server) if engine == "native" else python_calls(server)
        assert served.get("OK", 0) >= 6, (native_calls(server), python_calls(server))

    serve(root, scenario)


def test_aliased_versions_stay_loaded_and_survive_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG)
    files = {}
    for version in (2, 3):
        files[version] = tmp_path / f"v{version}.onnx"
        files[version].write_bytes(plus(float(version)))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"

        def cli(*argv: str) -> tuple[int, str, str]:
            return run_cli(*argv, "--server", url)

        for argv in (
            ("alias", MODEL, "production", "1"),
            ("push", str(files[2]), "--model", MODEL, "--alias", "canary"),
            ("alias", MODEL, "production", "2"),
            ("rollback", MODEL),
        ):
            code, _, err = await asyncio.to_thread(cli, *argv)
            assert code == 0, err
        # An alias to a version that is not loaded: loaded and warmed up first.
        code, _, err = await asyncio.to_thread(cli, "push", str(files[3]), "--model", MODEL)
        assert code == 0, err
        code, _, err = await asyncio.to_thread(cli, "unload", MODEL, "--version", "3")
        assert code == 0, err
        code, out, err = await asyncio.to_thread(cli, "alias", MODEL, "canary", "3")
        assert code == 0, err
        assert await asyncio.to_thread(answer, url, "canary") == (3.0, "3")
        # Aliased versions cannot be unloaded; the listing names the aliases.
        code, _, err = await asyncio.to_thread(cli, "unload", MODEL, "--version", "1")
        assert code == 1 and "FAILED_PRECONDITION" in err and "serves alias production" in err, err
        code, out, err = await asyncio.to_thread(cli, "versions", MODEL, "--json")
        assert code == 0, err
        listed = json.loads(out)["models"][0]
        aliases = {v["version"]: v["aliases"] for v in listed["versions"]}
        assert aliases == {"1": ["production"], "2": [], "3": ["canary"]}
        production = {a["name"]: a for a in listed["routing"]["aliases"]}["production"]
        # The rollback took version 1 back out of production's history.
        assert production["version"] == "1" and production["history"] == []
        canary = {a["name"]: a for a in listed["routing"]["aliases"]}["canary"]
        assert canary["history"] == ["2"]
        code, out, err = await asyncio.to_thread(cli, "alias", MODEL)
        assert code == 0 and out.split("\n")[0].split() == [
            "ALIAS",
            "VERSION",
            "HISTORY",
            "UPDATED",
        ]
        assert out.split("\n")[1].split()[:3] == ["canary", "3", "2"], out
        assert out.split("\n")[2].split()[:3] == ["production", "1", "-"], out
        # Version 2 left every alias and the version policy: it was unloaded.
        assert server.registry.version_states(MODEL)[2].state.value == "UNAVAILABLE"

    serve(root, scenario)
    assert (
        json.loads((root / MODEL / ROUTING_FILE).read_text())["aliases"]["canary"]["version"] == 3
    )

    async def restarted(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        assert await asyncio.to_thread(answer, url) == (1.0, "1")
        assert await asyncio.to_thread(answer, url, "canary") == (3.0, "3")
        assert server.service.server_ready()

    serve(root, restarted)


def test_bad_routing_requests_change_nothing(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG, versions=(1, 2))
    (root / MODEL / "9").mkdir()
    (root / MODEL / "9" / "model.onnx").write_bytes(b"not onnx")

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        set_alias = unary(channel, "SetAlias", apb.SetAliasResponse)
        await set_alias(apb.SetAliasRequest(model=MODEL, alias="production", version=1))
        before = tree(root)
        cases = [
            (
                "SetAlias",
                apb.SetAliasRequest(model=MODEL, alias="9lives", version=1),
                grpc.StatusCode.INVALID_ARGUMENT,
                "starts with a letter",
            ),
            (
                "SetAlias",
                apb.SetAliasRequest(model=MODEL, alias="canary", version=7),
                grpc.StatusCode.NOT_FOUND,
                "no version 7",
            ),
            (
                "SetAlias",
                apb.SetAliasRequest(model=MODEL, alias="canary", version=9),
                grpc.StatusCode.INVALID_ARGUMENT,
                "failed to load, so the routing was not changed",
            ),
            (
                "SetAlias",
                apb.SetAliasRequest(model="..", alias="canary", version=1),
                grpc.StatusCode.INVALID_ARGUMENT,
                "model name",
            ),
            (
                "SetAlias",
                apb.SetAliasRequest(model="nope", alias="canary", version=1),
                grpc.StatusCode.NOT_FOUND,
                "not in the repository",
            ),
            (
                "DeleteAlias",
                apb.DeleteAliasRequest(model=MODEL, alias="canary"),
                grpc.StatusCode.NOT_FOUND,
                "no alias 'canary' (aliases: production)",
            ),
            (
                "Rollback",
                apb.RollbackRequest(model=MODEL),
                grpc.StatusCode.FAILED_PRECONDITION,
                "no earlier target",
            ),
            (
                "Rollback",
                apb.RollbackRequest(model=MODEL, alias="canary"),
                grpc.StatusCode.NOT_FOUND,
                "no alias 'canary'",
            ),
            (
                "Rollback",
                apb.RollbackRequest(model=".git"),
                grpc.StatusCode.INVALID_ARGUMENT,
                "model name",
            ),
        ]
        for method, request, code, words in cases:
            response = getattr(apb, f"{method}Response")
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await unary(channel, method, response)(request)
            assert failure.value.code() is code, (method, request, failure.value.details())
            assert words in (failure.value.details() or ""), failure.value.details()
        assert tree(root) == before
        assert await asyncio.to_thread(answer, url) == (1.0, "1")
        assert server.service.server_ready()  # the failed load of version 9 is not wanted
        code, _, err = await asyncio.to_thread(
            run_cli, "alias", MODEL, "production", "--server", url
        )
        assert code == 2 and "give the VERSION" in err, err

    serve(root, scenario)


def test_routing_rpcs_need_the_token(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG)
    token = tmp_path / "token"
    token.write_text("s3cret\n")

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        before = tree(root)
        for argv in (("alias", MODEL, "production", "1"), ("rollback", MODEL)):
            code, _, err = await asyncio.to_thread(run_cli, *argv, "--server", url)
            assert code == 1 and "UNAUTHENTICATED" in err, err
        assert tree(root) == before
        code, _, err = await asyncio.to_thread(
            run_cli, "alias", MODEL, "production", "1", "--server", url, "--token-file", str(token)
        )
        assert code == 0, err

    serve(root, scenario, admin_token_file=token)
