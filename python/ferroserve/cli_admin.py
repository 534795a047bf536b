"""`ferroserve push|versions|load|unload`: a command-line client of a running server's
`ferroserve.admin.v1.AdminService` (server/admin.py), for people and CI pipelines. `push`
streams the ONNX file (and a drift reference) in 1 MiB chunks with progress on stderr for large
files; every command prints a table, or JSON with `--json`; a server error exits 1 with the
server's message and what to try next, a usage error 2."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf.json_format import MessageToDict

from ferroserve._proto import admin_pb2 as pb

SERVICE = "/ferroserve.admin.v1.AdminService"
DEFAULT_SERVER = "127.0.0.1:8001"
TOKEN_ENV = "FERROSERVE_ADMIN_TOKEN_FILE"
CHUNK_BYTES = 1 << 20
PROGRESS_FROM_BYTES = 16 << 20
"""Files smaller than this upload in well under a second on a LAN: no progress lines."""
_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is `ferroserve serve` running there? Pass --server HOST:PORT",
    grpc.StatusCode.UNAUTHENTICATED: "pass --token-file with the server's --admin-token-file "
    f"(or set {TOKEN_ENV})",
    grpc.StatusCode.PERMISSION_DENIED: "the token differs from the server's --admin-token-file",
    grpc.StatusCode.NOT_FOUND: "`ferroserve versions` lists the models and versions",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "raise the server's --admin-max-push-bytes",
    grpc.StatusCode.FAILED_PRECONDITION: "push without --config to keep the model's config",
    grpc.StatusCode.ABORTED: "another push changed the repository meanwhile; push again",
    grpc.StatusCode.UNIMPLEMENTED: "the server predates the admin service; upgrade it",
}
COMMANDS = ("push", "versions", "load", "unload")


def add_commands(commands: Any) -> None:
    """Adds `push`, `versions`, `load` and `unload` to the `ferroserve` parser's subcommands."""
    push = commands.add_parser(
        "push",
        help="push a new version of a model into a running server",
        description="Uploads the ONNX file as the model's next version (a new model gets "
        "version 1). The server writes it atomically, loads and warms it up, and answers once it "
        "serves; a version that fails to load is removed and the serving ones are untouched.",
    )
    push.add_argument("file", type=Path, help="the ONNX model file")
    push.add_argument("--model", required=True, help="the model's name (its folder)")
    push.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config.pbtxt for a new model (for an existing one it must equal the current one)",
    )
    push.add_argument(
        "--drift-reference",
        type=Path,
        default=None,
        help="the version's drift reference dataset (.parquet, .csv, .npz, .npy; docs/drift.md)",
    )
    push.add_argument("--notes", default="", help="free-form text kept with the version")
    _add_client_flags(push, timeout=600.0)

    versions = commands.add_parser(
        "versions", help="list a running server's models and versions (state, sha256, notes)"
    )
    versions.add_argument("model", nargs="?", default="", help="only this model (default: all)")
    _add_client_flags(versions)

    for verb, text in (
        ("load", "load one version of a model (kept loaded beside the policy's)"),
        ("unload", "unload one version of a model (queued requests finish first)"),
    ):
        command = commands.add_parser(verb, help=text)
        command.add_argument("model", help="the model")
        command.add_argument("--version", type=int, required=True, help="the version number")
        _add_client_flags(command, timeout=300.0 if verb == "load" else 60.0)


def _add_client_flags(parser: argparse.ArgumentParser, timeout: float = 10.0) -> None:
    parser.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"gRPC address (default {DEFAULT_SERVER})"
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"file with the server's admin token (default: ${TOKEN_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help=f"seconds to wait for the answer (default {timeout:g})",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs one admin command, printing to `out` (default stdout); the exit status."""
    out = sys.stdout if out is None else out
    command = args.command
    try:
        metadata = _metadata(args.token_file)
        with grpc.insecure_channel(args.server) as channel:
            if command == "push":
                response: Any = _push(channel, args, metadata)
            elif command == "versions":
                response = _call(channel, "ListVersions", pb.ListVersionsRequest)(
                    pb.ListVersionsRequest(model=args.model),
                    timeout=args.timeout,
                    metadata=metadata,
                )
            else:
                method = "LoadVersion" if command == "load" else "UnloadVersion"
                request_type = (
                    pb.LoadVersionRequest if command == "load" else pb.UnloadVersionRequest
                )
                response = _call(channel, method, request_type)(
                    request_type(model=args.model, version=args.version),
                    timeout=args.timeout,
                    metadata=metadata,
                )
    except UsageError as error:
        print(f"ferroserve {command}: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        code = error.code()  # a failed call is also a grpc.Call
        hint = _HINTS.get(code)
        where = f" at {args.server}" if code is grpc.StatusCode.UNAVAILABLE else ""
        print(
            f"ferroserve {command}: {code.name}{where}: {error.details() or code.name}"
            + (f"\n  {hint}" if hint else ""),
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(_json(response), indent=2), file=out)
    elif command == "push":
        print(push_line(response), file=out)
    elif command == "versions":
        print(versions_table(response), file=out)
    else:
        info = response.version
        print(f"{info.model} version {info.version}: {_state(info)}", file=out)
    return 0


class UsageError(Exception):
    """A problem with the command line or a local file: exit status 2."""


def _metadata(token_file: Path | None) -> list[tuple[str, str]]:
    if token_file is None:
        return []
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise UsageError(f"--token-file: {error}") from error
    if not token:
        raise UsageError(f"--token-file {token_file} is empty")
    return [("authorization", f"Bearer {token}")]


def _call(channel: grpc.Channel, method: str, request_type: Any) -> Any:
    """The unary `method`; its response type is `<method>Response`."""
    response_type = getattr(pb, f"{method}Response")
    return channel.unary_unary(
        f"{SERVICE}/{method}",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )


def _push(
    channel: grpc.Channel, args: argparse.Namespace, metadata: list[tuple[str, str]]
) -> pb.PushVersionResponse:
    model_file: Path = args.file
    reference: Path | None = args.drift_reference
    try:
        config = "" if args.config is None else args.config.read_text(encoding="utf-8")
        model_size = model_file.stat().st_size
        reference_size = 0 if reference is None else reference.stat().st_size
        digest = _sha256(model_file)
    except OSError as error:
        raise UsageError(str(error)) from error
    header = pb.PushHeader(
        model=args.model,
        config_pbtxt=config,
        notes=args.notes,
        model_sha256=digest,
        total_bytes=model_size + reference_size,
        drift_reference_name="" if reference is None else reference.name,
    )
    total = model_size + reference_size
    progress = Progress(total) if total >= PROGRESS_FROM_BYTES else None

    def requests() -> Iterator[pb.PushVersionRequest]:
        yield pb.PushVersionRequest(header=header)
        files = [(model_file, pb.MODEL)]
        if reference is not None:
            files.append((reference, pb.DRIFT_REFERENCE))
        for path, kind in files:
            with path.open("rb") as file:
                while data := file.read(CHUNK_BYTES):
                    yield pb.PushVersionRequest(chunk=pb.FileChunk(file=kind, data=data))
                    if progress is not None:
                        progress.advance(len(data))
        if progress is not None:
            progress.done()

    push = channel.stream_unary(
        f"{SERVICE}/PushVersion",
        request_serializer=pb.PushVersionRequest.SerializeToString,
        response_deserializer=pb.PushVersionResponse.FromString,
    )
    response: pb.PushVersionResponse = push(
        requests(), timeout=args.timeout, metadata=tuple(metadata)
    )
    return response


class Progress:
    """Upload progress on stderr: a line per 10% (one rewritten line on a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.started = time.monotonic()
        self._shown = -1
        self._tty = sys.stderr.isatty()

    def advance(self, count: int) -> None:
        self.sent += count
        tenth = self.sent * 10 // max(self.total, 1)
        if tenth != self._shown:
            self._shown = tenth
            rate = self.sent / max(time.monotonic() - self.started, 1e-6) / 1e6
            line = (
                f"uploaded {_size(self.sent)} of {_size(self.total)} "
                f"({100 * self.sent // max(self.total, 1)}%, {rate:.0f} MB/s)"
            )
            print(
                f"\r{line}" if self._tty else line, end="" if self._tty else "\n", file=sys.stderr
            )

    def done(self) -> None:
        end = "\n" if self._tty else ""
        print(
            f"{end}upload done; the server is loading and warming up the version", file=sys.stderr
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _json(response: Any) -> dict[str, Any]:
    result: dict[str, Any] = MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return result


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _state(info: pb.VersionInfo) -> str:
    text = info.state
    if info.provider:
        text += f" on {info.provider}"
    if info.reason and info.state != "READY":
        text += f" ({info.reason})"
    return text


def push_line(response: pb.PushVersionResponse) -> str:
    """What `ferroserve push` prints."""
    info = response.version
    return (
        f"pushed {info.model} version {info.version}: {_state(info)}, sha256 "
        f"{info.sha256[:12]}, {_size(info.size_bytes)}, ready {response.load_seconds:.2f} s "
        "after the upload"
    )


def versions_table(response: pb.ListVersionsResponse) -> str:
    """A readable listing: one row per version, models in order."""
    if not response.models:
        return "no models (push one with `ferroserve push FILE --model NAME`)"
    header = ("MODEL", "VERSION", "STATE", "PROVIDER", "SIZE", "CREATED", "SHA256", "NOTES")
    rows: list[tuple[str, ...]] = []
    reasons: list[str] = []
    for model in response.models:
        if model.reason:
            reasons.append(f"{model.model}: {model.reason}")
        for info in model.versions:
            rows.append(
                (
                    info.model,
                    str(info.version),
                    info.state,
                    info.provider.removesuffix("ExecutionProvider") or "-",
                    _size(info.size_bytes) if info.size_bytes else "-",
                    info.created or "-",
                    info.sha256[:12] if info.sha256 else "(not pushed)",
                    info.notes or "-",
                )
            )
            if info.reason and info.state != "READY":
                reasons.append(f"{info.model} {info.version}: {info.reason}")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    lines = [line.rstrip() for line in lines]
    if reasons:
        lines.append("")
        lines.extend(reasons)
    return "\n".join(lines)
