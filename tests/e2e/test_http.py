"""The v2 REST protocol on --http-port: tritonclient.http (sync and asyncio) against every
endpoint, every datatype's outputs equal bit for bit to the gRPC path's (JSON and binary
tensor data), hand-written requests as curl sends them, and errors worded as on gRPC."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as httpclient
import tritonclient.http.aio as httpclient_aio
from support import models as m
from support.repository import identity_batch_name
from support.rpc import infer_input
from support.server import ServerProcess
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(120)

ALL = list(m.DATATYPES)


@pytest.fixture(scope="module")
def rest(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    with httpclient.InferenceServerClient(server.http_url) as client:
        yield client


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request as curl would send it: status, headers (lower-case names), body."""
    host, port = url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def http_input(name: str, array: np.ndarray, datatype: str, binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    if datatype == "BF16":
        tensor.set_data_from_numpy(
            np.ascontiguousarray(array, dtype=np.uint16).view(ml_dtypes.bfloat16),
            binary_data=binary,
        )
    else:
        tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def as_bytes(array: np.ndarray, datatype: str) -> Any:
    """Comparable contents: raw bytes, or the elements of a BYTES tensor."""
    if datatype == "BYTES":
        return [x if isinstance(x, bytes) else str(x).encode() for x in array.reshape(-1)]
    return np.ascontiguousarray(array).tobytes()


# --- endpoints -------------------------------------------------------------------------------


def test_health_and_metadata_match_the_grpc_answers(
    rest: httpclient.InferenceServerClient, client: triton_grpc.InferenceServerClient
) -> None:
    assert rest.is_server_live()
    assert rest.is_server_ready()
    assert rest.is_model_ready("mlp")
    assert rest.is_model_ready("versioned", "2")
    assert not rest.is_model_ready("no_such_model")
    assert rest.get_server_metadata() == client.get_server_metadata(as_json=True)
    metadata = rest.get_model_metadata("mlp")
    expected = client.get_model_metadata("mlp", as_json=True)
    for tensors in ("inputs", "outputs"):
        for tensor in expected[tensors]:
            tensor["shape"] = [int(d) for d in tensor["shape"]]  # protobuf's int64 strings
    assert metadata == expected
    versioned = client.get_model_metadata("versioned", "3", as_json=True)["versions"]
    assert rest.get_model_metadata("versioned", "3")["versions"] == versioned


def test_config_is_tritons_json_of_the_served_config(
    rest: httpclient.InferenceServerClient, client: triton_grpc.InferenceServerClient
) -> None:
    config = rest.get_model_config("mlp")
    expected = client.get_model_config("mlp", as_json=True)["config"]
    assert config["name"] == expected["name"] == "mlp"
    assert config["max_batch_size"] == expected["max_batch_size"]
    # int64 dims are numbers (Triton's ModelConfigToJson), and every field is printed.
    assert config["input"][0]["dims"] == [int(d) for d in expected["input"][0]["dims"]]
    assert "dynamic_batching" in config
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert config["batch_input"] == []


def test_statistics_count_the_requests_of_both_ports(
    rest: httpclient.InferenceServerClient, client: triton_grpc.InferenceServerClient
) -> None:
    def successes() -> int:
        (stats,) = rest.get_inference_statistics("add_sub")["model_stats"]
        return int(stats["inference_stats"]["success"]["count"])

    before = successes()
    x = np.ones((1, 4), np.float32)
    rest.infer("add_sub", [http_input("A", x, "FP32", True), http_input("B", x, "FP32", False)])
    client.infer("add_sub", [infer_input("A", x, "FP32"), infer_input("B", x, "FP32")])
    assert successes() == before + 2
    every = rest.get_inference_statistics()["model_stats"]
    assert {"mlp", "add_sub"} <= {s["name"] for s in every}
    # Numbers, not protobuf's strings: perf_analyzer reads them as integers.
    assert isinstance(every[0]["inference_count"], int)


def test_repository_index_load_and_unload(
    rest: httpclient.InferenceServerClient, server: ServerProcess
) -> None:
    index = {(row["name"], row.get("version")): row for row in rest.get_model_repository_index()}
    assert index[("unloadable", "1")]["state"] == "READY"
    rest.unload_model("unloadable")
    assert not rest.is_model_ready("unloadable")
    rest.load_model("unloadable")
    assert rest.is_model_ready("unloadable")
    status, _, body = call(server.http_url, "POST", "/v2/repository/index", b'{"ready": true}')
    assert status == 200
    assert all(row["state"] == "READY" for row in json.loads(body))


def test_load_is_refused_in_model_control_mode_none(demo_server: ServerProcess) -> None:
    """The demo server runs Triton's default mode, none: load and unload are refused over HTTP
    with the gRPC path's message."""
    with (
        triton_grpc.InferenceServerClient(demo_server.url) as grpc_client,
        pytest.raises(InferenceServerException) as grpc_error,
    ):
        grpc_client.load_model("mlp")
    status, _, body = call(demo_server.http_url, "POST", "/v2/repository/models/mlp/load")
    assert status == 400
    assert json.loads(body)["error"] == grpc_error.value.message()


def test_openapi_description_lists_every_path(server: ServerProcess) -> None:
    status, headers, body = call(server.http_url, "GET", "/v2/openapi.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    spec = json.loads(body)
    assert spec["openapi"].startswith("3.")
    assert "/v2/models/{model}/infer" in spec["paths"]
    assert "/v2/repository/models/{model}/load" in spec["paths"]


# --- inference -------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ALL)
def test_every_datatype_equals_the_grpc_answer(
    datatype: str,
    binary: bool,
    rest: httpclient.InferenceServerClient,
    client: triton_grpc.InferenceServerClient,
) -> None:
    name = identity_batch_name(datatype)
    array = m.sample(datatype, [3, *m.BATCH_DIMS], seed=2)
    expected = client.infer(name, [infer_input("INPUT0", array, datatype)])
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    # tritonclient.http sends BF16 inputs in binary only; its output is still JSON here.
    sent_binary = binary or datatype == "BF16"
    result = rest.infer(name, [http_input("INPUT0", array, datatype, sent_binary)], outputs=outputs)
    answer = result.get_response()["outputs"][0]
    assert (answer["datatype"], answer["shape"]) == (datatype, [3, 4])
    assert ("data" in answer) != binary
    assert as_bytes(result.as_numpy("OUTPUT0"), datatype) == as_bytes(
        expected.as_numpy("OUTPUT0"), datatype
    )


def test_the_asyncio_client_serves_every_endpoint(
    server: ServerProcess, client: triton_grpc.InferenceServerClient
) -> None:
    x = m.sample("FP32", [2, 64], seed=3)

    async def scenario() -> np.ndarray:
        async with httpclient_aio.InferenceServerClient(server.http_url) as aio:
            assert await aio.is_server_live()
            assert await aio.is_server_ready()
            assert await aio.is_model_ready("mlp")
            assert (await aio.get_server_metadata())["name"] == "ferroserve"
            assert (await aio.get_model_metadata("mlp"))["name"] == "mlp"
            assert (await aio.get_model_config("mlp"))["name"] == "mlp"
            assert (await aio.get_inference_statistics("mlp"))["model_stats"]
            assert await aio.get_model_repository_index()
            tensor = httpclient_aio.InferInput("input", [2, 64], "FP32")
            tensor.set_data_from_numpy(x)
            results = await asyncio.gather(*(aio.infer("mlp", [tensor]) for _ in range(8)))
            first = results[0].as_numpy("output")
            assert all(np.array_equal(r.as_numpy("output"), first) for r in results)
            return first

    answer = asyncio.run(scenario())
    expected = client.infer("mlp", [infer_input("input", x, "FP32")]).as_numpy("output")
    assert answer.tobytes() == expected.tobytes()


def test_curl_style_json_nested_or_flat(server: ServerProcess) -> None:
    flat = {
        "inputs": [{"name": "INPUT0", "shape": [2, 4], "datatype": "INT32", "data": list(range(8))}]
    }
    nested = {
        "id": "n1",
        "inputs": [
            {
                "name": "INPUT0",
                "shape": [2, 4],
                "datatype": "INT32",
                "data": [[0, 1, 2, 3], [4, 5, 6, 7]],
            }
        ],
    }
    path = f"/v2/models/{identity_batch_name('INT32')}/infer"
    answers = []
    for body in (flat, nested):
        status, headers, raw = call(server.http_url, "POST", path, json.dumps(body).encode())
        assert status == 200, raw
        assert headers["content-type"] == "application/json"
        answers.append(json.loads(raw))
    assert answers[0]["outputs"] == answers[1]["outputs"]
    assert answers[0]["outputs"][0]["data"] == list(range(8))
    assert answers[1]["id"] == "n1"
    assert "id" not in answers[0]
    assert answers[0]["model_name"] == identity_batch_name("INT32")
    assert answers[0]["model_version"] == "1"


def test_fp16_and_bf16_json_are_numbers(server: ServerProcess) -> None:
    for datatype, values in (
        ("FP16", [1.5, -2.0, 0.0999755859375, 65504.0]),
        ("BF16", [1.5, -2.0, 0.10009765625, 3.0]),
    ):
        body = {
            "inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": datatype, "data": values}]
        }
        path = f"/v2/models/{identity_batch_name(datatype)}/infer"
        status, _, raw = call(server.http_url, "POST", path, json.dumps(body).encode())
        assert status == 200, raw
        assert json.loads(raw)["outputs"][0]["data"] == values


def test_binary_extension_by_hand(server: ServerProcess) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "A",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 32},
                },
                {
                    "name": "B",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "data": x.reshape(-1).tolist(),
                },
            ],
            "outputs": [
                {"name": "SUM", "parameters": {"binary_data": True}},
                {"name": "DIFF"},
            ],
        }
    ).encode()
    status, headers, raw = call(
        server.http_url,
        "POST",
        "/v2/models/add_sub/infer",
        header + x.tobytes(),
        {
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert status == 200, raw
    length = int(headers["inference-header-content-length"])
    answer = json.loads(raw[:length])
    (added, subtracted) = answer["outputs"]
    assert added["parameters"]["binary_data_size"] == 32
    np.testing.assert_array_equal(np.frombuffer(raw[length:], np.float32).reshape(2, 4), x + x)
    assert subtracted["data"] == [0.0] * 8


def test_keep_alive_serves_many_requests_on_one_connection(server: ServerProcess) -> None:
    host, port = server.http_url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
    ).encode()
    try:
        for _ in range(20):
            connection.request("POST", "/v2/models/mlp/infer", body=body)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()


# --- errors ----------------------------------------------------------------------------------


def grpc_message(
    client: triton_grpc.InferenceServerClient, model: str, *inputs: Any, version: str = ""
) -> str:
    with pytest.raises(InferenceServerException) as error:
        client.infer(model, list(inputs), model_version=version)
    return str(error.value.message())


def test_errors_have_the_grpc_wording_and_tritons_status(
    server: ServerProcess, client: triton_grpc.InferenceServerClient
) -> None:
    x = np.ones((1, 4), np.float32)
    cases = [
        # (model, version, inputs as (name, datatype, shape, data), HTTP status)
        ("no_such_model", "", [("INPUT0", "FP32", [1, 4], x)], 404),
        ("add_sub", "7", [("A", "FP32", [1, 4], x), ("B", "FP32", [1, 4], x)], 404),
        ("add_sub", "", [("A", "FP32", [1, 4], x)], 400),
        (
            "add_sub",
            "",
            [("A", "INT32", [1, 4], x.astype(np.int32)), ("B", "FP32", [1, 4], x)],
            400,
        ),
        (
            "add_sub",
            "",
            [("A", "FP32", [1, 5], np.ones((1, 5), np.float32)), ("B", "FP32", [1, 4], x)],
            400,
        ),
        (
            "add_sub",
            "",
            [("A", "FP32", [1, 4], x), ("B", "FP32", [1, 4], x), ("C", "FP32", [1, 4], x)],
            400,
        ),
        (
            "add_sub",
            "",
            [
                ("A", "FP32", [9, 4], np.ones((9, 4), np.float32)),
                ("B", "FP32", [9, 4], np.ones((9, 4), np.float32)),
            ],
            400,
        ),
    ]
    for model, version, inputs, expected_status in cases:
        grpc_inputs = [infer_input(name, data, datatype) for name, datatype, _, data in inputs]
        expected = grpc_message(client, model, *grpc_inputs, version=version)
        body = {
            "inputs": [
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": shape,
                    "data": data.reshape(-1).tolist(),
                }
                for name, datatype, shape, data in inputs
            ]
        }
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        status, headers, raw = call(server.http_url, "POST", path, json.dumps(body).encode())
        assert (status, json.loads(raw)) == (expected_status, {"error": expected}), (model, inputs)
        assert headers["content-type"] == "application/json"


def test_unknown_paths_and_methods(server: ServerProcess) -> None:
    status, _, raw = call(server.http_url, "GET", "/v2/nothing")
    assert status == 404
    assert "openapi.json" in json.loads(raw)["error"]
    status, headers, _ = call(server.http_url, "GET", "/v2/models/mlp/infer")
    assert (status, headers["allow"]) == (405, "POST")
    status, _, raw = call(server.http_url, "GET", "/v2/models/no_such_model/config")
    assert status == 404
    assert "no_such_model" in json.loads(raw)["error"]
