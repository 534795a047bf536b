"""A model with looked-up features for the operations tests (status, load, metrics, dashboards):
an identity graph whose input is the request's 4 dense values then the user view's 3 features,
so each response shows exactly what the store gathered. Users 0..USERS-1 except every fifth are
in the snapshot (misses), every third row of it is two days old (stale: max age one hour)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from tritonclient.grpc import InferenceServerClient, InferInput

from support import models as m
from support.repository import add_model

USERS = 100
MAX_AGE_S = 3600.0
FRESH_AGE_S = 600.0
STALE_AGE_S = 2 * 86400.0

CONFIG = """\
name: "{name}"
max_batch_size: 16
input [{{ name: "INPUT0" data_type: TYPE_FP32 dims: [7] }}]
output [{{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [7] }}]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
"""
FEATURES = """\
request_input {{ name: "user_id" data_type: TYPE_INT64 columns: 1 }}
request_input {{ name: "dense" data_type: TYPE_FP32 columns: 4 }}
view {{
  name: "user"
  key: "user_id"
  feature {{ name: "f0" data_type: TYPE_FP32 default_value: -1 }}
  feature {{ name: "f1" data_type: TYPE_FP32 default_value: -1 }}
  feature {{ name: "f2" data_type: TYPE_FP32 default_value: -1 }}
  max_age_seconds: {max_age}
  on_missing: {on_missing}
  source {{ path: "user.parquet" event_time_column: "updated" }}
}}
assembly {{
  model_input: "INPUT0"
  segment {{ request_input: "dense" }}
  segment {{ view: "user" }}
}}
{polling}
"""


def snapshot_ids() -> np.ndarray:
    return np.array([u for u in range(USERS) if u % 5 != 0], dtype=np.int64)


def user_snapshot(value: float, now: float) -> pd.DataFrame:
    """Every feature of every user holds `value`; every third row is stale."""
    ids = snapshot_ids()
    ages = np.where(np.arange(len(ids)) % 3 == 0, STALE_AGE_S, FRESH_AGE_S)
    frame = pd.DataFrame({"user_id": ids})
    for feature in ("f0", "f1", "f2"):
        frame[feature] = np.full(len(ids), value, dtype=np.float32)
    frame["updated"] = pd.to_datetime(now - ages, unit="s", utc=True)
    return frame


def write_snapshot(frame: pd.DataFrame, path: Path) -> None:
    """Writes beside the target, then renames, as docs/features.md tells users to."""
    partial = path.with_suffix(".partial")
    frame.to_parquet(partial)
    os.replace(partial, path)


def add_features_model(
    root: Path,
    name: str,
    on_missing: str = "USE_DEFAULT",
    polling: bool = True,
    value: float = 1.0,
    now: float | None = None,
) -> Path:
    """A model `name` with the user view; without `polling` only explicit loads read the file."""
    folder = add_model(root, name, m.identity_model("FP32", ["batch", 7]), CONFIG.format(name=name))
    (folder / "features.pbtxt").write_text(
        FEATURES.format(
            max_age=MAX_AGE_S,
            on_missing=on_missing,
            polling="" if polling else "disable_polling: true",
        ),
        encoding="utf-8",
    )
    write_snapshot(
        user_snapshot(value, time.time() if now is None else now), folder / "user.parquet"
    )
    return folder


def expected_results(users: np.ndarray) -> dict[str, int]:
    """How the lookups of `users` end: {"hit", "miss", "stale"} counts."""
    ids = list(snapshot_ids())
    results = {"hit": 0, "miss": 0, "stale": 0}
    for user in users.tolist():
        if user not in ids:
            results["miss"] += 1
        elif ids.index(user) % 3 == 0:
            results["stale"] += 1
        else:
            results["hit"] += 1
    return results


def infer_users(client: InferenceServerClient, model: str, users: np.ndarray) -> np.ndarray:
    """One request with a row per user (dense values 0..3); the OUTPUT0 rows."""
    rows = len(users)
    user_id = InferInput("user_id", [rows, 1], "INT64")
    user_id.set_data_from_numpy(users.astype(np.int64).reshape(rows, 1))
    dense = InferInput("dense", [rows, 4], "FP32")
    dense.set_data_from_numpy(np.tile(np.arange(4, dtype=np.float32), (rows, 1)))
    result = client.infer(model, [user_id, dense])
    output = result.as_numpy("OUTPUT0")
    assert output is not None
    return output


@contextlib.contextmanager
def feature_traffic(url: str, model: str, pause_s: float = 0.0) -> Iterator[list[int]]:
    """One client sending 1-4 random users (known, missing and stale ones) per request to
    `model` for the `with` block; yields [requests answered]."""
    stop = threading.Event()
    sent = [0]

    def traffic() -> None:
        rng = np.random.default_rng(11)
        with InferenceServerClient(url) as client:
            while not stop.is_set():
                infer_users(client, model, rng.integers(0, USERS + 10, int(rng.integers(1, 5))))
                sent[0] += 1
                stop.wait(pause_s)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join()
