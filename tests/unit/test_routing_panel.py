"""The dashboard's traffic panel (sidecar/routing_panel.py): aliases, the policy's shares and
routed requests per way in, with rates from the samples kept and counters that restart."""

from __future__ import annotations

from typing import Any

from ferroserve.sidecar.routing_panel import RoutingTrack, routing_panel


def routing(served: list[list[Any]], copies: int = 0) -> dict[str, Any]:
    return {
        "served": served,
        "aliases": [["fraud", "canary", 2], ["fraud", "production", 1]],
        "traffic": [
            ["fraud", "split", "production", 1, 90],
            ["fraud", "split", "canary", 2, 10],
            ["fraud", "shadow", "3", 3, 5],
        ],
        "shadows": [["fraud", "3", copies, 1, 2, [0, 0], 0]],
        "difference_bounds": [0.001],
    }


def test_the_panel_joins_aliases_policy_and_routed_requests() -> None:
    track = RoutingTrack(keep=3)
    track.add(100.0, routing([["fraud", "production", "1", 100]], copies=4))
    later = routing(
        [["fraud", "production", "1", 190], ["fraud", "", "3", 7], ["fraud", "canary", "2", 0]],
        copies=9,
    )
    track.add(102.0, later)
    panel = routing_panel(later, track)
    fraud = panel["fraud"]
    assert fraud["aliases"] == {"canary": "2", "production": "1"}
    rows = {row["target"]: row for row in fraud["rows"]}
    assert rows["production"] == {
        "target": "production",
        "version": "1",
        "share": 90,
        "per_s": 45.0,
        "total": 190,
    }
    assert rows["canary"]["share"] == 10 and rows["canary"]["total"] == 0
    # A version asked for by number: no share, its rate from zero (first seen).
    assert rows["version 3"] == {
        "target": "version 3",
        "version": "3",
        "share": None,
        "per_s": 3.5,
        "total": 7,
    }
    assert fraud["shadows"] == [
        {"version": "3", "copies": 9, "failures": 1, "mismatches": 2, "per_s": 2.5}
    ]


def test_policy_targets_without_requests_and_restarted_counters() -> None:
    track = RoutingTrack(keep=3)
    assert routing_panel(routing([]), track)["fraud"]["rows"] == [
        {"target": "production", "version": "1", "share": 90, "per_s": None, "total": 0},
        {"target": "canary", "version": "2", "share": 10, "per_s": None, "total": 0},
    ]
    track.add(0.0, routing([["fraud", "production", "1", 500]]))
    track.add(1.0, routing([["fraud", "production", "1", 20]]))  # the server restarted
    row = routing_panel(routing([]), track)["fraud"]["rows"][0]
    assert row["per_s"] is None  # the latest snapshot served nothing: no row of counts
    rates, _ = track.rates()
    assert rates[("fraud", "production", "1")] == 20.0
