"""How a request ended, as the index into `_core.REQUEST_OUTCOMES` that the Rust statistics
count by (exported as `ferroserve_request_failures_total{reason=...}`): the one mapping from
the error hierarchy to outcomes, used where a request the Python server queued ends
(runtime/model.py); the native front end maps its own in Rust."""

from __future__ import annotations

import asyncio

from ferroserve._core import REQUEST_OUTCOMES
from ferroserve.errors import (
    DeadlineExceededError,
    FeatureNotFoundError,
    InvalidInputError,
    ModelLoadError,
    RequestCancelledError,
    ResourceExhaustedError,
    UnavailableError,
)

SUCCESS = REQUEST_OUTCOMES.index("success")
INTERNAL = REQUEST_OUTCOMES.index("internal")
_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidInputError, REQUEST_OUTCOMES.index("invalid")),
    (ModelLoadError, REQUEST_OUTCOMES.index("invalid")),
    # A key a REJECT feature view cannot serve: the request's fault, as the native front end
    # counts it.
    (FeatureNotFoundError, REQUEST_OUTCOMES.index("invalid")),
    (ResourceExhaustedError, REQUEST_OUTCOMES.index("rejected")),
    (DeadlineExceededError, REQUEST_OUTCOMES.index("timeout")),
    (RequestCancelledError, REQUEST_OUTCOMES.index("cancelled")),
    (asyncio.CancelledError, REQUEST_OUTCOMES.index("cancelled")),
    (UnavailableError, REQUEST_OUTCOMES.index("unavailable")),
)


def failure_outcome(error: BaseException) -> int:
    """The outcome index of a request that raised `error` (internal unless recognised)."""
    outcome: int
    for error_type, outcome in _BY_ERROR:
        if isinstance(error, error_type):
            return outcome
    return INTERNAL
