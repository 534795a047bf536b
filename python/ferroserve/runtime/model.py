"""`ServedModel`: one model version that is loaded, warmed up and serving (the loader,
runtime/loader.py, builds it). It holds what serving needs (config, signature, the Rust batch
queue, the executor, the native front end's route) and answers the requests the Python server
receives for it on the general path: validate, queue, await the executor's answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ferroserve import _core
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.codec import (
    decode_inputs,
    encode_response,
    requested_outputs,
    scheduling_parameters,
)
from ferroserve.config import ModelSignature
from ferroserve.drift.tracking import ModelDrift
from ferroserve.errors import FailedPreconditionError
from ferroserve.features.store import ModelFeatures
from ferroserve.outcomes import SUCCESS, failure_outcome
from ferroserve.runtime.executor import Executor, RequestResult

_DRAIN_TIMEOUT_S = 30.0
_DRAIN_POLL_S = 0.002


@dataclass(slots=True, frozen=True)
class LoadReport:
    """What loading found: the provider in use, config fields we ignore, the warm-up."""

    provider: str
    ignored_fields: tuple[str, ...]
    load_seconds: float
    warmup: str = ""
    """What the warm-up ran and how it went (runtime/warmup.py): a generated request that
    failed is reported here and in the log, and the version still serves."""
    warmup_shown: bool = False
    """Whether clients see `warmup` as the READY version's reason (`WarmupResult.shown`)."""

    @property
    def ready_reason(self) -> str:
        """The reason RepositoryIndex and `ferroserve versions` give for the READY version
        (Triton lists READY models with a reason text too): the warm-up when it is news."""
        return f"warm-up: {self.warmup}" if self.warmup_shown else ""


@dataclass(slots=True, frozen=True, eq=False)
class ServedModel:
    """A model version accepting requests. Compared by identity: a reload makes a new one."""

    name: str
    version: int
    config: mc.ModelConfig
    """Completed from the graph; what ModelConfig answers (with looked-up features, the request
    inputs in place of the graph's)."""
    signature: ModelSignature
    """What clients send and get back: the graph's tensors, or with looked-up features the
    declared request inputs and the graph's outputs."""
    queue: _core.BatchQueue
    """The version's Rust batch queue: the native front end and the Python server both queue
    here, and its statistics are the version's."""
    executor: Executor
    native_route: _core.NativeRoute | None
    """How the native front end answers this version itself; None: it forwards every request
    of it to the Python server."""
    report: LoadReport
    features: ModelFeatures | None = None
    """The version's feature plan and store (features.pbtxt), whose poller reloads snapshots."""
    drift: ModelDrift | None = None
    """The version's drift tracker (drift.pbtxt), which its executor threads count into."""
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Class labels by output name (`label_filename`), for the classification extension."""
    input_defaults: Mapping[str, tuple[bytes, list[int]]] = field(default_factory=dict)
    """The stored value (raw bytes, shape) of each optional input, fed when a request leaves
    it out."""

    @property
    def version_label(self) -> str:
        return str(self.version)

    @property
    def provider(self) -> str:
        return self.report.provider

    async def infer(
        self, request: pb.ModelInferRequest, time_remaining: float | None
    ) -> pb.ModelInferResponse:
        """Validates, queues and awaits one request; raises a FerroserveError subclass.
        `time_remaining`: the client's deadline in seconds (None: none)."""
        started = time.perf_counter_ns()
        outcome = SUCCESS
        try:
            decoded = decode_inputs(request, self.name, self.signature, self.input_defaults)
            wanted = requested_outputs(request, self.name, self.signature)
            priority, timeout_us = scheduling_parameters(request, self.name)
            buffers, shapes = decoded.buffers, decoded.shapes
            if self.config.platform == "ensemble":
                # As for sequences: the steps run in the native front end only.
                raise FailedPreconditionError(
                    f"ensemble '{self.name}' runs its steps in the native front end only: "
                    "send its requests uncompressed (no grpc-encoding)"
                )
            if self.config.HasField("sequence_batching"):
                # A valid request reaches the Python server only when the front end could not
                # read it in place (a compressed message); the sequencer lives there.
                raise FailedPreconditionError(
                    f"model '{self.name}' has a sequence batcher, which only the native front "
                    "end runs: send this model's requests uncompressed (no grpc-encoding)"
                )
            if self.features is not None and self.features.remote:
                # Its queue holds graph inputs, which the native front end joins from Redis
                # before queueing; the same Rust join runs here, off the loop (it waits on
                # Redis, at most the store's timeout).
                buffers, shapes = await asyncio.to_thread(
                    self.features.join, buffers, decoded.rows, self.signature.batches
                )
            result = await self._queued(buffers, shapes, priority, timeout_us, time_remaining)
            return encode_response(
                request,
                (self.name, self.version_label),
                self.signature,
                wanted,
                result,
                self.labels,
            )
        except BaseException as error:
            outcome = failure_outcome(error)
            raise
        finally:
            self.queue.record_request(outcome, time.perf_counter_ns() - started)

    async def _queued(
        self,
        buffers: list[bytes],
        shapes: list[list[int]],
        priority: int,
        timeout_us: int,
        time_remaining: float | None,
    ) -> RequestResult:
        """Submits to the batch queue and awaits the answer. `priority`, `timeout_us`: the
        request's parameters as sent (the queue applies Triton's rules). The executor resolves
        the future, in queue order for a preserve_ordering model."""
        future: asyncio.Future[RequestResult] = asyncio.get_running_loop().create_future()
        request_id = self.queue.submit(
            buffers, shapes, future, priority, timeout_us, time_remaining
        )
        try:
            return await future
        except asyncio.CancelledError:
            self.executor.cancel(request_id)
            raise

    async def unload(self) -> None:
        """Stops taking requests, lets queued ones finish, then stops the executor threads.
        Called once the version has left the routes: it first waits until the native front
        end holds no request it routed here before (they are answered), so none of them
        meets a closed queue."""
        route = self.native_route
        # Requests a stateful model holds for their sequence's turn would keep the route busy
        # for as long as their sequences last: they end now (UNAVAILABLE); queued ones run.
        self.executor.close_sequences()
        give_up = time.monotonic() + _DRAIN_TIMEOUT_S
        while route is not None and route.holders() > 0 and time.monotonic() < give_up:
            await asyncio.sleep(_DRAIN_POLL_S)
        self.queue.close(True)
        if self.features is not None:
            await asyncio.to_thread(self.features.stop_polling)
        await asyncio.to_thread(self.executor.join, _DRAIN_TIMEOUT_S)
        self.executor.stop()
        for future in self.queue.close(False):
            if not future.done():
                future.set_exception(_core.UnavailableError(f"model '{self.name}' was unloaded"))
