"""The channel every CLI command that talks to a server opens (health, push, versions, alias,
features, drift, ...): plaintext by default, TLS with `--ssl` (or any of `--root-cert`,
`--client-cert`, `--client-key`), presenting a client certificate to a server that runs with
`--grpc-use-ssl-mutual`."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc


class ChannelError(Exception):
    """A TLS flag's file cannot be read, or a client certificate lacks its key: a usage
    problem (exit 2)."""


def add_channel_flags(parser: argparse.ArgumentParser) -> None:
    """`--ssl`, `--root-cert`, `--client-cert`, `--client-key`."""
    parser.add_argument(
        "--ssl",
        action="store_true",
        help="connect over TLS (a server with --grpc-use-ssl); implied by the flags below",
    )
    parser.add_argument(
        "--root-cert",
        type=Path,
        default=None,
        help="PEM file: the CA certificates to trust for the server (default: the system's)",
    )
    parser.add_argument(
        "--client-cert",
        type=Path,
        default=None,
        help="PEM file: this client's certificate, for a server with --grpc-use-ssl-mutual",
    )
    parser.add_argument(
        "--client-key", type=Path, default=None, help="PEM file: the client certificate's key"
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
    if not (args.ssl or root is not None or cert is not None):
        return grpc.insecure_channel(args.server)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(args.server, credentials)
