"""Message classes of gRPC server reflection, ``grpc.reflection.v1``.

Built from the private pool in :mod:`ferroserve._proto`
(``protos/grpc/reflection/v1/reflection.proto``); types come from the ``.pyi`` next to this file.
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "grpc/reflection/v1/reflection.proto")
