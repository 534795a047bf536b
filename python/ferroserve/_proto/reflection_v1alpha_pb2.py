"""Message classes of gRPC server reflection, ``grpc.reflection.v1alpha``
(the version grpcurl falls back to).

Built from the private pool in :mod:`ferroserve._proto`
(``protos/grpc/reflection/v1alpha/reflection.proto``); types come from the ``.pyi`` next to
this file.
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "grpc/reflection/v1alpha/reflection.proto")
