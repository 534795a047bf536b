"""One loaded model version: its engine (native or onnxruntime's Python binding), signature, Rust
batch queue and executor threads, the async `infer` the Python gRPC service awaits, and the
route the native front end answers it by (`native_route`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferroserve import _core
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.codec import (
    decode_inputs,
    infer_codec,
    parse_request,
    requested_outputs,
    serialize_response,
)
from ferroserve.config import ModelSignature, complete_config, warn_unsupported
from ferroserve.errors import InvalidInputError, ModelLoadError
from ferroserve.metrics.outcomes import SUCCESS, failure_outcome
from ferroserve.registry.repository import ModelSource
from ferroserve.runtime.executor import BatchExecutor, InlineInputs, RequestResult
from ferroserve.runtime.inline import InlinePolicy
from ferroserve.runtime.native import NativeExecutor
from ferroserve.runtime.session import create_session
from ferroserve.runtime.warmup import default_feeds, warmup_feeds

_DRAIN_TIMEOUT_S = 30.0


@dataclass(slots=True, frozen=True)
class LoadReport:
    """What loading found: the provider in use and config fields we ignore."""

    provider: str
    ignored_fields: tuple[str, ...]
    load_seconds: float


def _queue_policy(policy: Any) -> _core.QueuePolicy:
    return _core.QueuePolicy(
        timeout_action="DELAY" if policy.timeout_action == mc.ModelQueuePolicy.DELAY else "REJECT",
        default_timeout_us=int(policy.default_timeout_microseconds),
        allow_timeout_override=bool(policy.allow_timeout_override),
        max_queue_size=int(policy.max_queue_size),
    )


def build_queue(config: mc.ModelConfig) -> _core.BatchQueue:
    """A batch queue with the config's dynamic_batching settings. Without `dynamic_batching`,
    requests still queue but each runs as its own batch (Triton's default scheduler), so the
    queue treats them as unbatched whatever their dim 0."""
    if not config.HasField("dynamic_batching"):
        return _core.BatchQueue(config.name, 0)
    dynamic = config.dynamic_batching
    return _core.BatchQueue(
        config.name,
        config.max_batch_size,
        preferred_batch_sizes=list(dynamic.preferred_batch_size),
        max_queue_delay_us=int(dynamic.max_queue_delay_microseconds),
        priority_levels=int(dynamic.priority_levels),
        default_priority_level=int(dynamic.default_priority_level),
        default_policy=_queue_policy(dynamic.default_queue_policy),
        priority_policies={
            int(level): _queue_policy(policy)
            for level, policy in dynamic.priority_queue_policy.items()
        },
        preserve_ordering=bool(dynamic.preserve_ordering),
    )


class ServedModel:
    """A model version that is loaded, warmed up and accepting requests."""

    def __init__(self, source: ModelSource, version: int, loop: asyncio.AbstractEventLoop) -> None:
        """Loads and warms up the version. Blocking: call it from a worker thread."""
        started = time.perf_counter()
        self.name = source.name
        self.version = version
        self.version_label = str(version)
        config = mc.ModelConfig()
        config.CopyFrom(source.config)
        ignored = warn_unsupported(config)
        loaded = create_session(config, source.model_file(version))
        self.signature: ModelSignature = complete_config(config, loaded.inputs, loaded.outputs)
        self.config = config
        self.provider = loaded.provider
        self.queue = build_queue(config)
        self._codec = infer_codec(self.name, self.version_label, self.signature)
        self._executor: BatchExecutor | NativeExecutor
        executor_name = f"{self.name}:{version}"
        if loaded.native is not None:
            self._executor = NativeExecutor(
                executor_name, loaded.native, self.signature, self.queue, loop
            )
        else:
            assert loaded.session is not None
            self._executor = BatchExecutor(
                executor_name,
                loaded.session,
                self.signature,
                self.queue,
                loop,
                loaded.instance_count,
            )
        self._warm_up(source.path)
        self._inline = InlinePolicy.decide(config, loaded.instance_count, self._time_warm_call())
        self._executor.start()
        # Served by the native front end without Python when the native engine runs it
        # (priorities, timeouts and preserve_ordering are Rust's: queue and executor).
        self.native_route: _core.NativeRoute | None = (
            self._executor.route(self._codec)
            if isinstance(self._executor, NativeExecutor)
            else None
        )
        self.report = LoadReport(self.provider, tuple(ignored), time.perf_counter() - started)

    def _warm_up(self, model_dir: Path) -> None:
        for feeds in warmup_feeds(self.config, self.signature, model_dir):
            try:
                self._executor.call(feeds)()
            except Exception as error:
                raise ModelLoadError(
                    f"model '{self.name}' version {self.version}: warm-up inference failed: {error}"
                ) from error

    def _time_warm_call(self, calls: int = 5) -> int:
        """The CPU time of the calling thread for the fastest of a few zero-filled single-row
        calls on the warmed-up session, in ns. CPU time, not wall time, and the minimum: a core
        shared with other loading models or processes must not decide the policy (measured:
        servers pinned to one busy core saw ~100 µs wall for a 12 µs call)."""
        call = self._executor.call(default_feeds(self.signature))

        def timed() -> int:
            started = time.thread_time_ns()
            call()
            return time.thread_time_ns() - started

        return min(timed() for _ in range(calls))

    async def infer(
        self, request: pb.ModelInferRequest, time_remaining: float | None
    ) -> pb.ModelInferResponse:
        """Validates, queues and awaits one request; raises a FerroserveError subclass."""
        started = time.perf_counter_ns()
        outcome = SUCCESS
        try:
            decoded = decode_inputs(request, self.name, self.signature)
            wanted = requested_outputs(request, self.name, self.signature)
            parameters = request.parameters
            priority, timeout_us = _scheduling(parameters, self.name) if parameters else (0, 0)
            buffers, shapes = await self._run(
                decoded.buffers, decoded.shapes, priority, timeout_us, time_remaining
            )
            return self._response(request, wanted, buffers, shapes)
        except BaseException as error:
            outcome = failure_outcome(error)
            raise
        finally:
            self.queue.record_request(outcome, time.perf_counter_ns() - started)

    async def infer_message(
        self, message: _core.InferRequestView, time_remaining: float | None, stream: bool = False
    ) -> bytes:
        """`infer` for a received message, answered with a serialized `ModelInferResponse`
        (`ModelStreamInferResponse` with `stream`). The common request is matched and answered
        by the Rust codec without a protobuf object; the codec sends every other one, and so
        every error, through `infer`."""
        matched = self._codec.match(message)
        if matched is None:
            response = await self.infer(parse_request(message.data), time_remaining)
            return serialize_response(response, stream)
        if self._runs_inline():
            return self._answer_inline(message, matched, stream)
        started = time.perf_counter_ns()
        outcome = SUCCESS
        try:
            _, shapes, _, wanted = matched
            buffers, output_shapes = await self._queued(
                message, shapes, message.priority, message.timeout_us, time_remaining
            )
            return self._codec.encode(message, wanted, buffers, output_shapes, stream)
        except BaseException as error:
            outcome = failure_outcome(error)
            raise
        finally:
            self.queue.record_request(outcome, time.perf_counter_ns() - started)

    def answer_now(self, message: _core.InferRequestView, stream: bool = False) -> bytes | None:
        """The response, computed now on the calling thread, when the request takes the fast
        path and may run inline; None when it must be awaited with `infer_message`."""
        if not self._runs_inline():
            return None
        matched = self._codec.match(message)
        if matched is None:
            return None
        return self._answer_inline(message, matched, stream)

    def _runs_inline(self) -> bool:
        return self._inline.enabled and self.queue.pending == 0 and self._executor.idle

    def _answer_inline(
        self,
        message: _core.InferRequestView,
        matched: tuple[list[tuple[int, int]], list[list[int]], int, list[int]],
        stream: bool,
    ) -> bytes:
        started = time.perf_counter_ns()
        outcome = SUCCESS
        try:
            offsets, shapes, _, wanted = matched
            buffers, output_shapes = self._run_inline(
                self._executor.message_inputs(message, offsets), shapes
            )
            return self._codec.encode(message, wanted, buffers, output_shapes, stream)
        except BaseException as error:
            outcome = failure_outcome(error)
            raise
        finally:
            self.queue.record_request(outcome, time.perf_counter_ns() - started)

    async def _run(
        self,
        buffers: list[bytes],
        shapes: list[list[int]],
        priority: int,
        timeout_us: int,
        time_remaining: float | None,
    ) -> RequestResult:
        """Runs one validated request inline or through the batch queue."""
        if self._runs_inline():
            return self._run_inline(buffers, shapes)
        return await self._queued(buffers, shapes, priority, timeout_us, time_remaining)

    def _run_inline(self, buffers: InlineInputs, shapes: Sequence[Sequence[int]]) -> RequestResult:
        result, call_ns = self._executor.execute_inline(buffers, shapes)
        self._inline.observe(call_ns)
        return result

    async def _queued(
        self,
        inputs: list[bytes] | _core.InferRequestView,
        shapes: list[list[int]],
        priority: int,
        timeout_us: int,
        time_remaining: float | None,
    ) -> RequestResult:
        """Submits to the batch queue and awaits the answer. `inputs`: the buffers, or the
        request message whose raw contents they are (queued in place). `priority`, `timeout_us`:
        the request's parameters as sent (the queue applies Triton's rules). The executor
        resolves the future, in queue order for a preserve_ordering model."""
        future: asyncio.Future[RequestResult] = asyncio.get_running_loop().create_future()
        request_id = self.queue.submit(inputs, shapes, future, priority, timeout_us, time_remaining)
        try:
            return await future
        except asyncio.CancelledError:
            self._executor.cancel(request_id)
            raise

    def _response(
        self,
        request: pb.ModelInferRequest,
        wanted: list[int],
        buffers: list[bytes],
        shapes: list[list[int]],
    ) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse(
            model_name=self.name, model_version=self.version_label, id=request.id
        )
        outputs = self.signature.outputs
        for index in wanted:
            response.outputs.add(
                name=outputs[index].name,
                datatype=outputs[index].datatype.name,
                shape=shapes[index],
            )
            response.raw_output_contents.append(buffers[index])
        return response

    async def unload(self) -> None:
        """Stops taking requests, lets queued ones finish, then stops the executor threads."""
        self.queue.close(True)
        await asyncio.to_thread(self._executor.join, _DRAIN_TIMEOUT_S)
        self._executor.stop()
        for future in self.queue.close(False):
            if not future.done():
                future.set_exception(_core.UnavailableError(f"model '{self.name}' was unloaded"))


def _scheduling(parameters: Mapping[str, Any], model: str) -> tuple[int, int]:
    """Triton's per-request `priority` and `timeout` (microseconds) parameters, as sent: what
    they mean for the model (the level, whether the timeout applies) is the queue's rule
    (`BatcherConfig::level`, `QueuePolicy::timeout_us` in rust/batcher)."""
    priority = timeout_us = 0
    if "priority" in parameters:
        priority = _int_parameter(parameters["priority"], "priority", model)
    if "timeout" in parameters:
        timeout_us = _int_parameter(parameters["timeout"], "timeout", model)
    if priority < 0 or timeout_us < 0:
        raise InvalidInputError(f"model '{model}': priority and timeout must be >= 0")
    return priority, timeout_us


def _int_parameter(value: Any, key: str, model: str) -> int:
    kind = value.WhichOneof("parameter_choice")
    if kind in ("int64_param", "uint64_param"):
        return int(getattr(value, kind))
    raise InvalidInputError(
        f"model '{model}': request parameter '{key}' must be an integer (int64_param), got {kind}"
    )
