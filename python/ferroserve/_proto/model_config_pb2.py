"""Message classes of ``model_config.proto`` (Triton model configuration).

Built from the private pool in :mod:`ferroserve._proto`; names match generated
``model_config_pb2`` code (types come from the ``.pyi`` next to this file).
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "model_config.proto")
