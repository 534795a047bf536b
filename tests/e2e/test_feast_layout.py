"""Feast itself writes Redis, ferroserve's Rust reader (rust/feast) reads it.

A tiny Feast feature repository (support/feast.py: an Int64 and a String entity, two FileSource
parquet files, two FeatureViews, `online_store: type: redis`) is applied and materialized with
Feast's own CLI into a redis-server this test starts; the crate's `read` example then reads the
rows and must agree with Feast's own `get_online_features` value for value, nulls and missing
entities included, with the event times Feast stored. (A model serving what Feast wrote, and
Feast reading what `ferroserve features load` wrote: tests/e2e/test_feast_serving.py.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support.feast import (
    NOW,
    PROJECT,
    feast_cli,
    feast_python,
    feast_read,
    materialize,
    materialized_tables,
    tool,
    write_repo,
)
from support.redis import RedisServer, redis_server_binary

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_port() -> Iterator[int]:
    server = RedisServer(redis_server_binary())
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def ferroserve_read(
    port: int, view: str, features: list[str], datatype: str, key: str, key_type: str, keys: list
) -> dict:
    cargo = tool("cargo", "cargo")
    out = subprocess.run(
        [
            cargo,
            "run",
            "-q",
            "-p",
            "ferroserve-feast",
            "--example",
            "read",
            "--",
            "--url",
            f"redis://127.0.0.1:{port}/0",
            "--project",
            PROJECT,
            "--view",
            view,
            "--features",
            ",".join(features),
            "--datatype",
            datatype,
            "--join-key",
            key,
            "--key-type",
            key_type,
            "--keys",
            ",".join(str(k) for k in keys),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


def test_rows_feast_materialized_read_the_same_through_the_rust_reader(
    tmp_path: Path, redis_port: int
) -> None:
    python = feast_python()
    repo = tmp_path / "repo"
    write_repo(repo, redis_port, *materialized_tables())
    feast_cli(python, repo, "apply")
    materialize(python, repo)

    # Int64 entity, Float32 features: a null (Feast stores it as an empty Value), a missing key.
    features = ["conv_rate", "acc_rate"]
    keys = [1001, 1002, 1003, -4, 999]
    expected = feast_read(python, repo, "driver_stats", features, "driver_id", keys)
    ours = ferroserve_read(redis_port, "driver_stats", features, "FP32", "driver_id", "int64", keys)
    statuses = [row["status"] for row in ours["rows"]]
    assert statuses == ["found", "found", "found", "found", "missing"], ours
    # The reader's default for a null is NaN, printed as null: Feast says None.
    served = [row.get("values", [None, None]) for row in ours["rows"]]
    assert served == expected, (served, expected)
    assert expected[2][0] is None and expected[4] == [None, None]
    event_times = [row["event_time_us"] for row in ours["rows"][:4]]
    assert event_times == [
        int((NOW - timedelta(hours=hours)).timestamp()) * 1_000_000 for hours in (1, 2, 3, 4)
    ]
    assert ours["stats"]["bad_rows"] == 0 and ours["stats"]["null_values"] == 1, ours["stats"]

    # String entity (UTF-8 keys), Float64 feature.
    keys = ["alice", "bob", "café", "nobody"]
    expected = feast_read(python, repo, "user_stats", ["score"], "user_name", keys)
    ours = ferroserve_read(redis_port, "user_stats", ["score"], "FP64", "user_name", "string", keys)
    served = [row.get("values", [None]) for row in ours["rows"]]
    assert served == expected == [[0.1], [-2.5], [1e300], [None]], (served, expected)

    # Float32 features read as FP64 widen exactly; as INT64 they are refused, never garbage.
    widened = ferroserve_read(
        redis_port, "driver_stats", ["acc_rate"], "FP64", "driver_id", "int64", [1002]
    )
    assert widened["rows"][0]["values"] == [1.5]
    refused = ferroserve_read(
        redis_port, "driver_stats", ["acc_rate"], "INT64", "driver_id", "int64", [1002]
    )
    assert refused["rows"][0]["status"] == "missing" and refused["stats"]["bad_rows"] == 1
