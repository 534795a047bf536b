"""Reads one view's snapshot file (Parquet or CSV through pyarrow, NPZ through numpy) into the
columns `_core.FeatureStore.build` takes: keys as int64 arrays or bytes, features converted to
their declared dtype, event times as int64 Unix microseconds. Every error names the file and
the column. Called by the store (store.py) on load and on every reload, off the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ferroserve.errors import ConfigError
from ferroserve.features.declaration import SnapshotSource

FEATURE_DTYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "INT64": np.dtype(np.int64),
    "INT32": np.dtype(np.int32),
}
_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass(slots=True, frozen=True)
class Column:
    """A column the store needs: its name in the declaration and its v2 datatype."""

    name: str
    datatype: str


@dataclass(slots=True, frozen=True)
class SnapshotColumns:
    """One view's snapshot, ready for `FeatureStore.build`."""

    keys: dict[str, Any]
    """By key part name: int64 arrays (INT64 parts) or object arrays of bytes (BYTES parts)."""
    features: dict[str, np.ndarray]
    """By feature name, C-contiguous, of exactly the feature's dtype."""
    event_times_us: np.ndarray | None
    rows: int


def read_snapshot(
    source: SnapshotSource, key: Sequence[Column], features: Sequence[Column]
) -> SnapshotColumns:
    """Reads `source` for a view whose key parts are `key` and whose features are `features`
    (both in declaration order, as the plan reports them). Raises ConfigError naming the file
    and the column."""
    if len(key) != len(source.key_columns) or len(features) != len(source.feature_columns):
        raise ConfigError(
            f"view '{source.view}': the plan has {len(key)} key part(s) and {len(features)} "
            f"feature(s) but the source maps {len(source.key_columns)} and "
            f"{len(source.feature_columns)}. This is a bug."
        )
    if not source.path.is_file():
        raise ConfigError(f"view '{source.view}': snapshot file {source.path} does not exist")
    wanted = [*source.key_columns, *source.feature_columns]
    if source.event_time_column:
        wanted.append(source.event_time_column)
    table = _read_table(source, key, wanted)
    reader = _ColumnReader(source, table)
    keys = {
        part.name: reader.key(column, part.datatype)
        for part, column in zip(key, source.key_columns, strict=True)
    }
    values = {
        feature.name: reader.feature(column, feature.datatype)
        for feature, column in zip(features, source.feature_columns, strict=True)
    }
    times = None
    if source.event_time_column:
        times = reader.event_times(source.event_time_column, source.event_time_unit)
    return SnapshotColumns(keys, values, times, reader.rows)


def _read_table(source: SnapshotSource, key: Sequence[Column], wanted: list[str]) -> pa.Table:
    """The file as an Arrow table holding `wanted` (each column once)."""
    unique = list(dict.fromkeys(wanted))
    try:
        if source.format == "npz":
            return _read_npz(source, unique)
        available = _column_names(source)
        missing = [name for name in unique if name not in available]
        if missing:
            raise ConfigError(
                f"snapshot {source.path} (view '{source.view}') has no column(s) {missing}; it "
                f"has {available}"
            )
        if source.format == "parquet":
            return pq.read_table(source.path, columns=unique)
        # CSV infers types; a BYTES key of digits must stay text, not become integers.
        text_keys = {
            column: pa.binary()
            for part, column in zip(key, source.key_columns, strict=True)
            if part.datatype == "BYTES"
        }
        return pa_csv.read_csv(
            source.path,
            convert_options=pa_csv.ConvertOptions(include_columns=unique, column_types=text_keys),
        )
    except (pa.ArrowException, OSError, ValueError) as error:
        raise ConfigError(
            f"snapshot {source.path} (view '{source.view}') cannot be read as {source.format}: "
            f"{error}"
        ) from error


def _column_names(source: SnapshotSource) -> list[str]:
    if source.format == "parquet":
        return list(pq.read_schema(source.path).names)
    # The header only: reading one small block is enough to name the columns.
    with pa_csv.open_csv(source.path) as reader:
        return list(reader.schema.names)


def _read_npz(source: SnapshotSource, wanted: list[str]) -> pa.Table:
    # allow_pickle stays off: a snapshot is data, and a pickled object array could run code.
    with np.load(source.path, allow_pickle=False) as archive:
        missing = [name for name in wanted if name not in archive.files]
        if missing:
            raise ConfigError(
                f"snapshot {source.path} (view '{source.view}') has no array(s) {missing}; it "
                f"has {sorted(archive.files)}"
            )
        arrays = {name: archive[name] for name in wanted}
    lengths = {name: array.shape for name, array in arrays.items()}
    if (
        any(len(shape) != 1 for shape in lengths.values())
        or len({shape[0] for shape in lengths.values()}) > 1
    ):
        raise ConfigError(
            f"snapshot {source.path} (view '{source.view}'): every array must be 1-D and of one "
            f"length (one element per row); shapes are {lengths}"
        )
    return pa.table({name: _npz_column(array) for name, array in arrays.items()})


def _npz_column(array: np.ndarray) -> pa.Array:
    if array.dtype.kind == "S":
        return pa.array([bytes(item) for item in array], type=pa.binary())
    if array.dtype.kind == "U":
        return pa.array([str(item) for item in array], type=pa.string())
    return pa.array(array)


class _ColumnReader:
    """Converts the table's columns, each error naming the file and the column."""

    def __init__(self, source: SnapshotSource, table: pa.Table) -> None:
        self._source = source
        self._table = table
        self.rows = table.num_rows

    def _where(self, column: str) -> str:
        return f"snapshot {self._source.path} (view '{self._source.view}') column '{column}'"

    def _column(self, column: str) -> pa.Array:
        values = self._table.column(column).combine_chunks()
        if values.null_count:
            raise ConfigError(
                f"{self._where(column)} has {values.null_count} null value(s); every row needs "
                "a value (the store keeps no per-cell missing marker: drop the row, or fill it)"
            )
        return values

    def key(self, column: str, datatype: str) -> Any:
        values = self._column(column)
        kind = values.type
        if datatype == "INT64":
            if not pa.types.is_integer(kind):
                raise ConfigError(
                    f"{self._where(column)} has type {kind}, but the key is INT64; store integer "
                    "keys as integers"
                )
            return self._integers(column, values, np.dtype(np.int64))
        if datatype == "BYTES":
            if not _is_text(kind):
                raise ConfigError(
                    f"{self._where(column)} has type {kind}, but the key is BYTES; store string "
                    "keys as strings or binary"
                )
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                # The store matches keys as bytes: text keys are their UTF-8 bytes.
                values = values.cast(pa.large_binary())
            keys = np.empty(len(values), dtype=object)
            keys[:] = values.to_pylist()
            return keys
        raise ConfigError(f"{self._where(column)}: a key of type {datatype} cannot be stored")

    def feature(self, column: str, datatype: str) -> np.ndarray:
        dtype = FEATURE_DTYPES.get(datatype)
        if dtype is None:
            raise ConfigError(
                f"{self._where(column)}: features of type {datatype} cannot be stored"
            )
        values = self._column(column)
        kind = values.type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise ConfigError(
                f"{self._where(column)} has type {kind}; feature of type {datatype} needs numbers"
            )
        if dtype.kind == "i":
            return self._integers(column, values, dtype)
        return np.ascontiguousarray(values.to_numpy(zero_copy_only=False), dtype=dtype)

    def _integers(self, column: str, values: pa.Array, dtype: np.dtype[Any]) -> np.ndarray:
        """`values` as `dtype` integers, refusing what would not survive the conversion
        (fractions, NaN, values out of range) rather than storing something else."""
        array = values.to_numpy(zero_copy_only=False)
        integral = np.isfinite(array) & (array == np.round(array))
        if array.dtype.kind == "f" and not np.all(integral):
            raise ConfigError(
                f"{self._where(column)} holds non-integral values; the column is "
                f"stored as {dtype.name}"
            )
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ConfigError(
                f"{self._where(column)} holds values outside {dtype.name}'s range "
                f"[{info.min}, {info.max}]"
            )
        return np.ascontiguousarray(array, dtype=dtype)

    def event_times(self, column: str, unit: str | None) -> np.ndarray:
        values = self._column(column)
        kind = values.type
        if pa.types.is_timestamp(kind):
            # Arrow stores timestamps as UTC counts whatever their time zone; only the unit moves.
            micros = pc.cast(values, pa.timestamp("us", tz=kind.tz), safe=False)
            return np.ascontiguousarray(micros.cast(pa.int64()).to_numpy(), dtype=np.int64)
        if pa.types.is_date(kind):
            raise ConfigError(
                f"{self._where(column)} holds dates; event times need a time of day "
                "(a timestamp column, or integers with event_time_unit)"
            )
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise ConfigError(
                f"{self._where(column)} has type {kind}; event times are timestamps or numbers"
            )
        if unit is None:
            raise ConfigError(
                f"{self._where(column)} holds plain numbers; set the source's event_time_unit "
                "(SECONDS, MILLISECONDS or MICROSECONDS since the Unix epoch)"
            )
        counts = values.to_numpy(zero_copy_only=False)
        scale = _MICROS_PER_UNIT[unit]
        if counts.dtype.kind == "f":
            return np.ascontiguousarray(np.round(counts * scale), dtype=np.int64)
        return np.ascontiguousarray(counts.astype(np.int64) * scale, dtype=np.int64)


def _is_text(kind: pa.DataType) -> bool:
    return any(
        check(kind)
        for check in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_binary,
            pa.types.is_large_binary,
        )
    )
