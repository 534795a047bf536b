"""The sidecar's HTTP endpoints on a small threaded server (scrapes are rare and cheap):
`/metrics` (Prometheus text, or OpenMetrics when asked), `/` (the live dashboard page),
`/api/dashboard` (its JSON) and `/-/healthy`."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from ferroserve.sidecar.history import History

log = logging.getLogger(__name__)

DASHBOARD_PAGE = resources.files("ferroserve.sidecar").joinpath("dashboard.html").read_bytes()


class SidecarServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, history: History
    ) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.history = history


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
