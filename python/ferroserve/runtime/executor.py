"""What runs a model version's batches, as the loader and the served model see it: the
`Executor` protocol, met by the native engine's executor (native.py) and by the one on
onnxruntime's Python binding (binding.py). Both take requests from the version's Rust
`BatchQueue` on their own threads and resolve the futures of the requests the Python server
queued with a `RequestResult`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ferroserve import _core

# One request's answer: a raw buffer and a shape per output of the signature.
RequestResult = tuple[list[bytes], list[list[int]]]


class Executor(Protocol):
    """The executor threads of one model version and the calls around their lifetime."""

    @property
    def warm_up_instances(self) -> int:
        """How many engine instances `warm_up` can run on (each warmed, as Triton does)."""

    def warm_up(self, feeds: dict[str, np.ndarray], instance: int) -> None:
        """Runs one call on `feeds` (numpy arrays by input name; optional inputs may be left
        out) on `instance` before the threads start; blocking, from a loading thread. Raises on
        failure."""

    def start(self) -> None:
        """Starts the threads; from then on they take batches from the queue."""

    def route(self, model: str, version: str) -> _core.NativeRoute | None:
        """The native front end's route to this version, or None when the front end cannot
        answer its requests itself (it then forwards them to the Python server)."""

    def cancel(self, request_id: int) -> None:
        """On the loop: takes a request whose caller gave up out of the queue, and out of the
        answer order of a preserve_ordering model."""

    def close_sequences(self) -> None:
        """Unload: a stateful model's sequence batcher takes no new request and ends its held
        ones unanswered (a no-op for other models)."""

    def join(self, timeout_s: float) -> None:
        """Waits up to `timeout_s` for the threads to stop; close the queue first. Blocking."""

    def stop(self) -> None:
        """On the loop, after `join`: hands over the last answers still held."""
