"""Online feature lookup end to end: models with a features.pbtxt served in-process, answered by
the native front end, whose outputs equal onnxruntime run on the request features joined with
the snapshot by pandas (missing keys and stale rows get the defaults; a reject-policy view
answers NOT_FOUND); BYTES and composite keys; ModelMetadata and ModelConfig show the request
inputs; hot reload under concurrent traffic serves every response from one snapshot."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from ferroserve.demo import mlp_model
from ferroserve.server.app import Server
from support import models as m
from support.inprocess import native_calls, python_calls, serve
from support.repository import add_model, model_file
from support.rpc import encode_bytes, raw_request
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(120)
SERVICE = "/inference.GRPCInferenceService"
NOW = time.time()
USERS = 200
FEATURES = ["f0", "f1", "f2"]
DEFAULTS = [-1.0, -2.0, -3.0]
MAX_AGE_S = 3600.0

MLP_CONFIG = """\
name: "{name}"
max_batch_size: 16
input [{{ name: "x" data_type: TYPE_FP32 dims: [7] }}]
output [{{ name: "y" data_type: TYPE_FP32 dims: [3] }}]
dynamic_batching {{ max_queue_delay_microseconds: 20000 }}
"""
# No batch dim for clients: the graph's [1, 7] is one row.
NOBATCH_CONFIG = """\
name: "{name}"
max_batch_size: 0
input [{{ name: "x" data_type: TYPE_FP32 dims: [7] reshape {{ shape: [1, 7] }} }}]
output [{{ name: "y" data_type: TYPE_FP32 dims: [3] reshape {{ shape: [1, 3] }} }}]
"""
USER_FEATURES = """\
request_input {{ name: "user_id" data_type: TYPE_INT64 columns: 1 }}
request_input {{ name: "dense" data_type: TYPE_FP32 columns: 4 }}
view {{
  name: "user"
  key: "user_id"
  feature {{ name: "f0" data_type: TYPE_FP32 default_value: -1 }}
  feature {{ name: "f1" data_type: TYPE_FP32 default_value: -2 }}
  feature {{ name: "f2" data_type: TYPE_FP32 default_value: -3 }}
  max_age_seconds: {max_age}
  on_missing: {on_missing}
  source {{ path: "user.parquet" event_time_column: "updated" }}
}}
assembly {{
  model_input: "x"
  segment {{ request_input: "dense" }}
  segment {{ view: "user" }}
}}
"""
# merchant (BYTES, from CSV: 2 features) and the (merchant, user_id) pair (composite, NPZ: 1).
BYTES_FEATURES = """\
request_input { name: "merchant" data_type: TYPE_STRING columns: 1 }
request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
request_input { name: "dense" data_type: TYPE_FP32 columns: 4 }
view {
  name: "merchant"
  key: "merchant"
  feature { name: "m0" data_type: TYPE_FP32 default_value: 7 }
  feature { name: "m1" data_type: TYPE_FP32 default_value: 8 }
  source { path: "merchant.csv" key_column: "merchant_name" }
}
view {
  name: "pair"
  key: "merchant"
  key: "user_id"
  feature { name: "p0" data_type: TYPE_FP32 default_value: 9 column: "spend" }
  source { path: "pair.npz" }
}
assembly {
  model_input: "x"
  segment { request_input: "dense" }
  segment { view: "merchant" }
  segment { view: "pair" }
}
"""
IDENTITY_CONFIG = """\
name: "reloading"
max_batch_size: 16
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [7] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [7] }]
dynamic_batching { max_queue_delay_microseconds: 1000 }
"""
RELOAD_FEATURES = """\
request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
request_input { name: "dense" data_type: TYPE_FP32 columns: 4 }
view {
  name: "user"
  key: "user_id"
  feature { name: "f0" data_type: TYPE_FP32 default_value: -1 }
  feature { name: "f1" data_type: TYPE_FP32 default_value: -1 }
  feature { name: "f2" data_type: TYPE_FP32 default_value: -1 }
  source { path: "user.parquet" }
}
assembly {
  model_input: "INPUT0"
  segment { request_input: "dense" }
  segment { view: "user" }
}
poll_interval_seconds: 0.05
"""
MERCHANTS = ["acme", "caf\u00e9", "0042", "zeta"]


def user_snapshot() -> pd.DataFrame:
    """Users 0..199 except every fifth; every third row is two days old (stale)."""
    rng = np.random.default_rng(1)
    ids = np.array([u for u in range(USERS) if u % 5 != 0], dtype=np.int64)
    ages = np.where(np.arange(len(ids)) % 3 == 0, 2 * 86400.0, 600.0)
    frame = pd.DataFrame({"user_id": ids})
    for feature in FEATURES:
        frame[feature] = rng.standard_normal(len(ids)).astype(np.float32)
    frame["updated"] = pd.to_datetime(NOW - ages, unit="s", utc=True)
    return frame


def merchant_snapshot() -> pd.DataFrame:
    return pd.DataFrame(
        {"merchant_name": MERCHANTS[:3], "m0": [1.5, 2.5, 3.5], "m1": [-1.0, -2.0, -3.0]}
    )


def pair_snapshot() -> dict[str, np.ndarray]:
    merchants = np.array(["acme", "acme", "caf\u00e9", "zeta"])
    return {
        "merchant": merchants,
        "user_id": np.array([1, 2, 1, 3], dtype=np.int64),
        "spend": np.array([10.0, 20.0, 30.0, 40.0], dtype=np.float32),
    }


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Writes beside the target, then renames: the poller never reads a half-written file."""
    partial = path.with_suffix(".partial")
    frame.to_parquet(partial)
    os.replace(partial, path)


def reload_snapshot(value: float) -> pd.DataFrame:
    """Snapshot N of the reload test: every cell of every user holds N."""
    frame = pd.DataFrame({"user_id": np.arange(USERS, dtype=np.int64)})
    for feature in FEATURES:
        frame[feature] = np.full(USERS, value, dtype=np.float32)
    return frame


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features-repository")
    mlp = mlp_model(inputs=7, hidden=(16,), outputs=3, input_name="x", output_name="y")
    models = [
        ("mlp_user", MLP_CONFIG, "USE_DEFAULT"),
        ("mlp_user_nobatch", NOBATCH_CONFIG, "USE_DEFAULT"),
        ("mlp_reject", MLP_CONFIG, "REJECT"),
    ]
    for name, config, on_missing in models:
        folder = add_model(root, name, mlp, config.format(name=name))
        (folder / "features.pbtxt").write_text(
            USER_FEATURES.format(max_age=MAX_AGE_S, on_missing=on_missing), encoding="utf-8"
        )
        write_parquet(user_snapshot(), folder / "user.parquet")
    folder = add_model(root, "mlp_merchant", mlp, MLP_CONFIG.format(name="mlp_merchant"))
    (folder / "features.pbtxt").write_text(BYTES_FEATURES, encoding="utf-8")
    merchant_snapshot().to_csv(folder / "merchant.csv", index=False)
    np.savez(folder / "pair.npz", **pair_snapshot())
    folder = add_model(root, "reloading", m.identity_model("FP32", ["batch", 7]), IDENTITY_CONFIG)
    (folder / "features.pbtxt").write_text(RELOAD_FEATURES, encoding="utf-8")
    write_parquet(reload_snapshot(0.0), folder / "user.parquet")
    return root


def unary(channel: grpc.aio.Channel, method: str = "ModelInfer") -> Any:
    request, response = {
        "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
        "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
        "ModelConfig": (pb.ModelConfigRequest, pb.ModelConfigResponse),
    }[method]
    return channel.unary_unary(
        f"{SERVICE}/{method}",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


def user_request(
    model: str, users: np.ndarray, dense: np.ndarray, batched: bool = True
) -> pb.ModelInferRequest:
    rows = len(users)
    return raw_request(
        model,
        [
            ("user_id", "INT64", [rows, 1] if batched else [1], users.astype(np.int64).tobytes()),
            ("dense", "FP32", [rows, 4] if batched else [4], dense.astype(np.float32).tobytes()),
        ],
    )


def joined_users(users: np.ndarray) -> np.ndarray:
    """The user features pandas joins for `users`: defaults for missing keys and stale rows."""
    snapshot = user_snapshot()
    fresh = snapshot[snapshot["updated"] >= pd.Timestamp(NOW - MAX_AGE_S, unit="s", tz="UTC")]
    merged = pd.DataFrame({"user_id": users}).merge(fresh, on="user_id", how="left")
    filled = merged[FEATURES].fillna(dict(zip(FEATURES, DEFAULTS, strict=True)))
    return filled.to_numpy(np.float32)


def expected(repository: Path, model: str, dense: np.ndarray, looked_up: np.ndarray) -> Any:
    x = np.concatenate([dense.astype(np.float32), looked_up], axis=1)
    (y,) = m.reference(model_file(repository, model), {"x": x})
    return y


def outputs(answer: pb.ModelInferResponse) -> np.ndarray:
    return np.frombuffer(answer.raw_output_contents[0], dtype=np.float32)


def test_clients_see_the_request_inputs(repository: Path) -> None:
    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        metadata = await unary(channel, "ModelMetadata")(pb.ModelMetadataRequest(name="mlp_user"))
        assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
            ("user_id", "INT64", [-1, 1]),
            ("dense", "FP32", [-1, 4]),
        ]
        assert [(t.name, list(t.shape)) for t in metadata.outputs] == [("y", [-1, 3])]
        config = (
            await unary(channel, "ModelConfig")(pb.ModelConfigRequest(name="mlp_user"))
        ).config
        assert [(i.name, list(i.dims)) for i in config.input] == [("user_id", [1]), ("dense", [4])]
        assert [o.name for o in config.output] == ["y"]

    serve(repository, scenario)


def test_batched_outputs_equal_the_pandas_join(repository: Path) -> None:
    """Concurrent requests of 1-3 rows with random keys (known, missing, stale, unknown) batch
    together; each answer equals onnxruntime on the request features joined by pandas."""
    rng = np.random.default_rng(2)
    sent = []
    for _ in range(24):
        rows = int(rng.integers(1, 4))
        sent.append((rng.integers(0, USERS + 20, rows), rng.standard_normal((rows, 4))))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        answers = await asyncio.gather(
            *(infer(user_request("mlp_user", users, dense)) for users, dense in sent)
        )
        for answer, (users, dense) in zip(answers, sent, strict=True):
            want = expected(repository, "mlp_user", dense, joined_users(users))
            np.testing.assert_allclose(outputs(answer).reshape(want.shape), want, rtol=1e-5)
        assert native_calls(server) == {"OK": len(sent)}
        assert python_calls(server) == {}

    serve(repository, scenario)


def test_unbatched_outputs_equal_the_pandas_join(repository: Path) -> None:
    users = np.array([1, 5, 3, 7, 250])  # known, missing, stale (row 2 of the snapshot), ...

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for user in users:
            dense = np.random.default_rng(int(user)).standard_normal((1, 4))
            answer = await infer(user_request("mlp_user_nobatch", np.array([user]), dense, False))
            want = expected(repository, "mlp_user_nobatch", dense, joined_users(np.array([user])))
            assert list(answer.outputs[0].shape) == [3]
            np.testing.assert_allclose(outputs(answer), want.reshape(-1), rtol=1e-5)
        assert native_calls(server) == {"OK": len(users)}

    serve(repository, scenario)


def test_a_reject_view_answers_not_found_naming_key_and_view(repository: Path) -> None:
    """A missing key and a stale row are NOT_FOUND; requests batched with them are served."""
    snapshot = user_snapshot()
    fresh = snapshot[snapshot["updated"] >= pd.Timestamp(NOW - MAX_AGE_S, unit="s", tz="UTC")]
    stale = snapshot.drop(fresh.index)
    known = np.array([int(fresh["user_id"].iloc[0])])
    stale_user = int(stale["user_id"].iloc[0])
    dense = np.ones((1, 4))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        results = await asyncio.gather(
            infer(user_request("mlp_reject", known, dense)),
            infer(user_request("mlp_reject", np.array([5]), dense)),
            infer(user_request("mlp_reject", np.array([stale_user]), dense)),
            return_exceptions=True,
        )
        ok, missing, too_old = results
        assert isinstance(ok, pb.ModelInferResponse)
        want = expected(repository, "mlp_reject", dense, joined_users(known))
        np.testing.assert_allclose(outputs(ok).reshape(want.shape), want, rtol=1e-5)
        for error, user in ((missing, 5), (too_old, stale_user)):
            assert isinstance(error, grpc.aio.AioRpcError)
            assert error.code() == grpc.StatusCode.NOT_FOUND
            assert "user" in (error.details() or "") and str(user) in (error.details() or "")
        assert native_calls(server) == {"OK": 1, "NOT_FOUND": 2}

    serve(repository, scenario)


def test_bytes_and_composite_keys(repository: Path) -> None:
    merchants = ["acme", "caf\u00e9", "0042", "zeta", "nobody", "acme"]
    users = np.array([1, 1, 5, 3, 1, 2], dtype=np.int64)
    dense = np.random.default_rng(3).standard_normal((len(users), 4)).astype(np.float32)
    by_merchant = merchant_snapshot().rename(columns={"merchant_name": "merchant"})
    pairs = pd.DataFrame(pair_snapshot()).rename(columns={"spend": "p0"})
    requests = pd.DataFrame({"merchant": merchants, "user_id": users})
    merged = requests.merge(by_merchant, on="merchant", how="left").merge(
        pairs, on=["merchant", "user_id"], how="left"
    )
    looked_up = merged.fillna({"m0": 7.0, "m1": 8.0, "p0": 9.0})[["m0", "m1", "p0"]]
    want = expected(repository, "mlp_merchant", dense, looked_up.to_numpy(np.float32))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        rows = len(users)
        request = raw_request(
            "mlp_merchant",
            [
                ("merchant", "BYTES", [rows, 1], encode_bytes([s.encode() for s in merchants])),
                ("user_id", "INT64", [rows, 1], users.tobytes()),
                ("dense", "FP32", [rows, 4], dense.tobytes()),
            ],
        )
        answer = await unary(channel)(request)
        np.testing.assert_allclose(outputs(answer).reshape(want.shape), want, rtol=1e-5)
        assert native_calls(server) == {"OK": 1}

    serve(repository, scenario)


def test_hot_reload_under_traffic_serves_one_snapshot_per_response(repository: Path) -> None:
    """Snapshot N holds N in every cell. While clients send requests of 1-4 rows, snapshots 1..4
    replace each other; no request fails, every response holds one N in all its looked-up
    cells, and the last snapshot is served in the end."""
    folder = repository / "reloading"
    snapshots = 4
    seen: set[float] = set()

    async def client(infer: Any, stop: asyncio.Event, seed: int) -> int:
        rng = np.random.default_rng(seed)
        count = 0
        while not stop.is_set():
            rows = int(rng.integers(1, 5))
            users = rng.integers(0, USERS, rows)
            dense = rng.standard_normal((rows, 4)).astype(np.float32)
            answer = await infer(user_request("reloading", users, dense))
            got = outputs(answer).reshape(rows, 7)
            np.testing.assert_array_equal(got[:, :4], dense)
            values = set(got[:, 4:].reshape(-1).tolist())
            assert len(values) == 1, f"one response from several snapshots: {got}"
            seen.update(values)
            count += 1
        return count

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        stop = asyncio.Event()
        clients = [asyncio.create_task(client(infer, stop, seed)) for seed in range(6)]
        for value in range(1, snapshots + 1):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(
                write_parquet, reload_snapshot(float(value)), folder / "user.parquet"
            )
        deadline = time.monotonic() + 10
        while float(snapshots) not in seen and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        sent = sum(await asyncio.gather(*clients))
        assert float(snapshots) in seen
        assert seen <= {float(v) for v in range(snapshots + 1)}
        assert len(seen) >= 3  # old and new snapshots really were served under traffic
        features = server.registry.routes.resolve("reloading").features
        assert features is not None and features.reload_failures == 0
        assert native_calls(server) == {"OK": sent}

    serve(repository, scenario)


def test_native_engine_off_is_a_load_error(tmp_path: Path) -> None:
    config = MLP_CONFIG.format(name="python_only") + (
        'parameters { key: "native_engine" value { string_value: "false" } }\n'
    )
    mlp = mlp_model(inputs=7, hidden=(16,), outputs=3, input_name="x", output_name="y")
    folder = add_model(tmp_path, "python_only", mlp, config)
    (folder / "features.pbtxt").write_text(
        USER_FEATURES.format(max_age=0, on_missing="USE_DEFAULT"), encoding="utf-8"
    )
    write_parquet(user_snapshot(), folder / "user.parquet")

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        (row,) = [row for row in server.registry.index() if row.name == "python_only"]
        assert row.state == "UNAVAILABLE"
        assert "only the native engine gathers" in row.reason
        assert 'native_engine: "false"' in row.reason

    serve(tmp_path, scenario)


def test_bad_requests_are_worded_against_the_request_inputs(repository: Path) -> None:
    """The native path leaves invalid requests to the Python server, which checks them against
    the request inputs: a wrong width, or the graph's own input `x`, is INVALID_ARGUMENT."""
    dense = np.ones((2, 4), dtype=np.float32)
    wrong_width = user_request("mlp_user", np.array([1, 2]), dense)
    wrong_width.inputs[1].shape[1] = 2
    wrong_width.raw_input_contents[1] = dense[:, :2].tobytes()
    graph_input = raw_request(
        "mlp_user", [("x", "FP32", [1, 7], np.zeros(7, np.float32).tobytes())]
    )

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = unary(channel)
        for request, words in ((wrong_width, ["dense", "4"]), (graph_input, ["x", "user_id"])):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await infer(request)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = raised.value.details() or ""
            assert all(word in details for word in words), details
        assert native_calls(server) == {}

    serve(repository, scenario)
