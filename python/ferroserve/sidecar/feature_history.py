"""The online features on the built-in dashboard: from two samples of a model version's
`features` snapshot entry (metrics/features.py), lookups per second by result, the hit ratio and
the mean gather time per batch; from the latest one, a row per view (snapshot rows, bytes, age
of the newest event, generation, totals). history.py keeps the samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RESULTS = ("hit", "miss", "stale", "unavailable")
# What a dashboard point holds for a model version with features (history.SERIES has the rest).
FEATURE_SERIES = (
    "feature_lookups_per_s",
    "feature_hits_per_s",
    "feature_misses_per_s",
    "feature_stale_per_s",
    "feature_unavailable_per_s",
    "feature_hit_ratio",
    "feature_gather_us",
)


@dataclass(slots=True, frozen=True)
class FeatureSample:
    """A model version's cumulative feature counters at one moment, every view together."""

    lookups: tuple[int, ...]
    """Rows by result, in RESULTS order."""
    rejected: int
    gathers: int
    gather_ns: int

    @staticmethod
    def of(features: dict[str, Any]) -> FeatureSample:
        views = features["views"]
        return FeatureSample(
            tuple(sum(int(view["lookups"][r]) for view in views) for r in RESULTS),
            sum(int(view["rejected"]) for view in views),
            int(features["gathers"]),
            int(features["gather_ns"]),
        )


def _delta(now: int, before: int) -> int:
    """Counter increase; a decrease means the serving process (or the version) restarted."""
    return now - before if now >= before else now


def feature_figures(
    before: FeatureSample | None, after: FeatureSample | None, seconds: float
) -> dict[str, float | None]:
    """The FEATURE_SERIES figures between two samples; empty without features in both."""
    if before is None or after is None or seconds <= 0:
        return {}
    rows = [_delta(a, b) for a, b in zip(after.lookups, before.lookups, strict=True)]
    gathers = _delta(after.gathers, before.gathers)
    gather_ns = _delta(after.gather_ns, before.gather_ns)
    figures: dict[str, float | None] = {
        f"feature_{name}_per_s": count / seconds
        for name, count in zip(("hits", "misses", "stale", "unavailable"), rows, strict=True)
    }
    figures["feature_lookups_per_s"] = sum(rows) / seconds
    figures["feature_hit_ratio"] = rows[0] / sum(rows) if sum(rows) else None
    figures["feature_gather_us"] = gather_ns / gathers / 1e3 if gathers else None
    return figures


def feature_panel(features: dict[str, Any], now_unix: float) -> dict[str, Any]:
    """What the card's features section shows from the latest snapshot: totals and a row per
    view."""
    views = []
    for view in features["views"]:
        lookups = sum(int(view["lookups"][r]) for r in RESULTS)
        newest = view["newest_us"]
        views.append(
            {
                "view": view["view"],
                "loaded": bool(view["loaded"]),
                "rows": int(view["rows"]),
                "memory_bytes": int(view["memory_bytes"]),
                "newest_event_age_s": None if newest is None else now_unix - newest / 1e6,
                "generation": int(view["generation"]),
                "lookups": lookups,
                "hit_ratio": int(view["lookups"]["hit"]) / lookups if lookups else None,
                **{r: int(view["lookups"][r]) for r in RESULTS[1:]},
                "rejected": int(view["rejected"]),
            }
        )
    return {
        "reloads": int(features["reloads"]),
        "reload_failures": int(features["reload_failures"]),
        "views": views,
    }
