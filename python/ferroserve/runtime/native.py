"""The native engine: onnxruntime's C API driven from Rust (`_core.OrtModel`, `_core.OrtExecutor`).

Its executor threads never take the GIL: they wait in the Rust batcher, run the batch, split the
outputs and answer each request. A request the native front end queued gets its answer on its
channel; one the Python server queued (a request the front end forwarded) gets it through a
queue whose pipe the event loop watches (`loop.add_reader`), so one wake-up settles every
answer of a batch.

It runs models whose tensors all have a v2 datatype (string tensors as BYTES), on the CPU or on
GPUs (CUDA, TensorRT), with the library the onnxruntime wheel ships
(`onnxruntime/capi/libonnxruntime.so*`, whose provider libraries sit beside it); anything else
(a sequence or map tensor, an install without that library file) runs on onnxruntime's Python
binding (binding.py), with the reason logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ferroserve import _core
from ferroserve.codec import output_buffer
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.drift.tracking import ModelDrift
from ferroserve.errors import ModelLoadError
from ferroserve.runtime.placement import Placement
from ferroserve.runtime.sequence import SequenceBatching, sequence_feeds
from ferroserve.runtime.settings import SessionSettings

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
            cudnn_conv_algo_search=where.cudnn_conv_algo_search,
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
    """Runs one model version on the native engine: executor threads fed by its queue, which
    answer the native front end's requests directly and the Python server's through the event
    loop. An `Executor` (runtime/executor.py)."""

    def __init__(
        self,
        name: str,
        model: _core.OrtModel,
        signature: ModelSignature,
        queue: _core.BatchQueue,
        loop: asyncio.AbstractEventLoop,
        features: tuple[_core.FeaturePlan, _core.FeatureStore] | None = None,
        client_signature: ModelSignature | None = None,
        sequence: SequenceBatching | None = None,
    ) -> None:
        """`signature`: the model's own (graph inputs, run by warm-up and the executor).
        With `features`, requests carry `client_signature`'s inputs (the plan's request
        inputs), which the route matches and each batch turns into the graph inputs."""
        self._signature = signature
        self._client_signature = client_signature or signature
        self._loop = loop
        self._route_features: _core.FeatureStore | None = None
        store: _core.FeatureStore | None = None
        if features is not None:
            plan, store = features
            by_name = {spec.name: spec for spec in signature.inputs}
            inputs = [by_name[name] for name in plan.model_inputs]
            if store.remote:
                # Views in Redis: the route joins each request before queueing, so the queue
                # holds graph inputs and the executor gathers nothing.
                self._route_features, store = store, None
        else:
            inputs = list(signature.inputs)
        self._sequence = sequence
        outputs = list(signature.outputs)
        if sequence is not None:
            # The sequencer feeds its control and state inputs after the client's, and keeps
            # the state outputs (after the client's) for each sequence's next request.
            inputs += sequence.inputs
            outputs += sequence.outputs
        self.instances: int = model.instances
        """Executor threads (one per engine instance)."""
        self.inputs: tuple[TensorSpec, ...] = tuple(inputs)
        """The model inputs the executor runs with, in its order (a drift tracker's first
        tensors; the outputs follow in `signature.outputs` order)."""
        self._core = _core.OrtExecutor(
            name,
            model,
            queue,
            input_names=[spec.name for spec in inputs],
            output_names=[spec.name for spec in outputs],
            batches=signature.batches,
            input_reshapes=[
                (list(spec.dims), list(spec.model_dims)) if spec.model_dims != spec.dims else None
                for spec in inputs
            ],
            output_reshapes=[
                (list(spec.model_dims), list(spec.output_dims))
                if spec.model_dims != spec.dims
                else None
                for spec in outputs
            ],
            features=store,
            sequence=None if sequence is None else sequence.plan,
        )
        self._watching = False

    @property
    def warm_up_instances(self) -> int:
        """Each instance has its own session, warmed up on its own."""
        return self.instances

    def warm_up(self, feeds: dict[str, np.ndarray], instance: int) -> None:
        """One call on `feeds` (numpy, by input name) on `instance`, without the GIL (from a
        loading thread). BYTES feeds (object arrays) are sent length-prefixed, as requests
        carry them."""
        arrays = [feeds[spec.name] for spec in self._signature.inputs]
        if self._sequence is not None:
            # Warm-up calls run the engine directly: the server-fed inputs are zeros.
            rows = arrays[0].shape[0] if self._signature.batches and arrays else None
            fed = sequence_feeds(self._sequence, rows)
            arrays += [fed[spec.name] for spec in self._sequence.inputs]
        self._core.run(
            [output_buffer(a) for a in arrays], [list(a.shape) for a in arrays], instance
        )

    def run_outputs(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray | None]:
        """The outputs of one call on `feeds` (numpy, by input name, the executor's inputs) on
        instance 0, from a loading thread; None for a BYTES output."""
        arrays = [feeds[spec.name] for spec in self.inputs]
        buffers, shapes = self._core.run(
            [output_buffer(a) for a in arrays], [list(a.shape) for a in arrays]
        )
        results: list[np.ndarray | None] = []
        for spec, buffer, shape in zip(self._signature.outputs, buffers, shapes, strict=True):
            dtype = spec.datatype.numpy
            results.append(None if dtype is None else np.frombuffer(buffer, dtype).reshape(shape))
        return results

    def track_drift(self, drift: ModelDrift) -> None:
        """Has every executed batch counted into `drift`'s tracker; before `start`."""
        self._core.track_drift(drift.tracker)

    def start(self) -> None:
        """Starts the executor threads and, from any thread, has the loop watch for answers."""
        self._loop.call_soon_threadsafe(self._watch)
        self._core.start()

    def _watch(self) -> None:
        self._loop.add_reader(self._core.fileno(), self._core.settle)
        self._watching = True

    def route(self, model: str, version: str) -> _core.NativeRoute:
        """The native front end's route to this version: requests its fast path takes (matched
        against the signature in Rust) are queued for these executor threads and answered by
        them without Python."""
        signature = self._client_signature
        return _core.NativeRoute(
            self._core,
            model,
            version,
            inputs=[
                (layout.name, layout.datatype, list(layout.shape), layout.itemsize)
                for layout in signature.input_layouts
            ],
            max_batch_size=signature.max_batch_size,
            outputs=[(spec.name, spec.datatype.name) for spec in signature.outputs],
            features=self._route_features,
        )

    def cancel(self, request_id: int) -> None:
        """Takes a request whose caller gave up out of the queue (and out of the answer order
        of a preserve_ordering model); one already running is answered as usual."""
        self._core.cancel(request_id)

    def join(self, timeout_s: float) -> None:
        self._core.join(timeout_s)

    def close_sequences(self) -> None:
        """Unload: a stateful model's sequencer takes no new request (held ones end
        unanswered). A no-op for other models."""
        self._core.close_sequences()

    def stop(self) -> None:
        """On the loop, after `join`: settles the last answers (those a preserve_ordering
        model still held for their turn included) and stops watching."""
        self._core.stop_ordering()
        self._core.settle()
        if self._watching:
            self._loop.remove_reader(self._core.fileno())
            self._watching = False
