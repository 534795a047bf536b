"""`ferroserve health`: one `grpc.health.v1.Health/Check` against a running server, for probes
that run a command (the container image's HEALTHCHECK, scripts, `kubectl exec`). Exits 0 when the
service asked for is SERVING, 1 when it is not or the server cannot be reached, and says which.
Kubernetes asks the same service with its own `grpc:` probes (docs/deploying-kubernetes.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import grpc

from ferroserve._proto import health_pb2
from ferroserve.cli_channel import ChannelError, add_channel_flags, open_channel
from ferroserve.cli_client import UsageError, header_metadata
from ferroserve.server.health import LIVENESS

DEFAULT_SERVER = "127.0.0.1:8001"
CHECK = "/grpc.health.v1.Health/Check"


def add_commands(commands: Any) -> None:
    """Adds `health` to the `ferroserve` parser's subcommands."""
    health = commands.add_parser(
        "health",
        help="check a running server through its gRPC health service (exit 0: serving)",
        description="Asks the server's grpc.health.v1.Health service once. Without --service "
        "or --live it asks for the server as a whole, which is SERVING once every model "
        "selected for loading is ready (readiness); --live asks whether it answers at all.",
    )
    health.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"gRPC address (default {DEFAULT_SERVER})"
    )
    which = health.add_mutually_exclusive_group()
    which.add_argument(
        "--service",
        default="",
        help="the health service name: '' (default: the server's readiness), "
        "'inference.GRPCInferenceService' (the same), or a model name",
    )
    which.add_argument(
        "--live",
        action="store_true",
        help=f"ask for liveness ('{LIVENESS}'): SERVING while the server answers, ready or not",
    )
    health.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)"
    )
    health.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="gRPC metadata sent with the check (repeatable), e.g. "
        "triton-grpc-protocol-<key>=<value> when the server restricts the health protocol",
    )
    add_channel_flags(health)


def check(
    args: argparse.Namespace, service: str, metadata: tuple[tuple[str, str], ...] = ()
) -> health_pb2.HealthCheckResponse:
    """One Check call to `args.server`; raises grpc.RpcError when the server cannot answer."""
    with open_channel(args) as channel:
        call = channel.unary_unary(
            CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        response: health_pb2.HealthCheckResponse = call(
            health_pb2.HealthCheckRequest(service=service), timeout=args.timeout, metadata=metadata
        )
        return response


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs `ferroserve health`, printing one line to `out` (default stdout); the exit status."""
    out = sys.stdout if out is None else out
    service = LIVENESS if args.live else args.service
    label = f"{args.server} ({service or 'server'})"
    try:
        metadata = header_metadata(args.header)
        response = check(args, service, metadata)
    except (UsageError, ChannelError) as error:
        print(f"ferroserve health: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        print(f"{label}: {code.name}: {details}", file=out)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{label}: {status}", file=out)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1
