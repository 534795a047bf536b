"""Executor threads for models on onnxruntime's Python binding (`native_engine: "false"`, and
graphs the native engine cannot run; every other model runs on the native engine, native.py):
each blocks inside the Rust batcher (`next_batch`, GIL released), runs one onnxruntime call per
batch, splits the outputs per request (in Rust for fixed-size tensors), and hands every result
of the batch back to the event loop in a single hop. The native front end forwards these
models' requests to the Python server, which queues them here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto

from ferroserve import _core
from ferroserve.codec import output_buffer
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.errors import DeadlineExceededError, InternalError, UnavailableError
from ferroserve.runtime.executor import RequestResult

log = logging.getLogger(__name__)

# How long an idle executor sleeps in Rust before checking whether it should stop.
_IDLE_WAIT_S = 0.5


# A request's future and what it gets: its result, or the error to raise.
Answer = tuple[Any, RequestResult | Exception]


def _settle(answers: Sequence[Answer]) -> None:
    """On the loop: hands each answer to its future; futures already done are skipped."""
    for future, answer in answers:
        if future.done():
            continue
        if isinstance(answer, Exception):
            future.set_exception(answer)
        else:
            future.set_result(answer)


class BindingExecutor:
    """Runs batches from one `BatchQueue` on one onnxruntime Python-binding session with N
    threads. An `Executor` (runtime/executor.py)."""

    def __init__(
        self,
        name: str,
        session: ort.InferenceSession,
        signature: ModelSignature,
        queue: _core.BatchQueue,
        loop: asyncio.AbstractEventLoop,
        instances: int,
    ) -> None:
        self._name = name
        self._session = session
        self._signature = signature
        self._queue = queue
        self._loop = loop
        self._output_names = [spec.name for spec in signature.outputs]
        self._uses_bf16 = any(
            s.datatype.name == "BF16" for s in (*signature.inputs, *signature.outputs)
        )
        # preserve_ordering: the release gate, used on the event loop only (so answers hopped
        # there by several threads keep the queue's order).
        self._in_order = _core.InOrder() if queue.preserve_ordering else None
        self._threads = [
            threading.Thread(target=self._serve, name=f"ferroserve-{name}-{i}", daemon=True)
            for i in range(instances)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close_sequences(self) -> None:
        """No sequence batcher runs here (stateful models need the native engine)."""

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """On the loop, after `join`: every answer was handed to the loop already; those a
        preserve_ordering model still holds for their turn go now."""
        if self._in_order is not None:
            _settle(self._in_order.open())

    def cancel(self, request_id: int) -> None:
        """On the loop: takes a request whose caller gave up out of the queue (and out of the
        answer order of a preserve_ordering model); one already running is answered as usual."""
        if self._queue.cancel(request_id) and self._in_order is not None:
            _settle(self._in_order.withdraw(request_id))

    @property
    def warm_up_instances(self) -> int:
        """Its threads share one session: one warm-up serves them all."""
        return 1

    def warm_up(self, feeds: dict[str, np.ndarray], instance: int) -> None:
        """One call on `feeds` (numpy, by input name; optional inputs may be left out), from a
        loading thread; BF16 bit patterns become bfloat16 OrtValues."""
        self.run(
            {
                spec.name: _bf16(feeds[spec.name])
                if spec.datatype.name == "BF16"
                else feeds[spec.name]
                for spec in self._signature.inputs
                if spec.name in feeds
            }
        )

    def route(self, model: str, version: str) -> None:
        """None: the native front end cannot answer these requests (its waiters need the native
        engine's executor threads); it forwards them to the Python server."""
        return None

    def run(self, feeds: dict[str, Any]) -> list[np.ndarray]:
        """One onnxruntime call (a batch, or a warm-up request)."""
        if self._uses_bf16:
            return self._run_bf16(feeds)
        return list(self._session.run(self._output_names, feeds))

    def _serve(self) -> None:
        while True:
            try:
                batch = self._queue.next_batch(_IDLE_WAIT_S)
            except UnavailableError:
                return
            if batch is None:
                continue
            if batch.rejected:
                message = f"model '{self._name}': request timed out in the queue"
                self._hop(
                    self._answer,
                    batch.rejected_ids,
                    [(future, DeadlineExceededError(message)) for future in batch.rejected],
                )
            if batch.tokens:
                self._execute(batch)

    def _answer(self, ids: Sequence[int], answers: list[Answer]) -> None:
        """On the loop: resolves the futures of requests `ids`, in queue order for a
        preserve_ordering model."""
        _settle(answers if self._in_order is None else self._in_order.finish(ids, answers))

    def _hop(self, callback: Callable[..., None], *args: Any) -> None:
        # A closed loop means the server is shutting down: nobody waits for the answer.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _execute(self, batch: _core.Batch) -> None:
        started = time.perf_counter_ns()
        try:
            feeds = {
                spec.name: self._feed(batch, index, spec)
                for index, spec in enumerate(self._signature.inputs)
            }
            prepared = time.perf_counter_ns()
            outputs = self.run(feeds)
            ran = time.perf_counter_ns()
            results = self._split(batch, outputs)
        except Exception as error:  # a failing batch fails its requests, never the executor
            log.warning("model '%s': batch of %d failed: %s", self._name, batch.size, error)
            message = f"model '{self._name}': onnxruntime failed: {error}"
            self._hop(
                self._answer,
                batch.request_ids,
                [(future, InternalError(message)) for future in batch.tokens],
            )
            return
        finished = time.perf_counter_ns()
        self._queue.record_execution(
            self._rows(batch), prepared - started, ran - prepared, finished - ran
        )
        self._hop(self._answer, batch.request_ids, list(zip(batch.tokens, results, strict=True)))

    def _rows(self, batch: _core.Batch) -> int:
        """Rows executed, as Triton counts inferences: dim 0 for a model that batches, also
        when it runs without dynamic_batching (its queue then sees every request as 1)."""
        if self._signature.batches and self._signature.inputs and len(batch.tokens) == 1:
            shape = batch.input(0)[1]
            if shape:
                return int(shape[0])
        return batch.size

    def _feed(self, batch: _core.Batch, index: int, spec: TensorSpec) -> Any:
        buffer, shape = batch.input(index)
        if spec.model_dims != spec.dims:
            shape = (
                (shape[0], *spec.model_input_shape(shape[1:]))
                if self._signature.batches
                else tuple(spec.model_input_shape(shape))
            )
        if spec.datatype.is_bytes:
            count = math.prod(shape)  # exact: numpy's product wraps at int64
            return _core.decode_bytes_tensor(bytes(buffer), count, spec.name, utf8=True).reshape(
                shape
            )
        assert spec.datatype.numpy is not None
        array = np.frombuffer(buffer, dtype=spec.datatype.numpy).reshape(shape)
        return _bf16(array) if spec.datatype.name == "BF16" else array

    def _run_bf16(self, feeds: dict[str, Any]) -> list[np.ndarray]:
        # numpy has no bfloat16: feed OrtValues and read bf16 outputs as their uint16 bits.
        values = {
            name: v if isinstance(v, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(v)
            for name, v in feeds.items()
        }
        results = self._session.run_with_ort_values(self._output_names, values)
        arrays = []
        for value in results:
            if value.data_type() == "tensor(bfloat16)":
                shape = value.shape()
                size = int(np.prod(shape)) * 2
                raw = ctypes.string_at(value.data_ptr(), size)
                arrays.append(np.frombuffer(raw, dtype=np.uint16).reshape(shape))
            else:
                arrays.append(value.numpy())
        return arrays

    def _split(self, batch: _core.Batch, outputs: list[np.ndarray]) -> list[RequestResult]:
        arrays = [np.asarray(output) for output in outputs]
        if len(batch.tokens) == 1:  # nothing to split: the common case at low load
            return [self._single_result(arrays)]
        requests = len(batch.tokens)
        buffers: list[list[bytes]] = [[] for _ in range(requests)]
        shapes_per_request: list[list[list[int]]] = [[] for _ in range(requests)]
        rows = batch.request_rows
        for spec, array in zip(self._signature.outputs, arrays, strict=True):
            if array.dtype == object:
                pieces = self._split_objects(array, rows)
            else:
                pieces = batch.split(np.ascontiguousarray(array))
            for i in range(requests):
                buffers[i].append(pieces[i])
                shapes_per_request[i].append(self._client_shape(spec, array, rows[i]))
        return [(buffers[i], shapes_per_request[i]) for i in range(requests)]

    def _single_result(self, arrays: list[np.ndarray]) -> RequestResult:
        shapes = [
            self._client_shape(spec, a, a.shape[0] if self._signature.batches else 0)
            for spec, a in zip(self._signature.outputs, arrays, strict=True)
        ]
        return [output_buffer(a) for a in arrays], shapes

    def _client_shape(self, spec: TensorSpec, array: np.ndarray, rows: int) -> list[int]:
        tail = list(array.shape[1:]) if self._signature.batches else list(array.shape)
        if spec.model_dims != spec.dims:
            tail = spec.client_output_shape(tail)
        return [rows, *tail] if self._signature.batches else tail

    def _split_objects(self, array: np.ndarray, rows: Sequence[int]) -> list[bytes]:
        if not self._signature.batches:
            return [_core.encode_bytes_tensor(array)]
        pieces, start = [], 0
        for count in rows:
            pieces.append(_core.encode_bytes_tensor(array[start : start + count]))
            start += count
        return pieces


def _bf16(bits: np.ndarray) -> ort.OrtValue:
    """A bfloat16 OrtValue from its uint16 bit patterns (numpy has no bfloat16)."""
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
        np.ascontiguousarray(bits, dtype=np.uint16), TensorProto.BFLOAT16
    )
