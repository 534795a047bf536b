"""A Redis feature view is as visible as an embedded one, on a running server (`ferroserve serve`
with its metrics sidecar) whose model reads its user view from a redis-server this test runs:
after traffic the sidecar's /metrics has the store's calls and rows and the view's lookup
latency histogram (an embedded view's too), and `ferroserve features status` shows the view as
a Redis one, its store connected, with its calls and latency; after redis-server stops, the
failed calls are counted by kind, the store is down in both, with the last error's message;
once it is back, up again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve.cli import main
from support import features as f
from support.metrics import Samples, scrape, value, wait_for
from support.redis import RedisServer, redis_server_binary
from support.redis_features import add_redis_features_model, known_and_missing, write_user_rows
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)
LATENCY = "ferroserve_feature_lookup_duration_seconds"
MODEL = {"model": "scored", "version": "1"}


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_server_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Path:
    """`scored` (its user view in Redis) and `embedded` (the same view from a snapshot)."""
    root = tmp_path_factory.mktemp("redis-visible")
    add_redis_features_model(root, "scored", redis_server.url)
    f.add_features_model(root, "embedded")
    return root


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "redis-visible.log"
    with ServerProcess(repository, log, ["--metrics-interval-ms", "250"]) as process:
        process.wait_ready()
        yield process


def status_json(server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`ferroserve features status --model scored --json`, run in this process."""
    capsys.readouterr()
    assert main(["features", "status", "--model", "scored", "--json", "--server", server.url]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["models"]
    return dict(entry)


def status_table(server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["features", "status", "--server", server.url]) == 0
    return capsys.readouterr().out


def metric(samples: Samples, name: str, **labels: str) -> float:
    found = value(samples, name, **MODEL, **labels)
    assert found is not None, (name, labels)
    return found


def features_of(user: int, server: ServerProcess) -> np.ndarray:
    """The user view's features `scored` served for `user` (its graph echoes them)."""
    with triton_grpc.InferenceServerClient(server.url) as client:
        return f.infer_users(client, "scored", np.array([user]))[0, 4:]


def failed_calls(samples: Samples) -> dict[str, float]:
    """`scored`'s failed Redis calls by kind."""
    return {
        kind: value(samples, "ferroserve_feature_redis_errors_total", **MODEL, kind=kind) or 0.0
        for kind in ("timeout", "connection", "protocol")
    }


def test_metrics_and_status_follow_traffic_an_outage_and_the_recovery(
    server: ServerProcess,
    redis_server: RedisServer,
    repository: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = status_json(server, capsys)
    redis = before["redis"]
    assert (redis["address"], redis["connected"], redis["calls"]) == (redis_server.url, None, 0)
    (view,) = before["views"]
    assert (view["view"], view["store"], view["loaded"]) == ("user", "redis", False)

    known, missing = known_and_missing(6)
    traffic_is_counted(server, redis_server, capsys, known, missing)
    redis_server.stop()
    try:
        an_outage_is_counted(server, capsys, known, calls=len(known) + len(missing))
    finally:
        redis_server.start()
    write_user_rows(repository / "scored")

    def back() -> bool:
        features_of(int(known[0]), server)
        return value(scrape(server.metrics_url), "ferroserve_feature_redis_up", **MODEL) == 1

    wait_for(back, "the Redis store up again", interval_s=0.3)
    assert status_json(server, capsys)["redis"]["connected"] is True


def traffic_is_counted(
    server: ServerProcess,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    known: np.ndarray,
    missing: np.ndarray,
) -> None:
    for user in known:
        np.testing.assert_array_equal(features_of(int(user), server), 1.0)
    for user in missing:
        np.testing.assert_array_equal(features_of(int(user), server), -1.0)  # the defaults
    with triton_grpc.InferenceServerClient(server.url) as client:
        f.infer_users(client, "embedded", f.snapshot_ids()[:3])
    calls = len(known) + len(missing)

    def counted() -> Samples | None:
        samples = scrape(server.metrics_url)
        done = value(samples, "ferroserve_feature_redis_calls_total", **MODEL) == calls
        return samples if done else None

    samples = wait_for(counted, f"{calls} Redis calls on /metrics")
    rows = {
        result: metric(samples, "ferroserve_feature_redis_rows_total", result=result)
        for result in ("found", "missing", "unavailable", "bad")
    }
    assert rows == {"found": len(known), "missing": len(missing), "unavailable": 0, "bad": 0}
    assert failed_calls(samples) == {"timeout": 0, "connection": 0, "protocol": 0}
    assert metric(samples, "ferroserve_feature_redis_up") == 1
    # One request at a time: no two requests' lookups could share a round trip.
    assert metric(samples, "ferroserve_feature_redis_round_trips_total") == calls
    # The Redis view's lookups and latency: one fetch (round trip) per request.
    assert metric(samples, "ferroserve_feature_lookups_total", view="user", result="hit") == 6
    assert metric(samples, "ferroserve_feature_lookups_total", view="user", result="miss") == 6
    assert metric(samples, f"{LATENCY}_count", view="user") == calls
    assert metric(samples, f"{LATENCY}_bucket", view="user", le="+Inf") == calls
    assert 0 < metric(samples, f"{LATENCY}_sum", view="user") < calls * 0.1
    # An embedded view's latency is its gather: one per batch.
    embedded = {"model": "embedded", "version": "1", "view": "user"}
    count = wait_for(
        lambda: value(scrape(server.metrics_url), f"{LATENCY}_count", **embedded),
        "the embedded view's lookup latency",
    )
    assert count >= 1

    status = status_json(server, capsys)
    redis = status["redis"]
    assert (redis["connected"], redis["calls"], redis["found"]) == (True, calls, len(known))
    assert redis["round_trips"] == calls
    assert redis["last_error"] is None and redis["last_answer_us"] is not None
    (view,) = status["views"]
    latency = view["latency"]
    assert latency["count"] == calls
    assert 0 < latency["p50_seconds"] <= latency["p99_seconds"] < 1
    table = status_table(server, capsys)
    line = next(row for row in table.splitlines() if row.startswith("scored"))
    assert line.split()[2:5] == ["user", "redis", "-"], line
    assert f"Redis {redis_server.url} connected; {calls} calls in {calls} round trips" in table


def an_outage_is_counted(
    server: ServerProcess, capsys: pytest.CaptureFixture[str], known: np.ndarray, calls: int
) -> None:
    """With redis-server stopped: 3 requests served the defaults, their 3 failed calls counted
    by kind, the store down in /metrics and in the status, with the last error."""
    for user in known[:3]:
        np.testing.assert_array_equal(features_of(int(user), server), -1.0)

    def down() -> Samples | None:
        samples = scrape(server.metrics_url)
        up = value(samples, "ferroserve_feature_redis_up", **MODEL)
        return samples if up == 0 and sum(failed_calls(samples).values()) == 3 else None

    samples = wait_for(down, "3 failed Redis calls and the store down on /metrics")
    assert failed_calls(samples)["protocol"] == 0  # a stopped server is no protocol error
    assert metric(samples, "ferroserve_feature_redis_rows_total", result="unavailable") == 3
    unavailable = metric(
        samples, "ferroserve_feature_lookups_total", view="user", result="unavailable"
    )
    assert unavailable == 3
    assert metric(samples, f"{LATENCY}_count", view="user") == calls + 3

    redis = status_json(server, capsys)["redis"]
    assert redis["connected"] is False
    last_error = redis["last_error"]
    assert last_error["kind"] in ("connection", "timeout") and last_error["message"]
    table = status_table(server, capsys)
    assert "NOT CONNECTED" in table and "last error" in table
