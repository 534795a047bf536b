"""Builds a model version's drift tracker at load, off the hot path: the monitored tensors and
columns, their reference profiles (quantile bins for numeric columns, top-K for categorical
ones, computed in Rust from the reference dataset), and `ModelDrift`, which the executor counts
into and the exporter, the DriftService and `ferroserve drift` read.

The tracker indexes the executor's tensors: the model inputs in the executor's order, then the
outputs. Looked-up features are model inputs, so they are monitored like request inputs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferroserve import _core
from ferroserve.config import TensorSpec
from ferroserve.drift.declaration import REFERENCE_NAMES, DriftDeclaration, TensorChoice
from ferroserve.drift.reference import Array, read_reference
from ferroserve.errors import ConfigError

log = logging.getLogger(__name__)

NUMERIC_DATATYPES = frozenset(
    {"FP32", "BF16", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "BOOL"}
)
"""What the Rust tracker counts (FP16 and UINT64 are not supported, BYTES is not numeric)."""
INTEGER_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "BOOL"}
)
REFERENCE_CHUNK_ROWS = 4096
"""Rows per call when reference outputs are computed for a model without max_batch_size."""

RunOutputs = Callable[[dict[str, Array]], list[Array | None]]
"""Runs the model once on inputs by name; its outputs in order (None for a BYTES output)."""


@dataclass(slots=True, frozen=True)
class TensorPlan:
    """One tensor the tracker sees."""

    index: int
    """Its position among the executor's tensors (inputs, then outputs)."""
    spec: TensorSpec
    is_output: bool


class ModelDrift:
    """A model version's drift tracking: the Rust tracker and how to judge its windows."""

    def __init__(self, model: str, declaration: DriftDeclaration, tracker: Any) -> None:
        self.model = model
        self.declaration = declaration
        self.tracker: _core.DriftTracker = tracker

    def report(self) -> dict[str, Any]:
        """The cumulative, current and last closed windows with their counts and reports
        (`_core.DriftTracker.report`, parsed). Blocks for a moment (Rust, GIL released): call
        it from a worker thread."""
        report: dict[str, Any] = json.loads(self.tracker.report(self.declaration.thresholds_json))
        return report

    def profiles(self) -> list[dict[str, Any]]:
        """Per column: {"numeric": {...}} or {"categorical": {...}} (the crate's profile)."""
        profiles: list[dict[str, Any]] = json.loads(self.tracker.profiles())
        return profiles

    def reset(self) -> None:
        self.tracker.reset()


def build_drift(
    model: str,
    version_dir: Path,
    declaration: DriftDeclaration,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    max_batch_size: int,
    instances: int,
    run: RunOutputs,
) -> ModelDrift:
    """The tracker of one version. ConfigError naming the file and what to fix: no reference
    dataset, a tensor the model lacks or that cannot be monitored, a reference that does not
    fit the model."""
    tensors = _plans(model, declaration, inputs, outputs, max_batch_size > 0)
    reference_path = _reference_path(model, declaration, version_dir)
    wanted = [spec.name for spec in inputs] + [plan.spec.name for plan in tensors if plan.is_output]
    reference = read_reference(reference_path, wanted)
    for spec in (*inputs, *outputs):
        if spec.name in reference:
            _check_width(model, reference_path, spec, reference[spec.name], max_batch_size > 0)
    missing_outputs = [
        plan for plan in tensors if plan.is_output and plan.spec.name not in reference
    ]
    if missing_outputs:
        computed = _reference_outputs(
            model, reference_path, reference, inputs, outputs, max_batch_size, run
        )
        for plan in missing_outputs:
            if plan.spec.name in computed:
                reference[plan.spec.name] = computed[plan.spec.name]
    columns = _columns(model, reference_path, declaration, tensors, reference)
    datatypes = [spec.datatype.name for spec in (*inputs, *outputs)]
    try:
        tracker = _core.DriftTracker(
            columns,
            datatypes,
            instances=instances,
            window_rows=declaration.window_rows,
            window_seconds=declaration.window_seconds,
            sample_every=declaration.sample_every,
        )
    except _core.FerroserveError as error:
        raise ConfigError(f"model '{model}': {declaration.path}: {error}") from error
    log.info(
        "model '%s': drift monitored on %d column(s) against %s, window %s",
        model,
        len(columns),
        reference_path,
        declaration.window_policy,
    )
    return ModelDrift(model, declaration, tracker)


def _per_row_dims(spec: TensorSpec, batches: bool) -> tuple[int, ...] | None:
    """A row's dims as the executor shows the tracker: `[rows, columns]` tensors only."""
    dims = spec.model_dims
    if not batches and len(dims) == 2:
        dims = dims[1:]
    return dims if len(dims) <= 1 else None


def _plans(
    model: str,
    declaration: DriftDeclaration,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    batches: bool,
) -> list[TensorPlan]:
    everything = [(spec, False) for spec in inputs] + [(spec, True) for spec in outputs]
    by_name = {
        spec.name: (index, spec, is_output) for index, (spec, is_output) in enumerate(everything)
    }
    chosen: list[tuple[int, TensorSpec, bool]]
    if declaration.tensors:
        chosen = []
        for choice in declaration.tensors:
            if choice.name not in by_name:
                raise ConfigError(
                    f"model '{model}': {declaration.path}: tensor '{choice.name}' is not an "
                    f"input or output of the model (it has {', '.join(by_name)})"
                )
            chosen.append(by_name[choice.name])
    else:
        chosen = [(index, spec, is_output) for index, (spec, is_output) in enumerate(everything)]
    plans = []
    for index, spec, is_output in chosen:
        row = _per_row_dims(spec, batches)
        problem = None
        if spec.datatype.name not in NUMERIC_DATATYPES:
            problem = f"its datatype {spec.datatype.name} is not monitored"
        elif row is None:
            problem = (
                f"its dims {list(spec.model_dims)} are not one row of values (drift monitors "
                "[batch, columns] tensors)"
            )
        if problem is not None:
            if declaration.tensors:
                raise ConfigError(
                    f"model '{model}': {declaration.path}: tensor '{spec.name}': {problem}"
                )
            log.info("model '%s': drift skips tensor '%s': %s", model, spec.name, problem)
            continue
        plans.append(TensorPlan(index, spec, is_output))
    if not plans:
        raise ConfigError(
            f"model '{model}': {declaration.path}: no tensor of the model can be monitored "
            f"(numeric [batch, columns] tensors of {', '.join(sorted(NUMERIC_DATATYPES))})"
        )
    return plans


def _check_width(model: str, path: Path, spec: TensorSpec, values: Array, batches: bool) -> None:
    """The reference's columns per row must be the tensor's (where its dims are fixed)."""
    dims = spec.dims if batches else spec.dims[1:] if len(spec.dims) == 2 else spec.dims
    if any(d < 0 for d in dims):
        return
    width = int(np.prod(dims)) if dims else 1
    if values.shape[1] != width:
        raise ConfigError(
            f"model '{model}': {path}: tensor '{spec.name}' has {values.shape[1]} reference "
            f"column(s), the model has {width} (dims {list(spec.dims)})"
        )


def _reference_path(model: str, declaration: DriftDeclaration, version_dir: Path) -> Path:
    if declaration.reference:
        path = version_dir / declaration.reference
        if not path.is_file():
            raise ConfigError(
                f"model '{model}': {declaration.path} names reference '{declaration.reference}', "
                f"which is not a file in {version_dir}"
            )
        return path
    for name in REFERENCE_NAMES:
        if (version_dir / name).is_file():
            return version_dir / name
    raise ConfigError(
        f"model '{model}': {declaration.path} monitors drift, which needs a reference dataset: "
        f"put one of {', '.join(REFERENCE_NAMES)} in {version_dir} (or name it in 'reference')"
    )


def _reference_outputs(
    model: str,
    path: Path,
    reference: dict[str, Array],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    max_batch_size: int,
    run: RunOutputs,
) -> dict[str, Array]:
    """The outputs the model gives on the reference inputs, for outputs the file lacks."""
    absent = [spec.name for spec in inputs if spec.name not in reference]
    if absent:
        raise ConfigError(
            f"model '{model}': {path} has no output columns, and they cannot be computed "
            f"without every model input; it lacks {', '.join(absent)}"
        )
    rows = next(iter(reference.values())).shape[0]
    if max_batch_size > 0:
        chunk = max_batch_size
    elif all(spec.dims and spec.dims[0] == -1 for spec in inputs):
        chunk = REFERENCE_CHUNK_ROWS
    elif all(spec.dims and spec.dims[0] == 1 for spec in inputs):
        chunk = 1  # one row per call, as clients send it
    else:
        raise ConfigError(
            f"model '{model}': {path} has no output columns, and this model (no batch dim, "
            "inputs not [1, ...] or [-1, ...]) cannot be run on its rows; add the outputs to "
            "the reference dataset"
        )
    parts: list[list[Array]] = [[] for _ in outputs]
    for start in range(0, rows, chunk):
        feeds = {
            spec.name: _feed(spec, reference[spec.name][start : start + chunk], max_batch_size)
            for spec in inputs
        }
        try:
            results = run(feeds)
        except Exception as error:
            raise ConfigError(
                f"model '{model}': running the model on the reference inputs of {path} "
                f"(rows {start}..{min(rows, start + chunk)}) failed: {error}"
            ) from error
        for part, result in zip(parts, results, strict=True):
            if result is not None:
                part.append(result.reshape(result.shape[0], -1))
    return {
        spec.name: np.concatenate(part) for spec, part in zip(outputs, parts, strict=True) if part
    }


def _feed(spec: TensorSpec, rows: Array, max_batch_size: int) -> Array:
    """Reference rows as the input's dtype and client shape."""
    dtype = spec.datatype.numpy
    if dtype is None:
        raise ConfigError(f"input '{spec.name}' is BYTES: its reference cannot be fed")
    dims = spec.dims if max_batch_size > 0 else spec.dims[1:]
    shape = [rows.shape[0], *dims]
    return np.ascontiguousarray(rows.astype(dtype).reshape(shape))


def _columns(
    model: str,
    path: Path,
    declaration: DriftDeclaration,
    tensors: Sequence[TensorPlan],
    reference: dict[str, Array],
) -> list[tuple[str, int, int, str, str]]:
    choices = {choice.name: choice for choice in declaration.tensors}
    columns = []
    for plan in tensors:
        name = plan.spec.name
        values = reference.get(name)
        if values is None:
            raise ConfigError(
                f"model '{model}': {path} has no reference for tensor '{name}': add a column "
                f"'{name}' (or '{name}[0]', '{name}[1]', ...) or an array '{name}'"
            )
        width = values.shape[1]
        choice = choices.get(name, TensorChoice(name, "auto", ()))
        positions = choice.columns or tuple(range(width))
        for j in positions:
            if j >= width:
                raise ConfigError(
                    f"model '{model}': {declaration.path}: tensor '{name}' column {j} is past "
                    f"its {width} column(s)"
                )
            column = f"{name}[{j}]" if width > 1 else name
            profile = _profile(model, path, declaration, plan, choice.kind, column, values[:, j])
            columns.append((column, plan.index, j, plan.spec.datatype.name, profile))
    return columns


def _profile(
    model: str,
    path: Path,
    declaration: DriftDeclaration,
    plan: TensorPlan,
    kind: str,
    column: str,
    values: Array,
) -> str:
    integer = plan.spec.datatype.name in INTEGER_DATATYPES
    if kind == "auto":
        few = integer and len(np.unique(values)) <= declaration.categorical_max_distinct
        kind = "categorical" if few else "numeric"
    try:
        if kind == "categorical":
            if not integer:
                raise ConfigError(
                    f"model '{model}': {declaration.path}: column '{column}' is "
                    f"{plan.spec.datatype.name}; CATEGORICAL needs an integer or BOOL tensor"
                )
            return _core.drift_categorical_profile(
                np.ascontiguousarray(values, dtype=np.int64), declaration.top_k
            )
        return _core.drift_numeric_profile(
            column, np.ascontiguousarray(values, dtype=np.float64), declaration.bins
        )
    except _core.FerroserveError as error:
        raise ConfigError(f"model '{model}': {path}: column '{column}': {error}") from error
