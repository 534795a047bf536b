"""`ferroserve.features.v1.FeatureService`: the status of each model version's feature store and
reloading its snapshots from their files on request (`ferroserve features status|load`). Served
by the Python server behind the native front end, which forwards these calls unchanged. Not
behind access control yet (docs/features.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc

from ferroserve import _core
from ferroserve._proto import feature_service_pb2 as pb
from ferroserve.errors import (
    ConfigError,
    FerroserveError,
    InvalidInputError,
    ModelNotFoundError,
    status_code_for,
)
from ferroserve.features.redis_counters import REDIS_COUNTERS
from ferroserve.features.store import ModelFeatures
from ferroserve.metrics.histogram import histogram_quantile
from ferroserve.registry.registry import ModelRegistry
from ferroserve.runtime.model import ServedModel
from ferroserve.server.versions import every_version, named_versions

FEATURE_SERVICE_NAME = "ferroserve.features.v1.FeatureService"
Context = grpc.aio.ServicerContext[Any, Any]


class NoFeatures(FerroserveError):
    """The model named has no features.pbtxt (FAILED_PRECONDITION)."""


class SnapshotLoadFailed(FerroserveError):
    """A snapshot file could not be loaded; the previous snapshot keeps serving
    (FAILED_PRECONDITION: the request was valid, the file on disk is not)."""


# This service's own errors; everything else maps as everywhere (errors.status_code_for).
_OWN_CODES: tuple[tuple[type[FerroserveError], grpc.StatusCode], ...] = (
    (NoFeatures, grpc.StatusCode.FAILED_PRECONDITION),
    (SnapshotLoadFailed, grpc.StatusCode.FAILED_PRECONDITION),
)


def _status_code(error: FerroserveError) -> grpc.StatusCode:
    for error_type, code in _OWN_CODES:
        if isinstance(error, error_type):
            return code
    return status_code_for(error)


def _features_of(model: ServedModel) -> ModelFeatures:
    if model.features is None:
        raise NoFeatures(
            f"model '{model.name}' version {model.version} has no features.pbtxt, so it has no "
            "feature store to show or load; `ferroserve features status` lists the models that "
            "have one"
        )
    return model.features


def version_status(model: ServedModel, features: ModelFeatures) -> pb.VersionFeatures:
    """One version's store (`FeatureStore.status`), lookup counts and latencies
    (`FeaturePlan.stats`) and Redis store (`FeatureStore.redis_stats`)."""
    counts = features.plan.stats()["views"]
    sources = {source.view: str(source.path) for source in features.declaration.sources}
    settings = features.declaration.redis
    redis_views = frozenset(settings.views) if settings is not None else frozenset()
    entry = pb.VersionFeatures(
        model=model.name,
        version=str(model.version),
        reloads=features.reloads,
        reload_failures=features.reload_failures,
        last_error=features.last_error or "",
    )
    for view in features.status():
        name = view["view"]
        lookups = counts.get(name, {})
        status = entry.views.add(
            view=name,
            source=sources.get(name, ""),
            loaded=bool(view["loaded"]),
            generation=int(view["generation"]),
            rows=int(view["rows"]),
            memory_bytes=int(view["memory_bytes"]),
            values_bytes=int(view["values_bytes"]),
            duplicate_keys=int(view["duplicate_keys"]),
            store=pb.ViewStatus.REDIS if name in redis_views else pb.ViewStatus.EMBEDDED,
            latency=lookup_latency(*lookups.get("latency", ((), 0))),
            **{key: int(lookups.get(key, 0)) for key in _LOOKUP_FIELDS},
        )
        if view["oldest_us"] is not None:
            status.oldest_event_us = int(view["oldest_us"])
        if view["newest_us"] is not None:
            status.newest_event_us = int(view["newest_us"])
    stats = features.store.redis_stats()
    if settings is not None and stats is not None:
        entry.redis.CopyFrom(redis_status(settings.address, stats))
    return entry


_LOOKUP_FIELDS = ("lookups", "hits", "misses", "stale", "unavailable", "rejected")


def lookup_latency(counts: Sequence[int], sum_ns: int) -> pb.LookupLatency:
    """A view's latency histogram (per bucket of `_core.LOOKUP_BUCKETS_NS`, a last +Inf one)
    as count, mean, p50 and p99 since the version loaded."""
    calls = sum(counts)
    if not calls:
        return pb.LookupLatency()
    bounds_s = [bound / 1e9 for bound in _core.LOOKUP_BUCKETS_NS]
    return pb.LookupLatency(
        count=calls,
        mean_seconds=sum_ns / 1e9 / calls,
        p50_seconds=histogram_quantile(0.5, bounds_s, counts) or 0.0,
        p99_seconds=histogram_quantile(0.99, bounds_s, counts) or 0.0,
    )


def redis_status(address: str, stats: dict[str, Any]) -> pb.RedisStoreStatus:
    """The Redis store's state and counters; `address` is the URL without its credentials."""
    status = pb.RedisStoreStatus(address=address)
    for key in REDIS_COUNTERS:
        setattr(status, key, int(stats[key]))
    if stats["connected"] is not None:
        status.connected = bool(stats["connected"])
    if stats["last_answer_us"] is not None:
        status.last_answer_us = int(stats["last_answer_us"])
    failure = stats["last_failure"]
    if failure is not None:
        status.last_error_kind = failure["kind"]
        status.last_error = failure["message"]
        status.last_error_us = int(failure["at_us"])
    return status


class FeatureService:
    """The servicer; runs on the event loop, reloads in worker threads."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    async def Status(
        self, request: pb.FeatureStatusRequest, context: Context
    ) -> pb.FeatureStatusResponse:
        response = pb.FeatureStatusResponse()
        try:
            if request.model:
                for model in named_versions(self._registry, request.model, request.version):
                    response.models.append(version_status(model, _features_of(model)))
                return response
            if request.version:
                raise InvalidInputError("name the model (`model`) whose version you ask for")
            for model in every_version(self._registry):
                if model.features is not None:
                    response.models.append(version_status(model, model.features))
        except FerroserveError as error:
            await context.abort(_status_code(error), str(error))
        return response

    async def Reload(
        self, request: pb.FeatureReloadRequest, context: Context
    ) -> pb.FeatureReloadResponse:
        try:
            if not request.model:
                raise InvalidInputError("name the model whose snapshots to load (`model`)")
            targets = [
                (model, _features_of(model))
                for model in named_versions(self._registry, request.model, request.version)
            ]
            views = list(request.views)
            for model, features in targets:
                unknown = [view for view in views if view not in features.plan.views]
                if unknown:
                    raise ModelNotFoundError(
                        f"model '{model.name}' version {model.version} has no view "
                        f"{', '.join(repr(v) for v in unknown)}; its views: "
                        f"{', '.join(features.plan.views)}"
                    )
                redis = features.declaration.redis
                in_redis = [view for view in views if redis is not None and view in redis.views]
                if in_redis:
                    raise InvalidInputError(
                        f"model '{model.name}' view '{in_redis[0]}' is stored in Redis, not "
                        "loaded from a file: write its rows with `ferroserve features load "
                        f"--model {model.name} --view {in_redis[0]} --file ROWS "
                        "--model-repository DIR`"
                    )
            response = pb.FeatureReloadResponse()
            for model, features in targets:
                response.reloads.append(await _reload(model, features, views or None))
        except FerroserveError as error:
            await context.abort(_status_code(error), str(error))
        return response


async def _reload(
    model: ServedModel, features: ModelFeatures, views: list[str] | None
) -> pb.VersionReload:
    """One version's reload in a worker thread (file I/O and conversion); a failure leaves its
    previous snapshot serving and says so."""
    try:
        result = await asyncio.to_thread(features.reload, views)
    except ConfigError as error:
        generation = max((int(v["generation"]) for v in features.status()), default=0)
        raise SnapshotLoadFailed(
            f"{error} (model '{model.name}' version {model.version} keeps serving its previous "
            f"snapshot, generation {generation}; fix the file and load again)"
        ) from error
    return pb.VersionReload(
        model=model.name,
        version=str(model.version),
        views=list(result.views),
        generation=result.generation,
        rows=result.rows,
        seconds=result.seconds,
    )
