"""Traffic by model, alias and version, and each shadow version's comparisons, for the metrics
snapshot. Requests the native front end routes are counted in Rust (`Frontend.routed_counts`,
`Frontend.shadow_counts`); those the Python server routes are counted here, on the event loop;
the snapshot holds their sums."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ferroserve import _core
from ferroserve.registry.registry import ModelRegistry

RouteKey = tuple[str, str, str]
"""(model, alias or "", version)."""
ShadowRow = tuple[str, str, int, int, int, list[int], int]
"""(model, version, sent, failed, mismatched, per-bucket counts, sum of differences in
millionths): `_core.Frontend.shadow_counts`'s rows."""


@dataclass(slots=True)
class ShadowTally:
    """One shadow version's copies on the Python server."""

    sent: int = 0
    failed: int = 0
    """Copies with nothing to compare: the copy or the request itself failed."""
    mismatched: int = 0
    buckets: list[int] = field(
        default_factory=lambda: [0] * (len(_core.SHADOW_DIFFERENCE_BOUNDS) + 1)
    )
    sum_micros: int = 0

    def record(self, difference: float) -> None:
        """One comparison: its largest absolute difference (inf: not comparable)."""
        bucket = next(
            (i for i, bound in enumerate(_core.SHADOW_DIFFERENCE_BOUNDS) if difference <= bound),
            len(_core.SHADOW_DIFFERENCE_BOUNDS),
        )
        self.buckets[bucket] += 1
        if difference > 0:
            self.mismatched += 1
        if difference != float("inf"):
            self.sum_micros += int(difference * 1e6)


class RoutingCounter:
    """Counts routed requests and shadow copies; `snapshot` adds the native front end's."""

    def __init__(self) -> None:
        self._served: Counter[RouteKey] = Counter()
        self._shadows: dict[tuple[str, str], ShadowTally] = {}
        self._native: list[Callable[[], list[tuple[str, str, str, int]]]] = []
        self._native_shadows: list[Callable[[], list[ShadowRow]]] = []

    def add_source(
        self,
        routed: Callable[[], list[tuple[str, str, str, int]]],
        shadows: Callable[[], list[ShadowRow]],
    ) -> None:
        """Adds counts kept elsewhere (the native front end's)."""
        self._native.append(routed)
        self._native_shadows.append(shadows)

    def served(self, model: str, alias: str, version: int) -> None:
        """One request the Python server sent to `version` (through `alias`, or "")."""
        self._served[(model, alias, str(version))] += 1

    def shadow(self, model: str, version: int) -> ShadowTally:
        """The Python server's tally of one shadow version."""
        return self._shadows.setdefault((model, str(version)), ShadowTally())

    def snapshot(self) -> dict[str, Any]:
        """Both sides summed: {"served": [[model, alias, version, n], ...], "shadows":
        [[model, version, sent, failed, mismatched, buckets, sum_micros], ...]}."""
        served = Counter(self._served)
        for routed in self._native:
            for model, alias, version, count in routed():
                served[(model, alias, version)] += count
        shadows = {key: _row(tally) for key, tally in self._shadows.items()}
        for copied in self._native_shadows:
            for model, version, sent, failed, mismatched, buckets, sum_micros in copied():
                mine = shadows.get((model, version))
                theirs = [sent, failed, mismatched, buckets, sum_micros]
                shadows[(model, version)] = theirs if mine is None else _added(mine, theirs)
        return {
            "difference_bounds": list(_core.SHADOW_DIFFERENCE_BOUNDS),
            "served": [[*key, count] for key, count in sorted(served.items())],
            "shadows": [[*key, *row] for key, row in sorted(shadows.items())],
        }


def _row(tally: ShadowTally) -> list[Any]:
    return [tally.sent, tally.failed, tally.mismatched, list(tally.buckets), tally.sum_micros]


def _added(a: list[Any], b: list[Any]) -> list[Any]:
    return [
        a[0] + b[0],
        a[1] + b[1],
        a[2] + b[2],
        [x + y for x, y in zip(a[3], b[3], strict=True)],
        a[4] + b[4],
    ]


def routing_snapshot(counter: RoutingCounter, registry: ModelRegistry) -> dict[str, Any]:
    """The snapshot's "routing" part: the counts (`RoutingCounter.snapshot`), every alias as
    [model, alias, version] and every traffic share as [model, "split" or "shadow", target,
    version, percent], for the models the registry knows."""
    data = counter.snapshot()
    aliases: list[list[Any]] = []
    traffic: list[list[Any]] = []
    for name in sorted({row.name for row in registry.known()}):
        routing = registry.routing(name)
        aliases.extend([name, alias, a.version] for alias, a in sorted(routing.aliases.items()))
        for kind, shares in (("split", routing.split), ("shadow", routing.shadows)):
            traffic.extend(
                [name, kind, s.target, routing.version_of(s.target) or 0, s.percent] for s in shares
            )
    data["aliases"] = aliases
    data["traffic"] = traffic
    return data
