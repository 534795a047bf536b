"""Traffic on the built-in dashboard: per model, where its aliases point, its traffic policy
(split shares and shadow copies), and the requests each (alias, version) served per second over
the last few samples, from the snapshot's `routing` part (metrics/routing.py). The same
figures Grafana's Deployments row draws from ferroserve_routed_requests_total,
ferroserve_alias_version and ferroserve_traffic_percent, for users without Grafana."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

ServedKey = tuple[str, str, str]  # model, alias ("" without one), version


@dataclass(slots=True, frozen=True)
class RoutingSample:
    """The cumulative routed-request and shadow counters at one moment."""

    served: dict[ServedKey, int]
    shadows: dict[tuple[str, str], tuple[int, int, int]]  # copies, failures, mismatches

    @staticmethod
    def of(routing: dict[str, Any]) -> RoutingSample:
        return RoutingSample(
            {(m, a, str(v)): int(count) for m, a, v, count in routing["served"]},
            {
                (row[0], str(row[1])): (int(row[2]), int(row[3]), int(row[4]))
                for row in routing["shadows"]
            },
        )


def _rate(now: int, before: int, seconds: float) -> float:
    """Per second; a counter that went down restarted from zero."""
    return (now - before if now >= before else now) / seconds


class RoutingTrack:
    """The last few routing samples, for rates over them."""

    def __init__(self, keep: int) -> None:
        self.recent: deque[tuple[float, RoutingSample]] = deque(maxlen=keep)

    def add(self, time: float, routing: dict[str, Any]) -> None:
        self.recent.append((time, RoutingSample.of(routing)))

    def rates(self) -> tuple[dict[ServedKey, float], dict[tuple[str, str], float]]:
        """Requests/s per (model, alias, version) and shadow copies/s per (model, version),
        over the kept samples (empty with fewer than two)."""
        if len(self.recent) < 2:
            return {}, {}
        (first_time, first), (last_time, last) = self.recent[0], self.recent[-1]
        seconds = max(last_time - first_time, 1e-9)
        served = {
            key: _rate(count, first.served.get(key, 0), seconds)
            for key, count in last.served.items()
        }
        copies = {
            key: _rate(counts[0], first.shadows.get(key, (0, 0, 0))[0], seconds)
            for key, counts in last.shadows.items()
        }
        return served, copies


def routing_panel(routing: dict[str, Any], track: RoutingTrack) -> dict[str, Any]:
    """{model: {"aliases": {alias: version}, "policy": [{"kind", "target", "version",
    "percent"}], "served": [{"alias", "version", "per_s", "total"}], "shadows": [{"version",
    "copies", "failures", "mismatches", "per_s"}]}}, models and rows sorted."""
    served_rates, copy_rates = track.rates()
    panel: dict[str, dict[str, Any]] = {}

    def model(name: str) -> dict[str, Any]:
        return panel.setdefault(name, {"aliases": {}, "policy": [], "served": [], "shadows": []})

    for name, alias, version in routing["aliases"]:
        model(name)["aliases"][alias] = str(version)
    for name, kind, target, version, percent in routing["traffic"]:
        model(name)["policy"].append(
            {"kind": kind, "target": target, "version": str(version), "percent": percent}
        )
    for name, alias, version, count in sorted(routing["served"]):
        model(name)["served"].append(
            {
                "alias": alias,
                "version": str(version),
                "total": int(count),
                "per_s": served_rates.get((name, alias, str(version))),
            }
        )
    for name, version, copies, failures, mismatches, *_ in sorted(routing["shadows"]):
        model(name)["shadows"].append(
            {
                "version": str(version),
                "copies": int(copies),
                "failures": int(failures),
                "mismatches": int(mismatches),
                "per_s": copy_rates.get((name, str(version))),
            }
        )
    for entry in panel.values():
        entry["rows"] = _rows(entry)
    return dict(sorted(panel.items()))


def _rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """What the dashboard's traffic table shows for one model: a row per way in (an alias,
    or a version asked for by number) with the version it reached, its share of the requests
    without a version (the split policy), its requests/s and total; policy targets that served
    nothing yet are listed too."""
    shares = {p["target"]: p["percent"] for p in entry["policy"] if p["kind"] == "split"}
    rows = []
    for served in entry["served"]:
        target = served["alias"] or served["version"]
        rows.append(
            {
                "target": served["alias"] or f"version {served['version']}",
                "version": served["version"],
                "share": shares.pop(target, None),
                "per_s": served["per_s"],
                "total": served["total"],
            }
        )
    for policy in entry["policy"]:
        if policy["kind"] == "split" and policy["target"] in shares:
            target = policy["target"]
            rows.append(
                {
                    "target": target if target in entry["aliases"] else f"version {target}",
                    "version": policy["version"],
                    "share": shares.pop(target),
                    "per_s": None,
                    "total": 0,
                }
            )
    return rows
