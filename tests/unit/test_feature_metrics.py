"""The online features' metric families from a snapshot dict (sidecar/feature_exposition.py),
the snapshot entry built from a real plan and store (metrics/features.py), the built-in
dashboard's feature figures (sidecar/feature_history.py), and the formatting of `ferroserve
features status` (features/status_report.py). The Redis store's and the lookup latency's parts
are test_feature_metrics_redis.py's."""

from __future__ import annotations

from typing import Any

import numpy as np
from ferroserve import _core
from ferroserve._proto import feature_service_pb2 as fpb
from ferroserve.features.status_report import age, size, status_json, status_table
from ferroserve.metrics.features import feature_snapshot
from ferroserve.sidecar.feature_exposition import feature_families
from ferroserve.sidecar.feature_history import (
    FEATURE_SERIES,
    FeatureSample,
    feature_figures,
    feature_panel,
)
from prometheus_client.core import Metric

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def view_entry(name: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "view": name,
        "loaded": True,
        "rows": 80,
        "memory_bytes": 4096,
        "values_bytes": 960,
        "duplicate_keys": 2,
        "oldest_us": 1_700_000_000_000_000,
        "newest_us": 1_700_000_600_500_000,
        "generation": 3,
        "lookups": {"hit": 10, "miss": 4, "stale": 2, "unavailable": 0},
        "rejected": 1,
        "store": "embedded",
        # Per bucket of LOOKUP_BUCKETS_NS (1 µs, 2.5 µs, ...): 5 gathers <= 1 µs, 2 <= 2.5 µs.
        "latency": {"counts": [5, 2] + [0] * 18, "sum_ns": 9_000},
    }
    entry.update(overrides)
    return entry


def snapshot_with_features() -> dict[str, Any]:
    features = {
        "gathers": 5,
        "gathered_rows": 16,
        "gather_ns": 2_500_000,
        "reloads": 3,
        "reload_failures": 1,
        "views": [
            view_entry("user"),
            view_entry(
                "card",
                oldest_us=None,
                newest_us=None,
                lookups={"hit": 16, "miss": 0, "stale": 0, "unavailable": 0},
                rejected=0,
            ),
        ],
        "redis": None,
    }
    return {
        "feature_lookup_buckets_ns": list(_core.LOOKUP_BUCKETS_NS),
        "models": [
            {"model": "fraud", "version": "2", "state": "READY", "features": features},
            {"model": "plain", "version": "1", "state": "READY"},
        ],
    }


def samples(families: list[Metric]) -> Samples:
    out: Samples = {}
    for family in families:
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"model": "fraud", "version": "2", **pairs}.items()))


def test_feature_families_from_a_snapshot() -> None:
    families = list(feature_families(snapshot_with_features()))
    names = [family.name for family in families]
    assert len(names) == len(set(names))
    assert all(name.startswith("ferroserve_feature_") for name in names)
    got = samples(families)
    lookups = "ferroserve_feature_lookups_total"
    assert got[(lookups, labels(view="user", result="hit"))] == 10
    assert got[(lookups, labels(view="user", result="miss"))] == 4
    assert got[(lookups, labels(view="user", result="stale"))] == 2
    assert got[(lookups, labels(view="user", result="unavailable"))] == 0
    assert got[(lookups, labels(view="card", result="hit"))] == 16
    assert got[("ferroserve_feature_rejections_total", labels(view="user"))] == 1
    assert got[("ferroserve_feature_rejections_total", labels(view="card"))] == 0
    assert got[("ferroserve_feature_gathers_total", labels())] == 5
    assert got[("ferroserve_feature_gathered_rows_total", labels())] == 16
    assert got[("ferroserve_feature_gather_seconds_total", labels())] == 0.0025
    assert got[("ferroserve_feature_reloads_total", labels(result="ok"))] == 3
    assert got[("ferroserve_feature_reloads_total", labels(result="failed"))] == 1
    assert got[("ferroserve_feature_snapshot_generation", labels())] == 3
    assert got[("ferroserve_feature_snapshot_rows", labels(view="user"))] == 80
    assert got[("ferroserve_feature_snapshot_bytes", labels(view="user"))] == 4096
    assert got[("ferroserve_feature_snapshot_values_bytes", labels(view="user"))] == 960
    assert got[("ferroserve_feature_snapshot_duplicate_keys", labels(view="user"))] == 2
    newest = "ferroserve_feature_snapshot_newest_event_timestamp_seconds"
    oldest = "ferroserve_feature_snapshot_oldest_event_timestamp_seconds"
    assert got[(newest, labels(view="user"))] == 1_700_000_600.5
    assert got[(oldest, labels(view="user"))] == 1_700_000_000
    # A view without event times has no timestamps (absent, not 0); a model without features
    # has no feature samples at all.
    assert (newest, labels(view="card")) not in got
    assert not [key for key in got if ("model", "plain") in key[1]]


def test_a_view_not_loaded_has_lookups_but_no_snapshot_gauges() -> None:
    data = snapshot_with_features()
    data["models"][0]["features"]["views"] = [view_entry("user", loaded=False)]
    got = samples(list(feature_families(data)))
    assert ("ferroserve_feature_lookups_total", labels(view="user", result="hit")) in got
    assert ("ferroserve_feature_snapshot_rows", labels(view="user")) not in got


def test_the_snapshot_entry_reads_the_plan_and_the_store() -> None:
    declaration = {
        "request_inputs": [{"name": "user_id", "datatype": "INT64", "columns": 1}],
        "views": [
            {
                "name": "user",
                "key": ["user_id"],
                "features": [{"name": "f0", "datatype": "FP32", "default": 0.0}],
                "max_age_s": None,
                "on_missing": "default",
            }
        ],
        "assembly": [{"model_input": "x", "segments": [{"view": "user"}]}],
    }
    plan = _core.FeaturePlan(declaration, [("x", "FP32", [1])])
    store = _core.FeatureStore(plan)
    table = store.build(
        "user", {"user_id": np.array([1, 2], np.int64)}, {"f0": np.array([1, 2], np.float32)}
    )
    store.install([table])

    class Declaration:
        redis = None

    class Features:  # the part of ModelFeatures the snapshot reads
        reloads = 1
        reload_failures = 0
        declaration = Declaration()

        def __init__(self) -> None:
            self.plan = plan
            self.store = store

        def status(self) -> list[dict[str, Any]]:
            return store.status()

    entry = feature_snapshot(Features())  # type: ignore[arg-type]
    assert (entry["gathers"], entry["gathered_rows"], entry["reloads"]) == (0, 0, 1)
    (view,) = entry["views"]
    assert view["view"] == "user" and view["rows"] == 2 and view["loaded"]
    assert view["lookups"] == {"hit": 0, "miss": 0, "stale": 0, "unavailable": 0}
    assert view["newest_us"] is None and view["generation"] == 1
    assert view["store"] == "embedded"
    assert view["latency"] == {"counts": [0] * (len(_core.LOOKUP_BUCKETS_NS) + 1), "sum_ns": 0}
    assert sorted(entry) == sorted(
        ["gathers", "gathered_rows", "gather_ns", "reloads", "reload_failures", "views", "redis"]
    )
    assert entry["redis"] is None


def test_status_table_and_json() -> None:
    now = 1_700_000_000.0
    status = fpb.FeatureStatusResponse()
    entry = status.models.add(model="fraud", version="2", reloads=2, reload_failures=1)
    entry.last_error = "snapshot user.parquet: no column 'f1'"
    entry.views.add(
        view="user",
        loaded=True,
        rows=1234,
        memory_bytes=6400,
        generation=2,
        newest_event_us=int((now - 3725) * 1e6),
        lookups=200,
        hits=150,
        misses=30,
        stale=20,
    )
    entry.views.add(view="card", loaded=True, rows=5)
    header, user, card, note = status_table(status, now).splitlines()
    assert header.split()[:3] == ["MODEL", "VERSION", "VIEW"]
    assert user.split() == [
        "fraud", "2", "user", "embedded", "1,234", "6.2", "KiB", "1h", "2m", "2", "200", "75.0",
        "30", "20", "0", "-", "-",
    ]  # fmt: skip
    assert card.split()[3:8] == ["embedded", "5", "0", "B", "-"]
    assert note == (
        "fraud version 2: 1 failed load(s); the last load failed, previous snapshot serving: "
        "snapshot user.parquet: no column 'f1'"
    )
    as_json = status_json(status)["models"][0]
    assert as_json["views"][0]["newest_event_us"] == int((now - 3725) * 1e6)
    assert as_json["views"][1]["newest_event_us"] is None
    assert as_json["last_error"].endswith("no column 'f1'")
    assert status_table(fpb.FeatureStatusResponse(), now).startswith("no model version")


def test_sizes_and_ages_read_like_people_write_them() -> None:
    assert [size(n) for n in (512, 6400, 3 * 2**30, 5 * 2**40)] == [
        "512 B",
        "6.2 KiB",
        "3.0 GiB",
        "5120.0 GiB",
    ]
    assert [age(s) for s in (-3, 42, 185, 7260, 4 * 86400 + 3600)] == [
        "0s",
        "42s",
        "3m 5s",
        "2h 1m",
        "4d 1h",
    ]


BOUNDS_S = [bound / 1e9 for bound in _core.LOOKUP_BUCKETS_NS]


def test_dashboard_feature_figures_between_two_samples() -> None:
    features = snapshot_with_features()["models"][0]["features"]
    before = FeatureSample.of(features, BOUNDS_S)
    assert before.lookups == (26, 4, 2, 0) and before.rejected == 1
    # user: 4 more gathers, all in the 2.5-5 µs bucket; card: none.
    slower = {"counts": [5, 2, 4] + [0] * 17, "sum_ns": 21_000}
    later = {
        **features,
        "gathers": 9,
        "gather_ns": 4_500_000,
        "views": [
            view_entry(
                "user",
                lookups={"hit": 16, "miss": 6, "stale": 2, "unavailable": 0},
                latency=slower,
            ),
            view_entry("card", lookups={"hit": 20, "miss": 0, "stale": 0, "unavailable": 0}),
        ],
    }
    figures = feature_figures(before, FeatureSample.of(later, BOUNDS_S), 2.0)
    user_p99 = figures.pop("feature_lookup_p99_ms:user")
    assert user_p99 is not None and 0.0025 < user_p99 <= 0.005
    assert figures == {
        "feature_hits_per_s": 5.0,
        "feature_misses_per_s": 1.0,
        "feature_stale_per_s": 0.0,
        "feature_unavailable_per_s": 0.0,
        "feature_lookups_per_s": 6.0,
        "feature_hit_ratio": 10 / 12,
        "feature_gather_us": 500.0,
        "feature_redis_calls_per_s": None,  # no Redis views
        "feature_redis_errors_per_s": None,
        "feature_lookup_p99_ms:card": None,  # no gathers between the samples
    }
    assert set(figures) | {"feature_lookup_p99_ms:user"} == set(before.series_names())
    assert set(FEATURE_SERIES) < set(before.series_names())
    assert feature_figures(None, before, 1.0) == {}
    idle = feature_figures(before, before, 1.0)
    assert idle["feature_hit_ratio"] is None and idle["feature_gather_us"] is None

    panel = feature_panel(features, 1_700_000_660.5, BOUNDS_S)
    user, card = panel["views"]
    assert (panel["reloads"], panel["reload_failures"]) == (3, 1)
    assert user["newest_event_age_s"] == 60.0 and user["hit_ratio"] == 10 / 16
    assert (user["lookups"], user["miss"], user["stale"], user["rejected"]) == (16, 4, 2, 1)
    assert card["newest_event_age_s"] is None
    # 5 gathers <= 1 µs, 2 <= 2.5 µs since load: p50 within the first bucket, p99 the second.
    assert user["store"] == "embedded" and 0 < user["lookup_p50_ms"] <= 0.001
    assert 0.001 < user["lookup_p99_ms"] <= 0.0025
    assert panel["redis"] is None
