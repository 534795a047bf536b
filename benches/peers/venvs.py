"""Isolated virtual environments for the peer servers (their dependency pins clash with
ferroserve's and with each other's), created with the running Python under
bench-results/venvs/<name> and reused when the packages already import there."""

from __future__ import annotations

import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from .models import REPO_ROOT

VENVS_DIR = REPO_ROOT / "bench-results" / "venvs"
INSTALL_TIMEOUT_S = 1200
# The peers run onnxruntime's CPU build at the version ferroserve runs (its GPU build).
ONNXRUNTIME = "onnxruntime==1.31.1"


@dataclass(frozen=True, slots=True)
class PeerEnvironment:
    """What to install for one peer and which distributions to report the versions of."""

    name: str
    requirements: tuple[str, ...]
    reported: tuple[str, ...]


KSERVE = PeerEnvironment("kserve", ("kserve==0.21.0", ONNXRUNTIME), ("kserve", "onnxruntime"))
# MLServer 1.7's inference workers break with uvloop newer than 0.21 (the issue's pin).
MLSERVER = PeerEnvironment(
    "mlserver",
    ("mlserver==1.7.1", "uvloop==0.21.0", ONNXRUNTIME),
    ("mlserver", "uvloop", "onnxruntime"),
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """The environment's Python and installed versions, or why there is none."""

    python: Path | None
    versions: str = ""
    error: str = ""


def prepare(environment: PeerEnvironment) -> Prepared:
    """Creates (or reuses) the environment; never raises for an install failure."""
    root = VENVS_DIR / environment.name
    python = root / "bin" / "python"
    log = VENVS_DIR / f"{environment.name}.install.log"
    versions = _versions(python, environment.reported)
    if versions is not None:
        return Prepared(python, versions)
    print(f"creating {root} (log: {log})", file=sys.stderr)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        with log.open("w") as output:
            subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                 *environment.requirements],
                stdout=output, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S, check=True,
            )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return Prepared(None, error=f"{error}: {' / '.join(tail)}")
    versions = _versions(python, environment.reported)
    if versions is None:
        return Prepared(None, error=f"installed, but the packages do not import (see {log})")
    return Prepared(python, versions)


def _versions(python: Path, distributions: tuple[str, ...]) -> str | None:
    """'kserve 0.21.0, onnxruntime 1.31.1' if every distribution imports, else None."""
    if not python.exists():
        return None
    probe = (
        "import importlib.metadata as m, sys; "
        "print(', '.join(f'{d} {m.version(d)}' for d in sys.argv[1:]))"
    )
    imports = "import onnxruntime; " + "; ".join(
        f"import {name}" for name in distributions if name != "onnxruntime"
    )
    done = subprocess.run(
        [str(python), "-c", f"{imports}; {probe}", *distributions],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None
