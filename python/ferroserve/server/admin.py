"""`ferroserve.admin.v1.AdminService`: deployers push model versions into the running server,
list them, and load or unload single versions (`ferroserve push|versions|load|unload`); the
routing RPCs (aliases, rollback, traffic policy) are admin_routing.py's.
Served by the Python server behind the native front end, which forwards these calls (the
client-streamed upload included) unchanged. Uploads go to disk chunk by chunk in worker
threads (registry/writer.py); the registry puts the version in place, loads and warms it up
(`ModelRegistry.add_version`). Behind a bearer token when the server has one (auth.py)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from ferroserve._proto import admin_pb2 as pb
from ferroserve.config import parse_config, read_config
from ferroserve.errors import (
    FerroserveError,
    InvalidInputError,
    ModelNotFoundError,
    ResourceExhaustedError,
    status_code_for,
)
from ferroserve.registry.entries import VersionStatus
from ferroserve.registry.record import VersionRecord, read_record
from ferroserve.registry.registry import ModelRegistry
from ferroserve.registry.routing import Routing, check_alias_name, read_routing
from ferroserve.registry.writer import (
    PushConflictError,
    StagedVersion,
    check_model_name,
)
from ferroserve.server.admin_routing import RoutingAdmin, routing_message
from ferroserve.server.limits import (
    DEFAULT_MAX_PUSH_BYTES,
    DEFAULT_MAX_PUSHES,
    DEFAULT_PUSH_IDLE_S,
)

ADMIN_SERVICE_NAME = "ferroserve.admin.v1.AdminService"
__all__ = ["ADMIN_SERVICE_NAME", "DEFAULT_MAX_PUSH_BYTES", "AdminService"]
Context = grpc.aio.ServicerContext[Any, Any]
NOT_LOADED = "NOT_LOADED"


class PushIdleError(FerroserveError):
    """A push whose client sent nothing for too long (DEADLINE_EXCEEDED)."""


class ConfigChangeError(FerroserveError):
    """A push whose config.pbtxt differs from the model's (FAILED_PRECONDITION)."""


def _status_code(error: FerroserveError) -> grpc.StatusCode:
    if isinstance(error, PushIdleError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(error, ConfigChangeError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, PushConflictError):
        return grpc.StatusCode.ABORTED
    return status_code_for(error)


class AdminService(RoutingAdmin):
    """The servicer; runs on the event loop, file work in worker threads."""

    def __init__(
        self,
        registry: ModelRegistry,
        max_push_bytes: int,
        max_pushes: int = DEFAULT_MAX_PUSHES,
        push_idle_s: float = DEFAULT_PUSH_IDLE_S,
    ) -> None:
        self._registry = registry
        self._root = registry.repository.root
        self._max_push_bytes = max_push_bytes
        self._max_pushes = max_pushes
        self._push_idle_s = push_idle_s
        self._pushes = 0
        """Pushes in progress: each holds a staging folder, an open file and a worker thread."""

    async def PushVersion(
        self, requests: AsyncIterator[pb.PushVersionRequest], context: Context
    ) -> pb.PushVersionResponse:
        if self._pushes >= self._max_pushes:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self._pushes} pushes are in progress, the server's limit "
                "(--admin-max-concurrent-pushes); retry when one has finished",
            )
        self._pushes += 1
        try:
            return await self._push(_paced(requests, self._push_idle_s), context)
        finally:
            self._pushes -= 1

    async def _push(
        self, requests: AsyncIterator[pb.PushVersionRequest], context: Context
    ) -> pb.PushVersionResponse:
        staged: StagedVersion | None = None
        try:
            first = await anext(aiter(requests), None)
            if first is None or first.WhichOneof("part") != "header":
                raise InvalidInputError("the first message of a push must be its header")
            header = first.header
            if header.total_bytes > self._max_push_bytes:
                raise _too_large(header.total_bytes, self._max_push_bytes)
            staged = await asyncio.to_thread(self._stage, header)
            async for request in requests:
                if request.WhichOneof("part") != "chunk":
                    raise InvalidInputError("only the first message of a push is a header")
                chunk = request.chunk
                if chunk.file not in (pb.MODEL, pb.DRIFT_REFERENCE):
                    raise InvalidInputError("a chunk's file must be MODEL or DRIFT_REFERENCE")
                await asyncio.to_thread(staged.write, chunk.file == pb.DRIFT_REFERENCE, chunk.data)
            await asyncio.to_thread(staged.finish, header.notes, header.model_sha256)
            started = time.perf_counter()
            # The upload is complete: the push finishes (or fails and cleans up) even if the
            # client goes away now.
            adding = asyncio.ensure_future(self._registry.add_version(staged, header.alias))
            committed, staged = staged, None
            version, _ = await asyncio.shield(adding)
            info = await asyncio.to_thread(
                self._version_info, committed.model, version, self._status(committed.model, version)
            )
            info.aliases.extend(self._registry.routing(committed.model).aliases_of(version))
            return pb.PushVersionResponse(version=info, load_seconds=time.perf_counter() - started)
        except FerroserveError as error:
            # Clean up before answering: abort() sends the status at once, and a client that
            # looks at the repository next must not find the staging folder still there.
            await _discard(staged)
            staged = None
            await context.abort(_status_code(error), str(error))
            raise
        except OSError as error:  # the repository's disk: full, read-only, permissions
            await _discard(staged)
            staged = None
            await context.abort(
                grpc.StatusCode.INTERNAL, f"writing the version into the repository failed: {error}"
            )
            raise
        finally:  # cancelled: the client went away mid-upload
            await _discard(staged)

    def _stage(self, header: pb.PushHeader) -> StagedVersion:
        """Checks the header against the repository and opens the staging folder (blocking)."""
        check_model_name(header.model)
        if header.alias:
            check_alias_name(header.alias)
        model_dir = self._root / header.model
        pushed = "the pushed config.pbtxt"
        if model_dir.is_dir():
            current = read_config(model_dir)
            if header.config_pbtxt and parse_config(header.config_pbtxt, header.model, pushed) != (
                current
            ):
                raise ConfigChangeError(
                    f"the pushed config.pbtxt differs from model '{header.model}''s current "
                    "one, which applies to every version (Triton's layout); push without "
                    "--config, or with the same file"
                )
            filename = current.default_model_filename or "model.onnx"
            return StagedVersion(
                self._root,
                header.model,
                filename,
                self._max_push_bytes,
                reference_name=header.drift_reference_name,
            )
        config = parse_config(header.config_pbtxt, header.model, pushed)
        return StagedVersion(
            self._root,
            header.model,
            config.default_model_filename or "model.onnx",
            self._max_push_bytes,
            config_text=header.config_pbtxt,
            reference_name=header.drift_reference_name,
        )

    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: Context
    ) -> pb.ListVersionsResponse:
        response = pb.ListVersionsResponse()
        try:
            if request.model:
                check_model_name(request.model)
                names = [request.model]
            else:
                on_disk = await asyncio.to_thread(self._registry.repository.model_names)
                names = sorted(set(on_disk) | {row.name for row in self._registry.known()})
            for name in names:
                numbers = await asyncio.to_thread(self._registry.repository.version_numbers, name)
                states = self._registry.version_states(name)
                if request.model and not numbers and not states:
                    raise ModelNotFoundError(f"model '{name}' is not in the repository")
                entry = response.models.add(model=name, reason=self._registry.model_reason(name))
                routing = await self._routing(name)
                entry.routing.CopyFrom(routing_message(name, routing))
                for version in sorted(set(numbers) | set(states)):
                    info = await asyncio.to_thread(
                        self._version_info, name, version, states.get(version)
                    )
                    info.aliases.extend(routing.aliases_of(version))
                    entry.versions.append(info)
        except FerroserveError as error:
            await context.abort(_status_code(error), str(error))
        return response

    async def _routing(self, name: str) -> Routing:
        """The routing in force for a model the registry knows, else its routing.json (empty
        when it cannot be read: the model's reason says why it does not load)."""
        if self._registry.version_states(name):
            return self._registry.routing(name)
        try:
            return await asyncio.to_thread(read_routing, self._root / name)
        except FerroserveError:
            return Routing()

    async def LoadVersion(
        self, request: pb.LoadVersionRequest, context: Context
    ) -> pb.LoadVersionResponse:
        info = await self._change_version(request, self._registry.load_version, context)
        return pb.LoadVersionResponse(version=info)

    async def UnloadVersion(
        self, request: pb.UnloadVersionRequest, context: Context
    ) -> pb.UnloadVersionResponse:
        info = await self._change_version(request, self._registry.unload_version, context)
        return pb.UnloadVersionResponse(version=info)

    async def _change_version(
        self,
        request: pb.LoadVersionRequest | pb.UnloadVersionRequest,
        change: Callable[[str, int], Awaitable[object]],
        context: Context,
    ) -> pb.VersionInfo:
        """Loads or unloads one version; its listing afterwards."""
        try:
            _check_version(request.model, request.version)
            await change(request.model, request.version)
            info = await asyncio.to_thread(
                self._version_info,
                request.model,
                request.version,
                self._status(request.model, request.version),
            )
            info.aliases.extend(self._registry.routing(request.model).aliases_of(request.version))
            return info
        except FerroserveError as error:
            await context.abort(_status_code(error), str(error))
            raise

    def _status(self, model: str, version: int) -> VersionStatus | None:
        return self._registry.version_states(model).get(version)

    def _version_info(
        self, model: str, version: int, status: VersionStatus | None
    ) -> pb.VersionInfo:
        """One version as listed: the registry's state, the record's facts (blocking: reads
        the version folder)."""
        info = pb.VersionInfo(model=model, version=version, state=NOT_LOADED)
        if status is not None:
            info.state = status.state.value
            info.reason = status.reason
            if status.model is not None:
                info.provider = status.model.provider
        folder = self._root / model / str(version)
        try:
            record: VersionRecord | None = read_record(folder)
        except FerroserveError as error:
            info.reason = info.reason or str(error)
            record = None
        if record is not None:
            info.pushed = True
            info.sha256 = record.sha256
            info.size_bytes = record.size_bytes
            info.created = record.created
            info.notes = record.notes
        elif folder.is_dir():
            info.created = _mtime(folder)
            model_file = _model_file(folder)
            if model_file is not None:
                info.size_bytes = model_file.stat().st_size
        return info


async def _paced(
    requests: AsyncIterator[pb.PushVersionRequest], idle_s: float
) -> AsyncIterator[pb.PushVersionRequest]:
    """`requests`, failing with PushIdleError when the next message takes over `idle_s`: a
    client that opens a push and goes quiet does not hold its slot and folder for ever."""
    while True:
        try:
            request = await asyncio.wait_for(anext(requests), idle_s)
        except StopAsyncIteration:
            return
        except TimeoutError as error:
            raise PushIdleError(
                f"the push sent nothing for {idle_s:g} s (--admin-push-idle-secs); it was "
                "abandoned and its partial upload removed"
            ) from error
        yield request


async def _discard(staged: StagedVersion | None) -> None:
    """Removes an unfinished upload's staging folder, even if the push is being cancelled."""
    if staged is not None:
        await asyncio.shield(asyncio.to_thread(staged.discard))


def _check_version(model: str, version: int) -> None:
    check_model_name(model)
    if version < 1:
        raise InvalidInputError(f"name a version number >= 1 (got {version})")


def _too_large(size: int, limit: int) -> FerroserveError:
    return ResourceExhaustedError(
        f"the push announces {size:,} bytes, more than the server's limit of {limit:,} "
        "(ferroserve serve --admin-max-push-bytes)"
    )


def _mtime(path: Path) -> str:
    stamp = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def _model_file(folder: Path) -> Path | None:
    """The .onnx file of a version written by hand (model.onnx, else the first one)."""
    preferred = folder / "model.onnx"
    if preferred.is_file():
        return preferred
    return next(iter(sorted(folder.glob("*.onnx"))), None)
