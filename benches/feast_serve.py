"""Feast's own feature server beside ferroserve (issue 14): a Feast feature repository over the
Redis that benches/features.py wrote in Feast's layout, `feast apply`, `feast serve` (HTTP) as a
subprocess, a check that Feast reads the values ferroserve wrote, and a closed-loop HTTP load of
one lookup (one entity) per call (the client: benches/feast_load.py, a child process; its own
CPU is reported so a saturated client would show), and the comparison's table and verdict.
benches/features.py --feast calls it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from measurement import Measurement, MeasurementFailed
from server_process import HOST, CpuSampler, ServerFailed, free_port

FEAST_VENV = Path(__file__).resolve().parents[1] / ".venv-feast"
READY_TIMEOUT_S = 120.0
ANSWER_TIMEOUT_S = 30.0
WARMUP_S = 1.0
FEAST_LOOKUP = "Feast lookup alone"
FERROSERVE_INFERENCE = "ferroserve mlp_redis inference"


@dataclass(frozen=True, slots=True)
class FeastView:
    """The view ferroserve wrote: Feast project, view name, INT64 join key, FP32 features."""

    project: str
    name: str
    key: str
    features: tuple[str, ...]

    def request_body(self, key: int) -> bytes:
        """/get-online-features for one entity, every feature of the view."""
        features = [f"{self.name}:{feature}" for feature in self.features]
        return json.dumps({"features": features, "entities": {self.key: [key]}}).encode()


@dataclass(frozen=True, slots=True)
class LookupRun:
    """One closed-loop load of Feast: the figure, Feast's and the client's CPU in the window."""

    concurrency: int
    measurement: Measurement
    server_us_per_call: float
    client_cpu_share: float
    connections: tuple[int, ...]


def feast_bin() -> Path:
    """The folder with Feast's python and CLI: FEAST_PYTHON's, else .venv-feast's."""
    configured = os.environ.get("FEAST_PYTHON")
    folder = Path(configured).parent if configured else FEAST_VENV / "bin"
    if not (folder / "feast").exists():
        raise SystemExit(f"no Feast CLI in {folder}: `make feast-venv` or set FEAST_PYTHON")
    return folder


def feast_env() -> dict[str, str]:
    return {**os.environ, "FEAST_USAGE": "False"}


def write_feature_repo(repo: Path, view: FeastView, redis_url: str) -> None:
    """feature_store.yaml (Redis online store at `redis_url`, serialization version 3, as
    ferroserve's `redis` block defaults to) and repo.py: an INT64 entity on the view's key and
    a FeatureView of FP32 features with a one-row FileSource that only `feast apply` reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    address = redis_url.removeprefix("redis://").split("/")[0]
    data = repo / "data"
    data.mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: {view.project}
            provider: local
            registry: {data / "registry.db"}
            online_store:
              type: redis
              connection_string: "{address}"
            offline_store:
              type: file
            entity_key_serialization_version: 3
            """
        )
    )
    fields = "".join(f"        Field(name={name!r}, dtype=Float32),\n" for name in view.features)
    (repo / "repo.py").write_text(
        "from datetime import timedelta\n\n"
        "from feast import Entity, FeatureView, Field, FileSource, ValueType\n"
        "from feast.types import Float32\n\n"
        f"entity = Entity(name={view.key!r}, join_keys=[{view.key!r}], "
        "value_type=ValueType.INT64)\n"
        f"view = FeatureView(\n    name={view.name!r},\n    entities=[entity],\n"
        "    ttl=timedelta(days=3650),\n    schema=[\n" + fields + "    ],\n"
        f"    source=FileSource(path={str(data / 'source.parquet')!r}, "
        "timestamp_field='event_timestamp'),\n)\n"
    )
    columns: dict[str, pa.Array] = {
        view.key: pa.array([0], pa.int64()),
        "event_timestamp": pa.array([0], pa.timestamp("us", tz="UTC")),
    }
    columns |= {name: pa.array([0.0], pa.float32()) for name in view.features}
    pq.write_table(pa.table(columns), data / "source.parquet")


def feast_apply(repo: Path) -> None:
    done = subprocess.run(
        [str(feast_bin() / "feast"), "apply"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=feast_env(),
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        raise ServerFailed(f"feast apply failed: {(done.stdout + done.stderr)[-2000:]}")


@contextlib.contextmanager
def feast_server(repo: Path, workers: int, log_path: Path) -> Iterator[tuple[int, int]]:
    """`feast serve` (HTTP) on a free loopback port until the block ends; yields (port, pid)
    once /health answers. Access log off and `--max-requests 0`: Feast's default (1000)
    restarts each worker every thousand calls, which would put restarts into its p99."""
    port = free_port()
    argv = [str(feast_bin() / "feast"), "serve", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--max-requests", "0"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=repo, stdout=log, stderr=subprocess.STDOUT, env=feast_env()
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not _healthy(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace").splitlines()[-5:]
                    raise ServerFailed(f"feast serve did not start: {' / '.join(tail)}")
                time.sleep(0.2)
            yield port, process.pid
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection(HOST, port, timeout=1)
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False


def lookup(port: int, view: FeastView, key: int) -> dict[str, tuple[object, str]]:
    """Feast's answer for one key: feature name -> (value, status)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=ANSWER_TIMEOUT_S)
    connection.request(
        "POST",
        "/get-online-features",
        view.request_body(key),
        {"Content-Type": "application/json"},
    )
    answer = connection.getresponse()
    body = answer.read()
    if answer.status != 200:
        raise MeasurementFailed(f"feast serve answered {answer.status}: {body[:300]!r}")
    decoded = json.loads(body)
    names = decoded["metadata"]["feature_names"]
    return {
        name: (column["values"][0], column["statuses"][0])
        for name, column in zip(names, decoded["results"], strict=True)
    }


def check_values(port: int, view: FeastView, expected: Mapping[int, np.ndarray]) -> str:
    """Feast must answer each key with the FP32 values ferroserve wrote, bit for bit."""
    for key, values in expected.items():
        answer = lookup(port, view, key)
        got = [answer[name] for name in view.features]
        statuses = {status for _, status in got}
        served = np.array([value for value, _ in got], dtype=np.float32)
        if statuses != {"PRESENT"} or not np.array_equal(served, values):
            raise MeasurementFailed(
                f"Feast reads key {key} differently: {statuses}, {served[:4]} against "
                f"{values[:4]} (first four)"
            )
    # Feast 0.67's HTTP answer marks an unknown entity's features PRESENT, with null values.
    missing = max(expected) + 10**9
    nulls = {value for value, _ in (lookup(port, view, missing)[n] for n in view.features)}
    if nulls != {None}:
        raise MeasurementFailed(f"Feast finds key {missing}, which nobody wrote: {nulls}")
    return (
        f"Feast read {len(expected)} keys ({', '.join(map(str, expected))}) with the same "
        f"{len(view.features)} FP32 values ferroserve wrote, bit for bit, and nulls for an "
        "unwritten key."
    )


def measure(
    port: int, pid: int, bodies: Path, concurrency: int, warmup_s: float, window_s: float
) -> LookupRun:
    """One closed-loop run of the child client against `feast serve` (pid: its master)."""
    argv = [sys.executable, str(Path(__file__).with_name("feast_load.py")), "--port", str(port),
            "--bodies", str(bodies), "--concurrency", str(concurrency),
            "--warmup-s", str(warmup_s), "--window-s", str(window_s)]  # fmt: skip
    with CpuSampler(pid) as cpu:
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(warmup_s + window_s / 2)
            split = connections_per_worker(pid, port)
            out, err = client.communicate(timeout=window_s + 60)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        time.sleep(0.1)
    if client.returncode != 0:
        raise MeasurementFailed(f"the Feast load client failed: {err.strip()[-500:]}")
    result = json.loads(out)
    m = Measurement(**result["measurement"])
    server_s = cpu.cpu_s_between(m.start_ns, m.end_ns)
    return LookupRun(
        concurrency,
        m,
        1e6 * server_s / max(1, m.inferences),
        result["client_cpu_s"] / window_s,
        split,
    )


def connections_per_worker(master: int, port: int) -> tuple[int, ...]:
    """How many established connections to `port` each of gunicorn's workers holds (from
    /proc: the workers' socket inodes against /proc/net/tcp's server-side entries)."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        # proc(5): local_address is HEXIP:HEXPORT, st 01 is ESTABLISHED, field 10 the inode.
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            established.add(fields[9])
    counts = []
    for child in Path(f"/proc/{master}/task").glob("*/children"):
        for worker in child.read_text().split():
            held = 0
            with contextlib.suppress(FileNotFoundError, PermissionError):
                for fd in Path(f"/proc/{worker}/fd").iterdir():
                    with contextlib.suppress(FileNotFoundError):
                        target = os.readlink(fd)
                        held += target.startswith("socket:[") and target[8:-1] in established
            counts.append(held)
    return tuple(sorted(counts, reverse=True))


def write_bodies(path: Path, view: FeastView, keys: Sequence[int]) -> None:
    """The load's requests: one per key, sent in turn."""
    path.write_text(json.dumps([view.request_body(key).decode() for key in keys]))


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One line of the comparison: Feast's lookup alone or ferroserve's whole inference."""

    system: str
    round: int
    concurrency: int
    per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_call: float
    client_cpu_share: float | None = None
    # Feast's connections per worker, busiest first, sampled mid-window.
    connections: str = ""


def feast_row(run: LookupRun, round_: int) -> ComparisonRow:
    m = run.measurement
    return ComparisonRow(
        FEAST_LOOKUP, round_, run.concurrency, m.infer_per_s, m.p50_ms, m.p99_ms,
        run.server_us_per_call, run.client_cpu_share, "/".join(map(str, run.connections)),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeastTarget:
    """A running `feast serve` that read back what ferroserve wrote."""

    port: int
    pid: int
    workers: int

    def measure_round(
        self, bodies: Path, concurrencies: Sequence[int], window_s: float, round_: int
    ) -> list[ComparisonRow]:
        """Feast's lookup alone at each concurrency, for `window_s` after a warm-up."""
        rows = []
        for concurrency in concurrencies:
            try:
                run = measure(self.port, self.pid, bodies, concurrency, WARMUP_S, window_s)
            except MeasurementFailed as error:
                print(f"round {round_}: feast serve c={concurrency}: {error}", file=sys.stderr)
                continue
            rows.append(feast_row(run, round_))
            rate = run.measurement.infer_per_s
            print(f"round {round_}: feast serve c={concurrency}: {rate:.0f}/s", file=sys.stderr)
        return rows


@contextlib.contextmanager
def feast_beside(
    workdir: Path,
    redis_url: str,
    view: FeastView,
    expected: Mapping[int, np.ndarray],
    workers: int,
    notes: list[str],
) -> Iterator[FeastTarget]:
    """A Feast repository for `view` over `redis_url`, applied and served until the block ends;
    its values checked against `expected` first."""
    repo = workdir / "feast"
    write_feature_repo(repo, view, redis_url)
    feast_apply(repo)
    started = time.perf_counter()
    with feast_server(repo, workers, workdir / "feast-serve.log") as (port, pid):
        ready_s = time.perf_counter() - started
        version = subprocess.run(
            [str(feast_bin() / "python"), "-c", "import feast; print(feast.__version__)"],
            capture_output=True,
            text=True,
            env=feast_env(),
            check=False,
        ).stdout.strip()
        try:
            checked = check_values(port, view, expected)
        except MeasurementFailed as error:
            raise ServerFailed(f"feast serve: {error}") from error
        notes.append(
            f"Feast {version or '(version unknown)'} from {feast_bin()}: `feast serve` (HTTP, "
            f"gunicorn with uvicorn workers) `--workers {workers}` (one per core; Feast's "
            "default is 1) `--no-access-log --max-requests 0` (Feast's default restarts each "
            f"worker every 1000 calls), ready {ready_s:.1f} s after start. {checked}"
        )
        yield FeastTarget(port, pid, workers)


def inference_row(
    round_: int, concurrency: int, per_s: float, p50_ms: float, p99_ms: float, server_us: float
) -> ComparisonRow:
    """ferroserve's whole inference (perf_analyzer's figure) as a row of the comparison."""
    system = FERROSERVE_INFERENCE
    return ComparisonRow(system, round_, concurrency, per_s, p50_ms, p99_ms, server_us)


def comparison(rows: Sequence[ComparisonRow], concurrency: int) -> list[list[str]]:
    """The comparison table and its verdict: ferroserve's worst p99 at `concurrency` against
    Feast's best, so one lucky round on either side cannot pass it."""
    ordered = sorted(rows, key=lambda r: (r.concurrency != concurrency, r.system, r.round))
    table = [
        "| system | c | round | calls/s | p50 ms | p99 ms | server µs/call | client CPU "
        "| connections per worker |",
        "|" + "---|" * 9,
    ]
    for r in ordered:
        client = f"{r.client_cpu_share:.0%}" if r.client_cpu_share is not None else ""
        table.append(
            f"| {r.system} | {r.concurrency} | {r.round + 1} | {r.per_s:.0f} | {r.p50_ms:.3f} "
            f"| {r.p99_ms:.3f} | {r.server_us_per_call:.1f} | {client} | {r.connections} |"
        )
    feast = [r.p99_ms for r in rows if r.system == FEAST_LOOKUP and r.concurrency == concurrency]
    ours = [r.p99_ms for r in rows if r.system != FEAST_LOOKUP and r.concurrency == concurrency]
    if not feast or not ours:
        return [table, ["- No round measured both Feast and ferroserve."]]
    verdict = "PASS" if max(ours) < min(feast) else "FAIL"
    return [
        table,
        [
            f"- {verdict}: ferroserve's whole inference with the Redis lookup has a lower p99 "
            f"than Feast's lookup alone at c={concurrency}: worst {max(ours):.2f} ms against "
            f"Feast's best {min(feast):.2f} ms (Feast's p99 {min(feast) / max(ours):.1f}x "
            "ferroserve's). Feast publishes ~1.5 ms p99 for its Redis lookups on a large "
            "machine; here client, Feast and Redis share the same cores."
        ],
    ]
