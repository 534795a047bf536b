"""Drift statistics vs Evidently (issue 15): the same reference and current windows through
ferroserve's drift core (`rust/drift`, via `cargo run --example window_cost`) and through
Evidently's `DataDriftPreset` report: wall time per window, and which columns each flags.

Data: 64 FP32 columns, each normal with its own mean and spread, plus one categorical column
(6 values); reference 100k rows, current windows of 10k. Scenarios: no shift, +0.5 sd mean
shift in x0-x7, variance x2 in x8-x15, a new category in 5% of rows. ferroserve's per-window
cost is what serving pays for it: every row counted by the executor (`Recorder::observe`, 64-row
batches), then the exporter's `evaluate` of the closed window and its JSON; Evidently's is
wrapping the current window in a `Dataset` and `Report.run` on the raw rows (the reference is
wrapped once, outside the clock). A large case then times both on 1M reference x 1M current
rows x 100 columns, Evidently capped by `--large-timeout`.

Evidently runs in its own venv (`.venv-evidently`, made on first use: evidently 0.7.23 with
pandas < 3, which it needs), as `drift_evidently_worker.py`.

    python benches/drift_evidently.py [--quick] [--no-large | --large-only] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_VENV = ROOT / ".venv-evidently"
# 0.7.23 imports `pandas.core.dtypes.common.infer_dtype_from_object`, gone in pandas 3.
EVIDENTLY_REQUIREMENTS = ("evidently==0.7.23", "pandas<3")
CATEGORIES = np.arange(6, dtype=np.int64)
CATEGORY_WEIGHTS = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
NEW_CATEGORY = 6
CATEGORY = "category"
BINS = 32
TOP_K = 20
SHIFTED = 8  # columns each numeric scenario shifts


@dataclass(frozen=True, slots=True)
class Scenario:
    """How current windows differ from the reference."""

    name: str
    mean_shift: tuple[int, ...] = ()  # columns whose mean moves by +0.5 sd
    variance_x2: tuple[int, ...] = ()  # columns whose variance doubles
    new_category: float = 0.0  # share of rows given a category the reference never had

    @property
    def expected(self) -> list[str]:
        names = [f"x{i}" for i in (*self.mean_shift, *self.variance_x2)]
        return [*names, CATEGORY] if self.new_category else names


SCENARIOS = (
    Scenario("no shift"),
    Scenario(f"mean +0.5 sd in x0-x{SHIFTED - 1}", mean_shift=tuple(range(SHIFTED))),
    Scenario(
        f"variance x2 in x{SHIFTED}-x{2 * SHIFTED - 1}",
        variance_x2=tuple(range(SHIFTED, 2 * SHIFTED)),
    ),
    Scenario("new category in 5% of rows", new_category=0.05),
    # Between the two Jensen-Shannon thresholds: 0.112 in base 2 (ours), 0.094 in nats
    # (Evidently's), each against 0.1.
    Scenario("new category in 2.5% of rows", new_category=0.025),
)


@dataclass(frozen=True, slots=True)
class Population:
    """The reference distribution of each numeric column."""

    means: np.ndarray
    stds: np.ndarray

    @staticmethod
    def make(rng: np.random.Generator, columns: int) -> Population:
        return Population(rng.uniform(-3.0, 3.0, columns), rng.uniform(0.5, 2.0, columns))

    def draw(
        self, rng: np.random.Generator, rows: int, scenario: Scenario
    ) -> tuple[np.ndarray, np.ndarray]:
        """`rows` rows: FP32 `[rows, columns]` and the INT64 category `[rows]`."""
        means, stds = self.means.copy(), self.stds.copy()
        shift = list(scenario.mean_shift)
        means[shift] += 0.5 * stds[shift]
        stds[list(scenario.variance_x2)] *= np.sqrt(2.0)
        numeric = (rng.standard_normal((rows, means.size)) * stds + means).astype("<f4")
        category = rng.choice(CATEGORIES, size=rows, p=CATEGORY_WEIGHTS).astype("<i8")
        category[rng.random(rows) < scenario.new_category] = NEW_CATEGORY
        return numeric, category


@dataclass(slots=True)
class Case:
    """One data set written for both tools: a reference and windows, each of a scenario."""

    directory: Path
    columns: int
    reference_rows: int
    window_rows: int
    scenarios: list[str] = field(default_factory=list)  # per window

    def write(
        self, population: Population, windows: Sequence[Scenario], rng: np.random.Generator
    ) -> None:
        numeric, category = population.draw(rng, self.reference_rows, SCENARIOS[0])
        # Column-major f64: what a loader reads a reference column by column as.
        reference = np.ascontiguousarray(numeric.T, dtype="<f8")
        reference.tofile(self.directory / "reference_numeric.bin")
        category.tofile(self.directory / "reference_category.bin")
        del numeric, category, reference
        for k, scenario in enumerate(windows):
            numeric, category = population.draw(rng, self.window_rows, scenario)
            numeric.tofile(self.directory / f"window_{k}_numeric.bin")
            category.tofile(self.directory / f"window_{k}_category.bin")
            self.scenarios.append(scenario.name)
        manifest = {
            "columns": self.columns,
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "windows": len(self.scenarios),
            "categorical": CATEGORY,
        }
        (self.directory / "manifest.json").write_text(json.dumps(manifest))


# --- ferroserve --------------------------------------------------------------------------


def build_example() -> None:
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "ferroserve-drift", "--example", "window_cost"],
        cwd=ROOT,
        check=True,
    )


def run_ferroserve(case: Case, repeats: int) -> dict[str, Any]:
    """The example's JSON: profile time, and per window the timings and the report."""
    binary = ROOT / "target" / "release" / "examples" / "window_cost"
    numbers = [case.columns, case.reference_rows, case.window_rows, len(case.scenarios)]
    numbers += [BINS, TOP_K, repeats]
    done = subprocess.run(
        [str(binary), str(case.directory), *map(str, numbers)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def flagged_by(report: dict[str, Any]) -> set[str]:
    """The statistics that flagged any drifting column."""
    return {s for c in report["columns"] if c["verdict"] == "drift" for s in c["flagged_by"]}


def ferroserve_flags(report: dict[str, Any]) -> tuple[list[str], list[str], dict[str, float]]:
    """Drifting columns, warning columns, and per column the statistic Evidently also uses
    (Wasserstein / sd for numeric columns, Jensen-Shannon for the categorical one)."""
    drift = [c["name"] for c in report["columns"] if c["verdict"] == "drift"]
    warning = [c["name"] for c in report["columns"] if c["verdict"] == "warning"]
    scores = {
        c["name"]: c["statistics"]["wasserstein"]
        if c["name"] != CATEGORY
        else c["statistics"]["jensen_shannon"]
        for c in report["columns"]
    }
    return drift, warning, scores


# --- Evidently (runs in its own venv) ------------------------------------------------------


def evidently_python() -> Path:
    """The venv's interpreter, made with the pinned requirements on first use."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} ({', '.join(EVIDENTLY_REQUIREMENTS)}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS]
        subprocess.run(pip, check=True)
    return python


def run_evidently(
    case: Case, warmup: bool, stattests: bool, timeout: float | None
) -> dict[str, Any]:
    """The worker's JSON; past `timeout` seconds, how far it got (`"timed_out": true`)."""
    worker = Path(__file__).with_name("drift_evidently_worker.py")
    command = [str(evidently_python()), str(worker), str(case.directory)]
    command += ["--warmup"] * warmup + ["--stattests"] * stattests
    # One thread for OpenMP and OpenBLAS: with the defaults a second thread spins beside every
    # run (measured: CPU time 1.6x the wall time, the wall time no lower), taking a core from
    # everything else on a 2-core machine. Evidently's statistics run on one thread either way.
    single = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    started = time.time()
    try:
        subprocess.run(command, check=True, timeout=timeout, env={**os.environ, **single})
    except subprocess.TimeoutExpired:
        progress = case.directory / "evidently_progress.json"
        stages = json.loads(progress.read_text()) if progress.exists() else {}
        running_s = time.time() - stages.get("run_started", started)
        return {"timed_out": True, **stages, "running_s": running_s}
    result: dict[str, Any] = json.loads((case.directory / "evidently.json").read_text())
    return result


# --- the report ----------------------------------------------------------------------------


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def scenario_rows(
    case: Case, ours: dict[str, Any], theirs: dict[str, Any]
) -> tuple[list[str], list[str], list[str]]:
    """The timing table, the agreement table and notes on any disagreement."""
    timing = [
        "| scenario | windows | Evidently `Report.run` s (wall / CPU) | Evidently statistics "
        "alone s (wall / CPU) | ferroserve observe ms (wall / CPU) | ferroserve evaluate + "
        "JSON ms | `Report.run` / ferroserve | statistics alone / ferroserve |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    agreement = [
        "| scenario | shifted | ferroserve drift (flagged by) | ferroserve warning (PSI) | "
        "Evidently drift | same drift columns | largest score, unshifted (ours / Evidently) "
        "| smallest score, shifted (ours / Evidently) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for scenario in SCENARIOS:
        indices = [k for k, name in enumerate(case.scenarios) if name == scenario.name]
        if indices:
            timing.append(timing_row(scenario, indices, ours, theirs))
            agreement.append(agreement_row(scenario, indices, ours, theirs, notes))
    return timing, agreement, notes


def timing_row(
    scenario: Scenario, indices: list[int], ours: dict[str, Any], theirs: dict[str, Any]
) -> str:
    """Medians over the scenario's windows."""
    mine = [ours["windows"][k] for k in indices]
    evidently = [theirs["windows"][k] for k in indices]
    run_s = statistics.median(w["run_s"] for w in evidently)
    run_cpu_s = statistics.median(w["run_cpu_s"] for w in evidently)
    alone_s = statistics.median(w["stattests_s"] for w in evidently)
    alone_cpu_s = statistics.median(w["stattests_cpu_s"] for w in evidently)
    observe_ms = statistics.median(w["observe_ns"] / 1e6 for w in mine)
    observe_cpu_ms = statistics.median((w["observe_cpu_ns"] or 0) / 1e6 for w in mine)
    evaluate_ms = statistics.median((w["evaluate_ns"] + w["serialize_ns"]) / 1e6 for w in mine)
    total_s = (observe_ms + evaluate_ms) / 1e3
    return (
        f"| {scenario.name} | {len(indices)} | {run_s:.2f} / {run_cpu_s:.2f} | "
        f"{alone_s:.2f} / {alone_cpu_s:.2f} | {observe_ms:.1f} / {observe_cpu_ms:.1f} | "
        f"{evaluate_ms:.3f} | {run_s / total_s:,.0f}x | {alone_s / total_s:,.0f}x |"
    )


def agreement_row(
    scenario: Scenario,
    indices: list[int],
    ours: dict[str, Any],
    theirs: dict[str, Any],
    notes: list[str],
) -> str:
    """Columns flagged over the scenario's windows; each disagreement appended to `notes`."""
    ours_drift: set[str] = set()
    ours_warning: set[str] = set()
    ours_by: set[str] = set()
    theirs_drift: set[str] = set()
    same = 0
    high_ours = high_theirs = 0.0
    low_ours = low_theirs = float("inf")
    for k in indices:
        drift, warning, scores = ferroserve_flags(ours["windows"][k]["report"])
        ours_by |= flagged_by(ours["windows"][k]["report"])
        evidently = theirs["windows"][k]
        ours_drift |= set(drift)
        ours_warning |= set(warning)
        theirs_drift |= set(evidently["drift"])
        same += set(drift) == set(evidently["drift"])
        for name, score in scores.items():
            score_theirs = evidently["columns"][name]["score"]
            if name in scenario.expected:
                low_ours, low_theirs = min(low_ours, score), min(low_theirs, score_theirs)
            else:
                high_ours, high_theirs = max(high_ours, score), max(high_theirs, score_theirs)
        for name in sorted(set(drift) ^ set(evidently["drift"])):
            column = evidently["columns"][name]
            notes.append(
                f"{scenario.name}, window {k}: `{name}` flagged by "
                f"{'ferroserve' if name in drift else 'Evidently'} only: ours "
                f"{scores[name]:.3f}, Evidently's {column['method']} {column['score']:.3f} "
                f"(threshold {column['threshold']})"
            )
    low = "-" if not scenario.expected else f"{low_ours:.3f} / {low_theirs:.3f}"
    by = f" ({', '.join(sorted(ours_by))})" if ours_by else ""
    return (
        f"| {scenario.name} | {columns_text(scenario.expected)} | "
        f"{columns_text(ours_drift)}{by} | {columns_text(ours_warning)} | "
        f"{columns_text(theirs_drift)} | {same}/{len(indices)} windows | "
        f"{high_ours:.3f} / {high_theirs:.3f} | {low} |"
    )


def per_value(ours: dict[str, Any], key: str) -> float:
    """Median ns per counted value of the windows' `key` timing."""
    return float(statistics.median((w[key] or 0) / w["values"] for w in ours["windows"]))


def max_mismatch(theirs: dict[str, Any]) -> float:
    mismatches = [w["score_mismatch"] for w in theirs["windows"]]
    return max((m for m in mismatches if m is not None), default=float("nan"))


def columns_text(names: Sequence[str] | set[str]) -> str:
    """`x0-x7, category`-style: consecutive x columns as a range."""
    numbers = sorted(int(n[1:]) for n in names if n.startswith("x"))
    parts: list[str] = []
    for number in numbers:
        if parts and parts[-1].endswith(f"x{number - 1}"):
            start = parts[-1].split("-")[0]
            parts[-1] = f"{start}-x{number}"
        else:
            parts.append(f"x{number}")
    parts += sorted(n for n in names if not n.startswith("x"))
    return ", ".join(parts) or "none"


def methods_text(theirs: dict[str, Any]) -> str:
    methods: dict[str, int] = {}
    for column in theirs["windows"][0]["columns"].values():
        key = f"{column['method']} (threshold {column['threshold']})"
        methods[key] = methods.get(key, 0) + 1
    return "; ".join(f"{key}: {count} columns" for key, count in methods.items())


# --- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20k reference, 5k windows, 1 each")
    parser.add_argument("--columns", type=int, default=64)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--window-rows", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=3, help="windows per scenario")
    parser.add_argument("--repeats", type=int, default=20, help="ferroserve passes per window")
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    parser.add_argument("--large-columns", type=int, default=100)
    parser.add_argument("--large-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--no-large", action="store_true", help="skip the large case")
    parser.add_argument("--large-only", action="store_true", help="only the large case")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.reference_rows, args.window_rows, args.windows, args.repeats = 20_000, 5_000, 1, 5
        args.no_large = True

    build_example()
    evidently_python()
    rng = np.random.default_rng(args.seed)
    loads = [load_average()]
    sections = [] if args.large_only else windows_report(args, rng, loads)
    large = [] if args.no_large else large_case(args, rng, loads)

    from report import machine_description  # imports onnxruntime and grpc: only for the report

    lines = [
        *machine_description(),
        f"Evidently venv: {evidently_versions()}. Load average (1/5/15 min) before, between "
        f"and after the runs: {' -> '.join(loads)}.",
        *sections,
        *large,
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


def evidently_versions() -> str:
    """The versions in Evidently's venv the figures depend on (from metadata, no import)."""
    names = ("evidently", "pandas", "scipy", "numpy")
    script = "import importlib.metadata as m; print(', '.join(f'{n} {m.version(n)}' for n in %r))"
    done = subprocess.run(
        [str(evidently_python()), "-c", script % (names,)],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def windows_report(
    args: argparse.Namespace, rng: np.random.Generator, loads: list[str]
) -> list[str]:
    """The scenarios' windows through both: the tables and notes."""
    with tempfile.TemporaryDirectory(prefix="drift-evidently-") as directory:
        case = Case(Path(directory), args.columns, args.reference_rows, args.window_rows)
        windows = [s for s in SCENARIOS for _ in range(args.windows)]
        case.write(Population.make(rng, args.columns), windows, rng)
        ours = run_ferroserve(case, args.repeats)
        loads.append(load_average())
        theirs = run_evidently(case, warmup=True, stattests=True, timeout=None)
        loads.append(load_average())
    timing, agreement, notes = scenario_rows(case, ours, theirs)
    dict_ms = statistics.median(w["dict_s"] for w in theirs["windows"]) * 1e3
    repeated = ours["repeated_batch"]
    repeated_ns = (repeated["observe_cpu_ns"] or repeated["observe_ns"]) / repeated["values"]
    return [
        "",
        f"{args.columns} FP32 columns + 1 categorical, reference {args.reference_rows:,} rows, "
        f"windows of {args.window_rows:,} rows; ferroserve: {BINS} bins, top {TOP_K} "
        f"categories, default thresholds, median of {args.repeats} passes per window; "
        f"Evidently: `DataDriftPreset()` defaults, {methods_text(theirs)}; its process with "
        f"`OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1` (the defaults add a spinning thread, not "
        f"speed).",
        "",
        *timing,
        "",
        *agreement,
        "",
        f"- ferroserve's profiles (load time, once per model version): "
        f"{ours['profile_ns'] / 1e6:,.0f} ms for {ours['columns']} columns of "
        f"{args.reference_rows:,} rows. Evidently wraps the reference in a `Dataset` in "
        f"{theirs['reference_wrap_s'] * 1e3:,.0f} ms and reads its raw rows again every run; "
        f"its first run (warm-up, not in the table) took {theirs['warmup_s']:.2f} s. "
        f"`snapshot.dict()` after a run: {dict_ms:,.1f} ms.",
        f"- ferroserve counts {per_value(ours, 'observe_ns'):.1f} ns per value wall, "
        f"{per_value(ours, 'observe_cpu_ns'):.1f} ns CPU (median over windows; 64-row batches, "
        f"{ours['columns']} values per row); counting one batch over and over instead, as "
        f"the criterion bench does: {repeated_ns:.1f} ns per value CPU. Evidently's "
        f"statistics alone give its report's "
        f"scores to within {max_mismatch(theirs):.1e}.",
        *(f"- {note}" for note in notes or ["Both flag the same columns in every window."]),
    ]


def large_case(args: argparse.Namespace, rng: np.random.Generator, loads: list[str]) -> list[str]:
    """Evidently (and ferroserve, once) on `--large-rows` reference and current rows."""
    rows, columns = args.large_rows, args.large_columns
    with tempfile.TemporaryDirectory(prefix="drift-evidently-large-") as directory:
        case = Case(Path(directory), columns, rows, rows)
        case.write(Population.make(rng, columns), [SCENARIOS[1]], rng)
        ours = run_ferroserve(case, repeats=1)
        started = time.perf_counter()
        theirs = run_evidently(case, warmup=False, stattests=False, timeout=args.large_timeout)
        wall_s = time.perf_counter() - started
        loads.append(load_average())
    window = ours["windows"][0]
    evaluate_ms = (window["evaluate_ns"] + window["serialize_ns"]) / 1e6
    ferroserve = (
        f"ferroserve: profiles {ours['profile_ns'] / 1e9:.1f} s once at load; counting the "
        f"{rows:,} current rows {window['observe_ns'] / 1e9:.2f} s of executor time spread over "
        f"its batches; evaluate + JSON {evaluate_ms:.3f} ms"
    )
    size = f"{rows:,} reference and {rows:,} current rows x {columns} FP32 columns + 1 categorical"
    if theirs.get("timed_out"):
        if "reference_load_s" not in theirs:
            got = "it was still reading the reference"
        else:
            got = (
                f"reading the reference took {theirs['reference_load_s']:.0f} s, wrapping it "
                f"{theirs['reference_wrap_s']:.0f} s, and it had been on the current window "
                f"(reading it, then `Report.run`) for {theirs['running_s']:.0f} s"
            )
        return [
            f"- Large case, {size}: Evidently did not finish within {args.large_timeout:.0f} s "
            f"(stopped; {got}). {ferroserve}."
        ]
    evidently = theirs["windows"][0]
    drift_ours, _, _ = ferroserve_flags(window["report"])
    return [
        f"- Large case, {size} (mean shift in x0-x{SHIFTED - 1}): Evidently `Report.run` "
        f"{evidently['run_s']:.1f} s (worker wall time with loading the data {wall_s:.0f} s), "
        f"flagging {columns_text(evidently['drift'])}; {ferroserve}, flagging "
        f"{columns_text(drift_ours)}."
    ]


if __name__ == "__main__":
    main()
