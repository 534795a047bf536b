"""`ferroserve.drift.v1.DriftService`: the drift report of each model version that monitors drift
and resetting its windows (`ferroserve drift`). Served by the Python server behind the native
front end, which forwards these calls unchanged. Reports run the Rust statistics in a worker
thread. Not behind access control yet (docs/drift.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from ferroserve._proto import drift_service_pb2 as pb
from ferroserve.drift.tracking import ModelDrift
from ferroserve.errors import FerroserveError, InvalidInputError, status_code_for
from ferroserve.registry.registry import ModelRegistry
from ferroserve.runtime.model import ServedModel
from ferroserve.server.versions import every_version, named_versions

DRIFT_SERVICE_NAME = "ferroserve.drift.v1.DriftService"
Context = grpc.aio.ServicerContext[Any, Any]
WINDOWS = ("cumulative", "current", "last_closed")
_STATISTICS = (
    "psi",
    "jensen_shannon",
    "kolmogorov_smirnov",
    "wasserstein",
    "chi_squared",
    "chi_squared_p_value",
)


class NoDrift(FerroserveError):
    """The model named does not monitor drift (FAILED_PRECONDITION)."""


def _status_code(error: FerroserveError) -> grpc.StatusCode:
    if isinstance(error, NoDrift):
        return grpc.StatusCode.FAILED_PRECONDITION
    return status_code_for(error)


def _drift_of(model: ServedModel) -> ModelDrift:
    if model.drift is None:
        raise NoDrift(
            f"model '{model.name}' version {model.version} does not monitor drift (it has no "
            "drift.pbtxt); `ferroserve drift` lists the models that do"
        )
    return model.drift


def version_drift(model: ServedModel, report: dict[str, Any], policy: str) -> pb.VersionDrift:
    """One version's report (`ModelDrift.report`) as the service answers it."""
    entry = pb.VersionDrift(
        model=model.name,
        version=str(model.version),
        profile_id=report["profile_id"],
        errors=int(report["errors"]),
        window_policy=policy,
    )
    for name in WINDOWS:
        window = report.get(name)
        if window is None:
            continue
        judged = window["report"]
        drift = entry.windows.add(
            window=name,
            rows=int(window["rows"]),
            batches=int(window["batches"]),
            status=judged["status"],
            judged=int(judged["judged"]),
            warning=int(judged["warning"]),
            drift=int(judged["drift"]),
            index=int(window.get("index", 0)),
            opened_s=float(window.get("opened_s", 0.0)),
            closed_s=float(window.get("closed_s", 0.0)),
        )
        for column in judged["columns"]:
            statistics = column["statistics"]
            drift.columns.add(
                name=column["name"],
                values=int(column["values"]),
                verdict=column["verdict"],
                flagged_by=list(column["flagged_by"]),
                non_finite_share=float(statistics["non_finite_share"]),
                **{
                    key: float(statistics[key])
                    for key in _STATISTICS
                    if statistics[key] is not None
                },
            )
    return entry


async def _report(model: ServedModel, drift: ModelDrift) -> pb.VersionDrift:
    report = await asyncio.to_thread(drift.report)
    return version_drift(model, report, drift.declaration.window_policy)


class DriftService:
    """The servicer; runs on the event loop, computes reports in worker threads."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    async def Report(
        self, request: pb.DriftReportRequest, context: Context
    ) -> pb.DriftReportResponse:
        response = pb.DriftReportResponse()
        try:
            if request.model:
                versions = named_versions(self._registry, request.model, request.version)
                targets = [(model, _drift_of(model)) for model in versions]
            elif request.version:
                raise InvalidInputError("name the model (`model`) whose version you ask for")
            else:
                targets = [
                    (model, model.drift)
                    for model in every_version(self._registry)
                    if model.drift is not None
                ]
            for model, drift in targets:
                response.models.append(await _report(model, drift))
        except FerroserveError as error:
            await context.abort(_status_code(error), str(error))
        return response

    async def Reset(self, request: pb.DriftResetRequest, context: Context) -> pb.DriftResetResponse:
        response = pb.DriftResetResponse()
        try:
            if not request.model:
                raise InvalidInputError("name the model whose drift windows to reset (`model`)")
            versions = named_versions(self._registry, request.model, request.version)
            targets = [(model, _drift_of(model)) for model in versions]
            for model, drift in targets:
                drift.reset()
                response.reset.add(model=model.name, version=str(model.version))
        except FerroserveError as error:
            await context.abort(_status_code(error), str(error))
        return response
