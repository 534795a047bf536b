"""`<model>/routing.json`: a model's aliases (each with the history of its earlier targets) and
its traffic policy (a weighted split of requests that name no version, and shadow copies),
and the rules that change them. Kept beside config.pbtxt so it survives restarts and every
server reading the repository sees the same state; Triton ignores files in a model folder
other than config.pbtxt, so the repository still loads there unchanged. Written whole and
atomically (temp file, fsync, rename, fsync of the folder): a reader sees the old state or
the new one. Plain data and pure functions; the registry applies them under its model lock.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferroserve.errors import (
    ConfigError,
    FailedPreconditionError,
    FerroserveError,
    InvalidInputError,
    ModelNotFoundError,
)

ROUTING_FILE = "routing.json"
FORMAT = 1
PRODUCTION = "production"
"""The alias requests without a version follow when the model has no traffic split."""
MAX_HISTORY = 50
"""Earlier targets kept per alias (rollback steps); older ones are forgotten."""
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def check_alias_name(name: str) -> None:
    """InvalidInputError unless `name` can be an alias: a letter, then up to 63 letters,
    digits, '_', '.' or '-' (never a number, so a label is either a version or an alias)."""
    if not _ALIAS.fullmatch(name):
        raise InvalidInputError(
            f"alias {name[:80]!r} is not usable: an alias starts with a letter and has up to 64 "
            "letters, digits, '_', '.' or '-' (e.g. production, canary, v2-candidate)"
        )


@dataclass(slots=True, frozen=True)
class Alias:
    """Where one alias points, and where it pointed before."""

    version: int
    history: tuple[int, ...] = ()
    """Earlier targets, oldest first: a rollback returns to the last one."""
    updated: str = ""
    """RFC 3339, UTC, when it last moved."""


@dataclass(slots=True, frozen=True)
class Share:
    """One target of the traffic policy and its whole-number percentage."""

    target: str
    """An alias name or a version number (as text)."""
    percent: int


@dataclass(slots=True, frozen=True)
class Routing:
    """A model's aliases and traffic policy; every change returns a new one."""

    aliases: Mapping[str, Alias] = field(default_factory=dict)
    split: tuple[Share, ...] = ()
    """Requests with an empty model_version, by weight; empty: the `production` alias when
    set, else the newest ready version."""
    shadows: tuple[Share, ...] = ()
    """Targets that get a copy of that percentage of those requests; answers discarded."""

    def version_of(self, target: str) -> int | None:
        """The version an alias or version label names (None: an unknown alias)."""
        if target.isdigit():
            return int(target)
        alias = self.aliases.get(target)
        return None if alias is None else alias.version

    def needed_versions(self) -> set[int]:
        """Versions that must stay loaded: every alias's target, every policy target."""
        needed = {alias.version for alias in self.aliases.values()}
        for share in (*self.split, *self.shadows):
            version = self.version_of(share.target)
            if version is not None:
                needed.add(version)
        return needed

    def routed_by(self, version: int) -> str:
        """What routes to `version`, in words ("" for nothing): its aliases, and the traffic
        policy when one of its targets names it."""
        parts = [f"alias {name}" for name in self.aliases_of(version)]
        if any(self.version_of(s.target) == version for s in (*self.split, *self.shadows)):
            parts.append(f"the traffic policy ({self.policy_text()})")
        return " and ".join(parts)

    def aliases_of(self, version: int) -> list[str]:
        """The aliases pointing at `version`, by name."""
        return sorted(name for name, alias in self.aliases.items() if alias.version == version)

    def with_alias(self, name: str, version: int) -> Routing:
        """`name` pointed at `version`; its previous target joins its history."""
        check_alias_name(name)
        aliases = dict(self.aliases)
        current = aliases.get(name)
        history: tuple[int, ...] = ()
        if current is not None:
            if current.version == version:
                return self
            history = (*current.history, current.version)[-MAX_HISTORY:]
        aliases[name] = Alias(version, history, _now())
        return replace(self, aliases=aliases)

    def without_alias(self, name: str) -> Routing:
        """`name` removed with its history. NOT_FOUND for an unknown alias; FAILED_PRECONDITION
        while the traffic policy uses it."""
        self._known(name)
        if any(share.target == name for share in (*self.split, *self.shadows)):
            raise FailedPreconditionError(
                f"alias '{name}' is in the traffic policy ({self.policy_text()}); change the "
                "policy first (`ferroserve traffic MODEL ...` or `--clear`)"
            )
        aliases = dict(self.aliases)
        del aliases[name]
        return replace(self, aliases=aliases)

    def rolled_back(self, name: str) -> Routing:
        """`name` returned to its previous target (which leaves its history). NOT_FOUND for an
        unknown alias; FAILED_PRECONDITION when it has no earlier target."""
        alias = self._known(name)
        if not alias.history:
            raise FailedPreconditionError(
                f"alias '{name}' (version {alias.version}) has no earlier target to roll back "
                f"to; point it at a version with `ferroserve alias MODEL {name} VERSION`"
            )
        aliases = dict(self.aliases)
        aliases[name] = Alias(alias.history[-1], alias.history[:-1], _now())
        return replace(self, aliases=aliases)

    def with_traffic(self, split: tuple[Share, ...], shadows: tuple[Share, ...]) -> Routing:
        """The policy replaced (both empty: the default again). INVALID_ARGUMENT for weights
        that are not whole percentages summing to 100 or a target named twice; NOT_FOUND for
        an alias that does not exist. Version targets are checked by the registry."""
        _check_shares(split, "weight")
        if split and sum(share.percent for share in split) != 100:
            total = sum(share.percent for share in split)
            raise InvalidInputError(
                f"the traffic weights sum to {total}, not 100 ({_text(split)}): give whole "
                "percentages that add up to 100, e.g. production=90 canary=10"
            )
        _check_shares(shadows, "shadow percentage")
        for share in shadows:
            if share.percent == 0:
                raise InvalidInputError(
                    f"shadow {share.target}={share.percent}: mirror 1-100 percent, or leave "
                    "the target out"
                )
        for share in (*split, *shadows):
            if not share.target.isdigit():
                check_alias_name(share.target)
                self._known(share.target)
        return replace(self, split=split, shadows=shadows)

    def policy_text(self) -> str:
        """The policy as the CLI takes it: `production=90 canary=10 shadow canary=5`."""
        parts = [_text(self.split) or "default"]
        if self.shadows:
            parts.append(f"shadow {_text(self.shadows)}")
        return " ".join(parts)

    def _known(self, name: str) -> Alias:
        alias = self.aliases.get(name)
        if alias is None:
            known = ", ".join(sorted(self.aliases)) or "none"
            raise ModelNotFoundError(f"the model has no alias '{name}' (aliases: {known})")
        return alias

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "aliases": {
                name: {
                    "version": alias.version,
                    "history": list(alias.history),
                    "updated": alias.updated,
                }
                for name, alias in sorted(self.aliases.items())
            },
            "traffic": {
                "split": {share.target: share.percent for share in self.split},
                "shadow": {share.target: share.percent for share in self.shadows},
            },
        }
        return json.dumps(data, indent=2) + "\n"


def _check_shares(shares: tuple[Share, ...], what: str) -> None:
    seen: set[str] = set()
    for share in shares:
        if not share.target:
            raise InvalidInputError(f"a traffic {what} names no target: give ALIAS=N or VERSION=N")
        if not 0 <= share.percent <= 100:
            raise InvalidInputError(
                f"{what} {share.target}={share.percent} is not a whole percentage from 0 to 100"
            )
        if share.target in seen:
            raise InvalidInputError(f"the traffic policy names '{share.target}' twice")
        seen.add(share.target)


def _text(shares: tuple[Share, ...]) -> str:
    return " ".join(f"{share.target}={share.percent}" for share in shares)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_routing(text: str, where: str) -> Routing:
    """A routing.json's content; ConfigError naming `where` when it is not one."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format {FORMAT} routing file")
        aliases = {}
        for name, entry in dict(data.get("aliases", {})).items():
            check_alias_name(name)
            aliases[name] = Alias(
                _version(entry["version"]),
                tuple(_version(v) for v in entry.get("history", ())),
                str(entry.get("updated", "")),
            )
        traffic = dict(data.get("traffic", {}))
        split = tuple(Share(str(t), _percent(p)) for t, p in dict(traffic.get("split", {})).items())
        shadows = tuple(
            Share(str(t), _percent(p)) for t, p in dict(traffic.get("shadow", {})).items()
        )
        return Routing(aliases).with_traffic(split, shadows)
    except (ValueError, KeyError, TypeError, FerroserveError) as error:
        raise ConfigError(f"{where} is not a valid routing file: {error}") from error


def _version(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{value!r} is not a version number")
    return value


def _percent(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole percentage")
    return value


def read_routing(model_dir: Path) -> Routing:
    """The model's routing (empty when it has no routing.json); ConfigError when it does not
    parse (it is written atomically, so that is a hand edit gone wrong)."""
    path = model_dir / ROUTING_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Routing()
    return parse_routing(text, str(path))


def write_routing(model_dir: Path, routing: Routing) -> None:
    """Replaces the model's routing.json atomically and durably (blocking)."""
    path = model_dir / ROUTING_FILE
    temporary = model_dir / f".{ROUTING_FILE}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        with temporary.open("wb") as file:
            file.write(routing.to_json().encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fd = os.open(model_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
