"""Bearer-token access control for the services that change what a server serves (the admin
service today; the restricted protocols of the security issue can use the same guard). A
`TokenGuard` wraps each handler of a service (`add_service`'s `wrap` hook), so a refused call
is counted by the metrics wrapper outside it like any other failed call. The token is
compared in constant time."""

from __future__ import annotations

import functools
import hmac
import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from ferroserve._proto.service import HandlerWrapper

_SCHEME = "bearer "


class TokenGuard:
    """Requires `authorization: Bearer <token>` metadata on every call of the services it
    wraps: UNAUTHENTICATED without it (or with another scheme), PERMISSION_DENIED with a wrong
    token; each message says what to send."""

    def __init__(self, token: str, source: str) -> None:
        """`token`: the secret; `source`: where it came from, named in refusals (the flag,
        never the file's path: that is the server's business)."""
        if not token:
            raise ValueError(f"{source}: the token is empty")
        self._token = token.encode("utf-8")
        self._source = source

    @classmethod
    def from_file(cls, path: Path, flag: str) -> TokenGuard:
        """The token in `path` (surrounding whitespace and the final newline stripped).
        OSError when unreadable, ValueError (naming the file) when empty."""
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"{flag} {path}: the token is empty")
        return cls(token, flag)

    def refusal(self, metadata: Any) -> tuple[grpc.StatusCode, str] | None:
        """Why a call with this invocation metadata is refused, or None when it may go on."""
        values = [
            value
            for key, value in (metadata or ())
            if key == "authorization" and isinstance(value, str)
        ]
        hint = f"send metadata `authorization: Bearer <token>` with the server's {self._source}"
        if not values:
            return grpc.StatusCode.UNAUTHENTICATED, f"this call needs a token: {hint}"
        value = values[0]
        if not value.lower().startswith(_SCHEME):
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                f"the authorization is not a Bearer token: {hint}",
            )
        offered = value[len(_SCHEME) :].strip().encode("utf-8")
        if not hmac.compare_digest(offered, self._token):
            return grpc.StatusCode.PERMISSION_DENIED, f"the token is not the server's: {hint}"
        return None

    def wrap(
        self, service: str, method: str, rpc_type: str, behaviour: Callable[..., Any]
    ) -> Callable[..., Any]:
        """`behaviour` run only for calls that carry the token (a `HandlerWrapper`)."""
        refusal = self.refusal

        if inspect.isasyncgenfunction(behaviour):

            @functools.wraps(behaviour)
            async def guarded_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                refused = refusal(context.invocation_metadata())
                if refused is not None:
                    await context.abort(*refused)
                async for response in behaviour(request, context):
                    yield response

            return guarded_stream

        @functools.wraps(behaviour)
        async def guarded(request: Any, context: Any) -> Any:
            refused = refusal(context.invocation_metadata())
            if refused is not None:
                await context.abort(*refused)
            return await behaviour(request, context)

        return guarded


def chain(*wrappers: HandlerWrapper | None) -> HandlerWrapper | None:
    """One wrapper applying `wrappers` outermost first (None entries skipped)."""
    present = [wrap for wrap in wrappers if wrap is not None]
    if not present:
        return None

    def wrap(
        service: str, method: str, rpc_type: str, behaviour: Callable[..., Any]
    ) -> Callable[..., Any]:
        for inner in reversed(present):
            behaviour = inner(service, method, rpc_type, behaviour)
        return behaviour

    return wrap
