"""Drift's Prometheus families from the metrics snapshot (`drift` of a model entry:
metrics/drift.py): per model version and window the status, columns by verdict and rows, and
the top columns' statistics; labelled model, version, window and (per column) column.
Cardinality is bounded by the snapshot: only its top columns (`export_top_columns`) are listed.
exposition.SnapshotCollector yields them, after its staleness check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

MODEL_LABELS = ("model", "version")
WINDOW_LABELS = (*MODEL_LABELS, "window")
COLUMN_LABELS = (*WINDOW_LABELS, "column")
BIN_LABELS = (*MODEL_LABELS, "column", "bin")

# The windows of metrics/drift.py's WINDOWS (this module imports nothing of the serving side,
# which needs the Rust extension; a unit test keeps the two lists equal). "last_closed" is
# absent until the first window closes, and always with a time window in its first period.
WINDOWS = ("cumulative", "current", "last_closed")
# A status or judged column's verdict as a number, so alerts compare (`== 2`) and `max` works
# across windows and replicas.
STATUS_VALUES = {"ok": 0.0, "warning": 1.0, "drift": 2.0}
# The statistics of metrics/drift.py's STATISTICS, each the `statistic` label of
# ferroserve_drift_score; a statistic undefined for a column (None) is not exported.
STATISTICS = ("psi", "jensen_shannon", "kolmogorov_smirnov", "wasserstein", "chi_squared_p_value")


def drift_families(data: dict[str, Any]) -> Iterator[Metric]:
    """The drift of every model version that monitors it (`drift` in its snapshot entry)."""
    status = GaugeMetricFamily(
        "ferroserve_drift_status",
        "The model version's drift status in a window: 0 ok, 1 warning, 2 drift (from the share "
        "of its judged columns that warn or drift).",
        labels=WINDOW_LABELS,
    )
    columns = GaugeMetricFamily(
        "ferroserve_drift_columns",
        "Monitored columns in a window by verdict: ok, warning, drift, or too_few_rows (fewer "
        "values than min_rows: not judged); they add up to ferroserve_drift_monitored_columns.",
        labels=[*WINDOW_LABELS, "verdict"],
    )
    rows = GaugeMetricFamily(
        "ferroserve_drift_window_rows",
        "Rows counted in a drift window (the current one grows until it closes).",
        labels=WINDOW_LABELS,
    )
    monitored = GaugeMetricFamily(
        "ferroserve_drift_monitored_columns",
        "Columns the version's drift tracker monitors (inputs and outputs).",
        labels=MODEL_LABELS,
    )
    uncounted = CounterMetricFamily(
        "ferroserve_drift_uncounted_batches",
        "Executed batches the drift tracker could not count (they were served, not monitored).",
        labels=MODEL_LABELS,
    )
    score = GaugeMetricFamily(
        "ferroserve_drift_score",
        "A top column's drift statistic in a window against its reference: psi, "
        "jensen_shannon, kolmogorov_smirnov, wasserstein (over the reference std) or "
        "chi_squared_p_value (lower is more drift); absent where undefined for the column.",
        labels=[*COLUMN_LABELS, "statistic"],
    )
    column_status = GaugeMetricFamily(
        "ferroserve_drift_column_status",
        "A top column's verdict in a window: 0 ok, 1 warning, 2 drift; absent while it has "
        "too few values to be judged.",
        labels=COLUMN_LABELS,
    )
    non_finite = GaugeMetricFamily(
        "ferroserve_drift_column_non_finite_ratio",
        "Share of a top column's values in a window that were NaN or infinite.",
        labels=COLUMN_LABELS,
    )
    for model in data["models"]:
        drift = model.get("drift")
        if drift is None:
            continue
        labels = [model["model"], model["version"]]
        monitored.add_metric(labels, float(drift["columns_total"]))
        uncounted.add_metric(labels, float(drift["errors"]))
        for name in WINDOWS:
            window = drift["windows"].get(name)
            if window is None:
                continue
            per_window = [*labels, name]
            if window["status"] in STATUS_VALUES:
                status.add_metric(per_window, STATUS_VALUES[window["status"]])
            rows.add_metric(per_window, float(window["rows"]))
            for verdict, count in verdict_counts(window, int(drift["columns_total"])).items():
                columns.add_metric([*per_window, verdict], float(count))
            for column in window["columns"]:
                per_column = [*per_window, column["name"]]
                for statistic in STATISTICS:
                    if column[statistic] is not None:
                        score.add_metric([*per_column, statistic], float(column[statistic]))
                if column["verdict"] in STATUS_VALUES:
                    column_status.add_metric(per_column, STATUS_VALUES[column["verdict"]])
                non_finite.add_metric(per_column, float(column["non_finite_share"]))
    yield status
    yield columns
    yield rows
    yield monitored
    yield uncounted
    yield score
    yield column_status
    yield non_finite
    yield from histogram_families(data)


def histogram_families(data: dict[str, Any]) -> Iterator[Metric]:
    """The top columns' cumulative bin counts (a counter per bin: windows of any length, and
    sums across replicas, come from `rate` and `sum` in PromQL) and the reference's share per
    bin, labelled model, version, column and bin (the bin's readable label)."""
    counts = CounterMetricFamily(
        "ferroserve_drift_bin_values",
        "Values counted in each bin of a top column since load (the cumulative window).",
        labels=BIN_LABELS,
    )
    reference = GaugeMetricFamily(
        "ferroserve_drift_reference_share",
        "Share of the reference dataset's values in each bin of a top column.",
        labels=BIN_LABELS,
    )
    for model in data["models"]:
        drift = model.get("drift")
        if drift is None:
            continue
        for histogram in drift.get("histograms", ()):
            total = sum(histogram["reference"]) or 1
            cumulative = histogram.get("cumulative") or [0] * len(histogram["labels"])
            for label, value, ref in zip(
                histogram["labels"], cumulative, histogram["reference"], strict=True
            ):
                labels = [model["model"], model["version"], histogram["name"], label]
                counts.add_metric(labels, float(value))
                reference.add_metric(labels, ref / total)
    yield counts
    yield reference


def verdict_counts(window: dict[str, Any], columns_total: int) -> dict[str, int]:
    """Every monitored column of a window by verdict: the report counts the judged columns and,
    among them, those in warning and those drifting (never both); the rest are ok, and the
    unjudged ones had too few rows."""
    judged, warning, drift = int(window["judged"]), int(window["warning"]), int(window["drift"])
    return {
        "ok": judged - warning - drift,
        "warning": warning,
        "drift": drift,
        "too_few_rows": columns_total - judged,
    }
