"""Shadow copies of the requests the Python server routes by the traffic policy (the native
front end sends its own, in Rust): once the request is answered, a copy runs on each shadow
version drawn for it, as a task of its own, and its answer is compared with the served one by
the front end's rule (`_core.shadow_difference`), then discarded. A request that fails sends
no copy. Counted in the routing counter the metrics snapshot reads."""

from __future__ import annotations

import asyncio
import logging

from ferroserve import _core
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve.errors import FerroserveError
from ferroserve.metrics.routing import RoutingCounter
from ferroserve.registry.routes import Target

log = logging.getLogger(__name__)


class ShadowCopies:
    """Runs and compares the copies; holds their tasks until they end."""

    def __init__(self, counter: RoutingCounter) -> None:
        self._counter = counter
        self._tasks: set[asyncio.Task[None]] = set()

    def send(
        self,
        request: pb.ModelInferRequest,
        served: pb.ModelInferResponse,
        copies: tuple[Target, ...],
    ) -> None:
        """Starts a copy of `request` on each of `copies` (answered with `served`)."""
        for copy in copies:
            task = asyncio.create_task(self._compare(request, served, copy))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _compare(
        self, request: pb.ModelInferRequest, served: pb.ModelInferResponse, copy: Target
    ) -> None:
        tally = self._counter.shadow(copy.model.name, copy.model.version)
        tally.sent += 1
        try:
            answer = await copy.model.infer(request, None)
        except FerroserveError as error:
            tally.failed += 1
            log.debug(
                "shadow copy to '%s' version %d failed: %s",
                copy.model.name,
                copy.model.version,
                error,
            )
            return
        # Microseconds for small outputs: compared on the loop, no thread hop.
        difference = _core.shadow_difference(served.SerializeToString(), answer.SerializeToString())
        tally.record(difference)
