"""`ferroserve alias|rollback|traffic`: a running server's aliases and traffic policy from the
command line (the routing RPCs of `ferroserve.admin.v1.AdminService`, server/admin_routing.py).
Without a change to make, `alias MODEL` and `traffic MODEL` show the model's aliases (with their
history) and its policy. Output, JSON and exit statuses as for the other admin commands
(cli_client.py)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import grpc

from ferroserve._proto import admin_pb2 as pb
from ferroserve.cli_admin import traffic_text
from ferroserve.cli_client import Metadata, UsageError, add_client_flags, call, run_action, table

COMMANDS = ("alias", "rollback", "traffic")
_SHOW = "`ferroserve versions MODEL` lists its versions, aliases and traffic policy"
_HINTS = {
    grpc.StatusCode.NOT_FOUND: _SHOW,
    grpc.StatusCode.FAILED_PRECONDITION: _SHOW,
    grpc.StatusCode.INVALID_ARGUMENT: "`ferroserve alias --help` and `ferroserve traffic --help` "
    "show the forms they take",
}


def add_commands(commands: Any) -> None:
    """Adds `alias`, `rollback` and `traffic` to the `ferroserve` parser's subcommands."""
    alias = commands.add_parser(
        "alias",
        help="point an alias (production, canary, ...) at a version, delete one, or list them",
        description="`alias MODEL NAME VERSION` points the alias at the version (loading and "
        "warming it up first when it is not loaded); its previous target joins its history, "
        "which `ferroserve rollback` returns to. `alias MODEL NAME --delete` removes it; "
        "`alias MODEL` lists the aliases. Requests name an alias in model_version; requests "
        "without one follow the traffic policy, by default the `production` alias when set.",
    )
    alias.add_argument("model", help="the model")
    alias.add_argument("name", nargs="?", default="", help="the alias")
    alias.add_argument("version", nargs="?", type=int, default=None, help="the version number")
    alias.add_argument("--delete", action="store_true", help="remove the alias and its history")
    add_client_flags(alias, timeout=300.0)

    rollback = commands.add_parser(
        "rollback",
        help="return an alias (default production) to its previous target",
        description="The alias's previous target is loaded and warmed up when it is not "
        "loaded, then the alias moves back to it; the version it leaves is unloaded once no "
        "alias or policy routes to it and the version policy does not keep it.",
    )
    rollback.add_argument("model", help="the model")
    rollback.add_argument("--alias", default="production", help="the alias (default production)")
    add_client_flags(rollback, timeout=300.0)

    traffic = commands.add_parser(
        "traffic",
        help="split requests without a version between aliases and versions, and shadow them",
        description="`traffic MODEL production=90 canary=10 [--shadow canary=5]` sends each "
        "request that names no version to a target drawn by weight (whole percentages summing "
        "to 100; targets are aliases or version numbers), and a copy of the given percentage "
        "of them to each shadow target, whose answers are discarded and compared with the "
        "served ones (metrics). `--clear` restores the default (the production alias when "
        "set, else the newest version); `traffic MODEL` alone shows the policy.",
    )
    traffic.add_argument("model", help="the model")
    traffic.add_argument("shares", nargs="*", metavar="TARGET=PERCENT", help="the split")
    traffic.add_argument(
        "--shadow",
        action="append",
        default=[],
        metavar="TARGET=PERCENT",
        help="mirror this percentage of the requests to TARGET (repeatable)",
    )
    traffic.add_argument("--clear", action="store_true", help="remove the split and shadows")
    add_client_flags(traffic, timeout=300.0)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs one of COMMANDS, printing to `out` (default stdout); the exit status."""
    action = {"alias": _alias, "rollback": _rollback, "traffic": _traffic}[args.command]
    return run_action(args, action, out, _HINTS)


def _alias(channel: grpc.Channel, args: argparse.Namespace, metadata: Metadata) -> tuple[Any, str]:
    if not args.name:
        if args.delete or args.version is not None:
            raise UsageError("name the alias: ferroserve alias MODEL NAME [VERSION | --delete]")
        routing = _routing(channel, args, metadata)
        return routing, aliases_table(routing)
    if args.delete:
        if args.version is not None:
            raise UsageError("give either a VERSION to point the alias at or --delete, not both")
        request: Any = pb.DeleteAliasRequest(model=args.model, alias=args.name)
        response = call(channel, "DeleteAlias", request, args, metadata)
        return response, f"{args.model}: alias {args.name} deleted"
    if args.version is None:
        raise UsageError(
            f"give the VERSION to point {args.name} at (`ferroserve alias {args.model} "
            f"{args.name} 3`), or --delete"
        )
    request = pb.SetAliasRequest(model=args.model, alias=args.name, version=args.version)
    response = call(channel, "SetAlias", request, args, metadata)
    was = response.previous_version
    change = f" (was version {was})" if was else " (new alias)"
    if was == args.version:
        change = " (unchanged)"
    return response, f"{args.model}: {args.name} -> version {args.version}{change}"


def _rollback(
    channel: grpc.Channel, args: argparse.Namespace, metadata: Metadata
) -> tuple[Any, str]:
    request = pb.RollbackRequest(model=args.model, alias=args.alias)
    response = call(channel, "Rollback", request, args, metadata)
    return response, (
        f"{args.model}: {args.alias} rolled back from version {response.from_version} to "
        f"version {response.to_version}"
    )


def _traffic(
    channel: grpc.Channel, args: argparse.Namespace, metadata: Metadata
) -> tuple[Any, str]:
    if not (args.shares or args.shadow or args.clear):
        routing = _routing(channel, args, metadata)
        return routing, f"{args.model}: requests without a version go to {traffic_text(routing)}"
    if args.clear and (args.shares or args.shadow):
        raise UsageError("--clear takes no TARGET=PERCENT and no --shadow")
    request = pb.SetTrafficRequest(
        model=args.model,
        split=[parse_share(text) for text in args.shares],
        shadow=[parse_share(text) for text in args.shadow],
    )
    response = call(channel, "SetTraffic", request, args, metadata)
    return response, (
        f"{args.model}: requests without a version go to {traffic_text(response.routing)}"
    )


def parse_share(text: str) -> pb.TrafficShare:
    """`canary=10` -> a share (the server checks the values; the CLI only the form)."""
    target, sign, percent = text.rpartition("=")
    try:
        value = int(percent)
    except ValueError:
        value = None
    if not sign or not target or value is None:
        raise UsageError(
            f"{text!r} is not TARGET=PERCENT: name an alias or version and a whole percentage, "
            "e.g. production=90 canary=10"
        )
    return pb.TrafficShare(target=target, percent=value)


def _routing(channel: grpc.Channel, args: argparse.Namespace, metadata: Metadata) -> Any:
    request = pb.ListVersionsRequest(model=args.model)
    return call(channel, "ListVersions", request, args, metadata).models[0].routing


def aliases_table(routing: pb.ModelRouting) -> str:
    """One row per alias: where it points, its earlier targets (latest last), when it moved."""
    if not routing.aliases:
        return f"{routing.model} has no aliases (set one: `ferroserve alias MODEL NAME VERSION`)"
    rows = [
        (
            alias.name,
            str(alias.version),
            ",".join(str(v) for v in alias.history) or "-",
            alias.updated or "-",
        )
        for alias in routing.aliases
    ]
    return "\n".join(table(("ALIAS", "VERSION", "HISTORY", "UPDATED"), rows))
