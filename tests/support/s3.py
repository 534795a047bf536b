"""A real local S3 endpoint for the S3 repository tests: moto's server mode on 127.0.0.1 (the
same HTTP API boto3 speaks to AWS), a fresh bucket per endpoint (moto keeps its buckets per
process, not per server), and the environment a server process needs to reach it."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from support.server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(slots=True, frozen=True)
class LocalS3:
    endpoint: str
    client: Any
    bucket: str

    def environment(self) -> dict[str, str]:
        """What a ferroserve process needs to reach this endpoint through boto3."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def upload_tree(self, folder: Path, prefix: str) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                self.client.upload_file(str(path), self.bucket, key)

    def keys(self, prefix: str) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", ()))


@contextlib.contextmanager
def local_s3() -> Iterator[LocalS3]:
    """moto's S3 server on a free loopback port with an empty bucket of its own."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        bucket = f"models-{secrets.token_hex(4)}"
        client.create_bucket(Bucket=bucket)
        yield LocalS3(endpoint, client, bucket)
    finally:
        server.stop()
