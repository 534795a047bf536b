"""`ferroserve push|versions|load|unload`: a command-line client of a running server's
`ferroserve.admin.v1.AdminService` (server/admin.py), for people and CI pipelines. `push`
streams the ONNX file (and a drift reference) in 1 MiB chunks with progress on stderr for large
files; every command prints a table, or JSON with `--json`; a server error exits 1 with the
server's message and what to try next, a usage error 2."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import grpc

from ferroserve._proto import admin_pb2 as pb
from ferroserve.cli_client import (
    SERVICE,
    Metadata,
    UsageError,
    add_client_flags,
    call,
    run_action,
    table,
)

CHUNK_BYTES = 1 << 20
PROGRESS_FROM_BYTES = 16 << 20
"""Files smaller than this upload in well under a second on a LAN: no progress lines."""
_HINTS = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: "raise the server's --admin-max-push-bytes",
    grpc.StatusCode.FAILED_PRECONDITION: "push without --config to keep the model's config",
    grpc.StatusCode.ABORTED: "another push changed the repository meanwhile; push again",
}
_UNLOAD_HINTS = {
    grpc.StatusCode.FAILED_PRECONDITION: "point its aliases elsewhere (`ferroserve alias`) "
    "and take it out of the traffic policy (`ferroserve traffic`) first",
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
    push.add_argument(
        "--alias",
        default="",
        help="point this alias (e.g. canary) at the new version once it serves",
    )
    add_client_flags(push, timeout=600.0)

    versions = commands.add_parser(
        "versions", help="list a running server's models and versions (state, sha256, notes)"
    )
    versions.add_argument("model", nargs="?", default="", help="only this model (default: all)")
    add_client_flags(versions)

    for verb, text in (
        ("load", "load one version of a model (kept loaded beside the policy's)"),
        ("unload", "unload one version of a model (queued requests finish first)"),
    ):
        command = commands.add_parser(verb, help=text)
        command.add_argument("model", help="the model")
        command.add_argument("--version", type=int, required=True, help="the version number")
        add_client_flags(command, timeout=300.0 if verb == "load" else 60.0)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs one of COMMANDS, printing to `out` (default stdout); the exit status."""
    if args.command == "push":
        return run_action(args, _push, out, _HINTS)
    if args.command == "versions":
        return run_action(args, _versions, out)
    return run_action(args, _load_or_unload, out, _UNLOAD_HINTS)


def _versions(
    channel: grpc.Channel, args: argparse.Namespace, metadata: Metadata
) -> tuple[pb.ListVersionsResponse, str]:
    request = pb.ListVersionsRequest(model=args.model)
    response: pb.ListVersionsResponse = call(channel, "ListVersions", request, args, metadata)
    return response, versions_table(response)


def _load_or_unload(
    channel: grpc.Channel, args: argparse.Namespace, metadata: Metadata
) -> tuple[Any, str]:
    if args.command == "load":
        request: Any = pb.LoadVersionRequest(model=args.model, version=args.version)
        response = call(channel, "LoadVersion", request, args, metadata)
    else:
        request = pb.UnloadVersionRequest(model=args.model, version=args.version)
        response = call(channel, "UnloadVersion", request, args, metadata)
    info = response.version
    return response, f"{info.model} version {info.version}: {_state(info)}"


def _push(
    channel: grpc.Channel, args: argparse.Namespace, metadata: Metadata
) -> tuple[pb.PushVersionResponse, str]:
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
        alias=args.alias,
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
    response: pb.PushVersionResponse = push(requests(), timeout=args.timeout, metadata=metadata)
    return response, push_line(response)


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


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _state(info: pb.VersionInfo) -> str:
    text = info.state
    if info.provider:
        text += f" on {info.provider}"
    if info.reason:  # a READY version's is its warm-up, when that is news
        text += f" ({info.reason})"
    return text


def push_line(response: pb.PushVersionResponse) -> str:
    """What `ferroserve push` prints."""
    info = response.version
    aliases = f" as {', '.join(info.aliases)}" if info.aliases else ""
    return (
        f"pushed {info.model} version {info.version}{aliases}: {_state(info)}, sha256 "
        f"{info.sha256[:12]}, {_size(info.size_bytes)}, ready {response.load_seconds:.2f} s "
        "after the upload"
    )


def versions_table(response: pb.ListVersionsResponse) -> str:
    """A readable listing: one row per version, models in order."""
    if not response.models:
        return "no models (push one with `ferroserve push FILE --model NAME`)"
    header = (
        "MODEL",
        "VERSION",
        "STATE",
        "ALIASES",
        "PROVIDER",
        "SIZE",
        "CREATED",
        "SHA256",
        "NOTES",
    )
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
                    ",".join(info.aliases) or "-",
                    info.provider.removesuffix("ExecutionProvider") or "-",
                    _size(info.size_bytes) if info.size_bytes else "-",
                    info.created or "-",
                    info.sha256[:12] if info.sha256 else "(not pushed)",
                    info.notes or "-",
                )
            )
            if info.reason:
                reasons.append(f"{info.model} {info.version}: {info.reason}")
    lines = table(header, rows)
    policies = [
        f"{model.model}: requests without a version go to {traffic_text(model.routing)}"
        for model in response.models
        if model.routing.split or model.routing.shadow
    ]
    if policies:
        lines.append("")
        lines.extend(policies)
    if reasons:
        lines.append("")
        lines.extend(reasons)
    return "\n".join(lines)


def traffic_text(routing: pb.ModelRouting) -> str:
    """`production (version 3) 90%, canary (version 4) 10%; shadow canary (version 4) 5%`, or
    the default's words."""

    def shares(items: Any) -> str:
        return ", ".join(
            f"{share.target}{'' if share.target.isdigit() else f' (version {share.version})'} "
            f"{share.percent}%"
            for share in items
        )

    production = [a.version for a in routing.aliases if a.name == "production"]
    text = shares(routing.split) or (
        f"production (version {production[0]})" if production else "the newest ready version"
    )
    if routing.shadow:
        text += f"; shadow copies to {shares(routing.shadow)}"
    return text
