"""ferroserve serves a model whose feature views are in Redis in Feast's layout, against Feast
itself (support/feast.py: a tiny feature repository, Feast's CLI and online read, a
redis-server these tests start):

- Feast writes (`feast materialize`), `ferroserve serve` serves: every answer over gRPC
  (tritonclient, plain and gzip) equals onnxruntime run on the pandas join of the same parquet
  data: a null feature, a stale row and keys Feast has no row for get the defaults.
- `ferroserve features load --file` writes (no Feast), Feast's `get_online_features` reads the
  same values, and the served answers equal the pandas join again.

The model uses Feast's names where they differ from its own (`feast_name`), a String entity with
a non-ASCII key, an FP32 and an FP64 graph input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve.cli import main
from onnx import TensorProto, helper, numpy_helper
from support import models as m
from support.feast import (
    DRIVER_FEATURES,
    NOW,
    PROJECT,
    driver_table,
    feast_cli,
    feast_python,
    feast_read,
    materialize,
    materialized_tables,
    user_table,
    write_repo,
)
from support.redis import RedisServer, redis_server_binary
from support.repository import add_model, model_file
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(600)
MODEL = "feast_served"
DRIVER_DEFAULTS = {"conv": -1.0, "acc_rate": -2.0}
SCORE_DEFAULT = 7.5
DRIVER_MAX_AGE_S = 3.5 * 3600  # driver -4's row, 4 hours old, is stale

CONFIG = f"""\
name: "{MODEL}"
max_batch_size: 8
input [
  {{ name: "x" data_type: TYPE_FP32 dims: [4] }},
  {{ name: "s" data_type: TYPE_FP64 dims: [1] }}
]
output [{{ name: "y" data_type: TYPE_FP32 dims: [3] }}]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
"""
# Feast's view `driver_stats` as ferroserve's `driver`, its `conv_rate` as `conv`.
FEATURES_PBTXT = """\
request_input {{ name: "driver_id" data_type: TYPE_INT64 columns: 1 }}
request_input {{ name: "user_name" data_type: TYPE_STRING columns: 1 }}
request_input {{ name: "dense" data_type: TYPE_FP32 columns: 2 }}
view {{
  name: "driver"
  key: "driver_id"
  feature {{ name: "conv" data_type: TYPE_FP32 default_value: -1 feast_name: "conv_rate" }}
  feature {{ name: "acc_rate" data_type: TYPE_FP32 default_value: -2 }}
  max_age_seconds: {max_age}
  store: REDIS
  feast_name: "driver_stats"
}}
view {{
  name: "user_stats"
  key: "user_name"
  feature {{ name: "score" data_type: TYPE_FP64 default_value: 7.5 }}
  store: REDIS
}}
redis {{ url: "{url}" project: "{project}" }}
assembly {{
  model_input: "x"
  segment {{ request_input: "dense" }}
  segment {{ view: "driver" }}
}}
assembly {{
  model_input: "s"
  segment {{ view: "user_stats" }}
}}
"""


def scoring_model() -> onnx.ModelProto:
    """y = x @ W + Cast(Tanh(s)) * c: x [N, 4] FP32 (dense, conv, acc_rate), s [N, 1] FP64."""
    rng = np.random.default_rng(7)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Tanh", ["s"], ["squashed"]),
            helper.make_node("Cast", ["squashed"], ["s32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["s32", "c"], ["sc"]),
            helper.make_node("Add", ["xw", "sc"], ["y"]),
        ],
        "feast_scoring",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("s", TensorProto.DOUBLE, ["batch", 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [
            numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.standard_normal((1, 3)).astype(np.float32), "c"),
        ],
    )
    return m.finish(graph)


def model_repository(root: Path, redis_url: str) -> Path:
    folder = add_model(root, MODEL, scoring_model(), CONFIG)
    text = FEATURES_PBTXT.format(max_age=DRIVER_MAX_AGE_S, url=redis_url, project=PROJECT)
    (folder / "features.pbtxt").write_text(text, encoding="utf-8")
    return root


def expected(
    root: Path,
    drivers: pa.Table,
    users: pa.Table,
    driver_ids: list[int],
    user_names: list[str],
    dense: np.ndarray,
) -> np.ndarray:
    """onnxruntime on the pandas join of the parquet data: rows older than the max age, null
    values and keys without a row get the defaults."""
    frame = drivers.to_pandas().rename(columns={"conv_rate": "conv"})
    cutoff = pd.Timestamp(NOW) - pd.Timedelta(seconds=DRIVER_MAX_AGE_S)
    fresh = frame[frame["event_timestamp"] >= cutoff]
    joined = pd.DataFrame({"driver_id": driver_ids}).merge(fresh, on="driver_id", how="left")
    driver_values = joined[list(DRIVER_DEFAULTS)].fillna(DRIVER_DEFAULTS)
    scores = (
        pd.DataFrame({"user_name": user_names})
        .merge(users.to_pandas(), on="user_name", how="left")["score"]
        .fillna(SCORE_DEFAULT)
    )
    x = np.concatenate([dense, driver_values.to_numpy(np.float64)], axis=1).astype(np.float32)
    s = scores.to_numpy(np.float64).reshape(-1, 1)
    (y,) = m.reference(model_file(root, MODEL), {"x": x, "s": s})
    return np.asarray(y)


def serve_and_compare(
    root: Path,
    log: Path,
    drivers: pa.Table,
    users: pa.Table,
    sent: list[tuple[list[int], list[str]]],
) -> None:
    """Serves `root` and sends each (driver ids, user names) request plain and gzip: every
    answer equals `expected`."""
    rng = np.random.default_rng(8)
    with ServerProcess(root, log) as server:
        server.wait_ready()
        with triton_grpc.InferenceServerClient(server.url) as client:
            for driver_ids, user_names in sent:
                rows = len(driver_ids)
                dense = rng.standard_normal((rows, 2)).astype(np.float32)
                inputs = [
                    triton_grpc.InferInput("driver_id", [rows, 1], "INT64"),
                    triton_grpc.InferInput("user_name", [rows, 1], "BYTES"),
                    triton_grpc.InferInput("dense", [rows, 2], "FP32"),
                ]
                inputs[0].set_data_from_numpy(np.array(driver_ids, np.int64).reshape(-1, 1))
                names = np.array([[name.encode()] for name in user_names], dtype=np.object_)
                inputs[1].set_data_from_numpy(names)
                inputs[2].set_data_from_numpy(dense)
                want = expected(root, drivers, users, driver_ids, user_names, dense)
                for compression in (None, "gzip"):
                    # A long, repetitive id: gRPC sends a message uncompressed when gzip would
                    # not shrink it, and only compressed ones reach the Python server.
                    answer = client.infer(
                        MODEL,
                        inputs,
                        request_id="0" * 512,
                        compression_algorithm=compression,
                    )
                    got = answer.as_numpy("y")
                    assert got is not None
                    np.testing.assert_allclose(
                        got,
                        want,
                        rtol=1e-5,
                        atol=1e-6,
                        err_msg=str((compression, driver_ids, user_names)),
                    )


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer(redis_server_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_model_serves_what_feast_materialized(tmp_path: Path, redis: RedisServer) -> None:
    python = feast_python()
    repo = tmp_path / "repo"
    drivers, users = materialized_tables()
    write_repo(repo, redis.port, drivers, users)
    feast_cli(python, repo, "apply")
    materialize(python, repo)

    root = model_repository(tmp_path / "models", redis.url)
    sent = [
        # found, found, a null conv_rate, stale (4 h > 3.5 h), no row in Feast
        ([1001, 1002, 1003, -4, 999], ["alice", "bob", "café", "nobody", "alice"]),
        ([999], ["nobody"]),
        ([1002, 1001], ["café", "bob"]),
    ]
    serve_and_compare(root, tmp_path / "server.log", drivers, users, sent)


def test_rows_ferroserve_loads_feast_reads_and_a_model_serves(
    tmp_path: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ferroserve features load --file` writes both views (files with ferroserve's column
    names); Feast, whose registry knows the views (`feast apply`, nothing materialized), reads
    exactly the values written; the model serves them."""
    python = feast_python()
    drivers = driver_table([2001, 2002, -7], [0.5, 1, 3], [0.1, -0.3, 7.25], [1.0, 0.5, -2.0])
    users = user_table(["dora", "émile"], [3.25, -1e-3])
    repo = tmp_path / "repo"
    write_repo(repo, redis.port, drivers, users)
    feast_cli(python, repo, "apply")

    root = model_repository(tmp_path / "models", redis.url)
    files = {
        "driver": drivers.rename_columns(["driver_id", "event_timestamp", "conv", "acc_rate"]),
        "user_stats": users,
    }
    for view, table in files.items():
        path = tmp_path / f"{view}.parquet"
        pq.write_table(table, path)
        status = main(
            [
                *("features", "load", "--model", MODEL, "--view", view, "--file", str(path)),
                *("--model-repository", str(root)),
            ]
        )
        out, err = capsys.readouterr()
        assert status == 0, err
        assert f"wrote {table.num_rows} rows of view {view}" in out, out

    read = feast_read(
        python, repo, "driver_stats", DRIVER_FEATURES, "driver_id", [2001, 2002, -7, 999]
    )
    # Float32 values as Feast returns them: the float32, widened to a Python float.
    columns = [drivers[feature].to_pylist() for feature in DRIVER_FEATURES]
    written = [[float(np.float32(value)) for value in row] for row in zip(*columns, strict=True)]
    assert read == [*written, [None, None]], read
    read = feast_read(python, repo, "user_stats", ["score"], "user_name", ["dora", "émile", "x"])
    assert read == [[3.25], [-1e-3], [None]], read

    sent = [([2001, 2002, -7, 999], ["dora", "émile", "x", "dora"]), ([-7], ["émile"])]
    serve_and_compare(root, tmp_path / "server.log", drivers, users, sent)
