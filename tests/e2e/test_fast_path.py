"""ModelInfer and ModelStreamInfer: the common request is parsed and answered by the native
front end (Rust), everything else is forwarded to the Python server, which parses it with
protobuf. Both paths must answer alike, and a message that is not a ModelInferRequest at all is
a clear INVALID_ARGUMENT."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from support.models import reference
from support.repository import model_file
from support.rpc import CHANNEL_OPTIONS, assert_rpc_error
from tritonclient.grpc import service_pb2 as pb

pytestmark = pytest.mark.timeout(60)
SERVICE = "/inference.GRPCInferenceService"
NOT_A_MESSAGE = b"\x0a\x05ab"  # field 1 claims 5 bytes, 2 follow


def mlp_request(rows: np.ndarray, request_id: str, typed: bool = False) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="mlp", id=request_id)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    if typed:
        tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    else:
        request.raw_input_contents.append(rows.tobytes())
    return request


def test_raw_and_typed_requests_answer_alike(server: object, main_repository: Path) -> None:
    """Raw contents take the native fast path, typed contents the Python server's protobuf
    path: same answer, equal to onnxruntime's, bit for bit."""
    rows = np.random.default_rng(3).standard_normal((3, 64)).astype(np.float32)
    (expected,) = reference(model_file(main_repository, "mlp"), {"input": rows})
    with grpc.insecure_channel(server.url, options=CHANNEL_OPTIONS) as channel:  # type: ignore[attr-defined]
        infer = channel.unary_unary(
            f"{SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        fast = infer(mlp_request(rows, "fast"))
        general = infer(mlp_request(rows, "general", typed=True))
    for response, request_id in ((fast, "fast"), (general, "general")):
        assert (response.model_name, response.model_version, response.id) == (
            "mlp",
            "1",
            request_id,
        )
        assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
            ("output", "FP32", [3, 10])
        ]
        assert response.raw_output_contents[0] == expected.tobytes()


def test_a_message_that_is_not_a_request_is_invalid_argument(server: object) -> None:
    with grpc.insecure_channel(server.url) as channel:  # type: ignore[attr-defined]
        infer = channel.unary_unary(f"{SERVICE}/ModelInfer")
        assert_rpc_error(
            lambda: infer(NOT_A_MESSAGE),
            grpc.StatusCode.INVALID_ARGUMENT,
            "malformed ModelInferRequest",
        )
        # The server keeps serving on the same channel.
        rows = np.zeros((1, 64), np.float32)
        answer = pb.ModelInferResponse.FromString(
            infer(mlp_request(rows, "after").SerializeToString())
        )
        assert answer.id == "after"


def test_stream_answers_native_and_forwarded_requests_and_survives_garbage(
    server: object, main_repository: Path
) -> None:
    """One stream mixes requests the native front end answers (fast path), typed-contents
    requests (forwarded: the general path), a message that is not a request, and an unknown
    model: every request gets exactly one response with its id, errors as error_message, and
    the stream goes on."""
    rng = np.random.default_rng(4)
    batches = {f"r{i}": rng.standard_normal((1 + i % 3, 64)).astype(np.float32) for i in range(12)}
    messages = [
        mlp_request(rows, request_id, typed=i % 4 == 3).SerializeToString()
        for i, (request_id, rows) in enumerate(batches.items())
    ]
    messages.insert(5, NOT_A_MESSAGE)
    messages.insert(9, pb.ModelInferRequest(model_name="nope", id="ghost").SerializeToString())
    with grpc.insecure_channel(server.url, options=CHANNEL_OPTIONS) as channel:  # type: ignore[attr-defined]
        stream = channel.stream_stream(
            f"{SERVICE}/ModelStreamInfer",
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )
        responses = list(stream(iter(messages)))
    assert len(responses) == len(messages)
    errors = {r.infer_response.id: r.error_message for r in responses if r.error_message}
    assert set(errors) == {"", "ghost"}
    assert "malformed ModelInferRequest" in errors[""]
    assert "nope" in errors["ghost"]
    path = model_file(main_repository, "mlp")
    answered = {r.infer_response.id: r.infer_response for r in responses if not r.error_message}
    assert set(answered) == set(batches)
    for request_id, rows in batches.items():
        (expected,) = reference(path, {"input": rows})
        response = answered[request_id]
        assert list(response.outputs[0].shape) == [len(rows), 10]
        assert response.raw_output_contents[0] == expected.tobytes()
