"""Feast itself, for the tests that check ferroserve against it: a tiny feature repository (an
Int64 entity `driver_id` with Float32 features in view `driver_stats`, a String entity
`user_name` with a Float64 feature in view `user_stats`, two parquet FileSources, a Redis online
store), Feast's CLI (`feast apply`, `feast materialize`) and its online read
(`get_online_features`).

Feast is not a test dependency (it pins pandas < 3, which the suite's environment is past): it
runs from the Python named by FEAST_PYTHON (`make test` builds `.venv-feast` with `make
feast-venv` and sets it), else from the current interpreter if it has `feast`; otherwise the
tests skip, saying so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

PROJECT = "ferroserve_e2e"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
DRIVER_FEATURES = ["conv_rate", "acc_rate"]
USER_FEATURES = ["score"]


def feast_python() -> str:
    """The Python that has Feast, or a skip saying how to get one."""
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


def feast_env() -> dict[str, str]:
    return {**os.environ, "FEAST_USAGE": "False"}


def driver_table(
    ids: list[int], hours_old: list[float], conv: list[Any], acc: list[Any]
) -> pa.Table:
    """Rows of `driver_stats` as Feast's FileSource and `ferroserve features load` read them."""
    return pa.table(
        {
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(
                [NOW - timedelta(hours=hours) for hours in hours_old], pa.timestamp("us", tz="UTC")
            ),
            "conv_rate": pa.array(conv, pa.float32()),
            "acc_rate": pa.array(acc, pa.float32()),
        }
    )


def user_table(names: list[str], scores: list[float]) -> pa.Table:
    """Rows of `user_stats`, five minutes old."""
    return pa.table(
        {
            "user_name": pa.array(names, pa.string()),
            "event_timestamp": pa.array(
                [NOW - timedelta(minutes=5)] * len(names), pa.timestamp("us", tz="UTC")
            ),
            "score": pa.array(scores, pa.float64()),
        }
    )


def materialized_tables() -> tuple[pa.Table, pa.Table]:
    """The sources `feast materialize` writes in the tests: drivers 1001, 1002, 1003 (its
    conv_rate null) and -4, 1 to 4 hours old; users alice, bob and café."""
    drivers = driver_table(
        [1001, 1002, 1003, -4], [1, 2, 3, 4], [0.5, 0.25, None, 1e-3], [0.75, 1.5, 2.0, -3.0]
    )
    return drivers, user_table(["alice", "bob", "café"], [0.1, -2.5, 1e300])


def write_repo(repo: Path, port: int, drivers: pa.Table, users: pa.Table) -> None:
    """feature_store.yaml, repo.py and the two parquet sources (`drivers`, `users`)."""
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
    pq.write_table(drivers, data / "drivers.parquet")
    pq.write_table(users, data / "users.parquet")


def feast_cli(python: str, repo: Path, *args: str) -> None:
    """`feast ARGS...` in `repo`, from the Feast venv."""
    command = [str(Path(python).parent / "feast"), *args]
    done = subprocess.run(
        command, cwd=repo, capture_output=True, text=True, env=feast_env(), check=False
    )
    assert done.returncode == 0, (command, done.stdout, done.stderr)


def materialize(python: str, repo: Path) -> None:
    """`feast materialize` of the last day (every source row is younger)."""
    start = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    feast_cli(python, repo, "materialize", start, end)


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
    python: str, repo: Path, view: str, features: list[str], key: str, keys: list[Any]
) -> list[Any]:
    """Feast's `get_online_features` of `keys`: per key its features' values (None: none)."""
    out = subprocess.run(
        [python, "-c", FEAST_READ, str(repo), view, ",".join(features), key, json.dumps(keys)],
        check=True,
        capture_output=True,
        text=True,
        env=feast_env(),
    )
    return list(json.loads(out.stdout))
