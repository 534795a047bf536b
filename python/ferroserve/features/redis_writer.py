"""Writes a file's rows into a model's Redis feature view in Feast's online-store layout, as
`feast materialize` would, for teams without Feast (`ferroserve features load --file`, in
cli_features.py). The view, its Redis store and Feast's names come from the model's
features.pbtxt; the file is read like an embedded snapshot (sources.py: the same column and type
checks) and written by the Rust writer (`_core.feast_write`, rust/feast). No server is involved:
a running server serves the rows from Redis at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferroserve import _core
from ferroserve.errors import ConfigError, FerroserveError
from ferroserve.features.declaration import (
    SNAPSHOT_FORMATS,
    FeatureDeclaration,
    SnapshotSource,
    read_declaration,
)
from ferroserve.features.sources import Column, read_snapshot

DEFAULT_EVENT_TIME_COLUMN = "event_timestamp"
"""The event-time column Feast's own examples and `FileSource`s use."""


@dataclass(slots=True, frozen=True)
class RedisWrite:
    """What one write did."""

    model: str
    view: str
    project: str
    """The Feast project the rows were written under."""
    rows: int
    """Rows written: one per distinct entity key."""
    duplicate_keys: int
    """Rows of the file not written because a newer row (or as new and later) had their key."""
    seconds: float


def write_file(
    repository: Path,
    model: str,
    view: str,
    file: Path,
    *,
    event_time_column: str = DEFAULT_EVENT_TIME_COLUMN,
    event_time_unit: str | None = None,
    timeout_s: float = 600.0,
) -> RedisWrite:
    """Writes the rows of `file` (Parquet, CSV or NPZ: the view's key columns and feature
    columns by their names in features.pbtxt, and `event_time_column`, timestamps or numbers in
    `event_time_unit` "s", "ms" or "us") into the Redis store of `model`'s view `view` in the
    model repository `repository`. Raises ConfigError for a model, view or file that does not
    fit; InvalidInputError, UnavailableError (Redis refused or cannot be reached) or
    DeadlineExceededError (not done within `timeout_s`) from the writer."""
    started = time.perf_counter()
    folder = repository / model
    if not folder.is_dir():
        raise ConfigError(f"model repository {repository} has no model folder '{model}'")
    declaration = read_declaration(folder)
    if declaration is None:
        raise ConfigError(f"model '{model}' has no features.pbtxt in {folder}")
    declared = _redis_view(declaration, model, view)
    snapshot_format = SNAPSHOT_FORMATS.get(file.suffix.lower())
    if snapshot_format is None:
        raise ConfigError(f"cannot tell the format of {file}: name it .parquet, .csv or .npz")
    source = SnapshotSource(
        view=view,
        path=file,
        format=snapshot_format,
        key_columns=tuple(declared["key"]),
        feature_columns=tuple(feature["name"] for feature in declared["features"]),
        event_time_column=event_time_column,
        event_time_unit=event_time_unit,
    )
    key_types = {spec.name: spec.datatype for spec in declaration.request_inputs}
    try:
        columns = read_snapshot(
            source,
            [Column(part, key_types[part]) for part in declared["key"]],
            [Column(feature["name"], feature["datatype"]) for feature in declared["features"]],
        )
    except ConfigError as error:
        # The reader words its errors for snapshot sources; say what the file needs instead.
        if "has no column" in str(error) or "has no array" in str(error):
            hint = (
                f"the file needs the view's key columns {declared['key']}, its feature columns "
                f"{list(source.feature_columns)} (their names in features.pbtxt) and the "
                f"event-time column '{event_time_column}' (--event-time-column names another)"
            )
        elif "event_time_unit" in str(error):
            hint = "give the unit of numeric event times with --event-time-unit s|ms|us"
        else:
            raise
        raise ConfigError(f"{error}; {hint}") from error
    assert declaration.redis is not None  # _redis_view checked that the view is in Redis
    assert columns.event_times_us is not None  # the source names an event-time column
    try:
        rows, duplicate_keys = _core.feast_write(
            declaration.plan,
            declaration.redis.as_core(),
            view,
            columns.keys,
            columns.features,
            columns.event_times_us,
            timeout_s=timeout_s,
        )
    except FerroserveError as error:
        raise type(error)(f"model '{model}' view '{view}': {error}") from error
    return RedisWrite(
        model,
        view,
        declaration.redis.project,
        rows,
        duplicate_keys,
        time.perf_counter() - started,
    )


def _redis_view(declaration: FeatureDeclaration, model: str, view: str) -> dict[str, Any]:
    """The declaration of `view` (as `_core.FeaturePlan` takes it), which must be one of the
    model's Redis views."""
    declared = [entry for entry in declaration.plan["views"] if entry["name"] == view]
    if not declared:
        names = [entry["name"] for entry in declaration.plan["views"]]
        raise ConfigError(f"model '{model}' has no feature view '{view}'; its views: {names}")
    if declaration.redis is None or view not in declaration.redis.views:
        embedded = next(source for source in declaration.sources if source.view == view)
        raise ConfigError(
            f"model '{model}' view '{view}' is embedded, not stored in Redis: its rows come from "
            f"{embedded.path}; replace that file (the server reloads it), or run `ferroserve "
            f"features load --model {model} --view {view}` to reload it now"
        )
    return dict(declared[0])
