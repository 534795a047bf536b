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
        return [registry.resolve(model, version)]
    ready = registry.ready_versions(model)
    if not ready:
        registry.resolve(model)  # raises, saying why nothing is ready
    return ready


def every_version(registry: ModelRegistry) -> list[ServedModel]:
    """Every ready version of every model, by model then version."""
    versions = [model for (_, label), model in registry.routes().items() if label]
    return sorted(versions, key=lambda model: (model.name, model.version))
