"""The TLS flags of `ferroserve serve` and `demo`, with Triton's names (`--grpc-use-ssl`,
`--grpc-server-cert`, `--grpc-server-key`, `--grpc-root-cert`, `--grpc-use-ssl-mutual`), the REST
port's `--http-use-ssl` (Triton has none: its HTTP endpoint needs a TLS proxy) and the metrics
sidecar's (`--metrics-ssl-cert`, `--metrics-ssl-key`; Triton has none). Files that cannot be used
stop the start with a message naming the flag and the file (exit 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from ferroserve.server.tls import TlsOptions
    from ferroserve.sidecar.http import SidecarTls

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _boolean(text: str) -> bool:
    """Triton writes `--grpc-use-ssl=true`; the bare flag means true too."""
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    """TLS on the gRPC port and the admin port (docs/security.md, Transport security)."""
    parser.add_argument(
        "--grpc-use-ssl",
        type=_boolean,
        nargs="?",
        const=True,
        default=False,
        help="serve gRPC over TLS only (with --grpc-server-cert and --grpc-server-key); also "
        "--grpc-use-ssl=true as Triton writes it",
    )
    parser.add_argument(
        "--grpc-use-ssl-mutual",
        type=_boolean,
        nargs="?",
        const=True,
        default=False,
        help="mutual TLS: also require a client certificate signed by --grpc-root-cert "
        "(implies --grpc-use-ssl)",
    )
    parser.add_argument(
        "--http-use-ssl",
        type=_boolean,
        nargs="?",
        const=True,
        default=None,
        help="serve the REST port (--http-port) over TLS too, with the same certificates and "
        "mutual TLS setting (default: on exactly when --grpc-use-ssl is; "
        "--http-use-ssl=false keeps it plaintext, for a TLS proxy in front)",
    )
    parser.add_argument(
        "--grpc-server-cert", type=Path, help="PEM file: the server certificate (and chain)"
    )
    parser.add_argument("--grpc-server-key", type=Path, help="PEM file: its private key")
    parser.add_argument(
        "--grpc-root-cert",
        type=Path,
        help="PEM file: the CA certificates client certificates must chain to "
        "(with --grpc-use-ssl-mutual)",
    )


def add_metrics_tls_flags(parser: argparse.ArgumentParser) -> None:
    """HTTPS for the metrics sidecar."""
    parser.add_argument(
        "--metrics-ssl-cert",
        type=Path,
        help="PEM file: serve the metrics sidecar over HTTPS with this certificate (and "
        "--metrics-ssl-key); reloaded on SIGHUP",
    )
    parser.add_argument(
        "--metrics-ssl-key", type=Path, help="PEM file: the metrics certificate's private key"
    )


def _refuse(message: str) -> NoReturn:
    print(f"ferroserve: {message}", file=sys.stderr)
    raise SystemExit(2)


def tls_options(args: argparse.Namespace) -> TlsOptions | None:
    """The gRPC TLS flags, checked; None without --grpc-use-ssl. Exits 2 saying what to fix."""
    from ferroserve.server.tls import TlsOptions

    use_ssl = args.grpc_use_ssl or args.grpc_use_ssl_mutual
    if not use_ssl:
        given = [
            flag
            for flag, value in (
                ("--grpc-server-cert", args.grpc_server_cert),
                ("--grpc-server-key", args.grpc_server_key),
                ("--grpc-root-cert", args.grpc_root_cert),
            )
            if value is not None
        ]
        if given:  # certificates named but TLS off would serve plaintext unnoticed
            _refuse(f"{', '.join(given)} given without --grpc-use-ssl: add --grpc-use-ssl")
        return None
    if args.grpc_server_cert is None or args.grpc_server_key is None:
        _refuse("--grpc-use-ssl needs --grpc-server-cert and --grpc-server-key (PEM files)")
    if args.grpc_use_ssl_mutual and args.grpc_root_cert is None:
        _refuse(
            "--grpc-use-ssl-mutual needs --grpc-root-cert (the CA that signs client certificates)"
        )
    if not args.grpc_use_ssl_mutual and args.grpc_root_cert is not None:
        _refuse(
            "--grpc-root-cert verifies client certificates: add --grpc-use-ssl-mutual, or drop it"
        )
    options = TlsOptions(args.grpc_server_cert, args.grpc_server_key, args.grpc_root_cert)
    try:
        options.check()
    except ValueError as error:
        _refuse(str(error))
    return options


def http_tls(args: argparse.Namespace, tls: TlsOptions | None) -> bool:
    """Whether the REST port speaks TLS: --http-use-ssl, by default whenever the gRPC port
    does (a TLS server whose REST port served plaintext would go unnoticed). It uses the gRPC
    port's certificates, so it needs --grpc-use-ssl; exits 2 saying so."""
    chosen: bool | None = args.http_use_ssl
    if chosen is None:
        return tls is not None and args.allow_http
    if chosen and tls is None:
        _refuse(
            "--http-use-ssl serves HTTPS with the gRPC port's certificate: add --grpc-use-ssl, "
            "--grpc-server-cert and --grpc-server-key"
        )
    if chosen and not args.allow_http:
        _refuse("--http-use-ssl with --no-allow-http: there is no HTTP port; drop one of them")
    return chosen


def metrics_tls(args: argparse.Namespace) -> SidecarTls | None:
    """The sidecar's HTTPS flags, checked; None without them. Exits 2 saying what to fix."""
    from ferroserve.sidecar.http import SidecarTls

    if args.metrics_ssl_cert is None and args.metrics_ssl_key is None:
        return None
    if args.metrics_ssl_cert is None or args.metrics_ssl_key is None:
        _refuse("HTTPS for the metrics sidecar needs both --metrics-ssl-cert and --metrics-ssl-key")
    tls = SidecarTls(args.metrics_ssl_cert, args.metrics_ssl_key)
    try:
        tls.context()
    except ValueError as error:
        _refuse(str(error))
    return tls
