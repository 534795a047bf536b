"""`ferroserve features status` and `ferroserve features load`: a command-line client of a
running server's `ferroserve.features.v1.FeatureService` (server/features.py). Prints a table
for people or JSON for scripts; a server error exits 1 with the server's message and what to
try next. `features load --file` instead writes a file's rows into a Redis view in Feast's
layout (features/redis_writer.py), without a server."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import grpc
from google.protobuf.message import Message

from ferroserve._proto import feature_service_pb2 as pb
from ferroserve.cli_channel import ChannelError, add_channel_flags, open_channel
from ferroserve.errors import (
    DeadlineExceededError,
    FerroserveError,
    UnavailableError,
)
from ferroserve.features.status_report import status_json, status_table

if TYPE_CHECKING:
    from ferroserve.features.redis_writer import RedisWrite

SERVICE = "/ferroserve.features.v1.FeatureService"
DEFAULT_SERVER = "127.0.0.1:8001"
# What to try next, by the status the server answered.
_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is `ferroserve serve` running there? Pass --server HOST:PORT",
    grpc.StatusCode.NOT_FOUND: "`ferroserve features status` lists the models with features",
    grpc.StatusCode.UNIMPLEMENTED: "the server predates `ferroserve features`; upgrade it",
    grpc.StatusCode.DEADLINE_EXCEEDED: "raise --timeout for large snapshots",
}


def add_commands(commands: Any) -> None:
    """Adds `features status|load` to the `ferroserve` parser's subcommands."""
    features = commands.add_parser(
        "features", help="show or reload a running server's feature snapshots"
    )
    actions = features.add_subparsers(dest="features_command", required=True)
    status = actions.add_parser(
        "status", help="what each model version with features has loaded, and its lookups"
    )
    status.add_argument("--model", default="", help="only this model (default: every one)")
    status.add_argument("--version", default="", help="only this version (default: ready ones)")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    load = actions.add_parser(
        "load",
        help="read a model's snapshot files again now and install them atomically; with "
        "--file, write a file's rows into a Redis view in Feast's layout",
        description="Without --file: asks the server at --server to read the model's snapshot "
        "files again and install them atomically. With --file: writes the file's rows into the "
        "Redis store of a view with store: REDIS, in Feast's online-store layout (as `feast "
        "materialize` would), reading the view, its store and Feast's names from "
        "MODEL_REPOSITORY/MODEL/features.pbtxt; no server is needed, and servers read the "
        "rows from Redis at once.",
    )
    load.add_argument("--model", required=True, help="the model whose snapshots to load")
    load.add_argument("--version", default="", help="only this version (default: ready ones)")
    load.add_argument(
        "--view",
        action="append",
        default=[],
        metavar="VIEW",
        help="only this view (repeatable; default: every view)",
    )
    load.add_argument("--json", action="store_true", help="print JSON for scripts")
    load.add_argument(
        "--file",
        type=Path,
        help="write this file's rows (.parquet, .csv or .npz: the view's key and feature "
        "columns, named as in features.pbtxt, and an event-time column) into the Redis view "
        "named by --view",
    )
    load.add_argument(
        "--model-repository",
        type=Path,
        help="with --file: the repository whose MODEL/features.pbtxt declares the view",
    )
    load.add_argument(
        "--event-time-column",
        help="with --file: the rows' event times, timestamps or numbers with "
        "--event-time-unit (default event_timestamp, as in Feast's examples)",
    )
    load.add_argument(
        "--event-time-unit",
        choices=("s", "ms", "us"),
        help="with --file: the unit of numeric event times since the Unix epoch",
    )
    for parser, timeout_s in ((status, 10.0), (load, 600.0)):
        parser.add_argument(
            "--server",
            default=DEFAULT_SERVER,
            help=f"the server's gRPC address (default {DEFAULT_SERVER})",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=timeout_s,
            help=f"seconds to wait for the answer (default {timeout_s:g})",
        )
        add_channel_flags(parser)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs `ferroserve features <command>`, printing to `out` (default stdout); the exit
    status."""
    out = sys.stdout if out is None else out
    try:
        if args.features_command == "status":
            request = pb.FeatureStatusRequest(model=args.model, version=args.version)
            status = _call(args, "Status", request, pb.FeatureStatusResponse)
            assert isinstance(status, pb.FeatureStatusResponse)
            if args.json:
                print(json.dumps(status_json(status), indent=2), file=out)
            else:
                print(status_table(status, time.time()), file=out)
            return 0
        if args.file is not None:
            return _write_redis(args, out)
        stray = [
            flag
            for flag, value in (
                ("--model-repository", args.model_repository),
                ("--event-time-column", args.event_time_column),
                ("--event-time-unit", args.event_time_unit),
            )
            if value is not None
        ]
        if stray:
            print(
                f"ferroserve features load: {', '.join(stray)} go with --file (the rows to write "
                "into a Redis view); without it the server reloads the snapshot files",
                file=sys.stderr,
            )
            return 1
        request_load = pb.FeatureReloadRequest(
            model=args.model, version=args.version, views=args.view
        )
        reloaded = _call(args, "Reload", request_load, pb.FeatureReloadResponse)
        assert isinstance(reloaded, pb.FeatureReloadResponse)
        if args.json:
            print(json.dumps(reload_json(reloaded), indent=2), file=out)
        else:
            print(reload_lines(reloaded), file=out)
        return 0
    except ChannelError as error:
        print(f"ferroserve features {args.features_command}: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        code = error.code()  # a failed call is also a grpc.Call
        detail = error.details() or code.name
        hint = _HINTS.get(code)
        where = f" at {args.server}" if code is grpc.StatusCode.UNAVAILABLE else ""
        print(
            f"ferroserve features {args.features_command}: {code.name}{where}: {detail}"
            + (f"\n  {hint}" if hint else ""),
            file=sys.stderr,
        )
        return 1


# What to try next when writing into Redis failed, by the error.
_WRITE_HINTS: tuple[tuple[type[FerroserveError], str], ...] = (
    (UnavailableError, "is redis-server running at the redis.url of features.pbtxt?"),
    (DeadlineExceededError, "raise --timeout for large files"),
)


def _write_redis(args: argparse.Namespace, out: TextIO) -> int:
    """`features load --file`: the file's rows into a Redis view; exit status 1 with the
    reason on stderr when the arguments, the model, the file or Redis do not allow it."""
    # Imported here: it needs numpy and pyarrow, which the server's clients do not.
    from ferroserve.features.redis_writer import DEFAULT_EVENT_TIME_COLUMN, write_file

    try:
        if args.model_repository is None:
            raise _UsageError("--file needs --model-repository (the folder of MODEL)")
        if len(args.view) != 1:
            raise _UsageError("--file needs exactly one --view: the Redis view to write")
        if args.version:
            raise _UsageError(
                "--version does not apply to --file: features.pbtxt belongs to the model folder"
            )
        written = write_file(
            args.model_repository,
            args.model,
            args.view[0],
            args.file,
            event_time_column=args.event_time_column or DEFAULT_EVENT_TIME_COLUMN,
            event_time_unit=args.event_time_unit,
            timeout_s=args.timeout,
        )
    except (FerroserveError, _UsageError) as error:
        hint = next((h for kind, h in _WRITE_HINTS if isinstance(error, kind)), None)
        print(
            f"ferroserve features load: {error}" + (f"\n  {hint}" if hint else ""),
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(write_json(written), indent=2), file=out)
    else:
        print(write_line(written), file=out)
    return 0


class _UsageError(Exception):
    """Flags that do not go together."""


def write_json(written: RedisWrite) -> dict[str, Any]:
    return {
        "model": written.model,
        "view": written.view,
        "project": written.project,
        "rows": written.rows,
        "duplicate_keys": written.duplicate_keys,
        "seconds": written.seconds,
    }


def write_line(written: RedisWrite) -> str:
    dropped = (
        f"; {written.duplicate_keys:,} older row(s) of a key written twice dropped"
        if written.duplicate_keys
        else ""
    )
    return (
        f"{written.model}: wrote {written.rows:,} rows of view {written.view} into Redis "
        f"(Feast project {written.project}) in {written.seconds:.3f} s{dropped}"
    )


def _call(
    args: argparse.Namespace, method: str, request: Message, response: type[Message]
) -> Message:
    with open_channel(args) as channel:
        call = channel.unary_unary(
            f"{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=args.timeout)  # type: ignore[no-any-return]


def reload_json(reloaded: pb.FeatureReloadResponse) -> dict[str, Any]:
    return {
        "reloads": [
            {
                "model": entry.model,
                "version": entry.version,
                "views": list(entry.views),
                "generation": entry.generation,
                "rows": entry.rows,
                "seconds": entry.seconds,
            }
            for entry in reloaded.reloads
        ]
    }


def reload_lines(reloaded: pb.FeatureReloadResponse) -> str:
    return "\n".join(
        f"{entry.model} version {entry.version}: loaded {', '.join(entry.views)} "
        f"({entry.rows:,} rows, generation {entry.generation}) in {entry.seconds:.3f} s"
        for entry in reloaded.reloads
    )
