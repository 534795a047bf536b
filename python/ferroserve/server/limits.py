"""Server limits shared by the CLI and the server (a module of its own so that the CLI's
parser, and the metrics sidecar that shares it, import nothing heavy). docs/security.md says
what each bounds and why the defaults are what they are."""

from __future__ import annotations

import resource
from dataclasses import dataclass

# Large enough for real tensors (a batch of 1080p FP32 images is ~24 MiB per image), small
# enough that a client cannot make the server hold gigabytes per message (Triton's 2 GiB).
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024**2

# Requests one priority level of a model's queue holds when its config.pbtxt sets no
# max_queue_size (Triton's 0 is unbounded): a burst past it is refused with RESOURCE_EXHAUSTED
# instead of held without bound (docs/security.md); 0 keeps Triton's behaviour.
DEFAULT_MAX_QUEUE_SIZE = 10_000

# The largest push the admin service accepts (model file and drift reference together).
DEFAULT_MAX_PUSH_BYTES = 2 * 1024**3

# Pushes in progress at once: each holds a staging folder, an open file and a worker thread.
DEFAULT_MAX_PUSHES = 4

# A push whose client sends nothing for this long is abandoned (its partial upload removed).
DEFAULT_PUSH_IDLE_S = 60.0


def default_max_connections() -> int:
    """4096, or fewer where the file descriptor limit is low: a quarter of the descriptors
    stay for the model files, the backend socket and the sidecar."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft * 3 // 4))


@dataclass(slots=True, frozen=True)
class ConnectionOptions:
    """What bounds the native front end's connections and calls (flags of `ferroserve serve`;
    the keep-alive ones have Triton's names and defaults)."""

    max_connections: int = 4096
    """Connections open at once; at the cap a new one closes the oldest idle one."""
    max_concurrent_streams: int = 256
    """HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls open at once on one connection."""
    handshake_timeout_ms: int = 10_000
    """How long a new connection may take to send its first request."""
    idle_timeout_ms: int = 300_000
    """How long a connection may stay without an open call (0: forever)."""
    keepalive_time_ms: int = 7_200_000
    """HTTP/2 PING interval (0: none), Triton's --grpc-keepalive-time."""
    keepalive_timeout_ms: int = 20_000
    """How long a PING may go unanswered, Triton's --grpc-keepalive-timeout."""
    stream_window: int = 64
    """Messages of one ModelStreamInfer stream in flight at once; past it reading pauses."""
