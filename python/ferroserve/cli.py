"""The `ferroserve` command: `serve` a model repository, or `demo` (write an example repository
and serve it). Flag names follow Triton's so operators feel at home."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ferroserve import __version__
from ferroserve.server.app import DEFAULT_MAX_MESSAGE_BYTES, ServerOptions, serve_forever

log = logging.getLogger("ferroserve")


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8002,
        help="Prometheus metrics port (reserved for the metrics sidecar; default 8002)",
    )
    parser.add_argument(
        "--grpc-max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest gRPC message accepted or sent (default 2 GiB - 1, as Triton)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use uvloop when installed (default on; ~10%% more throughput)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferroserve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ferroserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a Triton-style model repository")
    serve.add_argument(
        "--model-repository",
        type=Path,
        required=True,
        help="folder with <model>/[config.pbtxt] and <model>/<version>/model.onnx",
    )
    serve.add_argument(
        "--allow-empty",
        action="store_true",
        help="report ready even when the repository has no model",
    )
    serve.add_argument(
        "--load-model",
        action="append",
        metavar="NAME",
        help="load only these models at start (repeatable; default: all)",
    )
    _add_server_flags(serve)
    demo = commands.add_parser("demo", help="write an example model repository and serve it")
    demo.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to write the repository (default: a temporary folder)",
    )
    _add_server_flags(demo)
    return parser


def _run(options: ServerOptions, use_uvloop: bool) -> None:
    if use_uvloop:
        try:
            import uvloop

            uvloop.run(serve_forever(options))
            return
        except ImportError:
            log.info("uvloop is not installed; using asyncio's default loop")
    asyncio.run(serve_forever(options))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "demo":
        from ferroserve.demo import usage, write_demo_repository

        root = args.dir or Path(tempfile.mkdtemp(prefix="ferroserve-demo-"))
        write_demo_repository(root)
        print(f"wrote the demo model repository to {root}", flush=True)
        print(usage(args.host, args.grpc_port), flush=True)
        options = ServerOptions(
            root, args.host, args.grpc_port, max_message_bytes=args.grpc_max_message_bytes
        )
    else:
        options = ServerOptions(
            args.model_repository,
            args.host,
            args.grpc_port,
            args.allow_empty,
            args.grpc_max_message_bytes,
            tuple(args.load_model) if args.load_model else None,
        )
    try:
        _run(options, args.uvloop)
    except (OSError, FileNotFoundError) as error:
        print(f"ferroserve: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
