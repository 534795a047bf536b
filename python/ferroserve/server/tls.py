"""TLS of the gRPC ports (Triton's `--grpc-use-ssl` flags): the files, checked with the native
front end's own rules (`_core.check_server_tls`, so every listener refuses the same files with
the same words), and the credentials of the Python gRPC listeners that serve TCP (the
`--admin-port` listener), whose certificates `reload` replaces for new connections (SIGHUP)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from ferroserve import _core


@dataclass(slots=True, frozen=True)
class TlsOptions:
    """The PEM files of a TLS server port."""

    cert: Path
    """--grpc-server-cert: the server's certificate, then any intermediates."""
    key: Path
    """--grpc-server-key: its private key."""
    root_cert: Path | None = None
    """--grpc-root-cert with --grpc-use-ssl-mutual: the CA client certificates must chain to;
    None: clients are not asked for a certificate."""

    def check(self) -> None:
        """ValueError naming the flag and the file when the files make no usable server."""
        _core.check_server_tls(
            str(self.cert), str(self.key), None if self.root_cert is None else str(self.root_cert)
        )


class ReloadableCredentials:
    """grpc server credentials whose certificates `reload` replaces: gRPC asks `_fetch` at
    every new handshake, and the connections already open keep theirs."""

    def __init__(self, options: TlsOptions) -> None:
        self._options = options
        self._next: grpc.ServerCertificateConfiguration | None = None
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            # grpc documents None as "keep the current one"; grpc-stubs does not allow it.
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=options.root_cert is not None,
        )

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        options = self._options
        return grpc.ssl_server_certificate_configuration(
            [(options.key.read_bytes(), options.cert.read_bytes())],
            root_certificates=None if options.root_cert is None else options.root_cert.read_bytes(),
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called on gRPC's threads; one assignment each way, atomic under the GIL.
        configuration, self._next = self._next, None
        return configuration

    def reload(self) -> None:
        """Reads the files again for new connections; ValueError (the old ones kept) when they
        cannot be used."""
        self._options.check()
        try:
            self._next = self._configuration()
        except OSError as error:  # changed again since the check
            raise ValueError(f"--grpc-server-cert/--grpc-server-key: {error}") from error
