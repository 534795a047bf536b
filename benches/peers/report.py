"""The peer benchmark's report: the issue's targets as PASS/FAIL with the headline ratio, the
plots, one table per model (infer/s, rows/s, p50, p99, server CPU per inference, peak RSS) and
notes on the machine, the client and how each server was set up. Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from report import machine_description

from . import crosscheck
from .models import MODELS
from .profile import Profile
from .repositories import MLSERVER_MAX_BATCH_TIME_S
from .results import IN_PROCESS, Result, best, find
from .servers import OURS, PEER
from .venvs import Prepared

HEADLINE_MODEL = "mlp"
TARGET_OF_PEER = 3.0
TARGET_P99_OF_PEER = 0.5
TARGET_P50_C1_MS = 0.6
TARGET_ROWS_OF_CEILING = 0.60
WIDE_ROWS = 64
CEILING = "transport ceiling"


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


@dataclass(frozen=True, slots=True)
class Context:
    """How the run was made, for the notes."""

    plan_name: str
    window_s: float
    warmup_s: float
    client: str
    client_cores: set[int] | None
    server_cores: set[int] | None
    peers: dict[str, Prepared]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    minutes: float
    notes: list[str] = field(default_factory=list)
    crosscheck: list[Result] = field(default_factory=list)


def verdicts(results: Sequence[Result], checked: Sequence[Result] = ()) -> list[Verdict]:
    """The issue's targets. Against the peers: the best unary ferroserve row and the best peer
    row, both measured by the Python client. The absolute p50 and the share of the ceiling
    involve only servers with a ModelConfig RPC, so perf_analyzer (the issue's client where it
    can run) decides them when its cross-check ran; the Python client's figure is shown too."""
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
    python = best(results, OURS, model, 1, 1)
    reference = _best_ferroserve(checked, model, 1, 1)
    if python is None or python.measurement is None:
        return Verdict(goal, False, "ferroserve c=1 failed", measured=False)
    shown = f"Python client: {python.target.label} {python.measurement.p50_ms:.3f} ms"
    p50 = python.measurement.p50_ms
    if reference is not None and reference.measurement is not None:
        p50 = reference.measurement.p50_ms
        shown = f"perf_analyzer: {reference.target.label} {p50:.3f} ms (decides); " + shown
    point = (model, 1, 1, python.target.model_for(model))
    return Verdict(goal, p50 <= TARGET_P50_C1_MS, shown, point=point)


def _share_of_ceiling(results: Sequence[Result], checked: Sequence[Result]) -> Verdict:
    model = HEADLINE_MODEL
    goal = (
        f"MLP, {WIDE_ROWS} rows/request, c=16: ferroserve rows/s >= "
        f"{TARGET_ROWS_OF_CEILING:.0%} of the transport ceiling's at the same request size"
    )
    shares = []
    for client, rows in (("perf_analyzer", checked), ("Python client", results)):
        ours = _best_ferroserve(rows, model, WIDE_ROWS, 16)
        ceiling = find(rows, CEILING, model, WIDE_ROWS, 16)
        if ours is None or ceiling is None or not ours.rows_per_s or not ceiling.rows_per_s:
            continue
        share = ours.rows_per_s / ceiling.rows_per_s
        text = (
            f"{client}: {ours.target.label} {ours.rows_per_s:,.0f} rows/s vs ceiling "
            f"{ceiling.rows_per_s:,.0f} = {share:.0%}"
        )
        shares.append((share, text, ours.target.model_for(model)))
    if not shares:
        return Verdict(goal, False, "ferroserve or the ceiling failed", measured=False)
    shown = [text for _, text, _ in shares]
    if len(shown) > 1:
        shown[0] += " (decides)"
    share, _, served = shares[0]
    point = (model, WIDE_ROWS, 16, served)
    return Verdict(goal, share >= TARGET_ROWS_OF_CEILING, "; ".join(shown), point=point)


def _best_ferroserve(rows: Sequence[Result], model: str, per_request: int, c: int) -> Result | None:
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
    """The README's sentence: ferroserve vs the best peer, MLP, one row, c=16."""
    ours = best(results, OURS, HEADLINE_MODEL, 1, 16)
    peer = best(results, PEER, HEADLINE_MODEL, 1, 16)
    if ours is None or peer is None or ours.measurement is None or peer.measurement is None:
        return "Headline not measured (ferroserve or every peer failed at MLP, 1 row, c=16)."
    ratio = ours.measurement.infer_per_s / peer.measurement.infer_per_s
    return (
        f"MLP, one row per request, 16 concurrent clients: ferroserve serves {ratio:.1f}x the "
        f"requests per second of the best peer ({peer.target.label}: "
        f"{ours.measurement.infer_per_s:,.0f} vs {peer.measurement.infer_per_s:,.0f} infer/s), "
        f"p99 {ours.measurement.p99_ms:.1f} ms vs {peer.measurement.p99_ms:.1f} ms."
    )


def render(
    results: Sequence[Result],
    verdicts: Sequence[Verdict],
    profiles: Sequence[Profile],
    images: Sequence[Path],
    context: Context,
) -> str:
    quick = context.plan_name != "full"
    lines = [
        "# ferroserve vs peer servers",
        "",
        "Generated by `python -m benches.peers" + (" --quick`" if quick else "`") + "; "
        + ("a **--quick run** (c in {1, 16}, short windows): " if quick else "a full run: ")
        + f"{context.window_s:g} s windows after {context.warmup_s:g} s warm-up, "
        f"{context.minutes:.0f} minutes in all.",
        "",
        *machine_description(),
        _machine_load(context),
        "",
        f"**Headline.** {headline(results)}",
        "",
        "## Targets",
        "",
        *(verdict.line() for verdict in verdicts),
        "",
    ]  # fmt: skip
    if profiles:
        lines += ["## Where the time goes (py-spy, missed targets)", "", *budget(results), ""]
        for item in profiles:
            lines += [*item.markdown(), ""]
    lines += ["## Plots", ""]
    lines += [f"![{image.stem}]({image.name})" for image in images] + [""]
    for model in dict.fromkeys(result.model for result in results):
        lines += [f"## {MODELS[model].description}", "", *table(results, model), ""]
    if context.crosscheck:
        lines += [
            "## Client cross-check: perf_analyzer",
            "",
            "Triton's C++ perf_analyzer on the servers with a ModelConfig RPC (not the peers), "
            "pinned like the Python client, beside the Python client's rows above. The "
            "difference is the client's own cost; the comparison with the peers uses the Python "
            "client only.",
            "",
            *crosscheck.table(context.crosscheck, results),
            "",
        ]
    notes = [*setup_notes(context), *client_bound(results)]
    lines += ["## How each server ran", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(lines)


def budget(results: Sequence[Result]) -> list[str]:
    """Server CPU per request at the headline point: the transport's share, ours, the peer's."""
    model = HEADLINE_MODEL
    ours = best(results, OURS, model, 1, 16)
    peer = best(results, PEER, model, 1, 16)
    ceiling = find(results, CEILING, model, 1, 16)
    if ours is None or peer is None or ceiling is None:
        return []
    cpu = [r.cpu_us_per_request for r in (ours, peer, ceiling)]
    if any(value is None for value in cpu):
        return []
    ours_us, peer_us, ceiling_us = (float(value or 0.0) for value in cpu)
    ceiling_rate = ceiling.measurement.infer_per_s if ceiling.measurement else 0.0
    peer_rate = peer.measurement.infer_per_s if peer.measurement else 1.0
    return [
        f"CPU budget at MLP, 1 row/request, c=16 (server CPU µs per request, this run): the "
        f"transport ceiling, which runs no model, spends {ceiling_us:,.0f}; {ours.target.label} "
        f"{ours_us:,.0f} (+{ours_us - ceiling_us:,.0f} over the transport); "
        f"{peer.target.label} {peer_us:,.0f} (+{peer_us - ceiling_us:,.0f}). "
        f"The ceiling itself reaches {ceiling_rate / peer_rate:.2f}x the best peer's throughput "
        f"here, so no server on this Python gRPC transport can reach "
        f"{TARGET_OF_PEER:.0f}x unary; ModelStreamInfer moves the ceiling (see the stream rows)."
    ]


def client_bound(results: Sequence[Result]) -> list[str]:
    """Points where a server running the model beat the transport ceiling (no model) by over
    5%: there the client, not the server, set the pace, and rows compare poorly."""
    points = []
    for result in results:
        ceiling = find(results, CEILING, result.model, result.rows, result.concurrency)
        if (
            result.target.runs_model
            and result.target.label != IN_PROCESS.label
            and not result.target.streaming
            and result.rows_per_s is not None
            and ceiling is not None
            and ceiling.rows_per_s is not None
            and result.rows_per_s > 1.05 * ceiling.rows_per_s
        ):
            points.append(f"{result.model} {result.rows} rows/req c={result.concurrency}")
    if not points:
        return []
    return [
        "Client-bound points (a server with a model beat the no-model transport ceiling by "
        "more than 5%, so the one-core Python client, serializing and sending the request, set "
        "the pace): " + ", ".join(dict.fromkeys(points)) + "."
    ]


def _machine_load(context: Context) -> str:
    before = ", ".join(f"{value:.2f}" for value in context.load_before)
    after = ", ".join(f"{value:.2f}" for value in context.load_after)
    if context.server_cores is None or context.client_cores is None:
        cores = "Client and servers share all cores (not pinned)."
    else:
        cores = (
            f"Client pinned to CPU {_cores(context.client_cores)}, every server (and the "
            f"in-process threads) to CPU {_cores(context.server_cores)}."
        )
    return f"{cores} Load average before {before}, after {after} (1, 5, 15 min)."


def _cores(cores: set[int]) -> str:
    return ",".join(map(str, sorted(cores)))


def table(results: Sequence[Result], model: str) -> list[str]:
    lines = [
        "| server | ORT intra/inter/spin | rows/req | c | infer/s | rows/s | p50 ms | p99 ms "
        "| server CPU µs/infer | peak RSS MiB | x best peer | % of ceiling |",
        "|" + "---|" * 12,
    ]
    for result in results:
        if result.model != model:
            continue
        cells = [
            result.target.label,
            result.target.ort_threads,
            str(result.rows),
            str(result.concurrency),
        ]
        m = result.measurement
        if m is None:
            # A "|" would end the cell early.
            cells += [f"failed: {result.error.replace('|', '/')[:300]}", *[""] * 7]
        else:
            cells += [
                f"{m.infer_per_s:,.0f}",
                f"{m.infer_per_s * result.rows:,.0f}",
                f"{m.p50_ms:.2f}",
                f"{m.p99_ms:.2f}",
                _number(result.cpu_us_per_request, "{:,.0f}"),
                _number(result.peak_rss_mib, "{:,.0f}"),
                _versus_peer(result, results),
                _versus_ceiling(result, results),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _number(value: float | None, style: str) -> str:
    return "" if value is None else style.format(value)


def _versus_peer(result: Result, results: Sequence[Result]) -> str:
    peer = best(results, PEER, result.model, result.rows, result.concurrency)
    if peer is None or peer.rows_per_s is None or result.rows_per_s is None:
        return "-"
    return f"{result.rows_per_s / peer.rows_per_s:.2f}"


def _versus_ceiling(result: Result, results: Sequence[Result]) -> str:
    if result.target.label == IN_PROCESS.label:
        return "-"
    label = CEILING + (" stream" if result.target.streaming else "")
    ceiling = find(results, label, result.model, result.rows, result.concurrency)
    if ceiling is None or ceiling.rows_per_s is None or result.rows_per_s is None:
        return "-"
    if result.target.label == label:
        return "(ref)"
    return f"{100 * result.rows_per_s / ceiling.rows_per_s:.0f}%"


def setup_notes(context: Context) -> list[str]:
    versions = ", ".join(
        f"{name}: {prepared.versions}" if prepared.python else f"{name}: NOT RUN ({prepared.error})"
        for name, prepared in context.peers.items()
    )
    return [
        f"Client: {context.client}. KServe's and MLServer's gRPC servers have no ModelConfig RPC, "
        "which Triton's perf_analyzer needs before it sends a request, so perf_analyzer cannot "
        "drive them; this one client drives every server instead, so the comparison is fair. "
        "infer/s counts requests; rows/s = infer/s x rows per request. Latency is the client's, "
        "send to answer; the measured window is the calls that ended in it.",
        f"Peer environments (bench-results/venvs, Python virtual environments): {versions}.",
        "ORT intra/inter/spin: onnxruntime intra-op threads / inter-op threads / spinning. "
        "ferroserve's defaults (docs/configuration.md); the peers' runtime code "
        "(benches/peers/kserve_server.py, mlserver_runtime.py) sets the same session options.",
        "ferroserve: `ferroserve serve` on uvloop, metrics sidecar on; `<model>` has "
        "`dynamic_batching { }` (max_batch_size 64, delay 0), `<model>_nobatch` has none (the "
        "MLP then runs inline on the event loop, docs/configuration.md `inline_execution`). "
        "Stream rows use ModelStreamInfer, one stream per client task.",
        "KServe: `kserve.ModelServer().start([...])` with one `kserve.Model` subclass per model "
        "(sync `predict` on a v2 `InferRequest`, onnxruntime), gRPC v2 port, REST server also up "
        "(idle). `KServe ModelServer` has per-request logging off (`--enable_latency_logging "
        "false`, `KSERVE_LOGLEVEL=WARNING`; its gRPC interceptor logs every call at INFO); "
        "`(default logging)` runs with KServe's defaults, two log lines per request.",
        "MLServer: `mlserver start` on a repository of `model-settings.json` files naming a "
        "custom `MLModel` runtime (onnxruntime), `parallel_workers: 1` (its default: one "
        "inference worker process beside the front-end process), `debug: false`, metrics on "
        "(default). `MLServer (adaptive batching)` serves `<model>_ab` with max_batch_size 64, "
        f"max_batch_time {MLSERVER_MAX_BATCH_TIME_S * 1000:g} ms (batching is off at 0 ms). "
        "uvloop pinned to 0.21.0: newer uvloop breaks MLServer 1.7's workers.",
        "transport ceiling: /work/shared/tools/transport_ceiling.py on uvloop, one per model "
        "(decode the raw input, return a canned output of the model's size, no model): what the "
        "Python gRPC transport allows at this request size, unary and streamed.",
        "onnxruntime in-process: session.run on the same request from c threads sharing one "
        "session, no transport; CPU per call is this process's. The answer every server gave "
        "for the first request was checked against it (|diff| <= 1e-4).",
        "server CPU µs/infer: utime+stime of the server's process tree (workers and sidecars "
        "included) over the measured window, per request. peak RSS: the largest summed VmRSS "
        "of the tree sampled every 100 ms during the row (shared pages counted per process).",
        *context.notes,
    ]
