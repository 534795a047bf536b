"""storage_layout: the shape of a downloaded model folder (as KServe's storage initializer lays
out a storageUri) and the repository `serve --model-name` makes of it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ferroserve.registry.repository import ModelRepository
from ferroserve.storage_layout import Layout, LayoutError, detect, served_repository


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_detect_tells_the_three_layouts_apart(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    write(repository / "fraud" / "1" / "model.onnx")
    write(repository / "fraud" / "config.pbtxt")
    folder = tmp_path / "folder"
    write(folder / "2" / "model.onnx")
    config_only = tmp_path / "config-only"
    write(config_only / "config.pbtxt")
    single = tmp_path / "single"
    write(single / "fraud.onnx")
    assert detect(repository) is Layout.REPOSITORY
    assert detect(folder) is Layout.MODEL_FOLDER
    assert detect(config_only) is Layout.MODEL_FOLDER
    assert detect(single) is Layout.MODEL_FILE


def test_hidden_entries_are_not_models(tmp_path: Path) -> None:
    # Mounted volumes carry `..data` links; a push stages in a hidden folder.
    write(tmp_path / "..data" / "model.onnx")
    write(tmp_path / ".ferroserve-push-1-abc" / "1" / "model.onnx")
    write(tmp_path / ".model.onnx")
    write(tmp_path / "fraud" / "1" / "model.onnx")
    assert detect(tmp_path) is Layout.REPOSITORY


def test_a_repository_is_served_as_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "fraud" / "1" / "model.onnx")
    with caplog.at_level(logging.INFO), served_repository(tmp_path, "isvc") as served:
        assert served == tmp_path
    assert "models: fraud" in caplog.text
    assert "--model-name isvc is not used" in caplog.text
    with served_repository(tmp_path, None) as served:
        assert served == tmp_path


def test_a_model_folder_is_served_under_the_name(tmp_path: Path) -> None:
    source = tmp_path / "mnt-models"
    write(source / "config.pbtxt", 'platform: "onnxruntime_onnx"')
    model = write(source / "1" / "model.onnx", "weights")
    with served_repository(source, "fraud") as served:
        repository = ModelRepository(served)
        assert repository.model_names() == ["fraud"]
        assert repository.version_numbers("fraud") == [1]
        assert (served / "fraud" / "1" / "model.onnx").read_text() == "weights"
        # A push writes into the model's own folder, through the link.
        write(served / "fraud" / "2" / "model.onnx", "pushed")
        assert (source / "2" / "model.onnx").read_text() == "pushed"
        scratch = served
    assert not scratch.exists()  # the links go, the model stays
    assert model.read_text() == "weights"


def test_a_single_file_becomes_version_1(tmp_path: Path) -> None:
    source = tmp_path / "mnt-models"
    write(source / "fraud-2026.onnx", "weights")
    write(source / "config.pbtxt", "max_batch_size: 8")
    write(source / "drift.pbtxt", "window { rows: 100 }")
    write(source / "drift_reference.npz", "reference")
    with served_repository(source, "fraud") as served:
        model = served / "fraud"
        assert ModelRepository(served).model_names() == ["fraud"]
        assert (model / "1" / "model.onnx").read_text() == "weights"
        assert (model / "config.pbtxt").read_text() == "max_batch_size: 8"
        assert (model / "drift.pbtxt").read_text() == "window { rows: 100 }"
        assert (model / "1" / "drift_reference.npz").read_text() == "reference"


def test_several_onnx_files_are_refused_with_what_to_do(tmp_path: Path) -> None:
    write(tmp_path / "a.onnx")
    write(tmp_path / "b.onnx")
    with (
        pytest.raises(LayoutError, match=r"2 \.onnx files \(a\.onnx, b\.onnx\).*repository"),
        served_repository(tmp_path, "fraud"),
    ):
        pass


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a\\b"])
def test_a_name_that_cannot_be_a_folder_is_refused(tmp_path: Path, name: str) -> None:
    write(tmp_path / "model.onnx")
    with (
        pytest.raises(LayoutError, match="cannot be a model folder's name"),
        served_repository(tmp_path, name),
    ):
        pass


def test_a_single_model_without_a_name_is_served_as_a_repository_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "model.onnx")
    with caplog.at_level(logging.WARNING), served_repository(tmp_path, None) as served:
        assert served == tmp_path
    assert "looks like one model file" in caplog.text
    assert "pass --model-name NAME" in caplog.text
