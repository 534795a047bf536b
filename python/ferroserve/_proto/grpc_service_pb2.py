"""Message classes of ``grpc_service.proto`` (KServe v2 / Triton gRPC protocol).

Built from the private pool in :mod:`ferroserve._proto`; names match generated
``grpc_service_pb2`` code (types come from the ``.pyi`` next to this file).
"""

from __future__ import annotations

import sys

from . import populate_module

# Imported for its side effects, as generated code does: the dependency module is set up first.
from . import model_config_pb2  # noqa: F401  # isort: skip

DESCRIPTOR = populate_module(sys.modules[__name__], "grpc_service.proto")
