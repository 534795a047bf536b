"""Two server processes on one S3 repository (moto's server on loopback, the same API as AWS):
both serve what is in the bucket; a version pushed through one, and an alias set through it,
are served by the other within a few poll intervals; a version written into the bucket by
another tool, and one removed from it, reach both."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.admin import CONFIG, MODEL, answer, plus, run_cli
from support.repository import add_model
from support.s3 import local_s3
from support.server import ServerProcess

pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore::DeprecationWarning")]
POLL_SECS = 0.5


def eventually(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:  # not served yet: try again until the deadline
            pass
        assert time.monotonic() < deadline, "the replicas did not converge in time"
        time.sleep(0.1)


def test_two_replicas_converge_on_one_bucket(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    add_model(seed, MODEL, plus(1.0), CONFIG)
    with local_s3() as s3:
        s3.upload_tree(seed, "repo")
        env = {**os.environ, **s3.environment()}
        url = f"s3://{s3.bucket}/repo"
        flags = ["--model-control-mode=poll", f"--repository-poll-secs={POLL_SECS}"]
        with (
            ServerProcess(url, tmp_path / "a.log", flags, env) as first,
            ServerProcess(url, tmp_path / "b.log", flags, env) as second,
        ):
            first.wait_ready()
            second.wait_ready()
            assert answer(first.url) == (1.0, "1") and answer(second.url) == (1.0, "1")
            # A push through the first replica is served by the second.
            model_file = tmp_path / "two.onnx"
            model_file.write_bytes(plus(2.0))
            code, _, err = run_cli("push", str(model_file), "--model", MODEL, "--server", first.url)
            assert code == 0, err
            assert answer(first.url) == (2.0, "2")
            eventually(lambda: answer(second.url) == (2.0, "2"))
            assert f"repo/{MODEL}/2/version.json" in s3.keys("repo/")
            # An alias set through the first replica routes the second's requests too.
            code, _, err = run_cli("alias", MODEL, "production", "1", "--server", first.url)
            assert code == 0, err
            eventually(lambda: answer(second.url) == (1.0, "1"))
            assert answer(second.url, "production") == (1.0, "1")
            # A version another tool writes into the bucket reaches both; so does its removal.
            version = tmp_path / "third"
            add_model(version, MODEL, plus(3.0), versions=(3,))
            s3.upload_tree(version / MODEL, f"repo/{MODEL}")
            for server in (first, second):
                eventually(lambda server=server: answer(server.url, "3") == (3.0, "3"))
            s3.client.delete_object(Bucket=s3.bucket, Key=f"repo/{MODEL}/3/model.onnx")
            for server in (first, second):
                eventually(lambda server=server: not _ready(server.url, "3"))
            assert answer(first.url) == (1.0, "1") and answer(second.url) == (1.0, "1")


def _ready(url: str, version: str) -> bool:
    import tritonclient.grpc as triton_grpc

    with triton_grpc.InferenceServerClient(url) as client:
        return bool(client.is_model_ready(MODEL, version))
