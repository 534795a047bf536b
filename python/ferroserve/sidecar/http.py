"""The sidecar's HTTP endpoints on a small threaded server (scrapes are rare and cheap):
`/metrics` (Prometheus text, or OpenMetrics when asked), `/` (the live dashboard page),
`/api/dashboard` (its JSON) and `/-/healthy`; over HTTPS with `--metrics-ssl-cert` and
`--metrics-ssl-key`, whose files `reload_tls` reads again for new connections (SIGHUP)."""

from __future__ import annotations

import json
import logging
import socket
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from ferroserve.sidecar.history import History

log = logging.getLogger(__name__)

DASHBOARD_PAGE = resources.files("ferroserve.sidecar").joinpath("dashboard.html").read_bytes()


# A client that opens a connection and never finishes its TLS handshake holds a thread this long.
HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(slots=True, frozen=True)
class SidecarTls:
    """The sidecar's certificate and key (PEM files)."""

    cert: Path
    """--metrics-ssl-cert: the certificate, then any intermediates."""
    key: Path
    """--metrics-ssl-key: its private key."""

    def context(self) -> ssl.SSLContext:
        """A server context with the files' certificate; ValueError naming the flags and
        files when they cannot be used."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            raise ValueError(
                f"--metrics-ssl-cert {self.cert} / --metrics-ssl-key {self.key}: {error}"
            ) from error
        return context


class SidecarServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        history: History,
        tls: SidecarTls | None = None,
    ) -> None:
        # Checked before binding: unusable files fail the start, naming them.
        self._tls = tls
        self._context = None if tls is None else tls.context()
        super().__init__(address, _Handler)
        self.registry = registry
        self.history = history

    @property
    def scheme(self) -> str:
        return "http" if self._tls is None else "https"

    def reload_tls(self) -> None:
        """New connections get the certificate the files hold now; ValueError (the old one
        kept) when they cannot be used."""
        if self._tls is not None:
            self._context = self._tls.context()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        context = self._context
        if context is None:
            return connection, address
        # The handshake runs on the request's thread (finish_request), not on the accept loop.
        wrapped = context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError) as error:
                log.debug("TLS handshake with %s failed: %s", client_address, error)
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: SidecarServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(HTTPStatus.OK, content_type, encoder(self.server.registry))
        elif path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", DASHBOARD_PAGE)
        elif path == "/api/dashboard":
            body = json.dumps(self.server.history.dashboard()).encode()
            self._send(HTTPStatus.OK, "application/json", body)
        elif path == "/-/healthy":
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", b"ok\n")
        else:
            self._send(
                HTTPStatus.NOT_FOUND,
                "text/plain; charset=utf-8",
                b"not found: try /metrics, / (dashboard) or /api/dashboard\n",
            )

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
