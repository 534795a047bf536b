"""Feast itself writes Redis, ferroserve's Rust reader (rust/feast) reads it.

A tiny Feast feature repository (an Int64 entity and a String entity, two FileSource parquet
files, two FeatureViews, `online_store: type: redis`) is applied and materialized with Feast's
own CLI into a redis-server this test starts; the crate's `read` example then reads the rows
and must agree with Feast's own `get_online_features` value for value, nulls and missing
entities included, with the event times Feast stored.

Feast is not a test dependency (it pins pandas < 3, which the suite's environment is past):
the test runs it from the Python named by FEAST_PYTHON (`make test` builds `.venv-feast` with
`make feast-venv` and sets it), else from the current interpreter if it has `feast`, and skips
otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "ferroserve_e2e"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def feast_python() -> str:
    configured = os.environ.get("FEAST_PYTHON")
    if configured:
        return configured
    if importlib.util.find_spec("feast") is not None:
        return sys.executable
    pytest.skip(
        "feast is not installed: pip install 'feast[redis]' into a separate venv and set "
        "FEAST_PYTHON to its python (Feast pins pandas < 3; see docs/features.md)"
    )


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: `make test` installs Debian's {package} package")
        pytest.skip(f"{name} is not installed (Debian: apt-get install {package})")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_port() -> Iterator[int]:
    binary = tool("redis-server", "redis-server")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        server.kill()
        server.wait()


def write_repo(repo: Path, port: int) -> None:
    """feature_store.yaml, repo.py and the two parquet sources."""
    data = repo / "data"
    data.mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: {PROJECT}
            provider: local
            registry: {data / "registry.db"}
            online_store:
              type: redis
              connection_string: "localhost:{port}"
            offline_store:
              type: file
            entity_key_serialization_version: 3
            """
        )
    )
    (repo / "repo.py").write_text(
        textwrap.dedent(
            f"""\
            from datetime import timedelta

            from feast import Entity, FeatureView, Field, FileSource, ValueType
            from feast.types import Float32, Float64

            driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
            user = Entity(name="user", join_keys=["user_name"], value_type=ValueType.STRING)
            driver_stats = FeatureView(
                name="driver_stats",
                entities=[driver],
                ttl=timedelta(days=3650),
                schema=[
                    Field(name="conv_rate", dtype=Float32),
                    Field(name="acc_rate", dtype=Float32),
                ],
                source=FileSource(
                    path="{data / "drivers.parquet"}", timestamp_field="event_timestamp"
                ),
            )
            user_stats = FeatureView(
                name="user_stats",
                entities=[user],
                ttl=timedelta(days=3650),
                schema=[Field(name="score", dtype=Float64)],
                source=FileSource(
                    path="{data / "users.parquet"}", timestamp_field="event_timestamp"
                ),
            )
            """
        )
    )
    timestamp = pa.timestamp("us", tz="UTC")
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([1001, 1002, 1003, -4], pa.int64()),
                "event_timestamp": pa.array(
                    [NOW - timedelta(hours=hours) for hours in (1, 2, 3, 4)], timestamp
                ),
                "conv_rate": pa.array([0.5, 0.25, None, 1e-3], pa.float32()),
                "acc_rate": pa.array([0.75, 1.5, 2.0, -3.0], pa.float32()),
            }
        ),
        data / "drivers.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "user_name": pa.array(["alice", "bob", "café"], pa.string()),
                "event_timestamp": pa.array([NOW - timedelta(minutes=5)] * 3, timestamp),
                "score": pa.array([0.1, -2.5, 1e300], pa.float64()),
            }
        ),
        data / "users.parquet",
    )


FEAST_READ = textwrap.dedent(
    """\
    import json, sys
    from feast import FeatureStore

    store = FeatureStore(repo_path=sys.argv[1])
    view, features, key_name = sys.argv[2], sys.argv[3].split(","), sys.argv[4]
    keys = json.loads(sys.argv[5])
    rows = store.get_online_features(
        features=[f"{view}:{feature}" for feature in features],
        entity_rows=[{key_name: key} for key in keys],
    ).to_dict()
    print(json.dumps([[rows[feature][i] for feature in features] for i in range(len(keys))]))
    """
)


def feast_read(
    python: str, repo: Path, view: str, features: list[str], key: str, keys: list
) -> list:
    out = subprocess.run(
        [python, "-c", FEAST_READ, str(repo), view, ",".join(features), key, json.dumps(keys)],
        check=True,
        capture_output=True,
        text=True,
        env=feast_env(),
    )
    return json.loads(out.stdout)


def feast_env() -> dict[str, str]:
    return {**os.environ, "FEAST_USAGE": "False"}


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
    feast_cli = Path(python).parent / "feast"
    repo = tmp_path / "repo"
    write_repo(repo, redis_port)
    env = feast_env()
    subprocess.run([str(feast_cli), "apply"], cwd=repo, check=True, capture_output=True, env=env)
    start = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    subprocess.run(
        [str(feast_cli), "materialize", start, end],
        cwd=repo,
        check=True,
        capture_output=True,
        env=env,
    )

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
