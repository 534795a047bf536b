"""Every RPC of the v2 protocol through unmodified tritonclient: sync, asyncio and streaming."""

from __future__ import annotations

import asyncio
import queue
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from support.models import reference
from support.repository import model_file
from support.rpc import assert_triton_error, infer_input

pytestmark = pytest.mark.timeout(60)


def _add_sub_inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((2, 4)).astype(np.float32),
        rng.standard_normal((2, 4)).astype(np.float32),
    )


def _add_sub_tensors(a: np.ndarray, b: np.ndarray) -> list[triton_grpc.InferInput]:
    return [infer_input("A", a, "FP32"), infer_input("B", b, "FP32")]


# -- health and metadata -------------------------------------------------------------------------


def test_server_live_and_ready(client: triton_grpc.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()


def test_model_ready(client: triton_grpc.InferenceServerClient) -> None:
    assert client.is_model_ready("add_sub")
    assert client.is_model_ready("add_sub", "1")
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready("add_sub", "7")


def test_server_metadata(client: triton_grpc.InferenceServerClient) -> None:
    metadata = client.get_server_metadata()
    assert metadata.name == "ferroserve"
    assert metadata.version
    for extension in ("model_repository", "model_configuration", "statistics"):
        assert extension in metadata.extensions


def test_model_metadata(client: triton_grpc.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("add_sub")
    assert metadata.name == "add_sub"
    assert list(metadata.versions) == ["1"]
    assert metadata.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("A", "FP32", [-1, 4]),
        ("B", "FP32", [-1, 4]),
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("SUM", "FP32", [-1, 4]),
        ("DIFF", "FP32", [-1, 4]),
    ]


def test_model_config(client: triton_grpc.InferenceServerClient) -> None:
    config = client.get_model_config("add_sub").config
    assert config.name == "add_sub"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert [i.name for i in config.input] == ["A", "B"]
    assert list(config.input[0].dims) == [4]


def test_metadata_as_json(client: triton_grpc.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("add_sub", as_json=True)
    assert metadata["name"] == "add_sub"
    assert metadata["inputs"][0]["shape"] == ["-1", "4"]


# -- inference -----------------------------------------------------------------------------------


def test_infer_matches_onnxruntime_and_echoes_id(
    client: triton_grpc.InferenceServerClient, main_repository: Path
) -> None:
    a, b = _add_sub_inputs()
    result = client.infer("add_sub", _add_sub_tensors(a, b), request_id="req-42")
    response = result.get_response()
    assert response.id == "req-42"
    assert response.model_name == "add_sub"
    assert response.model_version == "1"
    path = model_file(main_repository, "add_sub")
    expected_sum, expected_diff = reference(path, {"A": a, "B": b})
    assert result.as_numpy("SUM").tobytes() == expected_sum.tobytes()
    assert result.as_numpy("DIFF").tobytes() == expected_diff.tobytes()
    assert [list(o.shape) for o in response.outputs] == [[2, 4], [2, 4]]


def test_outputs_are_raw(client: triton_grpc.InferenceServerClient) -> None:
    a, b = _add_sub_inputs()
    response = client.infer("add_sub", _add_sub_tensors(a, b)).get_response()
    assert len(response.raw_output_contents) == len(response.outputs) == 2
    for output in response.outputs:
        assert not output.HasField("contents")
    assert len(response.raw_output_contents[0]) == a.nbytes


def test_requested_output_filtering(client: triton_grpc.InferenceServerClient) -> None:
    a, b = _add_sub_inputs(1)
    result = client.infer(
        "add_sub", _add_sub_tensors(a, b), outputs=[triton_grpc.InferRequestedOutput("DIFF")]
    )
    response = result.get_response()
    assert [o.name for o in response.outputs] == ["DIFF"]
    assert len(response.raw_output_contents) == 1
    np.testing.assert_array_equal(result.as_numpy("DIFF"), a - b)
    assert result.as_numpy("SUM") is None


def test_infer_mlp_without_config(
    client: triton_grpc.InferenceServerClient, main_repository: Path
) -> None:
    x = np.random.default_rng(3).standard_normal((5, 64)).astype(np.float32)
    result = client.infer("mlp", [infer_input("input", x, "FP32")])
    (expected,) = reference(model_file(main_repository, "mlp"), {"input": x})
    assert result.as_numpy("output").tobytes() == expected.tobytes()


def test_inference_statistics(client: triton_grpc.InferenceServerClient) -> None:
    a, b = _add_sub_inputs()
    before = client.get_inference_statistics("add_sub").model_stats
    client.infer("add_sub", _add_sub_tensors(a, b))
    stats = client.get_inference_statistics("add_sub").model_stats
    assert [(s.name, s.version) for s in stats] == [("add_sub", "1")]
    previous = before[0].inference_stats.success.count if before else 0
    assert stats[0].inference_stats.success.count >= previous + 1
    assert stats[0].inference_count >= 2  # two rows in the last request alone
    assert stats[0].execution_count >= 1
    assert stats[0].inference_stats.success.ns > 0
    assert stats[0].last_inference > 0


def test_inference_statistics_all_models(client: triton_grpc.InferenceServerClient) -> None:
    names = {s.name for s in client.get_inference_statistics().model_stats}
    assert {"add_sub", "mlp", "versioned"} <= names


def test_repository_index(client: triton_grpc.InferenceServerClient) -> None:
    index = client.get_model_repository_index().models
    rows = {(m.name, m.version): m.state for m in index}
    assert rows[("add_sub", "1")] == "READY"
    assert rows[("mlp", "1")] == "READY"
    assert rows[("versioned", "2")] == "READY"
    assert rows[("versioned", "3")] == "READY"
    assert ("versioned", "1") not in rows  # outside the version policy


def test_unload_and_load(server: object, client: triton_grpc.InferenceServerClient) -> None:
    x = np.ones((1, 4), np.float32)
    client.unload_model("unloadable")
    try:
        assert not client.is_model_ready("unloadable")
        assert client.is_server_ready()  # an explicitly unloaded model is not awaited
        message = assert_triton_error(
            lambda: client.infer("unloadable", [infer_input("INPUT0", x, "FP32")]),
            grpc.StatusCode.UNAVAILABLE,
            "unloadable",
        )
        assert "unload" in message.lower() or "no ready version" in message
        states = {
            m.state for m in client.get_model_repository_index().models if m.name == "unloadable"
        }
        assert states == {"UNAVAILABLE"}
    finally:
        client.load_model("unloadable")
    assert client.is_model_ready("unloadable")
    result = client.infer("unloadable", [infer_input("INPUT0", x, "FP32")])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)


def test_reloading_a_ready_model_keeps_serving(client: triton_grpc.InferenceServerClient) -> None:
    client.load_model("add_sub")
    assert client.is_model_ready("add_sub")
    a, b = _add_sub_inputs(7)
    np.testing.assert_array_equal(
        client.infer("add_sub", _add_sub_tensors(a, b)).as_numpy("SUM"), a + b
    )


def test_load_unknown_model_is_not_found(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: client.load_model("no_such_model"), grpc.StatusCode.NOT_FOUND, "no_such_model"
    )


def test_unload_unknown_model_is_not_found(client: triton_grpc.InferenceServerClient) -> None:
    assert_triton_error(
        lambda: client.unload_model("no_such_model"), grpc.StatusCode.NOT_FOUND, "no_such_model"
    )


def test_large_message_goes_through(client: triton_grpc.InferenceServerClient) -> None:
    # ~8 MB each way: above grpcio's 4 MiB default, far below the server's limit.
    x = np.arange(2 * 1024 * 1024, dtype=np.float32)
    result = client.infer("large", [infer_input("INPUT0", x, "FP32")])
    assert result.as_numpy("OUTPUT0").tobytes() == x.tobytes()


# -- streaming -----------------------------------------------------------------------------------


def test_stream_infer_echoes_request_ids(server: object) -> None:
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    with triton_grpc.InferenceServerClient(server.url) as stream_client:  # type: ignore[attr-defined]
        stream_client.start_stream(callback=lambda result, error: results.put((result, error)))
        sent = {}
        for i in range(6):
            a, b = _add_sub_inputs(i)
            sent[f"stream-{i}"] = (a, b)
            stream_client.async_stream_infer(
                "add_sub", _add_sub_tensors(a, b), request_id=f"stream-{i}"
            )
        got = [results.get(timeout=20) for _ in sent]
        stream_client.stop_stream()
    for result, error in got:
        assert error is None, error
        request_id = result.get_response().id
        a, b = sent.pop(request_id)
        np.testing.assert_array_equal(result.as_numpy("SUM"), a + b)
    assert not sent


def test_stream_error_does_not_end_stream(server: object) -> None:
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    with triton_grpc.InferenceServerClient(server.url) as stream_client:  # type: ignore[attr-defined]
        stream_client.start_stream(callback=lambda result, error: results.put((result, error)))
        bad = [
            infer_input("A", np.ones((1, 4), np.int32), "INT32"),
            infer_input("B", np.ones((1, 4), np.float32), "FP32"),
        ]
        stream_client.async_stream_infer("add_sub", bad, request_id="bad")
        first = results.get(timeout=20)
        a, b = _add_sub_inputs()
        stream_client.async_stream_infer("add_sub", _add_sub_tensors(a, b), request_id="good")
        second = results.get(timeout=20)
        stream_client.stop_stream()
    result, error = first
    assert result is None
    assert error is not None
    assert "'A'" in str(error) and "INT32" in str(error)
    result, error = second
    assert error is None, error
    assert result.get_response().id == "good"


# -- asyncio client ------------------------------------------------------------------------------


def test_aio_infer_and_metadata(server: object, main_repository: Path) -> None:
    a, b = _add_sub_inputs(5)

    async def scenario() -> None:
        async with triton_aio.InferenceServerClient(server.url) as aio:  # type: ignore[attr-defined]
            assert await aio.is_server_live()
            assert await aio.is_server_ready()
            assert await aio.is_model_ready("add_sub")
            assert (await aio.get_server_metadata()).name == "ferroserve"
            metadata = await aio.get_model_metadata("add_sub")
            assert [t.name for t in metadata.inputs] == ["A", "B"]
            config = await aio.get_model_config("add_sub")
            assert config.config.max_batch_size == 8
            results = await asyncio.gather(
                *(
                    aio.infer("add_sub", _add_sub_tensors(a, b), request_id=f"aio-{i}")
                    for i in range(4)
                )
            )
            assert sorted(r.get_response().id for r in results) == [f"aio-{i}" for i in range(4)]
            expected_sum, _ = reference(model_file(main_repository, "add_sub"), {"A": a, "B": b})
            for result in results:
                assert result.as_numpy("SUM").tobytes() == expected_sum.tobytes()
            index = await aio.get_model_repository_index()
            assert any(m.name == "add_sub" for m in index.models)
            stats = await aio.get_inference_statistics("add_sub")
            assert stats.model_stats[0].name == "add_sub"

    asyncio.run(scenario())


def test_concurrent_requests_are_batched_and_split(server: object) -> None:
    """add_sub has dynamic batching: concurrent requests of 1-3 rows may share a batch, and each
    must get back exactly its own rows."""
    cases = [_add_sub_inputs(100 + i) for i in range(24)]
    cases = [(a[: 1 + i % 3], b[: 1 + i % 3]) for i, (a, b) in enumerate(cases)]

    async def scenario() -> list[triton_grpc.InferResult]:
        async with triton_aio.InferenceServerClient(server.url) as aio:  # type: ignore[attr-defined]
            return await asyncio.gather(
                *(
                    aio.infer("add_sub", _add_sub_tensors(a, b), request_id=str(i))
                    for i, (a, b) in enumerate(cases)
                )
            )

    for result in asyncio.run(scenario()):
        a, b = cases[int(result.get_response().id)]
        np.testing.assert_array_equal(result.as_numpy("SUM"), a + b)
        np.testing.assert_array_equal(result.as_numpy("DIFF"), a - b)


def test_aio_stream_infer(server: object) -> None:
    inputs = {f"aio-stream-{i}": _add_sub_inputs(10 + i) for i in range(4)}

    async def requests():  # type: ignore[no-untyped-def]
        for request_id, (a, b) in inputs.items():
            yield {
                "model_name": "add_sub",
                "inputs": _add_sub_tensors(a, b),
                "request_id": request_id,
            }

    async def scenario() -> dict[str, np.ndarray]:
        got = {}
        async with triton_aio.InferenceServerClient(server.url) as aio:  # type: ignore[attr-defined]
            responses = aio.stream_infer(requests())
            async for result, error in responses:
                assert error is None, error
                got[result.get_response().id] = result.as_numpy("DIFF")
                if len(got) == len(inputs):
                    break
            responses.cancel()
        return got

    got = asyncio.run(scenario())
    assert sorted(got) == sorted(inputs)
    for request_id, (a, b) in inputs.items():
        np.testing.assert_array_equal(got[request_id], a - b)
