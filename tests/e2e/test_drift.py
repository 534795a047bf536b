"""Drift monitoring end to end: models with a drift.pbtxt served in-process. Traffic drawn from
the reference raises no drift and a shifted one is flagged, whichever side answered (the native
front end, or the Python server for compressed requests), batched and unbatched; outputs are
profiled from the model's own answers on the reference inputs; the DriftService, the
`ferroserve drift` command, the metrics snapshot and reset show it; a bad drift.pbtxt or
reference fails the load saying what to fix."""

from __future__ import annotations

import asyncio
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from ferroserve import cli
from ferroserve._proto import drift_service_pb2 as dpb
from ferroserve.demo import mlp_model
from ferroserve.metrics.drift import STATISTICS, drift_snapshot
from ferroserve.server.app import Server
from support import models as m
from support.features import add_features_model, snapshot_ids
from support.inprocess import native_calls, python_calls, serve
from support.repository import add_model
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(180)
WIDTH = 6
CONFIG = """\
name: "{name}"
max_batch_size: 32
input [{{ name: "x" data_type: TYPE_FP32 dims: [{width}] }}]
output [{{ name: "y" data_type: TYPE_FP32 dims: [3] }}]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
"""
NOBATCH_CONFIG = """\
name: "{name}"
max_batch_size: 0
input [{{ name: "x" data_type: TYPE_FP32 dims: [1, {width}] }}]
output [{{ name: "y" data_type: TYPE_FP32 dims: [1, 3] }}]
"""
DRIFT = "thresholds { min_rows: 400 }\nwindow { rows: 600 }\n"
SERVICE = "/ferroserve.drift.v1.DriftService"


def reference_rows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, WIDTH)).astype(np.float32)


def add_drift_model(root: Path, name: str, config: str = CONFIG, drift: str = DRIFT) -> Path:
    model = mlp_model(inputs=WIDTH, hidden=(8,), outputs=3, input_name="x", output_name="y")
    folder = add_model(root, name, model, config.format(name=name, width=WIDTH))
    (folder / "drift.pbtxt").write_text(drift, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("drift")
    # NPZ with the input only: the outputs' reference comes from running the model on it.
    folder = add_drift_model(root, "batched")
    np.savez(folder / "1" / "drift_reference.npz", x=reference_rows(20_000))
    # Parquet with x[j] columns, for an unbatched model.
    folder = add_drift_model(root, "unbatched", NOBATCH_CONFIG)
    table = pd.DataFrame({f"x[{j}]": reference_rows(5_000)[:, j] for j in range(WIDTH)})
    table.to_parquet(folder / "1" / "drift_reference.parquet")
    # Only x[0] and x[1], categorical-free, from a CSV named in the file; a time window.
    folder = add_drift_model(
        root,
        "chosen",
        drift='reference: "ref.csv"\ntensor { name: "x" columns: [0, 1] }\n'
        "window { seconds: 3600 }\nthresholds { min_rows: 400 }\n",
    )
    table = pd.DataFrame({f"x[{j}]": reference_rows(5_000)[:, j] for j in range(WIDTH)})
    table.to_csv(folder / "1" / "ref.csv", index=False)
    return root


def infer_request(model: str, rows: np.ndarray, batched: bool = True) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="x", datatype="FP32")
    tensor.shape.extend(rows.shape if batched else [1, WIDTH])
    request.raw_input_contents.append(np.ascontiguousarray(rows, np.float32).tobytes())
    return request


def compressible(request: pb.ModelInferRequest) -> pb.ModelInferRequest:
    """gRPC sends a message it was asked to compress uncompressed when gzip would not shrink
    it; a long repetitive id makes it shrink, so it is forwarded to the Python server."""
    request.id = "compressed-" + "0" * 512
    return request


async def send(
    channel: grpc.aio.Channel,
    requests: list[pb.ModelInferRequest],
    compression: grpc.Compression | None = None,
) -> None:
    infer = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    for start in range(0, len(requests), 16):
        await asyncio.gather(
            *(infer(r, compression=compression) for r in requests[start : start + 16])
        )


def traffic(model: str, rows: int, shift: float, seed: int, per_request: int = 4) -> list[Any]:
    values = reference_rows(rows, seed) + shift
    return [
        infer_request(model, values[start : start + per_request])
        for start in range(0, rows, per_request)
    ]


async def report(channel: grpc.aio.Channel, model: str) -> dpb.VersionDrift:
    call = channel.unary_unary(
        f"{SERVICE}/Report",
        request_serializer=dpb.DriftReportRequest.SerializeToString,
        response_deserializer=dpb.DriftReportResponse.FromString,
    )
    (version,) = (await call(dpb.DriftReportRequest(model=model))).models
    return version


def window(version: dpb.VersionDrift, name: str) -> dpb.WindowDrift:
    (found,) = [w for w in version.windows if w.window == name]
    return found


async def reset(channel: grpc.aio.Channel, model: str) -> None:
    call = channel.unary_unary(
        f"{SERVICE}/Reset",
        request_serializer=dpb.DriftResetRequest.SerializeToString,
        response_deserializer=dpb.DriftResetResponse.FromString,
    )
    answer = await call(dpb.DriftResetRequest(model=model))
    assert [(v.model, v.version) for v in answer.reset] == [(model, "1")]


def test_reference_traffic_is_ok_and_a_shift_drifts_on_both_front_ends(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        # Native front end, batched: rows from the reference distribution.
        await send(channel, traffic("batched", 2_000, 0.0, seed=1))
        assert native_calls(server) == {"OK": 500}
        version = await report(channel, "batched")
        cumulative = window(version, "cumulative")
        assert cumulative.rows == 2_000
        assert cumulative.status == "ok"
        assert cumulative.judged == WIDTH + 3  # every input and output column
        names = [column.name for column in cumulative.columns]
        assert names == [f"x[{j}]" for j in range(WIDTH)] + ["y[0]", "y[1]", "y[2]"]
        assert all(column.verdict == "ok" for column in cumulative.columns)
        assert all(column.psi < 0.1 for column in cumulative.columns)
        # Windows of 600 rows (plus the batch that crosses the mark): three closed (numbered
        # from 0), the fourth open with the rest.
        last = window(version, "last_closed")
        assert last.index == 2
        assert 600 <= last.rows < 600 + 32
        assert 0 < window(version, "current").rows < 2_000 - 3 * 600 + 32

        # Reset, then half a standard deviation shifted, compressed: the Python server answers.
        await reset(channel, "batched")
        assert window(await report(channel, "batched"), "cumulative").rows == 0
        shifted = [compressible(r) for r in traffic("batched", 2_000, 0.5, seed=2)]
        await send(channel, shifted, grpc.Compression.Gzip)
        assert python_calls(server) == {"OK": 500}
        cumulative = window(await report(channel, "batched"), "cumulative")
        assert cumulative.rows == 2_000
        assert cumulative.status == "drift"
        drifted = {c.name for c in cumulative.columns if c.verdict == "drift"}
        assert {f"x[{j}]" for j in range(WIDTH)} <= drifted
        assert all("psi" in c.flagged_by for c in cumulative.columns if c.name.startswith("x"))

    serve(repository, scenario)


def test_an_unbatched_model_counts_each_request_as_a_row(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        values = reference_rows(600, seed=3) + 1.0
        await send(channel, [infer_request("unbatched", row, batched=False) for row in values])
        cumulative = window(await report(channel, "unbatched"), "cumulative")
        assert cumulative.rows == 600
        assert cumulative.status == "drift"
        assert {c.name for c in cumulative.columns if c.verdict == "drift"} >= {"x[0]", "x[5]"}

    serve(repository, scenario)


def test_chosen_columns_a_time_window_and_the_metrics_snapshot(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        await send(channel, traffic("chosen", 800, 0.0, seed=4))
        version = await report(channel, "chosen")
        assert version.window_policy == "3600 s"
        cumulative = window(version, "cumulative")
        assert [c.name for c in cumulative.columns] == ["x[0]", "x[1]"]
        assert not [w for w in version.windows if w.window == "last_closed"]
        model = server.registry.routes.resolve("chosen", "1")
        assert model.drift is not None
        snapshot = await asyncio.to_thread(drift_snapshot, model.drift)
        assert snapshot["columns_total"] == 2
        assert snapshot["windows"]["cumulative"]["rows"] == 800
        column = snapshot["windows"]["cumulative"]["columns"][0]
        assert set(column) == {"name", "values", "verdict", "non_finite_share", *STATISTICS}
        histogram = snapshot["histograms"][0]
        assert histogram["kind"] == "numeric"
        assert len(histogram["labels"]) == len(histogram["reference"])
        assert sum(histogram["reference"]) == 5_000
        assert sum(histogram["cumulative"]) == 800

    serve(repository, scenario)


def test_the_drift_command_prints_a_table_json_and_resets(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        await send(channel, traffic("batched", 800, 1.0, seed=5))
        address = f"127.0.0.1:{server.port}"

        def command(*args: str) -> tuple[int, str]:
            out = io.StringIO()
            with redirect_stdout(out):
                code = cli.main(["drift", *args, "--server", address])
            return code, out.getvalue()

        code, table = await asyncio.to_thread(command, "batched")
        assert code == 0
        assert "batched 1" in table
        assert "DRIFT" in table
        assert "x[0]" in table and "psi" in table
        code, text = await asyncio.to_thread(command, "batched", "--json")
        assert code == 0
        (version,) = json.loads(text)["models"]
        (cumulative,) = [w for w in version["windows"] if w["window"] == "cumulative"]
        assert int(cumulative["rows"]) == 800
        code, text = await asyncio.to_thread(command, "batched", "--reset")
        assert (code, text.strip()) == (0, "batched 1: windows reset")
        assert window(await report(channel, "batched"), "cumulative").rows == 0
        stderr = io.StringIO()
        with redirect_stderr(stderr):
            code, _ = await asyncio.to_thread(command, "nosuch")
        assert code == 1
        assert "NOT_FOUND" in stderr.getvalue()

    serve(repository, scenario)


BAD_DRIFT = [
    ("malformed", "bins: -1\n", None, "drift.pbtxt"),
    ("no_reference", DRIFT, None, "needs a reference dataset"),
    ("unknown_tensor", 'tensor { name: "z" }\n', "npz", "tensor 'z' is not an input or output"),
    ("wrong_width", DRIFT, "narrow", "has 2 reference column(s), the model has 6"),
    ("text_column", DRIFT, "text", "is not numeric"),
    ("float_categorical", 'tensor { name: "x" kind: CATEGORICAL }\n', "npz", "CATEGORICAL needs"),
]


@pytest.mark.parametrize(("name", "drift", "reference", "message"), BAD_DRIFT)
def test_a_bad_declaration_or_reference_fails_the_load(
    tmp_path: Path, name: str, drift: str, reference: str | None, message: str
) -> None:
    folder = add_drift_model(tmp_path, name, drift=drift)
    version = folder / "1"
    if reference == "npz":
        np.savez(version / "drift_reference.npz", x=reference_rows(100))
    elif reference == "narrow":
        np.savez(version / "drift_reference.npz", x=reference_rows(100)[:, :2])
    elif reference == "text":
        frame = pd.DataFrame({f"x[{j}]": ["a"] * 10 for j in range(WIDTH)})
        frame.to_parquet(version / "drift_reference.parquet")

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        (row,) = [row for row in server.registry.index() if row.name == name]
        assert row.state == "UNAVAILABLE"
        assert message in row.reason

    serve(tmp_path, scenario)


def test_a_model_without_drift_pbtxt_answers_failed_precondition(tmp_path: Path) -> None:
    model = mlp_model(inputs=WIDTH, hidden=(8,), outputs=3, input_name="x", output_name="y")
    add_model(tmp_path, "plain", model, CONFIG.format(name="plain", width=WIDTH))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await report(channel, "plain")
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "does not monitor drift" in (raised.value.details() or "")
        call = channel.unary_unary(
            f"{SERVICE}/Report",
            request_serializer=dpb.DriftReportRequest.SerializeToString,
            response_deserializer=dpb.DriftReportResponse.FromString,
        )
        assert not (await call(dpb.DriftReportRequest())).models

    serve(tmp_path, scenario)


PLUS_ONE_CONFIG = """\
name: "{name}"
max_batch_size: 32
input [{{ name: "INPUT0" data_type: TYPE_FP32 dims: [4] }}]
output [{{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [4] }}]
"""
CATEGORY_CONFIG = """\
name: "{name}"
max_batch_size: 32
input [{{ name: "INPUT0" data_type: TYPE_INT64 dims: [1] }}]
output [{{ name: "OUTPUT0" data_type: TYPE_INT64 dims: [1] }}]
"""


def raw(model: str, datatype: str, values: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="INPUT0", datatype=datatype)
    tensor.shape.extend(values.shape)
    request.raw_input_contents.append(values.tobytes())
    return request


def test_a_shifted_output_distribution_drifts_while_the_inputs_do_not(tmp_path: Path) -> None:
    """The reference holds the outputs a previous version gave (y = x); this version answers
    x + 1 on the same inputs: its outputs drift, its inputs stay ok."""
    folder = add_model(
        tmp_path, "plus_one", m.plus_constant_model(1.0), PLUS_ONE_CONFIG.format(name="plus_one")
    )
    (folder / "drift.pbtxt").write_text("thresholds { min_rows: 400 }\n", encoding="utf-8")
    x = np.random.default_rng(6).normal(size=(10_000, 4)).astype(np.float32)
    np.savez(folder / "1" / "drift_reference.npz", INPUT0=x, OUTPUT0=x)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        values = np.random.default_rng(7).normal(size=(1_000, 4)).astype(np.float32)
        await send(
            channel, [raw("plus_one", "FP32", values[i : i + 8]) for i in range(0, 1_000, 8)]
        )
        cumulative = window(await report(channel, "plus_one"), "cumulative")
        verdicts = {column.name: column.verdict for column in cumulative.columns}
        assert verdicts == {
            **{f"INPUT0[{j}]": "ok" for j in range(4)},
            **{f"OUTPUT0[{j}]": "drift" for j in range(4)},
        }
        assert cumulative.status == "drift"  # half the columns drift: the default share

    serve(tmp_path, scenario)


def test_a_new_category_drifts_an_integer_column(tmp_path: Path) -> None:
    """An INT64 column with 4 distinct reference values is categorical (AUTO): traffic with a
    category the reference never had moves it to "other" and drifts it."""
    folder = add_model(
        tmp_path,
        "category",
        m.identity_model("INT64", ["batch", 1]),
        CATEGORY_CONFIG.format(name="category"),
    )
    (folder / "drift.pbtxt").write_text("thresholds { min_rows: 400 }\n", encoding="utf-8")
    rng = np.random.default_rng(8)
    weights = [0.4, 0.3, 0.2, 0.1]
    reference = rng.choice([1, 2, 3, 4], size=(10_000, 1), p=weights).astype(np.int64)
    np.savez(folder / "1" / "drift_reference.npz", INPUT0=reference)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        same = rng.choice([1, 2, 3, 4], size=(800, 1), p=weights).astype(np.int64)
        await send(channel, [raw("category", "INT64", same[i : i + 8]) for i in range(0, 800, 8)])
        cumulative = window(await report(channel, "category"), "cumulative")
        assert [(c.name, c.verdict) for c in cumulative.columns] == [
            ("INPUT0", "ok"),
            ("OUTPUT0", "ok"),
        ]
        assert all(c.HasField("chi_squared_p_value") for c in cumulative.columns)
        await reset(channel, "category")
        new = rng.choice([1, 2, 3, 4, 9], size=(800, 1), p=[0.3, 0.2, 0.2, 0.1, 0.2]).astype(
            np.int64
        )
        await send(channel, [raw("category", "INT64", new[i : i + 8]) for i in range(0, 800, 8)])
        cumulative = window(await report(channel, "category"), "cumulative")
        assert [(c.name, c.verdict) for c in cumulative.columns] == [
            ("INPUT0", "drift"),
            ("OUTPUT0", "drift"),
        ]
        assert not cumulative.columns[0].HasField("wasserstein")  # numeric columns only

    serve(tmp_path, scenario)


def test_looked_up_features_are_monitored_like_request_inputs(tmp_path: Path) -> None:
    """A model with a feature join: its graph input INPUT0 is 4 request-time values then 3
    looked up per user (all 1.0 in the snapshot, -1 by default for a missing user). Known users
    keep the looked-up columns ok; unknown ones get the defaults, and those columns drift."""
    folder = add_features_model(tmp_path, "joined", polling=False)
    (folder / "drift.pbtxt").write_text('tensor { name: "INPUT0" }\n', encoding="utf-8")
    rng = np.random.default_rng(9)
    reference = np.hstack([rng.normal(size=(5_000, 4)), np.ones((5_000, 3))]).astype(np.float32)
    np.savez(folder / "1" / "drift_reference.npz", INPUT0=reference)
    fresh = [int(u) for i, u in enumerate(snapshot_ids()) if i % 3 != 0]

    def request(users: list[int]) -> pb.ModelInferRequest:
        built = pb.ModelInferRequest(model_name="joined")
        ids = built.inputs.add(name="user_id", datatype="INT64")
        ids.shape.extend([len(users), 1])
        dense = built.inputs.add(name="dense", datatype="FP32")
        dense.shape.extend([len(users), 4])
        built.raw_input_contents.append(np.array(users, np.int64).tobytes())
        built.raw_input_contents.append(
            rng.normal(size=(len(users), 4)).astype(np.float32).tobytes()
        )
        return built

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        # 2000 rows: the default min_rows, below which nothing is judged.
        known = [request(list(rng.choice(fresh, size=8))) for _ in range(250)]
        await send(channel, known)
        cumulative = window(await report(channel, "joined"), "cumulative")
        assert cumulative.rows == 2_000
        assert all(c.verdict == "ok" for c in cumulative.columns), cumulative
        await reset(channel, "joined")
        unknown = [request([1_000 + i] * 8) for i in range(250)]
        await send(channel, unknown)
        cumulative = window(await report(channel, "joined"), "cumulative")
        verdicts = {c.name: c.verdict for c in cumulative.columns}
        assert verdicts == {
            **{f"INPUT0[{j}]": "ok" for j in range(4)},
            **{f"INPUT0[{j}]": "drift" for j in range(4, 7)},
        }

    serve(tmp_path, scenario)
