"""Transport security (docs/security.md): tritonclient with ssl=True against --grpc-use-ssl,
plaintext refused on a TLS port, mutual TLS (no client certificate refused, a trusted one
served) on the gRPC and admin ports, the CLI's TLS flags, HTTPS on the metrics sidecar,
certificates rotated with SIGHUP under load without a failed request, bad files refused at start
naming the flag and kept out on SIGHUP."""

from __future__ import annotations

import os
import signal
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from ferroserve import cli
from ferroserve.demo import mlp_model
from support.admin import run_cli
from support.repository import add_model
from support.server import ServerProcess, free_port
from support.tls import Authority, Leaf, presented_serial
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(120)
CLIENTS = 4


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tls-repository")
    add_model(root, "mlp", mlp_model())
    return root


def infer(client: grpcclient.InferenceServerClient) -> None:
    x = grpcclient.InferInput("input", [1, 64], "FP32")
    x.set_data_from_numpy(np.ones((1, 64), np.float32))
    output = client.infer("mlp", [x]).as_numpy("output")
    assert output is not None and output.shape[0] == 1


def triton(url: str, ca: Path, client: Leaf | None = None) -> grpcclient.InferenceServerClient:
    options: dict[str, Any] = {"ssl": True, "root_certificates": str(ca)}
    if client is not None:
        options |= {"private_key": str(client.key), "certificate_chain": str(client.cert)}
    return grpcclient.InferenceServerClient(url, **options)


def tls_flags(server: Leaf) -> list[str]:
    return [
        "--grpc-use-ssl",
        "--grpc-server-cert",
        str(server.cert),
        "--grpc-server-key",
        str(server.key),
    ]


def test_tritonclient_over_tls_is_served_and_plaintext_is_refused(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = Authority.create("test CA")
    ca = authority.write(tmp_path / "ca.crt")
    leaf = authority.issue(tmp_path, "server", serial=1)
    options = {"ssl": True, "root_certificates": str(ca)}
    with ServerProcess(
        repository, tmp_path / "server.log", tls_flags(leaf), client_options=options
    ) as server:
        server.wait_ready()
        with triton(server.url, ca) as client:
            infer(client)
        with grpcclient.InferenceServerClient(server.url) as plaintext:
            with pytest.raises(InferenceServerException) as refused:
                plaintext.is_server_live(client_timeout=5)
            # Told why, not just "Socket closed".
            assert "UNAVAILABLE" in str(refused.value.status())
            assert "this port speaks TLS only" in str(refused.value.message())
        assert "gRPC (TLS) listening" in server.log()
        code, out, _ = run_cli("health", "--server", server.url, "--root-cert", str(ca))
        assert code == 0 and "SERVING" in out, out
        code, out, _ = run_cli("health", "--server", server.url, "--timeout", "2")
        assert code == 1 and "UNAVAILABLE" in out, out
        # The Dockerfile's HEALTHCHECK command, unchanged, with the CA named in the environment.
        monkeypatch.setenv("FERROSERVE_ROOT_CERT", str(ca))
        code, out, _ = run_cli("health", "--server", server.url)
        assert code == 0 and "SERVING" in out, out


def test_mutual_tls_refuses_clients_without_a_trusted_certificate(
    repository: Path, tmp_path: Path
) -> None:
    servers, clients = Authority.create("server CA"), Authority.create("client CA")
    ca = servers.write(tmp_path / "ca.crt")
    client_ca = clients.write(tmp_path / "clients-ca.crt")
    trusted = clients.issue(tmp_path, "client", serial=7, client=True)
    stranger = Authority.create("another CA").issue(tmp_path, "stranger", serial=8, client=True)
    admin_port = free_port()
    flags = [
        *tls_flags(servers.issue(tmp_path, "server", serial=1)),
        "--grpc-use-ssl-mutual",
        "--grpc-root-cert",
        str(client_ca),
        "--admin-port",
        str(admin_port),
    ]
    options = {
        "ssl": True,
        "root_certificates": str(ca),
        "private_key": str(trusted.key),
        "certificate_chain": str(trusted.cert),
    }
    log = tmp_path / "server.log"
    with ServerProcess(repository, log, flags, client_options=options) as server:
        server.wait_ready()
        for identity in (None, stranger):
            with triton(server.url, ca, identity) as client:
                with pytest.raises(InferenceServerException) as refused:
                    infer(client)
                assert "UNAVAILABLE" in str(refused.value.status())
        with triton(server.url, ca, trusted) as client:
            infer(client)
        admin = f"127.0.0.1:{admin_port}"
        versions = ["versions", "--server", admin, "--root-cert", str(ca)]
        code, _, err = run_cli(*versions, "--timeout", "3")
        assert code == 1 and "UNAVAILABLE" in err, err
        code, out, err = run_cli(
            *versions, "--client-cert", str(trusted.cert), "--client-key", str(trusted.key)
        )
        assert code == 0 and "mlp" in out, err


def test_sighup_rotates_certificates_under_load_without_a_failed_request(
    repository: Path, tmp_path: Path
) -> None:
    authority = Authority.create("test CA")
    ca = authority.write(tmp_path / "ca.crt")
    leaf = authority.issue(tmp_path, "server", serial=1)
    flags = [
        *tls_flags(leaf),
        # The sidecar serves HTTPS with the same files and rotates with them.
        "--metrics-ssl-cert",
        str(leaf.cert),
        "--metrics-ssl-key",
        str(leaf.key),
    ]
    options = {"ssl": True, "root_certificates": str(ca)}
    log = tmp_path / "server.log"
    with ServerProcess(repository, log, flags, client_options=options) as server:
        server.wait_ready()
        assert presented_serial(server.port, ca) == 1
        stop = threading.Event()
        answered = [0] * CLIENTS
        failures: list[BaseException] = []

        def load(worker: int) -> None:
            # Worker 0 opens a new connection for every request: it crosses the rotation.
            client = triton(server.url, ca)
            try:
                while not stop.is_set():
                    if worker == 0:
                        client.close()
                        client = triton(server.url, ca)
                    infer(client)
                    answered[worker] += 1
            except BaseException as error:  # any failure fails the test
                failures.append(error)
            finally:
                client.close()

        workers = [threading.Thread(target=load, args=(i,)) for i in range(CLIENTS)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(0.5)
            authority.issue(tmp_path, "server", serial=2)  # the same files, rewritten
            os.kill(server.pid, signal.SIGHUP)
            wait_for_log(server, "SIGHUP: reloaded the TLS certificates")
            assert presented_serial(server.port, ca) == 2
            wait_for(lambda: sidecar_serial(server, ca) == 2)
            # A bad rotation: the old certificate stays and the server goes on.
            leaf.key.write_text("not a key\n")
            os.kill(server.pid, signal.SIGHUP)
            wait_for_log(server, "SIGHUP: kept the previous TLS certificates: --grpc-server-key")
            assert presented_serial(server.port, ca) == 2
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
        assert not failures, failures
        assert all(count > 0 for count in answered), answered
        assert metrics_over_https(server, ca)


def sidecar_serial(server: ServerProcess, ca: Path) -> int:
    try:
        return presented_serial(server.metrics_port, ca)
    except OSError:  # the sidecar still starting
        return 0


def metrics_over_https(server: ServerProcess, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    url = f"https://localhost:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        body = response.read().decode()
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
    return response.status == 200 and "ferroserve" in body


def wait_for(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def wait_for_log(server: ServerProcess, text: str) -> None:
    wait_for(lambda: text in server.log())


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--grpc-use-ssl"], "--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key"),
        (["--grpc-server-cert", "{dir}/server.crt"], "without --grpc-use-ssl"),
        (["{tls}", "--grpc-use-ssl-mutual"], "--grpc-use-ssl-mutual needs --grpc-root-cert"),
        (
            [
                "--grpc-use-ssl=true",
                "--grpc-server-cert={dir}/absent.crt",
                "--grpc-server-key={dir}/server.key",
            ],
            "--grpc-server-cert {dir}/absent.crt: No such file",
        ),
        (
            [
                "--grpc-use-ssl",
                "--grpc-server-cert={dir}/server.crt",
                "--grpc-server-key={dir}/other.key",
            ],
            "--grpc-server-key {dir}/other.key is not the private key of the certificate",
        ),
        (
            ["--metrics-ssl-cert", "{dir}/server.crt", "--metrics-ssl-key", "{dir}/other.key"],
            "--metrics-ssl-cert {dir}/server.crt / --metrics-ssl-key {dir}/other.key",
        ),
    ],
)
def test_unusable_tls_flags_stop_the_start_naming_the_flag_and_file(
    repository: Path,
    tmp_path: Path,
    flags: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    authority = Authority.create("test CA")
    leaf = authority.issue(tmp_path, "server", serial=1)
    authority.issue(tmp_path / "other", "other", serial=2).key.rename(tmp_path / "other.key")
    argv = ["serve", "--model-repository", str(repository)]
    for flag in flags:
        if flag == "{tls}":
            argv += tls_flags(leaf)
        else:
            argv.append(flag.format(dir=tmp_path))
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    assert expected.format(dir=tmp_path) in capsys.readouterr().err


def test_client_commands_name_an_unreadable_tls_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "absent.crt"
    assert cli.main(["health", "--root-cert", str(absent)]) == 2
    assert f"--root-cert {absent}: No such file" in capsys.readouterr().err
    client = ["--client-cert", str(absent)]
    assert cli.main(["versions", "--ssl", *client, "--client-key", str(absent)]) == 2
    assert f"--client-cert {absent}" in capsys.readouterr().err
    assert cli.main(["drift", "--root-cert", str(absent)]) == 2
    assert cli.main(["features", "status", "--root-cert", str(absent)]) == 2
