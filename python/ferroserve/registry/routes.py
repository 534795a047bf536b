"""What a model's requests go to, rebuilt by the registry on every change: the ready version
behind each version number and alias, the weighted targets of requests that name no version
(the traffic split, else the `production` alias, else the newest ready version) and the shadow
targets that get copies. The Python server resolves requests through it, and the native front
end gets the same table (server/app.py), so both paths route alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ferroserve.errors import FerroserveError, ModelNotFoundError, UnavailableError
from ferroserve.registry.entries import ModelEntry, State
from ferroserve.registry.routing import PRODUCTION, Routing, Share
from ferroserve.runtime.model import ServedModel


@dataclass(slots=True, frozen=True)
class Target:
    """A ready version a request can go to, and how it got there."""

    model: ServedModel
    alias: str
    """The alias it was reached through ("" for a version number or the newest version)."""
    percent: int
    """Its share of the requests that name no version (or, for a shadow, the share copied)."""


@dataclass(slots=True, frozen=True)
class Routed:
    """Where one inference request goes."""

    target: Target
    copies: tuple[Target, ...] = ()
    """Shadows that get a copy (requests following the traffic policy only)."""


@dataclass(slots=True, frozen=True)
class ModelRoutes:
    """One model's routes while at least one version is ready."""

    versions: dict[int, ServedModel]
    """Every ready version."""
    aliases: dict[str, ServedModel]
    """Every alias whose target is ready."""
    default: tuple[Target, ...]
    """Where requests with an empty model_version go, by weight; empty when none of the
    policy's targets is ready."""
    shadows: tuple[Target, ...]
    """Versions that get a copy of that share of those requests (answers discarded)."""

    def named(self, label: str) -> Target | None:
        """The target of a version number or alias label, if ready."""
        if label.isdigit():
            model = self.versions.get(int(label))
            return None if model is None else Target(model, "", 100)
        model = self.aliases.get(label)
        return None if model is None else Target(model, label, 100)

    def choose(self, draw: float) -> Target | None:
        """The default target for a uniform `draw` in [0, 1): each with its weight's share."""
        total = sum(target.percent for target in self.default)
        point = draw * total
        for target in self.default:
            if point < target.percent:
                return target
            point -= target.percent
        return self.default[-1] if self.default else None

    def copies(self, target: Target, draw: Callable[[], float]) -> tuple[Target, ...]:
        """The shadows a request following the policy, sent to `target`, is copied to: each
        with its percentage (`draw` uniform in [0, 1)), never `target`'s own version."""
        return tuple(
            shadow
            for shadow in self.shadows
            if shadow.model is not target.model and draw() * 100 < shadow.percent
        )

    def primary(self) -> Target | None:
        """The default target with the largest share (the first on a tie): what metadata and
        config calls without a version describe."""
        return max(self.default, key=lambda target: target.percent, default=None)


class PublishedRoutes:
    """Every model's routes as the registry last published them, and the lookups of the
    services: which model answers a request, a metadata call, a report."""

    def __init__(self, entries: Mapping[str, ModelEntry]) -> None:
        """`entries`: the registry's bookkeeping, read to word why a lookup fails."""
        self._entries = entries
        self._routes: dict[str, ModelRoutes] = {}

    def publish(self, name: str, entry: ModelEntry | None) -> bool:
        """Rebuilds one model's routes from its entry; whether any version is ready."""
        ready = {}
        if entry is not None:
            for version, status in entry.versions.items():
                if status.model is not None and status.state is State.READY:
                    ready[version] = status.model
        routes = None if entry is None else build_routes(ready, entry.routing)
        if routes is None:
            self._routes.pop(name, None)
        else:
            self._routes[name] = routes
        return bool(ready)

    def resolve(self, name: str, version: str = "") -> ServedModel:
        """The ready model a version number or alias names; for no version, the traffic
        policy's main target (the one with the largest share). NOT_FOUND for unknown names,
        versions or aliases, UNAVAILABLE for known ones that are not ready."""
        routes = self._routes.get(name)
        target = None
        if routes is not None:
            target = routes.named(version) if version else routes.primary()
        if target is None:
            raise unroutable(name, version, self._entries.get(name))
        return target.model

    def route(self, name: str, version: str = "") -> Routed:
        """Where one inference request goes: the version or alias it names, else a target
        of the traffic policy drawn by its weight, with the shadows drawn for it. Errors as
        `resolve`."""
        routes = self._routes.get(name)
        target = None
        if routes is not None:
            target = routes.named(version) if version else routes.choose(random.random())
        if routes is None or target is None:
            raise unroutable(name, version, self._entries.get(name))
        if version or not routes.shadows:
            return Routed(target)
        return Routed(target, routes.copies(target, random.random))

    def models(self) -> dict[str, ModelRoutes]:
        """Every model with a ready version -> its routes."""
        return dict(self._routes)

    def loaded(self, name: str, version: str) -> ServedModel | None:
        """The ready model of one explicit version number, or None (no error: for
        reporting)."""
        routes = self._routes.get(name)
        if routes is None or not version.isdigit():
            return None
        return routes.versions.get(int(version))

    def ready_versions(self, name: str) -> list[ServedModel]:
        """The model's ready versions, by number."""
        routes = self._routes.get(name)
        return [] if routes is None else [m for _, m in sorted(routes.versions.items())]

    def is_ready(self, name: str, version: str = "") -> bool:
        """Whether a request for `name` / `version` (a number, an alias or "") has a ready
        target."""
        routes = self._routes.get(name)
        if routes is None:
            return False
        return (routes.named(version) if version else routes.primary()) is not None


def build_routes(ready: dict[int, ServedModel], routing: Routing) -> ModelRoutes | None:
    """The routes of a model with `ready` versions under `routing`; None when none is ready.
    Policy targets that are not ready get no traffic (the others share it by their weights);
    they are loaded before a policy can name them, so that only happens after a failure."""
    if not ready:
        return None
    aliases = {
        name: ready[alias.version]
        for name, alias in routing.aliases.items()
        if alias.version in ready
    }
    if routing.split:
        default = _targets(routing.split, ready, routing)
    elif PRODUCTION in routing.aliases:
        default = _targets((Share(PRODUCTION, 100),), ready, routing)
    else:
        default = (Target(ready[max(ready)], "", 100),)
    shadows = _targets(routing.shadows, ready, routing)
    return ModelRoutes(dict(ready), aliases, default, shadows)


def _targets(
    shares: tuple[Share, ...], ready: dict[int, ServedModel], routing: Routing
) -> tuple[Target, ...]:
    targets = []
    for share in shares:
        version = routing.version_of(share.target)
        if version in ready and share.percent > 0:
            alias = "" if share.target.isdigit() else share.target
            targets.append(Target(ready[version], alias, share.percent))
    return tuple(targets)


def unroutable(name: str, label: str, entry: ModelEntry | None) -> FerroserveError:
    """Why a request for `name` / `label` (a version, an alias or "") has no ready target:
    NOT_FOUND for an unknown model, version or alias (naming the model's aliases),
    UNAVAILABLE for a known one that is not ready, saying which state it is in."""
    if entry is None:
        return ModelNotFoundError(f"model '{name}' is not in the repository")
    routing = entry.routing
    through = ""
    if label and not label.isdigit():
        alias = routing.aliases.get(label)
        if alias is None:
            known = ", ".join(f"{a} -> {v.version}" for a, v in sorted(routing.aliases.items()))
            return ModelNotFoundError(
                f"model '{name}' has no version or alias '{label}' (aliases: {known or 'none'})"
            )
        through, label = f"alias '{label}' points at ", str(alias.version)
    if label:
        status = entry.versions.get(int(label))
        if status is None:
            versions = sorted(entry.versions)
            if through:
                return ModelNotFoundError(
                    f"model '{name}': {through}version {label}, which it does not have "
                    f"(known: {versions})"
                )
            return ModelNotFoundError(f"model '{name}' has no version {label} (known: {versions})")
        return UnavailableError(
            f"model '{name}': {through}version {label}, which is {status.state.value}"
            + (f": {status.reason}" if status.reason else "")
        )
    states = (
        ", ".join(f"{v}: {s.state.value}" for v, s in sorted(entry.versions.items()))
        or entry.reason
        or "no versions"
    )
    if routing.split or PRODUCTION in routing.aliases:
        policy = routing.policy_text() if routing.split else f"alias '{PRODUCTION}'"
        return UnavailableError(
            f"model '{name}' has no ready version for requests without a version: its "
            f"traffic goes to {policy} ({states})"
        )
    return UnavailableError(f"model '{name}' has no ready version ({states})")
