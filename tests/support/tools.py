"""Commands the test environment installs (the `ferroserve` console script, and the dev extras'
hadolint and kubectl), found beside this interpreter first, as `make test` installs them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def tool(name: str) -> str:
    """The path of command `name`; fails saying how to install it when it is missing."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise AssertionError(
            f"`{name}` is missing: install the dev extras (pip install -e '.[dev]')"
        )
    return found
