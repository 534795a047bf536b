"""The issue's targets as PASS/FAIL and the headline sentence, both computed from the run (no
figure is typed by hand). The native client measures every server, so its rows decide;
perf_analyzer's figure for the same ferroserve row is shown beside it where it ran."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .results import Result, best, find
from .servers import OURS, PEER

HEADLINE_MODEL = "mlp"
TARGET_OF_PEER = 3.0
TARGET_P99_OF_PEER = 0.5
TARGET_P50_C1_MS = 0.6
TARGET_ROWS_OF_CEILING = 0.60
WIDE_ROWS = 64
CEILING = "transport ceiling"
NATIVE_CEILING = "native transport ceiling"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target: the line shown and, when missed, the point to profile ferroserve at."""

    goal: str
    passed: bool
    shown: str
    measured: bool = True
    # (model, rows, concurrency, name of the model on ferroserve) to profile when missed
    point: tuple[str, int, int, str] | None = None

    def line(self) -> str:
        if not self.measured:
            return f"- NOT MEASURED: {self.goal} ({self.shown})"
        return f"- {'PASS' if self.passed else 'FAIL'}: {self.goal}: {self.shown}"


def verdicts(results: Sequence[Result], checked: Sequence[Result] = ()) -> list[Verdict]:
    """The issue's targets, decided by the native client's rows (`results`); `checked` are
    perf_analyzer's rows of the same run, shown beside them."""
    return [
        *_against_peers(results),
        _p50_at_one(results, checked),
        _share_of_ceiling(results, checked),
    ]


def _against_peers(results: Sequence[Result]) -> list[Verdict]:
    model = HEADLINE_MODEL
    ours, peer = best(results, OURS, model, 1, 16), best(results, PEER, model, 1, 16)
    goal = (
        f"MLP, 1 row/request, c=16: ferroserve >= {TARGET_OF_PEER:.0f}x the best peer's throughput"
    )
    p99_goal = (
        f"MLP, 1 row/request, c=16: ferroserve p99 <= {TARGET_P99_OF_PEER:.0%} of that peer's"
    )
    if ours is None or peer is None or ours.measurement is None or peer.measurement is None:
        missing = "ferroserve failed" if ours is None else "no peer was measured"
        return [Verdict(goal, False, missing, False), Verdict(p99_goal, False, missing, False)]
    point = (model, 1, 16, ours.target.model_for(model))
    ratio = ours.measurement.infer_per_s / peer.measurement.infer_per_s
    p99 = ours.measurement.p99_ms / peer.measurement.p99_ms
    return [
        Verdict(
            goal,
            ratio >= TARGET_OF_PEER,
            f"{ours.target.label} {ours.measurement.infer_per_s:,.0f} infer/s vs "
            f"{peer.target.label} {peer.measurement.infer_per_s:,.0f} infer/s = {ratio:.2f}x",
            point=point,
        ),
        Verdict(
            p99_goal,
            p99 <= TARGET_P99_OF_PEER,
            f"{ours.measurement.p99_ms:.2f} ms vs {peer.measurement.p99_ms:.2f} ms = {p99:.0%}",
            point=point,
        ),
    ]


def _p50_at_one(results: Sequence[Result], checked: Sequence[Result]) -> Verdict:
    model = HEADLINE_MODEL
    goal = f"MLP, 1 row/request, c=1: ferroserve p50 <= {TARGET_P50_C1_MS} ms"
    ours = best_ferroserve(results, model, 1, 1)
    if ours is None or ours.measurement is None:
        return Verdict(goal, False, "ferroserve c=1 failed", measured=False)
    p50 = ours.measurement.p50_ms
    shown = f"native client: {ours.target.label} {p50:.3f} ms"
    reference = best_ferroserve(checked, model, 1, 1)
    if reference is not None and reference.measurement is not None:
        shown += f"; perf_analyzer: {reference.target.label} {reference.measurement.p50_ms:.3f} ms"
    point = (model, 1, 1, ours.target.model_for(model))
    return Verdict(goal, p50 <= TARGET_P50_C1_MS, shown, point=point)


def _share_of_ceiling(results: Sequence[Result], checked: Sequence[Result]) -> Verdict:
    """The issue defines the share against the Python transport ceiling; the native ceiling's
    share is shown too."""
    model = HEADLINE_MODEL
    goal = (
        f"MLP, {WIDE_ROWS} rows/request, c=16: ferroserve rows/s >= "
        f"{TARGET_ROWS_OF_CEILING:.0%} of the transport ceiling's at the same request size"
    )
    shares = []
    for client, rows in (("native client", results), ("perf_analyzer", checked)):
        ours = best_ferroserve(rows, model, WIDE_ROWS, 16)
        ceiling = find(rows, CEILING, model, WIDE_ROWS, 16)
        if ours is None or ceiling is None or not ours.rows_per_s or not ceiling.rows_per_s:
            continue
        share = ours.rows_per_s / ceiling.rows_per_s
        text = (
            f"{client}: {ours.target.label} {ours.rows_per_s:,.0f} rows/s vs ceiling "
            f"{ceiling.rows_per_s:,.0f} = {share:.0%}"
        )
        native = find(rows, NATIVE_CEILING, model, WIDE_ROWS, 16)
        if native is not None and native.rows_per_s:
            text += (
                f" (native ceiling {native.rows_per_s:,.0f} rows/s: "
                f"{ours.rows_per_s / native.rows_per_s:.0%})"
            )
        shares.append((share, text, ours.target.model_for(model)))
    if not shares:
        return Verdict(goal, False, "ferroserve or the ceiling failed", measured=False)
    share, _, served = shares[0]
    point = (model, WIDE_ROWS, 16, served)
    shown = "; ".join(text for _, text, _ in shares)
    return Verdict(goal, share >= TARGET_ROWS_OF_CEILING, shown, point=point)


def best_ferroserve(rows: Sequence[Result], model: str, per_request: int, c: int) -> Result | None:
    """The highest-throughput ferroserve unary row at a point, whatever the client."""
    candidates = [
        r
        for r in rows
        if r.target.label.startswith("ferroserve")
        and not r.target.streaming
        and (r.model, r.rows, r.concurrency) == (model, per_request, c)
        and r.measurement is not None
    ]
    return max(candidates, key=lambda r: r.rows_per_s or 0.0, default=None)


def headline(results: Sequence[Result]) -> str:
    """The README's sentence: ferroserve vs the best peer, MLP, one row, c=16, unary and
    streamed, and how much of the native transport ceiling ferroserve reaches."""
    ours = best(results, OURS, HEADLINE_MODEL, 1, 16)
    peer = best(results, PEER, HEADLINE_MODEL, 1, 16)
    if ours is None or peer is None or ours.measurement is None or peer.measurement is None:
        return "Headline not measured (ferroserve or every peer failed at MLP, 1 row, c=16)."
    ours_rate, peer_rate = ours.measurement.infer_per_s, peer.measurement.infer_per_s
    sentence = (
        f"MLP, one row per request, 16 concurrent clients, measured with a native client: "
        f"ferroserve serves {ours_rate / peer_rate:.1f}x the requests per second of the best "
        f"peer ({peer.target.label}: {ours_rate:,.0f} vs {peer_rate:,.0f} infer/s), p99 "
        f"{ours.measurement.p99_ms:.1f} ms vs {peer.measurement.p99_ms:.1f} ms"
    )
    stream = best(results, OURS, HEADLINE_MODEL, 1, 16, streaming=True)
    if stream is not None and stream.measurement is not None:
        rate = stream.measurement.infer_per_s
        sentence += f"; over ModelStreamInfer {rate:,.0f} infer/s ({rate / peer_rate:.1f}x)"
    ceiling = find(results, NATIVE_CEILING, HEADLINE_MODEL, 1, 16)
    if ceiling is not None and ceiling.measurement is not None:
        sentence += (
            f". A native gRPC echo with no model answers {ceiling.measurement.infer_per_s:,.0f} "
            f"infer/s on the same core: ferroserve reaches "
            f"{ours_rate / ceiling.measurement.infer_per_s:.0%} of it"
        )
    return sentence + "."
