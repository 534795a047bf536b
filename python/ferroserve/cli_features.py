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
from ferroserve.features.status_report import status_json, status_table

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
