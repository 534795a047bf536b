"""Redis feature views made visible: the Redis store's families and every view's lookup latency
histogram from a snapshot dict (sidecar/feature_exposition.py) and on the built-in dashboard
(sidecar/feature_history.py), the snapshot entry and the `features status` answer built from a
real store whose Redis cannot be reached (calls fail fast: nothing listens on the port), and how
the status reads for people and scripts."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest
from ferroserve import _core
from ferroserve._proto import feature_service_pb2 as fpb
from ferroserve.features.declaration import RedisSettings
from ferroserve.features.status_report import status_json, status_table
from ferroserve.metrics.features import feature_snapshot
from ferroserve.server.features import lookup_latency, redis_status
from ferroserve.sidecar.feature_exposition import feature_families
from ferroserve.sidecar.feature_history import FeatureSample, feature_figures, feature_panel
from prometheus_client.core import Metric

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
BUCKETS = len(_core.LOOKUP_BUCKETS_NS) + 1


def samples(families: list[Metric]) -> Samples:
    out: Samples = {}
    for family in families:
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"model": "fraud", "version": "2", **pairs}.items()))


def redis_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "address": "redis://10.0.0.5:6379/0",
        "calls": 40,
        "round_trips": 25,
        "rows": 70,
        "found": 50,
        "missing": 12,
        "unavailable": 6,
        "bad_rows": 2,
        "null_values": 3,
        "timeouts": 1,
        "connection_errors": 2,
        "protocol_errors": 0,
        "connected": True,
        "last_answer_us": 1_700_000_100_000_000,
        "last_failure": {"kind": "connection", "message": "refused", "at_us": 1},
    }
    entry.update(overrides)
    return entry


def view_entry(name: str, store: str, counts: list[int], sum_ns: int) -> dict[str, Any]:
    return {
        "view": name,
        "store": store,
        "loaded": store == "embedded",
        "rows": 80 if store == "embedded" else 0,
        "memory_bytes": 4096 if store == "embedded" else 0,
        "values_bytes": 960 if store == "embedded" else 0,
        "duplicate_keys": 0,
        "oldest_us": None,
        "newest_us": None,
        "generation": 1,
        "lookups": {"hit": 50, "miss": 12, "stale": 0, "unavailable": 8},
        "rejected": 0,
        "latency": {"counts": counts, "sum_ns": sum_ns},
    }


def snapshot(redis: dict[str, Any] | None) -> dict[str, Any]:
    # score (Redis): 30 fetches in the 250-500 µs bucket, 10 in 1-2.5 ms; user (embedded): 7
    # gathers of at most 1 µs.
    redis_counts = [0] * BUCKETS
    redis_counts[8], redis_counts[10] = 30, 10
    embedded_counts = [7] + [0] * (BUCKETS - 1)
    features = {
        "gathers": 7,
        "gathered_rows": 70,
        "gather_ns": 60_000,
        "reloads": 1,
        "reload_failures": 0,
        "views": [
            view_entry("user", "embedded", embedded_counts, 4_900),
            view_entry("score", "redis", redis_counts, 30 * 300_000 + 10 * 1_500_000),
        ],
        "redis": redis,
    }
    return {
        "feature_lookup_buckets_ns": list(_core.LOOKUP_BUCKETS_NS),
        "models": [{"model": "fraud", "version": "2", "state": "READY", "features": features}],
    }


def test_lookup_latency_is_a_histogram_per_view() -> None:
    got = samples(list(feature_families(snapshot(redis_entry()))))
    name = "ferroserve_feature_lookup_duration_seconds"
    assert got[(f"{name}_count", labels(view="score"))] == 40
    assert got[(f"{name}_sum", labels(view="score"))] == pytest.approx(0.024)
    # Cumulative `le` buckets in seconds: nothing below 250 µs, 30 by 500 µs, all 40 by 2.5 ms.
    assert got[(f"{name}_bucket", labels(view="score", le="0.00025"))] == 0
    assert got[(f"{name}_bucket", labels(view="score", le="0.0005"))] == 30
    assert got[(f"{name}_bucket", labels(view="score", le="0.001"))] == 30
    assert got[(f"{name}_bucket", labels(view="score", le="0.0025"))] == 40
    assert got[(f"{name}_bucket", labels(view="score", le="+Inf"))] == 40
    assert got[(f"{name}_bucket", labels(view="user", le="1e-06"))] == 7
    assert got[(f"{name}_count", labels(view="user"))] == 7
    buckets = [key for key in got if key[0] == f"{name}_bucket" and ("view", "user") in key[1]]
    assert len(buckets) == BUCKETS  # bounded: one series per bucket per view


def test_redis_store_families() -> None:
    got = samples(list(feature_families(snapshot(redis_entry()))))
    assert got[("ferroserve_feature_redis_calls_total", labels())] == 40
    assert got[("ferroserve_feature_redis_round_trips_total", labels())] == 25
    rows = "ferroserve_feature_redis_rows_total"
    results = ("found", "missing", "unavailable", "bad")
    by_result = {result: got[(rows, labels(result=result))] for result in results}
    assert by_result == {"found": 50, "missing": 12, "unavailable": 6, "bad": 2}
    assert sum(by_result.values()) == 70  # every row asked, once
    errors = "ferroserve_feature_redis_errors_total"
    by_kind = {k: got[(errors, labels(kind=k))] for k in ("timeout", "connection", "protocol")}
    assert by_kind == {"timeout": 1, "connection": 2, "protocol": 0}
    assert got[("ferroserve_feature_redis_null_values_total", labels())] == 3
    assert got[("ferroserve_feature_redis_up", labels())] == 1
    # The Redis view's lookups are the per-view families, as an embedded view's.
    lookups = "ferroserve_feature_lookups_total"
    assert got[(lookups, labels(view="score", result="unavailable"))] == 8
    # No snapshot gauges for a view without a snapshot.
    assert ("ferroserve_feature_snapshot_rows", labels(view="score")) not in got

    down = samples(list(feature_families(snapshot(redis_entry(connected=False)))))
    assert down[("ferroserve_feature_redis_up", labels())] == 0
    never = samples(list(feature_families(snapshot(redis_entry(connected=None)))))
    assert ("ferroserve_feature_redis_up", labels()) not in never
    assert never[("ferroserve_feature_redis_calls_total", labels())] == 40
    embedded_only = samples(list(feature_families(snapshot(None))))
    assert not [key for key in embedded_only if "_redis_" in key[0]]


def test_the_address_never_shows_credentials() -> None:
    def address(url: str) -> str:
        return RedisSettings(url, "p", 50, 3, {}).address

    assert address("redis://:secret@10.0.0.5:6379/0") == "redis://10.0.0.5:6379/0"
    assert address("redis://user:secret@cache/2?password=x") == "redis://cache/2"
    assert address("rediss://u:p@[::1]:6380") == "rediss://[::1]:6380"
    assert address("redis+unix:///run/redis.sock") == "redis+unix:///run/redis.sock"


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture()
def unreachable() -> tuple[_core.FeaturePlan, _core.FeatureStore, RedisSettings]:
    """A plan with one Redis view, `score`, whose Redis cannot be reached."""
    declaration = {
        "request_inputs": [{"name": "user_id", "datatype": "INT64", "columns": 1}],
        "views": [
            {
                "name": "score",
                "key": ["user_id"],
                "features": [{"name": "s", "datatype": "FP32", "default": -1.0}],
                "max_age_s": None,
                "on_missing": "default",
            }
        ],
        "assembly": [{"model_input": "x", "segments": [{"view": "score"}]}],
    }
    plan = _core.FeaturePlan(declaration, [("x", "FP32", [1])])
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    settings = RedisSettings(url, "fraud", 500, 3, {"score": {}})
    return plan, _core.FeatureStore(plan, settings.as_core()), settings


def test_a_store_that_cannot_reach_redis_says_so(
    unreachable: tuple[_core.FeaturePlan, _core.FeatureStore, RedisSettings],
) -> None:
    plan, store, settings = unreachable

    class Declaration:
        redis = settings

    class Features:  # the part of ModelFeatures the snapshot reads
        reloads = 0
        reload_failures = 0
        declaration = Declaration()

        def __init__(self) -> None:
            self.plan = plan
            self.store = store

        def status(self) -> list[dict[str, Any]]:
            return store.status()

    before = feature_snapshot(Features())  # type: ignore[arg-type]
    assert before["redis"]["connected"] is None and before["redis"]["calls"] == 0
    assert before["redis"]["address"] == f"redis://{settings.address.split('//')[1]}"
    assert "hunter2" not in str(before)

    keys = np.array([7, 8], dtype=np.int64).tobytes()
    for _ in range(3):
        (x,), _ = store.join([keys], 2)
        assert np.frombuffer(x, np.float32).tolist() == [-1.0, -1.0]  # the defaults
    entry = feature_snapshot(Features())  # type: ignore[arg-type]
    redis = entry["redis"]
    assert (redis["calls"], redis["rows"], redis["unavailable"]) == (3, 6, 6)
    assert redis["connection_errors"] + redis["timeouts"] == 3 and redis["protocol_errors"] == 0
    assert redis["connected"] is False and redis["last_answer_us"] is None
    assert redis["last_failure"]["kind"] in ("connection", "timeout")
    assert redis["last_failure"]["message"]
    (view,) = entry["views"]
    assert view["store"] == "redis" and not view["loaded"]
    assert view["lookups"]["unavailable"] == 6
    assert sum(view["latency"]["counts"]) == 3 and view["latency"]["sum_ns"] > 0

    status = fpb.FeatureStatusResponse()
    version = status.models.add(model="fraud", version="1")
    version.redis.CopyFrom(redis_status(settings.address, store.redis_stats() or {}))
    version.views.add(
        view="score",
        store=fpb.ViewStatus.REDIS,
        lookups=6,
        unavailable=6,
        latency=lookup_latency(*plan.stats()["views"]["score"]["latency"]),
    )
    as_json = status_json(status)["models"][0]
    assert as_json["redis"]["connected"] is False
    assert as_json["redis"]["calls"] == 3
    assert as_json["redis"]["last_error"]["message"]
    assert as_json["views"][0]["store"] == "redis"
    assert as_json["views"][0]["latency"]["count"] == 3
    text = status_table(status, now_unix=0)
    assert "NOT CONNECTED" in text and "hunter2" not in text and "hunter2" not in str(as_json)


def test_status_reads_for_people_and_scripts() -> None:
    now = 1_700_000_000.0
    status = fpb.FeatureStatusResponse()
    entry = status.models.add(model="fraud", version="2", reloads=1)
    entry.views.add(
        view="user",
        loaded=True,
        rows=80,
        lookups=10,
        hits=10,
        latency=fpb.LookupLatency(count=10, mean_seconds=1e-6, p50_seconds=8e-7, p99_seconds=2e-6),
    )
    entry.views.add(
        view="score",
        store=fpb.ViewStatus.REDIS,
        lookups=10,
        hits=9,
        misses=1,
        latency=fpb.LookupLatency(
            count=10, mean_seconds=4e-4, p50_seconds=3.5e-4, p99_seconds=2.2e-3
        ),
    )
    entry.redis.CopyFrom(
        fpb.RedisStoreStatus(
            address="redis://10.0.0.5:6379/0",
            connected=True,
            calls=10,
            round_trips=4,
            rows=10,
            found=9,
            missing=1,
            timeouts=2,
            last_error_kind="timeout",
            last_error="no answer within 50 ms",
            last_error_us=int((now - 185) * 1e6),
        )
    )
    header, user, score, *notes = status_table(status, now).splitlines()
    assert header.split()[-2:] == ["P50", "P99"]
    assert user.split()[3] == "embedded" and user.split()[-4:] == ["800", "ns", "2.0", "µs"]
    # A Redis view has no snapshot: its snapshot cells are dashes, its latency its fetches'.
    assert score.split()[3:8] == ["redis", "-", "-", "-", "-"]
    assert score.split()[-4:] == ["350.0", "µs", "2.20", "ms"]
    assert notes == [
        "fraud version 2: Redis redis://10.0.0.5:6379/0 connected; 10 calls in 4 round trips, "
        "10 rows (9 found, 1 missing, 0 unavailable, 0 bad); errors: 2 timeouts, 0 connection, "
        "0 protocol",
        "  last error 3m 5s ago (timeout): no answer within 50 ms",
    ]
    as_json = status_json(status)["models"][0]
    assert as_json["redis"]["last_error"] == {
        "kind": "timeout",
        "message": "no answer within 50 ms",
        "at_us": int((now - 185) * 1e6),
    }
    assert as_json["redis"]["last_answer_us"] is None
    assert as_json["views"][1]["latency"]["p99_seconds"] == 2.2e-3
    assert as_json["views"][0]["store"] == "embedded"
    not_asked = fpb.FeatureStatusResponse()
    not_asked.models.add(model="m", version="1").redis.address = "redis://h:1/0"
    assert "not asked yet" in status_table(not_asked, now)
    assert status_json(not_asked)["models"][0]["redis"]["connected"] is None


def test_lookup_latency_quantiles_from_the_histogram() -> None:
    counts = [0] * BUCKETS
    counts[8] = 99  # 250-500 µs
    counts[12] = 1  # 5-10 ms
    latency = lookup_latency(counts, 99 * 400_000 + 8_000_000)
    assert latency.count == 100
    assert latency.mean_seconds == pytest.approx(0.000476)
    assert 0.00025 < latency.p50_seconds < 0.0005
    assert latency.p99_seconds == pytest.approx(0.0005)
    assert lookup_latency([0] * BUCKETS, 0) == fpb.LookupLatency()


def test_dashboard_redis_figures_and_panel() -> None:
    bounds_s = [bound / 1e9 for bound in _core.LOOKUP_BUCKETS_NS]
    first = snapshot(redis_entry())["models"][0]["features"]
    later = snapshot(redis_entry(calls=60, timeouts=3, connection_errors=4, connected=False))[
        "models"
    ][0]["features"]
    score_counts = list(later["views"][1]["latency"]["counts"])
    score_counts[13] += 20  # 20 more fetches in the 10-25 ms bucket (waiting for Redis)
    later["views"][1]["latency"] = {"counts": score_counts, "sum_ns": 0}
    figures = feature_figures(
        FeatureSample.of(first, bounds_s), FeatureSample.of(later, bounds_s), 2.0
    )
    assert figures["feature_redis_calls_per_s"] == 10.0
    assert figures["feature_redis_errors_per_s"] == 2.0  # 4 more failed calls in 2 s
    p99 = figures["feature_lookup_p99_ms:score"]
    assert p99 is not None and 10 < p99 <= 25
    assert figures["feature_lookup_p99_ms:user"] is None

    panel = feature_panel(later, 1_000.0, bounds_s)
    score = panel["views"][1]
    assert score["store"] == "redis" and 0.25 <= score["lookup_p50_ms"] <= 0.5
    redis = panel["redis"]
    assert redis["address"] == "redis://10.0.0.5:6379/0" and redis["connected"] is False
    assert (redis["calls"], redis["errors"], redis["timeouts"]) == (60, 7, 3)
    assert redis["last_error"] == {
        "kind": "connection",
        "message": "refused",
        "age_s": 1_000.0 - 1e-6,
    }
