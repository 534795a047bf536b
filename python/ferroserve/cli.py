"""The `ferroserve` command: `serve` a model repository, `demo` (write an example repository
and serve it), `metrics-sidecar`, and `features status|load`, `drift`, `health` and
`push|versions|load|unload|alias|rollback|traffic` against a running server (cli_features.py,
cli_drift.py, cli_health.py, cli_admin.py, cli_routing.py). Flag names follow Triton's so
operators feel at home."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferroserve import __version__, cli_admin, cli_drift, cli_features, cli_health, cli_routing
from ferroserve.cli_limits import add_connection_flags, connection_options
from ferroserve.cli_tls import (
    add_metrics_tls_flags,
    add_tls_flags,
    http_tls,
    metrics_tls,
    tls_options,
)
from ferroserve.registry.control import DEFAULT_POLL_SECS, MODES, NONE
from ferroserve.registry.s3 import is_s3_url
from ferroserve.server.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PUSH_BYTES,
    DEFAULT_MAX_PUSHES,
    DEFAULT_PUSH_IDLE_S,
)

if TYPE_CHECKING:
    from ferroserve.server.options import MetricsOptions, ServerOptions

log = logging.getLogger("ferroserve")

FRONTEND_REMOVED = (
    "--frontend was removed: the native (Rust) front end always listens on --grpc-port "
    "and forwards every call it does not answer itself to the Python server, which answers "
    "it as before; grpc.aio listening itself answered 3-5x fewer requests per second at 4-10x "
    "the server CPU per request (docs/architecture.md, Decisions)"
)


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    parser.add_argument(
        "--http-port",
        type=int,
        default=8000,
        help="port of the KServe v2 REST protocol (HTTP/1.1 and h2c; docs/http.md); default 8000",
    )
    parser.add_argument(
        "--allow-http",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the v2 REST protocol on --http-port (default on, as Triton)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8002,
        help="port of the metrics sidecar: /metrics (Prometheus) and / (dashboard); default 8002",
    )
    parser.add_argument(
        "--allow-metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record metrics and run the metrics sidecar (default on)",
    )
    parser.add_argument(
        "--metrics-interval-ms",
        type=int,
        default=1000,
        help="how often the metrics snapshot is written and sampled (default 1000)",
    )
    parser.add_argument(
        "--metrics-dir",
        type=Path,
        default=None,
        help="folder for the metrics snapshot shared with the sidecar (default: a temporary "
        "folder; set it to run the sidecar yourself, e.g. as a Kubernetes sidecar container)",
    )
    parser.add_argument(
        "--metrics-sidecar",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start the metrics sidecar as a child process (default on; off when it runs as "
        "its own container with `ferroserve metrics-sidecar`)",
    )
    parser.add_argument(
        "--grpc-max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest gRPC message accepted or sent (default 128 MiB; Triton's is 2 GiB)",
    )
    add_connection_flags(parser)
    add_tls_flags(parser)
    add_metrics_tls_flags(parser)
    # Removed (docs/configuration.md): "python" is refused with the reason, "native" (what
    # always runs now) is accepted with a warning so scripts that spell it out keep working.
    parser.add_argument("--frontend", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--frontend-threads",
        type=int,
        default=1,
        help="threads of the native front end (default 1; see docs/configuration.md)",
    )
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        default=None,
        help="file holding the token every admin call (push, load, unload, versions) must send "
        "as `authorization: Bearer <token>`; without it the admin service is open "
        "(docs/deploying.md)",
    )
    parser.add_argument(
        "--grpc-reflection",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="serve gRPC server reflection (grpcurl list/describe); off by default, since it "
        "tells any caller every service and message the port offers",
    )
    parser.add_argument(
        "--grpc-restricted-protocol",
        action="append",
        default=[],
        metavar="<protocols>:<key>=<value>",
        help="Triton's restricted protocols (repeatable): calls of the comma-separated "
        "protocols (health, metadata, inference, shared-memory, model-config, "
        "model-repository, statistics, trace, logging) must carry the header "
        "`triton-grpc-protocol-<key>: <value>`, else UNAVAILABLE; model-repository covers "
        "the admin and feature services, statistics the drift service (docs/security.md)",
    )
    parser.add_argument(
        "--http-restricted-api",
        action="append",
        default=[],
        metavar="<apis>:<key>=<value>",
        help="Triton's restricted APIs on the HTTP port (repeatable; the groups of "
        "--grpc-restricted-protocol): requests to them must carry the header `<key>: <value>`, "
        "else 403 (docs/http.md)",
    )
    parser.add_argument(
        "--admin-max-concurrent-pushes",
        type=int,
        default=DEFAULT_MAX_PUSHES,
        help=f"pushes in progress at once; more are refused (default {DEFAULT_MAX_PUSHES})",
    )
    parser.add_argument(
        "--admin-push-idle-secs",
        type=float,
        default=DEFAULT_PUSH_IDLE_S,
        help="a push that sends nothing for this long is abandoned and its partial upload "
        f"removed (default {DEFAULT_PUSH_IDLE_S:g})",
    )
    parser.add_argument(
        "--admin-port",
        type=int,
        default=None,
        help="serve the admin service (push, versions, load, unload, alias, traffic) on this "
        "port instead of the gRPC port (default: the gRPC port)",
    )
    parser.add_argument(
        "--admin-max-push-bytes",
        type=int,
        default=DEFAULT_MAX_PUSH_BYTES,
        help="largest push accepted, model file and drift reference together (default 2 GiB)",
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
        required=True,
        help="folder with <model>/[config.pbtxt] and <model>/<version>/model.onnx, or "
        "s3://bucket/prefix (S3-compatible storage, mirrored locally; docs/deploying.md)",
    )
    serve.add_argument(
        "--repository-cache",
        type=Path,
        default=None,
        help="local mirror of an s3:// repository (default: a temporary folder)",
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
        help="load only these models at start (repeatable; `*`: all; default: all, or none "
        "with --model-control-mode=explicit)",
    )
    serve.add_argument(
        "--model-control-mode",
        choices=MODES,
        default=NONE,
        help="Triton's model control: none (default: load the repository at start, refuse "
        "RepositoryModelLoad/Unload), explicit (clients load and unload), poll (serve what "
        "changes in the repository every --repository-poll-secs)",
    )
    serve.add_argument(
        "--repository-poll-secs",
        type=float,
        default=DEFAULT_POLL_SECS,
        help=f"poll mode's scan interval in seconds (default {DEFAULT_POLL_SECS:g})",
    )
    serve.add_argument(
        "--model-name",
        default=None,
        help="serve --model-repository as this one model when it is one model's folder "
        "(config.pbtxt, 1/model.onnx) or holds a single .onnx file, as KServe's storage "
        "initializer lays out a storageUri (docs/deploying-kubernetes.md); the folders of a "
        "repository, local or s3://, name its models themselves",
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
    sidecar = commands.add_parser(
        "metrics-sidecar",
        help="serve /metrics and the dashboard from a serving process's metrics folder",
    )
    sidecar.add_argument(
        "--metrics-dir", type=Path, required=True, help="the serving process's --metrics-dir"
    )
    sidecar.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sidecar.add_argument("--metrics-port", type=int, default=8002, help="HTTP port (default 8002)")
    sidecar.add_argument(
        "--metrics-interval-ms",
        type=int,
        default=1000,
        help="the serving process's snapshot interval; the dashboard samples at this rate",
    )
    sidecar.add_argument(
        "--history-minutes",
        type=float,
        default=15.0,
        help="how much history the dashboard keeps (default 15)",
    )
    sidecar.add_argument(
        "--exit-with-pid", type=int, default=None, help="exit when this process is gone"
    )
    add_metrics_tls_flags(sidecar)
    sidecar.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    cli_features.add_commands(commands)
    cli_drift.add_commands(commands)
    cli_health.add_commands(commands)
    cli_admin.add_commands(commands)
    cli_routing.add_commands(commands)
    return parser


def _metrics_options(args: argparse.Namespace) -> MetricsOptions | None:
    from ferroserve.server.options import MetricsOptions

    if not args.allow_metrics:
        return None
    if args.metrics_interval_ms <= 0:
        raise SystemExit("ferroserve: --metrics-interval-ms must be positive")
    tls = metrics_tls(args)
    return MetricsOptions(
        directory=args.metrics_dir,
        host=args.host,
        port=args.metrics_port,
        interval_s=args.metrics_interval_ms / 1000,
        sidecar=args.metrics_sidecar,
        ssl_cert=None if tls is None else tls.cert,
        ssl_key=None if tls is None else tls.key,
    )


def _run_sidecar(args: argparse.Namespace) -> int:
    from ferroserve.sidecar.main import SidecarConfig, run_sidecar

    config = SidecarConfig(
        directory=args.metrics_dir,
        host=args.host,
        port=args.metrics_port,
        interval_s=max(args.metrics_interval_ms, 1) / 1000,
        history_s=args.history_minutes * 60,
        exit_with_pid=args.exit_with_pid,
        tls=metrics_tls(args),
    )
    try:
        return run_sidecar(config)
    except OSError as error:
        print(
            f"ferroserve metrics-sidecar: cannot serve on {args.host}:{args.metrics_port}: {error}",
            file=sys.stderr,
        )
        return 1


def _check_frontend(frontend: str | None) -> None:
    """The removed `--frontend` flag: exits with FRONTEND_REMOVED for anything but "native"."""
    if frontend is None:
        return
    if frontend != "native":
        print(f"ferroserve: --frontend {frontend}: {FRONTEND_REMOVED}", file=sys.stderr)
        raise SystemExit(2)
    log.warning("--frontend native has no effect (the native front end always listens); remove it")


def _check_token_file(path: Path | None) -> None:
    """Exits with the reason when --admin-token-file cannot give a token."""
    if path is None:
        return
    from ferroserve.server.auth import TokenGuard

    try:
        TokenGuard.from_file(path, "--admin-token-file")
    except (OSError, ValueError) as error:
        print(f"ferroserve: --admin-token-file: {error}", file=sys.stderr)
        raise SystemExit(2) from error


def _run(options: ServerOptions, use_uvloop: bool) -> None:
    from ferroserve.server.app import serve_forever

    if use_uvloop:
        try:
            import uvloop

            uvloop.run(serve_forever(options))
            return
        except ImportError:
            log.info("uvloop is not installed; using asyncio's default loop")
    asyncio.run(serve_forever(options))


def _shared_options(args: argparse.Namespace, metrics: Any) -> dict[str, Any]:
    """The ServerOptions fields `serve` and `demo` take from the same flags."""
    tls = tls_options(args)
    return {
        "host": args.host,
        "grpc_port": args.grpc_port,
        "http_port": args.http_port if args.allow_http else None,
        "max_message_bytes": args.grpc_max_message_bytes,
        "metrics": metrics,
        "frontend_threads": args.frontend_threads,
        "admin_token_file": args.admin_token_file,
        "admin_max_push_bytes": args.admin_max_push_bytes,
        "admin_port": args.admin_port,
        "admin_max_pushes": args.admin_max_concurrent_pushes,
        "admin_push_idle_s": args.admin_push_idle_secs,
        "reflection": args.grpc_reflection,
        "restricted_protocols": tuple(args.grpc_restricted_protocol),
        "http_restricted_apis": tuple(args.http_restricted_api),
        "connections": connection_options(args),
        "default_max_queue_size": args.default_max_queue_size,
        "exit_timeout_s": args.exit_timeout_secs,
        "tls": tls,
        "http_tls": http_tls(args, tls),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "features":
        return cli_features.run(args)
    if args.command == "drift":
        return cli_drift.run(args)
    if args.command == "health":
        return cli_health.run(args)
    if args.command in cli_admin.COMMANDS:
        return cli_admin.run(args)
    if args.command in cli_routing.COMMANDS:
        return cli_routing.run(args)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "metrics-sidecar":
        return _run_sidecar(args)
    _check_frontend(args.frontend)
    _check_token_file(args.admin_token_file)
    metrics = _metrics_options(args)
    if args.command == "serve" and not is_s3_url(args.model_repository):
        from ferroserve.storage_layout import LayoutError, served_repository

        try:
            with served_repository(Path(args.model_repository), args.model_name) as repository:
                return _serve(args, metrics, repository)
        except LayoutError as error:
            print(f"ferroserve: {error}", file=sys.stderr)
            return 2
    return _serve(args, metrics, None)


def _serve(
    args: argparse.Namespace, metrics: MetricsOptions | None, repository: Path | None
) -> int:
    """Runs `serve` or `demo` until stopped; the exit status. `repository`: the local folder
    `serve` serves (None for an s3:// repository, which is mirrored into a folder of its own)."""
    from ferroserve import _core
    from ferroserve.server.options import ServerOptions

    try:
        _core.Restrictions(args.grpc_restricted_protocol)
        _core.Restrictions(args.http_restricted_api, http=True)
    except ValueError as error:
        print(f"ferroserve: {error}", file=sys.stderr)
        return 2
    if args.command == "demo":
        from ferroserve.demo import usage, write_demo_repository

        root = args.dir or Path(tempfile.mkdtemp(prefix="ferroserve-demo-"))
        write_demo_repository(root)
        print(f"wrote the demo model repository to {root}", flush=True)
        metrics_port = None if metrics is None or not metrics.sidecar else metrics.port
        http_port = args.http_port if args.allow_http else None
        print(usage(args.host, args.grpc_port, metrics_port, http_port), flush=True)
        options = ServerOptions(root, **_shared_options(args, metrics))
    else:
        repository_url = args.model_repository if is_s3_url(args.model_repository) else None
        root = Path(args.model_repository) if repository is None else repository
        if repository_url is not None:
            root = args.repository_cache or Path(tempfile.mkdtemp(prefix="ferroserve-s3-"))
            root.mkdir(parents=True, exist_ok=True)
        options = ServerOptions(
            root,
            allow_empty=args.allow_empty,
            models=tuple(args.load_model) if args.load_model else None,
            model_control_mode=args.model_control_mode,
            repository_poll_secs=args.repository_poll_secs,
            repository_url=repository_url,
            **_shared_options(args, metrics),
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
