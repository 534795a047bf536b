"""The one load client every server gets in this benchmark: a closed-loop grpc.aio generator
(`concurrency` tasks, each sending its next request when the previous answer arrives) for any
model, input shape and rows per request, unary ModelInfer or ModelStreamInfer (one stream per
task). KServe's and MLServer's gRPC servers have no ModelConfig RPC, which Triton's
perf_analyzer needs, so this client drives all servers alike.

The request is tritonclient's `ModelInferRequest` with the tensor in raw_input_contents,
serialized once; answers are parsed only when checked. Per call the client costs grpc.aio's own
work and nothing that grows with the server's answer, so its cost is the same for every server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from measurement import Call, Measurement, MeasurementFailed, summarize
from server_process import HOST
from tritonclient.grpc import service_pb2

from .models import INPUT

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
# No answer within this long means the server is stuck; the run fails instead of hanging.
ANSWER_TIMEOUT_S = 30.0
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
# Servers sum in different orders (batched or not); outputs agree to float32 rounding.
TOLERANCE = 1e-4


def infer_request(model: str, batch: np.ndarray) -> bytes:
    """A serialized ModelInferRequest for `model` (latest version) with `batch` as raw FP32."""
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=INPUT, datatype="FP32")
    tensor.shape.extend(batch.shape)
    request.raw_input_contents.append(batch.tobytes())
    return bytes(request.SerializeToString())


def output_array(response: service_pb2.ModelInferResponse) -> np.ndarray:
    """The first output as an array, from raw contents or typed fp32 contents."""
    output = response.outputs[0]
    if response.raw_output_contents:
        values = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    else:
        values = np.asarray(output.contents.fp32_contents, dtype=np.float32)
    return values.reshape(tuple(output.shape))


class LoadGenerator:
    """Warm-up, then a fixed window; latencies of the calls that end inside it."""

    description = (
        "grpc.aio closed loop (one Python process, tritonclient's ModelInferRequest serialized "
        "once, raw FP32 input), the same for every server"
    )

    def __init__(self, window_s: float, warmup_s: float) -> None:
        self._window_s = window_s
        self._warmup_s = warmup_s

    def check(
        self, port: int, model: str, batch: np.ndarray, expected: np.ndarray, streaming: bool
    ) -> None:
        """One call whose answer must match `expected` (onnxruntime in-process on `batch`)."""
        asyncio.run(self._check(port, model, batch, expected, streaming))

    def measure(
        self, port: int, model: str, batch: np.ndarray, concurrency: int, streaming: bool
    ) -> Measurement:
        """Requests (not rows) per second and their latency at `concurrency`."""
        try:
            return asyncio.run(self._measure(port, model, batch, concurrency, streaming))
        except (TimeoutError, grpc.RpcError) as error:
            raise MeasurementFailed(f"client: {_describe(error)}") from error

    async def _check(
        self, port: int, model: str, batch: np.ndarray, expected: np.ndarray, streaming: bool
    ) -> None:
        async with grpc.aio.insecure_channel(f"{HOST}:{port}", options=CHANNEL_OPTIONS) as channel:
            request = infer_request(model, batch)
            try:
                if streaming:
                    call = _stream(channel)
                    await call.write(request)
                    answer = service_pb2.ModelStreamInferResponse.FromString(
                        await asyncio.wait_for(call.read(), ANSWER_TIMEOUT_S)
                    )
                    await call.done_writing()
                    if answer.error_message:
                        raise MeasurementFailed(f"stream: {answer.error_message}")
                    response = answer.infer_response
                else:
                    unary = _unary(channel)
                    response = service_pb2.ModelInferResponse.FromString(
                        await unary(request, timeout=ANSWER_TIMEOUT_S)
                    )
            except grpc.RpcError as error:
                raise MeasurementFailed(f"first call: {_describe(error)}") from error
        got = output_array(response)
        if got.shape != expected.shape or not np.allclose(got, expected, atol=TOLERANCE):
            raise MeasurementFailed(
                f"answer differs from onnxruntime in-process: shape {got.shape} vs "
                f"{expected.shape}, max |diff| {np.max(np.abs(got - expected)):.3g}"
                if got.shape == expected.shape
                else f"answer shape {got.shape}, expected {expected.shape}"
            )

    async def _measure(
        self, port: int, model: str, batch: np.ndarray, concurrency: int, streaming: bool
    ) -> Measurement:
        request = infer_request(model, batch)
        async with grpc.aio.insecure_channel(f"{HOST}:{port}", options=CHANNEL_OPTIONS) as channel:
            if streaming:
                calls = [_stream(channel) for _ in range(concurrency)]
                try:
                    return await self._drive([_streamed(call, request) for call in calls])
                finally:
                    for call in calls:
                        call.cancel()
            unary = _unary(channel)

            async def once() -> Any:
                return await unary(request, timeout=ANSWER_TIMEOUT_S)

            return await self._drive([once] * concurrency)

    async def _drive(self, senders: list[Callable[[], Awaitable[Any]]]) -> Measurement:
        start_ns = time.time_ns() + int(self._warmup_s * 1e9)
        end_ns = start_ns + int(self._window_s * 1e9)
        calls: list[Call] = []

        async def worker(send: Callable[[], Awaitable[Any]]) -> None:
            while (sent_ns := time.time_ns()) < end_ns:
                await send()
                now_ns = time.time_ns()
                calls.append(Call(now_ns, now_ns - sent_ns))

        await asyncio.gather(*(worker(send) for send in senders))
        return summarize(calls, start_ns, end_ns)


# grpc-stubs describe the sync API: grpc.aio's optional serializers, a stream call opened
# without an iterator (then fed with write()) and grpc.aio.EOF are missing from them.
def _unary(channel: grpc.aio.Channel) -> Any:
    """ModelInfer taking and returning serialized bytes (no (de)serializer in the client)."""
    return channel.unary_unary(MODEL_INFER)  # type: ignore[call-arg]


def _stream(channel: grpc.aio.Channel) -> Any:
    """A new ModelStreamInfer call, written and read one message at a time."""
    return channel.stream_stream(MODEL_STREAM_INFER)()  # type: ignore[call-arg]


def _streamed(call: Any, request: bytes) -> Callable[[], Awaitable[Any]]:
    """One request at a time on its own stream, so each answer belongs to the last request."""

    async def send() -> Any:
        await call.write(request)
        answer = await asyncio.wait_for(call.read(), ANSWER_TIMEOUT_S)
        if answer is grpc.aio.EOF:  # type: ignore[attr-defined]
            raise MeasurementFailed(f"stream ended: {await call.code()}")
        return answer

    return send


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error) or type(error).__name__
