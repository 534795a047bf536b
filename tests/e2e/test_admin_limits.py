"""Hostile pushes are bounded: past `--admin-max-concurrent-pushes` a push is refused
(RESOURCE_EXHAUSTED), and a push that goes quiet for `--admin-push-idle-secs` is abandoned
(DEADLINE_EXCEEDED) with its partial upload removed, which frees its slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from ferroserve._proto import admin_pb2 as apb
from ferroserve.server.app import Server
from support.admin import CONFIG, MODEL, plus, tree
from support.inprocess import serve
from support.repository import add_model

pytestmark = pytest.mark.timeout(60)
PUSH = "/ferroserve.admin.v1.AdminService/PushVersion"
IDLE_S = 1.0


def push_call(channel: grpc.aio.Channel) -> grpc.aio.StreamUnaryMultiCallable:
    return channel.stream_unary(
        PUSH,
        request_serializer=apb.PushVersionRequest.SerializeToString,
        response_deserializer=apb.PushVersionResponse.FromString,
    )


def header() -> apb.PushVersionRequest:
    return apb.PushVersionRequest(header=apb.PushHeader(model=MODEL))


async def quiet_push(channel: grpc.aio.Channel, stop: asyncio.Event) -> tuple[object, str]:
    """A push that sends its header and a first chunk, then nothing until `stop`."""

    async def stream() -> AsyncIterator[apb.PushVersionRequest]:
        yield header()
        yield apb.PushVersionRequest(chunk=apb.FileChunk(file=apb.MODEL, data=b"x" * 100))
        await stop.wait()

    try:
        await push_call(channel)(stream(), timeout=30)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_pushes_are_capped_and_quiet_ones_abandoned(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    add_model(repository, MODEL, plus(1.0), CONFIG)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        before = tree(repository)
        stop = asyncio.Event()
        quiet = [asyncio.ensure_future(quiet_push(channel, stop)) for _ in range(2)]
        await asyncio.sleep(0.3)  # both hold a slot and a staging folder now
        assert len(tree(repository)) > len(before)

        async def one_more() -> AsyncIterator[apb.PushVersionRequest]:
            yield header()
            yield apb.PushVersionRequest(chunk=apb.FileChunk(file=apb.MODEL, data=plus(2.0)))

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await push_call(channel)(one_more(), timeout=10)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--admin-max-concurrent-pushes" in (refused.value.details() or "")
        # The quiet ones are abandoned after IDLE_S, their folders removed, their slots freed.
        codes = await asyncio.wait_for(asyncio.gather(*quiet), timeout=10)
        stop.set()
        for code, details in codes:
            assert code is grpc.StatusCode.DEADLINE_EXCEEDED and "--admin-push-idle-secs" in details
        assert tree(repository) == before
        answer = await push_call(channel)(one_more(), timeout=30)
        assert answer.version.version == 2 and answer.version.state == "READY"

    serve(repository, scenario, admin_max_pushes=2, admin_push_idle_s=IDLE_S)
