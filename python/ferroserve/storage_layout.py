"""The three shapes a downloaded model folder can have, and the model repository `serve` reads
from each. KServe's storage initializer copies a storageUri into /mnt/models as it finds it: a
Triton repository (`<model>/<version>/model.onnx`) stays one; one model's folder
(`config.pbtxt`, `<version>/model.onnx`) or a single `.onnx` file is not a repository, so
`serve --model-name NAME` puts a repository of symbolic links in front of it that serves it as
NAME. Called by cli.py before the server starts; the registry only ever sees a repository."""

from __future__ import annotations

import contextlib
import enum
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
"""Triton's default model file name, which the single file is linked as."""
MODEL_FOLDER_FILES = ("config.pbtxt", "features.pbtxt", "drift.pbtxt", "routing.json")
"""Files that belong beside config.pbtxt in a model folder, not in a version folder."""


class Layout(enum.Enum):
    REPOSITORY = "a model repository"
    MODEL_FOLDER = "one model's folder"
    MODEL_FILE = "one model file"


class LayoutError(ValueError):
    """The folder cannot be served as asked; the message says what to change."""


def _visible(root: Path) -> list[Path]:
    # Hidden entries are never models (push staging folders, `..data` links of mounted volumes).
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def detect(root: Path) -> Layout:
    """Which shape `root` has: a top-level `.onnx` file makes it one model file, a config.pbtxt
    or a numbered folder one model's folder, anything else a repository of model folders."""
    entries = _visible(root)
    if any(p.is_file() and p.suffix == ".onnx" for p in entries):
        return Layout.MODEL_FILE
    if any(
        (p.is_file() and p.name == "config.pbtxt") or (p.is_dir() and p.name.isdigit())
        for p in entries
    ):
        return Layout.MODEL_FOLDER
    return Layout.REPOSITORY


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise LayoutError(
            f"--model-name {name!r} cannot be a model folder's name: give a name without "
            "'/', '\\' or NUL that does not start with '.'"
        )


def _link_model_file(root: Path, model_dir: Path) -> None:
    """`model_dir` as a model folder whose version 1 is the single .onnx file in `root`."""
    entries = _visible(root)
    onnx_files = [p for p in entries if p.is_file() and p.suffix == ".onnx"]
    if len(onnx_files) > 1:
        names = ", ".join(p.name for p in onnx_files)
        raise LayoutError(
            f"{root} holds {len(onnx_files)} .onnx files ({names}): one model file is served "
            "as one model; lay several out as a repository (<model>/1/model.onnx each)"
        )
    version = model_dir / "1"
    version.mkdir(parents=True)
    (version / MODEL_FILE).symlink_to(onnx_files[0].resolve())
    for entry in entries:
        if entry == onnx_files[0]:
            continue
        # config.pbtxt and friends belong to the model, the rest (a drift reference) to version 1.
        target = model_dir if entry.name in MODEL_FOLDER_FILES else version
        (target / entry.name).symlink_to(entry.resolve())


@contextlib.contextmanager
def served_repository(root: Path, model_name: str | None) -> Iterator[Path]:
    """The repository to serve for `serve --model-repository root [--model-name NAME]`: `root`
    itself for a repository (or without a name), else a temporary repository holding `root` as
    the model `model_name`, removed on exit. Raises LayoutError with what to change."""
    if not root.is_dir():  # the registry says so, as for any repository
        yield root
        return
    layout = detect(root)
    if model_name is None:
        if layout is not Layout.REPOSITORY:
            log.warning(
                "%s looks like %s, not a repository of model folders, so it serves no model; "
                "pass --model-name NAME to serve it as the model NAME",
                root,
                layout.value,
            )
        yield root
        return
    if layout is Layout.REPOSITORY:
        models = ", ".join(p.name for p in _visible(root) if p.is_dir()) or "none"
        log.info(
            "%s is a model repository (models: %s): its folders name its models, "
            "--model-name %s is not used",
            root,
            models,
            model_name,
        )
        yield root
        return
    _check_name(model_name)
    with tempfile.TemporaryDirectory(prefix="ferroserve-repository-") as scratch:
        model_dir = Path(scratch) / model_name
        if layout is Layout.MODEL_FOLDER:
            model_dir.symlink_to(root.resolve(), target_is_directory=True)
        else:
            _link_model_file(root, model_dir)
        log.info("serving %s (%s) as the model '%s'", root, layout.value, model_name)
        yield Path(scratch)
