"""Message classes of ``ferroserve.drift.v1.DriftService`` (``Report`` and ``Reset`` of a
running server's drift windows).

Built from the private pool in :mod:`ferroserve._proto`
(``protos/ferroserve/drift_service.proto``); types come from the ``.pyi`` next to this file.
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "ferroserve/drift_service.proto")
