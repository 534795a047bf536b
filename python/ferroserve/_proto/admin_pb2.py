"""Message classes of ``ferroserve.admin.v1.AdminService`` (pushing, listing, loading and
unloading model versions of a running server).

Built from the private pool in :mod:`ferroserve._proto`
(``protos/ferroserve/admin.proto``); types come from the ``.pyi`` next to this file.
"""

from __future__ import annotations

import sys

from . import populate_module

DESCRIPTOR = populate_module(sys.modules[__name__], "ferroserve/admin.proto")
