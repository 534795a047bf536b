"""`ferroserve drift [MODEL]`: a command-line client of a running server's
`ferroserve.drift.v1.DriftService` (server/drift.py). Prints each monitored version's status
per window and its columns, most drifted first, as a table for people or JSON for scripts;
`--reset` restarts the version's windows. A server error exits 1 with the server's message and
what to try next."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, TextIO

import grpc
from google.protobuf.json_format import MessageToDict

from ferroserve._proto import drift_service_pb2 as pb
from ferroserve.cli_channel import ChannelError, add_channel_flags, open_channel

SERVICE = "/ferroserve.drift.v1.DriftService"
DEFAULT_SERVER = "127.0.0.1:8001"
DEFAULT_ROWS = 20
_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is `ferroserve serve` running there? Pass --server HOST:PORT",
    grpc.StatusCode.NOT_FOUND: "`ferroserve drift` lists the models that monitor drift",
    grpc.StatusCode.FAILED_PRECONDITION: "add a drift.pbtxt beside the model's config.pbtxt "
    "(docs/drift.md)",
    grpc.StatusCode.UNIMPLEMENTED: "the server predates `ferroserve drift`; upgrade it",
}
_STATISTICS = (
    ("psi", "PSI"),
    ("jensen_shannon", "JS"),
    ("kolmogorov_smirnov", "KS"),
    ("wasserstein", "W1/std"),
    ("chi_squared_p_value", "chi2 p"),
)


def add_commands(commands: Any) -> None:
    """Adds `drift` to the `ferroserve` parser's subcommands."""
    drift = commands.add_parser(
        "drift",
        help="show (or reset) the drift of a running server's models against their reference",
        description="Prints, for each model version that monitors drift (a drift.pbtxt beside "
        "its config.pbtxt), the status of its cumulative window (since load or reset), of the "
        "open tumbling window and of the last closed one, then its columns, most drifted first.",
    )
    drift.add_argument("model", nargs="?", default="", help="only this model (default: all)")
    drift.add_argument("--version", default="", help="only this version (default: ready ones)")
    drift.add_argument(
        "--window",
        choices=("cumulative", "current", "last_closed"),
        default="cumulative",
        help="whose columns the table lists (default cumulative)",
    )
    drift.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help=f"columns listed per version, most drifted first (default {DEFAULT_ROWS}; 0: all)",
    )
    drift.add_argument("--json", action="store_true", help="print JSON for scripts (all columns)")
    drift.add_argument(
        "--reset", action="store_true", help="restart the model's windows (needs MODEL)"
    )
    drift.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"gRPC address (default {DEFAULT_SERVER})"
    )
    drift.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)"
    )
    add_channel_flags(drift)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs `ferroserve drift`, printing to `out` (default stdout); the exit status."""
    out = sys.stdout if out is None else out
    try:
        with open_channel(args) as channel:
            if args.reset:
                if not args.model:
                    print("ferroserve drift --reset: name the MODEL to reset", file=sys.stderr)
                    return 2
                reset = channel.unary_unary(
                    f"{SERVICE}/Reset",
                    request_serializer=pb.DriftResetRequest.SerializeToString,
                    response_deserializer=pb.DriftResetResponse.FromString,
                )(
                    pb.DriftResetRequest(model=args.model, version=args.version),
                    timeout=args.timeout,
                )
                if args.json:
                    print(json.dumps(MessageToDict(reset), indent=2), file=out)
                else:
                    for version in reset.reset:
                        print(f"{version.model} {version.version}: windows reset", file=out)
                return 0
            report = channel.unary_unary(
                f"{SERVICE}/Report",
                request_serializer=pb.DriftReportRequest.SerializeToString,
                response_deserializer=pb.DriftReportResponse.FromString,
            )(pb.DriftReportRequest(model=args.model, version=args.version), timeout=args.timeout)
    except ChannelError as error:
        print(f"ferroserve drift: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        code = error.code()  # a failed call is also a grpc.Call
        hint = _HINTS.get(code)
        where = f" at {args.server}" if code is grpc.StatusCode.UNAVAILABLE else ""
        print(
            f"ferroserve drift: {code.name}{where}: {error.details() or code.name}"
            + (f"\n  {hint}" if hint else ""),
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(report_json(report), indent=2), file=out)
    else:
        print(report_table(report, args.window, args.rows), file=out)
    return 0


def report_json(report: pb.DriftReportResponse) -> dict[str, Any]:
    """The response as plain JSON (every field, statistics absent where undefined)."""
    return MessageToDict(
        report, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.3f}"


def _window_line(window: pb.WindowDrift) -> str:
    span = ""
    if window.window == "last_closed":
        span = f" (#{window.index}, {window.opened_s:.1f}-{window.closed_s:.1f} s)"
    return (
        f"  {window.window + span:<28} {window.status.upper():<8} {window.rows:>10,} rows  "
        f"judged {window.judged}, warning {window.warning}, drift {window.drift}"
    )


def report_table(report: pb.DriftReportResponse, window_name: str, rows: int) -> str:
    """A readable report: per version its windows, then the chosen window's columns."""
    if not report.models:
        return "no model monitors drift (add a drift.pbtxt beside a model's config.pbtxt)"
    lines: list[str] = []
    for version in report.models:
        lines.append(
            f"{version.model} {version.version}  window {version.window_policy}, profile "
            f"{version.profile_id}"
            + (f", {version.errors} uncounted batches" if version.errors else "")
        )
        lines.extend(_window_line(window) for window in version.windows)
        chosen = next((w for w in version.windows if w.window == window_name), None)
        if chosen is None:
            lines.append(f"  (no {window_name} window yet)")
            lines.append("")
            continue
        columns = sorted(
            chosen.columns,
            key=lambda c: (-_rank(c.verdict), -(c.psi if c.HasField("psi") else -1.0)),
        )
        shown = columns if rows <= 0 else columns[:rows]
        header = f"  {'column':<24} {'verdict':<13} {'values':>10}"
        header += "".join(f" {label:>8}" for _, label in _STATISTICS) + "  flagged by"
        lines.append("")
        lines.append(f"  columns, {window_name} window:")
        lines.append(header)
        for column in shown:
            cells = "".join(
                f" {_number(getattr(column, key) if column.HasField(key) else None):>8}"
                for key, _ in _STATISTICS
            )
            lines.append(
                f"  {column.name:<24} {column.verdict:<13} {column.values:>10,}{cells}  "
                f"{', '.join(column.flagged_by)}"
            )
        if len(shown) < len(columns):
            lines.append(f"  ... {len(columns) - len(shown)} more (--rows 0 lists all)")
        lines.append("")
    return "\n".join(line.rstrip() for line in lines).rstrip()


def _rank(verdict: str) -> int:
    return {"drift": 3, "warning": 2, "ok": 1}.get(verdict, 0)
