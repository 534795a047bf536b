"""The ready model versions an operating call names (`model`, optional `version`), for the
services that act on loaded versions (features, drift)."""

from __future__ import annotations

from ferroserve.registry.registry import ModelRegistry
from ferroserve.runtime.model import ServedModel


def named_versions(registry: ModelRegistry, model: str, version: str) -> list[ServedModel]:
    """The ready versions a request names: `version` of `model`, or every ready version of it.
    ModelNotFoundError for an unknown model or version, UnavailableError for a known one that
    is not ready (the registry's words)."""
    if version:
        return [registry.routes.resolve(model, version)]
    ready = registry.routes.ready_versions(model)
    if not ready:
        registry.routes.resolve(model)  # raises, saying why nothing is ready
    return ready


def every_version(registry: ModelRegistry) -> list[ServedModel]:
    """Every ready version of every model, by model then version."""
    models = registry.routes.models()
    return [
        routes.versions[version]
        for _, routes in sorted(models.items())
        for version in sorted(routes.versions)
    ]
