"""ferroserve's own grpc.health.v1 and server-reflection servicers (no grpcio-health-checking or
grpcio-reflection at run time): every request kind, both reflection versions, and a health
watcher that never reads holds one pending status, not a backlog."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from ferroserve._proto import health_pb2, reflection_pb2, reflection_v1alpha_pb2
from ferroserve._proto.service import SERVICE_NAME
from ferroserve.server.health import (
    HEALTH_SERVICE_NAME,
    LIVENESS,
    NOT_SERVING,
    SERVICE_UNKNOWN,
    SERVING,
    HealthReporter,
    HealthServicer,
)
from ferroserve.server.reflection import REFLECTION_SERVICE_NAMES, reflection_servicers
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class FakeContext:
    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def check(servicer: HealthServicer, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    context: Any = FakeContext()
    return int(asyncio.run(servicer.Check(request, context)).status)


def test_health_check_reports_what_was_set() -> None:
    async def scenario() -> tuple[int, Aborted]:
        servicer = HealthServicer()
        servicer.set("", SERVING)
        context: Any = FakeContext()
        known = await servicer.Check(health_pb2.HealthCheckRequest(service=""), context)
        with pytest.raises(Aborted) as unknown:
            await servicer.Check(health_pb2.HealthCheckRequest(service="nope"), context)
        return int(known.status), unknown.value

    status, unknown = asyncio.run(scenario())
    assert status == SERVING
    assert unknown.code == grpc.StatusCode.NOT_FOUND
    assert "unknown service 'nope'" in unknown.details


def test_reporter_follows_models_and_readiness() -> None:
    async def scenario() -> dict[str, int]:
        ready = False
        reporter = HealthReporter(lambda: ready)
        reporter.refresh()
        reporter.model_changed("m", True)
        ready = True
        reporter.refresh()
        reporter.model_changed("n", False)
        context: Any = FakeContext()
        answer = await reporter.servicer.List(health_pb2.HealthListRequest(), context)
        return {name: entry.status for name, entry in answer.statuses.items()}

    assert asyncio.run(scenario()) == {
        LIVENESS: SERVING,
        "": SERVING,
        SERVICE_NAME: SERVING,
        "m": SERVING,
        "n": NOT_SERVING,
    }


def test_liveness_is_serving_before_readiness_and_stops_at_shutdown() -> None:
    reporter = HealthReporter(lambda: False)
    reporter.refresh()
    assert check(reporter.servicer, LIVENESS) == SERVING
    assert check(reporter.servicer, "") == NOT_SERVING
    reporter.shutdown()
    assert check(reporter.servicer, LIVENESS) == NOT_SERVING


def test_watch_sends_changes_and_coalesces_for_a_slow_reader() -> None:
    async def scenario() -> list[int]:
        servicer = HealthServicer()
        context: Any = FakeContext()
        updates = servicer.Watch(health_pb2.HealthCheckRequest(service="m"), context)
        seen = [(await anext(updates)).status]  # unknown so far
        servicer.set("m", SERVING)
        seen.append((await anext(updates)).status)
        # The reader falls behind: three changes, only the latest is pending.
        servicer.set("m", NOT_SERVING)
        servicer.set("m", SERVING)
        servicer.set("m", NOT_SERVING)
        seen.append((await anext(updates)).status)
        servicer.enter_graceful_shutdown()
        servicer.set("m", SERVING)  # ignored: shutting down
        nothing_new = asyncio.ensure_future(anext(updates))
        await asyncio.sleep(0.05)
        assert not nothing_new.done()
        nothing_new.cancel()
        return seen

    assert asyncio.run(scenario()) == [SERVICE_UNKNOWN, SERVING, NOT_SERVING]


def test_shutdown_turns_every_service_not_serving() -> None:
    servicer = HealthServicer()
    servicer.set("", SERVING)
    servicer.set("m", SERVING)
    servicer.enter_graceful_shutdown()
    assert check(servicer, "") == NOT_SERVING
    assert check(servicer, "m") == NOT_SERVING


@pytest.mark.parametrize("messages", [reflection_pb2, reflection_v1alpha_pb2])
def test_reflection_answers_each_request_kind(messages: Any) -> None:
    servicers = reflection_servicers((SERVICE_NAME, HEALTH_SERVICE_NAME))
    servicer = servicers[
        f"grpc.reflection.{messages.DESCRIPTOR.package.split('.')[-1]}.ServerReflection"
    ]
    request = messages.ServerReflectionRequest

    listed = servicer.answer(request(host="h", list_services=""))
    assert listed.valid_host == "h"
    assert [s.name for s in listed.list_services_response.service] == [
        SERVICE_NAME,
        HEALTH_SERVICE_NAME,
        *REFLECTION_SERVICE_NAMES,
    ]

    by_symbol = servicer.answer(request(file_containing_symbol="inference.ModelConfig"))
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in by_symbol.file_descriptor_response.file_descriptor_proto
    ]
    assert [f.name for f in files] == ["model_config.proto"]
    pool = DescriptorPool()
    pool.Add(files[0])
    assert (
        pool.FindMessageTypeByName("inference.ModelConfig").fields_by_name["instance_group"].number
        == 7
    )

    by_name = servicer.answer(request(file_by_filename="grpc_service.proto"))
    names = [
        descriptor_pb2.FileDescriptorProto.FromString(raw).name
        for raw in by_name.file_descriptor_response.file_descriptor_proto
    ]
    assert names == ["grpc_service.proto", "model_config.proto"]

    extension = servicer.answer(
        request(
            file_containing_extension=messages.ExtensionRequest(
                containing_type="inference.ModelConfig", extension_number=99
            )
        )
    )
    assert extension.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "inference.ModelConfig extension 99" in extension.error_response.error_message

    numbers = servicer.answer(request(all_extension_numbers_of_type="inference.ModelConfig"))
    assert numbers.WhichOneof("message_response") == "all_extension_numbers_response"

    for bad, word in [
        (request(file_by_filename="nope.proto"), "file 'nope.proto'"),
        (request(file_containing_symbol="no.Such"), "symbol 'no.Such'"),
        (request(all_extension_numbers_of_type="no.Such"), "message type 'no.Such'"),
    ]:
        answer = servicer.answer(bad)
        assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
        assert word in answer.error_response.error_message
        assert answer.original_request == bad

    empty = servicer.answer(request())
    assert empty.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "list_services" in empty.error_response.error_message
