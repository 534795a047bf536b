"""The drift part of the metrics snapshot: per model version, the status of each window and the
statistics and histograms of its top columns. The Rust tracker judges every column in every
window, ranks them and returns only the top ones (`DriftTracker.export`, GIL released), so the
recorder's worker thread does little more than add the bin labels, which never change and are
built once per version. Label cardinality is bounded: only `export_top_columns` columns (those
with the highest PSI in any window) are listed, beside per-window totals over all columns."""

from __future__ import annotations

import itertools
import json
import weakref
from typing import Any

from ferroserve.drift.tracking import ModelDrift

WINDOWS = ("cumulative", "current", "last_closed")
STATISTICS = ("psi", "jensen_shannon", "kolmogorov_smirnov", "wasserstein", "chi_squared_p_value")
"""The statistics each exported column carries (the crate's `ExportedColumn`)."""
_SHAPES: weakref.WeakKeyDictionary[ModelDrift, list[dict[str, Any]]] = weakref.WeakKeyDictionary()
"""Per loaded version: its columns' histogram shapes (only the recorder's thread writes it)."""


def drift_snapshot(drift: ModelDrift) -> dict[str, Any]:
    """{"errors", "profile_id", "window_policy", "columns_total", "windows": {window: {"rows",
    "batches", "status", "judged", "warning", "drift", "columns": [{"name", "values",
    "verdict", "non_finite_share", statistic: value or None...}]}}, "histograms": [{"name",
    "kind", "labels", "reference", window: counts...}]}; the same top columns in every
    window, in rank order."""
    export: dict[str, Any] = json.loads(
        drift.tracker.export(
            drift.declaration.thresholds_json, drift.declaration.export_top_columns
        )
    )
    exported = export["windows"]
    windows = {name: exported[name] for name in WINDOWS if name in exported}
    counts = {name: window.pop("counts") for name, window in windows.items()}
    shapes = _histogram_shapes(drift)
    histograms = []
    for rank, index in enumerate(export["top"]):
        histogram = dict(shapes[index])
        for name, window_counts in counts.items():
            histogram[name] = window_counts[rank]
        histograms.append(histogram)
    return {
        "errors": drift.tracker.errors,
        "profile_id": export["profile_id"],
        "window_policy": drift.declaration.window_policy,
        "columns_total": export["columns_total"],
        "windows": windows,
        "histograms": histograms,
    }


def _histogram_shapes(drift: ModelDrift) -> list[dict[str, Any]]:
    """Per column: its name, kind, bin labels and reference counts; built on first use (they
    change only with the version, which gets a new ModelDrift)."""
    shapes = _SHAPES.get(drift)
    if shapes is None:
        names = drift.tracker.columns
        shapes = [
            _shape(name, profile) for name, profile in zip(names, drift.profiles(), strict=True)
        ]
        _SHAPES[drift] = shapes
    return shapes


def _shape(name: str, profile: dict[str, Any]) -> dict[str, Any]:
    """A column's readable bin labels and reference counts: the finite bins (or categories
    and "other"), then NaN, -inf and +inf for numeric columns."""
    if "numeric" in profile:
        numeric = profile["numeric"]
        bounds = ["-inf", *(f"{edge:.6g}" for edge in numeric["edges"]), "+inf"]
        labels = [f"[{low}, {high})" for low, high in itertools.pairwise(bounds)]
        labels += ["NaN", "-inf", "+inf"]
        reference = [*numeric["counts"], numeric["nan"], numeric["neg_inf"], numeric["pos_inf"]]
        return {"name": name, "kind": "numeric", "labels": labels, "reference": reference}
    categorical = profile["categorical"]
    labels = [str(value) for value in categorical["values"]] + ["other"]
    reference = [*categorical["counts"], categorical["other"]]
    return {"name": name, "kind": "categorical", "labels": labels, "reference": reference}
