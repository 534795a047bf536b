"""A features.pbtxt checked against the model's graph inputs (the plan compiled in Rust): bad
declarations are load errors that name the file and say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import DATATYPES
from ferroserve.errors import ConfigError
from ferroserve.features.declaration import FEATURES_FILE, read_declaration
from ferroserve.features.store import compile_plan

GOOD = """\
request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
request_input { name: "dense" data_type: TYPE_FP32 columns: 4 }
view {
  name: "user"
  key: "user_id"
  feature { name: "f0" data_type: TYPE_FP32 }
  feature { name: "f1" data_type: TYPE_FP32 }
  feature { name: "f2" data_type: TYPE_FP32 }
  source { path: "user.parquet" }
}
assembly {
  model_input: "x"
  segment { request_input: "dense" }
  segment { view: "user" }
}
"""
# The graph takes x: [batch, 7] FP32.
GRAPH = ModelSignature(
    16,
    (TensorSpec("x", DATATYPES["FP32"], (7,), (7,)),),
    (TensorSpec("y", DATATYPES["FP32"], (3,), (3,)),),
)


def _compile(folder: Path, text: str) -> object:
    (folder / FEATURES_FILE).write_text(text, encoding="utf-8")
    declaration = read_declaration(folder)
    assert declaration is not None
    return compile_plan("m", declaration, GRAPH)


def test_a_fitting_declaration_compiles(tmp_path: Path) -> None:
    plan = _compile(tmp_path, GOOD)
    assert plan.request_inputs == [("user_id", "INT64", 1), ("dense", "FP32", 4)]  # type: ignore[attr-defined]
    assert plan.model_inputs == ["x"]  # type: ignore[attr-defined]
    assert plan.views == ["user"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        # An assembly naming a view that is not declared.
        (('segment { view: "user" }', 'segment { view: "usr" }'), ["usr", "user"]),
        # A key part that is not INT64 or BYTES.
        (
            ('name: "user_id" data_type: TYPE_INT64', 'name: "user_id" data_type: TYPE_FP32'),
            ["user_id", "FP32"],
        ),
        # 4 + 2 columns for a model input 7 wide.
        (('  feature { name: "f2" data_type: TYPE_FP32 }\n', ""), ["x", "7", "6"]),
        # A key naming no request input.
        (('key: "user_id"', 'key: "uid"'), ["uid"]),
        # An assembly for a graph input that does not exist.
        (('model_input: "x"', 'model_input: "z"'), ["z"]),
    ],
)
def test_bad_declarations_are_load_errors_that_say_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], words: list[str]
) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as raised:
        _compile(tmp_path, GOOD.replace(old, new))
    message = str(raised.value)
    assert str(tmp_path / FEATURES_FILE) in message
    for word in words:
        assert word in message, message
