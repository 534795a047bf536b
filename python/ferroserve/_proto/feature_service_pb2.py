"""Message classes of ``ferroserve.features.v1.FeatureService`` (``Status`` and ``Reload`` of a
running server's feature stores).

Built from the private pool in :mod:`ferroserve._proto`
(``protos/ferroserve/feature_service.proto``); types come from the ``.pyi`` next to this file.
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "ferroserve/feature_service.proto")
