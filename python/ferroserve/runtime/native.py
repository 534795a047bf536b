"""The native engine: onnxruntime's C API driven from Rust (`_core.OrtModel`, `_core.OrtExecutor`).

Why: onnxruntime's Python binding releases the GIL on every `run`. On the event loop's thread
that hands the GIL to another thread and the loop then waits to get it back; measured on 2 cores,
one GIL release per request costs 20-25% of the transport's throughput at concurrency 16. The
native engine keeps the GIL for inline calls (short by policy, see inline.py) and its executor
threads never take it: they wait in the Rust batcher, run the batch, split the outputs and push
the answers to a queue whose pipe the event loop watches (`loop.add_reader`), so one wake-up
settles every answer of a batch.

It runs models whose tensors all have a v2 datatype (string tensors as BYTES), on the CPU or on
GPUs (CUDA, TensorRT), with the library the onnxruntime wheel ships
(`onnxruntime/capi/libonnxruntime.so*`, whose provider libraries sit beside it); anything else
(a sequence or map tensor, an install without that library file) falls back to onnxruntime's
Python binding (executor.py), with the reason logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from ferroserve import _core
from ferroserve.codec import output_buffer
from ferroserve.config import ModelSignature
from ferroserve.errors import InternalError, ModelLoadError

if TYPE_CHECKING:
    from ferroserve.runtime.executor import InlineInputs, RequestResult
    from ferroserve.runtime.placement import Placement
    from ferroserve.runtime.session import SessionSettings

log = logging.getLogger(__name__)

_LIBRARY_PATTERNS = {
    "linux": "libonnxruntime.so*",
    "darwin": "libonnxruntime*.dylib",
    "win32": "onnxruntime.dll",
}


@functools.cache
def library_path() -> Path | None:
    """The onnxruntime shared library inside the installed onnxruntime package, if it ships one
    (the Linux and macOS wheels do)."""
    pattern = _LIBRARY_PATTERNS.get(sys.platform)
    if pattern is None:
        return None
    capi = Path(ort.__file__).parent / "capi"
    found = sorted(capi.glob(pattern), key=lambda path: len(path.name), reverse=True)
    return found[0] if found else None


def load_native(
    model: str,
    model_file: Path,
    settings: SessionSettings,
    where: Placement,
    allow_cpu_fallback: bool = False,
) -> _core.OrtModel | None:
    """The model loaded on the native engine, or None (logged) where that engine cannot run it:
    no onnxruntime library file, or a graph input or output that is not a tensor of a v2
    datatype (a sequence, a map). Raises
    ModelLoadError when onnxruntime refuses the file, or when a requested GPU provider cannot
    start and `allow_cpu_fallback` is off."""
    library = library_path()
    if library is None:
        log.info("model '%s': no onnxruntime library file; using the Python binding", model)
        return None
    trt = where.tensorrt
    try:
        loaded = _core.OrtModel.load(
            library,
            model_file,
            instances=where.instance_count,
            accelerator=where.accelerator,
            gpus=where.gpus,
            allow_cpu_fallback=allow_cpu_fallback,
            tensorrt_fp16=trt is not None and trt.fp16,
            tensorrt_cache_path=trt.engine_cache_path if trt is not None else None,
            tensorrt_max_workspace_bytes=trt.max_workspace_bytes if trt is not None else None,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            parallel_execution=settings.parallel_execution,
            allow_spinning=settings.allow_spinning,
            optimization=settings.optimization,
            optimized_model_path=settings.optimized_model_path,
        )
    except NotImplementedError as reason:
        log.info("model '%s': %s; using onnxruntime's Python binding", model, reason)
        return None
    except _core.UnavailableError as error:
        raise ModelLoadError(
            f"model '{model}': instance_group asks for a GPU but {error}. Install "
            "onnxruntime-gpu with the CUDA 12/13 and cuDNN 9 libraries it was built for (see "
            "docs/configuration.md, GPUs), check the GPU ids, or set config parameter "
            'allow_cpu_fallback to "true" to run on CPU'
        ) from None
    except _core.FerroserveError as error:
        raise ModelLoadError(f"model '{model}': {error}") from error
    if loaded.providers[0] != "CPUExecutionProvider":
        log.info(
            "model '%s': %d instance(s) on GPU(s) %s, %s host memory for batches",
            model,
            where.instance_count,
            sorted(set(where.gpus)),
            "pinned" if loaded.pinned_io else "pageable",
        )
    return loaded


class NativeExecutor:
    """Runs one model version on the native engine: executor threads fed by its queue, and
    inline calls on the event loop. The same interface as `BatchExecutor`."""

    def __init__(
        self,
        name: str,
        model: _core.OrtModel,
        signature: ModelSignature,
        queue: _core.BatchQueue,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._name = name
        self._signature = signature
        self._queue = queue
        self._loop = loop
        self._core = _core.OrtExecutor(
            name,
            model,
            queue,
            input_names=[spec.name for spec in signature.inputs],
            output_names=[spec.name for spec in signature.outputs],
            batches=signature.batches,
            input_reshapes=[
                list(spec.model_dims) if spec.model_dims != spec.dims else None
                for spec in signature.inputs
            ],
            output_reshapes=[
                list(spec.dims) if spec.model_dims != spec.dims else None
                for spec in signature.outputs
            ],
        )
        self._watching = False

    def start(self) -> None:
        """Starts the executor threads and, from any thread, has the loop watch for answers."""
        self._loop.call_soon_threadsafe(self._watch)
        self._core.start()

    def _watch(self) -> None:
        self._loop.add_reader(self._core.fileno(), self._core.settle)
        self._watching = True

    def join(self, timeout_s: float) -> None:
        self._core.join(timeout_s)

    def stop(self) -> None:
        """On the loop, after `join`: settles the last answers (those a preserve_ordering
        model still held for their turn included) and stops watching."""
        self._core.stop_ordering()
        self._core.settle()
        if self._watching:
            self._loop.remove_reader(self._core.fileno())
            self._watching = False

    def message_inputs(
        self, message: _core.InferRequestView, offsets: Sequence[tuple[int, int]]
    ) -> _core.InferRequestView:
        """A matched request message is its own inputs: Rust reads its raw contents in place."""
        return message

    @property
    def idle(self) -> bool:
        """No executor thread is running a batch right now."""
        return self._core.idle

    def cancel(self, request_id: int) -> None:
        """Takes a request whose caller gave up out of the queue (and out of the answer order
        of a preserve_ordering model); one already running is answered as usual."""
        self._core.cancel(request_id)

    def route(self, codec: _core.InferCodec) -> _core.NativeRoute:
        """A route for the native gRPC front end: requests `codec` takes, queued for these
        executor threads and answered by them without Python."""
        return _core.NativeRoute(codec, self._core)

    def call(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        """A call on `feeds` (numpy, by input name) prepared once and run without the GIL each
        time it is called (warm-up and its timing, from a loading thread). BYTES feeds (object
        arrays) are sent length-prefixed, as requests carry them."""
        arrays = [feeds[spec.name] for spec in self._signature.inputs]
        buffers, shapes = [output_buffer(a) for a in arrays], [list(a.shape) for a in arrays]
        return lambda: self._core.run(buffers, shapes, detach=True)

    def execute_inline(
        self, inputs: InlineInputs, shapes: Sequence[Sequence[int]]
    ) -> tuple[RequestResult, int]:
        """Runs one request on the event loop with the GIL held; returns its result and the CPU
        time the call took on this thread in ns. Raises InternalError on failure."""
        held: Sequence[bytes] | _core.InferRequestView = (
            inputs
            if isinstance(inputs, _core.InferRequestView)
            else [bytes(buffer) for buffer in inputs]  # bytes already on this path: no copy
        )
        self._queue.record_unqueued()  # it left the (empty) queue at once, as Triton counts it
        started = time.perf_counter_ns()
        cpu_started = time.thread_time_ns()
        try:
            result = self._core.run(held, shapes)
        except Exception as error:
            raise InternalError(f"model '{self._name}': onnxruntime failed: {error}") from None
        cpu_ns = time.thread_time_ns() - cpu_started
        rows = int(shapes[0][0]) if self._signature.batches and shapes and shapes[0] else 1
        # Copies in and out are part of the one Rust call: counted as compute_infer.
        self._queue.record_execution(rows, 0, time.perf_counter_ns() - started, 0)
        return result, cpu_ns
