"""Message classes of the standard gRPC health checking protocol (``grpc.health.v1``).

Built from the private pool in :mod:`ferroserve._proto`
(``protos/grpc/health/v1/health.proto``); types come from the ``.pyi`` next to this file.
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "grpc/health/v1/health.proto")
