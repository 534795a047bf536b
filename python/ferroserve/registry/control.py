"""Triton's model control modes (`--model-control-mode`), with Triton's meaning: `none` (the
default) loads the repository at start and refuses RepositoryModelLoad/Unload; `explicit` loads
only `--load-model` models at start (`*`: all) and lets clients load and unload; `poll` loads
the repository at start and then serves what changes in it every `--repository-poll-secs`
(registry/poller.py). The admin service (push, per-version load/unload, aliases) works in
every mode, behind its own token."""

from __future__ import annotations

NONE = "none"
EXPLICIT = "explicit"
POLL = "poll"
MODES = (NONE, EXPLICIT, POLL)
DEFAULT_POLL_SECS = 15.0
"""Triton's default for `--repository-poll-secs`."""
ALL_MODELS = "*"
"""`--load-model=*`: every model in the repository (explicit mode)."""
