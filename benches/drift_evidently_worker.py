"""Evidently's side of `drift_evidently.py`, run in Evidently's own venv: reads a case the
bench wrote (`manifest.json`, the reference and windows as raw arrays), times
`Report([DataDriftPreset()]).run` per window (and, with `--stattests`, the statistics it picks
on their own), and writes each column's method, threshold, score and flag to `evidently.json`.

    .venv-evidently/bin/python benches/drift_evidently_worker.py DIR [--warmup] [--stattests]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


class EvidentlyWorker:
    """A case's data as Evidently sees it: pandas frames, the reference wrapped once."""

    def __init__(self, directory: Path) -> None:
        started = time.perf_counter()
        self.directory = directory
        self.pandas: Any = importlib.import_module("pandas")
        self.evidently: Any = importlib.import_module("evidently")
        self.presets: Any = importlib.import_module("evidently.presets")
        registry = "evidently.legacy.calculations.stattests.registry"
        self.registry: Any = importlib.import_module(registry)
        self.column_type: Any = importlib.import_module("evidently.legacy.core").ColumnType
        manifest = json.loads((directory / "manifest.json").read_text())
        self.windows: int = manifest["windows"]
        self.columns: int = manifest["columns"]
        self.category: str = manifest["categorical"]
        self.names = [f"x{i}" for i in range(self.columns)]
        self.definition = self.evidently.DataDefinition(
            numerical_columns=self.names, categorical_columns=[self.category]
        )
        numeric = np.fromfile(directory / "reference_numeric.bin", dtype="<f8")
        category = np.fromfile(directory / "reference_category.bin", dtype="<i8")
        self.reference = self.frame(numeric.reshape(self.columns, -1), category)
        del numeric
        self.load_s = time.perf_counter() - started
        started = time.perf_counter()
        self.reference_dataset = self.evidently.Dataset.from_pandas(
            self.reference, data_definition=self.definition
        )
        self.wrap_s = time.perf_counter() - started

    def frame(self, numeric: np.ndarray, category: np.ndarray) -> Any:
        """A DataFrame of `numeric` (`[columns, rows]`) as float64 columns and the category."""
        data = {name: numeric[i].astype(np.float64) for i, name in enumerate(self.names)}
        return self.pandas.DataFrame({**data, self.category: category})

    def window(self, k: int) -> Any:
        numeric = np.fromfile(self.directory / f"window_{k}_numeric.bin", dtype="<f4")
        category = np.fromfile(self.directory / f"window_{k}_category.bin", dtype="<i8")
        return self.frame(numeric.reshape(-1, self.columns).T, category)

    def measure(self, current: Any) -> dict[str, Any]:
        """`Report([DataDriftPreset()]).run` on `current` (wall and CPU), then its `dict()`."""
        started, cpu = time.perf_counter(), time.process_time()
        dataset = self.evidently.Dataset.from_pandas(current, data_definition=self.definition)
        report = self.evidently.Report([self.presets.DataDriftPreset()])
        snapshot = report.run(dataset, self.reference_dataset)
        run_s, run_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        started = time.perf_counter()
        result = snapshot.dict()
        dict_s = time.perf_counter() - started
        return {"run_s": run_s, "run_cpu_s": run_cpu_s, "dict_s": dict_s, "result": result}

    def stattests_alone(self, current: Any) -> tuple[float, float, dict[str, float]]:
        """The per-column statistic the report picks, on the same raw rows, and nothing
        else: what recomputing from raw rows costs at the least. Wall and CPU seconds."""
        started, cpu = time.perf_counter(), time.process_time()
        scores = {}
        for name in [*self.names, self.category]:
            kind = (
                self.column_type.Categorical
                if name == self.category
                else self.column_type.Numerical
            )
            reference, values = self.reference[name], current[name]
            test = self.registry.get_stattest(reference, values, kind, None)
            scores[name] = float(test(reference, values, kind, None).drift_score)
        return time.perf_counter() - started, time.process_time() - cpu, scores


def evidently_worker(directory: Path, warmup: bool, stattests: bool) -> None:
    """Times `Report([DataDriftPreset()]).run(current, reference)` per window (and, with
    `stattests`, the chosen statistics alone) and writes each column's method, threshold,
    score and drift flag to `evidently.json`."""
    worker = EvidentlyWorker(directory)
    # For a run stopped by the timeout: how long loading took, and since when it has run.
    progress = {"reference_load_s": worker.load_s, "reference_wrap_s": worker.wrap_s}
    (directory / "evidently_progress.json").write_text(
        json.dumps({**progress, "run_started": time.time()})
    )
    warmup_s = worker.measure(worker.window(0))["run_s"] if warmup else None
    windows = []
    for k in range(worker.windows):
        current = worker.window(k)
        measured = worker.measure(current)
        flags = evidently_flags(measured.pop("result"))
        alone_s, alone_cpu_s, scores = worker.stattests_alone(current) if stattests else (0, 0, {})
        mismatch = max(
            (abs(scores[n] - c["score"]) for n, c in flags["columns"].items() if n in scores),
            default=None,
        )
        alone = {"stattests_s": alone_s, "stattests_cpu_s": alone_cpu_s}
        windows.append({**measured, **alone, "score_mismatch": mismatch, **flags})
    versions = {
        "evidently": worker.evidently.__version__,
        "pandas": worker.pandas.__version__,
        "scipy": importlib.import_module("scipy").__version__,
        "numpy": np.__version__,
    }
    output = {"versions": versions, **progress, "warmup_s": warmup_s, "windows": windows}
    (directory / "evidently.json").write_text(json.dumps(output))


def evidently_flags(result: dict[str, Any]) -> dict[str, Any]:
    """Per column its method, threshold and score from a snapshot's `dict()`, flagged as
    Evidently's stattests flag: a p-value below the threshold, a distance at or above it."""
    columns: dict[str, dict[str, Any]] = {}
    drifted_count = None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method, threshold, score = config["method"], config["threshold"], metric["value"]
            p_value = "p_value" in method
            flagged = score < threshold if p_value else score >= threshold
            columns[config["column"]] = {
                "method": method,
                "threshold": threshold,
                "score": score,
                "drift": bool(flagged),
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            drifted_count = metric["value"]["count"]
    drift = [name for name, column in columns.items() if column["drift"]]
    # Our reading of the per-column flags must match Evidently's own count.
    assert drifted_count is None or int(drifted_count) == len(drift), (drifted_count, drift)
    return {"columns": columns, "drift": drift}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--warmup", action="store_true", help="one untimed run first")
    parser.add_argument("--stattests", action="store_true", help="also the statistics alone")
    args = parser.parse_args()
    evidently_worker(args.directory, args.warmup, args.stattests)


if __name__ == "__main__":
    main()
