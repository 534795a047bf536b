"""Reads Triton's `config.pbtxt` unchanged: protobuf text format against our `ModelConfig`
(protos/model_config.proto, Triton's field numbers). A field our copy of Triton's proto does
not know (a newer Triton's, or a typo) is skipped with a warning naming it and its line, never
a failure of the whole file: Triton's own parser would refuse it, but refusing the model for a
field that cannot change how we serve it helps nobody. Called by the repository on every load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.pbtxt"
PLATFORM = "onnxruntime_onnx"
ENSEMBLE_PLATFORM = "ensemble"
BACKEND = "onnxruntime"


def read_config(model_dir: Path) -> mc.ModelConfig:
    """Parses `model_dir/config.pbtxt` if present, else returns an empty config."""
    path = model_dir / CONFIG_FILE
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return parse_config(text, model_dir.name, path)


def parse_config(text: str, name: str, path: Path | str) -> mc.ModelConfig:
    """Parses config.pbtxt `text` of the model folder `name` (`path`: where it is, for the
    errors). Unknown fields are skipped with a warning each (`unknown_fields` lists them).
    ConfigError for text that does not parse, a `name` that is not the folder's, or a platform
    or backend ferroserve does not serve."""
    config, unknown = parse_text(text, path)
    for field_path, line in unknown:
        log.warning(
            "model '%s': %s:%d: field '%s' is not in Triton's model_config.proto as ferroserve "
            "knows it; ignored (a typo, or a newer Triton's field)",
            name,
            path,
            line,
            field_path,
        )
    if not config.name:
        config.name = name
    elif config.name != name:
        raise ConfigError(f"{path}: name '{config.name}' does not match the model folder '{name}'")
    if config.HasField("ensemble_scheduling") and config.platform != ENSEMBLE_PLATFORM:
        raise ConfigError(
            f"{path}: ensemble_scheduling belongs to an ensemble; add platform: "
            f'"{ENSEMBLE_PLATFORM}" (or remove it)'
        )
    if config.platform and config.platform not in (PLATFORM, ENSEMBLE_PLATFORM):
        raise ConfigError(
            f"{path}: platform '{config.platform}' is not served by ferroserve (only "
            f"'{PLATFORM}' and '{ENSEMBLE_PLATFORM}')"
        )
    if config.backend and config.backend != BACKEND:
        raise ConfigError(f"{path}: backend '{config.backend}' is not served (only '{BACKEND}')")
    return config


def parse_text(
    text: str, path: Path | str = CONFIG_FILE
) -> tuple[mc.ModelConfig, list[tuple[str, int]]]:
    """The config in `text` and the fields it skipped: (dotted path, 1-based line) each.
    ConfigError naming `path` when the text does not parse."""
    parser = _RecordingParser()
    config = mc.ModelConfig()
    try:
        parser.ParseLines(text.split("\n"), config)
    except text_format.ParseError as error:
        raise ConfigError(f"{path}: {error}") from error
    return config, parser.unknown


class _RecordingParser(text_format._Parser):
    """protobuf's text parser with unknown fields skipped and recorded: protobuf's own
    `allow_unknown_field` skips them without saying which. Overrides the two private methods
    it calls per message field and per skipped field (stable since protobuf 4.21; the unit
    tests fail if a release renames them)."""

    def __init__(self) -> None:
        super().__init__(allow_unknown_field=True)
        self.unknown: list[tuple[str, int]] = []
        self._path: list[str] = []

    def _MergeMessageField(self, tokenizer: Any, message: Any, field: Any) -> None:
        self._path.append(field.name)
        try:
            super()._MergeMessageField(tokenizer, message, field)  # type: ignore[misc]
        finally:
            self._path.pop()

    def _SkipFieldContents(
        self, tokenizer: Any, field_name: str, immediate_message_type: str
    ) -> None:
        line = int(getattr(tokenizer, "_previous_line", 0)) + 1
        self.unknown.append((".".join([*self._path, field_name]), line))
        super()._SkipFieldContents(  # type: ignore[misc]
            tokenizer, field_name, immediate_message_type
        )
