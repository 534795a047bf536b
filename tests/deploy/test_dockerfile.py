"""The container image's Dockerfile, tested without building it (no image can be pulled or built
on these machines): hadolint passes; every path it copies exists and is in the build context,
the whole Rust workspace included; it runs as a non-root user; and its ENTRYPOINT + CMD serve a
real repository here, answering its HEALTHCHECK command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import dockerfile as df
from support import models as m
from support.commands import CommandServer, with_flags
from support.manifests import ROOT
from support.repository import add_model
from support.tools import tool

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def test_hadolint_passes() -> None:
    # .hadolint.yaml beside the Dockerfile holds the one ignored rule and why.
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _context_sources() -> list[str]:
    return [
        source
        for copy in df.copies(DOCKERFILE)
        if "from" not in copy.flags  # a previous stage's files, not the build context's
        for source in copy.sources
    ]


def _included(path: str) -> bool:
    """Whether .dockerignore (everything excluded, then re-included paths) lets `path` in."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore should exclude everything first"
    reincluded = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    target = path.rstrip("/").removeprefix("./")
    return any(target == p or target.startswith(f"{p}/") for p in reincluded)


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    sources = _context_sources()
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
        assert _included(source), f"COPY {source}: .dockerignore keeps it out of the context"


def test_the_copies_hold_everything_the_wheel_build_reads() -> None:
    tomllib = pytest.importorskip("tomllib", reason="reading TOML needs Python 3.11's tomllib")
    copied = [s.rstrip("/") for s in _context_sources()]

    def is_copied(path: str) -> bool:
        return any(path == s or path.startswith(f"{s}/") for s in copied)

    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [
        "Cargo.toml",
        "Cargo.lock",
        "pyproject.toml",
        pyproject["project"]["readme"],
        pyproject["tool"]["maturin"]["manifest-path"],
        pyproject["tool"]["maturin"]["python-source"],
        *workspace,  # cargo reads every member's manifest before building one of them
    ]
    missing = [path for path in needed if not is_copied(path)]
    assert not missing, f"the builder stage does not copy {missing}"


def test_the_runtime_runs_as_a_user_without_root() -> None:
    user = df.last(DOCKERFILE, "USER").arguments
    assert user not in ("root", "0") and not user.startswith("0:")
    from_lines = [i for i in df.instructions(DOCKERFILE) if i.keyword == "FROM"]
    users = [i for i in df.instructions(DOCKERFILE) if i.keyword == "USER"]
    # The USER comes after the last FROM, so the runtime stage is the one that drops root.
    order = df.instructions(DOCKERFILE)
    assert order.index(users[-1]) > order.index(from_lines[-1])


def test_entrypoint_serves_a_repository_and_passes_its_healthcheck(tmp_path: Path) -> None:
    entrypoint = df.exec_form(df.last(DOCKERFILE, "ENTRYPOINT"))
    command = df.exec_form(df.last(DOCKERFILE, "CMD"))
    healthcheck = df.exec_form(df.last(DOCKERFILE, "HEALTHCHECK"))
    assert entrypoint == ["ferroserve"]
    assert healthcheck[:2] == ["ferroserve", "health"]
    repository = tmp_path / "models"
    add_model(repository, "identity", m.identity_model("FP32", ["batch", 4]))

    def argv(grpc_port: int, metrics_port: int) -> list[str]:
        local = with_flags(command, {"--model-repository": str(repository), "--host": "127.0.0.1"})
        ports = {"--grpc-port": str(grpc_port), "--metrics-port": str(metrics_port)}
        return with_flags(local, ports, append=True)

    with CommandServer(argv, repository, tmp_path / "server.log") as server:
        server.wait_ready()
        probe = with_flags(healthcheck[1:], {"--server": server.url})
        result = subprocess.run(
            [tool("ferroserve"), *probe], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith("SERVING")
