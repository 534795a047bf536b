"""What a repository poll asks of the registry: a new model or a changed one is loaded, a
removed one unloaded, a version folder this server already holds (its own push) changes
nothing, and an unchanged repository causes no call at all."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ferroserve.registry.poller import RepositoryPoller


class FakeRegistry:
    def __init__(self, root: Path) -> None:
        self.repository = SimpleNamespace(root=root)
        self.calls: list[tuple[str, str]] = []
        self.known: dict[str, dict[int, Any]] = {}

    def version_states(self, name: str) -> dict[int, Any]:
        return self.known.get(name, {})

    async def load(self, name: str) -> None:
        self.calls.append(("load", name))

    async def unload(self, name: str) -> None:
        self.calls.append(("unload", name))


def write_version(root: Path, name: str, version: int) -> None:
    folder = root / name / str(version)
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")


def test_a_poll_asks_for_exactly_what_changed(tmp_path: Path) -> None:
    write_version(tmp_path, "a", 1)
    (tmp_path / "a" / "config.pbtxt").write_text('name: "a"')
    registry = FakeRegistry(tmp_path)
    poller = RepositoryPoller(registry, 1.0)  # type: ignore[arg-type]

    async def scenario() -> None:
        await poller.baseline()
        assert await poller.poll() == [] and registry.calls == []
        # A version the registry already holds (pushed through this server): no reload.
        write_version(tmp_path, "a", 2)
        registry.known["a"] = {1: "READY", 2: "READY"}
        assert await poller.poll() == ["a"] and registry.calls == []
        # A version written by someone else: reload.
        write_version(tmp_path, "a", 3)
        assert await poller.poll() == ["a"] and registry.calls == [("load", "a")]
        # A rewritten file of a version it holds: reload too.
        model = tmp_path / "a" / "2" / "model.onnx"
        model.write_bytes(b"onnx, retrained")
        os.utime(model, ns=(1, 1))
        registry.calls.clear()
        await poller.poll()
        assert registry.calls == [("load", "a")]
        # A new model, a hidden staging folder (ignored), then the model goes away.
        registry.calls.clear()
        write_version(tmp_path, "b", 1)
        write_version(tmp_path, ".ferroserve-push-1-abc", 1)
        await poller.poll()
        assert registry.calls == [("load", "b")]
        for path in sorted((tmp_path / "b").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (tmp_path / "b").rmdir()
        await poller.poll()
        assert registry.calls == [("load", "b"), ("unload", "b")]

    asyncio.run(scenario())
