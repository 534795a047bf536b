"""ModelFeatures' reload and polling logic with a stand-in plan and store (no extension
classes needed), and the client view of a model with features."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import DATATYPES
from ferroserve.errors import ConfigError
from ferroserve.features.client import client_config, client_signature
from ferroserve.features.declaration import FEATURES_FILE, read_declaration
from ferroserve.features.store import ModelFeatures

DECLARATION = """\
request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
request_input { name: "dense" data_type: TYPE_FP32 columns: 4 }
view {
  name: "user"
  key: "user_id"
  feature { name: "a" data_type: TYPE_FP32 }
  source { path: "user.parquet" }
}
view {
  name: "item"
  key: "user_id"
  feature { name: "b" data_type: TYPE_FP32 }
  source { path: "item.csv" }
}
assembly {
  model_input: "x"
  segment { request_input: "dense" }
  segment { view: "user" }
  segment { view: "item" }
}
poll_interval_seconds: 0.05
"""


class StandInTable:
    def __init__(self, view: str, rows: int, columns: dict[str, Any]) -> None:
        self.view, self.rows, self.columns = view, rows, columns
        self.memory_bytes = 0
        self.duplicate_keys = 0


class StandInPlan:
    views = ("user", "item")

    def view_columns(self, view: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]], bool]:
        feature = "a" if view == "user" else "b"
        return [("user_id", "INT64")], [(feature, "FP32")], False


class StandInStore:
    """Records installs; `installed` maps view -> the feature values of its current table."""

    def __init__(self) -> None:
        self.generation = 0
        self.installed: dict[str, list[float]] = {}

    def build(
        self, view: str, keys: Any, features: Any, event_times_us: Any = None
    ) -> StandInTable:
        return StandInTable(view, len(keys["user_id"]), features)

    def install(self, tables: list[StandInTable]) -> int:
        self.generation += 1
        for table in tables:
            self.installed[table.view] = next(iter(table.columns.values())).tolist()
        return self.generation

    def status(self) -> list[dict[str, Any]]:
        return [{"view": view, "generation": self.generation} for view in self.installed]


def _write_user(folder: Path, value: float) -> None:
    pd.DataFrame({"user_id": [1, 2], "a": [value, value]}).to_parquet(folder / "user.parquet")


def _write_item(folder: Path, value: float) -> None:
    (folder / "item.csv").write_text(f"user_id,b\n1,{value}\n2,{value}\n", encoding="utf-8")


def _features(folder: Path) -> tuple[ModelFeatures, StandInStore]:
    (folder / FEATURES_FILE).write_text(DECLARATION, encoding="utf-8")
    _write_user(folder, 1.0)
    _write_item(folder, 10.0)
    declaration = read_declaration(folder)
    assert declaration is not None
    store = StandInStore()
    features = ModelFeatures("m", declaration, StandInPlan(), store)  # type: ignore[arg-type]
    features.reload()
    return features, store


def _touch_later(path: Path) -> None:
    """Moves the file's mtime forward: a rewrite within the file system's timestamp
    granularity must still look changed."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_first_load_installs_every_view_in_one_swap(tmp_path: Path) -> None:
    features, store = _features(tmp_path)
    assert store.generation == 1
    assert store.installed == {"user": [1.0, 1.0], "item": [10.0, 10.0]}
    assert (features.reloads, features.reload_failures) == (1, 0)
    assert features.changed_views() == []


def test_poll_reloads_only_the_changed_view(tmp_path: Path) -> None:
    features, store = _features(tmp_path)
    _write_user(tmp_path, 2.0)
    _touch_later(tmp_path / "user.parquet")
    result = features.poll_once()
    assert result is not None and result.views == ("user",) and result.generation == 2
    assert store.installed == {"user": [2.0, 2.0], "item": [10.0, 10.0]}
    assert features.poll_once() is None


def test_a_bad_file_keeps_the_old_snapshot_and_is_counted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    features, store = _features(tmp_path)
    (tmp_path / "item.csv").write_text("user_id,b\n1,not a number\n", encoding="utf-8")
    _touch_later(tmp_path / "item.csv")
    with caplog.at_level(logging.ERROR):
        assert features.poll_once() is None
    assert "still serving the previous snapshot" in caplog.text
    assert "item.csv" in caplog.text
    assert store.installed["item"] == [10.0, 10.0]
    assert features.reload_failures == 1 and features.last_error is not None
    # The same bad file is not retried on every tick; a new one is.
    assert features.poll_once() is None and features.reload_failures == 1
    _write_item(tmp_path, 20.0)
    _touch_later(tmp_path / "item.csv")
    _touch_later(tmp_path / "item.csv")
    assert features.poll_once() is not None
    assert store.installed["item"] == [20.0, 20.0] and features.last_error is None


def test_explicit_reload_raises(tmp_path: Path) -> None:
    features, _ = _features(tmp_path)
    (tmp_path / "user.parquet").unlink()
    with pytest.raises(ConfigError, match=r"user\.parquet does not exist"):
        features.reload(["user"])
    assert features.reload_failures == 1


def test_store_errors_become_config_errors(tmp_path: Path) -> None:
    features, store = _features(tmp_path)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _core.InvalidInputError("column 'a' has 3 values, key has 2")

    store.build = refuse  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match=r"snapshot .*user\.parquet \(view 'user'\): column"):
        features.reload(["user"])


def test_the_poller_thread_reloads_and_stops(tmp_path: Path) -> None:
    features, store = _features(tmp_path)
    features.start_polling()
    try:
        _write_item(tmp_path, 30.0)
        _touch_later(tmp_path / "item.csv")
        deadline = time.monotonic() + 10
        while store.installed["item"] != [30.0, 30.0] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.installed["item"] == [30.0, 30.0]
    finally:
        features.stop_polling()


def test_client_view_shows_the_request_inputs(tmp_path: Path) -> None:
    features, _ = _features(tmp_path)
    fp32 = DATATYPES["FP32"]
    model = ModelSignature(
        8,
        (TensorSpec("x", fp32, (6,), (6,)),),
        (TensorSpec("y", fp32, (2,), (2,)),),
    )
    shown = client_signature(features.declaration, model)
    assert [(s.name, s.datatype.name, s.dims) for s in shown.inputs] == [
        ("user_id", "INT64", (1,)),
        ("dense", "FP32", (4,)),
    ]
    assert shown.outputs == model.outputs and shown.max_batch_size == 8
    assert [layout.shape for layout in shown.input_layouts] == [(-1, 1), (-1, 4)]
    config = mc.ModelConfig(name="m", max_batch_size=8)
    config.input.add(name="x", data_type=mc.TYPE_FP32, dims=[6])
    config.output.add(name="y", data_type=mc.TYPE_FP32, dims=[2])
    answered = client_config(config, features.declaration)
    assert [(i.name, mc.DataType.Name(i.data_type), list(i.dims)) for i in answered.input] == [
        ("user_id", "TYPE_INT64", [1]),
        ("dense", "TYPE_FP32", [4]),
    ]
    assert [o.name for o in answered.output] == ["y"]
    assert [i.name for i in config.input] == ["x"]
