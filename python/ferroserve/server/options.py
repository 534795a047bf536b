"""What `ferroserve serve` was asked for: the server's options and its metrics sidecar's, as
the CLI builds them and `Server` reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ferroserve.registry.control import DEFAULT_POLL_SECS, NONE
from ferroserve.server.admin import DEFAULT_MAX_PUSH_BYTES
from ferroserve.server.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PUSHES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_PUSH_IDLE_S,
    ConnectionOptions,
)
from ferroserve.server.tls import TlsOptions


@dataclass(slots=True, frozen=True)
class MetricsOptions:
    """The metrics snapshot and its sidecar."""

    directory: Path | None = None
    """Where the snapshot is written; None: a temporary folder removed at exit."""
    host: str = "127.0.0.1"
    port: int = 8002
    interval_s: float = 1.0
    sidecar: bool = True
    """Start the sidecar as a child process (off when it runs as its own container)."""
    ssl_cert: Path | None = None
    """--metrics-ssl-cert: the sidecar serves HTTPS with this certificate (and ssl_key)."""
    ssl_key: Path | None = None


@dataclass(slots=True, frozen=True)
class ServerOptions:
    """What `ferroserve serve` was asked for."""

    model_repository: Path
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int | None = None
    """Serve the v2 REST protocol on this port too (0: any free one); None: no HTTP."""
    allow_empty: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    models: tuple[str, ...] | None = None
    """Models to load at start (`*`: all); None: every model, or none in explicit mode."""
    model_control_mode: str = NONE
    """Triton's --model-control-mode: none, explicit or poll (registry/control.py)."""
    repository_poll_secs: float = DEFAULT_POLL_SECS
    """How often poll mode scans the repository (and an S3 repository syncs)."""
    repository_url: str | None = None
    """An `s3://` repository that `model_repository` mirrors (registry/s3.py); None: local."""
    metrics: MetricsOptions | None = None
    """None: no metrics snapshot and no sidecar."""
    frontend_threads: int = 1
    """Threads of the native front end."""
    admin_token_file: Path | None = None
    """The bearer token AdminService calls need; None: the admin service is open."""
    admin_max_push_bytes: int = DEFAULT_MAX_PUSH_BYTES
    """Largest push (model file and drift reference together)."""
    admin_max_pushes: int = DEFAULT_MAX_PUSHES
    """Pushes in progress at once; more are RESOURCE_EXHAUSTED."""
    admin_push_idle_s: float = DEFAULT_PUSH_IDLE_S
    """A push silent for this long is abandoned (DEADLINE_EXCEEDED)."""
    reflection: bool = False
    """Serve gRPC server reflection (opt-in: it tells any caller every service and message)."""
    restricted_protocols: tuple[str, ...] = ()
    """Triton's `--grpc-restricted-protocol` values: `<protocols>:<key>=<value>`, calls of those
    protocols must carry the header `triton-grpc-protocol-<key>: <value>`."""
    http_restricted_apis: tuple[str, ...] = ()
    """Triton's `--http-restricted-api` values: requests to those REST endpoints must carry
    the header `<key>: <value>`."""
    admin_port: int | None = None
    """Serve the admin service on this port instead of the inference port (0: any free one)."""
    connections: ConnectionOptions = field(default_factory=ConnectionOptions)
    """What bounds the front end's connections (docs/security.md)."""
    exit_timeout_s: float = 30.0
    """On SIGTERM, how long calls in flight and queued requests may take to finish (Triton's
    --exit-timeout-secs)."""
    default_max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    """Requests a model's queue level holds when its config sets no max_queue_size (0:
    unbounded)."""
    tls: TlsOptions | None = None
    """TLS on the gRPC port and the admin port (--grpc-use-ssl); None: plaintext."""
    http_tls: bool = False
    """HTTPS on the REST port with `tls`'s certificates (--http-use-ssl; needs `tls`)."""
