"""Drift on the built-in dashboard: from the latest snapshot's `drift` entry of a model version
(metrics/drift.py), each window's status and column counts, its top columns' statistics, and
each top column's histogram as shares of the reference and of every window, so the page draws
them side by side. history.History.dashboard calls it; drift has no time series here (its
windows are already summaries over time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ferroserve.sidecar.drift_exposition import WINDOWS, verdict_counts


def drift_panel(drift: dict[str, Any]) -> dict[str, Any]:
    """{"window_policy", "columns_total", "uncounted_batches", "windows": [{"window",
    "status", "rows", "batches", "columns_by_verdict", "columns": [...]}], "histograms":
    [{"name", "kind", "labels", "reference", "windows": {window: shares}, "values": {window:
    count}}]}; windows in WINDOWS order, shares None for a window without values."""
    total = int(drift["columns_total"])
    windows = []
    for name in WINDOWS:
        window = drift["windows"].get(name)
        if window is None:
            continue
        windows.append(
            {
                "window": name,
                "status": window["status"],
                "rows": int(window["rows"]),
                "batches": int(window["batches"]),
                "columns_by_verdict": verdict_counts(window, total),
                "columns": window["columns"],
            }
        )
    present = [window["window"] for window in windows]
    return {
        "window_policy": drift["window_policy"],
        "columns_total": total,
        "uncounted_batches": int(drift["errors"]),
        "windows": windows,
        "histograms": [
            {
                "name": histogram["name"],
                "kind": histogram["kind"],
                "labels": histogram["labels"],
                "reference": shares(histogram["reference"]),
                "windows": {name: shares(histogram[name]) for name in present},
                "values": {name: sum(histogram[name]) for name in present},
            }
            for histogram in drift["histograms"]
        ],
    }


def shares(counts: Sequence[int]) -> list[float] | None:
    """Each bin's share of the values; None without values."""
    total = sum(counts)
    if total <= 0:
        return None
    return [count / total for count in counts]
