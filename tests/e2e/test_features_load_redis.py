"""`ferroserve features load --file`: a file's rows written into a Redis view in Feast's layout
for users without Feast, with no server involved; a server then serves them on both front ends
(plain and gzip requests) and the outputs equal onnxruntime on the pandas join of the same file
(each key's newest row, stale rows and missing keys served as defaults). Bad input exits 1 and
says what is wrong: flags that do not go together, an unknown model or view, an embedded view,
missing columns, wrong types, a key Feast cannot store, Redis down. (Feast itself reading what
this command wrote: tests/e2e/test_feast_layout.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from ferroserve._proto import feature_service_pb2 as fpb
from ferroserve.cli import main
from ferroserve.demo import mlp_model
from ferroserve.server.app import Server
from support import models as m
from support.inprocess import python_calls, serve
from support.redis import RedisServer, free_port, redis_server_binary
from support.repository import add_model, model_file
from support.rpc import encode_bytes, raw_request
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(120)
SERVICE = "/inference.GRPCInferenceService"
FEATURE_SERVICE = "/ferroserve.features.v1.FeatureService"
MODEL = "loaded"
NOW = pd.Timestamp.now(tz="UTC").floor("s")
FEATURES = ["f0", "f1", "f2"]
DEFAULTS = [-1.0, -2.0, -3.0]
MAX_AGE_S = 3600

CONFIG = f"""\
name: "{MODEL}"
max_batch_size: 16
input [{{ name: "x" data_type: TYPE_FP32 dims: [6] }}]
output [{{ name: "y" data_type: TYPE_FP32 dims: [3] }}]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
"""
# A composite key (INT64 + BYTES), Feast names for the view and one feature, and an embedded
# view beside it.
FEATURES_PBTXT = """\
request_input {{ name: "user_id" data_type: TYPE_INT64 columns: 1 }}
request_input {{ name: "country" data_type: TYPE_STRING columns: 1 }}
request_input {{ name: "dense" data_type: TYPE_FP32 columns: 2 }}
view {{
  name: "user"
  key: "user_id"
  key: "country"
  feature {{ name: "f0" data_type: TYPE_FP32 default_value: -1 }}
  feature {{ name: "f1" data_type: TYPE_FP32 default_value: -2 feast_name: "spend_7d" }}
  feature {{ name: "f2" data_type: TYPE_FP32 default_value: -3 }}
  max_age_seconds: {max_age}
  store: REDIS
  feast_name: "user_stats"
}}
view {{
  name: "region"
  key: "country"
  feature {{ name: "r0" data_type: TYPE_FP32 default_value: 9 }}
  source {{ path: "region.parquet" }}
}}
redis {{ url: "{url}" project: "load_e2e" }}
assembly {{
  model_input: "x"
  segment {{ request_input: "dense" }}
  segment {{ view: "user" }}
  segment {{ view: "region" }}
}}
"""
REGIONS = {"fr": 0.5, "de": -0.5}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer(redis_server_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_repository(root: Path, url: str) -> Path:
    folder = add_model(
        root,
        MODEL,
        mlp_model(inputs=6, hidden=(8,), outputs=3, input_name="x", output_name="y"),
        CONFIG,
    )
    text = FEATURES_PBTXT.format(max_age=MAX_AGE_S, url=url)
    (folder / "features.pbtxt").write_text(text, encoding="utf-8")
    pd.DataFrame({"country": list(REGIONS), "r0": np.float32(list(REGIONS.values()))}).to_parquet(
        folder / "region.parquet"
    )
    return root


def user_rows() -> pd.DataFrame:
    """Users 0..39 in fr or de; user 1 (fr) twice, its newer row first; user 2 (de) stale; f1
    as float64 (the command converts it, as a snapshot load does)."""
    rng = np.random.default_rng(3)
    users = np.arange(40, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "user_id": users,
            "country": np.where(users % 2 == 0, "de", "fr"),
            "f0": rng.standard_normal(40).astype(np.float32),
            "f1": rng.standard_normal(40),
            "f2": rng.standard_normal(40).astype(np.float32),
            "event_timestamp": [NOW - pd.Timedelta(minutes=5)] * 40,
        }
    )
    frame.loc[2, "event_timestamp"] = NOW - pd.Timedelta(days=2)
    older = frame.iloc[[1]].assign(
        f0=np.float32(100.0), event_timestamp=NOW - pd.Timedelta(hours=2)
    )
    return pd.concat([frame, older], ignore_index=True)


def joined(rows: pd.DataFrame, users: np.ndarray, countries: list[str]) -> np.ndarray:
    """The user features pandas joins: each key's newest row, defaults when missing or stale."""
    newest = rows.sort_values("event_timestamp", kind="stable").drop_duplicates(
        ["user_id", "country"], keep="last"
    )
    fresh = newest[newest["event_timestamp"] >= NOW - pd.Timedelta(seconds=MAX_AGE_S)]
    wanted = pd.DataFrame({"user_id": users, "country": countries})
    merged = wanted.merge(fresh, on=["user_id", "country"], how="left")
    filled = merged[FEATURES].fillna(dict(zip(FEATURES, DEFAULTS, strict=True)))
    return filled.to_numpy(np.float64).astype(np.float32)


def load(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`ferroserve features load ...` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main(["features", "load", *args])
    out, err = capsys.readouterr()
    return status, out, err


def request(users: np.ndarray, countries: list[str], dense: np.ndarray) -> pb.ModelInferRequest:
    rows = len(users)
    built = raw_request(
        MODEL,
        [
            ("user_id", "INT64", [rows, 1], users.astype(np.int64).tobytes()),
            ("country", "BYTES", [rows, 1], encode_bytes([c.encode() for c in countries])),
            ("dense", "FP32", [rows, 2], dense.astype(np.float32).tobytes()),
        ],
    )
    # gRPC sends a message uncompressed when gzip would not shrink it; this id always does, so
    # the gzip calls really reach the Python server.
    built.id = "compressed-" + "0" * 512
    return built


def test_load_writes_the_file_into_redis_and_both_front_ends_serve_it(
    tmp_path: Path, redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_repository(tmp_path / "repository", redis.url)
    rows = user_rows()
    file = tmp_path / "users.parquet"
    rows.to_parquet(file)
    flags = ["--model", MODEL, "--view", "user", "--file", str(file)]
    status, out, err = load(capsys, *flags, "--model-repository", str(root))
    assert status == 0, err
    assert out.startswith(
        f"{MODEL}: wrote 40 rows of view user into Redis (Feast project load_e2e)"
    )
    assert "1 older row(s) of a key written twice dropped" in out
    status, out, err = load(capsys, *flags, "--model-repository", str(root), "--json")
    assert status == 0, err
    answer = json.loads(out)
    assert (answer["rows"], answer["duplicate_keys"], answer["project"]) == (40, 1, "load_e2e")

    rng = np.random.default_rng(4)
    sent = []
    for _ in range(10):
        count = int(rng.integers(1, 4))
        users = rng.integers(0, 45, count)  # 40..44 were never written
        countries = [str(c) for c in rng.choice(["fr", "de", "xx"], count)]
        sent.append((users, countries, rng.standard_normal((count, 2))))
    sent.append((np.array([1, 2]), ["fr", "de"], np.ones((2, 2))))  # the duplicate, the stale

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        infer = channel.unary_unary(
            f"{SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for compression in (None, grpc.Compression.Gzip):
            answers = await asyncio.gather(
                *(infer(request(*one), compression=compression) for one in sent)
            )
            for answer, (users, countries, dense) in zip(answers, sent, strict=True):
                regions = [[REGIONS.get(c, 9.0)] for c in countries]
                x = np.concatenate(
                    [dense.astype(np.float32), joined(rows, users, countries), regions], axis=1
                )
                (want,) = m.reference(model_file(root, MODEL), {"x": x.astype(np.float32)})
                got = np.frombuffer(answer.raw_output_contents[0], np.float32).reshape(-1, 3)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert python_calls(server) == {"OK": len(sent)}

        # A server has no file to reload for a Redis view: it says how to write one instead.
        reload = channel.unary_unary(
            f"{FEATURE_SERVICE}/Reload",
            request_serializer=fpb.FeatureReloadRequest.SerializeToString,
            response_deserializer=fpb.FeatureReloadResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reload(fpb.FeatureReloadRequest(model=MODEL, views=["user"]))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is stored in Redis" in str(caught.value.details())
        assert "--file" in str(caught.value.details())

    serve(root, scenario)


def parquet(path: Path, **columns: Any) -> Path:
    """A one-row file of the user view's columns, `columns` replacing or removing (None) some."""
    row: dict[str, Any] = {
        "user_id": [7],
        "country": ["fr"],
        "f0": [1.0],
        "f1": [2.0],
        "f2": [3.0],
        "event_timestamp": [NOW],
    }
    for name, values in columns.items():
        if values is None:
            del row[name]
        else:
            row[name] = values
    pd.DataFrame(row).to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("case", "flags", "fragments"),
    [
        ("unknown model", ["--model", "nope", "--view", "user"], ["no model folder 'nope'"]),
        ("unknown view", ["--model", MODEL, "--view", "nope"], ["no feature view 'nope'", "user"]),
        (
            "embedded view",
            ["--model", MODEL, "--view", "region"],
            ["view 'region' is embedded, not stored in Redis", "region.parquet"],
        ),
        (
            "missing feature column",
            ["--model", MODEL, "--view", "user", "--columns", "f2=None"],
            ["has no column(s) ['f2']", "the file needs", "feature columns ['f0', 'f1', 'f2']"],
        ),
        (
            "missing event times",
            ["--model", MODEL, "--view", "user", "--columns", "event_timestamp=None"],
            ["has no column(s) ['event_timestamp']", "--event-time-column"],
        ),
        (
            "text feature",
            ["--model", MODEL, "--view", "user", "--columns", "f0=text"],
            ["column 'f0' has type", "string; feature of type FP32 needs numbers"],
        ),
        (
            "fractional integer key",
            ["--model", MODEL, "--view", "user", "--columns", "user_id=fraction"],
            ["column 'user_id' has type double, but the key is INT64"],
        ),
        (
            "key Feast cannot store",
            ["--model", MODEL, "--view", "user", "--columns", "country=latin1"],
            ["model 'loaded' view 'user'", "a key Feast cannot store"],
        ),
        (
            "numbers without a unit",
            ["--model", MODEL, "--view", "user", "--columns", "event_timestamp=number"],
            ["holds plain numbers", "--event-time-unit s|ms|us"],
        ),
        (
            "unknown format",
            ["--model", MODEL, "--view", "user", "--suffix", ".txt"],
            ["cannot tell the format"],
        ),
        (
            "no repository",
            ["--model", MODEL, "--view", "user", "--no-repository"],
            ["needs --model-repository"],
        ),
        (
            "two views",
            ["--model", MODEL, "--view", "user", "--view", "user"],
            ["exactly one --view"],
        ),
        (
            "a version",
            ["--model", MODEL, "--view", "user", "--version", "1"],
            ["--version does not apply"],
        ),
    ],
)
def test_bad_input_exits_1_saying_what_is_wrong(
    tmp_path: Path,
    redis: RedisServer,
    capsys: pytest.CaptureFixture[str],
    case: str,
    flags: list[str],
    fragments: list[str],
) -> None:
    root = write_repository(tmp_path / "repository", redis.url)
    changes: dict[str, Any] = {}
    suffix = ".parquet"
    repository = ["--model-repository", str(root)]
    args = []
    flag_list = iter(flags)
    for flag in flag_list:
        if flag == "--columns":
            name, kind = next(flag_list).split("=")
            changes[name] = {
                "None": None,
                "text": ["high"],
                "fraction": [7.5],
                "latin1": [b"caf\xe9"],
                "number": [int(time.time())],
            }[kind]
        elif flag == "--suffix":
            suffix = next(flag_list)
        elif flag == "--no-repository":
            repository = []
        else:
            args.append(flag)
    file = parquet(tmp_path / f"rows{suffix}", **changes)
    status, out, err = load(capsys, *args, "--file", str(file), *repository)
    assert status == 1, (case, out, err)
    assert err.startswith("ferroserve features load: "), err
    for fragment in fragments:
        assert fragment in err, (case, err)


def test_redis_down_exits_1_with_the_url_and_what_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens on the store's port: the write fails (after the client's few connect
    attempts) naming the store, and says what to check."""
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    root = write_repository(tmp_path / "repository", url)
    file = parquet(tmp_path / "rows.parquet")
    started = time.monotonic()
    status, _, err = load(
        capsys,
        *("--model", MODEL, "--view", "user", "--file", str(file)),
        *("--model-repository", str(root), "--timeout", "30"),
    )
    assert status == 1
    assert time.monotonic() - started < 30
    assert "did not take the rows" in err and "Connection refused" in err, err
    assert "redis://:***@127.0.0.1" in err and "secret" not in err, err
    assert "is redis-server running" in err, err


def test_file_flags_without_a_file_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --file, `load` asks a server to reload snapshot files: flags of the Redis write
    are refused rather than ignored."""
    status, _, err = load(capsys, "--model", MODEL, "--model-repository", "/nowhere")
    assert status == 1 and "--model-repository go with --file" in err, err
