"""Reads a model's `drift.pbtxt` (protobuf text format against `ModelDrift`,
protos/ferroserve/drift.proto): which tensors to monitor, the reference dataset, bins, windows
and thresholds. Checks what the file alone can tell; whether the tensors exist and fit is
checked against the model when the tracker is built (tracking.py)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from ferroserve._proto import drift_pb2 as dp
from ferroserve.errors import ConfigError

DRIFT_FILE = "drift.pbtxt"
REFERENCE_NAMES = (
    "drift_reference.parquet",
    "drift_reference.csv",
    "drift_reference.npz",
    "drift_reference.npy",
)
"""Looked for in the version folder, in this order, when the file names no reference."""
DEFAULT_BINS = 10
DEFAULT_TOP_K = 20
DEFAULT_CATEGORICAL_MAX_DISTINCT = 20
DEFAULT_WINDOW_ROWS = 10_000
"""Five times the default `min_rows` (2000): a closed window is judged with room to spare."""
DEFAULT_EXPORT_TOP_COLUMNS = 20
MAX_BINS = 1000
MAX_TOP_K = 10_000

_KINDS = {dp.AUTO: "auto", dp.NUMERIC: "numeric", dp.CATEGORICAL: "categorical"}
# Thresholds whose 0 takes the statistic out of the vote (a threshold of 0 would flag anything).
_OPTIONAL_VOTES = ("jensen_shannon", "wasserstein", "kolmogorov_smirnov", "chi_squared_p_value")


@dataclass(slots=True, frozen=True)
class TensorChoice:
    """One tensor the file names."""

    name: str
    kind: str
    """"auto", "numeric" or "categorical"."""
    columns: tuple[int, ...]
    """Positions on the feature axis; empty: all."""


@dataclass(slots=True, frozen=True)
class DriftDeclaration:
    """The checked contents of one drift.pbtxt."""

    path: Path
    reference: str
    """Relative to the version folder; empty: the first of REFERENCE_NAMES found there."""
    tensors: tuple[TensorChoice, ...]
    """Empty: every monitorable input and output."""
    bins: int
    top_k: int
    categorical_max_distinct: int
    window_rows: int | None
    window_seconds: float | None
    sample_every: int
    thresholds: dict[str, float | int | None]
    """The fields the file sets, as `_core.DriftTracker.report` takes them (None: not voted)."""
    export_top_columns: int

    @property
    def thresholds_json(self) -> str:
        return json.dumps(self.thresholds)

    @property
    def window_policy(self) -> str:
        """E.g. "10000 rows" or "300 s"."""
        if self.window_seconds is not None:
            return f"{self.window_seconds:g} s"
        return f"{self.window_rows} rows"


def read_declaration(model_dir: Path) -> DriftDeclaration | None:
    """The model's drift declaration, or None when it has no drift.pbtxt. ConfigError naming
    the file and the field when it is malformed."""
    path = model_dir / DRIFT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from error
    message = dp.ModelDrift()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"{path}: {error}") from error
    return _checked(path, message)


def _checked(path: Path, message: dp.ModelDrift) -> DriftDeclaration:
    def fail(what: str) -> ConfigError:
        return ConfigError(f"{path}: {what}")

    reference = message.reference
    if reference and (Path(reference).is_absolute() or ".." in Path(reference).parts):
        raise fail(f"reference '{reference}' must be a path inside the version folder")
    tensors = []
    seen: set[str] = set()
    for tensor in message.tensor:
        if not tensor.name:
            raise fail("a tensor without a name")
        if tensor.name in seen:
            raise fail(f"tensor '{tensor.name}' is named twice")
        seen.add(tensor.name)
        if len(set(tensor.columns)) != len(tensor.columns):
            raise fail(f"tensor '{tensor.name}': a column is named twice")
        tensors.append(TensorChoice(tensor.name, _KINDS[tensor.kind], tuple(tensor.columns)))
    bins = message.bins or DEFAULT_BINS
    if bins > MAX_BINS:
        raise fail(f"bins {bins} is more than {MAX_BINS}")
    top_k = message.top_k or DEFAULT_TOP_K
    if top_k > MAX_TOP_K:
        raise fail(f"top_k {top_k} is more than {MAX_TOP_K}")
    window_rows, window_seconds = _window(path, message.window)
    return DriftDeclaration(
        path=path,
        reference=reference,
        tensors=tuple(tensors),
        bins=bins,
        top_k=top_k,
        categorical_max_distinct=(
            message.categorical_max_distinct or DEFAULT_CATEGORICAL_MAX_DISTINCT
        ),
        window_rows=window_rows,
        window_seconds=window_seconds,
        sample_every=message.sample_every or 1,
        thresholds=_thresholds(path, message.thresholds),
        export_top_columns=message.export_top_columns or DEFAULT_EXPORT_TOP_COLUMNS,
    )


def _window(path: Path, window: dp.Window) -> tuple[int | None, float | None]:
    """(rows, seconds): one of them set."""
    policy = window.WhichOneof("policy")
    if policy == "seconds":
        if not (math.isfinite(window.seconds) and window.seconds > 0):
            raise ConfigError(f"{path}: window.seconds must be positive, not {window.seconds}")
        return None, window.seconds
    if policy == "rows":
        if window.rows == 0:
            raise ConfigError(f"{path}: window.rows must be positive")
        return window.rows, None
    return DEFAULT_WINDOW_ROWS, None


def _thresholds(path: Path, thresholds: dp.Thresholds) -> dict[str, float | int | None]:
    """The thresholds the file sets; ConfigError for a value that cannot be meant."""
    chosen: dict[str, float | int | None] = {}
    for name in ("psi_warning", "psi_drift", *_OPTIONAL_VOTES, "drift_share", "warning_share"):
        if not thresholds.HasField(name):
            continue
        value = float(getattr(thresholds, name))
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{path}: thresholds.{name} must be a number >= 0, not {value}")
        chosen[name] = None if name in _OPTIONAL_VOTES and value == 0 else value
    for share in ("drift_share", "warning_share"):
        fraction = chosen.get(share)
        if fraction is not None and fraction > 1:
            raise ConfigError(
                f"{path}: thresholds.{share} is a share of columns, at most 1, not {fraction}"
            )
    if thresholds.HasField("min_rows"):
        chosen["min_rows"] = int(thresholds.min_rows)
    warning = chosen.get("psi_warning", 0.1)
    drift = chosen.get("psi_drift", 0.2)
    if warning is not None and drift is not None and warning > drift:
        raise ConfigError(
            f"{path}: thresholds.psi_warning ({warning}) is above psi_drift ({drift})"
        )
    return chosen
