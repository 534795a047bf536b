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

import atexit
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
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


# Feast, run in one long-lived process per Feast Python: `import feast` alone costs ~10 s of
# CPU on the 2-core CI machine, and the tests make a dozen Feast calls. The worker reads one
# JSON request per line and answers one per line on a descriptor of its own (Feast's CLI prints
# to stdout). Each CLI call runs click's `feast` command in-process, as the `feast` script does,
# with the repository's modules (every repository has a `repo.py`) forgotten afterwards so the
# next repository's are imported afresh.
FEAST_WORKER = textwrap.dedent(
    """\
    import contextlib, io, json, os, sys, traceback

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever prints, even from C, goes to the worker's log
    sys.stdout = sys.stderr
    from feast import FeatureStore
    from feast.cli.cli import cli


    def run_cli(repo, args):
        cli.main(args=["--chdir", repo, *args], prog_name="feast", standalone_mode=False)
        return None


    def read(repo, view, features, key_name, keys):
        store = FeatureStore(repo_path=repo)
        rows = store.get_online_features(
            features=[f"{view}:{feature}" for feature in features],
            entity_rows=[{key_name: key} for key in keys],
        ).to_dict()
        return [[rows[feature][i] for feature in features] for i in range(len(keys))]


    for line in sys.stdin:
        request = json.loads(line)
        repo = request["repo"]
        path, modules = list(sys.path), set(sys.modules)
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                if request["op"] == "cli":
                    result = run_cli(repo, request["args"])
                else:
                    result = read(repo, *request["args"])
            answer = {"result": result}
        except BaseException:  # click raises SystemExit for a non-zero exit
            answer = {"error": traceback.format_exc() + output.getvalue()}
        finally:
            sys.path[:] = path
            for name in set(sys.modules) - modules:
                if (getattr(sys.modules[name], "__file__", None) or "").startswith(repo):
                    del sys.modules[name]
        answers.write(json.dumps(answer) + "\\n")
        answers.flush()
    """
)


class FeastWorker:
    """One Feast process serving the calls of the whole test session (see FEAST_WORKER)."""

    def __init__(self, python: str) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._process = subprocess.Popen(
            [python, "-c", FEAST_WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=feast_env(),
        )

    def call(self, op: str, repo: Path, args: list[Any]) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"op": op, "repo": str(repo), "args": args}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            self._log.seek(0)
            log = self._log.read().decode(errors="replace")[-4000:]
            raise AssertionError(f"the Feast worker exited ({op} {args}): {log}")
        answer = json.loads(line)
        assert "error" not in answer, (op, args, answer["error"])
        return answer["result"]

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()


_workers: dict[str, FeastWorker] = {}


def _worker(python: str) -> FeastWorker:
    if python not in _workers:
        _workers[python] = worker = FeastWorker(python)
        atexit.register(worker.close)
    return _workers[python]


def feast_cli(python: str, repo: Path, *args: str) -> None:
    """`feast ARGS...` in `repo`, run by the Feast venv (its CLI, in the session's worker)."""
    _worker(python).call("cli", repo, list(args))


def materialize(python: str, repo: Path) -> None:
    """`feast materialize` of the last day (every source row is younger)."""
    start = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    feast_cli(python, repo, "materialize", start, end)


def feast_read(
    python: str, repo: Path, view: str, features: list[str], key: str, keys: list[Any]
) -> list[Any]:
    """Feast's `get_online_features` of `keys`: per key its features' values (None: none)."""
    return list(_worker(python).call("read", repo, [view, features, key, keys]))
