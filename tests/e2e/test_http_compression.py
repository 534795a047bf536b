"""Compressed HTTP bodies as Triton takes them (docs/http.md): tritonclient.http's
`request_compression_algorithm` and `response_compression_algorithm`, gzip and deflate, JSON and
binary tensors, every answer equal bit for bit to the uncompressed one; the headers as curl
sees them; a gzip bomb refused with the server's memory flat."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from support import models as m
from support.repository import identity_batch_name
from support.server import ServerProcess

from e2e.test_http import as_bytes, call, http_input

pytestmark = pytest.mark.timeout(120)

CODINGS = ["gzip", "deflate"]
DATATYPES = ["FP32", "FP16", "INT64", "BOOL", "BYTES"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("coding", CODINGS)
def test_tritonclient_compression_both_ways_gives_the_uncompressed_answer(
    coding: str, binary: bool, server: ServerProcess
) -> None:
    with httpclient.InferenceServerClient(server.http_url) as rest:
        for datatype in DATATYPES:
            name = identity_batch_name(datatype)
            array = m.sample(datatype, [3, *m.BATCH_DIMS], seed=5)
            inputs = [http_input("INPUT0", array, datatype, binary)]
            outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)]
            plain = rest.infer(name, inputs, outputs=outputs).as_numpy("OUTPUT0")
            for request, response in ((coding, None), (None, coding), (coding, coding)):
                answer = rest.infer(
                    name,
                    inputs,
                    outputs=outputs,
                    request_compression_algorithm=request,
                    response_compression_algorithm=response,
                ).as_numpy("OUTPUT0")
                assert as_bytes(answer, datatype) == as_bytes(plain, datatype), (
                    datatype,
                    request,
                    response,
                )
        # The MLP's float outputs, binary: the same bytes.
        x = m.sample("FP32", [4, 64], seed=6)
        tensor = http_input("input", x, "FP32", True)
        plain = rest.infer("mlp", [tensor]).as_numpy("output")
        both = rest.infer(
            "mlp",
            [tensor],
            request_compression_algorithm=coding,
            response_compression_algorithm=coding,
        ).as_numpy("output")
        assert plain is not None and both is not None
        assert both.tobytes() == plain.tobytes()


def test_the_headers_say_what_was_compressed(server: ServerProcess) -> None:
    body = json.dumps(
        {
            "inputs": [
                {"name": "INPUT0", "shape": [2, 4], "datatype": "INT32", "data": list(range(8))}
            ]
        }
    ).encode()
    path = f"/v2/models/{identity_batch_name('INT32')}/infer"
    status, headers, plain = call(server.http_url, "POST", path, body)
    assert status == 200 and "content-encoding" not in headers
    for coding, compress, inflate in (
        ("gzip", gzip.compress, gzip.decompress),
        ("deflate", zlib.compress, zlib.decompress),
    ):
        status, headers, raw = call(
            server.http_url,
            "POST",
            path,
            compress(body),
            {"Content-Encoding": coding, "Accept-Encoding": coding},
        )
        assert status == 200, raw
        assert headers["content-encoding"] == coding
        assert headers["vary"].lower() == "accept-encoding"
        assert inflate(raw) == plain
    # curl --compressed asks for several: the first taken wins.
    status, headers, raw = call(
        server.http_url, "POST", path, body, {"Accept-Encoding": "br, deflate, gzip"}
    )
    assert status == 200 and headers["content-encoding"] == "deflate"
    assert zlib.decompress(raw) == plain
    # As Triton, only inference answers are compressed: tritonclient's asyncio client (aiohttp
    # asks for gzip on every request) reads the others as they come.
    status, headers, raw = call(
        server.http_url, "GET", "/v2/models/mlp", None, {"Accept-Encoding": "gzip, deflate"}
    )
    assert status == 200 and "content-encoding" not in headers
    assert json.loads(raw)["name"] == "mlp"
    status, headers, raw = call(server.http_url, "POST", path, body, {"Content-Encoding": "br"})
    assert status == 415, raw
    assert headers["accept-encoding"] == "gzip, deflate"
    assert "'br' is not supported" in json.loads(raw)["error"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def gzip_of_zeros(size: int) -> bytes:
    """`size` zero bytes gzipped, compressed piece by piece (never held whole)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    piece = bytes(1 << 20)
    out = [compressor.compress(piece) for _ in range(size >> 20)]
    out.append(compressor.flush())
    return b"".join(out)


def test_a_gzip_bomb_is_413_and_the_server_stays_flat(server: ServerProcess) -> None:
    """160 MiB of zeros in ~160 KB of gzip against the 128 MiB default limit, ten times:
    refused once the inflated size passes the limit, and the server's memory does not grow."""
    limit = 128 << 20
    bomb = gzip_of_zeros(160 << 20)
    assert len(bomb) < 1 << 20
    path = "/v2/models/mlp/infer"
    status, _, raw = call(server.http_url, "POST", path, bomb, {"Content-Encoding": "gzip"})
    assert status == 413, raw
    assert f"once decompressed vs. {limit}" in json.loads(raw)["error"]
    before = rss_kib(server.pid)
    for _ in range(10):
        status, _, _ = call(server.http_url, "POST", path, bomb, {"Content-Encoding": "gzip"})
        assert status == 413
    grown = rss_kib(server.pid) - before
    # The bomb's compressed body is all a request holds; inflating allocates nothing.
    assert grown < 8 * 1024, f"the server grew {grown} KiB"
    with httpclient.InferenceServerClient(server.http_url) as rest:
        tensor = http_input("input", np.ones((1, 64), np.float32), "FP32", True)
        assert rest.infer("mlp", [tensor]).as_numpy("output") is not None
