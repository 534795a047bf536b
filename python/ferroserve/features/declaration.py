"""Reads a model's `features.pbtxt` (protobuf text format against `ModelFeatures`,
protos/ferroserve/features.proto) into the declaration `_core.FeaturePlan` compiles, the
snapshot sources the store loads and the settings of views stored in Redis. Checks only what
the file alone can tell (types set, paths, units); whether the declaration fits the model is
the plan's check, in Rust, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import text_format

from ferroserve._proto import features_pb2 as fp
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.datatypes import BY_CONFIG_NAME
from ferroserve.errors import ConfigError

FEATURES_FILE = "features.pbtxt"
DEFAULT_POLL_INTERVAL_S = 2.0
"""How often snapshot files are checked for changes: a stat per file, cheap enough to do often,
and a reload within a few seconds of a new snapshot is what users of a file drop expect."""

SNAPSHOT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".npz": "npz"}
_TIME_UNITS = {
    fp.Source.SECONDS: "s",
    fp.Source.MILLISECONDS: "ms",
    fp.Source.MICROSECONDS: "us",
}
_INTEGER_FEATURES = frozenset({"INT64", "INT32"})
DEFAULT_REDIS_TIMEOUT_MS = 50
"""A loopback or same-zone Redis answers a request's pipeline in well under a millisecond
(docs/features.md), so 50 ms means the store is unwell: its rows are served by the policy."""
DEFAULT_SERIALIZATION_VERSION = 3
"""Feast's default `entity_key_serialization_version` since 0.38."""


@dataclass(slots=True, frozen=True)
class RequestInputSpec:
    """One tensor clients send per row (an entity key part or request-time features)."""

    name: str
    datatype: str
    """v2 datatype name (BYTES for TYPE_STRING)."""
    columns: int


@dataclass(slots=True, frozen=True)
class SnapshotSource:
    """Where one view's snapshot is read from and which columns hold what."""

    view: str
    path: Path
    """Absolute (relative paths in the file are taken from the model folder)."""
    format: str
    """"parquet", "csv" or "npz"."""
    key_columns: tuple[str, ...]
    """The snapshot column of each key part, in the view's key order."""
    feature_columns: tuple[str, ...]
    """The snapshot column of each feature, in the view's feature order."""
    event_time_column: str | None
    event_time_unit: str | None
    """"s", "ms" or "us" for integer event times; None: the column's own (timestamp) unit."""


@dataclass(slots=True, frozen=True)
class RedisSettings:
    """The model's Redis store and its views in Feast's layout, as `_core.FeatureStore` takes
    them (`as_core()`)."""

    url: str
    project: str
    timeout_ms: int
    serialization_version: int
    views: dict[str, dict[str, Any]]
    """Per Redis view: {"name": Feast's view name?, "features": Feast's feature names?}."""

    @property
    def address(self) -> str:
        """Where the store is, safe to show (status, metrics snapshot, dashboards): the URL's
        scheme, host, port and database, without its user, password or query
        (`redis://10.0.0.5:6379/0`, `redis+unix:///run/redis.sock`)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6: keep the brackets the URL had
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:  # not a number: the store refused the URL at load already
            port = None
        netloc = host if port is None else f"{host}:{port}"
        return f"{parts.scheme}://{netloc}{parts.path}"

    def as_core(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "project": self.project,
            "timeout_ms": self.timeout_ms,
            "serialization_version": self.serialization_version,
            "views": self.views,
        }


@dataclass(slots=True, frozen=True)
class FeatureDeclaration:
    """A parsed features.pbtxt."""

    path: Path
    plan: dict[str, Any]
    """The declaration as `_core.FeaturePlan` takes it."""
    request_inputs: tuple[RequestInputSpec, ...]
    sources: tuple[SnapshotSource, ...]
    poll_interval_s: float | None
    """None: snapshots are read once, at load."""
    redis: RedisSettings | None = None
    """The Redis store and views; None when every view is embedded."""


def features_path(model_dir: Path) -> Path:
    return model_dir / FEATURES_FILE


def read_declaration(model_dir: Path) -> FeatureDeclaration | None:
    """The model's features.pbtxt, parsed and checked; None when the model has none. Raises
    ConfigError naming the file and the field."""
    path = features_path(model_dir)
    if not path.is_file():
        return None
    message = fp.ModelFeatures()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), message)
    except text_format.ParseError as error:
        raise ConfigError(f"{path}: {error}") from error
    return parse_declaration(message, path, model_dir)


def parse_declaration(message: fp.ModelFeatures, path: Path, model_dir: Path) -> FeatureDeclaration:
    """Converts a parsed `ModelFeatures` (read from `path`) into a FeatureDeclaration."""
    if not message.view:
        raise ConfigError(
            f"{path}: declares no view; a model without looked-up features needs no {FEATURES_FILE}"
        )
    request_inputs = tuple(_request_input(path, item) for item in message.request_input)
    views = [_view(path, view) for view in message.view]
    assembly = [
        {
            "model_input": item.model_input,
            "segments": [_segment(path, item.model_input, segment) for segment in item.segment],
        }
        for item in message.assembly
    ]
    plan = {
        "request_inputs": [
            {"name": spec.name, "datatype": spec.datatype, "columns": spec.columns}
            for spec in request_inputs
        ],
        "views": views,
        "assembly": assembly,
    }
    sources = tuple(
        _source(path, model_dir, view)
        for view in message.view
        if view.store == fp.FeatureView.EMBEDDED
    )
    return FeatureDeclaration(
        path, plan, request_inputs, sources, _poll_interval(path, message), _redis(path, message)
    )


def _redis_views(path: Path, message: fp.ModelFeatures) -> dict[str, dict[str, Any]]:
    """Feast's names of each view with store: REDIS (empty: Feast's are the declaration's)."""
    views: dict[str, dict[str, Any]] = {}
    for view in message.view:
        where = f"view '{view.name}'"
        if view.store != fp.FeatureView.REDIS:
            if view.feast_name or any(feature.feast_name for feature in view.feature):
                raise ConfigError(
                    f"{path}: {where}: feast_name is for views with store: REDIS only"
                )
            continue
        if view.HasField("source"):
            raise ConfigError(
                f"{path}: {where}: store: REDIS reads its rows from Redis; remove its source "
                "(a snapshot file is for embedded views)"
            )
        names: dict[str, Any] = {}
        if view.feast_name:
            names["name"] = view.feast_name
        if any(feature.feast_name for feature in view.feature):
            names["features"] = [feature.feast_name or feature.name for feature in view.feature]
        views[view.name] = names
    return views


def _redis(path: Path, message: fp.ModelFeatures) -> RedisSettings | None:
    """The Redis settings, when some view is in Redis; ConfigError naming the field."""
    views = _redis_views(path, message)
    if not views:
        if message.HasField("redis"):
            raise ConfigError(
                f"{path}: redis is set but no view has store: REDIS; remove it or set "
                "store: REDIS on the views Feast materializes"
            )
        return None
    redis = message.redis
    if not redis.url:
        raise ConfigError(
            f"{path}: view(s) {sorted(views)} have store: REDIS but redis.url is not set "
            '(redis { url: "redis://host:6379/0" project: "..." })'
        )
    if not redis.url.startswith(("redis://", "rediss://", "redis+unix://")):
        raise ConfigError(
            f"{path}: redis.url must be redis://[:password@]host:port[/db], got '{redis.url}'"
        )
    if not redis.project:
        raise ConfigError(
            f"{path}: redis.project is not set (the Feast project, feature_store.yaml `project`)"
        )
    version = redis.entity_key_serialization_version or DEFAULT_SERIALIZATION_VERSION
    if version not in (2, 3):
        raise ConfigError(
            f"{path}: redis.entity_key_serialization_version must be 2 or 3 (Feast's default "
            f"since 0.38 is 3), got {version}"
        )
    return RedisSettings(
        url=redis.url,
        project=redis.project,
        timeout_ms=redis.timeout_ms or DEFAULT_REDIS_TIMEOUT_MS,
        serialization_version=version,
        views=views,
    )


def _datatype(path: Path, where: str, value: int) -> str:
    name = mc.DataType.Name(value)
    datatype = BY_CONFIG_NAME.get(name)
    if datatype is None:
        raise ConfigError(f"{path}: {where}: data_type is not set (TYPE_INT64, TYPE_FP32, ...)")
    return datatype.name


def _request_input(path: Path, item: fp.RequestInput) -> RequestInputSpec:
    where = f"request_input '{item.name}'"
    if not item.name:
        raise ConfigError(f"{path}: a request_input has no name")
    if item.columns < 1:
        raise ConfigError(
            f"{path}: {where}: columns must be >= 1 (1 for a key), got {item.columns}"
        )
    return RequestInputSpec(item.name, _datatype(path, where, item.data_type), int(item.columns))


def _view(path: Path, view: fp.FeatureView) -> dict[str, Any]:
    where = f"view '{view.name}'"
    if not view.name:
        raise ConfigError(f"{path}: a view has no name")
    if view.max_age_seconds < 0 or not math.isfinite(view.max_age_seconds):
        raise ConfigError(
            f"{path}: {where}: max_age_seconds must be >= 0 (0: no maximum age), got "
            f"{view.max_age_seconds}"
        )
    return {
        "name": view.name,
        "key": list(view.key),
        "features": [_feature(path, where, feature) for feature in view.feature],
        "max_age_s": view.max_age_seconds or None,
        "on_missing": "reject" if view.on_missing == fp.FeatureView.REJECT else "default",
    }


def _feature(path: Path, view_where: str, feature: fp.Feature) -> dict[str, Any]:
    where = f"{view_where} feature '{feature.name}'"
    if not feature.name:
        raise ConfigError(f"{path}: {view_where}: a feature has no name")
    datatype = _datatype(path, where, feature.data_type)
    default: float | int = feature.default_value
    if datatype in _INTEGER_FEATURES:
        if not float(default).is_integer():
            raise ConfigError(
                f"{path}: {where}: default_value {default} is not an integer, and the feature "
                f"is {datatype}"
            )
        default = int(default)
    return {"name": feature.name, "datatype": datatype, "default": default}


def _segment(path: Path, model_input: str, segment: fp.Segment) -> dict[str, str]:
    which = segment.WhichOneof("source")
    if which is None:
        raise ConfigError(
            f"{path}: assembly '{model_input}': a segment names neither a request_input nor a view"
        )
    return {which: getattr(segment, which)}


def _source(path: Path, model_dir: Path, view: fp.FeatureView) -> SnapshotSource:
    where = f"view '{view.name}' source"
    source = view.source
    if not source.path:
        raise ConfigError(
            f"{path}: {where}: path is not set (the snapshot file, relative to {model_dir})"
        )
    file = model_dir / source.path
    snapshot_format = source.format.lower() or SNAPSHOT_FORMATS.get(file.suffix.lower(), "")
    if snapshot_format not in SNAPSHOT_FORMATS.values():
        raise ConfigError(
            f"{path}: {where}: cannot tell the format of '{source.path}'; name it .parquet, .csv "
            'or .npz, or set format to "parquet", "csv" or "npz"'
        )
    if source.key_column and len(source.key_column) != len(view.key):
        raise ConfigError(
            f"{path}: {where}: key_column names {len(source.key_column)} column(s) but the view's "
            f"key has {len(view.key)} part(s) {list(view.key)}"
        )
    if view.max_age_seconds and not source.event_time_column:
        raise ConfigError(
            f"{path}: view '{view.name}' has max_age_seconds but its source has no "
            "event_time_column; without event times no row can be judged stale"
        )
    if source.event_time_unit and not source.event_time_column:
        raise ConfigError(f"{path}: {where}: event_time_unit is set without event_time_column")
    return SnapshotSource(
        view=view.name,
        path=file,
        format=snapshot_format,
        key_columns=tuple(source.key_column) or tuple(view.key),
        feature_columns=tuple(feature.column or feature.name for feature in view.feature),
        event_time_column=source.event_time_column or None,
        event_time_unit=_TIME_UNITS.get(source.event_time_unit),
    )


def _poll_interval(path: Path, message: fp.ModelFeatures) -> float | None:
    if message.disable_polling:
        return None
    interval = message.poll_interval_seconds
    if interval < 0 or not math.isfinite(interval):
        raise ConfigError(
            f"{path}: poll_interval_seconds must be > 0 (0: the default "
            f"{DEFAULT_POLL_INTERVAL_S:g} s; disable_polling: true to turn it off), got {interval}"
        )
    return interval or DEFAULT_POLL_INTERVAL_S
