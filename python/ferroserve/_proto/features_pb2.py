"""Message classes of ferroserve's ``features.pbtxt`` (``ferroserve.features.v1``).

Built from the private pool in :mod:`ferroserve._proto` (``protos/ferroserve/features.proto``);
types come from the ``.pyi`` next to this file.
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "ferroserve/features.proto")
