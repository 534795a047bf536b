"""Entry point for `python -m benches.peers`: the benches/ modules import each other as
top-level modules (they run as scripts with benches/ on sys.path), so put it there first."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parents[1]
if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

from peers.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
