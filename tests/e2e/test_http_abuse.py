"""Malformed and hostile bodies on the v2 REST port: each gets a clear 4xx naming what is
wrong (never a hang or a connection closed without a status), a body over the message limit
is refused before it is read (declared) or as soon as it passes the limit (chunked), memory
stays flat, and the server keeps serving. And Triton's `--http-restricted-api`."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ferroserve.demo import write_demo_repository
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(120)

LIMIT = 1 << 20
HUGE_DECLARED = (
    f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 40}\r\n\r\n"
).encode()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo MLP behind a 1 MiB message limit, its repository and statistics endpoints
    restricted to requests with `admin-key: s3cret`."""
    root = write_demo_repository(tmp_path_factory.mktemp("http-abuse") / "repository")
    log = tmp_path_factory.mktemp("logs") / "http-abuse.log"
    flags = [
        "--grpc-max-message-bytes",
        str(LIMIT),
        "--http-restricted-api",
        "model-repository,statistics:admin-key=s3cret",
    ]
    with ServerProcess(root, log, flags) as process:
        process.wait_ready()
        yield process


def exchange(server: ServerProcess, raw: bytes, close_write: bool = False) -> tuple[int, bytes]:
    """Sends `raw` bytes on a fresh connection and reads one response: (status, body)."""
    host, port = server.http_url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed without a status: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body


def post(path: str, body: bytes, headers: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode()
        + body
    )


def infer_body(data: object, shape: object = (1, 64), datatype: str = "FP32") -> bytes:
    return json.dumps(
        {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}
    ).encode()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def assert_serving(server: ServerProcess) -> None:
    status, body = exchange(server, post("/v2/models/mlp/infer", infer_body([0.5] * 64)))
    assert status == 200, body


CASES = [
    # (what, request bytes, status, words the error must contain)
    ("not JSON", post("/v2/models/mlp/infer", b"{nope"), 400, "not a JSON object"),
    ("not UTF-8", post("/v2/models/mlp/infer", b'{"inputs":"\xff"}'), 400, "not UTF-8"),
    (
        "truncated JSON",
        post("/v2/models/mlp/infer", infer_body([0.5] * 64)[:-7]),
        400,
        "not a JSON object",
    ),
    (
        "deep nesting",
        post(
            "/v2/models/mlp/infer", infer_body(None).replace(b"null", b"[" * 50_000 + b"]" * 50_000)
        ),
        400,
        "input 'input': 'data'",
    ),
    (
        "wrong element type",
        post("/v2/models/mlp/infer", infer_body(["a"] * 64)),
        400,
        "element 0: expected a number for FP32, got a string",
    ),
    (
        "wrong shape type",
        post("/v2/models/mlp/infer", infer_body([0.5] * 64, shape="1x64")),
        400,
        "'inputs[0].shape' must be an array of integers",
    ),
    (
        "count vs shape",
        post("/v2/models/mlp/infer", infer_body([0.5] * 63)),
        400,
        "'data' has 63 elements but shape [1, 64] holds 64",
    ),
    (
        "shape vs model",
        post("/v2/models/mlp/infer", infer_body([0.5] * 65, shape=[1, 65])),
        400,
        "input",
    ),
    (
        "huge binary size",
        post(
            "/v2/models/mlp/infer",
            b'{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","parameters":{"binary_data_size":9223372036854775807}}]}',
        ),
        400,
        "binary data are left",
    ),
    (
        "header past the body",
        post("/v2/models/mlp/infer", b"{}", "Inference-Header-Content-Length: 99\r\n"),
        400,
        "Inference-Header-Content-Length is 99 but the body has 2 bytes".lower(),
    ),
    (
        "header length not a number",
        post("/v2/models/mlp/infer", b"{}", "Inference-Header-Content-Length: -1\r\n"),
        400,
        "must be a byte count",
    ),
    (
        "declared over the limit",
        HUGE_DECLARED,
        413,
        f"vs. {LIMIT}",
    ),
]


@pytest.mark.parametrize(("what", "raw", "status", "words"), CASES, ids=[c[0] for c in CASES])
def test_malformed_bodies_get_a_clear_status(
    small: ServerProcess, what: str, raw: bytes, status: int, words: str
) -> None:
    got, body = exchange(small, raw)
    error = json.loads(body)["error"]
    assert got == status, error
    assert words.lower() in error.lower(), error
    assert_serving(small)


def test_a_chunked_body_is_refused_once_it_passes_the_limit(small: ServerProcess) -> None:
    chunk = b"x" * 65536
    head = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(
        b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(LIMIT // len(chunk) + 2)
    )
    status, answer = exchange(small, head + body)
    assert status == 413
    assert f"vs. {LIMIT}" in json.loads(answer)["error"]
    assert_serving(small)


def test_a_body_cut_short_gets_a_status_not_a_silent_close(small: ServerProcess) -> None:
    raw = b'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"in'
    status, answer = exchange(small, raw, close_write=True)
    assert status == 400
    assert "reading the request body failed" in json.loads(answer)["error"]
    assert_serving(small)


def test_declared_sizes_hold_no_memory(small: ServerProcess) -> None:
    """200 requests declaring a terabyte each: refused before a byte is read, memory flat."""
    before = rss_bytes(small.pid)
    started = time.monotonic()
    for _ in range(200):
        assert exchange(small, HUGE_DECLARED)[0] == 413
    assert time.monotonic() - started < 30
    assert rss_bytes(small.pid) - before < 16 << 20
    assert_serving(small)


def test_restricted_apis_need_their_header(small: ServerProcess) -> None:
    """Triton's --http-restricted-api: 403 with Triton's words without the header (or with the
    wrong value), served with it; other endpoints stay open."""
    index = b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
    stats = b"GET /v2/models/mlp/stats HTTP/1.1\r\nHost: x\r\n"
    for request in (index, stats, index + b"admin-key: wrong\r\n"):
        status, body = exchange(small, request + b"\r\n")
        assert status == 403
        assert json.loads(body) == {"error": "This API is restricted, expecting header 'admin-key'"}
    status, body = exchange(small, index + b"Admin-Key: s3cret\r\n\r\n")
    assert status == 200, body
    assert json.loads(body)[0]["name"] == "mlp"
    assert exchange(small, stats + b"admin-key: s3cret\r\n\r\n")[0] == 200
    assert_serving(small)
