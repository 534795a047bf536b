"""Triton's `--grpc-restricted-protocol`: calls of a restricted protocol without their header
are refused UNAVAILABLE with Triton's words, on the native path, on calls forwarded to the
Python server, on streams and on the `--admin-port` listener; with the header they are served;
unrestricted protocols are untouched; the CLI sends headers with `--header`; a bad flag stops
the server before it starts."""

from __future__ import annotations

import contextlib
import queue
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support.admin import CONFIG, MODEL, plus, run_cli
from support.repository import add_model
from support.server import EXPLICIT, ServerProcess, free_port
from tritonclient.utils import InferenceServerException

INFER_KEY = {"triton-grpc-protocol-infer-key": "infer-value"}
ADMIN_KEY = {"triton-grpc-protocol-admin-key": "admin-value"}
RESTRICTED = (
    "--grpc-restricted-protocol=health,inference:infer-key=infer-value",
    "--grpc-restricted-protocol=model-repository:admin-key=admin-value",
)


def refused(key: str) -> str:
    return f"This protocol is restricted, expecting header 'triton-grpc-protocol-{key}'"


def zeros() -> list[triton_grpc.InferInput]:
    x = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), np.float32))
    return [x]


def infer(client: triton_grpc.InferenceServerClient, headers: dict[str, str] | None) -> float:
    result = client.infer(MODEL, zeros(), headers=headers)
    output = result.as_numpy("OUTPUT0")
    assert output is not None
    return float(output[0, 0])


def stream_answer(url: str, headers: dict[str, str] | None) -> Any:
    """The first thing a ModelStreamInfer stream opened with `headers` delivers: a result or
    an InferenceServerException."""
    answers: queue.Queue[Any] = queue.Queue()
    client = triton_grpc.InferenceServerClient(url)
    try:
        client.start_stream(lambda result, error: answers.put(error or result), headers=headers)
        # A refused stream may already have ended (as with Triton): its error is in the
        # callback either way.
        with contextlib.suppress(InferenceServerException):
            client.async_stream_infer(MODEL, zeros())
        return answers.get(timeout=10)
    finally:
        client.stop_stream()
        client.close()


def test_restricted_protocols_need_their_header(tmp_path: Path) -> None:
    add_model(tmp_path / "repository", MODEL, plus(1.0), CONFIG)
    flags = [*RESTRICTED, *EXPLICIT]
    with ServerProcess(
        tmp_path / "repository", tmp_path / "server.log", flags, headers=INFER_KEY
    ) as server:
        server.wait_ready()
        client = triton_grpc.InferenceServerClient(server.url)
        try:
            # Health and inference need the infer key: native inference and forwarded calls.
            with pytest.raises(InferenceServerException, match=refused("infer-key")) as error:
                client.is_server_live()
            assert error.value.status() == "StatusCode.UNAVAILABLE"
            with pytest.raises(InferenceServerException, match=refused("infer-key")):
                infer(client, None)
            with pytest.raises(InferenceServerException, match=refused("infer-key")):
                infer(client, {"triton-grpc-protocol-infer-key": "wrong"})
            assert client.is_server_live(headers=INFER_KEY)
            assert infer(client, INFER_KEY) == 1.0
            # A stream is refused as a whole; with the key it is served.
            answer = stream_answer(server.url, None)
            assert isinstance(answer, InferenceServerException)
            assert refused("infer-key") in str(answer)
            answer = stream_answer(server.url, INFER_KEY)
            assert not isinstance(answer, InferenceServerException), answer
            # The repository protocol needs the admin key, not the infer key.
            with pytest.raises(InferenceServerException, match=refused("admin-key")):
                client.get_model_repository_index(headers=INFER_KEY)
            assert client.get_model_repository_index(headers=ADMIN_KEY)
            # Statistics and metadata are not restricted here.
            assert client.get_inference_statistics(MODEL)
            assert client.get_model_metadata(MODEL)
            # The CLI: admin calls and health checks send headers with --header.
            code, _, err = run_cli("versions", MODEL, "--server", server.url)
            assert code == 1 and refused("admin-key") in err, err
            admin_header = "triton-grpc-protocol-admin-key=admin-value"
            code, out, err = run_cli(
                "versions", MODEL, "--server", server.url, "--header", admin_header
            )
            assert code == 0 and MODEL in out, err
            code, out, _ = run_cli("health", "--server", server.url)
            assert code == 1 and "UNAVAILABLE" in out, out
            infer_header = "triton-grpc-protocol-infer-key=infer-value"
            code, out, _ = run_cli("health", "--server", server.url, "--header", infer_header)
            assert code == 0 and "SERVING" in out, out
            # Unloading needs the admin key too; with it, explicit mode lets it through.
            with pytest.raises(InferenceServerException, match=refused("admin-key")):
                client.unload_model(MODEL, headers=INFER_KEY)
            client.unload_model(MODEL, headers=ADMIN_KEY)
        finally:
            client.close()


def test_the_admin_port_applies_the_same_restrictions(tmp_path: Path) -> None:
    add_model(tmp_path / "repository", MODEL, plus(1.0), CONFIG)
    admin_port = free_port()
    flags = [
        "--admin-port",
        str(admin_port),
        "--grpc-restricted-protocol=model-repository:admin-key=admin-value",
    ]
    with ServerProcess(tmp_path / "repository", tmp_path / "server.log", flags) as server:
        server.wait_ready()
        admin = f"127.0.0.1:{admin_port}"
        code, _, err = run_cli("versions", MODEL, "--server", admin)
        assert code == 1 and "UNAVAILABLE" in err and refused("admin-key") in err, err
        header = "triton-grpc-protocol-admin-key=admin-value"
        code, out, err = run_cli("versions", MODEL, "--server", admin, "--header", header)
        assert code == 0 and MODEL in out, err
        # Health on the admin port is not restricted by this flag.
        code, out, _ = run_cli("health", "--server", admin)
        assert code == 0, out


def test_a_bad_restriction_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    code, _, err = run_cli(
        "serve",
        "--model-repository",
        str(tmp_path),
        "--grpc-restricted-protocol=infer:key=value",
    )
    assert code == 2
    assert 'unknown protocol "infer"' in err and "inference" in err, err
    code, _, err = run_cli(
        "serve", "--model-repository", str(tmp_path), "--grpc-restricted-protocol=inference"
    )
    assert code == 2 and "<protocols>:<key>=<value>" in err, err
