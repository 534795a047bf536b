"""The on-disk model repository: which folders are models, which versions the policy selects, and
the errors for missing models and unusable version folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from ferroserve.errors import ConfigError, ModelNotFoundError
from ferroserve.registry.repository import ModelRepository


def make_model(root: Path, name: str, versions: list[str], config: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for version in versions:
        (folder / version).mkdir()
        (folder / version / "model.onnx").write_bytes(b"")
    if config is not None:
        (folder / "config.pbtxt").write_text(config, encoding="utf-8")
    return folder


def test_repository_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        ModelRepository(tmp_path / "missing")


def test_model_names_are_sorted_folders(tmp_path: Path) -> None:
    make_model(tmp_path, "b", ["1"])
    make_model(tmp_path, "a", ["1"])
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "README.md").write_text("not a model", encoding="utf-8")
    assert ModelRepository(tmp_path).model_names() == ["a", "b"]


def test_empty_repository(tmp_path: Path) -> None:
    assert ModelRepository(tmp_path).model_names() == []


def test_source_selects_the_newest_version_by_default(tmp_path: Path) -> None:
    make_model(tmp_path, "m", ["1", "2", "10"])
    source = ModelRepository(tmp_path).source("m")
    assert source.name == "m"
    assert source.versions == (10,)  # numeric order, not string order
    assert source.model_file(10) == tmp_path / "m" / "10" / "model.onnx"
    assert source.config.name == "m"


def test_source_applies_the_config_policy(tmp_path: Path) -> None:
    make_model(tmp_path, "m", ["1", "2", "3"], "version_policy: { latest: { num_versions: 2 } }")
    assert ModelRepository(tmp_path).source("m").versions == (2, 3)


def test_non_numeric_folders_are_not_versions(tmp_path: Path) -> None:
    folder = make_model(tmp_path, "m", ["1", "2"])
    (folder / "latest").mkdir()
    (folder / "3.bak").mkdir()
    (folder / "4").write_text("a file, not a folder", encoding="utf-8")
    source = ModelRepository(tmp_path).source("m")
    assert source.versions == (2,)


def test_default_model_filename(tmp_path: Path) -> None:
    make_model(tmp_path, "m", ["1"], 'default_model_filename: "net.onnx"')
    source = ModelRepository(tmp_path).source("m")
    assert source.model_file(1) == tmp_path / "m" / "1" / "net.onnx"


@pytest.mark.parametrize("name", ["missing", "..", ".", "", "a/b"])
def test_unknown_model_is_not_found(tmp_path: Path, name: str) -> None:
    # "a/b" and ".." are real folders, but not model names: no escaping the repository.
    (tmp_path / "repo" / "a" / "b").mkdir(parents=True)
    with pytest.raises(ModelNotFoundError):
        ModelRepository(tmp_path / "repo").source(name)


def test_model_without_versions(tmp_path: Path) -> None:
    make_model(tmp_path, "m", [])
    with pytest.raises(ConfigError, match=r"'m'.*no version folder.*none"):
        ModelRepository(tmp_path).source("m")


def test_specific_policy_naming_a_missing_version(tmp_path: Path) -> None:
    make_model(tmp_path, "m", ["1", "2"], "version_policy: { specific: { versions: [ 3 ] } }")
    with pytest.raises(ConfigError, match=r"\[3\].*\[1, 2\]"):
        ModelRepository(tmp_path).source("m")


def test_bad_config_is_a_config_error(tmp_path: Path) -> None:
    make_model(tmp_path, "m", ["1"], "not a field: 1")
    with pytest.raises(ConfigError, match=r"config\.pbtxt"):
        ModelRepository(tmp_path).source("m")
