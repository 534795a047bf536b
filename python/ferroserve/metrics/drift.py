"""The drift part of the metrics snapshot: per model version, the status of each window and the
statistics and histograms of its top columns. Computing it runs the Rust reports (every
column's statistics, all windows), so the recorder calls it from a worker thread, never on the
event loop. Label cardinality is bounded: only `export_top_columns` columns (those with the
highest PSI in any window) are listed, with per-window counts of all columns beside them."""

from __future__ import annotations

import itertools
import math
from typing import Any

from ferroserve.drift.tracking import ModelDrift

WINDOWS = ("cumulative", "current", "last_closed")
STATISTICS = ("psi", "jensen_shannon", "kolmogorov_smirnov", "wasserstein", "chi_squared_p_value")


def drift_snapshot(drift: ModelDrift) -> dict[str, Any]:
    """{"errors", "profile_id", "window_policy", "columns_total", "windows": {window: {"rows",
    "batches", "status", "judged", "warning", "drift", "columns": [{"name", "values",
    "verdict", statistic: value or None...}]}}, "histograms": [{"name", "kind", "labels",
    "reference", window: counts...}]}; the same top columns in every window, in rank order."""
    report = drift.report()
    windows = {name: report[name] for name in WINDOWS if report.get(name) is not None}
    top = _top_columns(windows, drift.declaration.export_top_columns)
    profiles = drift.profiles()
    return {
        "errors": int(report["errors"]),
        "profile_id": report["profile_id"],
        "window_policy": drift.declaration.window_policy,
        "columns_total": len(profiles),
        "windows": {name: _window(window, top) for name, window in windows.items()},
        "histograms": [_histogram(index, profiles[index], windows) for index in top],
    }


def _top_columns(windows: dict[str, Any], count: int) -> list[int]:
    """The `count` columns with the highest PSI in any window (ties: profile order)."""
    columns = next(iter(windows.values()))["report"]["columns"]

    def score(index: int) -> float:
        psis = (w["report"]["columns"][index]["statistics"]["psi"] for w in windows.values())
        return max((p for p in psis if p is not None and math.isfinite(p)), default=-1.0)

    ranked = sorted(range(len(columns)), key=lambda index: (-score(index), index))
    return ranked[:count]


def _window(window: dict[str, Any], top: list[int]) -> dict[str, Any]:
    report = window["report"]
    entry: dict[str, Any] = {
        "rows": int(window["rows"]),
        "batches": int(window["batches"]),
        "status": report["status"],
        "judged": int(report["judged"]),
        "warning": int(report["warning"]),
        "drift": int(report["drift"]),
        "columns": [_column(report["columns"][index]) for index in top],
    }
    for key in ("index", "opened_s", "closed_s"):
        if key in window:
            entry[key] = window[key]
    return entry


def _column(column: dict[str, Any]) -> dict[str, Any]:
    statistics = column["statistics"]
    entry = {
        "name": column["name"],
        "values": int(column["values"]),
        "verdict": column["verdict"],
        "non_finite_share": statistics["non_finite_share"],
    }
    entry.update({name: statistics[name] for name in STATISTICS})
    return entry


def _histogram(index: int, profile: dict[str, Any], windows: dict[str, Any]) -> dict[str, Any]:
    """Reference and window counts of one column, bin by bin, with readable bin labels: the
    finite bins (or categories and "other"), then NaN, -inf and +inf for numeric columns."""
    counts = {name: window["counts"]["columns"][index] for name, window in windows.items()}
    name = next(iter(counts.values()))["name"]
    if "numeric" in profile:
        numeric = profile["numeric"]
        edges = numeric["edges"]
        bounds = ["-inf", *(f"{edge:.6g}" for edge in edges), "+inf"]
        labels = [f"[{low}, {high})" for low, high in itertools.pairwise(bounds)]
        labels += ["NaN", "-inf", "+inf"]
        reference = [*numeric["counts"], numeric["nan"], numeric["neg_inf"], numeric["pos_inf"]]
        kind = "numeric"
    else:
        categorical = profile["categorical"]
        labels = [str(value) for value in categorical["values"]] + ["other"]
        reference = [*categorical["counts"], categorical["other"]]
        kind = "categorical"
    histogram: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "labels": labels,
        "reference": reference,
    }
    for window, column in counts.items():
        slots = list(column["bins"])
        if kind == "numeric":
            slots += [column["nan"], column["neg_inf"], column["pos_inf"]]
        histogram[window] = slots
    return histogram
