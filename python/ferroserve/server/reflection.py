"""gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, the version grpcurl falls back
to), answered from the private descriptor pool that holds every protocol we serve. Our own
implementation: grpcio-reflection's generated code pins the protobuf runtime, and it only
speaks v1alpha."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from ferroserve._proto import POOL, reflection_pb2, reflection_v1alpha_pb2

REFLECTION_SERVICE_NAMES = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)

# The two versions have the same messages under two packages; a servicer uses one module.
Request = reflection_pb2.ServerReflectionRequest | reflection_v1alpha_pb2.ServerReflectionRequest
Response = reflection_pb2.ServerReflectionResponse | reflection_v1alpha_pb2.ServerReflectionResponse
Context = grpc.aio.ServicerContext[Any, Any]


class ReflectionServicer:
    """`ServerReflectionInfo`: one answer per request, in order, on one stream. Unknown names
    get an `error_response` with NOT_FOUND, as the protocol says, and the stream goes on."""

    def __init__(self, services: Sequence[str], messages: ModuleType = reflection_pb2) -> None:
        self._services = tuple(services)
        self._messages = messages

    async def ServerReflectionInfo(
        self, requests: AsyncIterable[Request], context: Context
    ) -> AsyncIterator[Response]:
        async for request in requests:
            yield self.answer(request)

    def answer(self, request: Request) -> Response:
        """The response to one request (any of the protocol's five kinds)."""
        response: Response = self._messages.ServerReflectionResponse(valid_host=request.host)
        # request is of the same version as response (one servicer per version).
        response.original_request.CopyFrom(request)  # type: ignore[arg-type]
        kind = request.WhichOneof("message_request")
        try:
            if kind == "list_services":
                for name in self._services:
                    response.list_services_response.service.add(name=name)
            elif kind == "file_by_filename":
                files = _with_imports(POOL.FindFileByName(request.file_by_filename))
                response.file_descriptor_response.file_descriptor_proto.extend(files)
            elif kind == "file_containing_symbol":
                files = _with_imports(_file_containing(request.file_containing_symbol))
                response.file_descriptor_response.file_descriptor_proto.extend(files)
            elif kind == "file_containing_extension":
                wanted = request.file_containing_extension
                message = POOL.FindMessageTypeByName(wanted.containing_type)
                extension = POOL.FindExtensionByNumber(message, wanted.extension_number)
                files = _with_imports(POOL.FindFileContainingSymbol(extension.full_name))
                response.file_descriptor_response.file_descriptor_proto.extend(files)
            elif kind == "all_extension_numbers_of_type":
                name = request.all_extension_numbers_of_type
                message = POOL.FindMessageTypeByName(name)
                numbers = sorted(e.number for e in POOL.FindAllExtensions(message))
                answer = response.all_extension_numbers_response
                answer.base_type_name = name
                answer.extension_number.extend(numbers)
            else:
                response.error_response.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                response.error_response.error_message = (
                    "set one of list_services, file_by_filename, file_containing_symbol, "
                    "file_containing_extension or all_extension_numbers_of_type"
                )
        except KeyError:
            response.ClearField("message_response")
            response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            response.error_response.error_message = _not_found(request, kind)
        return response


def _file_containing(symbol: str) -> FileDescriptor:
    """The file defining `symbol`; protobuf's pool knows services but not their methods, which
    grpcurl asks for (`describe pkg.Service.Method`). KeyError when nothing defines it."""
    try:
        return POOL.FindFileContainingSymbol(symbol)
    except KeyError:
        service_name, _, method = symbol.rpartition(".")
        service = POOL.FindServiceByName(service_name)
        if method not in service.methods_by_name:
            raise
        return service.file


def _not_found(request: Request, kind: str | None) -> str:
    if kind == "file_containing_extension":
        wanted = request.file_containing_extension
        value = f"{wanted.containing_type} extension {wanted.extension_number}"
    else:
        value = str(getattr(request, kind or "", ""))
    what = {
        "file_by_filename": "file",
        "file_containing_symbol": "symbol",
        "file_containing_extension": "extension",
        "all_extension_numbers_of_type": "message type",
    }.get(kind or "", kind)
    return f"{what} '{value}' is not served here; list_services names what is"


def reflection_servicers(services: Sequence[str]) -> dict[str, ReflectionServicer]:
    """A servicer per reflection version, by service name, each listing `services` and the
    reflection services themselves."""
    listed = (*services, *REFLECTION_SERVICE_NAMES)
    return {
        REFLECTION_SERVICE_NAMES[0]: ReflectionServicer(listed, reflection_pb2),
        REFLECTION_SERVICE_NAMES[1]: ReflectionServicer(listed, reflection_v1alpha_pb2),
    }


def _with_imports(file: FileDescriptor) -> list[bytes]:
    """`file` and every file it imports, transitively, each a serialized FileDescriptorProto
    (the file asked for first): clients build their pool from the answer alone."""
    ordered: list[FileDescriptor] = []
    pending = [file]
    while pending:
        current = pending.pop()
        if current in ordered:
            continue
        ordered.append(current)
        pending.extend(current.dependencies)
    serialized = []
    for descriptor in ordered:
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor.CopyToProto(proto)
        serialized.append(proto.SerializeToString())
    return serialized
