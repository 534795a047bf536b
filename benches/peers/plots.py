"""PNG plots of one run: rows/s against concurrency and p50/p99 latency against concurrency,
one panel per model and rows per request, every server a line; the transport ceiling (dashed)
and in-process onnxruntime (dotted) are drawn as lines too, so readers see how much of the
transport each server uses. matplotlib is the `bench` extra."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .results import IN_PROCESS, Result
from .servers import REFERENCE

STYLE_BY_KIND = {"ours": "-", "peer": "-", REFERENCE: "--"}
# The ceilings in greys (dark: native), so the servers keep matplotlib's ten distinct colors.
CEILING_COLORS = {
    "transport ceiling": "0.55",
    "transport ceiling stream": "0.7",
    "native transport ceiling": "0.0",
    "native transport ceiling stream": "0.3",
}
LEGEND_COLUMNS = 4
# Legend height per row of entries, inches (fontsize 9).
LEGEND_ROW_IN = 0.24


def write_all(
    results: Sequence[Result], models: Sequence[str], rows: Sequence[int], out_dir: Path
) -> list[Path]:
    """Writes throughput.png and latency.png into `out_dir`; [] if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install '.[bench]'): no plots", file=sys.stderr)
        return []
    paths = []
    for name, draw, ylabel in (
        ("throughput", _throughput, "rows/s (log)"),
        ("latency", _latency, "latency ms, p50 o-, p99 x-- (log)"),
    ):
        figure, axes = plt.subplots(
            len(models), len(rows), figsize=(6.5 * len(rows), 4.2 * len(models)), squeeze=False
        )
        for i, model in enumerate(models):
            for j, per_request in enumerate(rows):
                axis = axes[i][j]
                draw(axis, [r for r in results if (r.model, r.rows) == (model, per_request)])
                axis.set_title(f"{model}, {per_request} row(s)/request")
                axis.set_xscale("log", base=2)
                axis.set_yscale("log")
                axis.set_xlabel("concurrency")
                axis.set_ylabel(ylabel)
                axis.grid(True, which="both", alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=LEGEND_COLUMNS, fontsize=9)
        legend_rows = -(-len(labels) // LEGEND_COLUMNS)
        bottom = (legend_rows * LEGEND_ROW_IN + 0.2) / figure.get_figheight()
        figure.tight_layout(rect=(0, bottom, 1, 1))
        path = out_dir / f"peers-{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def _series(results: Sequence[Result]) -> dict[str, list[Result]]:
    by_label: dict[str, list[Result]] = {}
    for result in results:
        if result.measurement is not None:
            by_label.setdefault(result.target.label, []).append(result)
    return by_label


def _throughput(axis: Any, results: Sequence[Result]) -> None:
    _lines(axis, results, lambda r: [r.rows_per_s or 0.0], ["o"])


def _latency(axis: Any, results: Sequence[Result]) -> None:
    def percentiles(result: Result) -> list[float]:
        assert result.measurement is not None
        return [result.measurement.p50_ms, result.measurement.p99_ms]

    _lines(axis, results, percentiles, ["o", "x"])


def _lines(
    axis: Any,
    results: Sequence[Result],
    values: Callable[[Result], list[float]],
    markers: list[str],
) -> None:
    servers = 0
    for label, unordered in _series(results).items():
        series = sorted(unordered, key=lambda r: r.concurrency)
        x = [r.concurrency for r in series]
        kind = series[0].target.kind
        color = CEILING_COLORS.get(label)
        if color is None:
            color, servers = f"C{servers % 10}", servers + 1
        for k, marker in enumerate(markers):
            style = ":" if label == IN_PROCESS.label else STYLE_BY_KIND.get(kind, "-")
            if k > 0:
                style = "--" if style == "-" else ":"
            axis.plot(
                x,
                [values(r)[k] for r in series],
                linestyle=style,
                marker=marker,
                color=color,
                label=label if k == 0 else None,
                linewidth=2.2 if kind == "ours" else 1.4,
            )
