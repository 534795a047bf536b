"""Reads a version's reference dataset for drift profiles: Parquet, CSV, NPZ or NPY.

Layout (docs/drift.md): per tensor, a 2-D array of rows x columns of its feature axis.
- Parquet / CSV: a column `name` for a one-column tensor (in Parquet also a list column holding
  each row's values), or columns `name[0]`, `name[1]`, ... for column j of tensor `name`.
- NPZ: an array per tensor, keyed by its name, of shape [rows] or [rows, columns...].
- NPY: one array, the model's only input.
Outputs may be left out: they are then computed by running the model on the reference inputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ferroserve.errors import ConfigError

Array = npt.NDArray[np.generic]
MAX_REFERENCE_ROWS = 10_000_000
"""Profiling is O(rows log rows) per column: beyond this, a sample is what users should give."""


def read_reference(path: Path, wanted: Sequence[str]) -> dict[str, Array]:
    """The `wanted` tensors found in the file at `path`, each [rows, columns]; tensors the file
    lacks are left out. ConfigError naming the file and what is wrong (unreadable, tensors of
    different row counts, a non-numeric column, gaps in `name[j]` columns)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq", ".csv"):
            found = _table(path, wanted, suffix)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                found = {name: np.asarray(archive[name]) for name in wanted if name in archive}
        elif suffix == ".npy":
            found = {wanted[0]: np.load(path, allow_pickle=False)} if wanted else {}
        else:
            raise ConfigError(
                f"{path}: a reference dataset is .parquet, .csv, .npz or .npy, not '{suffix}'"
            )
    except ConfigError:
        raise
    except Exception as error:  # pyarrow and numpy raise many types for a bad file
        raise ConfigError(f"{path}: cannot read the reference dataset: {error}") from error
    arrays = {name: _two_dimensional(path, name, array) for name, array in found.items()}
    rows = {name: array.shape[0] for name, array in arrays.items()}
    if len(set(rows.values())) > 1:
        raise ConfigError(f"{path}: tensors have different row counts: {rows}")
    if any(count > MAX_REFERENCE_ROWS for count in rows.values()):
        raise ConfigError(
            f"{path}: more than {MAX_REFERENCE_ROWS:,} reference rows; give a random sample"
        )
    if any(count == 0 for count in rows.values()):
        raise ConfigError(f"{path}: the reference dataset has no rows")
    return arrays


def _two_dimensional(path: Path, name: str, array: Array) -> Array:
    if array.dtype == np.bool_:
        array = array.astype(np.int64)
    if not (np.issubdtype(array.dtype, np.number)):
        raise ConfigError(
            f"{path}: tensor '{name}' has values of type {array.dtype}; drift profiles are "
            "numeric (BYTES tensors are not monitored)"
        )
    if array.ndim == 0:
        raise ConfigError(f"{path}: tensor '{name}' is a scalar, not rows of values")
    return array.reshape(array.shape[0], -1)


_COLUMN = re.compile(r"^(?P<name>.+)\[(?P<index>\d+)\]$")


def _table(path: Path, wanted: Sequence[str], suffix: str) -> dict[str, Array]:
    table = pacsv.read_csv(path) if suffix == ".csv" else pq.read_table(path)
    indexed: dict[str, dict[int, str]] = {}
    for column in table.column_names:
        match = _COLUMN.match(column)
        if match:
            indexed.setdefault(match["name"], {})[int(match["index"])] = column
    found: dict[str, Array] = {}
    for name in wanted:
        if name in table.column_names:
            column = table.column(name)
            if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
                found[name] = np.array(column.to_pylist())
            else:
                found[name] = _numeric(path, name, column.to_numpy())
        elif name in indexed:
            positions = indexed[name]
            missing = sorted(set(range(max(positions) + 1)) - set(positions))
            if missing:
                raise ConfigError(
                    f"{path}: tensor '{name}' has columns up to {name}[{max(positions)}] but "
                    f"not {name}[{missing[0]}]"
                )
            found[name] = np.column_stack(
                [
                    _numeric(path, positions[j], table.column(positions[j]).to_numpy())
                    for j in range(len(positions))
                ]
            )
    return found


def _numeric(path: Path, column: str, values: Array) -> Array:
    if values.dtype == np.bool_:
        return values.astype(np.int64)
    if not np.issubdtype(values.dtype, np.number):
        raise ConfigError(
            f"{path}: column '{column}' is not numeric ({values.dtype}); drift profiles are "
            "numeric (fill missing values with NaN, not empty strings)"
        )
    return values
