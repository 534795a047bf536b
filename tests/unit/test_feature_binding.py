"""The feature-lookup binding (`_core.FeaturePlan`, `FeatureStore`, `FeatureTable`): declarations
converted from Python values with errors that say what to change, tables built from numpy
columns (INT64 and BYTES keys), installed atomically and reported by `status`."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from ferroserve import _core
from ferroserve.errors import FeatureNotFoundError, status_code_for

MODEL_INPUTS = [("x", "FP32", [3])]


def declaration(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_inputs": [
            {"name": "user_id", "datatype": "INT64", "columns": 1},
            {"name": "card", "datatype": "BYTES", "columns": 1},
            {"name": "dense", "datatype": "FP32", "columns": 1},
        ],
        "views": [
            {
                "name": "user",
                "key": ["user_id"],
                "features": [{"name": "age", "datatype": "FP32", "default": -1.0}],
                "max_age_s": None,
                "on_missing": "default",
            },
            {
                "name": "card",
                "key": ["card"],
                "features": [{"name": "limit", "datatype": "FP32"}],
                "on_missing": "reject",
            },
        ],
        "assembly": [
            {
                "model_input": "x",
                "segments": [{"request_input": "dense"}, {"view": "user"}, {"view": "card"}],
            }
        ],
    }
    base.update(overrides)
    return base


def test_a_plan_describes_what_clients_send_and_what_the_model_gets() -> None:
    plan = _core.FeaturePlan(declaration(), MODEL_INPUTS)
    assert plan.request_inputs == [
        ("user_id", "INT64", 1),
        ("card", "BYTES", 1),
        ("dense", "FP32", 1),
    ]
    assert plan.model_inputs == ["x"]
    assert plan.views == ["user", "card"]
    assert plan.view_columns("card") == ([("card", "BYTES")], [("limit", "FP32")], False)
    assert plan.stats()["views"]["user"]["lookups"] == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model_inputs": [("x", "FP32", [4])]}, "columns"),
        ({"views": [{"name": "user", "key": ["user_id"], "features": []}]}, "no features"),
        ({"assembly": [{"model_input": "x", "segments": [{"view": "ghost"}]}]}, "ghost"),
        (
            {"views": [{"name": "v", "key": ["user_id"], "features": [], "on_missing": "x"}]},
            "on_missing",
        ),
        ({"request_inputs": [{"name": "user_id", "datatype": "INT65", "columns": 1}]}, "INT65"),
    ],
)
def test_a_bad_declaration_says_what_to_change(change: dict[str, Any], words: str) -> None:
    model_inputs = change.pop("model_inputs", MODEL_INPUTS)
    with pytest.raises(_core.InvalidInputError, match=words):
        _core.FeaturePlan(declaration(**change), model_inputs)


def test_tables_build_install_and_report() -> None:
    plan = _core.FeaturePlan(declaration(), MODEL_INPUTS)
    store = _core.FeatureStore(plan)
    assert [row["loaded"] for row in store.status()] == [False, False]
    users = store.build(
        "user",
        {"user_id": np.array([1, 2, 2], np.int64)},
        {"age": np.array([30, 40, 41], np.float32)},
    )
    assert (users.rows, users.duplicate_keys) == (2, 1)
    cards = store.build(
        "card",
        {"card": [b"a", "b\u00e9"]},
        {"limit": np.array([1.0, 2.0], np.float32)},
        event_times_us=np.array([5, 9], np.int64),
    )
    assert store.install([users, cards]) == 1
    status = {row["view"]: row for row in store.status()}
    assert status["user"]["rows"] == 2 and status["user"]["values_bytes"] == 8
    assert status["user"]["memory_bytes"] >= 8
    assert (status["card"]["oldest_us"], status["card"]["newest_us"]) == (5, 9)
    with pytest.raises(_core.InvalidInputError, match="once"):
        store.install([users])


@pytest.mark.parametrize(
    ("keys", "features", "words"),
    [
        ({}, {"age": np.zeros(1, np.float32)}, "user_id"),
        ({"user_id": np.zeros(1, np.int64)}, {"age": np.zeros(1, np.float64)}, "float32|FP32"),
        ({"user_id": np.zeros(2, np.int64)}, {"age": np.zeros(1, np.float32)}, "has 1 rows"),
        ({"user_id": np.zeros(2, np.int32)}, {"age": np.zeros(2, np.float32)}, "int64"),
    ],
)
def test_bad_columns_are_refused(
    keys: dict[str, Any], features: dict[str, Any], words: str
) -> None:
    store = _core.FeatureStore(_core.FeaturePlan(declaration(), MODEL_INPUTS))
    with pytest.raises(_core.InvalidInputError, match=words):
        store.build("user", keys, features)


def test_a_rejected_key_is_not_found() -> None:
    assert status_code_for(FeatureNotFoundError("no row")) == grpc.StatusCode.NOT_FOUND
