"""A model whose user view is in Redis (Feast's layout), for the tests that watch Redis views
(metrics, `features status`, dashboards): support.features' identity graph and request inputs
(user_id, dense), the same three features, stored in a redis-server the test runs
(support.redis). Users 0..USERS-1 except every fifth have a fresh row; the others miss."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ferroserve import _core
from ferroserve.features.declaration import read_declaration

from support import models as m
from support.features import CONFIG, USERS, snapshot_ids
from support.repository import add_model

PROJECT = "visible"
FEATURES = """\
request_input {{ name: "user_id" data_type: TYPE_INT64 columns: 1 }}
request_input {{ name: "dense" data_type: TYPE_FP32 columns: 4 }}
view {{
  name: "user"
  key: "user_id"
  feature {{ name: "f0" data_type: TYPE_FP32 default_value: -1 }}
  feature {{ name: "f1" data_type: TYPE_FP32 default_value: -1 }}
  feature {{ name: "f2" data_type: TYPE_FP32 default_value: -1 }}
  on_missing: USE_DEFAULT
  store: REDIS
}}
redis {{ url: "{url}" project: "{project}" timeout_ms: {timeout_ms} }}
assembly {{
  model_input: "INPUT0"
  segment {{ request_input: "dense" }}
  segment {{ view: "user" }}
}}
"""


def add_redis_features_model(
    root: Path, name: str, url: str, value: float = 1.0, timeout_ms: int = 100
) -> Path:
    """A model `name` whose user view is in the Redis at `url`; its rows (every feature
    `value`) are written there now."""
    folder = add_model(root, name, m.identity_model("FP32", ["batch", 7]), CONFIG.format(name=name))
    (folder / "features.pbtxt").write_text(
        FEATURES.format(url=url, project=PROJECT, timeout_ms=timeout_ms), encoding="utf-8"
    )
    write_user_rows(folder, value)
    return folder


def write_user_rows(folder: Path, value: float = 1.0) -> None:
    """The fresh rows of support.features.snapshot_ids() into the model's Redis, as `feast
    materialize` would write them (again after a restart: the tests' Redis keeps nothing)."""
    declaration = read_declaration(folder)
    assert declaration is not None and declaration.redis is not None
    ids = snapshot_ids()
    written = _core.feast_write(
        declaration.plan,
        declaration.redis.as_core(),
        "user",
        {"user_id": ids},
        {f: np.full(len(ids), value, dtype=np.float32) for f in ("f0", "f1", "f2")},
        np.full(len(ids), int((time.time() - 60) * 1e6), dtype=np.int64),
    )
    assert written == (len(ids), 0)


def known_and_missing(count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` users with a row, and `count` without (every fifth, or past USERS)."""
    known = snapshot_ids()[:count]
    missing = np.array([u for u in range(USERS + count * 5) if u % 5 == 0][:count])
    return known, missing
