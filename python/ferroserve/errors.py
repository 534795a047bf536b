"""The exception hierarchy users and the server see, and its one mapping to gRPC status codes.

The classes are declared once in the Rust extension (so Rust and Python raise the same types);
this module re-exports them and adds `ModelLoadError` for repository problems.
"""

from __future__ import annotations

import grpc

from ferroserve._core import (
    DeadlineExceededError,
    FeatureNotFoundError,
    FerroserveError,
    InternalError,
    InvalidInputError,
    ModelNotFoundError,
    RequestCancelledError,
    ResourceExhaustedError,
    UnavailableError,
)

__all__ = [
    "ConfigError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FeatureNotFoundError",
    "FerroserveError",
    "InternalError",
    "InvalidInputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "RequestCancelledError",
    "ResourceExhaustedError",
    "UnavailableError",
    "status_code_for",
]


class ModelLoadError(FerroserveError):
    """A model version could not be loaded: bad file, bad config, missing execution provider."""


class ConfigError(ModelLoadError):
    """config.pbtxt cannot be parsed or contradicts the ONNX model."""


class FailedPreconditionError(FerroserveError):
    """A valid request the current state forbids (FAILED_PRECONDITION): a rollback with no
    earlier target, deleting an alias or unloading a version the traffic policy uses."""


_STATUS_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (FeatureNotFoundError, grpc.StatusCode.NOT_FOUND),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (RequestCancelledError, grpc.StatusCode.CANCELLED),
    (ModelLoadError, grpc.StatusCode.INVALID_ARGUMENT),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (InternalError, grpc.StatusCode.INTERNAL),
)


def status_code_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an error raised while serving a request."""
    for error_type, code in _STATUS_CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL
