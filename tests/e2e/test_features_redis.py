"""Feature views in Redis (Feast's layout) served on both front ends: a redis-server this test
starts holds rows written in Feast's layout (`_core.feast_write`, the crate's writer); the
native front end looks each request's keys up before queueing, and the outputs equal
onnxruntime run on the pandas join (missing keys and rows older than the max age by `_ts` get
the defaults; a REJECT view answers NOT_FOUND naming the key and the view), also beside an
embedded view. Compressed (gzip) requests, which the front end forwards to the Python server,
are joined by the same Rust join and answered alike. Stopping redis-server mid-traffic answers
every request by the documented behaviour within the timeout, and answers recover once it is
back."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from ferroserve import _core
from ferroserve.demo import mlp_model
from ferroserve.errors import FeatureNotFoundError, InvalidInputError
from ferroserve.features.declaration import read_declaration
from ferroserve.server.app import Server
from support import models as m
from support.inprocess import native_calls, python_calls, serve
from support.redis import RedisServer, redis_server_binary
from support.repository import add_model, model_file
from support.rpc import raw_request
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(180)
SERVICE = "/inference.GRPCInferenceService"
PROJECT = "fraud_e2e"
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
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
"""
USER_VIEW = """\
view {{
  name: "user"
  key: "user_id"
  feature {{ name: "f0" data_type: TYPE_FP32 default_value: -1 }}
  feature {{ name: "f1" data_type: TYPE_FP32 default_value: -2 }}
  feature {{ name: "f2" data_type: TYPE_FP32 default_value: -3 }}
  max_age_seconds: {max_age}
  on_missing: {on_missing}
  store: REDIS
}}
redis {{ url: "{url}" project: "{project}" }}
"""
REDIS_FEATURES = (
    """\
request_input {{ name: "user_id" data_type: TYPE_INT64 columns: 1 }}
request_input {{ name: "dense" data_type: TYPE_FP32 columns: 4 }}
assembly {{
  model_input: "x"
  segment {{ request_input: "dense" }}
  segment {{ view: "user" }}
}}
"""
    + USER_VIEW
)
# dense (2) + the Redis view (3) + an embedded view keyed on the same user (2).
MIXED_FEATURES = (
    """\
request_input {{ name: "user_id" data_type: TYPE_INT64 columns: 1 }}
request_input {{ name: "dense" data_type: TYPE_FP32 columns: 2 }}
view {{
  name: "region"
  key: "user_id"
  feature {{ name: "r0" data_type: TYPE_FP32 default_value: 5 }}
  feature {{ name: "r1" data_type: TYPE_FP32 default_value: 6 }}
  source {{ path: "region.parquet" }}
}}
assembly {{
  model_input: "x"
  segment {{ request_input: "dense" }}
  segment {{ view: "user" }}
  segment {{ view: "region" }}
}}
"""
    + USER_VIEW
)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_server_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def user_rows() -> pd.DataFrame:
    """Users 0..199 except every fifth; every third row is two days old (stale)."""
    rng = np.random.default_rng(1)
    ids = np.array([u for u in range(USERS) if u % 5 != 0], dtype=np.int64)
    ages = np.where(np.arange(len(ids)) % 3 == 0, 2 * 86400.0, 600.0)
    frame = pd.DataFrame({"user_id": ids})
    for feature in FEATURES:
        frame[feature] = rng.standard_normal(len(ids)).astype(np.float32)
    frame["updated_us"] = ((NOW - ages) * 1e6).astype(np.int64)
    return frame


def region_rows() -> pd.DataFrame:
    """Every other user has a region row (embedded view)."""
    ids = np.arange(0, USERS, 2, dtype=np.int64)
    return pd.DataFrame(
        {
            "user_id": ids,
            "r0": (ids / 10.0).astype(np.float32),
            "r1": (-ids / 20.0).astype(np.float32),
        }
    )


def write_users(url: str, folder: Path) -> None:
    """The user rows into Redis, through the crate's writer, with the view as the model at
    `folder` declares it."""
    declaration = read_declaration(folder)
    assert declaration is not None and declaration.redis is not None
    rows = user_rows()
    written = _core.feast_write(
        declaration.plan,
        declaration.redis.as_core(),
        "user",
        {"user_id": rows["user_id"].to_numpy(np.int64)},
        {f: rows[f].to_numpy(np.float32) for f in FEATURES},
        rows["updated_us"].to_numpy(np.int64),
    )
    assert written == (len(rows), 0)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Path:
    root = tmp_path_factory.mktemp("redis-features")
    mlp = mlp_model(inputs=7, hidden=(16,), outputs=3, input_name="x", output_name="y")
    for name, text, on_missing in [
        ("redis_user", REDIS_FEATURES, "USE_DEFAULT"),
        ("redis_reject", REDIS_FEATURES, "REJECT"),
        ("redis_mixed", MIXED_FEATURES, "USE_DEFAULT"),
    ]:
        folder = add_model(root, name, mlp, MLP_CONFIG.format(name=name))
        features = text.format(
            max_age=MAX_AGE_S, on_missing=on_missing, url=redis_server.url, project=PROJECT
        )
        (folder / "features.pbtxt").write_text(features, encoding="utf-8")
    region_rows().to_parquet(root / "redis_mixed" / "region.parquet")
    write_users(redis_server.url, root / "redis_user")
    return root


@pytest.fixture(scope="module")
def redis(repository: Path, redis_server: RedisServer) -> RedisServer:
    """The redis-server, holding the user rows."""
    return redis_server


def infer_call(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        f"{SERVICE}/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )


def user_request(model: str, users: np.ndarray, dense: np.ndarray) -> pb.ModelInferRequest:
    rows = len(users)
    return raw_request(
        model,
        [
            ("user_id", "INT64", [rows, 1], users.astype(np.int64).tobytes()),
            ("dense", "FP32", [rows, dense.shape[1]], dense.astype(np.float32).tobytes()),
        ],
    )


def compressible(request: pb.ModelInferRequest) -> pb.ModelInferRequest:
    """`request` with a long, repetitive id: gRPC sends a message it was asked to compress
    uncompressed when gzip would not make it smaller (random features do not shrink), and only
    compressed messages are forwarded to the Python server."""
    request.id = "compressed-" + "0" * 512
    return request


def joined_users(users: np.ndarray) -> np.ndarray:
    """The user features pandas joins for `users`: defaults for missing keys and stale rows."""
    rows = user_rows()
    fresh = rows[rows["updated_us"] >= (NOW - MAX_AGE_S) * 1e6]
    merged = pd.DataFrame({"user_id": users}).merge(fresh, on="user_id", how="left")
    return merged[FEATURES].fillna(dict(zip(FEATURES, DEFAULTS, strict=True))).to_numpy(np.float32)


def joined_regions(users: np.ndarray) -> np.ndarray:
    merged = pd.DataFrame({"user_id": users}).merge(region_rows(), on="user_id", how="left")
    return merged[["r0", "r1"]].fillna({"r0": 5.0, "r1": 6.0}).to_numpy(np.float32)


def expected(repository: Path, model: str, parts: list[np.ndarray]) -> Any:
    x = np.concatenate([part.astype(np.float32) for part in parts], axis=1)
    (y,) = m.reference(model_file(repository, model), {"x": x})
    return y


def outputs(answer: pb.ModelInferResponse) -> np.ndarray:
    return np.frombuffer(answer.raw_output_contents[0], dtype=np.float32).reshape(-1, 3)


def redis_stats(server: Server, model: str) -> dict[str, int]:
    (version,) = server.registry.routes.ready_versions(model)
    assert version.features is not None
    stats = version.features.store.redis_stats()
    assert stats is not None
    return stats


def random_requests(seed: int, count: int, width: int = 4) -> list[tuple[np.ndarray, Any]]:
    rng = np.random.default_rng(seed)
    sent = []
    for _ in range(count):
        rows = int(rng.integers(1, 4))
        sent.append((rng.integers(0, USERS + 20, rows), rng.standard_normal((rows, width))))
    return sent


def test_outputs_equal_the_pandas_join(repository: Path) -> None:
    """Concurrent requests with random keys (found, missing, stale, unknown): each answer
    equals onnxruntime on the request features joined by pandas, all on the native path."""
    sent = random_requests(2, 32)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = infer_call(channel)
        answers = await asyncio.gather(
            *(infer(user_request("redis_user", users, dense)) for users, dense in sent)
        )
        for answer, (users, dense) in zip(answers, sent, strict=True):
            want = expected(repository, "redis_user", [dense, joined_users(users)])
            np.testing.assert_allclose(outputs(answer), want, rtol=1e-5)
        assert native_calls(server) == {"OK": len(sent)}
        assert python_calls(server) == {}
        stats = redis_stats(server, "redis_user")
        assert stats["calls"] == len(sent)
        assert stats["rows"] == sum(len(users) for users, _ in sent)
        assert stats["unavailable"] == 0

    serve(repository, scenario)


def test_a_reject_view_answers_not_found_naming_key_and_view(repository: Path) -> None:
    rows = user_rows()
    fresh = rows[rows["updated_us"] >= (NOW - MAX_AGE_S) * 1e6]
    known = int(fresh["user_id"].iloc[0])
    stale = int(rows.drop(fresh.index)["user_id"].iloc[0])
    dense = np.ones((1, 4))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = infer_call(channel)
        answer = await infer(user_request("redis_reject", np.array([known]), dense))
        want = expected(repository, "redis_reject", [dense, joined_users(np.array([known]))])
        np.testing.assert_allclose(outputs(answer), want, rtol=1e-5)
        for user, why in [(5, "no row for user_id=5"), (stale, "older than the view's max age")]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await infer(user_request("redis_reject", np.array([known, user]), np.ones((2, 4))))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            assert why in str(caught.value.details())
            assert f"user_id={user}" in str(caught.value.details())
            assert "feature view 'user'" in str(caught.value.details())
        assert native_calls(server) == {"OK": 1, "NOT_FOUND": 2}

    serve(repository, scenario)


def test_a_redis_view_beside_an_embedded_view(repository: Path) -> None:
    sent = random_requests(3, 16, width=2)

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = infer_call(channel)
        answers = await asyncio.gather(
            *(infer(user_request("redis_mixed", users, dense)) for users, dense in sent)
        )
        for answer, (users, dense) in zip(answers, sent, strict=True):
            parts = [dense, joined_users(users), joined_regions(users)]
            np.testing.assert_allclose(
                outputs(answer), expected(repository, "redis_mixed", parts), rtol=1e-5
            )
        assert native_calls(server) == {"OK": len(sent)}

    serve(repository, scenario)


def test_compressed_requests_are_joined_on_the_python_path_alike(repository: Path) -> None:
    """A gzip-compressed request is forwarded to the Python server, which joins it through the
    same Rust join: every answer (found, missing, stale and unknown keys; a Redis view beside an
    embedded one) equals the uncompressed one and the pandas join, a REJECT view answers
    NOT_FOUND in the same words, and both paths are counted alike."""
    sent = random_requests(4, 12)
    mixed = random_requests(5, 8, width=2)
    rows = user_rows()
    fresh = rows[rows["updated_us"] >= (NOW - MAX_AGE_S) * 1e6]
    known = int(fresh["user_id"].iloc[0])
    stale = int(rows.drop(fresh.index)["user_id"].iloc[0])
    gzip = grpc.Compression.Gzip

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = infer_call(channel)
        for model, requests, views in [
            ("redis_user", sent, lambda users: [joined_users(users)]),
            ("redis_mixed", mixed, lambda users: [joined_users(users), joined_regions(users)]),
        ]:
            built = [compressible(user_request(model, u, dense)) for u, dense in requests]
            plain = await asyncio.gather(*(infer(request) for request in built))
            zipped = await asyncio.gather(*(infer(r, compression=gzip) for r in built))
            for one, other, (users, dense) in zip(plain, zipped, requests, strict=True):
                np.testing.assert_array_equal(outputs(other), outputs(one))
                want = expected(repository, model, [dense, *views(users)])
                np.testing.assert_allclose(outputs(other), want, rtol=1e-5)

        dense = np.ones((2, 4))
        for user, why in [(5, "no row for user_id=5"), (stale, "older than the view's max age")]:
            request = compressible(user_request("redis_reject", np.array([known, user]), dense))
            details = []
            for compression in (None, gzip):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await infer(request, compression=compression)
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND
                # The same words, but for the row's age, which grew between the calls.
                details.append(re.sub(r"is [\d.]+ s old", "is N s old", caught.value.details()))
            assert details[0] == details[1], details
            assert why in details[1] and "feature view 'user'" in details[1]
        request = compressible(user_request("redis_reject", np.array([known]), dense[:1]))
        answer = await infer(request, compression=gzip)
        want = expected(repository, "redis_reject", [dense[:1], joined_users(np.array([known]))])
        np.testing.assert_allclose(outputs(answer), want, rtol=1e-5)

        ok = len(sent) + len(mixed)
        assert native_calls(server) == {"OK": ok, "NOT_FOUND": 2}
        assert python_calls(server) == {"OK": ok + 1, "NOT_FOUND": 2}
        # Both paths count in the join's per-view counters and the store's.
        (version,) = server.registry.routes.ready_versions("redis_user")
        assert version.features is not None
        looked_up = 2 * sum(len(users) for users, _ in sent)
        assert version.features.plan.stats()["views"]["user"]["lookups"] == looked_up
        assert redis_stats(server, "redis_user")["calls"] == 2 * len(sent)
        (reject,) = server.registry.routes.ready_versions("redis_reject")
        assert reject.features is not None
        assert reject.features.plan.stats()["views"]["user"]["rejected"] == 4

        # Called directly, the Python path raises what the status mapping words.
        request = user_request("redis_reject", np.array([5]), dense[:1])
        with pytest.raises(FeatureNotFoundError, match="user_id=5"):
            await reject.infer(request, None)
        bad = raw_request("redis_user", [("user_id", "INT64", [1, 1], b"\0" * 8)])
        with pytest.raises(InvalidInputError):
            await version.infer(bad, None)

    serve(repository, scenario)


def test_redis_stopped_mid_traffic_serves_the_policy_and_recovers(
    repository: Path, redis: RedisServer
) -> None:
    """With redis-server down every request is answered within the timeout, on both front ends
    (compressed ones on the Python path): the defaults (unavailable counted) or NOT_FOUND under
    REJECT; once it is back, the stored rows again."""
    users = np.array([1, 2, 4])  # found and fresh... or stale: compare with the join
    dense = np.ones((3, 4))
    gzip = grpc.Compression.Gzip

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = infer_call(channel)
        found = expected(repository, "redis_user", [dense, joined_users(users)])
        np.testing.assert_allclose(
            outputs(await infer(user_request("redis_user", users, dense))), found, rtol=1e-5
        )
        redis.stop()
        try:
            defaults = np.tile(np.array(DEFAULTS, dtype=np.float32), (3, 1))
            unavailable = expected(repository, "redis_user", [dense, defaults])
            request = compressible(user_request("redis_user", users, dense))
            started = time.monotonic()
            answers = await asyncio.gather(
                *(infer(request, timeout=5) for _ in range(20)),
                *(infer(request, timeout=5, compression=gzip) for _ in range(10)),
            )
            assert time.monotonic() - started < 4.0
            for answer in answers:
                np.testing.assert_allclose(outputs(answer), unavailable, rtol=1e-5)
            for compression in (None, gzip):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await infer(
                        compressible(user_request("redis_reject", users, dense)),
                        timeout=5,
                        compression=compression,
                    )
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND
                assert "could not be asked" in str(caught.value.details())
            assert redis_stats(server, "redis_user")["unavailable"] >= 90
            assert python_calls(server) == {"OK": 10, "NOT_FOUND": 1}
        finally:
            redis.start()
            write_users(redis.url, repository / "redis_user")
        for compression in (None, gzip):
            deadline = time.monotonic() + 10
            while True:
                request = compressible(user_request("redis_user", users, dense))
                answer = await infer(request, timeout=5, compression=compression)
                if np.allclose(outputs(answer), found, rtol=1e-5):
                    break
                assert time.monotonic() < deadline, f"{compression}: no recovery after restart"
                await asyncio.sleep(0.05)

    serve(repository, scenario)
