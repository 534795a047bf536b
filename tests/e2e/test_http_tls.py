"""HTTPS on the REST port (docs/http.md, docs/security.md): with --grpc-use-ssl the HTTP port
speaks TLS too (--http-use-ssl, on by default then) with the same certificate: tritonclient.http
with ssl=True, a raw request as curl sends it, plain HTTP answered 400, a silent client cut by
the handshake timeout, mutual TLS, SIGHUP rotating both ports, and the flag's rules."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from ferroserve import cli
from ferroserve.demo import mlp_model
from support.repository import add_model
from support.server import ServerProcess
from support.tls import Authority, Leaf, presented_serial
from tritonclient.utils import InferenceServerException

from e2e.test_tls import tls_flags, wait_for_log

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("https-repository")
    add_model(root, "mlp", mlp_model())
    return root


def rest(url: str, ca: Path, client: Leaf | None = None) -> httpclient.InferenceServerClient:
    options: dict[str, Any] = {"ca_certs": str(ca)}
    if client is not None:
        options |= {"certfile": str(client.cert), "keyfile": str(client.key)}
    return httpclient.InferenceServerClient(url, ssl=True, ssl_options=options)


def infer_http(client: httpclient.InferenceServerClient, x: np.ndarray) -> np.ndarray:
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    output = client.infer("mlp", [tensor]).as_numpy("output")
    assert output is not None
    return output


def raw_https(port: int, ca: Path, request: bytes) -> bytes:
    """`request` written as it is over TLS (ALPN http/1.1, as curl offers it without
    --http2), the answer read until the server closes."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as tcp,
        context.wrap_socket(tcp, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer


def test_https_serves_tritonclient_and_curl_and_refuses_plain_http(
    repository: Path, tmp_path: Path
) -> None:
    authority = Authority.create("test CA")
    ca = authority.write(tmp_path / "ca.crt")
    leaf = authority.issue(tmp_path, "server", serial=1)
    flags = [*tls_flags(leaf), "--grpc-handshake-timeout-ms", "1000"]
    options = {"ssl": True, "root_certificates": str(ca)}
    log = tmp_path / "server.log"
    with ServerProcess(repository, log, flags, client_options=options) as server:
        server.wait_ready()
        assert "HTTPS (v2 REST) listening" in server.log()
        assert "serves plaintext" not in server.log()
        x = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 64)
        with rest(server.http_url, ca) as client:
            assert client.is_server_ready()
            answer = infer_http(client, x)
        with grpcclient.InferenceServerClient(server.url, **options) as grpc_client:
            tensor = grpcclient.InferInput("input", [3, 64], "FP32")
            tensor.set_data_from_numpy(x)
            expected = grpc_client.infer("mlp", [tensor]).as_numpy("output")
        assert expected is not None and answer.tobytes() == expected.tobytes()

        # curl --cacert ca.crt https://localhost:PORT/v2/models/mlp/ready, byte for byte.
        answer_bytes = raw_https(
            server.http_port,
            ca,
            b"GET /v2/models/mlp/ready HTTP/1.1\r\nHost: localhost\r\n"
            b"User-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        )
        assert answer_bytes.startswith(b"HTTP/1.1 200 OK\r\n"), answer_bytes

        # Plain HTTP to the HTTPS port: 400 saying what to do, then closed.
        plain = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
        try:
            plain.request("GET", "/v2/health/ready")
            response = plain.getresponse()
            assert response.status == 400
            message = json.loads(response.read())["error"]
            assert "this port speaks HTTPS only" in message and "https://" in message
        finally:
            plain.close()
        with (
            httpclient.InferenceServerClient(server.http_url) as plaintext,
            pytest.raises(InferenceServerException, match="HTTPS only"),
        ):
            plaintext.get_server_metadata()

        # A client that opens TCP and never says anything is cut by the handshake timeout.
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as silent:
            assert silent.recv(1) == b""
        assert time.monotonic() - started < 5

        # SIGHUP: new connections on both ports get the new certificate.
        assert presented_serial(server.http_port, ca) == 1
        authority.issue(tmp_path, "server", serial=2)
        os.kill(server.pid, signal.SIGHUP)
        wait_for_log(server, "SIGHUP: reloaded the TLS certificates")
        assert presented_serial(server.http_port, ca) == 2
        assert presented_serial(server.port, ca) == 2
        with rest(server.http_url, ca) as client:
            assert infer_http(client, x).tobytes() == expected.tobytes()


def test_mutual_tls_on_the_rest_port(repository: Path, tmp_path: Path) -> None:
    servers, clients = Authority.create("server CA"), Authority.create("client CA")
    ca = servers.write(tmp_path / "ca.crt")
    client_ca = clients.write(tmp_path / "clients-ca.crt")
    trusted = clients.issue(tmp_path, "client", serial=7, client=True)
    stranger = Authority.create("another CA").issue(tmp_path, "stranger", serial=8, client=True)
    flags = [
        *tls_flags(servers.issue(tmp_path, "server", serial=1)),
        "--grpc-use-ssl-mutual",
        "--grpc-root-cert",
        str(client_ca),
    ]
    options = {
        "ssl": True,
        "root_certificates": str(ca),
        "private_key": str(trusted.key),
        "certificate_chain": str(trusted.cert),
    }
    with ServerProcess(
        repository, tmp_path / "server.log", flags, client_options=options
    ) as server:
        server.wait_ready()
        x = np.ones((1, 64), np.float32)
        for identity in (None, stranger):
            # A TLS alert (certificate required, unknown CA) or the connection reset.
            with rest(server.http_url, ca, identity) as client, pytest.raises(OSError):
                infer_http(client, x)
        with rest(server.http_url, ca, trusted) as client:
            assert infer_http(client, x).shape == (1, 10)


def test_http_use_ssl_false_keeps_plain_http_with_a_warning(
    repository: Path, tmp_path: Path
) -> None:
    authority = Authority.create("test CA")
    ca = authority.write(tmp_path / "ca.crt")
    flags = [*tls_flags(authority.issue(tmp_path, "server", serial=1)), "--http-use-ssl=false"]
    options = {"ssl": True, "root_certificates": str(ca)}
    with ServerProcess(
        repository, tmp_path / "server.log", flags, client_options=options
    ) as server:
        server.wait_ready()
        with httpclient.InferenceServerClient(server.http_url) as client:
            assert client.is_server_ready()
        assert "serves plaintext (--http-use-ssl=false)" in server.log()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--http-use-ssl"], "--http-use-ssl serves HTTPS with the gRPC port's certificate"),
        (["{tls}", "--http-use-ssl", "--no-allow-http"], "there is no HTTP port"),
        (["{tls}", "--http-use-ssl=maybe"], "expected true or false"),
    ],
)
def test_http_use_ssl_without_what_it_needs_stops_the_start(
    repository: Path,
    tmp_path: Path,
    flags: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    leaf = Authority.create("test CA").issue(tmp_path, "server", serial=1)
    argv = ["serve", "--model-repository", str(repository)]
    for flag in flags:
        argv += tls_flags(leaf) if flag == "{tls}" else [flag]
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    assert expected in capsys.readouterr().err
