"""A Triton-style model repository on local disk: `<repo>/<model>/[config.pbtxt]`,
`<repo>/<model>/<version>/model.onnx` and ferroserve's `<repo>/<model>/routing.json` (aliases and
traffic policy). Only reads the file system; loading is the registry's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import read_config
from ferroserve.errors import ConfigError, ModelNotFoundError
from ferroserve.registry.routing import Routing, read_routing


@dataclass(slots=True, frozen=True)
class ModelSource:
    """A model folder, its parsed config and the versions its version policy selects."""

    name: str
    path: Path
    config: mc.ModelConfig
    versions: tuple[int, ...]
    """The versions the version policy selects."""
    available: tuple[int, ...] = ()
    """Every version folder, in order."""
    routing: Routing = field(default_factory=Routing)
    """Its aliases and traffic policy (routing.json)."""

    def model_file(self, version: int) -> Path:
        filename = self.config.default_model_filename or "model.onnx"
        return self.path / str(version) / filename


class ModelRepository:
    """Reads model folders from one repository directory."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"model repository {root} is not a directory")
        self.root = root

    def version_numbers(self, name: str) -> list[int]:
        """A model's version folders, in order ([] when the model folder is missing)."""
        path = self.root / name
        if "/" in name or name in ("", ".", "..") or not path.is_dir():
            return []
        return sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())

    def model_names(self) -> list[str]:
        """Every folder in the repository that looks like a model (hidden folders skipped)."""
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def source(self, name: str) -> ModelSource:
        """Reads one model's config and selects its versions. Raises ModelNotFoundError if the
        folder is missing, ConfigError if its config, version folders or routing.json are
        unusable."""
        path = self.root / name
        if "/" in name or name in ("", ".", "..") or not path.is_dir():
            raise ModelNotFoundError(f"model '{name}' is not in the repository {self.root}")
        config = read_config(path)
        available = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())
        versions = select_versions(config, available)
        if not versions:
            raise ConfigError(
                f"model '{name}': no version folder matches the version policy "
                f"(found versions {available or 'none'} in {path})"
            )
        routing = read_routing(path)
        return ModelSource(name, path, config, tuple(versions), tuple(available), routing)


def select_versions(config: mc.ModelConfig, available: list[int]) -> list[int]:
    """Applies Triton's version_policy: latest N (default latest 1), all, or specific."""
    policy = config.version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return list(available)
    if which == "specific":
        wanted = set(policy.specific.versions)
        missing = wanted - set(available)
        if missing:
            raise ConfigError(
                f"model '{config.name}': version_policy names version(s) {sorted(missing)} "
                f"with no folder (available: {available})"
            )
        return sorted(wanted)
    count = policy.latest.num_versions if which == "latest" else 1
    if count < 1:
        raise ConfigError(f"model '{config.name}': latest.num_versions must be >= 1")
    return available[-count:]
