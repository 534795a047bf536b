"""The flags of `ferroserve serve` that bound what clients can make the server spend:
connections, calls and streams (docs/security.md). The keep-alive ones have Triton's names."""

from __future__ import annotations

import argparse
import sys

from ferroserve.server.limits import (
    DEFAULT_MAX_QUEUE_SIZE,
    ConnectionOptions,
    default_max_connections,
)


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """What bounds the front end's connections (docs/security.md); keep-alive as Triton."""
    defaults = ConnectionOptions()
    flags = (
        (
            "--grpc-max-connections",
            default_max_connections(),
            "connections open at once; at "
            "the cap a new one closes the oldest idle one (default 4096, fewer under a low "
            "file descriptor limit)",
        ),
        (
            "--grpc-max-concurrent-streams",
            defaults.max_concurrent_streams,
            "calls open at once on one HTTP/2 connection (default %(default)s)",
        ),
        (
            "--grpc-handshake-timeout-ms",
            defaults.handshake_timeout_ms,
            "how long a new connection may take to send its first request (default %(default)s)",
        ),
        (
            "--grpc-idle-timeout-ms",
            defaults.idle_timeout_ms,
            "close a connection without an open call after this long (0: never; default "
            "%(default)s)",
        ),
        (
            "--grpc-keepalive-time",
            defaults.keepalive_time_ms,
            "ms between HTTP/2 keep-alive pings (0: none; default %(default)s, as Triton)",
        ),
        (
            "--grpc-keepalive-timeout",
            defaults.keepalive_timeout_ms,
            "ms a keep-alive ping may go unanswered before the connection is closed (default "
            "%(default)s, as Triton)",
        ),
        (
            "--grpc-stream-window",
            defaults.stream_window,
            "requests of one ModelStreamInfer stream in flight at once; past it the stream is "
            "not read until one is answered (default %(default)s)",
        ),
    )
    for flag, default, text in flags:
        parser.add_argument(flag, type=int, default=default, help=text)
    parser.add_argument(
        "--exit-timeout-secs",
        type=float,
        default=30.0,
        help="on SIGTERM, how long calls in flight and queued requests may take to finish "
        "while new work is refused (default %(default)g, as Triton)",
    )
    parser.add_argument(
        "--default-max-queue-size",
        type=int,
        default=DEFAULT_MAX_QUEUE_SIZE,
        help="requests a model's queue level holds when its config.pbtxt sets no "
        "max_queue_size; more are RESOURCE_EXHAUSTED (0: unbounded, as Triton; default "
        "%(default)s)",
    )


def connection_options(args: argparse.Namespace) -> ConnectionOptions:
    """The connection flags; exits with the flag's name when one is out of range."""
    at_least_one = (
        "grpc_max_connections",
        "grpc_max_concurrent_streams",
        "grpc_handshake_timeout_ms",
        "grpc_stream_window",
    )
    for name in at_least_one:
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            print(f"ferroserve: {flag} must be at least 1", file=sys.stderr)
            raise SystemExit(2)
    nonnegative = (
        "grpc_idle_timeout_ms",
        "grpc_keepalive_time",
        "grpc_keepalive_timeout",
        "default_max_queue_size",
        "exit_timeout_secs",
    )
    for name in nonnegative:
        if getattr(args, name) < 0:
            flag = "--" + name.replace("_", "-")
            print(f"ferroserve: {flag} must not be negative", file=sys.stderr)
            raise SystemExit(2)
    return ConnectionOptions(
        max_connections=args.grpc_max_connections,
        max_concurrent_streams=args.grpc_max_concurrent_streams,
        handshake_timeout_ms=args.grpc_handshake_timeout_ms,
        idle_timeout_ms=args.grpc_idle_timeout_ms,
        keepalive_time_ms=args.grpc_keepalive_time,
        keepalive_timeout_ms=args.grpc_keepalive_timeout,
        stream_window=args.grpc_stream_window,
    )
