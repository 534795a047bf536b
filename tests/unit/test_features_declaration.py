"""features.pbtxt parsing: the declaration the plan compiles, the snapshot sources, and the
errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from ferroserve.errors import ConfigError
from ferroserve.features.declaration import (
    DEFAULT_POLL_INTERVAL_S,
    FEATURES_FILE,
    read_declaration,
)

EXAMPLE = """\
request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
request_input { name: "dense" data_type: TYPE_FP32 columns: 4 }
view {
  name: "user"
  key: "user_id"
  feature { name: "age" data_type: TYPE_FP32 default_value: -1 }
  feature { name: "visits" data_type: TYPE_INT64 default_value: 0 column: "n_visits" }
  max_age_seconds: 3600
  on_missing: REJECT
  source {
    path: "features/user.parquet"
    key_column: "uid"
    event_time_column: "updated"
    event_time_unit: SECONDS
  }
}
assembly {
  model_input: "x"
  segment { request_input: "dense" }
  segment { view: "user" }
}
poll_interval_seconds: 0.5
"""


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FEATURES_FILE).write_text(text, encoding="utf-8")
    return folder


def test_no_file_means_no_features(tmp_path: Path) -> None:
    assert read_declaration(tmp_path) is None


def test_example_becomes_the_plan_declaration(tmp_path: Path) -> None:
    declaration = read_declaration(_write(tmp_path, EXAMPLE))
    assert declaration is not None
    assert declaration.plan == {
        "request_inputs": [
            {"name": "user_id", "datatype": "INT64", "columns": 1},
            {"name": "dense", "datatype": "FP32", "columns": 4},
        ],
        "views": [
            {
                "name": "user",
                "key": ["user_id"],
                "features": [
                    {"name": "age", "datatype": "FP32", "default": -1.0},
                    {"name": "visits", "datatype": "INT64", "default": 0},
                ],
                "max_age_s": 3600.0,
                "on_missing": "reject",
            }
        ],
        "assembly": [
            {"model_input": "x", "segments": [{"request_input": "dense"}, {"view": "user"}]}
        ],
    }
    assert isinstance(declaration.plan["views"][0]["features"][1]["default"], int)
    assert [(s.name, s.datatype, s.columns) for s in declaration.request_inputs] == [
        ("user_id", "INT64", 1),
        ("dense", "FP32", 4),
    ]
    (source,) = declaration.sources
    assert source.path == tmp_path / "features" / "user.parquet"
    assert source.format == "parquet"
    assert source.key_columns == ("uid",)
    assert source.feature_columns == ("age", "n_visits")
    assert (source.event_time_column, source.event_time_unit) == ("updated", "s")
    assert declaration.poll_interval_s == 0.5


def test_defaults(tmp_path: Path) -> None:
    text = """\
request_input { name: "card" data_type: TYPE_STRING columns: 1 }
view {
  name: "card"
  key: "card"
  feature { name: "risk" data_type: TYPE_FP32 }
  source { path: "card.CSV" }
}
"""
    declaration = read_declaration(_write(tmp_path, text))
    assert declaration is not None
    view = declaration.plan["views"][0]
    assert (view["max_age_s"], view["on_missing"]) == (None, "default")
    assert declaration.plan["request_inputs"][0]["datatype"] == "BYTES"
    (source,) = declaration.sources
    assert (source.format, source.key_columns, source.event_time_column) == ("csv", ("card",), None)
    assert declaration.poll_interval_s == DEFAULT_POLL_INTERVAL_S


def test_disable_polling(tmp_path: Path) -> None:
    declaration = read_declaration(_write(tmp_path, EXAMPLE + "disable_polling: true\n"))
    assert declaration is not None and declaration.poll_interval_s is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("columns: 4", "columns: 0"), "request_input 'dense': columns must be >= 1"),
        (
            ("data_type: TYPE_FP32 columns", "columns"),
            "request_input 'dense': data_type is not set",
        ),
        (
            ("default_value: 0 column", "default_value: 0.5 column"),
            "feature 'visits': default_value 0.5 is not an integer",
        ),
        (("max_age_seconds: 3600", "max_age_seconds: -1"), "max_age_seconds must be >= 0"),
        (
            ('event_time_column: "updated"', ""),
            "view 'user' has max_age_seconds but its source has no event_time_column",
        ),
        (('path: "features/user.parquet"', 'path: "user.feather"'), "cannot tell the format"),
        (('path: "features/user.parquet"', ""), "view 'user' source: path is not set"),
        (('key_column: "uid"', 'key_column: "a" key_column: "b"'), "key_column names 2"),
        (('segment { view: "user" }', "segment { }"), "a segment names neither"),
        (("poll_interval_seconds: 0.5", "poll_interval_seconds: -2"), "poll_interval_seconds"),
        (("on_missing: REJECT", "on_missing: MAYBE"), "MAYBE"),
        (("max_age_seconds", "max_age"), "max_age"),
    ],
)
def test_errors_name_the_file_and_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in EXAMPLE
    _write(tmp_path, EXAMPLE.replace(old, new))
    with pytest.raises(ConfigError) as raised:
        read_declaration(tmp_path)
    assert str(tmp_path / FEATURES_FILE) in str(raised.value)
    assert message in str(raised.value)


def test_a_file_without_views_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, 'request_input { name: "a" data_type: TYPE_FP32 columns: 1 }\n')
    with pytest.raises(ConfigError, match="declares no view"):
        read_declaration(tmp_path)


REDIS_EXAMPLE = """\
request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
view {
  name: "user"
  key: "user_id"
  feature { name: "age" data_type: TYPE_FP32 default_value: -1 feast_name: "age_days" }
  feature { name: "visits" data_type: TYPE_FP32 }
  max_age_seconds: 3600
  store: REDIS
  feast_name: "user_stats_v2"
}
redis { url: "redis://127.0.0.1:6379/0" project: "fraud" }
assembly { model_input: "x" segment { view: "user" } }
"""


def test_a_redis_view_has_no_snapshot_and_feast_names(tmp_path: Path) -> None:
    declaration = read_declaration(_write(tmp_path, REDIS_EXAMPLE))
    assert declaration is not None
    assert declaration.sources == ()
    assert declaration.redis is not None
    assert declaration.redis.as_core() == {
        "url": "redis://127.0.0.1:6379/0",
        "project": "fraud",
        "timeout_ms": 50,
        "serialization_version": 3,
        "views": {"user": {"name": "user_stats_v2", "features": ["age_days", "visits"]}},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('url: "redis://127.0.0.1:6379/0" ', ""), "redis.url is not set"),
        (('url: "redis://127.0.0.1:6379/0"', 'url: "http://x"'), "redis.url must be redis://"),
        (('project: "fraud"', ""), "redis.project is not set"),
        (
            ('project: "fraud"', 'project: "f" timeout_ms: 5 entity_key_serialization_version: 1'),
            "must be 2 or 3",
        ),
        (("store: REDIS", 'store: REDIS source { path: "u.parquet" }'), "remove its source"),
        (
            ("store: REDIS", 'source { path: "u.parquet" event_time_column: "t" }'),
            "feast_name is for views with store: REDIS only",
        ),
    ],
)
def test_redis_errors_name_the_file_and_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in REDIS_EXAMPLE
    _write(tmp_path, REDIS_EXAMPLE.replace(old, new))
    with pytest.raises(ConfigError) as raised:
        read_declaration(tmp_path)
    assert str(tmp_path / FEATURES_FILE) in str(raised.value)
    assert message in str(raised.value)
