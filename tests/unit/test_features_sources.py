"""Snapshot files (Parquet, CSV, NPZ) read into the columns the feature store builds from: keys,
features in their declared dtype, event times in Unix microseconds; errors name file and column."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ferroserve.errors import ConfigError
from ferroserve.features.declaration import SnapshotSource
from ferroserve.features.sources import Column, read_snapshot

KEY = [Column("user_id", "INT64")]
FEATURES = [Column("age", "FP32"), Column("visits", "INT64")]
TIMES = [
    datetime(2026, 1, 1, tzinfo=timezone.utc),
    datetime(2026, 1, 2, 12, 30, tzinfo=timezone.utc),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
]
TIMES_US = [int(t.timestamp()) * 1_000_000 for t in TIMES]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.array([7, 8, 9], dtype=np.int32),
            "age": np.array([30.5, 40.0, 50.25]),
            "visits": np.array([1.0, 2.0, 3.0]),
            "updated": pd.to_datetime(TIMES, utc=True),
            "updated_s": [t // 1_000_000 for t in TIMES_US],
            "extra": ["a", "b", "c"],
        }
    )


def _source(path: Path, **changes: object) -> SnapshotSource:
    fields: dict[str, object] = {
        "view": "user",
        "path": path,
        "format": path.suffix.lstrip("."),
        "key_columns": ("user_id",),
        "feature_columns": ("age", "visits"),
        "event_time_column": "updated",
        "event_time_unit": None,
    }
    fields.update(changes)
    return SnapshotSource(**fields)  # type: ignore[arg-type]


def _check(columns: object) -> None:
    keys, features, times = columns.keys, columns.features, columns.event_times_us  # type: ignore[attr-defined]
    assert keys["user_id"].dtype == np.int64 and keys["user_id"].tolist() == [7, 8, 9]
    assert features["age"].dtype == np.float32
    assert features["age"].tolist() == [30.5, 40.0, 50.25]
    assert features["visits"].dtype == np.int64 and features["visits"].tolist() == [1, 2, 3]
    assert all(a.flags.c_contiguous for a in features.values())
    assert times is not None and times.dtype == np.int64 and times.tolist() == TIMES_US
    assert columns.rows == 3  # type: ignore[attr-defined]


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "user.parquet"
    _frame().to_parquet(path)
    _check(read_snapshot(_source(path), KEY, FEATURES))


def test_parquet_timestamps_of_any_unit_and_zone(tmp_path: Path) -> None:
    path = tmp_path / "user.parquet"
    frame = _frame()
    frame["updated"] = (
        frame["updated"]
        .dt.tz_convert("America/New_York")
        .astype("datetime64[ms, America/New_York]")
    )
    frame.to_parquet(path)
    _check(read_snapshot(_source(path), KEY, FEATURES))


def test_csv_with_integer_seconds(tmp_path: Path) -> None:
    path = tmp_path / "user.csv"
    _frame().drop(columns=["updated"]).to_csv(path, index=False)
    source = _source(path, event_time_column="updated_s", event_time_unit="s")
    _check(read_snapshot(source, KEY, FEATURES))


def test_npz_with_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "user.npz"
    np.savez(
        path,
        user_id=np.array([7, 8, 9]),
        age=np.array([30.5, 40.0, 50.25]),
        visits=np.array([1, 2, 3], dtype=np.int32),
        updated_ms=np.array(TIMES_US) // 1000,
    )
    source = _source(path, event_time_column="updated_ms", event_time_unit="ms")
    _check(read_snapshot(source, KEY, FEATURES))


def test_renamed_columns_and_no_event_time(tmp_path: Path) -> None:
    path = tmp_path / "user.parquet"
    _frame().rename(columns={"user_id": "uid", "visits": "n"}).to_parquet(path)
    source = _source(
        path, key_columns=("uid",), feature_columns=("age", "n"), event_time_column=None
    )
    columns = read_snapshot(source, KEY, FEATURES)
    assert columns.keys["user_id"].tolist() == [7, 8, 9]
    assert columns.features["visits"].tolist() == [1, 2, 3]
    assert columns.event_times_us is None


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npz"])
def test_bytes_and_composite_keys(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"card{suffix}"
    merchants = ["m1", "caf\u00e9", "007"]  # digits stay text, not an integer
    cards = [3, 4, 5]
    if suffix == ".npz":
        np.savez(path, merchant=np.array(merchants), card=np.array(cards), risk=np.ones(3))
    else:
        frame = pd.DataFrame({"merchant": merchants, "card": cards, "risk": [1.0, 1.0, 1.0]})
        frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    source = _source(
        path,
        key_columns=("merchant", "card"),
        feature_columns=("risk",),
        event_time_column=None,
    )
    columns = read_snapshot(
        source, [Column("merchant", "BYTES"), Column("card", "INT64")], [Column("risk", "FP64")]
    )
    assert list(columns.keys["merchant"]) == [m.encode() for m in merchants]
    assert columns.keys["card"].tolist() == cards
    assert columns.features["risk"].dtype == np.float64


def _error(path: Path, **changes: object) -> str:
    with pytest.raises(ConfigError) as raised:
        read_snapshot(_source(path, **changes), KEY, FEATURES)
    return str(raised.value)


def test_missing_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "user.parquet"
    assert "does not exist" in _error(path)
    _frame().drop(columns=["visits"]).to_parquet(path)
    message = _error(path)
    assert str(path) in message and "no column(s) ['visits']" in message


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("visits", [1.0, 2.5, 3.0], "column 'visits' holds non-integral values"),
        ("age", [1.0, None, 3.0], "column 'age' has 1 null value(s)"),
        ("age", ["a", "b", "c"], "feature of type FP32 needs numbers"),
        ("user_id", ["7", "8", "9"], "string, but the key is INT64"),
        ("visits", [2.0**70, 1.0, 1.0], "outside int64's range"),
    ],
)
def test_value_errors_name_the_column(
    tmp_path: Path, column: str, values: list[object], message: str
) -> None:
    path = tmp_path / "user.parquet"
    frame = _frame()
    frame[column] = values
    frame.to_parquet(path)
    error = _error(path)
    assert str(path) in error and message in error


def test_integer_event_times_need_a_unit(tmp_path: Path) -> None:
    path = tmp_path / "user.parquet"
    _frame().to_parquet(path)
    assert "set the source's event_time_unit" in _error(path, event_time_column="updated_s")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "user.parquet"
    path.write_bytes(b"not parquet at all")
    assert "cannot be read as parquet" in _error(path)


def test_npz_arrays_must_be_one_row_each(tmp_path: Path) -> None:
    path = tmp_path / "user.npz"
    np.savez(path, user_id=np.arange(3), age=np.zeros((3, 2)), visits=np.arange(3))
    assert "every array must be 1-D" in _error(path, event_time_column=None)
