"""Faults stay local: an exception a handler did not expect becomes INTERNAL with a message
that says what failed (the traceback goes to the log, never to the client, and neither does
the exception's text, which may hold paths), and a `FerroserveError` that escaped a handler
still gets its own status code. Without this, grpc.aio answers UNKNOWN with the exception's
text (docs/security.md)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from ferroserve.errors import FerroserveError, InternalError, status_code_for

log = logging.getLogger(__name__)


def without_root(text: str, root: Path) -> str:
    """`text` with the model repository's location taken out of the paths it names
    ("mlp/1/model.onnx", not where the repository lives on the host): what a client reads
    says what is wrong with which file of the repository, nothing about the host."""
    for prefix in {str(root.resolve()), str(root.absolute()), str(root)}:
        if prefix not in ("", "."):
            text = text.replace(prefix.rstrip("/") + "/", "")
    return text


def internal_error(method: str, error: BaseException) -> InternalError:
    """The error a client sees for `error`, logged with its traceback."""
    log.error("%s failed unexpectedly", method, exc_info=error)
    return InternalError(
        f"the server failed while answering {method} ({type(error).__name__}); its log has "
        "the details"
    )


async def _abort_for(method: str, error: Exception, context: Any) -> None:
    if isinstance(error, FerroserveError):
        await context.abort(status_code_for(error), str(error))
    await context.abort(grpc.StatusCode.INTERNAL, str(internal_error(method, error)))


def contain(
    service: str, method: str, rpc_type: str, behaviour: Callable[..., Any]
) -> Callable[..., Any]:
    """A `HandlerWrapper`: `behaviour` with its unexpected exceptions answered as above."""
    passing = (grpc.aio.AbortError, asyncio.CancelledError)

    if inspect.isasyncgenfunction(behaviour):

        @functools.wraps(behaviour)
        async def contained_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                async for response in behaviour(request, context):
                    yield response
            except passing:
                raise
            except Exception as error:
                await _abort_for(method, error, context)

        return contained_stream

    @functools.wraps(behaviour)
    async def contained(request: Any, context: Any) -> Any:
        try:
            return await behaviour(request, context)
        except passing:
            raise
        except Exception as error:
            await _abort_for(method, error, context)

    return contained
