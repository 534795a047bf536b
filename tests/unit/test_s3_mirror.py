"""The S3 mirror against a real local S3 endpoint (moto's server): URLs, downloads of whole
versions only once complete, uploads of local writes (a pushed version's record first, its
model last), removals both ways, and the bucket winning when both sides changed a file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ferroserve.errors import ConfigError
from ferroserve.registry.s3 import S3Location, S3Mirror, parse_s3_url
from support.s3 import LocalS3, local_s3

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PREFIX = "repo"


@pytest.fixture()
def s3() -> Iterator[LocalS3]:
    with local_s3() as endpoint:
        yield endpoint


def mirror(s3: LocalS3, root: Path) -> S3Mirror:
    root.mkdir(exist_ok=True)
    return S3Mirror(S3Location(s3.bucket, f"{PREFIX}/"), root, s3.client)


def put(s3: LocalS3, key: str, body: bytes) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key=f"{PREFIX}/{key}", Body=body)


def test_urls() -> None:
    assert parse_s3_url("s3://bucket") == S3Location("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == S3Location("bucket", "a/b/")
    assert parse_s3_url("s3://127.0.0.1:9000/bucket/repo") == S3Location(
        "bucket", "repo/", "http://127.0.0.1:9000"
    )
    with pytest.raises(ConfigError, match="name a bucket"):
        parse_s3_url("s3://")


def test_versions_arrive_whole_and_local_writes_go_up(s3: LocalS3, tmp_path: Path) -> None:
    here = mirror(s3, tmp_path / "here")
    put(s3, "a/config.pbtxt", b'name: "a"')
    # A model without a complete version is not mirrored yet.
    assert here.sync().downloaded == [] and not (tmp_path / "here" / "a").exists()
    put(s3, "a/1/model.onnx", b"one")
    assert sorted(here.sync().downloaded) == ["a/1/model.onnx", "a/config.pbtxt"]
    assert (tmp_path / "here" / "a" / "1" / "model.onnx").read_bytes() == b"one"
    # A pushed version whose model file is still on its way: skipped until it is whole.
    record = {"model_file": "model.onnx", "sha256": "0" * 64, "size_bytes": 3, "created": "x"}
    put(s3, "a/2/version.json", json.dumps(record).encode())
    assert here.sync().downloaded == [] and not (tmp_path / "here" / "a" / "2").exists()
    put(s3, "a/2/model.onnx", b"two")
    assert sorted(here.sync().downloaded) == ["a/2/model.onnx", "a/2/version.json"]
    # A local write (a push through this replica) goes up, record first, model last.
    version = tmp_path / "here" / "a" / "3"
    version.mkdir()
    (version / "model.onnx").write_bytes(b"three")
    (version / "version.json").write_text(json.dumps({**record, "size_bytes": 5}))
    assert here.sync().uploaded == ["a/3/version.json", "a/3/model.onnx"]
    # A second replica sees everything; nothing moves on a sync without changes.
    there = mirror(s3, tmp_path / "there")
    assert len(there.sync().downloaded) == 6
    assert (tmp_path / "there" / "a" / "3" / "model.onnx").read_bytes() == b"three"
    assert not here.sync().changed_here and not there.sync().uploaded


def test_removals_and_conflicts(s3: LocalS3, tmp_path: Path) -> None:
    put(s3, "a/config.pbtxt", b"v1")
    put(s3, "a/1/model.onnx", b"one")
    put(s3, "a/2/model.onnx", b"two")
    here, there = mirror(s3, tmp_path / "here"), mirror(s3, tmp_path / "there")
    here.sync()
    there.sync()
    # Removed in the bucket: the whole version folder goes here.
    s3.client.delete_object(Bucket=s3.bucket, Key=f"{PREFIX}/a/2/model.onnx")
    assert here.sync().removed_here == ["a/2/model.onnx"]
    assert not (tmp_path / "here" / "a" / "2").exists()
    # Removed here: removed from the bucket, then from the other replica.
    (tmp_path / "there" / "a" / "1" / "model.onnx").unlink()
    (tmp_path / "there" / "a" / "1").rmdir()
    there.sync()
    assert s3.keys(PREFIX) == [f"{PREFIX}/a/config.pbtxt"]
    here.sync()
    assert not (tmp_path / "here" / "a" / "1").exists()
    # Changed on both sides: the bucket's copy wins.
    (tmp_path / "here" / "a" / "config.pbtxt").write_bytes(b"local edit")
    put(s3, "a/config.pbtxt", b"v2")
    put(s3, "a/4/model.onnx", b"four")
    report = here.sync()
    assert "a/config.pbtxt" in report.downloaded and report.uploaded == []
    assert (tmp_path / "here" / "a" / "config.pbtxt").read_bytes() == b"v2"
