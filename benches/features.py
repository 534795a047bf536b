"""Online feature lookup end to end (issue 14): the MLP [N,64] -> 256 -> 256 -> 10 served twice
by one ferroserve, once as `mlp` (the client sends all 64 features) and once as `mlp_features`
(the client sends a user id and 32 request-time features; the other 32 are looked up in an
embedded snapshot of `--keys` users and joined at batch forming). perf_analyzer drives both at
c=16 with one row per request from JSON data files (existing user ids, random values), the two
measured back to back in an order that alternates round by round, a fresh server every round.
Target: `mlp_features` >= 90% of `mlp`'s throughput (median of the per-round ratios).

`--redis` adds `mlp_redis`: the same 32 features in a view with `store: REDIS`, written in
Feast's layout into a redis-server the bench starts on loopback and looked up by the front end
per request. Target: >= 60% of `mlp`'s throughput, p99 <= 5 ms. Its rows also show
redis-server's CPU per request and the lookup stage's own p50/p99, interpolated from the
server's `ferroserve_feature_lookup_duration_seconds` histogram over the perf_analyzer run.
`--redis-nice N` runs redis-server at that nice level (a diagnostic, labelled in the report:
at -10 Redis is served first when the 2 cores are contended, as a Redis with a core of its own
would be).

`--feast` (implies `--redis`) also starts Feast's own feature server (`feast serve`, HTTP, one
worker per core) over the same Redis, checks that it reads the values ferroserve wrote, and
loads it with one lookup (one entity) per call for the same users at c=16 and c=1
(benches/feast_serve.py); `mlp_redis` is measured at c=1 too. Target: ferroserve's whole
inference with the lookup has a lower p99 than Feast's lookup alone at c=16.

`--scale N` instead loads a snapshot of N keys x 32 FP32 features into a fresh server and
reports the load time (server start to ready, and the snapshot's own load from the log) and the
server's resident memory before and after.

    python benches/features.py [--rounds N] [--keys K] [--redis | --feast] [--redis-nice N]
                               [--out FILE]
    python benches/features.py --scale 10000000 [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from batching_load import Analyzer
from feast_serve import (
    ComparisonRow,
    FeastTarget,
    FeastView,
    comparison,
    feast_beside,
    inference_row,
    write_bodies,
)
from load_client import LoadSettings
from prometheus_client.parser import text_string_to_metric_families
from report import publish
from server_process import HOST, CpuSampler, ServerFailed, free_port, serving
from serving_core import PERF_ANALYZER_DIR, SOURCE_TREE, ferroserve_launcher

CONCURRENCY = 16
TARGET = 0.90
REDIS_TARGET = 0.60
REDIS_P99_MS = 5.0
REDIS_PROJECT = "bench"
FEATURES = 32
DATA_ROWS = 256  # distinct requests in each perf_analyzer data file
BASE_CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ 10 ] }} ]
dynamic_batching {{ }}
"""
FEATURES_PBTXT = (
    """request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
request_input { name: "dense" data_type: TYPE_FP32 columns: 32 }
view {
  name: "user"
  key: "user_id"
"""
    + "".join(f'  feature {{ name: "f{i}" data_type: TYPE_FP32 }}\n' for i in range(FEATURES))
    + """  source { path: "users.parquet" }
}
assembly { model_input: "input" segment { request_input: "dense" } segment { view: "user" } }
"""
)

REDIS_PBTXT = (
    """request_input { name: "user_id" data_type: TYPE_INT64 columns: 1 }
request_input { name: "dense" data_type: TYPE_FP32 columns: 32 }
view {
  name: "user"
  key: "user_id"
"""
    + "".join(f'  feature {{ name: "f{i}" data_type: TYPE_FP32 }}\n' for i in range(FEATURES))
    + """  store: REDIS
}
redis { url: "{url}" project: "{project}" }
assembly { model_input: "input" segment { request_input: "dense" } segment { view: "user" } }
"""
)


@dataclass(frozen=True, slots=True)
class Result:
    model: str
    round: int
    infer_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_request: float
    mean_batch: float | None
    # `mlp_redis` rows: redis-server's CPU per request and the lookup stage's p50/p99.
    redis_us_per_request: float | None = None
    lookup_ms: tuple[float, float] | None = None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds [3]")
    parser.add_argument("--keys", type=int, default=100_000, help="users in the snapshot [100k]")
    parser.add_argument("--scale", type=int, help="only measure loading a snapshot of N keys")
    parser.add_argument("--redis", action="store_true", help="also measure a Redis view")
    parser.add_argument(
        "--feast", action="store_true", help="also Feast's `feast serve` (implies --redis)"
    )
    parser.add_argument(
        "--feast-workers", type=int, default=os.cpu_count() or 1, help="[one per core]"
    )
    parser.add_argument(
        "--redis-nice", type=int, default=0, help="redis-server's nice level, a diagnostic [0]"
    )
    parser.add_argument("--window-ms", type=int, default=3000, help="perf_analyzer window [3000]")
    parser.add_argument("--tools", type=Path, default=Path("/work/shared/tools"))
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    args.redis = args.redis or args.feast
    return args


def write_snapshot(path: Path, keys: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    columns = {"user_id": pa.array(np.arange(keys, dtype=np.int64))}
    for i in range(FEATURES):
        columns[f"f{i}"] = pa.array(rng.standard_normal(keys, dtype=np.float32))
    pq.write_table(pa.table(columns), path)


def write_repository(root: Path, keys: int, redis_url: str | None = None) -> None:
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    names = ["mlp", "mlp_features"] + (["mlp_redis"] if redis_url else [])
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(BASE_CONFIG.format(name=name))
        save(mlp_model(), root / name / "1" / "model.onnx")
    (root / "mlp_features" / "features.pbtxt").write_text(FEATURES_PBTXT)
    write_snapshot(root / "mlp_features" / "users.parquet", keys)
    if redis_url:
        text = REDIS_PBTXT.replace("{url}", redis_url).replace("{project}", REDIS_PROJECT)
        (root / "mlp_redis" / "features.pbtxt").write_text(text)
        write_redis(root / "mlp_redis", keys)


def write_redis(folder: Path, keys: int) -> None:
    """The snapshot's users, written in Feast's layout (the crate's writer) for the view as the
    model in `folder` declares it."""
    from ferroserve import _core
    from ferroserve.features.declaration import read_declaration

    declaration = read_declaration(folder)
    assert declaration is not None and declaration.redis is not None
    values = redis_values(keys)
    _core.feast_write(
        declaration.plan,
        declaration.redis.as_core(),
        "user",
        {"user_id": np.arange(keys, dtype=np.int64)},
        {f"f{i}": np.ascontiguousarray(values[:, i]) for i in range(FEATURES)},
        np.full(keys, int(time.time() * 1e6), dtype=np.int64),
    )


def redis_values(keys: int) -> np.ndarray:
    """The [keys, FEATURES] FP32 values `write_redis` writes (user i's in row i)."""
    return np.random.default_rng(1).standard_normal((keys, FEATURES), dtype=np.float32)


FEAST_VIEW = FeastView(REDIS_PROJECT, "user", "user_id", tuple(f"f{i}" for i in range(FEATURES)))


@contextlib.contextmanager
def redis_server(workdir: Path, nice: int = 0) -> Iterator[tuple[str, int]]:
    """A redis-server on a free loopback port at nice level `nice`; yields its URL and pid."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make system-deps)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    log = (workdir / "redis.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        if nice:
            os.setpriority(os.PRIO_PROCESS, process.pid, nice)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0", process.pid
    finally:
        process.kill()
        process.wait()
        log.close()


def write_data(workdir: Path, keys: int) -> dict[str, Path]:
    """perf_analyzer data files: DATA_ROWS requests of existing users / random values."""
    rng = np.random.default_rng(2)
    plain = [{"input": rng.standard_normal(64).round(4).tolist()} for _ in range(DATA_ROWS)]
    looked_up = [
        {
            "user_id": [int(rng.integers(0, keys))],
            "dense": rng.standard_normal(FEATURES).round(4).tolist(),
        }
        for _ in range(DATA_ROWS)
    ]
    paths = {}
    for model, data in (("mlp", plain), ("mlp_features", looked_up), ("mlp_redis", looked_up)):
        paths[model] = workdir / f"{model}.json"
        paths[model].write_text(json.dumps({"data": data}))
    return paths


def analyzer(args: argparse.Namespace, workdir: Path) -> Analyzer:
    installed = subprocess.run(
        ["bash", str(args.tools / "get-perf-analyzer.sh"), str(PERF_ANALYZER_DIR)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    binary = Path(installed.stdout.strip().splitlines()[-1])
    return Analyzer(binary, LoadSettings(args.window_ms, 10, 20), workdir)


def server_argv(
    launcher: list[str], repository: Path, port: int, metrics_port: int | None = None
) -> list[str]:
    metrics = metrics_port or free_port()
    return [*launcher, "serve", "--model-repository", str(repository), "--grpc-port", str(port),
            "--metrics-port", str(metrics), "--host", HOST, "--uvloop"]  # fmt: skip


LOOKUP_HISTOGRAM = "ferroserve_feature_lookup_duration_seconds"


def lookup_buckets(metrics_port: int, model: str) -> dict[float, float]:
    """The cumulative buckets (upper bound s -> count) of `model`'s lookup-latency histogram,
    summed over its views, as the metrics sidecar exports them now."""
    url = f"http://{HOST}:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LOOKUP_HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("model") == model:
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """The q-quantile in ms of the observations between two scrapes, interpolated linearly
    within its bucket as Prometheus's histogram_quantile does (NaN if none)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower * 1e3
            share = (rank - below) / (count - below) if count > below else 1.0
            return (lower + (bound - lower) * share) * 1e3
        lower, below = bound, count
    return math.nan


@dataclass(frozen=True, slots=True)
class Observers:
    """What a round watches besides perf_analyzer: the server's CPU, its metrics sidecar, and
    redis-server's CPU (with `--redis`)."""

    server_cpu: CpuSampler
    metrics_port: int
    redis_cpu: CpuSampler | None


def measure_all(
    repository: Path,
    workdir: Path,
    args: argparse.Namespace,
    notes: list[str],
    feast: FeastTarget | None = None,
    redis_pid: int | None = None,
) -> tuple[list[Result], list[ComparisonRow]]:
    """Every round's perf_analyzer rows at c=16; with `feast`, also Feast's lookup at c=16 and
    c=1 (before the models in odd rounds, after them in even ones) and `mlp_redis` at c=1."""
    pa = analyzer(args, workdir)
    notes.append(f"Client: {pa.description.splitlines()[0]}.")
    data = write_data(workdir, args.keys)
    bodies = workdir / "feast-bodies.json"
    if feast is not None:
        rows = json.loads(data["mlp_redis"].read_text())["data"]
        write_bodies(bodies, FEAST_VIEW, [row["user_id"][0] for row in rows])
    launcher, env = ferroserve_launcher(notes)
    results: list[Result] = []
    compared: list[ComparisonRow] = []
    for round_ in range(args.rounds):
        models = ["mlp", "mlp_features"] + (["mlp_redis"] if args.redis else [])
        if round_ % 2:
            models.reverse()
        feast_window_s = 3 * args.window_ms / 1000  # perf_analyzer's last three windows
        if feast is not None and round_ % 2:
            compared += feast.measure_round(bodies, (CONCURRENCY, 1), feast_window_s, round_)
        port, metrics_port = free_port(), free_port()
        with contextlib.ExitStack() as stack:
            argv = server_argv(launcher, repository, port, metrics_port)
            pid = stack.enter_context(serving(argv, port, workdir / f"server-{round_}.log", env))
            observers = Observers(
                stack.enter_context(CpuSampler(pid)),
                metrics_port,
                stack.enter_context(CpuSampler(redis_pid)) if redis_pid else None,
            )
            for model in models:
                result = measure_model(pa, port, model, CONCURRENCY, data[model], observers, round_)
                if result is not None:
                    results.append(result)
            if feast is not None:
                single = measure_model(
                    pa, port, "mlp_redis", 1, data["mlp_redis"], observers, round_
                )
                if single is not None:
                    compared.append(comparison_row(single, 1))
        if feast is not None and not round_ % 2:
            compared += feast.measure_round(bodies, (CONCURRENCY, 1), feast_window_s, round_)
    return results, compared


def measure_model(
    pa: Analyzer,
    port: int,
    model: str,
    concurrency: int,
    data: Path,
    observers: Observers,
    round_: int,
) -> Result | None:
    """One perf_analyzer row (tried twice), None if it never stabilized."""
    redis = model == "mlp_redis"
    lookups_before = lookup_buckets(observers.metrics_port, model) if redis else {}
    run = pa.measure(port, model, concurrency, input_data=data)
    if run.measurement is None:  # unstable on a busy machine: once more
        run = pa.measure(port, model, concurrency, input_data=data)
    if run.measurement is None:
        print(f"round {round_}: {model}: {run.error}; round left out", file=sys.stderr)
        return None
    m = run.measurement
    time.sleep(0.1)
    server_s = observers.server_cpu.cpu_s_between(m.start_ns, m.end_ns)
    redis_us = lookup_ms = None
    if redis:
        # The server writes its metrics snapshot every second (--metrics-interval-ms).
        time.sleep(2.2)
        lookups_after = lookup_buckets(observers.metrics_port, model)
        lookup_ms = (
            histogram_quantile(0.5, lookups_before, lookups_after),
            histogram_quantile(0.99, lookups_before, lookups_after),
        )
        if observers.redis_cpu is not None:
            redis_s = observers.redis_cpu.cpu_s_between(m.start_ns, m.end_ns)
            redis_us = 1e6 * redis_s / max(1, m.inferences)
    rate = m.infer_per_s
    label = model if concurrency == CONCURRENCY else f"{model} c={concurrency}"
    print(f"round {round_}: {label}: {rate:.0f}/s", file=sys.stderr)
    return Result(
        model,
        round_,
        rate,
        m.p50_ms,
        m.p99_ms,
        1e6 * server_s / max(1, m.inferences),
        run.mean_batch,
        redis_us,
        lookup_ms,
    )


def comparison_row(result: Result, concurrency: int) -> ComparisonRow:
    r = result
    return inference_row(
        r.round, concurrency, r.infer_per_s, r.p50_ms, r.p99_ms, r.server_us_per_request
    )


def report(results: Sequence[Result]) -> list[list[str]]:
    table = [
        "| model | round | infer/s | p50 ms | p99 ms | server µs/request | mean batch "
        "| Redis µs/request | lookup p50 / p99 ms |",
        "|" + "---|" * 9,
    ]
    for r in results:
        batch = f"{r.mean_batch:.1f}" if r.mean_batch is not None else ""
        redis = f"{r.redis_us_per_request:.1f}" if r.redis_us_per_request is not None else ""
        lookup = f"{r.lookup_ms[0]:.2f} / {r.lookup_ms[1]:.2f}" if r.lookup_ms else ""
        table.append(
            f"| {r.model} | {r.round + 1} | {r.infer_per_s:.0f} | {r.p50_ms:.3f} | "
            f"{r.p99_ms:.3f} | {r.server_us_per_request:.1f} | {batch} | {redis} | {lookup} |"
        )
    by = {(r.model, r.round): r for r in results}
    # Rounds where both sides measured.
    rounds = sorted(
        n for n in {r.round for r in results} if ("mlp", n) in by and ("mlp_features", n) in by
    )
    if not rounds:
        return [table, ["- No round measured both models."]]
    ratios = [by[("mlp_features", n)].infer_per_s / by[("mlp", n)].infer_per_s for n in rounds]
    median = statistics.median(ratios)
    verdict = "PASS" if median >= TARGET else "FAIL"
    summary = [
        f"- {verdict}: embedded lookup >= {TARGET:.0%} of the all-sent MLP's throughput at "
        f"c={CONCURRENCY}: {median:.3f}x (per round: "
        + ", ".join(f"{ratio:.3f}" for ratio in ratios)
        + ")"
    ]
    redis_rounds = [n for n in rounds if ("mlp_redis", n) in by]
    if redis_rounds:
        redis_ratios = [
            by[("mlp_redis", n)].infer_per_s / by[("mlp", n)].infer_per_s for n in redis_rounds
        ]
        redis_median = statistics.median(redis_ratios)
        p99 = max(by[("mlp_redis", n)].p99_ms for n in redis_rounds)
        passed = redis_median >= REDIS_TARGET and p99 <= REDIS_P99_MS
        summary.append(
            f"- {'PASS' if passed else 'FAIL'}: Redis lookup (Feast layout, loopback) >= "
            f"{REDIS_TARGET:.0%} of the all-sent MLP's throughput and p99 <= {REDIS_P99_MS:g} ms "
            f"at c={CONCURRENCY}: {redis_median:.3f}x (per round: "
            + ", ".join(f"{ratio:.3f}" for ratio in redis_ratios)
            + f"), worst p99 {p99:.2f} ms"
        )
    return [table, summary]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure_scale(workdir: Path, args: argparse.Namespace, notes: list[str]) -> list[list[str]]:
    """Load time and memory of a snapshot of `--scale` keys."""
    empty = workdir / "empty"
    (empty / "mlp").mkdir(parents=True)
    if importlib.util.find_spec("ferroserve") is None:
        sys.path.insert(0, str(SOURCE_TREE))
    from ferroserve.demo import mlp_model, save

    (empty / "mlp" / "config.pbtxt").write_text(BASE_CONFIG.format(name="mlp"))
    save(mlp_model(), empty / "mlp" / "1" / "model.onnx")
    repository = workdir / "repository"
    started = time.perf_counter()
    write_repository(repository, args.scale)
    written_s = time.perf_counter() - started
    snapshot = repository / "mlp_features" / "users.parquet"
    launcher, env = ferroserve_launcher(notes)
    rows = []
    for label, repo in (("without the snapshot (mlp only)", empty), ("with it", repository)):
        port = free_port()
        started = time.perf_counter()
        log = workdir / f"scale-{port}.log"
        with serving(server_argv(launcher, repo, port), port, log, env) as pid:
            ready_s = time.perf_counter() - started
            rows.append((label, ready_s, rss_kib(pid) / 1024))
    raw_mib = args.scale * FEATURES * 4 / 2**20
    table = [
        "| server | start to ready s | RSS MiB |",
        "|---|---|---|",
        *(f"| {label} | {ready:.1f} | {rss:.0f} |" for label, ready, rss in rows),
    ]
    extra = rows[1][2] - rows[0][2]
    summary = [
        f"- Snapshot: {args.scale:,} keys x {FEATURES} FP32 features = {raw_mib:,.0f} MiB of raw "
        f"values; Parquet file {snapshot.stat().st_size / 2**20:,.0f} MiB, written in "
        f"{written_s:.1f} s.",
        f"- The snapshot adds {rows[1][1] - rows[0][1]:.1f} s to start-up and {extra:,.0f} MiB "
        f"of resident memory ({extra / raw_mib:.2f}x the raw values; the second server also "
        "loads `mlp_features`' model).",
    ]
    return [table, summary]


def feast_side(
    workdir: Path, url: str, args: argparse.Namespace, notes: list[str]
) -> contextlib.AbstractContextManager[FeastTarget]:
    """`feast serve` over the bench's Redis, checked on the first and last users and three
    between."""
    values = redis_values(args.keys)
    checked = sorted({0, args.keys - 1, *np.random.default_rng(3).integers(0, args.keys, 3)})
    expected = {int(key): values[key] for key in checked}
    return feast_beside(workdir, url, FEAST_VIEW, expected, args.feast_workers, notes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferroserve-features-") as tmp:
        workdir = Path(tmp)
        try:
            if args.scale:
                sections = measure_scale(workdir, args, notes)
            else:
                with contextlib.ExitStack() as stack:
                    url, redis_pid = None, None
                    if args.redis:
                        url, redis_pid = stack.enter_context(redis_server(workdir, args.redis_nice))
                    write_repository(workdir / "repository", args.keys, url)
                    feast = None
                    if args.feast and url is not None:
                        feast = stack.enter_context(feast_side(workdir, url, args, notes))
                    results, compared = measure_all(
                        workdir / "repository", workdir, args, notes, feast, redis_pid
                    )
                sections = report(results)
                if args.feast:
                    compared += [
                        comparison_row(r, CONCURRENCY) for r in results if r.model == "mlp_redis"
                    ]
                    sections += comparison(compared, CONCURRENCY)
        except ServerFailed as error:
            print(f"the server failed to start: {error}", file=sys.stderr)
            return 1
    notes = [
        f"Models: the MLP [N,64] -> 256 -> 256 -> 10, max_batch_size 64, `dynamic_batching` "
        f"(delay 0); `mlp_features` joins {FEATURES} FP32 features of view `user` (keyed by "
        f"INT64 user_id, Parquet snapshot of {args.scale or args.keys:,} users) after "
        f"{FEATURES} request-time features"
        + (
            "; `mlp_redis` the same features from a loopback redis-server in Feast's layout "
            "(looked up by the front end per request, one pipelined HMGET); Redis µs/request: "
            "redis-server's CPU over the window / requests; lookup p50 / p99: the lookup "
            "stage alone, interpolated from the server's lookup-latency histogram over the "
            "whole perf_analyzer run."
            + (
                f" **Diagnostic: redis-server ran at nice {args.redis_nice}** (the server and "
                "perf_analyzer at 0)."
                if args.redis_nice
                else ""
            )
            if args.redis
            else "."
        ),
        f"perf_analyzer -b 1, c={CONCURRENCY}, unary, {DATA_ROWS} distinct requests per model "
        "from a JSON data file (every user id exists); client and server share the cores; "
        "server µs/request: CPU of the server process tree over the window / requests.",
        *notes,
    ]
    publish(sections, notes, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
