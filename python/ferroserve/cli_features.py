"""`ferroserve features status` and `ferroserve features load`: a command-line client of a
running server's `ferroserve.features.v1.FeatureService` (server/features.py). Prints a table
for people or JSON for scripts; a server error exits 1 with the server's message and what to
try next."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

import grpc
from google.protobuf.message import Message

from ferroserve._proto import feature_service_pb2 as pb

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
        help="read a model's snapshot files again now and install them atomically",
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


def _call(
    args: argparse.Namespace, method: str, request: Message, response: type[Message]
) -> Message:
    with grpc.insecure_channel(args.server) as channel:
        call = channel.unary_unary(
            f"{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=args.timeout)  # type: ignore[no-any-return]


def _view_json(view: pb.ViewStatus) -> dict[str, Any]:
    return {
        "view": view.view,
        "source": view.source,
        "loaded": view.loaded,
        "generation": view.generation,
        "rows": view.rows,
        "memory_bytes": view.memory_bytes,
        "values_bytes": view.values_bytes,
        "duplicate_keys": view.duplicate_keys,
        "oldest_event_us": view.oldest_event_us if view.HasField("oldest_event_us") else None,
        "newest_event_us": view.newest_event_us if view.HasField("newest_event_us") else None,
        "lookups": view.lookups,
        "hits": view.hits,
        "misses": view.misses,
        "stale": view.stale,
        "unavailable": view.unavailable,
        "rejected": view.rejected,
    }


def status_json(status: pb.FeatureStatusResponse) -> dict[str, Any]:
    """The answer as plain JSON: integers stay numbers (protobuf's JSON mapping would quote
    every 64-bit one)."""
    return {
        "models": [
            {
                "model": entry.model,
                "version": entry.version,
                "reloads": entry.reloads,
                "reload_failures": entry.reload_failures,
                "last_error": entry.last_error or None,
                "views": [_view_json(view) for view in entry.views],
            }
            for entry in status.models
        ]
    }


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


def size(count: float) -> str:
    """Bytes as people read them: 512 B, 6.2 KiB, 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable: the loop returns at GiB")


def age(seconds: float) -> str:
    """A duration as people read it: 42s, 3m 5s, 2h 7m, 4d 1h."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


COLUMNS = (
    "MODEL",
    "VERSION",
    "VIEW",
    "ROWS",
    "MEMORY",
    "NEWEST EVENT AGE",
    "GENERATION",
    "LOOKUPS",
    "HIT %",
    "MISSES",
    "STALE",
    "REJECTED",
)


def status_table(status: pb.FeatureStatusResponse, now_unix: float) -> str:
    """One line per view, then a line per version whose reloads failed."""
    if not status.models:
        return "no model version with features is loaded"
    rows = []
    notes = []
    for entry in status.models:
        for view in entry.views:
            newest = (
                age(now_unix - view.newest_event_us / 1e6)
                if view.HasField("newest_event_us")
                else "-"
            )
            hit = f"{100 * view.hits / view.lookups:.1f}" if view.lookups else "-"
            rows.append(
                (
                    entry.model,
                    entry.version,
                    view.view,
                    f"{view.rows:,}" if view.loaded else "not loaded",
                    size(view.memory_bytes),
                    newest,
                    str(view.generation),
                    f"{view.lookups:,}",
                    hit,
                    f"{view.misses:,}",
                    f"{view.stale:,}",
                    f"{view.rejected:,}",
                )
            )
        if entry.reload_failures:
            note = f"{entry.model} version {entry.version}: {entry.reload_failures} failed load(s)"
            if entry.last_error:
                note += f"; the last load failed, previous snapshot serving: {entry.last_error}"
            notes.append(note)
    widths = [max(len(line[i]) for line in (COLUMNS, *rows)) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in (COLUMNS, *rows)
    ]
    return "\n".join([line.rstrip() for line in lines] + notes)


def reload_lines(reloaded: pb.FeatureReloadResponse) -> str:
    return "\n".join(
        f"{entry.model} version {entry.version}: loaded {', '.join(entry.views)} "
        f"({entry.rows:,} rows, generation {entry.generation}) in {entry.seconds:.3f} s"
        for entry in reloaded.reloads
    )
