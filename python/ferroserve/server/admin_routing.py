"""The routing RPCs of `ferroserve.admin.v1.AdminService` (`ferroserve alias|rollback|traffic`):
point, delete and roll back aliases, and set the traffic policy. Each is a change of the model's
routing.json (registry/routing.py says what is allowed) that the registry applies under the
model's lock, loading and warming up what the new routing needs before it takes effect
(`ModelRegistry.change_routing`). The `AdminService` servicer (admin.py) inherits these."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc

from ferroserve._proto import admin_pb2 as pb
from ferroserve.errors import (
    FailedPreconditionError,
    FerroserveError,
    ModelNotFoundError,
    status_code_for,
)
from ferroserve.registry.registry import ModelRegistry
from ferroserve.registry.repository import ModelSource
from ferroserve.registry.routing import PRODUCTION, Routing, Share, check_alias_name
from ferroserve.registry.writer import check_model_name

Context = grpc.aio.ServicerContext[Any, Any]


class RoutingAdmin:
    """SetAlias, DeleteAlias, Rollback and SetTraffic, on the event loop."""

    _registry: ModelRegistry

    async def SetAlias(self, request: pb.SetAliasRequest, context: Context) -> pb.SetAliasResponse:
        previous: list[int] = []

        def change(source: ModelSource) -> Routing:
            check_alias_name(request.alias)
            _check_on_disk(source, request.version)
            current = source.routing.aliases.get(request.alias)
            previous[:] = [0 if current is None else current.version]
            return source.routing.with_alias(request.alias, request.version)

        routing = await self._change(request.model, change, context)
        return pb.SetAliasResponse(
            routing=routing_message(request.model, routing), previous_version=previous[0]
        )

    async def DeleteAlias(
        self, request: pb.DeleteAliasRequest, context: Context
    ) -> pb.DeleteAliasResponse:
        def change(source: ModelSource) -> Routing:
            check_alias_name(request.alias)
            return source.routing.without_alias(request.alias)

        routing = await self._change(request.model, change, context)
        return pb.DeleteAliasResponse(routing=routing_message(request.model, routing))

    async def Rollback(self, request: pb.RollbackRequest, context: Context) -> pb.RollbackResponse:
        alias = request.alias or PRODUCTION
        moved: list[int] = []

        def change(source: ModelSource) -> Routing:
            check_alias_name(alias)
            routing = source.routing.rolled_back(alias)
            before, after = source.routing.aliases[alias].version, routing.aliases[alias].version
            if after not in source.available:
                raise FailedPreconditionError(
                    f"alias '{alias}' would roll back from version {before} to version {after}, "
                    "which is no longer in the repository; point it at a version with "
                    f"`ferroserve alias MODEL {alias} VERSION`"
                )
            moved[:] = [before, after]
            return routing

        routing = await self._change(request.model, change, context)
        return pb.RollbackResponse(
            routing=routing_message(request.model, routing),
            from_version=moved[0],
            to_version=moved[1],
        )

    async def SetTraffic(
        self, request: pb.SetTrafficRequest, context: Context
    ) -> pb.SetTrafficResponse:
        def change(source: ModelSource) -> Routing:
            split = _shares(request.split, source)
            shadows = _shares(request.shadow, source)
            return source.routing.with_traffic(split, shadows)

        routing = await self._change(request.model, change, context)
        return pb.SetTrafficResponse(routing=routing_message(request.model, routing))

    async def _change(
        self, model: str, change: Callable[[ModelSource], Routing], context: Context
    ) -> Routing:
        try:
            check_model_name(model)
            return await self._registry.change_routing(model, change)
        except FerroserveError as error:
            await context.abort(status_code_for(error), str(error))
            raise
        except OSError as error:  # the repository's disk refused routing.json
            await context.abort(
                grpc.StatusCode.INTERNAL, f"writing the model's routing.json failed: {error}"
            )
            raise


def _check_on_disk(source: ModelSource, version: int) -> None:
    if version not in source.available:
        raise ModelNotFoundError(
            f"model '{source.name}' has no version {version} in the repository "
            f"(versions: {list(source.available)})"
        )


def _shares(shares: Iterable[pb.TrafficShare], source: ModelSource) -> tuple[Share, ...]:
    """The request's shares, version targets written canonically ("03" -> "3") and checked
    against the repository; alias targets are checked by `Routing.with_traffic`."""
    result = []
    for share in shares:
        target = share.target.strip()
        if target.isdigit():
            _check_on_disk(source, int(target))
            target = str(int(target))
        result.append(Share(target, share.percent))
    return tuple(result)


def routing_message(model: str, routing: Routing) -> pb.ModelRouting:
    """A model's routing as the API answers it."""
    message = pb.ModelRouting(model=model)
    for name, alias in sorted(routing.aliases.items()):
        message.aliases.add(
            name=name, version=alias.version, history=alias.history, updated=alias.updated
        )
    for shares, field in ((routing.split, message.split), (routing.shadows, message.shadow)):
        for share in shares:
            field.add(
                target=share.target,
                percent=share.percent,
                version=routing.version_of(share.target) or 0,
            )
    return message
