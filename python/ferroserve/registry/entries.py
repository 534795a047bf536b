"""The registry's bookkeeping per model and version: Triton's states, each version's status
and why, the versions an operator pinned or held off, and which versions to keep loaded.
Plain data; `ModelRegistry` (registry.py) changes it on the event loop.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from ferroserve.registry.repository import ModelSource
from ferroserve.registry.routing import Routing
from ferroserve.runtime.model import ServedModel


class State(enum.Enum):
    """Triton's model states, as RepositoryIndex reports them."""

    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


class IndexRow(NamedTuple):
    """One version as RepositoryIndex reports it (version "" and the reason when no version of
    the model could even be tried)."""

    name: str
    version: str
    state: str
    """A `State` value."""
    reason: str


@dataclass(slots=True)
class VersionStatus:
    """One version's state and, when it is not READY, why."""

    state: State
    reason: str = ""
    model: ServedModel | None = None
    wanted: bool = True
    """False once unloaded on purpose (left the version policy, UnloadVersion): readiness
    does not wait for it."""


@dataclass(slots=True)
class ModelEntry:
    """Every version the registry knows of one model."""

    versions: dict[int, VersionStatus] = field(default_factory=dict)
    reason: str = ""
    """Why the model as a whole failed (bad config), when no version could even be tried."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pinned: set[int] = field(default_factory=set)
    """Versions LoadVersion (or a push the policy does not select) keeps loaded beside the
    policy's."""
    held_off: set[int] = field(default_factory=set)
    """Versions UnloadVersion took out, kept out until LoadVersion or RepositoryModelLoad."""
    routing: Routing = field(default_factory=Routing)
    """Its aliases and traffic policy in force (routing.json as last read or written)."""


def selection(source: ModelSource, entry: ModelEntry) -> list[int]:
    """The versions to keep loaded: the policy's, plus pinned ones still on disk, less held-off
    ones, plus every version the model's aliases and traffic policy route to."""
    available = set(source.available)
    chosen = (set(source.versions) | (entry.pinned & available)) - entry.held_off
    return sorted(chosen | (entry.routing.needed_versions() & available))


def entry_rows(name: str, entry: ModelEntry) -> list[IndexRow]:
    """A model's rows as RepositoryIndex lists them."""
    if not entry.versions:
        return [IndexRow(name, "", State.UNAVAILABLE.value, entry.reason)]
    return [
        IndexRow(name, str(version), status.state.value, status.reason)
        for version, status in sorted(entry.versions.items())
    ]
