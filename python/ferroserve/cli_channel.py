"""The channel every CLI command that talks to a server opens (health, push, versions, alias,
features, drift, ...): plaintext by default, TLS with `--ssl` (or any of `--root-cert`,
`--client-cert`, `--client-key`), presenting a client certificate to a server that runs with
`--grpc-use-ssl-mutual`. Each flag defaults to an environment variable, so a container's
HEALTHCHECK or a probe command reaches a TLS server without changing its command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import grpc

SSL_ENV = "FERROSERVE_SSL"
ROOT_CERT_ENV = "FERROSERVE_ROOT_CERT"
CLIENT_CERT_ENV = "FERROSERVE_CLIENT_CERT"
CLIENT_KEY_ENV = "FERROSERVE_CLIENT_KEY"
SERVER_NAME_ENV = "FERROSERVE_TLS_SERVER_NAME"


def _path_from(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value) if value else None


class ChannelError(Exception):
    """A TLS flag's file cannot be read, or a client certificate lacks its key: a usage
    problem (exit 2)."""


def add_channel_flags(parser: argparse.ArgumentParser) -> None:
    """`--ssl`, `--root-cert`, `--client-cert`, `--client-key`, `--tls-server-name`."""
    parser.add_argument(
        "--ssl",
        action="store_true",
        default=os.environ.get(SSL_ENV, "").lower() in ("1", "true", "yes"),
        help=f"connect over TLS (a server with --grpc-use-ssl; default: ${SSL_ENV}); implied "
        "by the flags below",
    )
    parser.add_argument(
        "--root-cert",
        type=Path,
        default=_path_from(ROOT_CERT_ENV),
        help="PEM file: the CA certificates to trust for the server (default: "
        f"${ROOT_CERT_ENV}, else the system's)",
    )
    parser.add_argument(
        "--client-cert",
        type=Path,
        default=_path_from(CLIENT_CERT_ENV),
        help="PEM file: this client's certificate, for a server with --grpc-use-ssl-mutual "
        f"(default: ${CLIENT_CERT_ENV})",
    )
    parser.add_argument(
        "--client-key",
        type=Path,
        default=_path_from(CLIENT_KEY_ENV),
        help=f"PEM file: the client certificate's key (default: ${CLIENT_KEY_ENV})",
    )
    parser.add_argument(
        "--tls-server-name",
        default=os.environ.get(SERVER_NAME_ENV) or None,
        help="the name the server's certificate must carry when it differs from --server's "
        "host, e.g. a probe dialling 127.0.0.1 in a pod whose certificate names the Service "
        f"(default: ${SERVER_NAME_ENV})",
    )


def _read(flag: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise ChannelError(f"{flag} {path}: {error.strerror or error}") from error


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to `args.server` as the flags ask; ChannelError naming the flag when a file
    cannot be read or the client certificate comes without its key (or the other way round)."""
    root = _read("--root-cert", args.root_cert)
    cert = _read("--client-cert", args.client_cert)
    key = _read("--client-key", args.client_key)
    if (cert is None) != (key is None):
        raise ChannelError("a client certificate needs both --client-cert and --client-key")
    if not (args.ssl or root is not None or cert is not None or args.tls_server_name):
        return grpc.insecure_channel(args.server)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=cert
    )
    options = []
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.secure_channel(args.server, credentials, options=options)
