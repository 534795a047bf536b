"""The admin service end to end, through the native front end's forwarding (the push is a
client-streamed call): a push while tritonclient traffic runs at concurrency 12 on the native
path fails no request and the new version answers once the push returns; listing shows what
was recorded; bad uploads, names, tokens and sizes change nothing and say why; a cancelled
upload leaves nothing behind; a version whose file changed after the push fails its load;
single versions load and unload; `ferroserve push|versions|load|unload` print and exit as
documented."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import redirect_stderr
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve import cli, cli_admin
from ferroserve._proto import admin_pb2 as apb
from ferroserve.server.app import Server
from onnx import numpy_helper
from support import models as m
from support.admin import CONFIG, MODEL, run_cli, tree
from support.inprocess import native_calls, serve
from support.repository import add_model
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)
PUSH = "/ferroserve.admin.v1.AdminService/PushVersion"
LIST = "/ferroserve.admin.v1.AdminService/ListVersions"
LOAD = "/ferroserve.admin.v1.AdminService/LoadVersion"
UNLOAD = "/ferroserve.admin.v1.AdminService/UnloadVersion"


def plus(value: float, padding_floats: int = 0) -> bytes:
    """The plus-constant model; `padding_floats` adds an unused initializer so the file spans
    several 1 MiB chunks."""
    model = m.plus_constant_model(value)
    if padding_floats:
        pad = np.zeros(padding_floats, np.float32)
        model.graph.initializer.append(numpy_helper.from_array(pad, "padding"))
        onnx.checker.check_model(model)
    return model.SerializeToString()


def infer(url: str, version: str = "") -> float:
    """What the model adds to a zero input (the version's constant)."""
    client = triton_grpc.InferenceServerClient(url)
    x = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), np.float32))
    result = client.infer(MODEL, [x], model_version=version).as_numpy("OUTPUT0")
    client.close()
    assert result is not None
    return float(result[0, 0])


def header_request(**fields: object) -> apb.PushVersionRequest:
    return apb.PushVersionRequest(header=apb.PushHeader(**fields))  # type: ignore[arg-type]


def chunk_request(data: bytes, kind: int = apb.MODEL) -> apb.PushVersionRequest:
    return apb.PushVersionRequest(chunk=apb.FileChunk(file=kind, data=data))  # type: ignore[arg-type]


async def push_raw(
    channel: grpc.aio.Channel,
    requests: list[apb.PushVersionRequest],
    metadata: tuple[tuple[str, str], ...] = (),
) -> apb.PushVersionResponse:
    call = channel.stream_unary(
        PUSH,
        request_serializer=apb.PushVersionRequest.SerializeToString,
        response_deserializer=apb.PushVersionResponse.FromString,
    )

    async def stream() -> AsyncIterator[apb.PushVersionRequest]:
        for request in requests:
            yield request

    response: apb.PushVersionResponse = await call(stream(), metadata=metadata)
    return response


def unary(channel: grpc.aio.Channel, method: str, response: type) -> Callable[..., object]:
    return channel.unary_unary(
        method,
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,  # type: ignore[attr-defined]
    )


class Traffic:
    """tritonclient clients sending the model's default version requests in a loop, each
    answer checked to come from a version between `low` and `high`."""

    def __init__(self, url: str, low: float, high: float) -> None:
        self.url, self.low, self.high = url, low, high
        self.failures: list[str] = []
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def answered(self) -> int:
        return sum(self.counts)

    def start(self, clients: int) -> None:
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        client = triton_grpc.InferenceServerClient(self.url)
        x = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
        x.set_data_from_numpy(np.zeros((1, 4), np.float32))
        count = 0
        while not self._stop.is_set():
            try:
                result = client.infer(MODEL, [x]).as_numpy("OUTPUT0")
                assert result is not None and self.low <= float(result[0, 0]) <= self.high
                count += 1
            except Exception as error:  # every failure is reported, none expected
                self.failures.append(repr(error))
        self.counts.append(count)
        client.close()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG)
    return root


def test_push_under_traffic_fails_no_request(repository: Path, tmp_path: Path) -> None:
    pushes = 5  # versions 2-6, each answering its own number
    files = []
    for version in range(2, 2 + pushes):
        path = tmp_path / f"v{version}.onnx"
        path.write_bytes(plus(float(version), padding_floats=700_000))  # ~2.8 MB: 3 chunks
        files.append(path)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        traffic = Traffic(url, 1.0, 1.0 + pushes)
        traffic.start(12)
        try:
            await asyncio.sleep(0.3)
            for version, path in enumerate(files, start=2):
                code, out, err = await asyncio.to_thread(
                    run_cli,
                    "push",
                    str(path),
                    "--model",
                    MODEL,
                    "--notes",
                    "retrained",
                    "--server",
                    url,
                )
                assert code == 0, err
                assert out.startswith(f"pushed {MODEL} version {version}: READY"), out
                # Once the push returned, the new version answers.
                assert await asyncio.to_thread(infer, url) == float(version)
                await asyncio.sleep(0.2)
        finally:
            await asyncio.to_thread(traffic.stop)
        assert not traffic.failures, traffic.failures[:5]
        assert traffic.answered > 100
        assert sum(native_calls(server).values()) >= traffic.answered  # the native path served

        code, out, err = await asyncio.to_thread(
            run_cli, "versions", MODEL, "--json", "--server", url
        )
        assert code == 0, err
        listed = {v["version"]: v for v in json.loads(out)["models"][0]["versions"]}
        last = str(1 + pushes)
        assert listed[last]["state"] == "READY"
        assert listed[last]["notes"] == "retrained"
        assert listed[last]["size_bytes"] == str(files[-1].stat().st_size)
        assert listed[last]["pushed"] is True
        record = json.loads((repository / MODEL / last / "version.json").read_text())
        assert listed[last]["sha256"] == record["sha256"] and len(record["sha256"]) == 64
        # version_policy latest 1: the earlier versions left the policy as each push served.
        states = [listed[str(v)]["state"] for v in range(1, 1 + pushes)]
        assert states == ["UNAVAILABLE"] * pushes
        assert listed["1"]["pushed"] is False
        ready = await unary(channel, "/inference.GRPCInferenceService/ServerReady", _ready())(
            _ready_request()
        )
        assert ready.ready  # type: ignore[attr-defined]
        code, out, _ = await asyncio.to_thread(run_cli, "versions", "--server", url)
        assert code == 0 and "retrained" in out and "(not pushed)" in out
        print(f"{traffic.answered} requests answered across {pushes} pushes", file=sys.stderr)

    serve(repository, scenario)


def _ready() -> type:
    from ferroserve._proto import grpc_service_pb2

    return grpc_service_pb2.ServerReadyResponse  # type: ignore[no-any-return]


def _ready_request() -> object:
    from ferroserve._proto import grpc_service_pb2

    return grpc_service_pb2.ServerReadyRequest()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not an onnx file at all", "failed to load and was removed"),
        (plus(2.0)[:-7], "failed to load and was removed"),
    ],
    ids=["garbage", "truncated"],
)
def test_a_bad_upload_changes_nothing(
    repository: Path, tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        before = tree(repository)
        code, _, err = await asyncio.to_thread(
            run_cli, "push", str(bad), "--model", MODEL, "--server", url
        )
        assert code == 1
        assert "INVALID_ARGUMENT" in err and expected in err and "version 2" in err, err
        assert tree(repository) == before
        assert await asyncio.to_thread(infer, url) == 1.0
        assert server.registry.version_states(MODEL).keys() == {1}

    serve(repository, scenario)


def test_push_creates_a_model_with_its_config_and_refuses_a_changed_one(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(plus(5.0))
    config = tmp_path / "config.pbtxt"
    config.write_text(CONFIG)
    changed = tmp_path / "changed.pbtxt"
    changed.write_text(CONFIG.replace("max_batch_size: 8", "max_batch_size: 4"))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        code, out, err = await asyncio.to_thread(
            run_cli,
            "push",
            str(model_file),
            "--model",
            MODEL,
            "--config",
            str(config),
            "--server",
            url,
        )
        assert code == 0, err
        assert f"{MODEL} version 1: READY" in out
        assert (root / MODEL / "config.pbtxt").read_text() == CONFIG
        assert await asyncio.to_thread(infer, url) == 5.0
        before = tree(root)
        code, _, err = await asyncio.to_thread(
            run_cli,
            "push",
            str(model_file),
            "--model",
            MODEL,
            "--config",
            str(changed),
            "--server",
            url,
        )
        assert code == 1 and "FAILED_PRECONDITION" in err and "differs" in err, err
        assert tree(root) == before
        # The same config again is accepted.
        code, out, err = await asyncio.to_thread(
            run_cli,
            "push",
            str(model_file),
            "--model",
            MODEL,
            "--config",
            str(config),
            "--server",
            url,
        )
        assert code == 0 and "version 2: READY" in out, err
        assert not [p for p in root.rglob(".ferroserve-push-*")]

    serve(root, scenario)


@pytest.mark.parametrize(
    "name", ["..", ".git", ".hidden", "a/b", "x" * 300, "nul\0byte", ""], ids=repr
)
def test_unsafe_model_names_are_refused(repository: Path, name: str) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        before = tree(repository.parent)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await push_raw(
                channel,
                [header_request(model=name, config_pbtxt=""), chunk_request(plus(3.0))],
            )
        assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "model name" in (failure.value.details() or ""), failure.value.details()
        assert tree(repository.parent) == before
        for method, request in (
            (LOAD, apb.LoadVersionRequest(model=name, version=1)),
            (UNLOAD, apb.UnloadVersionRequest(model=name, version=1)),
            (LIST, apb.ListVersionsRequest(model=name)),
        ):
            if not name and method == LIST:
                continue  # an empty model lists every model
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await unary(channel, method, apb.LoadVersionResponse)(request)
            assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    serve(repository, scenario)


def test_token(repository: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it")
    listing = apb.ListVersionsRequest()

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        list_versions = unary(channel, LIST, apb.ListVersionsResponse)
        for metadata, code in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Basic czNjcmV0"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer not-it"),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await list_versions(listing, metadata=metadata)
            assert failure.value.code() is code
            assert "authorization: Bearer <token>" in (failure.value.details() or "")
        before = tree(repository)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await push_raw(channel, [header_request(model=MODEL), chunk_request(plus(2.0))])
        assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert tree(repository) == before
        good = (("authorization", "Bearer s3cret-token"),)
        listed = await list_versions(listing, metadata=good)
        assert [v.model for v in listed.models] == [MODEL]  # type: ignore[attr-defined]
        # The CLI: no token, a wrong one, the right one.
        code, _, err = await asyncio.to_thread(run_cli, "versions", "--server", url)
        assert code == 1 and "UNAUTHENTICATED" in err and "--token-file" in err, err
        code, _, err = await asyncio.to_thread(
            run_cli, "versions", "--server", url, "--token-file", str(wrong)
        )
        assert code == 1 and "PERMISSION_DENIED" in err, err
        code, out, err = await asyncio.to_thread(
            run_cli, "versions", "--server", url, "--token-file", str(token_file)
        )
        assert code == 0 and MODEL in out, err
        # Inference needs no token.
        assert await asyncio.to_thread(infer, url) == 1.0

    serve(repository, scenario, admin_token_file=token_file)


def test_push_limit_and_sha256(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        before = tree(repository)
        model = plus(2.0, padding_floats=10_000)
        with pytest.raises(grpc.aio.AioRpcError) as failure:  # announced too large
            await push_raw(channel, [header_request(model=MODEL, total_bytes=len(model))])
        assert failure.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.aio.AioRpcError) as failure:  # sent too large, unannounced
            await push_raw(channel, [header_request(model=MODEL), chunk_request(model)])
        assert failure.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--admin-max-push-bytes" in (failure.value.details() or "")
        small = plus(2.0)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await push_raw(
                channel,
                [header_request(model=MODEL, model_sha256="00" * 32), chunk_request(small)],
            )
        assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "sha256" in (failure.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await push_raw(channel, [chunk_request(small)])
        assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert tree(repository) == before

    serve(repository, scenario, admin_max_push_bytes=20_000)


def test_a_cancelled_upload_leaves_nothing(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        before = tree(repository)
        sent = asyncio.Event()

        async def stream() -> AsyncIterator[apb.PushVersionRequest]:
            yield header_request(model=MODEL)
            yield chunk_request(b"\0" * 500_000)
            sent.set()
            await asyncio.sleep(3600)  # never finishes: the client cancels

        call = channel.stream_unary(
            PUSH,
            request_serializer=apb.PushVersionRequest.SerializeToString,
            response_deserializer=apb.PushVersionResponse.FromString,
        )(stream())
        await sent.wait()
        for _ in range(100):  # the staging folder exists while the upload runs
            if list(repository.rglob(".ferroserve-push-*")):
                break
            await asyncio.sleep(0.02)
        assert list(repository.rglob(".ferroserve-push-*"))
        call.cancel()
        for _ in range(250):
            if tree(repository) == before:
                break
            await asyncio.sleep(0.02)
        assert tree(repository) == before
        assert await asyncio.to_thread(infer, f"127.0.0.1:{server.port}") == 1.0

    serve(repository, scenario)


def test_single_versions_load_unload_and_sha256_check(repository: Path, tmp_path: Path) -> None:
    new = tmp_path / "v2.onnx"
    new.write_bytes(plus(2.0))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        code, _, err = await asyncio.to_thread(
            run_cli, "push", str(new), "--model", MODEL, "--server", url
        )
        assert code == 0, err
        # Version 1 left the policy (latest 1); load it alone, beside 2.
        code, out, err = await asyncio.to_thread(
            run_cli, "load", MODEL, "--version", "1", "--server", url
        )
        assert code == 0 and out.startswith(f"{MODEL} version 1: READY"), err
        assert await asyncio.to_thread(infer, url, "1") == 1.0
        assert await asyncio.to_thread(infer, url, "2") == 2.0
        assert await asyncio.to_thread(infer, url) == 2.0
        # Unload 2 alone: the default version is 1 now, and the server stays ready.
        code, out, err = await asyncio.to_thread(
            run_cli, "unload", MODEL, "--version", "2", "--server", url
        )
        assert code == 0 and "UNAVAILABLE" in out, err
        assert await asyncio.to_thread(infer, url) == 1.0
        assert server.service.server_ready()
        code, _, err = await asyncio.to_thread(
            run_cli, "unload", MODEL, "--version", "2", "--server", url
        )
        assert code == 1 and "NOT_FOUND" in err and "not loaded" in err, err
        code, _, err = await asyncio.to_thread(
            run_cli, "load", MODEL, "--version", "9", "--server", url
        )
        assert code == 1 and "NOT_FOUND" in err and "no version 9" in err, err
        # The file of version 2 changes after its push: its load fails naming both digests.
        path = repository / MODEL / "2" / "model.onnx"
        path.write_bytes(path.read_bytes()[:-1] + b"\1")
        code, _, err = await asyncio.to_thread(
            run_cli, "load", MODEL, "--version", "2", "--server", url
        )
        assert (
            code == 1 and "INVALID_ARGUMENT" in err and "does not match its version.json" in err
        ), err
        assert await asyncio.to_thread(infer, url) == 1.0
        assert server.service.server_ready()  # a failed LoadVersion does not turn it not-ready
        listed = server.registry.version_states(MODEL)
        assert listed[2].state.value == "UNAVAILABLE" and "sha256" in listed[2].reason

    serve(repository, scenario)


def test_drift_reference_is_stored_with_the_version(repository: Path, tmp_path: Path) -> None:
    new = tmp_path / "v2.onnx"
    new.write_bytes(plus(2.0))
    reference = tmp_path / "ref.npz"
    np.savez(reference, INPUT0=np.zeros((10, 4), np.float32))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        code, out, err = await asyncio.to_thread(
            run_cli,
            "push",
            str(new),
            "--model",
            MODEL,
            "--drift-reference",
            str(reference),
            "--json",
            "--server",
            url,
        )
        assert code == 0, err
        assert json.loads(out)["version"]["version"] == "2"
        stored = repository / MODEL / "2" / "ref.npz"
        assert stored.read_bytes() == reference.read_bytes()
        record = json.loads((repository / MODEL / "2" / "version.json").read_text())
        assert record["drift_reference"] == "ref.npz"

    serve(repository, scenario)


def test_server_errors_exit_1_with_a_hint(tmp_path: Path) -> None:
    code, _, err = run_cli("versions", "--server", "127.0.0.1:1", "--timeout", "2")
    assert code == 1 and "UNAVAILABLE" in err and "--server" in err
    code, _, err = run_cli("push", str(tmp_path / "missing.onnx"), "--model", MODEL)
    assert code == 2 and "missing.onnx" in err


def test_serve_flags_in_a_server_process(repository: Path, tmp_path: Path) -> None:
    """`ferroserve serve --admin-token-file` protects the service; without it the log warns;
    an empty token file stops the start with the reason."""
    token = tmp_path / "token"
    token.write_text("abc\n")
    new = tmp_path / "v2.onnx"
    new.write_bytes(plus(2.0))
    with ServerProcess(
        repository, tmp_path / "protected.log", ["--admin-token-file", str(token)]
    ) as server:
        server.wait_ready()
        code, _, err = run_cli("push", str(new), "--model", MODEL, "--server", server.url)
        assert code == 1 and "UNAUTHENTICATED" in err
        code, out, err = run_cli(
            "push", str(new), "--model", MODEL, "--server", server.url, "--token-file", str(token)
        )
        assert code == 0 and "version 2: READY" in out, err
        assert "open to anyone" not in server.log()
    with ServerProcess(repository, tmp_path / "open.log") as server:
        server.wait_ready()
        assert "the admin service (pushing, loading and unloading model versions) is open" in (
            server.log()
        )
    token.write_text("\n")
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--model-repository", str(repository), "--admin-token-file", str(token)])
    assert exited.value.code == 2 and "the token is empty" in err.getvalue()


def test_a_server_killed_during_a_push_restarts_consistent(
    repository: Path, tmp_path: Path
) -> None:
    """SIGKILL mid-upload: the next start removes the staging folder and serves version 1."""
    before = tree(repository)
    server = ServerProcess(repository, tmp_path / "killed.log", ["--no-allow-metrics"]).start()
    try:
        server.wait_ready()
        release = threading.Event()
        outcome: list[BaseException] = []

        def requests() -> Iterator[apb.PushVersionRequest]:
            yield header_request(model=MODEL)
            yield chunk_request(b"\0" * 300_000)
            release.wait(30)

        def push() -> None:
            with grpc.insecure_channel(server.url) as channel:
                call = channel.stream_unary(
                    PUSH,
                    request_serializer=apb.PushVersionRequest.SerializeToString,
                    response_deserializer=apb.PushVersionResponse.FromString,
                )
                try:
                    call(requests(), timeout=30)
                except grpc.RpcError as error:
                    outcome.append(error)

        pusher = threading.Thread(target=push)
        pusher.start()
        for _ in range(500):
            if list(repository.rglob(".ferroserve-push-*/model.onnx")):
                break
            threading.Event().wait(0.02)
        assert list(repository.rglob(".ferroserve-push-*/model.onnx"))
        os.kill(server.pid, signal.SIGKILL)
        release.set()
        pusher.join()
        assert outcome and outcome[0].code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        server.stop()
    # A staging folder is swept once quiet for twice the push idle timeout (a replica on a
    # shared volume may still be writing a younger one).
    time.sleep(1.2)
    restart = ["--no-allow-metrics", "--admin-push-idle-secs", "0.5"]
    with ServerProcess(repository, tmp_path / "restarted.log", restart) as again:
        again.wait_ready()
        assert tree(repository) == before
        assert "an unfinished push left by a server that stopped" in again.log()
        assert infer(again.url) == 1.0


def test_listing_and_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version on disk that was never loaded is NOT_LOADED; a large push prints progress."""
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG, versions=(1, 2))
    new = tmp_path / "v3.onnx"
    new.write_bytes(plus(3.0, padding_floats=600_000))
    monkeypatch.setattr(cli_admin, "PROGRESS_FROM_BYTES", 1)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        code, out, err = await asyncio.to_thread(run_cli, "versions", MODEL, "--server", url)
        assert code == 0, err
        rows = [line.split()[:3] for line in out.splitlines()[1:3]]
        assert rows == [[MODEL, "1", "NOT_LOADED"], [MODEL, "2", "READY"]]
        code, out, err = await asyncio.to_thread(
            run_cli, "push", str(new), "--model", MODEL, "--server", url
        )
        assert code == 0, err
        assert "uploaded 2.4 MB of 2.4 MB (100%" in err and "upload done" in err, err

    serve(root, scenario)
