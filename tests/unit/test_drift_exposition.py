"""Drift's metric families from a snapshot dict (sidecar/drift_exposition.py): the exact series
of a model version, undefined statistics and unjudged columns left out, the status mapping,
withheld with a stale snapshot; and the built-in dashboard's drift panel
(sidecar/drift_panel.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ferroserve.metrics import drift as drift_snapshot_module
from ferroserve.metrics import snapshot
from ferroserve.sidecar.drift_exposition import (
    STATISTICS,
    WINDOWS,
    drift_families,
)
from ferroserve.sidecar.drift_panel import drift_panel
from ferroserve.sidecar.exposition import SnapshotCollector
from ferroserve.sidecar.source import SnapshotSource
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def column(
    name: str, verdict: str, psi: float | None, **statistics: float | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "values": 3000,
        "verdict": verdict,
        "non_finite_share": 0.0,
        "psi": psi,
        "jensen_shannon": None,
        "kolmogorov_smirnov": None,
        "wasserstein": None,
        "chi_squared_p_value": None,
    }
    entry.update(statistics)
    return entry


def window(
    status: str, rows: int, judged: int, warning: int, drift: int, columns: list[Any]
) -> Any:
    return {
        "rows": rows,
        "batches": rows // 10,
        "status": status,
        "judged": judged,
        "warning": warning,
        "drift": drift,
        "columns": columns,
    }


def drift_entry() -> dict[str, Any]:
    """A version monitoring 5 columns, the top 2 exported: x[0] numeric, c categorical."""
    return {
        "errors": 2,
        "profile_id": "0123456789abcdef",
        "window_policy": "1000 rows",
        "columns_total": 5,
        "windows": {
            "cumulative": window(
                "drift",
                5000,
                5,
                1,
                3,
                [
                    column(
                        "x[0]",
                        "drift",
                        0.9,
                        jensen_shannon=0.4,
                        kolmogorov_smirnov=0.35,
                        wasserstein=1.1,
                        non_finite_share=0.25,
                    ),
                    column("c", "warning", 0.15, jensen_shannon=0.05, chi_squared_p_value=0.001),
                ],
            ),
            # Too few rows to judge anything yet: ok, and no column verdicts.
            "current": window(
                "ok",
                10,
                0,
                0,
                0,
                [
                    column("x[0]", "too_few_rows", None),
                    column("c", "too_few_rows", None),
                ],
            ),
            "last_closed": window(
                "warning",
                1000,
                4,
                1,
                0,
                [
                    column("x[0]", "warning", 0.12, jensen_shannon=0.06, wasserstein=0.08),
                    column("c", "ok", 0.01, jensen_shannon=0.01, chi_squared_p_value=0.5),
                ],
            )
            | {"index": 4, "opened_s": 10.0, "closed_s": 20.0},
        },
        "histograms": [
            {
                "name": "x[0]",
                "kind": "numeric",
                "labels": ["[-inf, 0)", "[0, +inf)", "NaN", "-inf", "+inf"],
                "reference": [50, 50, 0, 0, 0],
                "cumulative": [1000, 2750, 1250, 0, 0],
                "current": [0, 0, 0, 0, 0],
                "last_closed": [300, 700, 0, 0, 0],
            },
            {
                "name": "c",
                "kind": "categorical",
                "labels": ["1", "2", "other"],
                "reference": [60, 30, 10],
                "cumulative": [2000, 2000, 1000],
                "current": [5, 5, 0],
                "last_closed": [500, 400, 100],
            },
        ],
    }


def data_with_drift() -> dict[str, Any]:
    return {
        "models": [
            {"model": "fraud", "version": "2", "state": "READY", "drift": drift_entry()},
            {"model": "plain", "version": "1", "state": "READY"},
        ]
    }


def samples(data: dict[str, Any]) -> Samples:
    out: Samples = {}
    for family in drift_families(data):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted({"model": "fraud", "version": "2", **labels}.items())))


def test_the_exact_series_of_a_version_with_drift() -> None:
    expected: Samples = {
        key("ferroserve_drift_monitored_columns"): 5,
        key("ferroserve_drift_uncounted_batches_total"): 2,
    }
    windows = {
        "cumulative": (2, 5000, {"ok": 1, "warning": 1, "drift": 3, "too_few_rows": 0}),
        "current": (0, 10, {"ok": 0, "warning": 0, "drift": 0, "too_few_rows": 5}),
        "last_closed": (1, 1000, {"ok": 3, "warning": 1, "drift": 0, "too_few_rows": 1}),
    }
    for name, (status, rows, verdicts) in windows.items():
        expected[key("ferroserve_drift_status", window=name)] = status
        expected[key("ferroserve_drift_window_rows", window=name)] = rows
        for verdict, count in verdicts.items():
            expected[key("ferroserve_drift_columns", window=name, verdict=verdict)] = count
    scores = {
        ("cumulative", "x[0]"): {
            "psi": 0.9,
            "jensen_shannon": 0.4,
            "kolmogorov_smirnov": 0.35,
            "wasserstein": 1.1,
        },
        ("cumulative", "c"): {"psi": 0.15, "jensen_shannon": 0.05, "chi_squared_p_value": 0.001},
        ("last_closed", "x[0]"): {"psi": 0.12, "jensen_shannon": 0.06, "wasserstein": 0.08},
        ("last_closed", "c"): {"psi": 0.01, "jensen_shannon": 0.01, "chi_squared_p_value": 0.5},
    }
    for (name, col), statistics in scores.items():
        for statistic, score in statistics.items():
            labels = {"window": name, "column": col, "statistic": statistic}
            expected[key("ferroserve_drift_score", **labels)] = score
    # Judged columns only: the current window's have too few rows.
    for (name, col), verdict in {
        ("cumulative", "x[0]"): 2,
        ("cumulative", "c"): 1,
        ("last_closed", "x[0]"): 1,
        ("last_closed", "c"): 0,
    }.items():
        expected[key("ferroserve_drift_column_status", window=name, column=col)] = verdict
    for name in WINDOWS:
        for col in ("x[0]", "c"):
            share = 0.25 if (name, col) == ("cumulative", "x[0]") else 0.0
            labels = {"window": name, "column": col}
            expected[key("ferroserve_drift_column_non_finite_ratio", **labels)] = share
    # The top columns' bins: test_top_columns_bins_are_counters_and_the_reference_shares_gauges.
    per_bin = ("ferroserve_drift_bin_values", "ferroserve_drift_reference_share")
    got = {k: v for k, v in samples(data_with_drift()).items() if not k[0].startswith(per_bin)}
    assert got == expected


def test_families_are_declared_once_and_empty_without_drift() -> None:
    names = [family.name for family in drift_families(data_with_drift())]
    assert len(names) == len(set(names)) == 10
    assert all(name.startswith("ferroserve_drift_") for name in names)
    plain = {"models": [{"model": "plain", "version": "1", "state": "READY"}]}
    assert samples(plain) == {}
    assert all(not family.samples for family in drift_families(plain))


def test_a_window_not_yet_closed_has_no_series_and_unknown_statuses_are_left_out() -> None:
    data = data_with_drift()
    drift = data["models"][0]["drift"]
    del drift["windows"]["last_closed"]
    drift["windows"]["current"]["status"] = "something_new"
    got = samples(data)
    assert not [k for k in got if ("window", "last_closed") in k[1]]
    assert key("ferroserve_drift_status", window="current") not in got
    assert got[key("ferroserve_drift_window_rows", window="current")] == 10
    assert got[key("ferroserve_drift_status", window="cumulative")] == 2


def test_the_lists_match_the_serving_side() -> None:
    assert drift_snapshot_module.WINDOWS == WINDOWS
    assert drift_snapshot_module.STATISTICS == STATISTICS


def test_drift_is_exported_from_a_fresh_snapshot_only(tmp_path: Path) -> None:
    def write(written: float) -> None:
        data = data_with_drift() | {
            "format": snapshot.FORMAT,
            "written_unix": written,
            "duration_buckets_ns": [1000],
            "feature_lookup_buckets_ns": [1000],
            "outcomes": ["success"],
            "rpcs": [],
        }
        snapshot.write(tmp_path / snapshot.SNAPSHOT_FILE, data)

    def exported() -> set[str]:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(SnapshotSource(tmp_path, interval_s=1.0)))
        text = generate_latest(registry).decode()
        return {
            sample.name
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    write(time.time())
    assert "ferroserve_drift_status" in exported()
    write(time.time() - 60)
    assert exported() == {"ferroserve_metrics_snapshot_age_seconds"}


def test_the_dashboard_panel_has_statuses_and_histogram_shares() -> None:
    panel = drift_panel(drift_entry())
    assert panel["window_policy"] == "1000 rows"
    assert panel["columns_total"] == 5
    assert panel["uncounted_batches"] == 2
    assert [w["window"] for w in panel["windows"]] == list(WINDOWS)
    assert [w["status"] for w in panel["windows"]] == ["drift", "ok", "warning"]
    cumulative = panel["windows"][0]
    assert cumulative["columns_by_verdict"] == {
        "ok": 1,
        "warning": 1,
        "drift": 3,
        "too_few_rows": 0,
    }
    assert [c["name"] for c in cumulative["columns"]] == ["x[0]", "c"]
    numeric, categorical = panel["histograms"]
    assert numeric["labels"] == ["[-inf, 0)", "[0, +inf)", "NaN", "-inf", "+inf"]
    assert numeric["reference"] == [0.5, 0.5, 0, 0, 0]
    assert numeric["windows"]["cumulative"] == [0.2, 0.55, 0.25, 0, 0]
    assert numeric["windows"]["current"] is None  # no values yet: nothing to draw
    assert numeric["values"] == {"cumulative": 5000, "current": 0, "last_closed": 1000}
    assert categorical["kind"] == "categorical"
    assert categorical["windows"]["last_closed"] == pytest.approx([0.5, 0.4, 0.1])


def test_the_panel_leaves_out_a_window_that_did_not_close() -> None:
    entry = drift_entry()
    del entry["windows"]["last_closed"]
    for histogram in entry["histograms"]:
        del histogram["last_closed"]
    panel = drift_panel(entry)
    assert [w["window"] for w in panel["windows"]] == ["cumulative", "current"]
    assert set(panel["histograms"][0]["windows"]) == {"cumulative", "current"}


def test_top_columns_bins_are_counters_and_the_reference_shares_gauges() -> None:
    data = data_with_drift()
    data["models"][0]["drift"]["histograms"] = [
        {
            "name": "x[0]",
            "kind": "numeric",
            "labels": ["[-inf, 0)", "[0, +inf)", "NaN", "-inf", "+inf"],
            "reference": [60, 40, 0, 0, 0],
            "cumulative": [7, 3, 1, 0, 0],
            "current": [1, 0, 0, 0, 0],
        }
    ]
    got = samples(data)
    bins = {"[-inf, 0)": (7, 0.6), "[0, +inf)": (3, 0.4), "NaN": (1, 0.0), "+inf": (0, 0.0)}
    for label, (count, share) in bins.items():
        labels = {"column": "x[0]", "bin": label}
        assert got[key("ferroserve_drift_bin_values_total", **labels)] == count
        assert got[key("ferroserve_drift_reference_share", **labels)] == share
    assert not [k for k in got if k[0].startswith("ferroserve_drift_bin") and "plain" in str(k)]
