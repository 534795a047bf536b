"""What every admin command of the CLI shares (cli_admin.py: push, versions, load, unload;
cli_routing.py: alias, rollback, traffic): the `--server`, `--token-file`, `--json` and
`--timeout` flags (and TLS's, cli_channel.py), the bearer token, one call to
`ferroserve.admin.v1.AdminService`, and how its outcome is printed: a line or table, JSON with
`--json`, and on failure the server's status and message with what to try next (exit 1), or the
usage problem (exit 2)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from ferroserve.cli_channel import ChannelError, add_channel_flags, open_channel

SERVICE = "/ferroserve.admin.v1.AdminService"
DEFAULT_SERVER = "127.0.0.1:8001"
TOKEN_ENV = "FERROSERVE_ADMIN_TOKEN_FILE"
Metadata = tuple[tuple[str, str], ...]
# One command's work: (channel, parsed arguments, token metadata) -> (answer, text to print).
Action = Callable[[grpc.Channel, argparse.Namespace, Metadata], tuple[Message, str]]
HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is `ferroserve serve` running there? Pass --server HOST:PORT",
    grpc.StatusCode.UNAUTHENTICATED: "pass --token-file with the server's --admin-token-file "
    f"(or set {TOKEN_ENV})",
    grpc.StatusCode.PERMISSION_DENIED: "the token differs from the server's --admin-token-file",
    grpc.StatusCode.NOT_FOUND: "`ferroserve versions` lists the models, versions and aliases",
    grpc.StatusCode.UNIMPLEMENTED: "if the server runs with --admin-port, pass --server "
    "HOST:ADMIN_PORT; otherwise it predates this command: upgrade it",
}


class UsageError(Exception):
    """A problem with the command line or a local file: exit status 2."""


def add_client_flags(parser: argparse.ArgumentParser, timeout: float = 10.0) -> None:
    parser.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"gRPC address (default {DEFAULT_SERVER})"
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"file with the server's admin token (default: ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="gRPC metadata sent with the call (repeatable), e.g. "
        "triton-grpc-protocol-<key>=<value> for a server run with --grpc-restricted-protocol",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help=f"seconds to wait for the answer (default {timeout:g})",
    )
    add_channel_flags(parser)


def run_action(
    args: argparse.Namespace,
    action: Action,
    out: TextIO | None = None,
    hints: Mapping[grpc.StatusCode, str] | None = None,
) -> int:
    """Runs one command's call against `args.server` and prints its outcome (to `out`,
    default stdout); the exit status. `hints` override the general ones by status."""
    out = sys.stdout if out is None else out
    command = args.command
    try:
        metadata = token_metadata(args.token_file) + header_metadata(args.header)
        with open_channel(args) as channel:
            response, text = action(channel, args, metadata)
    except (UsageError, ChannelError) as error:
        print(f"ferroserve {command}: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        code = error.code()  # a failed call is also a grpc.Call
        hint = {**HINTS, **(hints or {})}.get(code)
        where = f" at {args.server}" if code is grpc.StatusCode.UNAVAILABLE else ""
        print(
            f"ferroserve {command}: {code.name}{where}: {error.details() or code.name}"
            + (f"\n  {hint}" if hint else ""),
            file=sys.stderr,
        )
        return 1
    print(json.dumps(to_json(response), indent=2) if args.json else text, file=out)
    return 0


def token_metadata(token_file: Path | None) -> Metadata:
    if token_file is None:
        return ()
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise UsageError(f"--token-file: {error}") from error
    if not token:
        raise UsageError(f"--token-file {token_file} is empty")
    return (("authorization", f"Bearer {token}"),)


def header_metadata(headers: Sequence[str]) -> Metadata:
    """`--header NAME=VALUE` values as gRPC metadata (names lowercased, as gRPC sends them)."""
    pairs = []
    for header in headers:
        name, sep, value = header.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--header {header!r}: expected NAME=VALUE")
        pairs.append((name.strip().lower(), value))
    return tuple(pairs)


def call(
    channel: grpc.Channel,
    method: str,
    request: Message,
    args: argparse.Namespace,
    metadata: Metadata,
) -> Any:
    """The unary `method` with `request`; its response type is `<method>Response` of the admin
    messages."""
    from ferroserve._proto import admin_pb2 as pb

    response_type = getattr(pb, f"{method}Response")
    stub = channel.unary_unary(
        f"{SERVICE}/{method}",
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_type.FromString,
    )
    return stub(request, timeout=args.timeout, metadata=metadata)


def to_json(response: Message) -> dict[str, Any]:
    result: dict[str, Any] = MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return result


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns, two spaces apart, trailing spaces trimmed."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
